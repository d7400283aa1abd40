"""The linear algebra of the Levenberg-Marquardt steps of
:func:`lib.fixed_point_solver.polish`.

A step of a candidate s solves ``(A^T A + mu I) d = -A^T r`` with ``A = J - I`` (J = dF/ds at
s) and ``r = F(s) - s``. It comes in two parts: the *normal equations* (``M = A^T A`` and
``g = -A^T r``, the costly part: S^3 multiply-adds, and the Jacobian before it) and their
*damped solve* (Cholesky of ``M + mu I``: S^3 / 3). A rejected step leaves the point where it
was, so its normal equations still hold; :class:`Held` keeps them for the next try with a
larger mu, which then costs the damped solve only. (Far from a zero, Newton's step overshoots
and mu must grow tenfold several times before a step is taken: about 40 % of the steps of a
search of the book's networks are rejected.)

Both parts run in C where :mod:`lib.fp_kernels` can (float64 on the CPU; ``M`` then holds its
upper triangle only), else as torch ops. Shapes: K rows, S state dimensions.
"""
from __future__ import annotations

import torch

from . import fp_kernels

HELD_BYTES = 1 << 28  # at most 256 MB of kept normal equations per polish


def normal_equations(J: torch.Tensor, r: torch.Tensor, eye: torch.Tensor):
    """(M [K, S, S], g [K, S]): ``A^T A`` (at least its upper triangle) and ``-A^T r`` for
    J [K, S, S], r [K, S], ``A = J - I`` (eye: [S, S] identity)."""
    if fp_kernels.usable(J, r):
        return fp_kernels.normal(J, r)
    At = (J - eye).transpose(-1, -2)
    return At @ At.transpose(-1, -2), -(At @ r[..., None])[..., 0]


def damped_direction(M: torch.Tensor, g: torch.Tensor, mu: torch.Tensor, eye: torch.Tensor):
    """d [K, S] solving ``(M + mu I) d = g`` for (M, g) from :func:`normal_equations`, mu [K]:
    in C where it runs, in torch elsewhere and for the rows whose matrix the C Cholesky
    rejects."""
    if not fp_kernels.usable(M, g, mu):
        return _torch_damped(M, g, mu, eye)
    d, ok = fp_kernels.damped(M, g, mu)
    if not ok.all():
        bad = ~ok
        up = M[bad].triu()  # the C kernel writes the upper triangle only
        d[bad] = _torch_damped(up + up.triu(1).transpose(-1, -2), g[bad], mu[bad], eye)
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
    """Normal equations of the rows whose last step was rejected, in at most ``HELD_BYTES``.

    P rows of S dimensions; ``slot`` [P]: where a row's (M, g) is kept, -1 where it is not.
    A row without a free slot simply forms its normal equations again.
    """

    def __init__(self, P: int, S: int, dtype: torch.dtype, max_bytes: int = HELD_BYTES):
        n = min(P, max_bytes // max(1, (S * S + S) * torch.finfo(dtype).bits // 8))
        self.M, self.g = torch.empty(n, S, S, dtype=dtype), torch.empty(n, S, dtype=dtype)
        self.slot = torch.full((P,), -1, dtype=torch.long)
        self.used = torch.zeros(n, dtype=torch.bool)

    def keep(self, rows: torch.Tensor, M: torch.Tensor, g: torch.Tensor) -> None:
        """Keep (M [K, S, S], g [K, S]) of rows [K] (without a slot) while free slots last."""
        free = (~self.used).nonzero()[:len(rows), 0]
        k = len(free)
        self.M[free], self.g[free] = M[:k], g[:k]
        self.used[free] = True
        self.slot[rows[:k]] = free

    def release(self, rows: torch.Tensor) -> None:
        """Rows [K] that moved or stopped: their kept equations no longer hold."""
        sl = self.slot[rows]
        self.used[sl[sl >= 0]] = False
        self.slot[rows] = -1
