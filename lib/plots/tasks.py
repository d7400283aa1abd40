"""Panels of the tasks chapter."""
from __future__ import annotations

import numpy as np

from . import colormap


def flipflop_trial(ax, inputs, targets, outputs=None, offset: float = 3.0):
    """Inputs [T, C] as pulses and targets [T, C] as steps, one row per channel."""
    t = np.arange(inputs.shape[0])
    for c in range(inputs.shape[1]):
        y0 = -offset * c
        ax.vlines(t[inputs[:, c] != 0], y0, y0 + inputs[inputs[:, c] != 0, c], color="0.6",
                  lw=1.5, label="input pulse" if c == 0 else None)
        ax.step(t, y0 + targets[:, c], where="post", color="k", lw=1.2,
                label="target" if c == 0 else None)
        if outputs is not None:
            ax.plot(t, y0 + outputs[:, c], color="C3", lw=1, label="output" if c == 0 else None)
    ax.set_yticks([-offset * c for c in range(inputs.shape[1])],
                  [f"bit {c + 1}" for c in range(inputs.shape[1])])
    ax.set_xlabel("time step")
    return ax


def sine_trials(ax, omegas, targets, outputs=None, cmap="viridis"):
    """Targets [K, T] (and outputs) for K command frequencies, coloured by frequency."""
    colors = colormap(cmap, len(omegas))
    for k, w in enumerate(omegas):
        ax.plot(targets[k], color=colors[k], lw=1.2, label=f"ω = {w:.2f}")
        if outputs is not None:
            ax.plot(outputs[k], color=colors[k], lw=1, ls="--")
    ax.set_xlabel("time step")
    ax.set_ylabel("target sin(ωt)")
    return ax


def sine_commands(ax, levels, omegas):
    """Static input level against commanded frequency."""
    ax.plot(levels, omegas, "o", ms=3, color="k")
    ax.set_xlabel("static input")
    ax.set_ylabel("ω (rad / step)")
    return ax


def cdi_trial(ax_in, ax_out, inputs, targets, context: int, outputs=None):
    """Streams and context cue of one trial (inputs [T, 4]) and its integral target [T, 1]."""
    t = np.arange(inputs.shape[0])
    for k, color in enumerate(("C0", "C1")):
        lw = 1.3 if k == context else 0.7
        ax_in.plot(t, inputs[:, k], color=color, lw=lw, alpha=1 if k == context else 0.5,
                   label=f"stream {k + 1}" + (" (cued)" if k == context else ""))
    ax_in.set_ylabel("input")
    ax_in.legend(loc="upper right", fontsize=7, frameon=False)
    ax_out.plot(t, targets[:, 0], color="k", label="target")
    if outputs is not None:
        ax_out.plot(t, outputs[:, 0], color="C3", lw=1, label="output")
    ax_out.set_xlabel("time step")
    ax_out.set_ylabel("integral")
    return ax_in, ax_out

