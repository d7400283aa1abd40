"""All-pairs reductions of ``A_i^T A_j`` blocks, grouped by size and chunked to a memory budget.

Every representational distance of :mod:`lib.cca` is a function of the cross-products
``G_ij = A_i^T A_j`` [K_i, K_j] of per-network matrices ``A_i`` [M, K_i] whose rows line up.
Networks are grouped by width (or any finer key), and for each pair of groups the blocks are
formed a tile of r x c networks at a time: the r row networks' matrices side by side
[M, r K_a] times the c column networks' [M, c K_b] is one GEMM, reshaped to
[r, c, K_a, K_b] and reduced to numbers by a batched SVD or norm. So a pair costs what its own
sizes cost (padding every network to the largest width, the old way, makes one 256-unit
network slow down every pair of small ones), and ``max_elements`` bounds what a tile holds.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np


def common_rows(mats) -> int:
    """The shared number of samples M of N matrices [M, K_i] (fails if they differ)."""
    rows = {m.shape[0] for m in mats}
    if len(rows) != 1:
        raise ValueError(f"all networks need the same samples (rows); got row counts {sorted(rows)}")
    return rows.pop()


def size_groups(keys) -> list[np.ndarray]:
    """Indices of the networks of each distinct key, keys in order of first appearance."""
    out: dict = {}
    for i, key in enumerate(keys):
        out.setdefault(key, []).append(i)
    return [np.array(v) for v in out.values()]


def plan_tile(n_rows: int, n_cols: int, width_a: int, width_b: int, n_samples: int,
              per_pair: int, max_elements: int) -> tuple[int, int]:
    """Networks (r, c) of one tile so that it holds at most ``max_elements`` numbers.

    A tile holds the gathered operands ``M (r K_a + c K_b)`` and ``r c per_pair`` numbers of
    blocks and their reductions. The tile is made square first (fewest re-gathered column
    operands for its size) and then stretched along whichever side still has networks left.
    A single pair is always allowed, even when it alone exceeds the budget.
    """
    M, p, E = n_samples, per_pair, max_elements
    lin = M * (width_a + width_b)
    t = int((-lin + math.sqrt(lin * lin + 4.0 * p * E)) / (2 * p)) if E > lin + p else 1
    r, c = max(1, min(t, n_rows)), max(1, min(t, n_cols))
    if r < t:  # rows ran out: spend the rest of the budget on columns
        c = max(c, min(n_cols, (E - M * r * width_a) // (r * p + M * width_b)))
    elif c < t:
        r = max(r, min(n_rows, (E - M * c * width_b) // (c * p + M * width_a)))
    return int(r), int(c)


def _gather(mats, idx) -> np.ndarray:
    """[M, len(idx) K] matrices of ``idx`` side by side (a single one is used in place)."""
    return mats[idx[0]] if len(idx) == 1 else np.concatenate([mats[i] for i in idx], axis=1)


def pairwise_blocks(mats: Sequence[np.ndarray], reduce: Callable, max_elements: int = 2 ** 24,
                    keys=None, per_pair: Callable | None = None) -> np.ndarray:
    """``reduce`` applied to every block ``A_i^T A_j``, for all pairs, group by group.

    Parameters
    ----------
    mats : N arrays [M, K_i], the same samples in every one
    reduce : function ``(G, rows, cols) -> values``: blocks G [r, c, K_a, K_b] of the row
        networks ``rows`` [r] and column networks ``cols`` [c] (indices into ``mats``) ->
        values [r, c, ...]
    max_elements : bound on the numbers a tile holds at once (see :func:`plan_tile`)
    keys : group key of each network (default: its width K_i). Networks of one key must have
        the same width; a finer key lets ``reduce`` stack per-network extras of equal shape.
    per_pair : function ``(K_a, K_b) -> numbers`` that one pair's block and ``reduce`` hold
        (default ``2 K_a K_b``: the block and one working copy)

    Returns
    -------
    [N, N, ...] values, symmetric in the first two axes (the pair i < j is computed; the
    value for i > j is copied from it).
    """
    M = common_rows(mats)
    keys = [m.shape[1] for m in mats] if keys is None else list(keys)
    per_pair = per_pair or (lambda a, b: 2 * a * b)
    groups = size_groups(keys)
    out = None
    for ga, rows_all in enumerate(groups):
        for cols_all in groups[ga:]:
            same = cols_all is rows_all
            Ka, Kb = mats[rows_all[0]].shape[1], mats[cols_all[0]].shape[1]
            r, c = plan_tile(len(rows_all), len(cols_all), Ka, Kb, M, per_pair(Ka, Kb),
                             max_elements)
            for i0 in range(0, len(rows_all), r):
                rows = rows_all[i0:i0 + r]
                A = _gather(mats, rows)
                for j0 in range(i0 if same else 0, len(cols_all), c):
                    cols = cols_all[j0:j0 + c]
                    G = (A.T @ _gather(mats, cols)).reshape(len(rows), Ka, len(cols), Kb)
                    vals = np.asarray(reduce(G.transpose(0, 2, 1, 3), rows, cols))
                    if out is None:
                        out = np.zeros((len(mats), len(mats)) + vals.shape[2:])
                    out[np.ix_(rows, cols)] = vals
                    out[np.ix_(cols, rows)] = vals.swapaxes(0, 1)
    iu = np.triu_indices(len(mats), 1)
    out[iu[1], iu[0]] = out[iu]  # exactly symmetric, whichever order a pair was met in
    return out
