"""A trained population: all shards of a :class:`PopulationConfig`, with the inclusion criterion.

>>> pop = load_or_train(population_config("smoke", "flipflop"))   # doctest: +SKIP
>>> pop.table()          # one row per network: settings, test error, diverged, included
>>> for net in pop.included(): ...   # networks that enter the analyses
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pandas as pd

from . import models, store
from .config import PopulationConfig
from .scale import run_all
from .train import ShardResult


@dataclass(frozen=True)
class Network:
    """One trained network, a view into its shard.

    ``params`` holds tensors with a leading network axis of length 1, so every batched
    routine of :mod:`lib.models` applies unchanged.
    """

    shard: ShardResult
    index: int

    @property
    def spec(self) -> models.CellSpec:
        return self.shard.spec

    @property
    def params(self) -> dict:
        return models.select(self.shard.params, [self.index])

    @property
    def label(self) -> str:
        return f"{self.spec.arch}-{self.spec.activation}"


@dataclass(frozen=True)
class Group:
    """Networks of one shard, batched: params [n, ...] in the order of ``nets``."""

    spec: models.CellSpec
    params: dict
    nets: tuple  # the Network objects, in the order of the network axis

    @property
    def label(self) -> str:
        return f"{self.spec.arch}-{self.spec.activation}"


def groups(nets) -> list[Group]:
    """Group networks (e.g. ``pop.included()``) by shard, keeping their order within a shard."""
    by_shard = {}
    for n in nets:
        by_shard.setdefault(id(n.shard), []).append(n)
    return [Group(ns[0].spec, models.select(ns[0].shard.params, [n.index for n in ns]), tuple(ns))
            for ns in by_shard.values()]


class EmptyPopulationError(ValueError):
    """No network of a population passed the inclusion criterion."""


@dataclass
class Population:
    """Trained shards of one population configuration, in the configuration's shard order."""

    config: PopulationConfig
    shards: list

    def table(self) -> pd.DataFrame:
        """One row per network: architecture, settings, test NMSE, diverged, included."""
        rows = []
        for i, sh in enumerate(self.shards):
            for j, net in enumerate(sh.config.nets):
                rows.append(dict(shard=i, index=j, arch=sh.config.arch,
                                 activation=sh.config.activation, n_hidden=sh.config.n_hidden,
                                 lr=net.lr, l2=net.l2, clip=net.clip, seed=net.seed,
                                 nmse=float(sh.nmse[j]), diverged=bool(sh.diverged[j])))
        df = pd.DataFrame(rows)
        df["included"] = ~df.diverged & (df.nmse <= self.config.max_nmse)
        df["label"] = df.arch + "-" + df.activation
        return df

    def included(self) -> list[Network]:
        """The networks that enter the analyses (not diverged, NMSE <= ``max_nmse``).

        Raises :class:`EmptyPopulationError` when there is none: every analysis needs at
        least one network, and this is the one place that says so.
        """
        df = self.table()
        self._require_included(df)
        df = df[df.included]
        return [Network(self.shards[s], int(j)) for s, j in zip(df["shard"], df["index"])]

    def _require_included(self, df: pd.DataFrame) -> None:
        if df.included.any():
            return
        c = self.config
        raise EmptyPopulationError(
            f"no network of the {c.task} population passed the inclusion criterion "
            f"(not diverged, test NMSE <= max_nmse={c.max_nmse:g}): {len(df)} trained, "
            f"{int(df.diverged.sum())} diverged, {int((~df.diverged).sum())} failed "
            f"(best NMSE {df.nmse.min():.3g}); train longer or raise max_nmse")

    def counts(self) -> pd.DataFrame:
        """Trained, diverged, failed and included networks per architecture x activation."""
        df = self.table()
        df["failed"] = ~df.diverged & ~df.included
        return (df.groupby(["arch", "activation"], sort=False)
                  .agg(trained=("seed", "size"), diverged=("diverged", "sum"),
                       failed=("failed", "sum"), included=("included", "sum")))


# glibc's allocator settings for training workers, read by glibc when a process starts (so
# they are set in the environment the worker is spawned with, never in this process). By
# default glibc hands every large autograd buffer back to the OS and page-faults it in again
# on the next step; keeping them mapped trained 1.4-1.6x faster at >= 64 networks a shard,
# with bit-identical numbers. The three belong together: a high trim threshold alone was
# 2.5x slower.
TRAINING_WORKER_ENV = {"MALLOC_MMAP_THRESHOLD_": "4294967296",
                       "MALLOC_TRIM_THRESHOLD_": "68719476736",
                       "MALLOC_TOP_PAD_": "1073741824"}


def _train_into_store(cfg, root: str, device: str) -> str:
    store.load_or_train_shard(cfg, root, device=device)
    return store.shard_key(cfg, device)


def flops_per_network_step(arch: str, n_in: int, n_hidden: int, n_out: int, batch: int,
                           n_time: int) -> float:
    """Matmul FLOPs of one training step of one network (a batch of ``batch`` trials of
    ``n_time`` steps): every time step multiplies the state by the recurrent weights [H, G],
    the input by [I, G] and the state by the readout [H, O] (G = gate blocks x H), and the
    backward pass costs about twice the forward: ``3 x 2 B T (H G + I G + H O)``. Elementwise
    work (gates, activations, Adam) is left out."""
    G = models.N_BLOCKS[arch] * n_hidden
    return 3 * 2 * batch * n_time * (n_hidden * G + n_in * G + n_hidden * n_out)


def shard_flops(cfg) -> float:
    """Matmul FLOPs of training a whole shard: networks x steps x :func:`flops_per_network_step`."""
    task = cfg.make_task()
    per = flops_per_network_step(cfg.arch, task.n_in, cfg.n_hidden, task.n_out, cfg.batch_size,
                                 task.n_time)
    return per * len(cfg.nets) * cfg.n_steps


def load_or_train(config: PopulationConfig, executor="inprocess", workers: int | None = None,
                  root: str | Path | None = None, progress: bool = True,
                  device: str = "cpu", on_shard: Callable | None = None) -> Population:
    """Load every shard of ``config`` from the cache, training the missing ones first.

    Missing shards are trained on ``executor`` (see :func:`lib.scale.run_all`); workers write
    to the store and the results are then read back from it, so every executor yields the same
    arrays. Worker processes start with :data:`TRAINING_WORKER_ENV`. ``device="auto"`` trains
    on a GPU when one is present (stored apart from CPU results, whose last bits differ).
    ``on_shard(cfg)`` is called with each missing :class:`~lib.config.ShardConfig` as soon as
    it is trained and stored. See :func:`train_missing`.
    """
    root = Path(root) if root is not None else store.default_root()
    loaded = train_missing([config], executor, workers, root, progress, device, on_shard)[0]
    return Population(config, [res if res is not None else
                               store.load_or_train_shard(c, root, device=device)
                               for c, res in zip(config.shards(), loaded)])


def train_missing(configs, executor="inprocess", workers: int | None = None,
                  root: str | Path | None = None, progress: bool = True, device: str = "cpu",
                  on_shard: Callable | None = None) -> list[list]:
    """Train the missing shards of several populations (one per task, say) in one pool.

    Every shard of ``configs`` is first loaded with verification, so corrupt or foreign files
    count as missing and are rebuilt on the executor like any missing shard. The missing ones
    are handed out costliest first (:func:`shard_flops`) across all the populations: with a few
    workers, a long shard handed out last would finish alone, and one pool for every task
    leaves no worker idle at the end of a task. ``on_shard(cfg)`` is called with each missing
    shard as soon as it is trained and stored (``tools/train.py`` drives its progress bars
    with it). Returns, per config, the shards that were already stored (a
    :class:`lib.train.ShardResult`, or None where it was trained here).
    """
    root = Path(root) if root is not None else store.default_root()
    loaded = [[store.try_load(c, root, device) for c in config.shards()] for config in configs]
    missing = sorted((c for config, got in zip(configs, loaded)
                      for c, res in zip(config.shards(), got) if res is None),
                     key=shard_flops, reverse=True)
    if missing:
        done = None if on_shard is None else (lambda i: on_shard(missing[i]))
        desc = "training " + ", ".join(dict.fromkeys(c.task for c in missing))
        run_all(partial(_train_into_store, root=str(root), device=device), missing, executor,
                workers, progress, desc=desc, on_done=done, env=TRAINING_WORKER_ENV)
    return loaded


def missing_shards(config: PopulationConfig, root: str | Path | None = None,
                   device: str = "cpu") -> list:
    """The shards of ``config`` with no file in the cache under ``root``, in shard order.

    A quick look for ``tools/train.py``'s count: :func:`load_or_train` also verifies each file
    and retrains corrupt ones.
    """
    root = Path(root) if root is not None else store.default_root()
    return [c for c in config.shards() if not (root / f"{store.shard_key(c, device)}.npz").exists()]
