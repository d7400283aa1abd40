"""Batched solvers behind :mod:`lib.fixed_points`: Adam with per-point stop, Levenberg-Marquardt
polish, Jacobians of a batched map, outliers and greedy deduplication.

Every function works on points laid out as [N, B, S] (networks x points x state) and on a
batched map ``F: [N, B, S] -> [N, B, S]`` whose points evolve independently.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from .fixed_points import FixedPointConfig


def compact(s: torch.Tensor, mask: torch.Tensor):
    """Move the points selected by mask [N, B] to the front and cut to the largest count K.

    Returns s [N, K, S] and valid [N, K]; unselected points fill the tail (marked invalid).
    """
    order = torch.argsort((~mask).to(torch.int8), dim=1, stable=True)
    k = max(int(mask.sum(1).max()), 1)
    idx = order[:, :k]
    return torch.gather(s, 1, idx[..., None].expand(-1, -1, s.shape[-1])), torch.gather(mask, 1, idx)


def q_of(F, s: torch.Tensor) -> torch.Tensor:
    """q(s) = 1/2 |F(s) - s|^2 for s [N, B, S] -> [N, B]."""
    return 0.5 * (F(s) - s).pow(2).sum(-1)


def adam(F, s0: torch.Tensor, config: FixedPointConfig) -> torch.Tensor:
    """Adam on q for all points at once; a point stops once ``q < tol_adam``.

    Written out by hand because the optimiser's momentum would keep moving stopped points.
    """
    s = s0.detach().clone()
    m, v = torch.zeros_like(s), torch.zeros_like(s)
    b1, b2, eps = 0.9, 0.999, 1e-8
    for t in range(1, config.adam_iters + 1):
        s.requires_grad_(True)
        q = q_of(F, s)
        (grad,) = torch.autograd.grad(q.sum(), s)
        active = (q.detach() >= config.tol_adam)[..., None]
        if not active.any():
            break
        with torch.no_grad():
            m = torch.where(active, b1 * m + (1 - b1) * grad, m)
            v = torch.where(active, b2 * v + (1 - b2) * grad * grad, v)
            upd = config.lr * (m / (1 - b1 ** t)) / ((v / (1 - b2 ** t)).sqrt() + eps)
            s = torch.where(active, s - upd, s).detach()
    return s.detach()


def polish(F, s: torch.Tensor, n_iter: int, mu0: float = 1e-6, q_done: float = 1e-30):
    """Levenberg-Marquardt on F(s) - s = 0, per-point damping; keeps the better of old/new.

    Solves ``(A^T A + mu I) d = -A^T r`` with ``A = J - I``, ``r = F(s) - s``; a step is
    accepted only where it lowers q (then mu shrinks tenfold, else it grows tenfold), so a
    point never ends worse than it started and a singular A (line attractor) stays stable.
    Each iteration works only on the points with ``q > q_done`` (gathered to the front).
    s [N, B, S] float64 -> (s, q [N, B]).
    """
    with torch.no_grad():
        q = q_of(F, s)
    mu = torch.full_like(q, mu0)
    for _ in range(n_iter):
        active = q > q_done
        if not active.any():
            break
        idx = torch.argsort((~active).to(torch.int8), dim=1, stable=True)[:, :int(active.sum(1).max())]
        ix = idx[..., None].expand(-1, -1, s.shape[-1])
        sa, qa, mua = torch.gather(s, 1, ix), torch.gather(q, 1, idx), torch.gather(mu, 1, idx)
        sa, qa, mua = _lm_step(F, sa, qa, mua)
        s, q, mu = s.scatter(1, ix, sa), q.scatter(1, idx, qa), mu.scatter(1, idx, mua)
    return s, q


def _lm_step(F, s, q, mu):
    """One damped Newton step on points s [N, K, S] with q, mu [N, K]; keeps improvements."""
    eye = torch.eye(s.shape[-1], dtype=s.dtype)
    with torch.no_grad():
        r = F(s) - s
    A = jacobians(F, s) - eye
    At = A.transpose(-1, -2)
    d = torch.linalg.solve(At @ A + mu[..., None, None] * eye, -(At @ r[..., None]))[..., 0]
    with torch.no_grad():
        s_new = s + d
        q_new = q_of(F, s_new)
    better = q_new < q  # NaN (overflow) compares False: the old point stays
    s = torch.where(better[..., None], s_new, s)
    q = torch.where(better, q_new, q)
    return s, q, torch.where(better, mu / 10, mu * 10).clamp(1e-14, 1e6)


def jacobians(F, s: torch.Tensor) -> torch.Tensor:
    """Jacobians of F at every point in one batched call: s [N, B, S] -> [N, B, S, S].

    Each point is copied S times (copies are independent points of the batch), F runs once on
    all copies and one backward pass of ``sum_k F(copy_k)_k`` gives row k of J in copy k's
    gradient. This is one forward and one backward pass over N x B x S points, far faster on
    a CPU than vmap over S forward-mode tangents.
    """
    N, B, S = s.shape
    rep = s.detach()[:, :, None, :].expand(N, B, S, S).reshape(N, B * S, S).clone()
    rep.requires_grad_(True)
    with torch.enable_grad():
        y = F(rep).reshape(N, B, S, S)
        diag = torch.diagonal(y, dim1=-2, dim2=-1).sum()
        (grad,) = torch.autograd.grad(diag, rep)
    return grad.reshape(N, B, S, S)


def outliers(s: torch.Tensor, ref: torch.Tensor, scale: float) -> torch.Tensor:
    """[N, B] True where a point is farther than ``scale`` x the mean radius of ref [N, V, S]."""
    centre = ref.mean(1, keepdim=True)
    radius = (ref - centre).norm(dim=-1).mean(1, keepdim=True)
    return (s - centre).norm(dim=-1) > scale * radius.clamp_min(1e-12)


def unique(s: torch.Tensor, q: torch.Tensor, valid: torch.Tensor, tol: float) -> torch.Tensor:
    """Greedy deduplication in q order within each network, vectorised: mask [N, B] of kept points.

    The result equals the sequential rule "visit points by increasing q; keep a point unless a
    kept point lies within ``tol``", computed in rounds over all networks at once: a point is
    kept when every better neighbour is dropped, dropped when a better neighbour is kept.
    """
    d = torch.cdist(s, s)
    B = s.shape[1]
    order = torch.argsort(torch.argsort(q.masked_fill(~valid, float("inf")), dim=1), dim=1)
    better = (order[:, None, :] < order[:, :, None]) & (d < tol)  # better[n, i, j]: j beats i
    better &= valid[:, None, :] & valid[:, :, None]
    kept = torch.zeros_like(valid)
    undecided = valid.clone()
    for _ in range(B):
        if not undecided.any():
            break
        blocked = (better & (undecided | kept)[:, None, :]).any(-1)
        beaten = (better & kept[:, None, :]).any(-1)
        kept |= undecided & ~blocked
        undecided &= blocked & ~beaten
    return kept
