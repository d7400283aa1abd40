"""Disk cache of fixed-point searches, so that chapters searching the same networks with the
same settings (chapters 5 and 6, on every task) search once.

An entry is one file ``<key>.npz`` under ``fixed_points/`` of the population cache
(:func:`lib.store.default_root`), written atomically with a digest of its arrays (the same
format as a trained shard). The key hashes everything the result depends on: the networks'
parameters and cell, the inputs the visited states come from, the search configuration and
the source of the modules that compute the search. A damaged or stale entry is searched again
and rewritten, never used.
"""
from __future__ import annotations

import hashlib
import warnings
from dataclasses import fields

import numpy as np

from . import fp_kernels, store
from .fp_result import FORMAT_VERSION, FixedPoints

SEARCH_SOURCES = ("fixed_points.py", "fixed_point_solver.py", "fp_result.py", "fp_adapters.py",
                  "cell_jacobians.py", "models.py", "fp_kernels.c")


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


def cached(key: str, search, root=None) -> FixedPoints:
    """The stored result of ``key`` if intact, else ``search()`` stored under it."""
    root = (store.default_root() if root is None else root) / "fixed_points"
    path = root / f"{key}.npz"
    try:
        arrays, _ = store.load_arrays(path, key)
        return FixedPoints(**{f.name: arrays[f.name] for f in fields(FixedPoints)})
    except (store.CacheError, KeyError) as err:
        if path.exists():
            warnings.warn(f"searching again: {err}", stacklevel=2)
    res = search()
    store.save_arrays(path, {f.name: getattr(res, f.name) for f in fields(FixedPoints)},
                      {"key": key})
    return res
