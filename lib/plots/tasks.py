"""Panels of the tasks chapter."""
from __future__ import annotations

import numpy as np

from . import CONTEXT_COLORS, OUTPUT_COLOR, colormap

PULSE_COLORS = {1: "#2166ac", -1: "#b2182b"}  # +1 and -1 input pulses


def flipflop_trial(ax, inputs, targets, outputs=None, offset: float = 4.2):
    """Inputs [T, C] as pulses and targets [T, C] as steps, one row per channel.

    Each channel's pulses are drawn in their own lane just above its target (blue up for +1,
    red down for -1), with a faint guide down to the target: drawn on the target line itself,
    a pulse hides under the step edge it causes and the target seems to flip on its own.
    """
    t = np.arange(inputs.shape[0])
    for c in range(inputs.shape[1]):
        y0, lane = -offset * c, -offset * c + 1.9
        ax.axhline(lane, color="0.85", lw=0.6, zorder=0)
        for sign, color in PULSE_COLORS.items():
            hit = t[inputs[:, c] * sign > 0]
            ax.vlines(hit, lane, lane + 0.7 * sign, color=color, lw=1.8)
            ax.vlines(hit, y0 - 1.1, lane, color=color, lw=0.6, alpha=0.5, ls=":")
        ax.step(t, y0 + targets[:, c], where="post", color="k", lw=1.2,
                label="target" if c == 0 else None)
        if outputs is not None:
            ax.plot(t, y0 + outputs[:, c], color=OUTPUT_COLOR, lw=1,
                    label="output" if c == 0 else None)
    for sign, color in PULSE_COLORS.items():  # keyed once, whichever pulses this trial has
        ax.vlines([], 0, 1, color=color, lw=1.8, label=f"input pulse {sign:+d}")
    ax.set_yticks([-offset * c for c in range(inputs.shape[1])],
                  [f"bit {c + 1}" for c in range(inputs.shape[1])])
    ax.set_ylim(-offset * (inputs.shape[1] - 1) - 1.4, 3.0)
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
    for k, color in enumerate(CONTEXT_COLORS):  # stream k is the one context k cues
        lw = 1.3 if k == context else 0.7
        ax_in.plot(t, inputs[:, k], color=color, lw=lw, alpha=1 if k == context else 0.5,
                   label=f"stream {k + 1}" + (" (cued)" if k == context else ""))
    ax_in.set_ylabel("input")
    ax_in.legend(loc="lower left", bbox_to_anchor=(0, 1), fontsize=7, frameon=False, ncols=2)
    ax_out.plot(t, targets[:, 0], color="k", label="target")
    if outputs is not None:
        ax_out.plot(t, outputs[:, 0], color=OUTPUT_COLOR, lw=1, label="output")
    ax_out.set_xlabel("time step")
    ax_out.set_ylabel("integral")
    return ax_in, ax_out

