"""How many fixed points a search finds: networks with known points, an exhaustive reference
search and recall against either.

*Known points.* A vanilla tanh network whose k "bit" units excite themselves with weight
w > 1 (each alone has the fixed points -a, 0, +a with a = tanh(w a)) and whose other units form
a contracting random block with zero bias (optionally driven by the bits, ``coupling`` > 0:
feed-forward, so the block still has one fixed point per pattern of bits): exactly 3^k fixed
points, and the number of
unstable modes of a point is the number of its bits at 0. The units are then permuted at
random, so that nothing is axis-aligned in the order the search sees them (a permutation keeps
every point exact).
"""
from __future__ import annotations

from dataclasses import replace
from functools import partial
from itertools import product

import numpy as np
import pandas as pd
import torch

from . import fp_cache, models
from .fixed_points import CellMap, FixedPointConfig, FixedPoints, find, union
from .fp_result import ISOLATED, isolated  # noqa: F401  (public here too)
from .population import groups


def known_network(n: int = 64, k: int = 3, w: float = 2.0, seed: int = 0, rho: float = 0.5,
                  coupling: float = 0.0):
    """A vanilla tanh network with exactly 3^k known fixed points.

    Parameters
    ----------
    n : units; k : bistable units; w : their self-weight (> 1); rho : spectral norm of the
    contracting block; coupling : scale of the bits' drive into the block (0: none; with a
    drive, q-descent from random starts in the box drags the bits towards 0); seed : weights and
    permutation.

    Returns
    -------
    spec, params ([1, ...], input weights zero), points [3^k, n] float64 and n_unstable [3^k].
    """
    rng = np.random.default_rng(seed)
    a = 1.0
    for _ in range(200):  # a = tanh(w a), the positive root, by fixed-point iteration
        a = np.tanh(w * a)
    m = n - k
    Bm = rng.normal(size=(m, m))
    Bm *= rho / np.linalg.norm(Bm, 2)
    C = coupling * rng.normal(size=(m, k)) / np.sqrt(k)
    # the cell stores float32 weights: compute the points for exactly those weights
    Bm, C = Bm.astype(np.float32).astype(np.float64), C.astype(np.float32).astype(np.float64)
    W = np.zeros((n, n))  # acting as s' = tanh(W s): row i is unit i's input weights
    W[:k, :k] = w * np.eye(k)
    W[k:, k:], W[k:, :k] = Bm, C
    bits = np.array(list(product((-a, 0.0, a), repeat=k)))  # [3^k, k]
    z = np.zeros((len(bits), m))
    for _ in range(2000):  # the block's unique fixed point for each bit pattern (contraction)
        z = np.tanh(z @ Bm.T + bits @ C.T)
    pts = np.concatenate([bits, z], 1)
    perm = rng.permutation(n)
    P = np.eye(n)[perm]  # s_new = P s
    Wp, pts = P @ W @ P.T, pts @ P.T
    spec = models.CellSpec("vanilla", "tanh", n_in=1, n_hidden=n, n_out=1)
    params = models.init_params(spec, [seed])
    params["W"] = torch.as_tensor(Wp.T, dtype=torch.float32)[None]  # models use s @ W
    params["U"] = torch.zeros_like(params["U"])
    params["b"] = torch.zeros_like(params["b"])
    return spec, params, pts, (bits == 0).sum(1)


def recall(found: FixedPoints, ref_points, ref_net, tol: float = 1e-3, mask=None):
    """Fraction of reference points that ``found`` recovers, per network.

    Parameters
    ----------
    found : the search's result (``mask`` [M]: which of its points count, default all).
    ref_points : [R, S] reference points; ref_net : [R] their network.
    tol : a reference point is recovered when a found point of its network lies within tol.

    Returns
    -------
    recall : [N] per network (nan where the reference has no point), hit : [R] bool, and
    extra : [M] bool, found points with no reference point within tol (spurious or new).
    """
    ref_points, ref_net = np.asarray(ref_points), np.asarray(ref_net)
    keep = np.ones(len(found), bool) if mask is None else np.asarray(mask)
    pts, net = found.points[keep], found.net[keep]
    hit = np.zeros(len(ref_points), bool)
    extra = np.zeros(len(found), bool)
    n_nets = max(found.n_nets, int(ref_net.max(initial=-1)) + 1)
    out = np.full(n_nets, np.nan)
    for i in range(n_nets):
        r, f = np.flatnonzero(ref_net == i), np.flatnonzero(net == i)
        d = torch.cdist(torch.as_tensor(ref_points[r], dtype=torch.float64),
                        torch.as_tensor(pts[f], dtype=torch.float64)).numpy()
        hit[r] = (d < tol).any(1) if len(f) else False
        extra[np.flatnonzero(keep)[f]] = ~(d < tol).any(0) if len(r) else True
        if len(r):
            out[i] = hit[r].mean()
    return out, hit, extra


# The least of the reference's budgets and the broadest of its start designs: a leaner search
# is measured against the same reference, not against a reference that shrank with it.
REFERENCE_FLOOR = dict(n_init=1024, adam_iters=200, newton_iters=200, stall_iters=20,
                       max_midpoints=2048, wide_noise=2.0)
REFERENCE_STEPS = (0.03, 0.3, 1.0, 2.0)


def reference_config(config: FixedPointConfig = FixedPointConfig()) -> FixedPointConfig:
    """A deliberately exhaustive version of ``config``: 4x the starts, 5x the Adam budget,
    twice the polish and twice its patience, wide starts at least twice the visited spread
    (each at least its ``REFERENCE_FLOOR``), up to three rounds of midpoint and neighbour
    starts (4x as many, with ``REFERENCE_STEPS`` added to the neighbour steps), no shortcut
    onto known points (tol_reach 0)."""
    more = dict(n_init=4 * config.n_init, adam_iters=5 * config.adam_iters,
                newton_iters=2 * config.newton_iters, stall_iters=2 * config.stall_iters,
                max_midpoints=4 * config.max_midpoints, wide_noise=config.wide_noise)
    steps = tuple(sorted(set(config.neighbour_steps) | set(REFERENCE_STEPS)))
    return replace(config, **{k: max(v, REFERENCE_FLOOR[k]) for k, v in more.items()},
                   tol_adam=min(config.tol_adam, 1e-10), tol_reach=0.0, midpoint_rounds=3,
                   neighbour_steps=steps)


NOISES = (0.25, 0.5, 1.0, 2.0)  # start noise scales of the exhaustive reference


def exhaustive(F, visited, config: FixedPointConfig = FixedPointConfig(), inputs=None,
               noises=NOISES) -> FixedPoints:
    """Reference search: the union of :func:`reference_config` searches from the visited
    states at several noise scales and from the box around the visited states (widened by a
    quarter of its size on every side), each with its midpoint rounds.

    visited : [N, V, S]; inputs : one input per network ([I] or [N, I]) or None.
    """
    cfg = reference_config(config)
    ref = torch.as_tensor(np.asarray(visited), dtype=torch.float64)
    out = None
    for j, noise in enumerate(noises):
        res = find(F, ref, replace(cfg, init_noise=noise, seed=cfg.seed + j), inputs=inputs)
        out = res if out is None else union(out, res, cfg.tol_unique)
    g = torch.Generator().manual_seed(cfg.seed + 100)
    lo, hi = ref.amin(1, keepdim=True), ref.amax(1, keepdim=True)
    u = torch.rand(ref.shape[0], cfg.n_init, ref.shape[2], generator=g, dtype=ref.dtype)
    box = lo - 0.25 * (hi - lo) + 1.5 * (hi - lo) * u
    return union(out, find(F, ref, cfg, inputs=inputs, starts=box), cfg.tol_unique)


def reference_search(spec: models.CellSpec, params: dict, visited, config: FixedPointConfig,
                     x_star) -> fp_cache.Search:
    """:func:`exhaustive` for ``config`` on the networks ``params`` (dict of Tensor [N, ...]),
    started from ``visited`` [N, V, S] under the constant input ``x_star`` [I], as a cached
    :class:`lib.fp_cache.Search` (keyed by the visited states themselves and this module's
    source too)."""
    vis = torch.as_tensor(np.asarray(visited))
    x = np.asarray(x_star, float)
    key = "ref-" + fp_cache.search_key(spec, params, vis.numpy(), reference_config(config),
                                       inputs=x, sources=("fp_recall.py",))
    run = partial(exhaustive, CellMap(spec, params), vis, config, inputs=x)
    searches = len(NOISES) + 1  # exhaustive's searches: one per noise scale, one in the box
    cost = searches * fp_cache.cost(vis.shape[0] * reference_config(config).n_init,
                                    vis.shape[-1], reference_config(config))
    return fp_cache.Search(key, run_fn=run, cost=cost)


def reference_searches(nets, x_star, visited_of, config: FixedPointConfig,
                       per_cell: int = 1) -> list[fp_cache.Search]:
    """The exhaustive references that :func:`population_recall` checks against (same
    arguments), as searches not yet run: a chapter fills them in one go with its own."""
    return _references(nets, np.asarray(x_star, float), visited_of, config, per_cell)[2]


def _references(nets, x, visited_of, config, per_cell):
    """(checked groups, their visited states, their reference searches), one per cell."""
    checked = [groups(whole.nets[:per_cell])[0] for whole in groups(nets)]
    visited = [visited_of(g) for g in checked]
    return checked, visited, [reference_search(g.spec, g.params, v, config, x)
                              for g, v in zip(checked, visited)]


def population_recall(nets, x_star, visited_of, config: FixedPointConfig, per_cell: int = 1,
                      found_of=None, executor="inprocess", workers: int | None = None):
    """Recall of ``config``'s search against :func:`exhaustive`, on a sample of a population.

    Parameters
    ----------
    nets : included networks (``lib.population.Network``); the first ``per_cell`` of each
        architecture x activation are checked
    x_star : [I] the constant input of the search
    visited_of : function Group -> visited states [n, V, S] of the group's networks
    config : the search whose recall is measured
    per_cell : networks per architecture x activation
    found_of : optional function Group -> FixedPoints of the whole group (e.g. a chapter's
        own batched search, so that the check covers the very points it analyses); default:
        ``config``'s search of the checked networks alone
    executor, workers : where the exhaustive references are searched (one per cell, side by
        side: see :func:`lib.scale.run_all`); they are cached (:func:`reference_search`)

    Returns
    -------
    DataFrame, one row per network checked: label, ``reference`` (isolated fixed points of
    the exhaustive search, :func:`isolated`), ``continuum`` (its other fixed points, on a
    continuum), ``found`` (isolated fixed points of the search), ``recall`` (of the
    reference's isolated points) and ``extra`` (isolated points found that the reference lacks).
    """
    rows = []
    x = np.asarray(x_star, float)
    wholes = groups(nets)
    checked, visited, refs = _references(nets, x, visited_of, config, per_cell)
    fp_cache.fill(refs, executor, workers)
    for whole, g, vis, job in zip(wholes, checked, visited, refs):
        ref = job.result()
        if found_of is None:
            mine = find(CellMap(g.spec, g.params), vis, config, inputs=x)
        else:  # the first per_cell networks of the group are the checked ones, in order
            mine = found_of(whole)
            mine = mine.subset(mine.net < len(g.nets), mine.start_net < len(g.nets))
        keep_ref, keep_mine = isolated(ref), isolated(mine)
        rec, _, extra = recall(mine, ref.points[keep_ref], ref.net[keep_ref], config.tol_unique,
                               mask=keep_mine)
        for k in range(len(g.nets)):
            on = ref.net == k
            rows.append(dict(label=g.label, reference=int((on & keep_ref).sum()),
                             continuum=int((on & ~keep_ref & ~ref.slow).sum()),
                             found=int(((mine.net == k) & keep_mine).sum()), recall=float(rec[k]),
                             extra=int(extra[(mine.net == k) & keep_mine].sum())))
    return pd.DataFrame(rows)
