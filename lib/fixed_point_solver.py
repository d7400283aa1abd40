"""Batched solvers behind :mod:`lib.fixed_points`.

A *step map* ``F(s, x, net)`` takes states s [R, B, S], constant inputs x [R, B, I] and the
network of every row, net [R] (long), and returns the next states [R, B, S]; the B points of a
row belong to one network and evolve independently. Two layouts use it:

* the start phase: one row per network (``net = arange(N)``), B starts per network;
* the polish and the Jacobians: one row per *candidate* (flat list, B = 1 or B = S copies),
  ``net`` says whose weights the row uses. Their cost is proportional to the number of
  candidates, never to the largest candidate count of a network (no padding).

Points that share a network and an input belong to one *system* (an integer id); merging and
deduplication only compare points of the same system. This module imports nothing from
:mod:`lib.fixed_points`: every tolerance is an explicit argument.
"""
from __future__ import annotations

import math

import torch

from . import fp_kernels, fp_lm

STALL_FACTOR = 10.0  # polish: a row whose q fell less than this over `stall` iterations stops
CONTRACTION = 0.1  # absorb: a step that shrank the distance to a kept point at least this much
BLOCK_BYTES = 1 << 23  # polish: at most this much of [rows, S, S] Jacobians per block


def q_of(F, s: torch.Tensor, x: torch.Tensor, net: torch.Tensor) -> torch.Tensor:
    """q(s) = 1/2 |F(s) - s|^2 for s [R, B, S] -> [R, B]."""
    return 0.5 * (F(s, x, net) - s).pow(2).sum(-1)


def q_and_grad(F, s: torch.Tensor, x: torch.Tensor, net: torch.Tensor):
    """q [R, B] and dq/ds [R, B, S] at s [R, B, S] (detached): the map's own closed form
    where it has one (a ``q_and_grad(s, x, net)`` method, e.g.
    :class:`lib.fp_adapters.CellMap`), else autograd."""
    if hasattr(F, "q_and_grad"):
        with torch.no_grad():
            return F.q_and_grad(s, x, net)
    s = s.detach().requires_grad_(True)
    with torch.enable_grad():
        q = q_of(F, s, x, net)
        (g,) = torch.autograd.grad(q.sum(), s)
    return q.detach(), g


# ---------------------------------------------------------------------------------------------
# Start phase: Adam with a per-point adaptive learning rate and gradient clip


def adam(F, s0, x, net, *, iters: int, lr: float, tol_q: float, up: float = 1 / 0.95,
         down: float = 0.5, lr_min: float = 1e-7, lr_max: float = math.inf):
    """Adam on q from every start [N, B, S] (float32), each point on its own schedule.

    Like FixedPointFinder's optimiser, but per point: a point's learning rate grows by ``up``
    after a step that lowered its q and shrinks by ``down`` after one that raised it; its
    gradient is clipped at twice a running geometric mean of its own gradient norms. A point
    stops once ``q < tol_q`` or its learning rate falls below ``lr_min`` (stalled: a slow
    point). The rate never exceeds ``lr_max``: Adam moves every coordinate by about the rate,
    so a large rate would carry points across the basins they started in. Whenever fewer
    than half of the working points are active, the working set is compacted, so the cost
    follows the active points. The gradient is the map's closed form where it has one
    (:func:`q_and_grad`) and the update one C pass where :mod:`lib.fp_kernels` runs.

    Returns
    -------
    s [N, B, S], q [N, B] (at the returned s) and iterations used [N, B] (int).
    """
    N, B, S = s0.shape
    s, xw = s0.detach().clone(), x
    idx = torch.arange(B).expand(N, B)  # working slot -> start index
    out_s, out_q = s.clone(), torch.full((N, B), math.inf, dtype=s.dtype)
    out_it = torch.zeros(N, B, dtype=torch.long)
    m, v = torch.zeros_like(s), torch.zeros_like(s)
    rate = torch.full((N, B), lr, dtype=s.dtype)
    log_g = torch.zeros(N, B, dtype=s.dtype)
    q_prev = torch.full((N, B), math.inf, dtype=s.dtype)
    active = torch.ones(N, B, dtype=torch.bool)
    fused = fp_kernels.usable(s, dtype=torch.float32)
    for t in range(1, iters + 1):
        q, g = q_and_grad(F, s, xw, net)
        with torch.no_grad():
            done = active & ((q < tol_q) | (rate < lr_min) | ~torch.isfinite(q))
            finish = done | active if t == iters else done
            if finish.any():
                _write(out_s, out_q, out_it, idx, s, q, t - 1, finish)
                active &= ~done
                if not active.any():
                    break
            if fused:  # the same update, one C pass (in place)
                flat = [z.reshape(-1, S) for z in (s, g.contiguous(), m, v)]
                fp_kernels.adam_points(*flat, *(z.reshape(-1) for z in (rate, log_g, q, q_prev,
                                                                        active)),
                                       t, up, down, lr_max)
            else:
                s, m, v, rate, log_g, q_prev = adam_update(s, g, m, v, rate, log_g, q, q_prev,
                                                           active, t, up, down, lr_max)
            if active.sum() * 2 < active.numel() and active.shape[1] > 1:
                keep = _front(active)
                s, m, v, rate, log_g, q_prev, idx, active = (
                    _take(z, keep) for z in (s, m, v, rate, log_g, q_prev, idx, active))
                xw = _take(xw, keep)
    return out_s, out_q, out_it


def adam_update(s, g, m, v, rate, log_g, q, q_prev, active, t: int, up: float, down: float,
                lr_max: float, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8):
    """One iteration of :func:`adam`'s per-point update in torch ops (what
    ``fp_kernels.adam_points`` does in one C pass): s, g, m, v [..., S]; rate, log_g, q,
    q_prev, active [...]. Returns the new s, m, v, rate, log_g and q_prev (the inactive
    points' s, m and v unchanged)."""
    rate = torch.where(q < q_prev, rate * up,
                       torch.where(q > q_prev, rate * down, rate)).clamp(max=lr_max)
    gn = g.norm(dim=-1).clamp_min(1e-30)
    log_g = gn.log() if t == 1 else 0.9 * log_g + 0.1 * gn.log()
    g = g * (2 * log_g.exp() / gn).clamp(max=1.0)[..., None]
    m_new, v_new = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
    upd = rate[..., None] * (m_new / (1 - b1 ** t)) / ((v_new / (1 - b2 ** t)).sqrt() + eps)
    if active.all():  # no point to hold still (the usual case before compaction)
        return s - upd, m_new, v_new, rate, log_g, q
    a = active[..., None]
    return (torch.where(a, s - upd, s), torch.where(a, m_new, m), torch.where(a, v_new, v),
            rate, log_g, q)


def _write(out_s, out_q, out_it, idx, s, q, t, mask):
    """Record finished working points (mask [N, K]) at their start index."""
    n, k = mask.nonzero(as_tuple=True)
    b = idx[n, k]
    out_s[n, b], out_q[n, b], out_it[n, b] = s[n, k], q[n, k], t


def _front(mask: torch.Tensor) -> torch.Tensor:
    """Indices [N, K] of the selected slots first, K = largest count of any row."""
    order = torch.argsort((~mask).to(torch.int8), dim=1, stable=True)
    return order[:, :max(int(mask.sum(1).max()), 1)]


def _take(z: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """z [N, B, ...] at slots idx [N, K] -> [N, K, ...]."""
    if z.dim() == 2:
        return torch.gather(z, 1, idx)
    return torch.gather(z, 1, idx[..., None].expand(-1, -1, z.shape[-1]))


# ---------------------------------------------------------------------------------------------
# Flat phase: merging, Levenberg-Marquardt polish, Jacobians


def merge(s: torch.Tensor, q: torch.Tensor, valid: torch.Tensor, system: torch.Tensor,
          tol: float) -> torch.Tensor:
    """Greedy merge in q order within each system: representative [P] of every point (-1: invalid).

    Rule: visit points by increasing q; a point is kept (its own representative) unless a kept
    point of its system lies within ``tol``, which then represents the point (the best such).
    In C where :mod:`lib.fp_kernels` runs (float64 on the CPU): point by point, each against
    the kept points of its system, so the cost is points x kept points. Elsewhere per system
    on its distance matrix in rounds: a point is kept once no undecided better neighbour
    remains, dropped once a better neighbour is kept; the rounds number the longest chain of
    better neighbours, not the points.

    Parameters
    ----------
    s : [P, S] points, q : [P], valid : [P] bool, system : [P] long (ids >= 0).
    """
    rep = torch.full((len(q),), -1, dtype=torch.long)
    idx = valid.nonzero()[:, 0]
    if fp_kernels.usable(s):  # one pass over all systems, each point against the kept ones
        idx = idx[torch.argsort(q[idx], stable=True)]
        idx = idx[torch.argsort(system[idx], stable=True)]  # by system, then by q
        rep[idx] = idx[fp_kernels.greedy_merge(s[idx], system[idx], tol)]
        return rep
    order = torch.argsort(system[idx], stable=True)
    idx = idx[order]
    bounds = torch.searchsorted(system[idx], torch.unique(system[idx]), right=True).tolist()
    start = 0
    for end in bounds:
        rows = idx[start:end]
        rows = rows[torch.argsort(q[rows], stable=True)]  # by increasing q
        rep[rows] = rows[_greedy(s[rows], tol)]
        start = end
    return rep


def _greedy(s: torch.Tensor, tol: float, chunk: int = 4096) -> torch.Tensor:
    """For points s [n, S] sorted by q: index of each point's representative [n]."""
    n = len(s)
    if n > chunk:  # too many for one distance matrix: one leader at a time
        return _leaders(s, tol)
    near = torch.cdist(s, s) < tol
    better = torch.tril(near, diagonal=-1)  # better[i, j]: j < i (better q) and within tol
    out = torch.arange(n)
    some = better.any(1) | better.any(0)  # the points with a neighbour; the others keep themselves
    idx = some.nonzero()[:, 0]
    if len(idx):
        out[idx] = idx[_greedy_rounds(better[idx][:, idx])]
    return out


def _greedy_rounds(better: torch.Tensor) -> torch.Tensor:
    """:func:`_greedy`'s rule in rounds on better [n, n] (better[i, j]: j < i is within tol of
    i, with the better q): the representative [n] of every point."""
    n = len(better)
    kept = torch.zeros(n, dtype=torch.bool)
    undecided = torch.ones(n, dtype=torch.bool)
    while undecided.any():
        blocked = (better & undecided[None]).any(1)
        beaten = (better & kept[None]).any(1)
        kept |= undecided & ~blocked & ~beaten
        undecided &= ~beaten & blocked
        undecided &= ~kept
    first_kept = torch.where(better & kept[None], torch.arange(n)[None], n).amin(1)
    return torch.where(kept, torch.arange(n), first_kept)


def _leaders(s: torch.Tensor, tol: float) -> torch.Tensor:
    """The same rule, one kept point per step (for very many points)."""
    n = len(s)
    out = torch.full((n,), -1, dtype=torch.long)
    left = torch.arange(n)
    while len(left):
        lead = left[0]
        close = (s[left] - s[lead]).norm(dim=-1) < tol
        close[0] = True
        out[left[close]] = lead
        left = left[~close]
    return out


def polish(F, s, x, net, n_iter: int, mu0: float = 1e-6, q_done: float = 1e-30,
           absorb: "Absorb | None" = None, stall: int = 0, chunk: int = 512):
    """Levenberg-Marquardt on F(s) - s = 0 for candidates s [P, S] (float64), one row each.

    Solves ``(A^T A + mu I) d = -A^T r`` with ``A = J - I``, ``r = F(s) - s``; a step is taken
    only where it lowers q (mu shrinks tenfold, else grows tenfold), so a point never ends
    worse than it started and a singular A (line attractor) stays stable. Only points with
    ``q > q_done`` and an unsaturated mu are worked on. With ``absorb``, a point still on its
    way stops as soon as it comes within ``absorb.tol`` of a settled point of its system (or
    of a frozen row: a point already known), or within ``absorb.reach`` of one after a step
    that converged onto it, so the work follows the distinct points. With
    ``stall`` > 0, a point whose q fell less than ``STALL_FACTOR``-fold over the last ``stall``
    iterations stops: it creeps through a slow region (Newton converges far faster near an
    isolated zero), and most starts far from any zero end that way. Rows are stepped in
    blocks of ``chunk``, fewer where a block's Jacobians would pass ``BLOCK_BYTES`` (large
    S): the fixed cost of a block's torch calls is spread over many rows, and its [chunk, S, S]
    matrices stay in the cache (on the book's flip-flop networks, 512 rows searched 5-15 %
    faster than 128 at S = 32; at S = 64 the byte limit allows 256).

    Parameters
    ----------
    s : [P, S], x : [P, I], net : [P].

    Returns
    -------
    s [P, S], q [P], iterations [P] (int) and into [P] (long): the row a point was absorbed
    into (its s and q are that row's), -1 where it was not.
    """
    with torch.no_grad():
        f = F(s[:, None], x[:, None], net)[:, 0]  # F(s) of every row, kept up to date
    q = 0.5 * (f - s).pow(2).sum(-1)
    mu = torch.full_like(q, mu0)
    its = torch.zeros(len(q), dtype=torch.long)
    into = torch.full((len(q),), -1, dtype=torch.long)
    if absorb is not None:
        mu[absorb.frozen] = math.inf  # known points: references only
    eye = torch.eye(s.shape[-1], dtype=s.dtype)
    held = fp_lm.Held(len(q), s.shape[-1], s.dtype)
    chunk = max(1, min(chunk, BLOCK_BYTES // (s.shape[-1] ** 2 * s.element_size())))
    q_mark = q.clone()
    for i in range(n_iter):
        if stall and i and i % stall == 0:
            mu[q > q_mark / STALL_FACTOR] = math.inf
            q_mark = q.clone()
        work = (q > q_done) & (mu < 1e6) & (into < 0)
        held.release((~work & (held.slot >= 0)).nonzero()[:, 0])
        act = work.nonzero()[:, 0]
        if len(act) == 0:
            break
        before = s[act] if absorb is not None else None  # for the reach rule
        for rows in act.split(chunk):
            _lm_step(F, s, f, x, net, q, mu, rows, eye, held)
        its[act] += 1
        if absorb is not None:
            absorb.step(s, q, into, act, before)
    if absorb is not None:
        into = absorb.resolve(into)
        hit = into >= 0
        s[hit], q[hit] = s[into[hit]], q[into[hit]]
    return s, q, its, into


def _lm_step(F, s, f, x, net, q, mu, rows, eye, held: fp_lm.Held):
    """One Levenberg-Marquardt step of the rows [K] of s, F(s) f, q and mu (in place). A row
    whose last step was rejected solves its normal equations, kept in ``held``, again; a row
    that takes its step gives them up."""
    sa, xa, na = s[rows], x[rows], net[rows]
    d = _direction(F, sa, xa, na, f[rows] - sa, mu[rows], rows, held, eye)
    with torch.no_grad():
        s_new = sa + d
        f_new = F(s_new[:, None], xa[:, None], na)[:, 0]
        q_new = 0.5 * (f_new - s_new).pow(2).sum(-1)
    better = q_new < q[rows]  # NaN (overflow) compares False: the old point stays
    took = rows[better]
    s[took], f[took], q[took] = s_new[better], f_new[better], q_new[better]
    m = mu[rows]
    mu[rows] = torch.where(better, m / 10, m * 10).clamp(min=1e-14)
    held.release(took)


def _direction(F, s, x, net, r, mu, rows, held: fp_lm.Held, eye):
    """The LM step d [K, S] at s [K, S] (x [K, I], net [K], r = F(s) - s [K, S], mu [K]) of
    the polish's rows [K]: from the normal equations kept in ``held`` where a row has them,
    else formed here, into a slot of ``held`` where one is free."""
    slot = held.slot[rows]
    fresh = (slot < 0).nonzero()[:, 0]
    d = torch.empty_like(s)
    if len(fresh):
        whole = len(fresh) == len(s)  # no row held: no index copies
        pick = (lambda z: z) if whole else (lambda z: z[fresh])  # noqa: E731
        J = jacobians(F, pick(s), pick(x), pick(net)).detach()
        at = held.claim(rows[fresh])
        got = at >= 0
        if not got.all():  # no slot left: formed and solved apart
            lost = (~got).nonzero()[:, 0]
            M, g = fp_lm.normal_equations(J[lost], pick(r)[lost], eye)
            d[fresh[lost]] = fp_lm.damped_direction(M, g, pick(mu)[lost], eye)
            J, r_f, at = J[got], pick(r)[got], at[got]
        else:
            r_f = pick(r)
        fp_lm.normal_equations(J, r_f, eye, out=(held.M, held.g, at))
        slot = held.slot[rows]
    has = (slot >= 0).nonzero()[:, 0]
    if len(has) == len(s):
        d = fp_lm.damped_direction(held.M, held.g, mu, eye, at=slot)
    elif len(has):
        d[has] = fp_lm.damped_direction(held.M, held.g, mu[has], eye, at=slot[has])
    return d


class Absorb:
    """How :func:`polish` merges candidates as they settle, so its work follows distinct points.

    system : [P] system of every row; frozen : [P] bool, rows that are known points (never
    iterated, they only absorb); tol : distance; q_settled : a row with q <= q_settled is
    settled; reach : optional [P] distances. After every iteration a row that moved (settled
    or not) stops at a kept point of its system (a frozen row or an earlier settled row that
    was kept) when it lies within tol of it, or within its ``reach`` of it after a step that
    shrank its distance to it at least ``CONTRACTION``-fold (Newton's quadratic convergence
    onto that very point: most starts of a further round head for points already known, and
    the last steps of each would only repeat the point). The rows that settled in this
    iteration and stopped nowhere are merged by the rule of :func:`merge` and their
    representatives kept. Each absorbed row records the row it joined, so the cost per
    iteration is (rows that moved) x (kept points), never all pairs.
    """

    def __init__(self, system: torch.Tensor, frozen: torch.Tensor, tol: float, q_settled: float,
                 reach: torch.Tensor | None = None):
        self.system, self.frozen, self.tol, self.q_settled = system, frozen, tol, q_settled
        self.reach = reach
        self.kept = frozen.clone()

    def step(self, s, q, into, act, before=None):
        """Update into [P] (-1: free) after an iteration on the rows act [K] (``before``
        [K, S]: where they were before it)."""
        keep = (into[act] < 0) & ~self.kept[act]
        moved = act[keep]
        self._near_kept(s, into, moved, None if before is None else before[keep])
        new = moved[(into[moved] < 0) & (q[moved] <= self.q_settled)]
        if len(new):
            rep = new[merge(s[new], q[new], torch.ones(len(new), dtype=torch.bool),
                            self.system[new], self.tol)]
            into[new] = torch.where(rep == new, -1, rep)
            self.kept[rep] = True

    def _near_kept(self, s, into, rows, before=None):
        """Rows [K] near a kept point of their system join it (``before`` [K, S])."""
        kept = self.kept.nonzero()[:, 0]
        if len(rows) == 0 or len(kept) == 0:
            return
        best, j = nearest(s[rows], self.system[rows], s[kept], self.system[kept])
        hit = best < self.tol
        if self.reach is not None and before is not None:
            came = (before - s[kept[j]]).norm(dim=-1)
            hit |= (best < self.reach[rows]) & (best <= CONTRACTION * came)
        into[rows[hit]] = kept[j[hit]]

    @staticmethod
    def resolve(into: torch.Tensor) -> torch.Tensor:
        """into [P] with every chain (a joined b, b later joined c) followed to its end."""
        while True:
            nxt = torch.where(into >= 0, into[into.clamp(min=0)], -1)
            step = (into >= 0) & (nxt >= 0)
            if not step.any():
                return into
            into = torch.where(step, nxt, into)


def nearest(a: torch.Tensor, sys_a: torch.Tensor, b: torch.Tensor, sys_b: torch.Tensor,
            dense: int = 1 << 20):
    """Distance [A] from each point of a [A, S] to its nearest point of b [B, S] in the same
    system, and that point's index [A] (inf and 0 where its system has none in b).

    One masked distance matrix while A x B is at most ``dense`` entries; beyond, one matrix
    per system (a population's points are spread over many systems, so the work follows
    the pairs that can match, not all pairs).
    """
    best = torch.full((len(a),), math.inf, dtype=a.dtype)
    idx = torch.zeros(len(a), dtype=torch.long)
    if len(a) == 0 or len(b) == 0:
        return best, idx
    if len(a) * len(b) <= dense:
        d = torch.cdist(a, b)
        d[sys_a[:, None] != sys_b[None]] = math.inf
        return d.min(1)
    ob = torch.argsort(sys_b, stable=True)
    ids, counts = torch.unique_consecutive(sys_b[ob], return_counts=True)
    first = (counts.cumsum(0) - counts).tolist()
    counts = counts.tolist()
    slot = torch.searchsorted(ids, sys_a).clamp(max=len(ids) - 1)  # a's system among b's
    oa = torch.argsort(slot, stable=True)
    oa = oa[(ids[slot] == sys_a)[oa]]
    start = 0
    for k, n in zip(*[t.tolist() for t in torch.unique_consecutive(slot[oa], return_counts=True)]):
        ra, rb = oa[start:start + n], ob[first[k]:first[k] + counts[k]]
        dk, jk = torch.cdist(a[ra], b[rb]).min(1)
        best[ra], idx[ra] = dk, rb[jk]
        start += n
    return best, idx


def jacobians(F, s: torch.Tensor, x: torch.Tensor, net: torch.Tensor, inputs: bool = False):
    """dF/ds (and dF/dx) at points s [P, S] under inputs x [P, I] -> [P, S, S] (, [P, S, I]).

    Each point is copied S times (row p holds its S copies, so one network per row), F runs
    once on all copies and one backward pass of ``sum_k F(copy_k)_k`` gives row k of J in copy
    k's gradient: one forward and one backward pass over P x S points. A map with a
    ``jacobians(s, x, net)`` method (closed form, e.g. :class:`lib.fp_adapters.CellMap`)
    is asked instead.
    """
    if hasattr(F, "jacobians"):
        J, Jx = F.jacobians(s.detach(), x.detach().to(s.dtype), net, inputs)
        return (J, Jx) if inputs else J
    P, S = s.shape
    rep = s.detach()[:, None, :].expand(P, S, S).clone().requires_grad_(True)
    xr = x.detach().to(s.dtype)[:, None, :].expand(P, S, x.shape[-1]).clone()
    xr.requires_grad_(inputs)
    with torch.enable_grad():
        y = F(rep, xr, net)
        diag = torch.diagonal(y, dim1=-2, dim2=-1).sum()
        grads = torch.autograd.grad(diag, [rep, xr] if inputs else [rep], allow_unused=True)
    if not inputs:
        return grads[0]
    gx = grads[1] if grads[1] is not None else torch.zeros_like(xr)  # F ignores its input
    return grads[0], gx


def outliers(s: torch.Tensor, net: torch.Tensor, ref: torch.Tensor, scale: float) -> torch.Tensor:
    """[P] True where point s [P, S] lies farther from its network's centre of ref [N, V, S]
    than ``scale`` x the mean radius of ref."""
    centre = ref.mean(1)
    radius = (ref - centre[:, None]).norm(dim=-1).mean(1).clamp_min(1e-12)
    return (s - centre[net]).norm(dim=-1) > scale * radius[net]
