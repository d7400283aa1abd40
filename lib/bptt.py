"""Hand-written forward and backward pass through time for a stack of networks.

The cells are those of :mod:`lib.models`; this module only computes them faster for training.
Every network's weights are packed into one *augmented* matrix that maps ``[x_t, 1, h_{t-1}]``
to ``[gate pre-activations of step t, output of step t-1]``, so one batched matmul per step
computes the input drive, the bias, the recurrence and the readout, and one matmul with its
transpose carries the gradient back into ``h``. Autograd is not used: its bookkeeping
(zero-filled slice gradients, cat/stack copies) cost more than the arithmetic at these sizes.

Shapes: N networks, B trials, T steps, I inputs, H hidden, O outputs, G = gates x H,
K = I + 1 + H (rows of a packed matrix). Buffers are written in place. The matmul inputs ``X``
and gradients ``dZ`` are network-major ([N, T, B, ...]), so the weight gradient of the whole
sequence is one long matmul per network (inner dimension T x B) instead of T short ones; a
step's slice of them is a strided matmul operand, which ``bmm`` reads at full speed. The matmul
*outputs* ``Z`` (and the GRU's ``Zc``) are time-major ([T, N, B, ...]): ``bmm`` into a strided
slice falls back to one matmul per network on the CPU, which measured 2x slower for a shard
of 64 networks at hidden 32.

Packed columns: vanilla ``[c | y]``, UGRNN ``[u, c | y]``, LSTM ``[i, f, g, o | y]``. The GRU
needs ``r * h`` for its candidate, so it has two matrices: ``[u, r | y]`` on ``[x, 1, h]`` and
``[c]`` on ``[x, 1, r * h]``. The block that would map ``x`` to ``y`` is kept at zero.

On the CPU the matmuls run through numpy's BLAS (``np.matmul`` on the same memory, with the
weights' transposed blocks copied contiguous once per backward pass): on the book's shapes it
measured 1.4-1.8x faster than ``torch.bmm`` (torch's MKL) for the step matmuls. The caller
keeps that BLAS on one thread (:func:`lib.train.train_shard` does).

Between the matmuls, each step's elementwise work (activations, state update, and their
derivatives backward) runs as one fused C loop of :mod:`lib.cell_kernels` when the weights are
float32 on the CPU and the kernels built (``Workspace.fused``); otherwise (float64, GPUs, no C
compiler) as the chains of in-place torch ops below. The two agree to float32 rounding.
"""
from __future__ import annotations

import numpy as np
import torch

from . import cell_kernels as K
from .models import CellSpec


def _phi_(spec: CellSpec, z: torch.Tensor) -> torch.Tensor:
    """Activation in place. tanh as 2 sigmoid(2z) - 1: same function, ~10x cheaper on CPU."""
    if spec.activation == "relu":
        return z.clamp_(min=0)
    return z.mul_(2).sigmoid_().mul_(2).sub_(1)


def _dphi_(spec: CellSpec, a: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """phi'(z) from a = phi(z), written into ``out``: 1 - a^2 (tanh) or [a > 0] (ReLU)."""
    if spec.activation == "relu":
        return torch.gt(a, 0, out=out)
    return torch.mul(a, a, out=out).neg_().add_(1)


def _dsig_(s: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """sigma'(z) = s (1 - s) from s = sigma(z), written into ``out``."""
    return torch.neg(s, out=out).add_(1).mul_(s)


# ---- packing ------------------------------------------------------------------------------

def _blocks(spec: CellSpec) -> int:
    return spec.n_gate // spec.n_hidden


def pack(spec: CellSpec, params: dict) -> list[torch.Tensor]:
    """Augmented matrices from a :mod:`lib.models` parameter dict (copies).

    Returns ``[A]`` with A [N, K, G + O], or for the GRU ``[A1, Ac]`` with A1 [N, K, 2H + O]
    and Ac [N, K, H].
    """
    if spec.arch == "gru" and spec.gru_reset_after:
        raise NotImplementedError("the trainer implements the paper's GRU (reset before W_c)")
    I, H = spec.n_in, spec.n_hidden
    W, U, b, W_out, b_out = (params[k] for k in ("W", "U", "b", "W_out", "b_out"))
    rows = torch.cat([U, b, W], dim=1)  # [N, K, G]
    out = torch.cat([torch.zeros_like(U[..., :spec.n_out]), b_out, W_out], dim=1)  # [N, K, O]
    if spec.arch == "gru":
        return [torch.cat([rows[..., :2 * H], out], dim=2), rows[..., 2 * H:].contiguous()]
    return [torch.cat([rows, out], dim=2)]


def unpack(spec: CellSpec, mats: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    """Inverse of :func:`pack`: the parameter dict of :mod:`lib.models` (copies)."""
    I, H, G = spec.n_in, spec.n_hidden, spec.n_gate
    if spec.arch == "gru":
        A1, Ac = mats
        rows, out = torch.cat([A1[..., :2 * H], Ac], dim=2), A1[..., 2 * H:2 * H + spec.n_out]
    else:
        rows, out = mats[0][..., :G], mats[0][..., G:G + spec.n_out]
    return {"W": rows[:, I + 1:].contiguous(), "U": rows[:, :I].contiguous(),
            "b": rows[:, I:I + 1].contiguous(), "W_out": out[:, I + 1:].contiguous(),
            "b_out": out[:, I:I + 1].contiguous()}


def decay_mask(spec: CellSpec, mats: list[torch.Tensor]) -> list[torch.Tensor]:
    """1 on the rows that L2 acts on (U, W, W_out), 0 on the bias row: [1, K, 1] each."""
    masks = []
    for A in mats:
        m = torch.ones(1, A.shape[1], 1, dtype=A.dtype, device=A.device)
        m[:, spec.n_in] = 0
        masks.append(m)
    return masks


# ---- workspace ----------------------------------------------------------------------------

class Workspace:
    """Buffers of one shard, allocated once and overwritten at every training step.

    ``X`` [N, T + 1, B, K] holds ``[x_t, 1, h_{t-1}]`` (step T: the last state, for the last
    output); ``Z`` [T + 1, N, B, C] (time-major) the activated gates of each step and the output
    of the step before; ``dZ`` [N, T + 1, B, C] the loss gradient with respect to the
    pre-activations of ``Z``; its output columns (``dY``) are written by the caller before
    :func:`backward`.
    """

    def __init__(self, spec: CellSpec, mats: list[torch.Tensor], batch: int, n_time: int):
        N, I, H, O = mats[0].shape[0], spec.n_in, spec.n_hidden, spec.n_out
        kw = dict(dtype=mats[0].dtype, device=mats[0].device)
        self.spec, self.T, self.I, self.H, self.O = spec, n_time, I, H, O
        self.fused = K.usable(mats[0])  # the C kernels (float32 on the CPU), else torch ops
        self.X = torch.zeros(N, n_time + 1, batch, I + 1 + H, **kw)
        self.X[..., I] = 1
        self.Z = torch.zeros(n_time + 1, N, batch, mats[0].shape[2], **kw)
        self.y_col = spec.n_gate if spec.arch != "gru" else 2 * H
        self.dA = [torch.zeros_like(A) for A in mats]
        # dZ: the gate columns of step T and the outputs of step 0 stay 0
        self.dZ = torch.zeros(N, n_time + 1, batch, mats[0].shape[2], **kw)
        self.dh = torch.zeros(N, batch, H, **kw)
        self.tmp = [torch.zeros(N, batch, H, **kw) for _ in range(4)]
        if spec.arch == "lstm":
            self.C = torch.zeros(N, n_time + 1, batch, H, **kw)  # c_{t-1} at step t
            self.PC = torch.zeros(N, n_time, batch, H, **kw)  # phi(c_t)
            self.dc = torch.zeros(N, batch, H, **kw)
        if spec.arch == "gru":
            self.XR = self.X[:, :n_time].clone()  # [x_t, 1, r_t * h_{t-1}]
            self.Zc = torch.zeros(n_time, N, batch, H, **kw)  # time-major, as Z
            self.dZc = torch.zeros(N, n_time, batch, H, **kw)
        # each step's slices, made once (a slice costs a dispatch, as much as a small op)
        self.X_at, self.Z_at, self.dZ_at = self.X.unbind(1), self.Z.unbind(0), self.dZ.unbind(1)
        if spec.arch == "gru":
            self.XR_at, self.Zc_at = self.XR.unbind(1), self.Zc.unbind(0)
            self.dZc_at = self.dZc.unbind(1)
        self._bound = {}  # fused kernel calls, bound once per (kind, step): see kernel()
        self.blas = _Blas(self, mats) if self.X.device.type == "cpu" else None

    def kernel(self, key, bind) -> None:
        """Run a fused kernel call, bound by ``bind()`` (a :mod:`lib.cell_kernels` function
        with ``bind=True``) the first time ``key`` comes: the buffers of a workspace never
        move, so a call's checked arguments hold for every training step."""
        call = self._bound.get(key)
        if call is None:
            call = self._bound[key] = bind()
        call[0](*call[1])

    def mm_step(self, mats: list[torch.Tensor], t: int) -> torch.Tensor:
        """Z_t = X_t A: the matmul of step t into ``Z[t]`` ([N, B, C]; t = T: the last output)."""
        if self.blas is None:
            return torch.bmm(self.X_at[t], mats[0], out=self.Z_at[t])
        np.matmul(self.blas.X[t], self.blas.A[0], out=self.blas.Z[t])
        return self.Z_at[t]

    def mm_candidate(self, mats: list[torch.Tensor], t: int) -> torch.Tensor:
        """The GRU's candidate matmul of step t: [x, 1, r h] Ac into ``Zc[t]`` ([N, B, H])."""
        if self.blas is None:
            return torch.bmm(self.XR_at[t], mats[1], out=self.Zc_at[t])
        np.matmul(self.blas.XR[t], self.blas.A[1], out=self.blas.Zc[t])
        return self.Zc_at[t]

    def transpose_weights(self, mats: list[torch.Tensor]) -> None:
        """Before a backward pass: the transposed state blocks of the weights, [N, C, H] each
        (on the CPU copied contiguous, which numpy's BLAS multiplies faster)."""
        self.hT = [A[:, self.I + 1:].transpose(1, 2) for A in mats]
        if self.blas is not None:
            for buf, view in zip(self.blas.hT_t, self.hT):
                buf.copy_(view)

    def mm_dh(self, t: int) -> torch.Tensor:
        """dL/dh_{t-1} = dZ_t A_h^T into ``dh`` ([N, B, H]), after :meth:`transpose_weights`."""
        if self.blas is None:
            return torch.bmm(self.dZ_at[t], self.hT[0], out=self.dh)
        np.matmul(self.blas.dZ[t], self.blas.hT[0], out=self.blas.dh)
        return self.dh

    def mm_reset(self, t: int) -> torch.Tensor:
        """The GRU's d(r h_{t-1}) = dZc_t Ac_h^T into ``tmp[1]`` ([N, B, H])."""
        if self.blas is None:
            return torch.bmm(self.dZc_at[t], self.hT[1], out=self.tmp[1])
        np.matmul(self.blas.dZc[t], self.blas.hT[1], out=self.blas.drh)
        return self.tmp[1]

    def h(self, t: int) -> torch.Tensor:
        """h_{t-1}: [N, B, H] (a view into X)."""
        return self.X[:, t, :, self.I + 1:]

    @property
    def outputs(self) -> torch.Tensor:
        """y_t for t = 0..T-1: [T, N, B, O] (a view into Z)."""
        return self.Z[1:, :, :, self.y_col:self.y_col + self.O]

    @property
    def dY(self) -> torch.Tensor:
        """dL/dy_t for t = 0..T-1: [N, T, B, O] (a view into dZ, for the caller to fill)."""
        return self.dZ[:, 1:, :, self.y_col:self.y_col + self.O]

    def set_inputs(self, x: torch.Tensor) -> None:
        """Copy the inputs x [N, T, B, I] into the input columns of X."""
        self.X[:, :self.T, :, :self.I].copy_(x)
        if self.spec.arch == "gru":
            self.XR[..., :self.I].copy_(x)


class _Blas:
    """numpy views of a CPU workspace's per-step buffers and of the weights (the same memory,
    made once: a view costs a microsecond, about a tenth of a step's matmul), and contiguous
    buffers for the weights' transposed state blocks."""

    def __init__(self, ws: Workspace, mats: list[torch.Tensor]):
        self.X, self.Z, self.dZ = _views(ws.X_at), _views(ws.Z_at), _views(ws.dZ_at)
        self.dh = ws.dh.numpy()
        self.hT_t = [A[:, ws.I + 1:].transpose(1, 2).contiguous() for A in mats]
        self.hT = _views(self.hT_t)
        if ws.spec.arch == "gru":
            self.XR, self.Zc, self.dZc = _views(ws.XR_at), _views(ws.Zc_at), _views(ws.dZc_at)
            self.drh = ws.tmp[1].numpy()
        self.ptrs, self._parts = None, {}
        self.bind(mats)

    def part(self, like: np.ndarray) -> np.ndarray:
        """A scratch array shaped as ``like`` (a weight gradient), kept between calls."""
        buf = self._parts.get(like.shape)
        if buf is None:
            buf = self._parts[like.shape] = np.empty_like(like)
        return buf

    def bind(self, mats: list[torch.Tensor]) -> None:
        """Views of the weights ``mats`` (again only if they are other tensors than last time)."""
        ptrs = [A.data_ptr() for A in mats]
        if ptrs != self.ptrs:
            self.A, self.ptrs = _views(mats), ptrs


def _views(ts):
    return [t.detach().numpy() for t in ts]


# ---- forward ------------------------------------------------------------------------------

def forward(ws: Workspace, mats: list[torch.Tensor]) -> torch.Tensor:
    """Run every network over the inputs in ``ws.X``; return the outputs [T, N, B, O]."""
    step = (_FUSED_FWD if ws.fused else _FWD)[ws.spec.arch]
    if ws.blas is not None:
        ws.blas.bind(mats)
    for t in range(ws.T):
        step(ws, mats, t)
    ws.mm_step(mats, ws.T)  # the output of the last step
    return ws.outputs


def _fwd_vanilla(ws, mats, t):
    z = ws.mm_step(mats, t)[..., :ws.H]
    h = ws.h(t + 1)  # written directly: a strided copy costs as much as the activation
    if ws.spec.activation == "relu":
        torch.clamp(z, min=0, out=h)
    else:
        torch.sigmoid(z.mul_(2), out=h).mul_(2).sub_(1)


def _mix(ws, t, u, c):
    """h_t = c + u (h_{t-1} - c), written into X."""
    h = ws.h(t + 1)
    torch.sub(ws.h(t), c, out=h)
    h.mul_(u).add_(c)


def _fwd_ugrnn(ws, mats, t):
    H = ws.H
    z = ws.mm_step(mats, t)
    u = z[..., :H].sigmoid_()
    _mix(ws, t, u, _phi_(ws.spec, z[..., H:2 * H]))


def _fwd_gru(ws, mats, t):
    H = ws.H
    z = ws.mm_step(mats, t)
    ur = z[..., :2 * H].sigmoid_()
    torch.mul(ur[..., H:], ws.h(t), out=ws.XR[:, t, :, ws.I + 1:])
    c = _phi_(ws.spec, ws.mm_candidate(mats, t))
    _mix(ws, t, ur[..., :H], c)


def _fwd_lstm(ws, mats, t):
    H = ws.H
    z = ws.mm_step(mats, t)
    z[..., :2 * H].sigmoid_()
    z[..., 3 * H:4 * H].sigmoid_()
    i, f, g, o = (z[..., k * H:(k + 1) * H] for k in range(4))
    _phi_(ws.spec, g)
    c = ws.C[:, t + 1]
    torch.mul(f, ws.C[:, t], out=c).addcmul_(i, g)
    pc = ws.PC[:, t]
    pc.copy_(c)
    torch.mul(o, _phi_(ws.spec, pc), out=ws.h(t + 1))


_FWD = {"vanilla": _fwd_vanilla, "ugrnn": _fwd_ugrnn, "gru": _fwd_gru, "lstm": _fwd_lstm}


# ---- backward -----------------------------------------------------------------------------

def backward(ws: Workspace, mats: list[torch.Tensor]) -> list[torch.Tensor]:
    """Gradients of the loss with respect to ``mats``, given dL/dy in ``ws.dY``.

    Needs the buffers of the :func:`forward` call just before. Returns ``ws.dA`` (overwritten).
    """
    gate = (_FUSED_BWD if ws.fused else _BWD)[ws.spec.arch]
    if ws.spec.arch == "lstm":
        ws.dc.zero_()
    ws.transpose_weights(mats)
    for t in range(ws.T, 0, -1):
        if t < ws.T:
            gate(ws, mats, t)  # the gate columns of dZ[:, t] from ws.dh = dL/dh_t
        ws.mm_dh(t)  # dL/dh_{t-1} through the matmul of step t
        if t < ws.T and ws.spec.arch in ("ugrnn", "gru"):
            ws.dh.add_(ws.tmp[3])  # the path through u * h_{t-1} (and r * h_{t-1})
    gate(ws, mats, 0)
    _weight_grad(ws, ws.X, ws.dZ, ws.dA[0])
    if ws.spec.arch == "gru":
        _weight_grad(ws, ws.XR, ws.dZc, ws.dA[1])
    ws.dA[0][:, :ws.I, ws.y_col:ws.y_col + ws.O].zero_()  # the x -> y block is no parameter
    return ws.dA


SMALL_GEMM = 2 ** 20  # OpenBLAS's cut-off (M N K) for its small-matrix kernels, measured
MIN_CHUNK = 64  # rows: shorter chunks measured slower than one long product


def _weight_grad(ws, X: torch.Tensor, dZ: torch.Tensor, out: torch.Tensor) -> None:
    """sum over steps and trials of X^T dZ: X [N, T, B, K], dZ [N, T, B, C] -> out [N, K, C]
    (buffers of ``ws``).

    On the CPU the sum over the T B rows runs in chunks of a power of two rows, each chunk's
    product below ``SMALL_GEMM``: OpenBLAS then multiplies with its small-matrix kernels
    (no packing), which measured 1.3-1.5x faster than one long product for K = 36 to 68 and
    C = 35 to 131 (74-82 against 51-59 GFLOP/s on one core), and the partial sums are added.
    Below ``MIN_CHUNK`` rows a chunk is slower than the long product (the LSTM at H = 64),
    which is then kept.
    """
    N, K, C = X.shape[0], X.shape[-1], dZ.shape[-1]
    Xt, dZ = X.reshape(N, -1, K).transpose(1, 2), dZ.reshape(N, -1, C)
    if ws.blas is None:
        torch.bmm(Xt, dZ, out=out)
        return
    Xt, dZ, out = Xt.numpy(), dZ.numpy(), out.numpy()
    rows = 1 << max(0, (SMALL_GEMM // (K * C)).bit_length() - 1)
    if rows < MIN_CHUNK:
        rows = dZ.shape[1]
    np.matmul(Xt[:, :, :rows], dZ[:, :rows], out=out)
    for i in range(rows, dZ.shape[1], rows):
        part = np.matmul(Xt[:, :, i:i + rows], dZ[:, i:i + rows], out=ws.blas.part(out))
        out += part


def _bwd_vanilla(ws, mats, t):
    g = ws.dZ[:, t, :, :ws.H]
    _dphi_(ws.spec, ws.h(t + 1), g).mul_(ws.dh)


def _bwd_mix(ws, t, u, c, dc_out, du_out):
    """Backward of h = c + u (h_{t-1} - c): dc, du before the activations, and u dh -> tmp[3]."""
    dh, a = ws.dh, ws.tmp[0]
    torch.sub(ws.h(t), c, out=a)  # h_{t-1} - c
    _dsig_(u, du_out).mul_(a).mul_(dh)
    _dphi_(ws.spec, c, dc_out)
    torch.neg(u, out=a).add_(1)  # 1 - u
    dc_out.mul_(a).mul_(dh)
    torch.mul(u, dh, out=ws.tmp[3])


def _bwd_ugrnn(ws, mats, t):
    H, z, dz = ws.H, ws.Z[t], ws.dZ[:, t]
    _bwd_mix(ws, t, z[..., :H], z[..., H:2 * H], dz[..., H:2 * H], dz[..., :H])


def _bwd_gru(ws, mats, t):
    H, z, dz, dZc = ws.H, ws.Z[t], ws.dZ[:, t], ws.dZc[:, t]
    u, r = z[..., :H], z[..., H:2 * H]
    _bwd_mix(ws, t, u, ws.Zc[t], dZc, dz[..., :H])
    drh = ws.mm_reset(t)  # d(r h)
    _dsig_(r, dz[..., H:2 * H]).mul_(ws.h(t)).mul_(drh)
    ws.tmp[3].addcmul_(drh, r)


def _bwd_lstm(ws, mats, t):
    H, z, dz, dh, dc = ws.H, ws.Z[t], ws.dZ[:, t], ws.dh, ws.dc
    i, f, g, o = (z[..., k * H:(k + 1) * H] for k in range(4))
    di, df, dg, do = (dz[..., k * H:(k + 1) * H] for k in range(4))
    pc, a = ws.PC[:, t], ws.tmp[0]
    _dsig_(o, do).mul_(pc).mul_(dh)
    _dphi_(ws.spec, pc, a).mul_(o).mul_(dh)
    dc.add_(a)  # dL/dc_t: carried from step t+1 plus through h_t
    _dsig_(i, di).mul_(g).mul_(dc)
    _dsig_(f, df).mul_(ws.C[:, t]).mul_(dc)
    _dphi_(ws.spec, g, dg).mul_(i).mul_(dc)
    dc.mul_(f)  # carried to c_{t-1}


_BWD = {"vanilla": _bwd_vanilla, "ugrnn": _bwd_ugrnn, "gru": _bwd_gru, "lstm": _bwd_lstm}


# ---- the same steps through the fused kernels of lib.cell_kernels --------------------------

def _kfwd_vanilla(ws, mats, t):
    ws.mm_step(mats, t)
    ws.kernel(("fwd", t), lambda: K.vanilla_fwd(ws.spec.activation, ws.Z_at[t][..., :ws.H],
                                                ws.h(t + 1), bind=True))


def _kfwd_ugrnn(ws, mats, t):
    H, z = ws.H, ws.mm_step(mats, t)
    ws.kernel(("gate", t), lambda: K.sigmoid_blocks(z, H, 1, bind=True))
    ws.kernel(("fwd", t), lambda: K.mix_fwd(ws.spec.activation, z[..., :H], z[..., H:2 * H],
                                            ws.h(t), ws.h(t + 1), bind=True))


def _kfwd_gru(ws, mats, t):
    H, z = ws.H, ws.mm_step(mats, t)
    ws.kernel(("gate", t), lambda: K.sigmoid_blocks(z, H, 2, bind=True))
    ws.kernel(("reset", t), lambda: K.gru_reset(z[..., H:2 * H], ws.h(t),
                                                ws.XR[:, t, :, ws.I + 1:], bind=True))
    c = ws.mm_candidate(mats, t)
    ws.kernel(("fwd", t), lambda: K.mix_fwd(ws.spec.activation, z[..., :H], c, ws.h(t),
                                            ws.h(t + 1), bind=True))


def _kfwd_lstm(ws, mats, t):
    ws.mm_step(mats, t)
    ws.kernel(("fwd", t), lambda: K.lstm_fwd(ws.spec.activation, ws.Z_at[t][..., :4 * ws.H],
                                             ws.C[:, t], ws.C[:, t + 1], ws.PC[:, t],
                                             ws.h(t + 1), bind=True))


def _kbwd_vanilla(ws, mats, t):
    ws.kernel(("bwd", t), lambda: K.vanilla_bwd(ws.spec.activation, ws.h(t + 1), ws.dh,
                                                ws.dZ[:, t, :, :ws.H], bind=True))


def _kbwd_ugrnn(ws, mats, t):
    H, z, dz = ws.H, ws.Z_at[t], ws.dZ_at[t]
    ws.kernel(("bwd", t), lambda: K.mix_bwd(ws.spec.activation, z[..., :H], z[..., H:2 * H],
                                            ws.h(t), ws.dh, dz[..., :H], dz[..., H:2 * H],
                                            ws.tmp[3], bind=True))


def _kbwd_gru(ws, mats, t):
    H, z, dz, dZc = ws.H, ws.Z_at[t], ws.dZ_at[t], ws.dZc_at[t]
    ws.kernel(("bwd", t), lambda: K.mix_bwd(ws.spec.activation, z[..., :H], ws.Zc_at[t],
                                            ws.h(t), ws.dh, dz[..., :H], dZc, ws.tmp[3],
                                            bind=True))
    drh = ws.mm_reset(t)  # d(r h)
    ws.kernel(("reset bwd", t), lambda: K.gru_reset_bwd(z[..., H:2 * H], ws.h(t), drh,
                                                        dz[..., H:2 * H], ws.tmp[3], bind=True))


def _kbwd_lstm(ws, mats, t):
    ws.kernel(("bwd", t), lambda: K.lstm_bwd(ws.spec.activation, ws.Z_at[t][..., :4 * ws.H],
                                             ws.C[:, t], ws.PC[:, t], ws.dh, ws.dc,
                                             ws.dZ[:, t, :, :4 * ws.H], bind=True))


_FUSED_FWD = {"vanilla": _kfwd_vanilla, "ugrnn": _kfwd_ugrnn, "gru": _kfwd_gru,
              "lstm": _kfwd_lstm}
_FUSED_BWD = {"vanilla": _kbwd_vanilla, "ugrnn": _kbwd_ugrnn, "gru": _kbwd_gru,
              "lstm": _kbwd_lstm}
