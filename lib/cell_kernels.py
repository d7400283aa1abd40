"""Fused elementwise cell steps for the CPU trainer (``cell_kernels.c``), loaded through ctypes.

Between its small matmuls a training step of :mod:`lib.bptt` is a chain of elementwise ops:
a dozen torch calls per step, each a pass over [N, B, H] strided views. Here each chain is one
C loop, compiled once per machine by :mod:`lib.native` and reused by every process.

The loss with its output gradient, and the L2 term, the finiteness check, the norm and the
Adam update of each weight matrix, are kernels too (:func:`loss_grad`, :func:`l2_sumsq`,
:func:`adam_step`): each a dozen small torch ops over a shard's weights before.

Every cell function takes [N, B, H]-shaped float32 CPU views whose last axis is contiguous (views of
the trainer's buffers) and writes in place; with ``bind=True`` it returns ``(function,
arguments)`` instead, checked once, for a caller to run again and again on the same buffers.
:func:`available` says whether the library could be built; without a C compiler the trainer
uses its torch ops instead (and stores its results under another key, as the numbers differ in
the last bits).
"""
from __future__ import annotations

import ctypes
import functools
from pathlib import Path

import numpy as np
import torch

from . import native

SOURCE = Path(__file__).with_name("cell_kernels.c")


@functools.cache
def _lib() -> ctypes.CDLL | None:
    return native.load(SOURCE, "the trainer uses its slower torch ops")


def available() -> bool:
    """True when the compiled kernels can be used (built now if needed)."""
    return _lib() is not None


def usable(*tensors: torch.Tensor) -> bool:
    """True when the kernels can run on these tensors (float32 on the CPU) and are built."""
    return all(t.dtype == torch.float32 and t.device.type == "cpu" for t in tensors) \
        and available()


def _view(t: torch.Tensor) -> tuple:
    """(pointer, stride over N, stride over B) of an [N, B, H] view with a contiguous last axis."""
    if t.dim() != 3 or t.dtype != torch.float32 or (t.shape[2] > 1 and t.stride(2) != 1):
        raise ValueError(f"a kernel operand must be a float32 [N, B, H] view with a contiguous "
                         f"last axis, got {tuple(t.shape)} strides {t.stride()} {t.dtype}")
    return t.data_ptr(), t.stride(0), t.stride(1)


@functools.cache
def _function(name: str, n_views: int, n_sizes: int):
    """The C function ``name``, told its argument types (sizes, then pointer, strides per view)."""
    fn = getattr(_lib(), name)
    fn.argtypes = [ctypes.c_int64] * n_sizes + [ctypes.c_void_p, ctypes.c_int64,
                                                ctypes.c_int64] * n_views
    fn.restype = None
    return fn


def _call(name: str, H: int, *views: torch.Tensor, blocks: int | None = None,
          bind: bool = False):
    """Call ``name`` on the views, or with ``bind`` return ``(function, arguments)`` to call
    later: the checks and the argument list cost more than a small kernel's work, and a caller
    whose buffers never move (:class:`lib.bptt.Workspace`) binds each call once."""
    N, B = views[0].shape[:2]
    for v in views:
        if v.shape[:2] != (N, B):
            raise ValueError(f"{name}: operands of shapes {[tuple(w.shape) for w in views]}")
    sizes = (N, B, H) if blocks is None else (N, B, H, blocks)
    fn = _function(name, len(views), len(sizes))
    args = (*sizes, *(a for v in views for a in _view(v)))
    return (fn, args) if bind else fn(*args)


def sigmoid_blocks(z: torch.Tensor, H: int, blocks: int, bind: bool = False):
    """z[..., :blocks H] <- sigmoid of itself. z [N, B, >= blocks H]."""
    return _call("sigmoid_blocks", H, z, blocks=blocks, bind=bind)


def vanilla_fwd(act: str, z, h, bind: bool = False):
    """h = phi(z): z, h [N, B, H]."""
    return _call(f"vanilla_fwd_{act}", h.shape[2], z, h, bind=bind)


def vanilla_bwd(act: str, h, dh, dz, bind: bool = False):
    """dz = phi'(z) dh from h = phi(z)."""
    return _call(f"vanilla_bwd_{act}", h.shape[2], h, dh, dz, bind=bind)


def mix_fwd(act: str, u, c, hp, h, bind: bool = False):
    """c <- phi(c) in place; h = c + u (hp - c). u is the activated update gate."""
    return _call(f"mix_fwd_{act}", h.shape[2], u, c, hp, h, bind=bind)


def mix_bwd(act: str, u, c, hp, dh, du, dc, uh, bind: bool = False):
    """Backward of h = c + u (hp - c): du, dc before the activations; uh = u dh."""
    return _call(f"mix_bwd_{act}", u.shape[2], u, c, hp, dh, du, dc, uh, bind=bind)


def lstm_fwd(act: str, z, cp, c, pc, h, bind: bool = False):
    """z [N, B, 4H] = [i, f, g, o] activated in place; c = f cp + i g; pc = phi(c); h = o pc."""
    return _call(f"lstm_fwd_{act}", h.shape[2], z, cp, c, pc, h, bind=bind)


def lstm_bwd(act: str, z, cp, pc, dh, dc, dz, bind: bool = False):
    """dz [N, B, 4H] from dh and the carried dc (which becomes dL/dc_{t-1}, in place)."""
    return _call(f"lstm_bwd_{act}", dh.shape[2], z, cp, pc, dh, dc, dz, bind=bind)


def gru_reset(r, hp, rh, bind: bool = False):
    """rh = r hp."""
    return _call("gru_reset", r.shape[2], r, hp, rh, bind=bind)


def gru_reset_bwd(r, hp, drh, dr, uh, bind: bool = False):
    """Backward of rh = r hp: dr before the sigmoid; uh += drh r."""
    return _call("gru_reset_bwd", r.shape[2], r, hp, drh, dr, uh, bind=bind)


# ---- loss and optimiser of a shard ----------------------------------------------------------

_I, _P, _F = ctypes.c_int64, ctypes.c_void_p, ctypes.c_float


@functools.cache
def _typed(name: str, *argtypes):
    fn = getattr(_lib(), name)
    fn.argtypes, fn.restype = list(argtypes), None
    return fn


def _view4(t: torch.Tensor) -> tuple:
    """(pointer, strides over N, T, B) of an [N, T, B, O] float32 view, O contiguous."""
    if t.dim() != 4 or t.dtype != torch.float32 or (t.shape[3] > 1 and t.stride(3) != 1):
        raise ValueError(f"a loss operand must be a float32 [N, T, B, O] view with a contiguous "
                         f"last axis, got {tuple(t.shape)} strides {t.stride()} {t.dtype}")
    return (t.data_ptr(), *t.stride()[:3])


def loss_grad(out: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, act: np.ndarray,
              dy: torch.Tensor) -> np.ndarray:
    """Masked MSE per network [N] of out against y, and dy = 2 act (out - y) mask / sum(mask)
    written into ``dy``. out, y, mask, dy: [N, T, B, O]; act: [N] float32 (0: frozen)."""
    shape = tuple(out.shape)
    if any(tuple(t.shape) != shape for t in (y, mask, dy)) or act.shape != shape[:1]:
        raise ValueError(f"loss_grad: shapes {[tuple(t.shape) for t in (out, y, mask, dy)]}, "
                         f"act {act.shape}")
    act = np.ascontiguousarray(act, np.float32)
    loss = np.empty(shape[0], np.float32)
    fn = _typed("loss_grad", *[_I] * 4, *[_P, _I, _I, _I] * 3, _P, _P, _I, _I, _I, _P)
    fn(*shape, *_view4(out), *_view4(y), *_view4(mask), act.ctypes.data, *_view4(dy),
       loss.ctypes.data)
    return loss


def _matrices(*ts: torch.Tensor) -> None:
    for t in ts:
        if t.dtype != torch.float32 or t.device.type != "cpu" or not t.is_contiguous() \
                or t.shape != ts[0].shape:
            raise ValueError("optimiser operands must be contiguous float32 CPU tensors of one "
                             f"shape, got {[(tuple(u.shape), u.dtype) for u in ts]}")


def l2_sumsq(A: torch.Tensor, g: torch.Tensor, l2: np.ndarray, bias_row: int,
             sumsq: np.ndarray, finite: np.ndarray) -> None:
    """g += l2[n] A off row ``bias_row``; non-finite entries of g -> 0 and finite[n] = 0; sumsq[n]
    += sum of g^2. A, g [N, K, C]; l2 [N] float32; sumsq [N] float64; finite [N] int8."""
    _matrices(A, g)
    N, K, C = A.shape
    l2 = np.ascontiguousarray(l2, np.float32)
    if sumsq.dtype != np.float64 or finite.dtype != np.int8 or sumsq.shape != (N,) \
            or finite.shape != (N,):
        raise ValueError("l2_sumsq: sumsq must be float64 [N] and finite int8 [N]")
    _typed("l2_sumsq", _I, _I, _I, _I, _P, _P, _P, _P, _P)(
        N, K, C, bias_row, A.data_ptr(), g.data_ptr(), l2.ctypes.data, sumsq.ctypes.data,
        finite.ctypes.data)


def adam_step(A, g, m, v, scale, keep1, keep2, step, a1: float, a2: float, c2: float,
              eps: float) -> None:
    """Adam per network, in place: A, g, m, v [N, ...]; scale, keep1, keep2, step [N]
    (see ``adam_step`` in cell_kernels.c)."""
    _matrices(A, g, m, v)
    N = A.shape[0]
    per = [np.ascontiguousarray(a, np.float32) for a in (scale, keep1, keep2, step)]
    if any(a.shape != (N,) for a in per):
        raise ValueError(f"adam_step: per-network arrays must be [{N}]")
    _typed("adam_step", _I, _I, *[_P] * 8, _F, _F, _F, _F)(
        N, A[0].numel() if N else 0, A.data_ptr(), g.data_ptr(), m.data_ptr(), v.data_ptr(),
        *(a.ctypes.data for a in per), a1, a2, c2, eps)
