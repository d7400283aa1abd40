"""Disk cache of fixed-point searches, so that chapters searching the same networks with the
same settings (chapters 5 and 6, on every task) search once.

An entry is one file ``<key>.npz`` under ``fixed_points/`` of the population cache
(:func:`lib.store.default_root`), written atomically with a digest of its arrays (the same
format as a trained shard). The key hashes everything the result depends on: the networks'
parameters and cell, the inputs the visited states come from, the search configuration and
the source of the modules that compute the search. A damaged or stale entry is searched again
and rewritten, never used.

A :class:`Search` is one such search written down (its key and its arguments) rather than run,
so that :func:`fill` can run a chapter's missing searches in worker processes before the
chapter reads them; the stored results are the same whichever process computed them.
"""
from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from functools import partial
from pathlib import Path

import numpy as np
import torch

from . import fixed_points as fp
from . import fp_kernels, models, store
from .fp_result import FORMAT_VERSION, FixedPoints
from .scale import run_all

SEARCH_SOURCES = ("fixed_points.py", "fixed_point_solver.py", "fp_lm.py", "fp_result.py",
                  "fp_adapters.py", "cell_jacobians.py", "models.py", "fp_kernels.c")


def search_key(spec, params: dict, probe_inputs, config, inputs=None, sources=()) -> str:
    """Content address of the search of networks ``params`` (dict of Tensor [N, ...]) of cell
    ``spec``, whose visited states come from ``probe_inputs`` [B, T, I], under ``config``.

    ``inputs``: the search's constant inputs where they are not all zero ([I] or [N, I]);
    ``sources``: further modules of ``lib`` whose code sets up the search (its starts, say).
    """
    kernels = "C kernels" if fp_kernels.available() else "torch ops"  # differ in the last bits
    h = hashlib.sha256(f"{FORMAT_VERSION}\n{spec}\n{config}\n{kernels}\n".encode())
    h.update(store.digest({k: v.detach().cpu().numpy() for k, v in params.items()}).encode())
    h.update(store.digest({"inputs": np.asarray(probe_inputs)}).encode())
    if inputs is not None:
        h.update(store.digest({"constant inputs": np.asarray(inputs, np.float64)}).encode())
    for name in SEARCH_SOURCES + tuple(sources):
        h.update(name.encode() + (store.LIB / name).read_bytes())
    return h.hexdigest()[:24]


DERIVED = ("left",)  # not stored: the inverse of the stored right eigenvectors, on loading


def cached(key: str, search, root=None) -> FixedPoints:
    """The stored result of ``key`` if intact, else ``search()`` stored under it.

    The left eigenvectors (:data:`DERIVED`; complex, two fifths of a large entry's bytes) are
    not stored but inverted again from the stored right ones on loading, as the search's own
    decomposition computes them (one matrix at a time, so the same numbers).
    """
    root = (store.default_root() if root is None else root) / "fixed_points"
    path = root / f"{key}.npz"
    try:
        arrays, _ = store.load_arrays(path, key)
        return FixedPoints(**{f.name: arrays[f.name] for f in fields(FixedPoints)
                              if f.name not in DERIVED}, left=_left(arrays))
    except (store.CacheError, KeyError) as err:
        if path.exists():
            warnings.warn(f"searching again: {err}", stacklevel=2)
    res = search()
    store.save_arrays(path, {f.name: getattr(res, f.name) for f in fields(FixedPoints)
                             if f.name not in DERIVED}, {"key": key})
    return res


def _left(arrays: dict) -> np.ndarray:
    """Left eigenvectors [M, S, S]: ``inv(right)`` where the stored eigenvalues are finite,
    NaN elsewhere (as :func:`lib.fp_result.classify` leaves them)."""
    R = arrays["right"]
    L = np.full(R.shape, complex("nan"), np.complex128)
    todo = np.isfinite(arrays["eigvals"]).all(-1)
    if todo.any():
        L[todo] = torch.linalg.inv(torch.as_tensor(R[todo])).numpy()
    return L


@dataclass(frozen=True, eq=False)
class Search:
    """A fixed-point search of a shard's networks, not yet run, under its cache key.

    The arguments are those of :func:`lib.fixed_points.find_fixed_points`: ``params`` dict of
    Tensor [N, ...], ``x_star`` [I], [N, I] or [N, B, I], ``visited`` [N, V, S], optional
    ``init`` [N, B, S]. A search that is no plain :func:`find_fixed_points` call (an
    exhaustive reference, say) passes ``run_fn``, a picklable function of no arguments, instead.
    """

    key: str
    spec: models.CellSpec | None = None
    params: dict | None = None
    x_star: np.ndarray | None = None
    visited: torch.Tensor | None = None
    config: fp.FixedPointConfig | None = None
    init: torch.Tensor | None = None
    run_fn: Callable | None = None
    cost: float = 1.0

    def run(self) -> FixedPoints:
        """Search now (no cache)."""
        if self.run_fn is not None:
            return self.run_fn()
        return fp.find_fixed_points(self.spec, self.params, self.x_star, self.visited,
                                    self.config, init=self.init)

    def result(self, root=None) -> FixedPoints:
        """The stored result, searched and stored first if missing or damaged."""
        return cached(self.key, self.run, root)

    @staticmethod
    def of(key: str, spec, params, x_star, visited, config: fp.FixedPointConfig, init=None):
        """A :func:`lib.fixed_points.find_fixed_points` search, with its :func:`cost`."""
        n, b = (init.shape[:2] if init is not None else (visited.shape[0], config.n_init))
        return Search(key, spec, params, x_star, visited, config, init,
                      cost=cost(n * b, visited.shape[-1], config))


def cost(starts: int, state: int, config: fp.FixedPointConfig) -> float:
    """Relative cost of a search, for the order of :func:`fill`: starts x state size squared
    x (1 + Adam budget / 1000)."""
    return float(starts * state ** 2 * (1 + config.adam_iters / 1000))


def fill(searches: Sequence[Search], executor="inprocess", workers: int | None = None,
         root=None) -> int:
    """Run every search whose entry is not in the cache yet, on ``executor`` (see
    :func:`lib.scale.run_all`; ``"processes"``: one worker process per core), costliest first,
    each storing its result; returns how many ran. Searches that share a key run once.
    Afterwards :meth:`Search.result` loads them (and searches again, here, any entry that a
    worker left damaged)."""
    root = Path(store.default_root() if root is None else root)
    todo = {s.key: s for s in searches if not (root / "fixed_points" / f"{s.key}.npz").exists()}
    jobs = sorted(todo.values(), key=lambda s: s.cost, reverse=True)
    run_all(partial(_store, root=str(root)), jobs, executor, workers, progress=False)
    return len(jobs)


def _store(search: Search, root: str) -> str:
    """Run ``search`` into the cache under ``root`` on one thread, as the chapters search (the
    searches are many small ops, and the numbers must not depend on the thread count)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        search.result(Path(root))
    finally:
        torch.set_num_threads(threads)
    return search.key
