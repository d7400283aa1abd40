"""What every chapter does first: validate its parameters and set up plotting.

A chapter's ``parameters`` cell reads ``profile`` from ``$RNNBOOK_PROFILE`` (so the whole book
can be built under any profile) and papermill may override it and any other parameter. The
next cell passes every parameter to the chapter's class in :mod:`lib.parameters` through
:func:`start`, which stops the chapter before any loading or training if one is bad.
"""
from __future__ import annotations

import matplotlib as mpl
import torch

from . import parameters
from .checks import check_choice
from .config import PROFILES, population_config
from .parameters import (CCA, FixedPoints, FixedPointsHowto, Geometry, Tasks, Training,  # noqa: F401
                         Universality)
from .tasks import TASKS

TASK_NAMES = tuple(TASKS)
TASK_TITLES = {"flipflop": "3-bit flip-flop", "sine": "Frequency-cued sine wave",
               "cdi": "Context-dependent integration"}


def start(params: parameters.Chapter) -> parameters.Chapter:
    """Set the chapter's seed and figure style; return its (already validated) parameters."""
    if not isinstance(params, parameters.Chapter):
        raise TypeError(f"start() takes a lib.parameters chapter class, not {type(params).__name__}")
    torch.manual_seed(0)
    mpl.rcParams.update({"figure.dpi": 110, "savefig.dpi": 110, "axes.spines.top": False,
                         "axes.spines.right": False, "font.size": 9})
    return params


def setup(profile: str, tasks=TASK_NAMES) -> dict:
    """Validate a profile and task list; return ``{task: PopulationConfig}`` (older form of
    :func:`start`, for notebooks outside the book)."""
    check_choice("profile", profile, PROFILES)
    for t in tasks:
        check_choice("tasks", t, TASK_NAMES)
    start(parameters.Chapter(profile))
    return {t: population_config(profile, t) for t in tasks}
