"""Frozen configurations of trained populations, and the three profiles.

A :class:`PopulationConfig` describes a whole population for one task (the grid of
architectures, activations, sizes and hyperparameters, and how long to train). It splits into
independent :class:`ShardConfig` units (one architecture x activation x size x block of
networks), which are what is trained, cached and distributed.
"""
from __future__ import annotations

import json
import zlib
from dataclasses import asdict, dataclass, field, fields, replace
from itertools import product

from .checks import MAX_SEED, Choice, Int, ListOf, Real, check_choice, check_choices, gather
from .models import ACTIVATIONS, ARCHS
from .tasks import TASKS, make_task

PROFILES = ("smoke", "default", "paper")


@dataclass(frozen=True)
class NetSettings:
    """Hyperparameters of one network: learning rate, L2 strength, gradient clip, seed."""

    lr: float
    l2: float
    clip: float
    seed: int


@dataclass(frozen=True)
class ShardConfig:
    """One trainable unit: networks of one architecture, activation and size on one task."""

    task: str
    task_overrides: tuple
    arch: str
    activation: str
    n_hidden: int
    nets: tuple
    n_steps: int
    batch_size: int
    lr_decay: float
    eval_batch: int

    def to_json(self) -> str:
        """Canonical JSON (sorted keys): the identity of the shard in the cache."""
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    def make_task(self):
        return make_task(self.task, **dict(self.task_overrides))


@dataclass(frozen=True)
class PopulationConfig:
    """A population of networks trained on one task.

    Every combination of ``archs x activations x hidden_sizes x lrs x l2s x clips`` is trained
    from ``n_seeds`` seeds. Networks whose normalised test error (MSE / target variance) is
    at most ``max_nmse`` enter the analyses (the inclusion criterion).

    Per-cell exceptions, as the paper chose hyperparameters per configuration:
    ``cell_lrs`` ``((arch, activation, lr), ...)`` trains that architecture x activation at
    ``lr`` instead of ``lrs``; ``cell_steps`` ``((arch, activation, steps), ...)`` trains it
    for ``steps`` instead of ``n_steps``.
    """

    task: str = "flipflop"
    archs: tuple = ARCHS
    activations: tuple = ACTIVATIONS
    hidden_sizes: tuple = (32,)
    lrs: tuple = (1e-2,)
    l2s: tuple = (1e-5, 1e-4)
    clips: tuple = (1.0,)
    n_seeds: int = 4
    n_steps: int = 1000
    batch_size: int = 32
    lr_decay: float = 0.1
    eval_batch: int = 128
    shard_size: int = 16
    max_nmse: float = 0.1
    seed: int = 0
    task_overrides: tuple = field(default=())
    cell_lrs: tuple = field(default=())
    cell_steps: tuple = field(default=())

    def __post_init__(self):
        # every field at once, so one run reports every bad value; lists come back as tuples
        rules = _POPULATION_RULES
        values = gather([lambda n=n: rules[n](n, getattr(self, n)) for n in rules])
        for name, value in zip(rules, values):
            object.__setattr__(self, name, value)
        if self.n_networks > MAX_NETWORKS:
            raise ValueError(f"the {self.task} population has {self.n_networks} networks; at most "
                             f"{MAX_NETWORKS} are allowed (fewer seeds or a smaller grid)")
        make_task(self.task, **dict(self.task_overrides))  # validates the overrides

    def net_settings(self, arch: str, activation: str, n_hidden: int) -> list[NetSettings]:
        """Every network of one cell of the grid, with a seed derived from its description."""
        out = []
        lrs = self.cell_value(self.cell_lrs, arch, activation, self.lrs)
        for lr, l2, clip, k in product(lrs, self.l2s, self.clips, range(self.n_seeds)):
            name = f"{self.seed}/{self.task}/{arch}/{activation}/{n_hidden}/{lr}/{l2}/{clip}/{k}"
            out.append(NetSettings(float(lr), float(l2), float(clip), zlib.crc32(name.encode())))
        return out

    def shards(self) -> list[ShardConfig]:
        """The independent training units, in a fixed order."""
        out = []
        for arch, act, n_hidden in product(self.archs, self.activations, self.hidden_sizes):
            nets = self.net_settings(arch, act, n_hidden)
            for i in range(0, len(nets), self.shard_size):
                out.append(ShardConfig(
                    self.task, tuple(self.task_overrides), arch, act, int(n_hidden),
                    tuple(nets[i:i + self.shard_size]),
                    self.cell_value(self.cell_steps, arch, act, self.n_steps), self.batch_size,
                    self.lr_decay, self.eval_batch))
        return out

    @staticmethod
    def cell_value(table: tuple, arch: str, activation: str, default):
        """The value of ``table`` (``cell_lrs`` or ``cell_steps``) for one cell, else ``default``."""
        for a, f, value in table:
            if (a, f) == (arch, activation):
                return (value,) if isinstance(default, tuple) else value
        return default

    @property
    def max_steps(self) -> int:
        """The longest training of any cell (``n_steps`` or a ``cell_steps`` entry)."""
        return max([self.n_steps] + [n for _, _, n in self.cell_steps])

    @property
    def n_networks(self) -> int:
        cells = len(self.archs) * len(self.activations) * len(self.hidden_sizes)
        return cells * len(self.lrs) * len(self.l2s) * len(self.clips) * self.n_seeds


MAX_HIDDEN = 4096  # largest hidden size; also the largest SVCCA k a chapter accepts
MAX_NETWORKS = 1_000_000


def _choices(allowed):
    def rule(name, value):
        check_choices(name, value, allowed)
        return ListOf(Choice(tuple(allowed)))(name, value)
    return rule


def _overrides(name, value):
    ok = isinstance(value, (tuple, list)) and all(
        isinstance(p, (tuple, list)) and len(p) == 2 and isinstance(p[0], str) for p in value)
    if not ok:
        raise ValueError(f"{name}={value!r} must be a list of (task parameter, value) pairs")
    return tuple(tuple(p) for p in value)


def _cells(rule):
    """Per-cell settings: a list of (architecture, activation, value), value checked by ``rule``."""
    def check(name, value):
        if not isinstance(value, (tuple, list)) or not all(
                isinstance(e, (tuple, list)) and len(e) == 3 for e in value):
            raise ValueError(f"{name}={value!r} must be a list of (architecture, activation, "
                             "value) triples")
        out = []
        for arch, act, v in value:
            check_choice(f"{name} architecture", arch, ARCHS)
            check_choice(f"{name} activation", act, ACTIVATIONS)
            out.append((arch, act, rule(f"{name} value for {arch}-{act}", v)))
        if len({(a, f) for a, f, _ in out}) < len(out):
            raise ValueError(f"{name}={value!r} names a cell twice")
        return tuple(out)
    return check


# Bounds are generous (the paper profile is far inside them) but finite: a typo such as
# n_seeds=100000 stops at once instead of running for hours.
_POPULATION_RULES = {
    "task": Choice(tuple(TASKS)),
    "archs": _choices(ARCHS),
    "activations": _choices(ACTIVATIONS),
    "hidden_sizes": ListOf(Int(1, MAX_HIDDEN)),
    "lrs": ListOf(Real(0.0, 1e6, low_open=True)),
    "l2s": ListOf(Real(0.0, 1e3)),
    "clips": ListOf(Real(0.0, 1e6, low_open=True)),
    "n_seeds": Int(1, 10_000),
    "n_steps": Int(1, 10_000_000),
    "batch_size": Int(1, 65_536),
    "lr_decay": Real(1e-6, 1.0),
    "eval_batch": Int(1, 65_536),
    "shard_size": Int(1, 10_000),
    "max_nmse": Real(0.0, 1e3, low_open=True, why="normalised test error of included networks"),
    "seed": Int(0, MAX_SEED),
    "task_overrides": _overrides,
    "cell_lrs": _cells(Real(0.0, 1e6, low_open=True)),
    "cell_steps": _cells(Int(1, 10_000_000)),
}


# Per-task settings of each profile: trial lengths and training length that fit the budget.
_PROFILES = {
    "smoke": dict(
        common=dict(hidden_sizes=(8,), n_seeds=2, l2s=(1e-4,), n_steps=30, batch_size=8,
                    eval_batch=16, max_nmse=10.0),
        flipflop=dict(task_overrides=(("n_time", 20),)),
        sine=dict(task_overrides=(("n_time", 30), ("n_freqs", 11))),
        cdi=dict(task_overrides=(("n_time", 20),)),
    ),
    # 16 networks per architecture x activation (8 seeds x 2 L2 strengths) at hidden size 32:
    # what two CPU cores train in a few minutes; the sine wave, the slowest to learn, trains longest.
    # Three sine cells have their own settings (chapter 2 gives the reasons and the counts):
    # at lr 1e-2 the ReLU LSTM diverged in 7 of 16 networks and vanilla tanh networks sat on a
    # plateau for most of training; vanilla ReLU networks were still learning at step 2000.
    "default": dict(
        common=dict(n_seeds=8),
        flipflop=dict(),
        sine=dict(n_steps=2000, cell_lrs=(("vanilla", "tanh", 3e-3), ("lstm", "relu", 7e-4)),
                  cell_steps=(("vanilla", "relu", 8000), ("lstm", "relu", 5000))),
        cdi=dict(),
    ),
    # The paper's grid: 4 architectures x 2 activations x 3 sizes x 4 L2 strengths = 96
    # configurations per task, one learning rate and clip (the paper tuned them per
    # configuration; chosen here, not tuned at this scale), 12 seeds: 1152 networks per task,
    # 3456 in all; trials of 100 steps (sine 200, for several periods of the slowest
    # frequency), batches of 64, 8000 steps. Sized with benchmarks/paper_cost.py: 1.0e17
    # matmul FLOPs (most at H = 256), about 2.9 h on one H100-class GPU at an assumed
    # sustained 10 TFLOP/s FP32 (~15 % of its peak; not measured), against ~25 days on 2 CPU
    # cores at the measured rate. A shard is one architecture x activation x size cell (48
    # networks): big batched matmuls for a GPU, near the CPU's best shard size (~64).
    "paper": dict(
        common=dict(hidden_sizes=(64, 128, 256), l2s=(1e-5, 1e-4, 1e-3, 1e-2),
                    lrs=(3e-3,), clips=(1.0,), n_seeds=12, n_steps=8000,
                    batch_size=64, eval_batch=256, shard_size=48),
        flipflop=dict(task_overrides=(("n_time", 100),)),
        sine=dict(task_overrides=(("n_time", 200),)),
        cdi=dict(task_overrides=(("n_time", 100),)),
    ),
}


def population_config(profile: str, task: str, **overrides) -> PopulationConfig:
    """The population of ``task`` under ``profile``; keyword overrides win over the profile.

    >>> population_config("smoke", "flipflop").n_networks
    16
    """
    check_choice("profile", profile, PROFILES)
    check_choice("task", task, TASKS)
    known = {f.name for f in fields(PopulationConfig)} - {"task"}
    for key in overrides:
        check_choice("population parameter", key, sorted(known))
    settings = {**_PROFILES[profile]["common"], **_PROFILES[profile][task], **overrides}
    return replace(PopulationConfig(task=task), **settings)
