"""Panels of the universality chapter: fixed-point graphs, frequency curves, topology statistics."""
from __future__ import annotations

import networkx as nx
import numpy as np

from . import ARCH_COLORS, STABILITY_COLORS, stability_colors, stability_legend

UNSTABLE_COLORS = STABILITY_COLORS  # the book's one stability palette (lib/plots/__init__.py)


def cube_xy(code: str) -> np.ndarray:
    """2-D oblique projection [2] of an output code (``"+-0"``) seen as a corner of the cube."""
    v = np.array([{"+": 1.0, "-": -1.0}.get(c, 0.0) for c in code] + [0.0] * 3)[:3]
    return np.array([v[0] + 0.3 * v[2], v[1] + 0.3 * v[2]])  # no saddle on a crossing


def graph_layout(G: nx.DiGraph) -> dict:
    """Positions {node: [2]}: stable points at their code's corner, saddles between their ends.

    A saddle sits at the mean of the points its orbits reach (its own code if it reaches none),
    so a network with the canonical topology draws as the cube of codes with a saddle on each edge.
    """
    pos = {p: cube_xy(d["code"]) for p, d in G.nodes(data=True) if d["n_unstable"] == 0}
    for p in sorted(G, key=lambda p: G.nodes[p]["n_unstable"]):
        if p not in pos:
            ends = [pos[q] for q in G.successors(p) if q in pos]
            pos[p] = np.mean(ends, axis=0) if ends else cube_xy(G.nodes[p]["code"])
    return pos


def fixed_point_graph(ax, G: nx.DiGraph, title: str = "", labels: bool = True,
                      node_size: float = 90, font_size: float = 8):
    """Draw a labelled fixed-point graph; nodes coloured by their number of unstable modes.

    Sizes are for a panel about 3 inches wide: draw at most three graphs side by side at page
    width (:func:`graph_grid`), or the codes become unreadable.
    """
    pos = graph_layout(G)
    colors = stability_colors([u for _, u in G.nodes(data="n_unstable")])
    nx.draw_networkx_edges(G, pos, ax=ax, edge_color="0.55", arrows=True, arrowsize=9, width=1.0,
                           node_size=node_size)
    nx.draw_networkx_nodes(G, pos, ax=ax, node_color=colors, node_size=node_size, edgecolors="k",
                           linewidths=0.5)
    if labels:
        for p, d in G.nodes(data=True):
            if d["n_unstable"] == 0:  # a code beside its stable point, on the side with no edge
                u = away_from_edges(G, pos, p)
                ha, va = (("left", "right", "center")[_side(u[0])],
                          ("bottom", "top", "center")[_side(u[1])])
                ax.text(*(pos[p] + 0.2 * u), d["label"], ha=ha, va=va, fontsize=font_size,
                        family="monospace", bbox=dict(fc="white", ec="none", pad=0.5, alpha=0.85))
    ax.set_title(title, fontsize=font_size + 1)
    ax.margins(0.12)
    ax.set_aspect("equal")
    ax.axis("off")
    return ax


def away_from_edges(G: nx.DiGraph, pos: dict, p) -> np.ndarray:
    """Unit vector [2] from node p into the widest angle between its edges (straight up when
    it has none): where its label covers no edge."""
    v = [pos[q] - pos[p] for q in set(nx.all_neighbors(G, p)) - {p}]
    a = np.sort([np.arctan2(y, x) for x, y in v if x or y])
    if not len(a):
        return np.array([0.0, 1.0])
    gaps = np.diff(np.append(a, a[0] + 2 * np.pi))
    mid = a[np.argmax(gaps)] + gaps.max() / 2
    return np.array([np.cos(mid), np.sin(mid)])


def _side(c: float) -> int:
    """0 for a clearly positive component, 1 for a clearly negative one, 2 near zero."""
    return 0 if c > 0.35 else 1 if c < -0.35 else 2


def unstable_legend(target, **kw):
    """Legend of the node colours (the book's stability palette), below an Axes by default."""
    return stability_legend(target, **{"loc": "upper left", "bbox_to_anchor": (0, 0), "ncols": 2,
                                       **kw})


def graph_grid(fig, graphs: list, titles: list, ncols: int = 3):
    """Fixed-point graphs [(G, labels)] in rows of ``ncols`` panels, legible at page width.

    Returns the axes; the stability key goes below the grid.
    """
    nrows = -(-len(graphs) // ncols)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, (G, labels), title in zip(axes, graphs, titles):
        fixed_point_graph(ax, G, title, labels=labels)
    for ax in axes[len(graphs):]:
        ax.axis("off")
    stability_legend(fig, loc="lower center", ncols=4, bbox_to_anchor=(0.5, 0))
    return axes


def match_bars(ax, table, column: str = "matches", label: str = "fraction matching"):
    """Fraction of networks with ``column`` true per architecture x activation (bars)."""
    frac = table.groupby(["arch", "activation"], sort=False)[column].mean()
    x = np.arange(len(frac))
    ax.bar(x, frac.to_numpy(), color=[ARCH_COLORS[a] for a, _ in frac.index],
           hatch=None, edgecolor="k", linewidth=0.4)
    ax.set_xticks(x, [f"{a}-{b}" for a, b in frac.index], fontsize=8, rotation=60, ha="right")
    ax.set_ylim(0, 1)
    ax.set_ylabel(label)
    return ax


def frequency_curves(ax, omegas, predicted, archs, alpha: float = 0.5):
    """Predicted [N, J] against commanded [J] frequency, one line per network, colour = arch.

    The identity and one handle per architecture are labelled; the caller places the key
    (e.g. :func:`key_below`), so it covers no line."""
    for pred, arch in zip(predicted, archs):
        ax.plot(omegas, pred, color=ARCH_COLORS[arch], lw=0.7, alpha=alpha)
    ax.plot(omegas, omegas, "k--", lw=1, label="identity")
    for arch in dict.fromkeys(archs):
        ax.plot([], [], color=ARCH_COLORS[arch], label=arch)
    ax.set_xlabel("commanded ω (rad / step)")
    ax.set_ylabel("predicted ω, |arg λ|")
    return ax


def spectra(ax, spectra_by_arch: dict):
    """Mean +- s.e.m. of sorted eigenvalue moduli {arch: [N, k]}, labelled by architecture
    (no key drawn)."""
    for arch, s in spectra_by_arch.items():
        k = np.arange(1, s.shape[1] + 1)
        n = np.sum(np.isfinite(s), axis=0)  # networks with slow points in that context
        m, e = np.nanmean(s, 0), np.nanstd(s, 0) / np.sqrt(np.maximum(n, 1))
        ax.errorbar(k, m, yerr=e, color=ARCH_COLORS[arch], label=arch, lw=1, capsize=2)
    ax.axhline(1, color="0.5", lw=0.6, ls=":")
    ax.set_xlabel("mode (sorted by |λ|)")
    ax.set_ylabel("|λ|")
    return ax


def key_below(fig, ax, **kw):
    """One row of ``ax``'s labelled handles centred below the figure's panels (room made at
    the bottom), for a key that panels of the same colours share."""
    handles, labels = ax.get_legend_handles_labels()
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig.legend(handles, labels, loc="lower center", ncols=len(labels), frameon=False,
                      **{"fontsize": 7, **kw})


def accuracy_bars(ax, stats, chance_col: str = "chance"):
    """1-NN accuracy of predicting architecture per task and distance (grouped bars), with chance."""
    tasks, metrics = list(dict.fromkeys(stats["task"])), list(dict.fromkeys(stats["distance"]))
    width = 0.8 / len(metrics)
    for i, metric in enumerate(metrics):
        rows = stats[stats["distance"] == metric].set_index("task").loc[tasks]
        x = np.arange(len(tasks)) + (i - (len(metrics) - 1) / 2) * width
        ax.bar(x, rows["nn_accuracy"], width, label=metric, color=f"C{i}", edgecolor="k", lw=0.4)
        ax.hlines(rows[chance_col], x - width / 2, x + width / 2, color="k", lw=1.2)
    ax.set_xticks(np.arange(len(tasks)), tasks, fontsize=7)
    ax.set_ylim(0, 1)
    ax.set_ylabel("1-NN accuracy (architecture)")
    ax.legend(fontsize=7, frameon=False)
    return ax
