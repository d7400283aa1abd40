"""Vanilla RNN, UGRNN, GRU and LSTM cells for whole populations of networks at once.

A population of one architecture, activation and size keeps its parameters stacked on a
leading network axis and runs with batched matmuls. Every cell exposes the one-step map
``s' = F(s, x)`` on its full state ``s`` (for the LSTM ``s = [h, c]``), shared by training
and by the dynamics analyses.

Parameter shapes (N networks, I inputs, H hidden units, G = gates x H, O outputs):
``W`` [N, H, G], ``U`` [N, I, G], ``b`` [N, 1, G], ``W_out`` [N, H, O], ``b_out`` [N, 1, O].
Gate blocks along G: vanilla [c], UGRNN [u, c], GRU [u, r, c], LSTM [i, f, g, o].
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .checks import check_choice, check_positive

ARCHS = ("vanilla", "ugrnn", "gru", "lstm")
ACTIVATIONS = ("tanh", "relu")
N_BLOCKS = {"vanilla": 1, "ugrnn": 2, "gru": 3, "lstm": 4}
PHI = {"tanh": torch.tanh, "relu": torch.relu}
RELU_LSTM_FORGET_BIAS = 4.0  # see init_params


@dataclass(frozen=True)
class CellSpec:
    """Architecture of every network in a population.

    ``gru_reset_after`` switches the GRU candidate from the paper's ``W_c (r * h)`` to
    PyTorch's ``r * (W_c h + b_hn)`` convention; the book uses the paper's form.
    """

    arch: str
    activation: str
    n_in: int
    n_hidden: int
    n_out: int
    gru_reset_after: bool = False

    def __post_init__(self):
        check_choice("arch", self.arch, ARCHS)
        check_choice("activation", self.activation, ACTIVATIONS)
        for name in ("n_in", "n_hidden", "n_out"):
            check_positive(name, getattr(self, name), integer=True)

    @property
    def state_dim(self) -> int:
        """Size of the dynamical state: 2H for the LSTM ([h, c]), H otherwise."""
        return 2 * self.n_hidden if self.arch == "lstm" else self.n_hidden

    @property
    def n_gate(self) -> int:
        """Width G of the stacked gate pre-activations."""
        return N_BLOCKS[self.arch] * self.n_hidden


def init_params(spec: CellSpec, seeds: Sequence[int]) -> dict[str, torch.Tensor]:
    """Initial parameters for one network per seed, stacked on the network axis.

    Recurrent and input weights are Gaussian with variance 1/fan-in; update gates (UGRNN,
    GRU) and the LSTM forget gate start with bias +1 so that early training remembers.

    One exception, the ReLU LSTM. There ``h = o * relu(c) >= 0`` and nothing on the loop
    ``c -> h -> g -> c`` saturates, so a random ``W_g`` (recurrent weights into the candidate)
    makes the loop expanding for some seeds: states of 1e5 after 100 steps of the sine task at
    initialisation, and most such networks diverged within the first 100 updates. Its ``W_g``
    therefore starts at zero, so that the cell starts as an integrator, ``c' = f c + i g`` with
    ``g = relu(x U_g + b_g)``, that grows at most linearly, and its forget bias is
    ``RELU_LSTM_FORGET_BIAS`` (4) instead of 1. Both were chosen by training the book's default
    ReLU-LSTM cells: divergences in 8 networks per task (flip-flop, sine, CDI) fell from 4, 7,
    3 (as drawn before) to 2, 5, 0 with ``W_g = 0`` alone and to 0, 2, 0 with forget bias 4
    too (forget bias 0: 8, 8, -; 2: 0, 7, -; 3: 0, 3, 0; 5: -, 5, -). The other weights are
    drawn as before (same random stream).
    """
    nets = [_init_one(spec, torch.Generator().manual_seed(int(s))) for s in seeds]
    return {k: torch.stack([n[k] for n in nets]) for k in nets[0]}


def _init_one(spec: CellSpec, gen: torch.Generator) -> dict[str, torch.Tensor]:
    H, I, O, G = spec.n_hidden, spec.n_in, spec.n_out, spec.n_gate
    b = torch.zeros(1, G)
    if spec.arch in ("ugrnn", "gru"):
        b[:, :H] = 1.0
    if spec.arch == "lstm":
        b[:, H:2 * H] = 1.0
    params = {
        "W": torch.randn(H, G, generator=gen) / H ** 0.5,
        "U": torch.randn(I, G, generator=gen) / I ** 0.5,
        "b": b,
        "W_out": torch.randn(H, O, generator=gen) / H ** 0.5,
        "b_out": torch.zeros(1, O),
    }
    if spec.arch == "lstm" and spec.activation == "relu":  # see init_params
        params["W"][:, 2 * H:3 * H] = 0.0
        params["b"][:, H:2 * H] = RELU_LSTM_FORGET_BIAS
    if spec.arch == "gru" and spec.gru_reset_after:
        params["b_hn"] = torch.zeros(1, H)
    return params


def input_drive(params: dict, x: torch.Tensor) -> torch.Tensor:
    """``x U + b``: x [N or 1, ..., I] -> [N, ..., G]."""
    U, b = params["U"], params["b"]
    lead = (U.shape[0],) + (1,) * (x.dim() - 3)
    return torch.matmul(x, U.reshape(*lead, *U.shape[1:])) + b.reshape(*lead, *b.shape[1:])


def update(spec: CellSpec, params: dict, s: torch.Tensor, drive: torch.Tensor) -> torch.Tensor:
    """One step from a precomputed input drive: s [N, B, S], drive [N, B, G] -> [N, B, S]."""
    phi, H, W = PHI[spec.activation], spec.n_hidden, params["W"]
    if spec.arch == "vanilla":
        return phi(torch.baddbmm(drive, s, W))
    if spec.arch == "ugrnn":
        z = torch.baddbmm(drive, s, W)
        u = torch.sigmoid(z[..., :H])
        return u * s + (1 - u) * phi(z[..., H:])
    if spec.arch == "gru":
        return _gru(spec, params, s, drive, phi)
    h, c = s[..., :H], s[..., H:]
    z = torch.baddbmm(drive, h, W)
    i, f, o = (torch.sigmoid(z[..., k * H:(k + 1) * H]) for k in (0, 1, 3))
    c_new = f * c + i * phi(z[..., 2 * H:3 * H])
    return torch.cat([o * phi(c_new), c_new], dim=-1)


def _gru(spec, params, h, drive, phi):
    H, W = spec.n_hidden, params["W"]
    gates = torch.sigmoid(torch.baddbmm(drive[..., :2 * H], h, W[..., :2 * H]))
    u, r = gates[..., :H], gates[..., H:]
    if spec.gru_reset_after:
        cand = drive[..., 2 * H:] + r * (torch.bmm(h, W[..., 2 * H:]) + params["b_hn"])
    else:
        cand = torch.baddbmm(drive[..., 2 * H:], r * h, W[..., 2 * H:])
    return u * h + (1 - u) * phi(cand)


def step(spec: CellSpec, params: dict, s: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The one-step map F: s [N, B, S], x [N or 1, B, I] -> s' [N, B, S]."""
    drive = input_drive(params, x)
    return update(spec, params, s, drive.expand(s.shape[0], *drive.shape[1:]))


def unroll(spec: CellSpec, params: dict, x: torch.Tensor, s0: torch.Tensor | None = None):
    """Run every network over input sequences.

    Parameters
    ----------
    x : [N or 1, B, T, I] inputs (a leading 1 feeds the same trials to every network).
    s0 : [N, B, S] initial state; zeros if omitted.

    Returns
    -------
    states : [N, B, T, S]
    """
    n = params["W"].shape[0]
    drive = input_drive(params, x).expand(n, -1, -1, -1)
    s = s0 if s0 is not None else drive.new_zeros(n, x.shape[1], spec.state_dim)
    out = []
    # unbind, not drive[:, :, t]: one backward node, not a zero-filled gradient per step
    for d in drive.unbind(2):
        s = update(spec, params, s, d)
        out.append(s)
    return torch.stack(out, dim=2)


def readout(spec: CellSpec, params: dict, states: torch.Tensor) -> torch.Tensor:
    """Linear readout of h: states [N, ..., S] -> outputs [N, ..., O]."""
    h = states[..., :spec.n_hidden]
    n = h.shape[0]
    flat = h.reshape(n, -1, spec.n_hidden)
    y = torch.baddbmm(params["b_out"], flat, params["W_out"])
    return y.reshape(*h.shape[:-1], spec.n_out)


def select(params: dict, idx) -> dict:
    """Parameters of a subset of networks (a copy; the caller's tensors are untouched)."""
    idx = torch.as_tensor(idx, dtype=torch.long)
    return {k: v[idx].clone() for k, v in params.items()}
