"""What every chapter does first: validate its parameters and set up plotting.

A chapter's ``parameters`` cell reads ``profile`` from ``$RNNBOOK_PROFILE`` (so the whole book
can be built under any profile) and papermill may override it and any other parameter.
"""
from __future__ import annotations

import matplotlib as mpl
import torch

from .checks import check_choice
from .config import PROFILES, population_config
from .tasks import TASKS

TASK_NAMES = tuple(TASKS)
TASK_TITLES = {"flipflop": "3-bit flip-flop", "sine": "Frequency-cued sine wave",
               "cdi": "Context-dependent integration"}


def setup(profile: str, tasks=TASK_NAMES) -> dict:
    """Validate the chapter's profile and task list; return ``{task: PopulationConfig}``."""
    check_choice("profile", profile, PROFILES)
    for t in tasks:
        check_choice("tasks", t, TASK_NAMES)
    torch.manual_seed(0)
    mpl.rcParams.update({"figure.dpi": 110, "savefig.dpi": 110, "axes.spines.top": False,
                         "axes.spines.right": False, "font.size": 9})
    return {t: population_config(profile, t) for t in tasks}
