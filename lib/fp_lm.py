"""The linear algebra of the Levenberg-Marquardt steps of
:func:`lib.fixed_point_solver.polish`.

A step of a candidate s solves ``(A^T A + mu I) d = -A^T r`` with ``A = J - I`` (J = dF/ds at
s) and ``r = F(s) - s``. It comes in two parts: the *normal equations* (``M = A^T A`` and
``g = -A^T r``, the costly part: S^3 multiply-adds, and the Jacobian before it) and their
*damped solve* (Cholesky of ``M + mu I``: S^3 / 3). A rejected step leaves the point where it
was, so its normal equations still hold; :class:`Held` keeps them for the next try with a
larger mu, which then costs the damped solve only. (Far from a zero, Newton's step overshoots
and mu must grow tenfold several times before a step is taken: about 40 % of the steps of a
search of the book's networks are rejected.) The equations are formed straight into their
row of :class:`Held`'s buffer and solved from there, so nothing is copied.

Both parts run in C where :mod:`lib.fp_kernels` can (float64 on the CPU; ``M`` then holds its
upper triangle only), else as torch ops. Shapes: K rows, S state dimensions.
"""
from __future__ import annotations

import torch

from . import fp_kernels

HELD_BYTES = 1 << 28  # at most 256 MB of kept normal equations per polish


def normal_equations(J: torch.Tensor, r: torch.Tensor, eye: torch.Tensor, out=None):
    """(M [K, S, S], g [K, S]): ``A^T A`` (at least its upper triangle) and ``-A^T r`` for
    J [K, S, S], r [K, S], ``A = J - I`` (eye: [S, S] identity). With ``out`` = (M [n, S, S],
    g [n, S], at [K]), row k goes to row ``at[k]`` of out's M and g, which are returned."""
    if fp_kernels.usable(J, r):
        return fp_kernels.normal(J, r, out)
    At = (J - eye).transpose(-1, -2)
    M, g = At @ At.transpose(-1, -2), -(At @ r[..., None])[..., 0]
    if out is None:
        return M, g
    out[0][out[2]], out[1][out[2]] = M, g
    return out[0], out[1]


def damped_direction(M: torch.Tensor, g: torch.Tensor, mu: torch.Tensor, eye: torch.Tensor,
                     at: torch.Tensor | None = None):
    """d [K, S] solving ``(M + mu I) d = g`` for (M, g) from :func:`normal_equations`, mu [K]
    (with ``at`` [K]: row k solves row ``at[k]`` of M and g): in C where it runs, in torch
    elsewhere and for the rows whose matrix the C Cholesky rejects."""
    if not fp_kernels.usable(M, g, mu):
        if at is not None:
            M, g = M[at], g[at]
        return _torch_damped(M, g, mu, eye)
    d, ok = fp_kernels.damped(M, g, mu, at)
    if not ok.all():
        bad = ~ok
        rows = bad if at is None else at[bad]
        up = M[rows].triu()  # the C kernel writes the upper triangle only
        d[bad] = _torch_damped(up + up.triu(1).transpose(-1, -2), g[rows], mu[bad], eye)
    return d


def _torch_damped(M, g, mu, eye):
    return _spd_solve(M + mu[:, None, None] * eye, g[..., None])[..., 0]


def _spd_solve(M: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """M^-1 b for symmetric positive definite M [K, S, S], b [K, S, 1] (Cholesky; LU where
    a factorisation fails numerically)."""
    L, info = torch.linalg.cholesky_ex(M)
    out = torch.cholesky_solve(b, L)
    bad = info != 0
    if bad.any():
        out[bad] = torch.linalg.solve(M[bad], b[bad])
    return out


class Held:
    """Where the polish forms the normal equations of its rows, in at most ``HELD_BYTES``: a
    row keeps its slot while its steps are rejected (its equations still hold) and gives it
    up when a step is taken or it stops.

    P rows of S dimensions; ``slot`` [P]: where a row's (M, g) is kept, -1 where it is not.
    A row that finds no free slot forms and solves its equations apart (and forms them again
    at its next try).
    """

    def __init__(self, P: int, S: int, dtype: torch.dtype, max_bytes: int = HELD_BYTES):
        n = min(P, max_bytes // max(1, (S * S + S) * torch.finfo(dtype).bits // 8))
        self.M, self.g = torch.empty(n, S, S, dtype=dtype), torch.empty(n, S, dtype=dtype)
        self.slot = torch.full((P,), -1, dtype=torch.long)
        self.used = torch.zeros(n, dtype=torch.bool)

    def claim(self, rows: torch.Tensor) -> torch.Tensor:
        """Free slots for rows [K] (holding none) while they last: slots [K], -1 where none."""
        free = (~self.used).nonzero()[:len(rows), 0]
        k = len(free)
        self.used[free] = True
        self.slot[rows[:k]] = free
        return torch.cat([free, free.new_full((len(rows) - k,), -1)])

    def release(self, rows: torch.Tensor) -> None:
        """Rows [K] that moved or stopped: their kept equations no longer hold."""
        sl = self.slot[rows]
        self.used[sl[sl >= 0]] = False
        self.slot[rows] = -1
