"""Panels of the training chapter."""
from __future__ import annotations

import numpy as np
import pandas as pd

from . import ACT_MARKERS, ARCH_COLORS, CONTEXT_COLORS, colormap

ACT_STYLES = {"tanh": "-", "relu": "--"}


def learning_curves(ax, curves: dict, threshold: float | None = None, archs=None):
    """Median (line) and quantile band (shade) of normalised training loss per cell.

    ``curves``: ``{(arch, activation): DataFrame[step, median, lo, hi, n]}`` as returned by
    :func:`lib.training_summary.learning_curves`; ``archs`` restricts which are drawn.
    """
    for (arch, act), df in curves.items():
        if archs is not None and arch not in archs:
            continue
        color = ARCH_COLORS[arch]
        ax.fill_between(df.step, df.lo, df.hi, color=color, alpha=0.15, lw=0)
        ax.plot(df.step, df["median"], color=color, ls=ACT_STYLES[act], lw=1.2,
                label=f"{arch}-{act} (n={int(df.n.iloc[0])})")
    if threshold is not None:
        ax.axhline(threshold, color="k", lw=0.8, ls=":")
    ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel("training loss / target variance")
    return ax


def nmse_strip(ax, table: pd.DataFrame, threshold: float, seed: int = 0):
    """Test NMSE of every network, one column per architecture x activation, on a log scale.

    ``table`` is :meth:`lib.population.Population.table`; diverged networks (infinite NMSE)
    are drawn as crosses above the plotted range. Points left of each column: tanh; right: ReLU.
    """
    rng = np.random.default_rng(seed)
    cells = list(dict.fromkeys(zip(table.arch, table.activation)))
    finite = table.nmse[np.isfinite(table.nmse)]
    top = 3 * max(float(finite.max()) if len(finite) else threshold, threshold)
    for x, (arch, act) in enumerate(cells):
        rows = table[(table.arch == arch) & (table.activation == act)]
        jitter = x + rng.uniform(-0.22, 0.22, len(rows))
        ok = np.isfinite(rows.nmse.to_numpy())
        ax.scatter(jitter[ok], rows.nmse[ok], s=14, color=ARCH_COLORS[arch],
                   marker=ACT_MARKERS[act], alpha=0.8, lw=0)
        ax.scatter(jitter[~ok], np.full((~ok).sum(), top), s=18, color=ARCH_COLORS[arch],
                   marker="x", lw=1)
    ax.axhline(threshold, color="k", lw=0.8, ls=":")
    if not np.isfinite(table.nmse).all():  # a band for the diverged, only when there are some
        ax.axhspan(top / 1.6, top * 1.6, color="0.93", zorder=-1)
        ax.text(-0.5, top, " diverged", ha="left", va="center", fontsize=7)
    ax.set_yscale("log")
    ax.set_xticks(range(len(cells)), [f"{a}\n{f}" for a, f in cells], fontsize=8)
    ax.set_xlim(-0.6, len(cells) - 0.4)
    ax.set_ylabel("test NMSE")
    return ax


def sine_outputs(ax, omegas, targets, outputs, cmap="viridis"):
    """Targets [K, T] (solid) and a network's outputs [K, T] (dashed) for K frequencies."""
    colors = colormap(cmap, len(omegas))
    for k, w in enumerate(omegas):
        ax.plot(targets[k], color=colors[k], lw=1.5, alpha=0.5)
        ax.plot(outputs[k], color=colors[k], lw=1, ls="--", label=f"ω = {w:.2f}")
    ax.set_xlabel("time step")
    ax.set_ylabel("output")
    return ax


def cdi_outputs(ax, targets, outputs, contexts):
    """Integration targets [K, T] (solid) and outputs [K, T] (dashed), coloured by context."""
    for k in range(len(targets)):
        color = CONTEXT_COLORS[int(contexts[k])]
        ax.plot(targets[k], color=color, lw=1.5, alpha=0.5)
        ax.plot(outputs[k], color=color, lw=1, ls="--")
    ax.plot([], [], color=CONTEXT_COLORS[0], label="context 1")
    ax.plot([], [], color=CONTEXT_COLORS[1], label="context 2")
    ax.plot([], [], color="0.4", lw=1.5, alpha=0.5, label="target")
    ax.plot([], [], color="0.4", lw=1, ls="--", label="output")
    ax.set_xlabel("time step")
    ax.set_ylabel("integral")
    return ax
