"""The parameters of each chapter, validated together before any loading or training.

A chapter's ``parameters`` cell holds plain values (papermill overrides them); its first code
cell passes them all to one of these frozen dataclasses. ``__post_init__`` checks every value
at once (type, finiteness, bounds stated in the message, non-empty lists, orderings) and
reports every failure in one ``ValueError`` that names the parameter, the value and what is
allowed. Bounds that depend on the networks (SVCCA k against the hidden sizes, frequency
strides against the sine task's frequencies) come from the profile's
:class:`~lib.config.PopulationConfig`, so they are checked before a population is loaded.
``None`` is a documented "derive it" value; ``0`` is never a silent default.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from functools import cached_property

from . import scale
from .checks import (MAX_SEED, Choice, Int, ListOf, Maybe, Real, check_order, gather)
from .config import MAX_HIDDEN, PROFILES, population_config
from .dynamics import search_configs
from .tasks import TASKS, make_task
from .topology import OrbitConfig

MAX_PERM = 100_000  # label permutations of a p-value (cost grows linearly)
MAX_N_INIT = 10_000  # initial states per network of a fixed-point search
MAX_ITERS = 100_000  # Adam iterations of a search, orbit steps
MAX_Q = 1e-2  # thresholds on q = |F(s) - s|^2 / 2: above this a point is not slow at all
SEED = Int(0, MAX_SEED)
Q_TOL = Real(0.0, MAX_Q, low_open=True, why="a threshold on q")


@dataclass(frozen=True)
class Chapter:
    """Common part: the profile, and the population configurations it implies."""

    profile: str

    def __post_init__(self):
        Choice(PROFILES)("profile", self.profile)  # every other bound depends on it
        rules = self.rules()
        names = [f.name for f in fields(self) if f.name != "profile"]
        values = gather([lambda n=n: rules[n](n, getattr(self, n)) for n in names])
        for name, value in zip(names, values):
            object.__setattr__(self, name, value)  # normalised: lists become tuples
        gather(self.relations())

    def rules(self) -> dict:
        return {}

    def relations(self) -> list:
        """Checks between parameters, run once each parameter is valid on its own."""
        return []

    @cached_property
    def configs(self) -> dict:
        """{task: PopulationConfig} of the profile, in the book's task order."""
        return {t: population_config(self.profile, t) for t in TASKS}

    def task(self, name: str):
        return make_task(name, **dict(self.configs[name].task_overrides))

    @property
    def min_hidden(self) -> int:
        return min(min(c.hidden_sizes) for c in self.configs.values())

    @property
    def n_freqs(self) -> int:
        return self.task("sine").n_freqs

    def n_probe(self, name: str) -> int:
        return len(self.task(name).probe().inputs)


def _svcca_k(chapter: Chapter) -> Maybe:
    return Maybe(Int(1, chapter.min_hidden, "the smallest hidden size: no network's states "
                                            "have more directions"))


def _default_k(chapter) -> int:
    return chapter.svcca_k if chapter.svcca_k is not None else max(1, min(10, chapter.min_hidden // 2))


@dataclass(frozen=True)
class Tasks(Chapter):
    """Chapter 1."""

    example_seed: int
    n_sine_examples: int

    def rules(self):
        return dict(example_seed=SEED, n_sine_examples=Int(1, self.n_freqs, "command frequencies"))


@dataclass(frozen=True)
class Training(Chapter):
    """Chapter 2."""

    executor: str
    curve_window: int
    n_sine_examples: int
    n_cdi_examples: int

    def rules(self):
        steps = min(c.n_steps for c in self.configs.values())
        return dict(executor=Choice(scale.EXECUTORS),
                    curve_window=Int(1, steps, "training steps under this profile"),
                    n_sine_examples=Int(1, self.n_freqs, "command frequencies"),
                    n_cdi_examples=Int(1, self.n_probe("cdi"), "probe trials"))


@dataclass(frozen=True)
class Geometry(Chapter):
    """Chapter 3."""

    n_lines: int

    def rules(self):
        most = min(self.n_probe("flipflop"), self.n_probe("cdi"))
        return dict(n_lines=Int(1, most, "probe trials"))


VARIANCE_RULES = ListOf(Real(0.0, 1.0, low_open=True, high_open=True,
                             why="a fraction of the variance"), max_len=10)


class _SVCCA:
    """SVCCA settings shared by chapters 4 and 6 (``svcca_k``, ``variance_rules``)."""

    @property
    def k(self) -> int:
        """SVCCA dimensions: ``svcca_k``, or min(10, half the smallest hidden size)."""
        return _default_k(self)

    @property
    def svcca_rules(self) -> dict:
        """{name: k or variance fraction}: every SVCCA rule the claims are judged under."""
        return svcca_rules(self.k, self.variance_rules)


@dataclass(frozen=True)
class CCA(_SVCCA, Chapter):
    """Chapter 4."""

    svcca_k: int | None
    k_max: int
    variance_rules: tuple
    n_perm: int
    seed: int

    def rules(self):
        return dict(svcca_k=_svcca_k(self), k_max=Int(1, MAX_HIDDEN),
                    variance_rules=VARIANCE_RULES, n_perm=Int(1, MAX_PERM), seed=SEED)


def svcca_rules(k: int, variance_rules) -> dict:
    """{name: k} for a fixed k and each variance fraction (Raghu et al.'s rule keeps 99 %)."""
    return {f"k = {k}": k, **{f"{100 * v:g}% of variance": float(v) for v in variance_rules}}


@dataclass(frozen=True)
class FixedPoints(Chapter):
    """Chapter 5."""

    n_init: int
    tol_fixed: float
    tol_keep: float
    sine_freq_stride: int
    cdi_tol_keep: float
    recall_per_cell: int
    executor: str

    def rules(self):
        return dict(n_init=Int(1, MAX_N_INIT), tol_fixed=Q_TOL, tol_keep=Q_TOL,
                    sine_freq_stride=Int(1, self.n_freqs, "command frequencies"),
                    cdi_tol_keep=Q_TOL, recall_per_cell=Int(1, 100, "networks per cell"),
                    executor=Choice(scale.EXECUTORS))

    def relations(self):
        return [lambda: check_order("tol_fixed", self.tol_fixed, "tol_keep", self.tol_keep),
                lambda: self.search]

    @property
    def search(self) -> dict:
        """{task: FixedPointConfig}: the book's searches (:func:`lib.dynamics.search_configs`)."""
        return search_configs(self.n_init, self.tol_fixed, self.tol_keep, self.cdi_tol_keep)


@dataclass(frozen=True)
class FixedPointsHowto(Chapter):
    """The how-to page: fixed points of a user's own torch.nn.GRU."""

    n_steps: int | None

    def rules(self):
        return dict(n_steps=Maybe(Int(1, MAX_ITERS)))

    @property
    def steps(self) -> int:
        """Training steps: ``n_steps``, or 150 under smoke and 600 otherwise."""
        return self.n_steps if self.n_steps is not None else (150 if self.profile == "smoke" else 600)


@dataclass(frozen=True)
class Universality(_SVCCA, Chapter):
    """Chapter 6."""

    svcca_k: int | None
    variance_rules: tuple
    n_init: int
    sine_freq_stride: int
    cdi_tol_keep: float
    cdi_tol_grid: tuple
    adam_iters: int | None
    sine_check_per_cell: int
    orbit_steps: int
    orbit_eps: float
    n_perm: int
    seed: int
    executor: str

    def rules(self):
        return dict(svcca_k=_svcca_k(self), variance_rules=VARIANCE_RULES,
                    n_init=Int(1, MAX_N_INIT),
                    sine_freq_stride=Int(1, self.n_freqs, "command frequencies"),
                    cdi_tol_keep=Q_TOL, cdi_tol_grid=ListOf(Q_TOL, max_len=20),
                    adam_iters=Maybe(Int(1, MAX_ITERS)),
                    sine_check_per_cell=Int(0, 1000, "(network, command) pairs per cell"),
                    orbit_steps=Int(1, MAX_ITERS),
                    orbit_eps=Real(0.0, 1.0, low_open=True, why="state units"),
                    n_perm=Int(1, MAX_PERM), seed=SEED, executor=Choice(scale.EXECUTORS))

    def relations(self):
        return [lambda: self.orbit, lambda: self.search]

    @property
    def search(self) -> dict:
        """{task: FixedPointConfig}: the same searches as chapter 5 (``adam_iters`` None: the
        search's default budget)."""
        return search_configs(self.n_init, cdi_tol_slow=self.cdi_tol_keep, adam_iters=self.adam_iters)

    @property
    def cdi_grid(self) -> dict:
        """{threshold: FixedPointConfig}: the integration search at each slow-point threshold
        of ``cdi_tol_grid`` (the sensitivity analysis)."""
        return {tol: search_configs(self.n_init, cdi_tol_slow=tol, adam_iters=self.adam_iters)["cdi"]
                for tol in self.cdi_tol_grid}

    @property
    def orbit(self) -> OrbitConfig:
        return OrbitConfig(eps=self.orbit_eps, n_steps=self.orbit_steps)
