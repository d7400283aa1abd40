"""Kernels of the fixed-point search in C (``fp_kernels.c``), loaded through ctypes.

* :func:`normal` and :func:`damped` do, for every candidate row, what
  :func:`lib.fixed_point_solver.polish` would otherwise do with batched torch calls: the normal
  equations of a Levenberg-Marquardt step (``A = J - I``, ``A^T A``, ``-A^T r``), and their
  solution with damping ``mu`` (Cholesky, two triangular solves), in float64; the polish keeps
  the normal equations of a row whose step was rejected and solves them again with a larger
  ``mu`` (:func:`solve` does both parts; both can address the rows of a larger buffer, where
  the polish keeps them, so nothing is copied);
* :func:`greedy_merge` applies :func:`lib.fixed_point_solver.merge`'s rule point by point,
  comparing each point with the kept points of its system only;
* :func:`adam_points` is one iteration of :func:`lib.fixed_point_solver.adam`'s per-point
  update (rate, clip, moments, step) in float32;
* :func:`lstm_jacobian` assembles the LSTM's closed-form Jacobian of many points of one
  network, with the arithmetic of :mod:`lib.cell_jacobians`' torch ops (the same bits; 6-13 %
  off an LSTM search, where the torch ops' passes over [P, H, H] blocks cost more than the sums).

Both are built by :mod:`lib.native`. Where they cannot run (no C compiler, another dtype or
device) :func:`usable` is False and the search uses its torch ops; the two differ in the last
bits only (the LSTM's Jacobian: not at all).
"""
from __future__ import annotations

import ctypes
import functools
from pathlib import Path

import torch

from . import native

SOURCE = Path(__file__).with_name("fp_kernels.c")


@functools.cache
def _lib() -> ctypes.CDLL | None:
    return native.load(SOURCE, "the fixed-point search uses its slower torch ops")


def available() -> bool:
    """True when the compiled kernels can be used (built now if needed)."""
    return _lib() is not None


_ARGS = {"lm_normal": [ctypes.c_int64] * 2 + [ctypes.c_void_p] * 6,
         "lm_damped": [ctypes.c_int64] * 2 + [ctypes.c_void_p] * 7,
         "adam_points": [ctypes.c_int64] * 2 + [ctypes.c_void_p] * 9 + [ctypes.c_int64]
         + [ctypes.c_float] * 5,
         "lstm_jacobian": [ctypes.c_int64] * 2 + [ctypes.c_void_p] * 3,
         "greedy_merge": [ctypes.c_int64] * 2 + [ctypes.c_void_p] * 2 + [ctypes.c_double]
         + [ctypes.c_void_p] * 2}


@functools.cache
def _function(name: str):
    fn = getattr(_lib(), name)
    fn.argtypes, fn.restype = _ARGS[name], None
    return fn


def usable(*tensors: torch.Tensor, dtype=torch.float64) -> bool:
    """True when the kernels are built and these tensors are CPU tensors of ``dtype``."""
    return all(t.dtype == dtype and t.device.type == "cpu" for t in tensors) and available()


def normal(J: torch.Tensor, r: torch.Tensor, out=None):
    """The normal equations of a Levenberg-Marquardt step, row by row.

    Parameters
    ----------
    J : [P, S, S] Jacobians dF/ds, r : [P, S] residuals F(s) - s (float64 CPU tensors).
    out : optional (M [n, S, S], g [n, S], at [P] long), contiguous: row p is written to row
        ``at[p]`` of M and g (no copy of the [P, S, S] result afterwards).

    Returns
    -------
    M with ``A^T A`` (``A = J - I``) in the upper triangle of each written row (what lies below
    the diagonal means nothing) and g = ``-A^T r``: [P, S, S] and [P, S], or out's M and g.
    """
    P, S = r.shape
    if J.shape != (P, S, S) or not usable(J, r):
        raise ValueError(f"fp_kernels.normal needs float64 CPU J [P, S, S], r [P, S]; "
                         f"got {tuple(J.shape)} {J.dtype}, {tuple(r.shape)} {r.dtype}")
    J, r = J.contiguous(), r.contiguous()
    if out is None:
        M, g, at = torch.empty(P, S, S, dtype=torch.float64), torch.empty(P, S, dtype=r.dtype), None
    else:
        M, g, at = _rows_of(out, P, S, "normal")
    work = torch.empty(S * S, dtype=torch.float64)  # held here: C writes into it
    if P:
        _function("lm_normal")(P, S, J.data_ptr(), r.data_ptr(), M.data_ptr(), g.data_ptr(),
                               _ptr(at), work.data_ptr())
    return M, g


def damped(M: torch.Tensor, g: torch.Tensor, mu: torch.Tensor, at: torch.Tensor | None = None):
    """d solving ``(M + mu I) d = g`` by Cholesky, row by row, from the upper triangles of
    M [P, S, S], with g [P, S], mu [P] (float64 CPU tensors; M and g as :func:`normal` returns);
    with ``at`` [P] (long), row p solves row ``at[p]`` of M [n, S, S] and g [n, S] (contiguous).

    Returns d [P, S] and ok [P] bool: False where ``M + mu I`` was not numerically positive
    definite (d is undefined there).
    """
    P = len(mu)
    S = g.shape[-1]
    if at is None and (M.shape != (P, S, S) or g.shape != (P, S)) or mu.shape != (P,) \
            or not usable(M, g, mu):
        raise ValueError(f"fp_kernels.damped needs float64 CPU M [P, S, S], g [P, S], mu [P]; "
                         f"got {tuple(M.shape)} {M.dtype}, {tuple(g.shape)} {g.dtype}, "
                         f"{tuple(mu.shape)} {mu.dtype}")
    if at is None:
        M, g = M.contiguous(), g.contiguous()
    else:
        M, g, at = _rows_of((M, g, at), P, S, "damped")
    mu = mu.contiguous()
    d = torch.empty(P, S, dtype=torch.float64)
    info = torch.empty(P, dtype=torch.int32)
    work = _aligned(LANES * (S * (S + 1) // 2 + S))  # packed triangles and right-hand sides
    if P:
        _function("lm_damped")(P, S, M.data_ptr(), g.data_ptr(), _ptr(at), mu.data_ptr(),
                               d.data_ptr(), info.data_ptr(), work.data_ptr())
    return d, info == 0


def _rows_of(out, P: int, S: int, name: str):
    """Check (M [n, S, S], g [n, S], at [P]) for row-indexed access: contiguous float64 M and
    g, every index within [0, n); at as a contiguous int64 tensor."""
    M, g, at = out
    at = at.to(torch.int64).contiguous()
    n = len(M)
    if M.shape != (n, S, S) or g.shape != (n, S) or at.shape != (P,) or not usable(M, g) \
            or not (M.is_contiguous() and g.is_contiguous()) \
            or (P and (int(at.min()) < 0 or int(at.max()) >= n)):
        raise ValueError(f"fp_kernels.{name}: rows at [P] of contiguous float64 M [n, S, S] and "
                         f"g [n, S], each in [0, n); got M {tuple(M.shape)}, g {tuple(g.shape)}, "
                         f"at {tuple(at.shape)}")
    return M, g, at


def _ptr(t: torch.Tensor | None):
    return None if t is None else t.data_ptr()


LANES = 8  # rows that lm_damped solves side by side (its L)


def _aligned(n: int) -> torch.Tensor:
    """n float64 of work space starting on a 64-byte boundary (lm_damped's vectors need it)."""
    buf = torch.empty(n + 8, dtype=torch.float64)
    skip = (-buf.data_ptr() % 64) // 8
    return buf[skip:skip + n]


def solve(J: torch.Tensor, r: torch.Tensor, mu: torch.Tensor):
    """d solving ``(A^T A + mu I) d = -A^T r`` with ``A = J - I`` (J [P, S, S], r [P, S],
    mu [P]): :func:`damped` of :func:`normal`. Returns d [P, S] and ok [P] bool."""
    if mu.shape != r.shape[:1]:
        raise ValueError(f"fp_kernels.solve needs mu [P] for r [P, S]; got {tuple(mu.shape)}, "
                         f"{tuple(r.shape)}")
    return damped(*normal(J, r), mu)


def greedy_merge(s: torch.Tensor, system: torch.Tensor, tol: float) -> torch.Tensor:
    """The merge rule of :func:`lib.fixed_point_solver.merge` on points s [n, S] (float64)
    ordered by (system, q), system [n] (long, non-decreasing): the position [n] of each
    point's representative, the first kept point of its system closer than tol (the point
    itself when there is none; it is then kept). Cost: points x kept points x S."""
    n, S = s.shape
    if system.shape != (n,) or system.dtype != torch.int64 or not usable(s) \
            or (n > 1 and bool((system[1:] < system[:-1]).any())):
        raise ValueError(f"fp_kernels.greedy_merge needs float64 CPU s [n, S] and a "
                         f"non-decreasing int64 system [n]; got {tuple(s.shape)} {s.dtype}, "
                         f"{tuple(system.shape)} {system.dtype}")
    s, system = s.contiguous(), system.contiguous()
    rep, kept = torch.empty(n, dtype=torch.int64), torch.empty(n, dtype=torch.int64)
    if n:
        _function("greedy_merge")(n, S, s.data_ptr(), system.data_ptr(), float(tol),
                                  rep.data_ptr(), kept.data_ptr())
    return rep


def adam_points(s, g, m, v, rate, log_g, q, q_prev, active, t: int, up: float, down: float,
                lr_max: float) -> None:
    """One per-point Adam iteration in place (see ``fp_kernels.c``; b1 0.9, b2 0.999, eps
    1e-8, as :func:`lib.fixed_point_solver.adam`): s, g, m, v [P, S];
    rate, log_g, q, q_prev [P] float32; active [P] bool. All contiguous float32 CPU tensors;
    rate, log_g, q_prev, m, v and (where active) s are updated."""
    P, S = s.shape
    views = (s, g, m, v, rate, log_g, q, q_prev)
    if any(not z.is_contiguous() for z in views + (active,)) or g.shape != s.shape \
            or m.shape != s.shape or v.shape != s.shape or active.dtype != torch.bool \
            or any(z.shape != (P,) for z in (rate, log_g, q, q_prev, active)) \
            or not usable(*views, dtype=torch.float32):
        raise ValueError("fp_kernels.adam_points needs contiguous float32 CPU s, g, m, v [P, S], "
                         "rate, log_g, q, q_prev [P] and a bool active [P]")
    if P:
        _function("adam_points")(P, S, *(z.data_ptr() for z in views), active.data_ptr(), t,
                                 up, down, lr_max, 1 - 0.9 ** t, 1 - 0.999 ** t)


def lstm_jacobian(W: torch.Tensor, v: torch.Tensor, out: torch.Tensor | None = None):
    """The LSTM's Jacobian at P points of one network, as :mod:`lib.cell_jacobians` assembles
    it in torch ops, bit for bit: W [H, 4H] (float64), v [P, 6, H] the per-unit factors
    (vi, vf, vg, vo, k, f) -> J [P, 2H, 2H] (written into ``out``, contiguous, if given)."""
    H = W.shape[0]
    P = v.shape[0]
    if W.shape != (H, 4 * H) or v.shape != (P, 6, H) or not usable(W, v):
        raise ValueError(f"lstm_jacobian: W [H, 4H] and v [P, 6, H] float64 on the CPU, got "
                         f"{tuple(W.shape)} {W.dtype} and {tuple(v.shape)} {v.dtype}")
    W, v = W.contiguous(), v.contiguous()
    J = torch.empty(P, 2 * H, 2 * H, dtype=torch.float64) if out is None else out
    if J.shape != (P, 2 * H, 2 * H) or not J.is_contiguous() or not usable(J):
        raise ValueError(f"lstm_jacobian: out must be a contiguous float64 [P, 2H, 2H] CPU "
                         f"tensor, got {tuple(J.shape)} {J.dtype}")
    _function("lstm_jacobian")(P, H, W.data_ptr(), v.data_ptr(), J.data_ptr())
    return J
