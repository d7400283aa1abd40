"""Panels of the chapter on fixed points and linearised dynamics (book/05_fixed_points.md)."""
from __future__ import annotations

import numpy as np

from . import (ACT_MARKERS, ARCH_COLORS, CONTEXT_COLORS, STABILITY_COLORS, STABILITY_LABELS,
               stability_colors, stability_legend)
from ..dynamics import pca

UNSTABLE_COLORS = STABILITY_COLORS  # the book's one stability palette (lib/plots/__init__.py)


def _pc_labels(ax, dims: int = 2):
    """Name the axes PC1..PC3 (tick values of a per-network PCA mean nothing, so none)."""
    ax.set_xticks([]); ax.set_yticks([])
    ax.set_xlabel("PC1", labelpad=-8 if dims == 3 else 2, fontsize=7)
    ax.set_ylabel("PC2", labelpad=-8 if dims == 3 else 2, fontsize=7)
    if dims == 3:
        ax.set_zticks([])
        ax.set_zlabel("PC3", labelpad=-10, fontsize=7)


def fixed_points_pca(ax, visited, points, n_unstable, n_traj_points: int = 3000, dims: int = 3,
                     margin: float = 0.25):
    """Visited states (grey) and fixed points coloured by unstable modes, in the states' PCA.

    visited [V, S], points [M, S], n_unstable [M]; ``ax`` is 3-D when ``dims`` is 3. The axes
    span the visited states and the points within ``margin`` x their range beyond them; a point
    farther out is drawn on the panel's edge as a ring (:func:`clip_to_box`), so that one far
    point does not shrink the structure the trajectories visit. Returns the number so drawn.
    """
    mean, axes = pca(visited, dims)
    z = (visited[:n_traj_points] - mean) @ axes
    lo, hi = z.min(0), z.max(0)
    p, out = clip_to_box((points - mean) @ axes, lo - margin * (hi - lo), hi + margin * (hi - lo))
    every = np.concatenate([z, p])
    ax.plot(*z.T, ".", color="0.8", ms=1, zorder=0)
    extra = {"depthshade": False} if dims == 3 else {}
    colors = np.array(stability_colors(n_unstable), dtype=object)
    ax.scatter(*p[~out].T, c=list(colors[~out]), s=18, zorder=3, **extra)
    if out.any():
        ax.scatter(*p[out].T, facecolors="none", edgecolors=list(colors[out]), s=30,
                   linewidths=1.2, zorder=3, **extra)
    for k, setter in enumerate((ax.set_xlim, ax.set_ylim, getattr(ax, "set_zlim", None))[:dims]):
        setter(every[:, k].min(), every[:, k].max())
    _pc_labels(ax, dims)
    return int(out.sum())


def clip_to_box(p: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Points p [M, D] outside the box [lo, hi] moved onto its surface along the ray from the
    box's centre; returns the moved points [M, D] and which were outside [M] bool."""
    centre, half = (lo + hi) / 2, (hi - lo) / 2
    reach = np.max(np.abs(p - centre) / np.maximum(half, 1e-12), axis=1, initial=0.0)  # [M]
    out = reach > 1
    scale = np.where(out, 1 / np.maximum(reach, 1), 1.0)[:, None]
    return centre + (p - centre) * scale, out


def unstable_legend(target, **kw):
    """Legend of the stability colours (on an Axes or a Figure)."""
    return stability_legend(target, **kw)


def stability_counts(ax, table):
    """Mean number of isolated fixed points with 0-3 unstable modes (more are left out), per
    architecture x activation.

    table: rows per network with ``label`` and ``unstable_0..3`` (see lib.dynamics.flipflop_table).
    """
    mean = table.groupby("label", sort=False)[[f"unstable_{u}" for u in range(4)]].mean()
    bottom = np.zeros(len(mean))
    for u, col in enumerate(mean.columns):
        ax.bar(mean.index, mean[col], bottom=bottom, color=STABILITY_COLORS[u],
               label=STABILITY_LABELS[u] if u < 3 else "3 unstable modes")  # not 3+: see above
        bottom += mean[col].to_numpy()
    ax.axhline(8, color="0.5", lw=0.8, ls="--")
    ax.set_ylabel("isolated fixed points\nper network")
    ax.tick_params(axis="x", rotation=60)
    return ax


def frequency_prediction(ax, df, top: float = 1.2):
    """Linearised vs commanded frequency, all networks, coloured by architecture.

    Predictions above ``top`` are drawn at ``top`` (outliers near pi would flatten the plot).
    df: rows per network x frequency with ``arch``, ``activation``, ``omega``, ``omega_pred``.
    """
    for (arch, act), d in df.groupby(["arch", "activation"], sort=False):
        ax.scatter(d.omega, np.minimum(d.omega_pred, top), s=8, alpha=0.6, color=ARCH_COLORS[arch],
                   marker=ACT_MARKERS[act], label=f"{arch}-{act}", lw=0)
    lim = [0, max(df.omega.max(), 0.7)]
    ax.plot(lim, lim, color="0.4", lw=0.8, ls="--")
    ax.set_ylim(0, top * 1.03)
    ax.set_xlabel("commanded ω (rad/step)")
    ax.set_ylabel("linearised ω = |arg λ| (rad/step)")
    return ax


def limit_cycle(ax, states, point, label: str | None = None):
    """A trajectory [T, S] and its fixed point [S] in the top-2 PCA plane of its second half.

    The plane is fitted after any transient, so that it is the cycle's.
    ``label`` is written inside the panel (a title above small panels collides with the row
    above).
    """
    mean, axes = pca(states[len(states) // 2:], 2)
    z, p = (states - mean) @ axes, (point - mean) @ axes
    ax.plot(*z.T, lw=0.8, color="0.3")
    ax.plot(*p, "x", color=STABILITY_COLORS[1], ms=7, mew=2)
    _pc_labels(ax)
    if label:  # in a band added above the data, so that it covers neither orbit nor point
        lo, hi = ax.get_ylim()
        ax.set_ylim(lo, hi + (0.05 + 0.2 * (label.count("\n") + 1)) * (hi - lo))  # per line
        ax.text(0.02, 0.98, label, transform=ax.transAxes, ha="left", va="top", fontsize=7)
    return ax


def line_attractors(ax, visited, points_by_context, colors=CONTEXT_COLORS):
    """Slow points of both contexts over the visited states (grey), in the states' 2-D PCA.

    visited [V, S]; points_by_context: list of [m_c, S].
    """
    mean, axes = pca(visited, 2)
    z = (visited - mean) @ axes
    ax.plot(*z.T, ".", color="0.85", ms=1, zorder=0)
    for c, pts in enumerate(points_by_context):
        p = (pts - mean) @ axes
        ax.plot(*p.T, "o", ms=3, color=colors[c], label=f"context {c + 1}")
    missing = [c + 1 for c, pts in enumerate(points_by_context) if not len(pts)]
    if len(missing) == len(points_by_context):
        ax.text(0.5, 0.5, "no slow point found", transform=ax.transAxes, ha="center",
                va="center", fontsize=7)
    elif missing:  # said in the panel: an empty context is not a hidden one
        ax.text(0.02, 0.02, "no slow point: context " + ", ".join(map(str, missing)),
                transform=ax.transAxes, ha="left", va="bottom", fontsize=6)
    _pc_labels(ax)
    return ax


def mean_sem(ax, x, values_by_label, ylabel):
    """Mean ± s.e.m. curves over networks; values_by_label: {label: [n, K]}."""
    for label, v in values_by_label.items():
        v = v[np.isfinite(v).all(1)]
        if not len(v):  # said in the legend, not left out silently
            ax.plot([], [], ls="none", color=ARCH_COLORS[label.split("-")[0]],
                    marker=ACT_MARKERS[label.split("-")[1]], ms=3, label=f"{label}: none")
            continue
        m = v.mean(0)
        sem = v.std(0, ddof=1) / np.sqrt(len(v)) if len(v) > 1 else np.zeros_like(m)
        ax.errorbar(x[:len(m)], m, yerr=sem, color=ARCH_COLORS[label.split("-")[0]],
                    marker=ACT_MARKERS[label.split("-")[1]], ms=3, lw=1, capsize=2, label=label)
    ax.set_ylabel(ylabel)
    return ax


def per_label_strip(ax, table, column: str, ylabel: str, seed: int = 0):
    """One dot per row of ``table`` at its ``label`` (arch-activation), jittered; median bar."""
    labels = list(dict.fromkeys(table["label"]))
    rng = np.random.default_rng(seed)
    for i, label in enumerate(labels):
        v = table.loc[table["label"] == label, column].fillna(0).to_numpy(float)
        arch, act = label.split("-")
        ax.scatter(i + rng.uniform(-0.2, 0.2, len(v)), v, s=9, color=ARCH_COLORS[arch],
                   marker=ACT_MARKERS[act], alpha=0.7, linewidths=0)
        ax.plot([i - 0.3, i + 0.3], [np.median(v)] * 2, color="k", lw=1.2)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=7)
    ax.set_ylabel(ylabel)
    return ax
