"""Figure panels, one module per chapter; every function takes an ``ax``, draws, returns it.

The palette below is shared so that an architecture has one colour and an activation one
marker throughout the book.
"""
from __future__ import annotations

import numpy as np

ARCH_COLORS = {"vanilla": "#1f77b4", "ugrnn": "#ff7f0e", "gru": "#2ca02c", "lstm": "#d62728"}
ACT_MARKERS = {"tanh": "o", "relu": "^"}
ACT_COLORS = {"tanh": "#6a3d9a", "relu": "#b15928"}


def colormap(name: str, n: int) -> np.ndarray:
    """``n`` colours [n, 4] evenly spaced along a matplotlib colormap."""
    import matplotlib as mpl
    return mpl.colormaps[name](np.linspace(0.05, 0.95, n))
