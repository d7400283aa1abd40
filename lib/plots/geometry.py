"""Panels of the geometry and SVCCA chapters."""
from __future__ import annotations

import numpy as np

from . import (ACT_COLORS, ACT_MARKERS, ARCH_COLORS, CODE_COLORS, CONTEXT_COLORS, code_legend,
               colormap)


def _xyz(ax, pts):
    """The first 3 (3-D axes) or 2 (2-D axes) columns of pts [..., D] as separate arrays."""
    n = 3 if ax.name == "3d" else 2
    return [pts[..., d] for d in range(n)]


def trajectories(ax, traj, colors, lw: float = 0.8, alpha: float = 0.8):
    """One line per trial: traj [B, T, D] in PC coordinates, colors [B, 4]."""
    for b in range(traj.shape[0]):
        ax.plot(*_xyz(ax, traj[b]), color=colors[b], lw=lw, alpha=alpha)
    _label_pcs(ax)
    return ax


def state_cloud(ax, pts, colors, size: float = 2.0, alpha: float = 0.6):
    """States as points: pts [M, D] in PC coordinates, colors [M, 4]."""
    ax.scatter(*_xyz(ax, pts), c=colors, s=size, alpha=alpha, linewidths=0)
    _label_pcs(ax)
    return ax


def _label_pcs(ax):
    three = ax.name == "3d"
    ax.set_xlabel("PC1", labelpad=-8 if three else 2, fontsize=7)
    ax.set_ylabel("PC2", labelpad=-8 if three else 2, fontsize=7)
    ax.set_xticks([]), ax.set_yticks([])
    if three:
        ax.set_zlabel("PC3", labelpad=-10, fontsize=7)
        ax.set_zticks([])


def flipflop_colors(targets) -> np.ndarray:
    """Colour [..., 4] of each sample by its 3-bit target code (8 colours); targets [..., 3]."""
    from matplotlib.colors import to_rgba_array
    code = ((np.asarray(targets) > 0) * np.array([4, 2, 1])).sum(-1)
    return to_rgba_array(CODE_COLORS)[code]


def distance_matrix(ax, D, groups, cmap: str = "viridis", vmax=None):
    """D [N, N] as an image, with the boundaries and names of consecutive ``groups`` [N].

    Returns the image (for a colorbar).
    """
    groups = np.asarray(groups)
    im = ax.imshow(D, cmap=cmap, vmin=0, vmax=vmax, interpolation="nearest")
    starts = np.r_[0, np.flatnonzero(groups[1:] != groups[:-1]) + 1]
    ends = np.r_[starts[1:], len(groups)]
    for s in starts[1:]:
        ax.axhline(s - 0.5, color="w", lw=0.6)
        ax.axvline(s - 0.5, color="w", lw=0.6)
    centres = (starts + ends - 1) / 2
    ax.set_xticks(centres, groups[starts], rotation=90, fontsize=7)
    ax.set_yticks(centres, groups[starts], fontsize=7)
    ax.tick_params(length=0)
    return im


def embedding(ax, Y, archs, activations, by: str = "arch", size: float = 22):
    """MDS embedding Y [N, 2]; colour by ``"arch"`` or ``"activation"``, marker by activation."""
    archs, activations = np.asarray(archs), np.asarray(activations)
    palette, key = (ARCH_COLORS, archs) if by == "arch" else (ACT_COLORS, activations)
    seen = set()
    for name in palette:
        for act, marker in ACT_MARKERS.items():
            sel = (key == name) & (activations == act)
            if sel.any():
                ax.scatter(Y[sel, 0], Y[sel, 1], s=size, marker=marker, color=palette[name],
                           edgecolors="k", linewidths=0.3, label=None if name in seen else name)
                seen.add(name)
    ax.set_xticks([]), ax.set_yticks([])
    ax.set_xlabel("MDS 1"), ax.set_ylabel("MDS 2")
    ax.set_aspect("equal", adjustable="datalim")
    return ax


def accuracy_curve(ax, xs, acc, chance, label: str, color=None):
    """Nearest-neighbour accuracy against a parameter (e.g. SVCCA k), chance dashed."""
    line, = ax.plot(xs, acc, "o-", ms=3, label=label, color=color)
    ax.plot(xs, chance, "--", color=line.get_color(), lw=0.8)
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("1-NN accuracy")
    return ax


def frequency_key(fig, omegas):
    """Horizontal colour bar below the panels for trials coloured by ``colormap("viridis", J)``
    in order of their evenly spaced commanded frequencies ``omegas`` [J] (rad / step)."""
    import matplotlib as mpl
    cmap = mpl.colors.ListedColormap(colormap("viridis", 256))  # the same 5-95 % stretch
    bar = mpl.cm.ScalarMappable(mpl.colors.Normalize(omegas.min(), omegas.max()), cmap=cmap)
    cax = fig.add_axes((0.3, 0.0, 0.4, 0.012))
    fig.colorbar(bar, cax=cax, orientation="horizontal").set_label(
        "commanded frequency (rad / step)", fontsize=8)
    cax.tick_params(labelsize=7)


def example_grid(fig, task_name: str, trajs: dict, trials, n_lines: int = 16):
    """PCA trajectories of one example network per architecture (rows) x activation (columns).

    Two columns rather than four, so that each panel is legible at page width; the panels are
    laid out (``tight_layout``) and the colour key goes below them.

    Parameters
    ----------
    fig : matplotlib Figure to fill
    task_name : ``"flipflop"``, ``"sine"`` or ``"cdi"`` (sets colouring and 2-D / 3-D)
    trajs : {(arch, activation): ndarray [B, T, 3]} states projected on the network's top PCs
    trials : the probe :class:`lib.tasks.Trials` (targets and conditions for the colours)
    n_lines : trials drawn as lines (flip-flop and integration)
    """
    archs = list(dict.fromkeys(a for a, _ in trajs))
    acts = list(dict.fromkeys(b for _, b in trajs))
    proj = None if task_name == "cdi" else "3d"
    for (arch, act), traj in trajs.items():
        ax = fig.add_subplot(len(archs), len(acts),
                             archs.index(arch) * len(acts) + acts.index(act) + 1, projection=proj)
        if task_name == "flipflop":
            state_cloud(ax, traj.reshape(-1, 3), flipflop_colors(trials.targets).reshape(-1, 4))
            trajectories(ax, traj[:n_lines], ["0.3"] * n_lines, lw=0.3, alpha=0.4)
        elif task_name == "sine":
            half = traj.shape[1] // 2  # the second half: the settled oscillation
            trajectories(ax, traj[:, half:], colormap("viridis", len(traj)), lw=0.7)
        else:
            ctx = trials.info["context"][:n_lines]
            trajectories(ax, traj[:n_lines], [CONTEXT_COLORS[c] for c in ctx], lw=0.7, alpha=0.6)
        # Titles in black: colour in these panels means code, frequency or context.
        ax.set_title(f"{arch} {act}", fontsize=9)
    fig.tight_layout()  # before the key below the panels, which it cannot lay out
    if task_name == "flipflop":
        code_legend(fig, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncols=8, fontsize=8)
    elif task_name == "sine":
        frequency_key(fig, np.asarray(trials.info["omega"]))
    elif task_name == "cdi":
        from matplotlib.lines import Line2D
        fig.legend(handles=[Line2D([], [], color=c, label=f"context {k + 1}")
                            for k, c in enumerate(CONTEXT_COLORS)],
                   loc="upper center", bbox_to_anchor=(0.5, 0.0), ncols=2, frameon=False,
                   fontsize=8)
    return fig
