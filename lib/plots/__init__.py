"""Figure panels, one module per chapter; every function takes an ``ax``, draws, returns it.

The palettes below are the book's only ones, so that a colour means the same on every page:

- ``ARCH_COLORS``: one colour per architecture (marker per activation, ``ACT_MARKERS``); used for
  architectures only.
- ``STABILITY_COLORS``: a fixed point by its number of unstable modes, the paper's colours
  (stable black, one unstable mode red, two green, three or more blue).
- ``CONTEXT_COLORS``: the two contexts of the integration task (and the stream each one cues),
  chosen apart from the architecture colours so that a trace is never read as an architecture.
- ``CODE_COLORS``: the eight output codes of the 3-bit flip-flop.
"""
from __future__ import annotations

import numpy as np

ARCH_COLORS = {"vanilla": "#1f77b4", "ugrnn": "#ff7f0e", "gru": "#2ca02c", "lstm": "#d62728"}
ACT_MARKERS = {"tanh": "o", "relu": "^"}
ACT_NAMES = {"tanh": "tanh", "relu": "ReLU"}  # as the prose writes them
ACT_COLORS = {"tanh": "#6a3d9a", "relu": "#b15928"}
STABILITY_COLORS = ("#000000", "#e41a1c", "#4daf4a", "#377eb8")  # 0, 1, 2, 3+ unstable modes
STABILITY_LABELS = ("stable", "1 unstable mode", "2 unstable modes", "3+ unstable modes")
CONTEXT_COLORS = ("#1b9e77", "#7570b3")
OUTPUT_COLOR = "#e7298a"  # a network's output drawn against its target
# 3-bit codes ordered ---, --+, ..., +++ (bit 1 most significant): tab10 without its grey.
CODE_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
               "#bcbd22")


def colormap(name: str, n: int) -> np.ndarray:
    """``n`` colours [n, 4] evenly spaced along a matplotlib colormap."""
    import matplotlib as mpl
    return mpl.colormaps[name](np.linspace(0.05, 0.95, n))


def stability_colors(n_unstable) -> list[str]:
    """Colour of each fixed point [M] from its number of unstable modes (3 or more: blue)."""
    last = len(STABILITY_COLORS) - 1
    return [STABILITY_COLORS[min(int(k), last)] for k in np.atleast_1d(n_unstable)]


def stability_legend(target, **kw):
    """Legend of the stability colours on an ``Axes`` or a ``Figure``; ``kw`` go to legend()."""
    from matplotlib.lines import Line2D
    handles = [Line2D([], [], ls="", marker="o", color=c, markeredgecolor="k", markeredgewidth=0.4,
                      label=l) for c, l in zip(STABILITY_COLORS, STABILITY_LABELS)]
    return target.legend(handles=handles, frameon=False, **{"fontsize": 7, **kw})


def network_legend(target, **kw):
    """Key of the architecture colours and activation markers on an ``Axes`` or a ``Figure``."""
    from matplotlib.lines import Line2D
    handles = [Line2D([], [], ls="", marker="o", color=c, markeredgecolor="k", markeredgewidth=0.3,
                      label=a) for a, c in ARCH_COLORS.items()]
    handles += [Line2D([], [], ls="", marker=m, color="0.6", markeredgecolor="k",
                       markeredgewidth=0.3, label=ACT_NAMES[a])
                for a, m in ACT_MARKERS.items()]
    return target.legend(handles=handles, frameon=False, **{"fontsize": 7, **kw})


def code_name(code: int, n_bits: int = 3) -> str:
    """``5`` -> ``"+-+"``: the signs a code's bits hold (bit 1 first)."""
    return "".join("+" if code >> (n_bits - 1 - b) & 1 else "-" for b in range(n_bits))


def code_legend(target, **kw):
    """Key of the eight flip-flop code colours on an ``Axes`` or a ``Figure``."""
    from matplotlib.lines import Line2D
    handles = [Line2D([], [], ls="", marker="o", color=c, label=code_name(k))
               for k, c in enumerate(CODE_COLORS)]
    return target.legend(handles=handles, frameon=False,
                         **{"fontsize": 7, "title": "target code (bits 1-3)", "title_fontsize": 7,
                            **kw})
