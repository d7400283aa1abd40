"""Train a shard of networks at once: per-network Adam, L2, clipping, divergence detection.

Every network sees its own data stream (trial batch t of network n is drawn from the seed
``[seed_n, t]``), so a network's training does not depend on which shard it is in, and a run
resumed from a checkpoint reproduces an uninterrupted run exactly. Gradients come from the
hand-written backward pass of :mod:`lib.bptt`; :mod:`lib.train_autograd` keeps the autograd
trainer it replaced, as the reference the tests compare against.
"""
from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from . import bptt, cell_kernels, models, streams
from .config import ShardConfig

EXPLODE_FACTOR = 100.0  # a loss this many times its first value counts as diverged
EVAL_SEED = 10_000_019  # seed of the held-out evaluation trials (the same for every network)
REGULARISED = ("W", "U", "W_out")
ADAM = (0.9, 0.999, 1e-8)  # beta1, beta2, eps


@dataclass
class TrainState:
    """Everything needed to continue training: parameters, Adam moments, logs.

    Arrays: ``params``/``m``/``v`` as in :mod:`lib.models` ([N, ...]); ``losses`` [n_steps, N]
    (NaN after a network diverged); ``diverged_at`` [N] (-1 while healthy).
    """

    params: dict
    m: dict
    v: dict
    step: int
    losses: np.ndarray
    diverged_at: np.ndarray

    @property
    def active(self) -> np.ndarray:
        return self.diverged_at < 0


@dataclass
class ShardResult:
    """A trained shard.

    Attributes
    ----------
    config : ShardConfig
    spec : models.CellSpec
    params : dict of Tensor [N, ...]
    losses : ndarray [n_steps, N], training loss (task MSE, without L2) per step
    nmse : ndarray [N], test MSE / target variance on held-out trials (inf if diverged)
    diverged_at : ndarray [N], step at which a network diverged, -1 if it did not
    """

    config: ShardConfig
    spec: models.CellSpec
    params: dict
    losses: np.ndarray
    nmse: np.ndarray
    diverged_at: np.ndarray

    @property
    def diverged(self) -> np.ndarray:
        return self.diverged_at >= 0


def cell_spec(cfg: ShardConfig) -> models.CellSpec:
    task = cfg.make_task()
    return models.CellSpec(cfg.arch, cfg.activation, task.n_in, cfg.n_hidden, task.n_out)


def resolve_device(device: str = "auto") -> torch.device:
    """``"auto"`` picks CUDA when present, else the CPU; a GPU is never required."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def initial_state(cfg: ShardConfig) -> TrainState:
    params = models.init_params(cell_spec(cfg), [n.seed for n in cfg.nets])
    zeros = {k: torch.zeros_like(p) for k, p in params.items()}
    n = len(cfg.nets)
    return TrainState(params, zeros, {k: z.clone() for k, z in zeros.items()}, 0,
                      np.full((cfg.n_steps, n), np.nan, np.float32), np.full(n, -1, np.int64))


def batch(task, seeds, step: int, batch_size: int, device="cpu"):
    """Per-network trials: inputs [N, B, T, I], targets and mask [N, B, T, O] (tensors)."""
    trials = [task.sample(batch_size, np.random.default_rng([s, step])) for s in seeds]
    return tuple(torch.from_numpy(np.stack([getattr(t, k) for t in trials])).to(device)
                 for k in ("inputs", "targets", "mask"))


def task_loss(spec, params, x, y, mask) -> torch.Tensor:
    """Masked mean squared error per network: [N]."""
    out = models.readout(spec, params, models.unroll(spec, params, x))
    err = (out - y) ** 2 * mask
    return err.flatten(1).sum(1) / mask.flatten(1).sum(1)


def hyperparameters(cfg: ShardConfig, device="cpu") -> dict[str, torch.Tensor]:
    """Per-network ``lr``, ``l2`` and ``clip``: [N] each."""
    return {k: torch.tensor([getattr(n, k) for n in cfg.nets], dtype=torch.float32,
                            device=device) for k in ("lr", "l2", "clip")}


def train_shard(cfg: ShardConfig, state: TrainState | None = None,
                checkpoint: Callable[[TrainState], None] | None = None,
                checkpoint_every: int = 100, progress: bool = True,
                device: str = "cpu") -> ShardResult:
    """Train every network of a shard; resume from ``state`` if given.

    ``checkpoint(state)`` is called every ``checkpoint_every`` steps (the store writes it to
    disk atomically). Diverged networks (non-finite or exploding loss) are frozen and flagged;
    they never stop the others. ``device``: ``"cpu"``, ``"cuda"`` or ``"auto"``.
    """
    dev = resolve_device(device)
    if dev.type == "cpu":
        torch.set_num_threads(1)  # same numbers whatever executor runs the shard
    # numpy's BLAS (lib.bptt's matmuls on the CPU) on one thread too
    with flushing_subnormals(dev), threadpool_limits(1, user_api="blas"):
        run = _Run(cfg, state or initial_state(cfg), dev)
        bar = tqdm(range(run.step, cfg.n_steps), disable=not progress, leave=False,
                   desc=f"{cfg.task} {cfg.arch}-{cfg.activation} x{len(cfg.nets)}")
        for t in bar:
            run.train_step(t)
            if checkpoint is not None and (t + 1) % checkpoint_every == 0 \
                    and t + 1 < cfg.n_steps:
                checkpoint(run.state())
        final = run.state()
        nmse = evaluate(cfg, run.spec, final)
    return ShardResult(cfg, run.spec, final.params, final.losses, nmse, final.diverged_at)


@contextmanager
def flushing_subnormals(dev: torch.device):
    """Within the block, this thread's CPU arithmetic reads and writes subnormal floats
    (magnitude below 1.2e-38 in float32) as zero (x86's FTZ and DAZ; other devices unchanged).

    L2 decay drives unused weights, and their Adam moments, towards zero through the subnormal
    range, where Intel cores compute in microcode: a sine-wave ReLU LSTM shard whose weights
    held ~10 000 subnormal values trained ~10x slower per step on an Intel Xeon (AMD EPYC
    cores showed no such cost). Flushing changes only those values, to zero, the same way on
    every x86 CPU, so the numbers do not depend on the vendor. On leaving, flushing is turned
    off (torch's default; torch cannot report the setting, so an earlier one is not restored).
    """
    on = dev.type == "cpu" and torch.set_flush_denormal(True)
    try:
        yield
    finally:
        if on:
            torch.set_flush_denormal(False)


class _Run:
    """A shard in training: packed weights and Adam moments, buffers, logs (see lib.bptt)."""

    def __init__(self, cfg: ShardConfig, state: TrainState, dev: torch.device):
        self.cfg, self.spec, self.task = cfg, cell_spec(cfg), cfg.make_task()
        self.seeds = [n.seed for n in cfg.nets]
        pack = lambda d: bptt.pack(self.spec, {k: v.to(dev) for k, v in d.items()})  # noqa
        self.mats, self.m, self.v = pack(state.params), pack(state.m), pack(state.v)
        self.step, self.losses = state.step, state.losses.copy()
        self.diverged_at = state.diverged_at.copy()
        self.hyper = {k: v.view(-1, 1, 1) for k, v in hyperparameters(cfg, dev).items()}
        self.hyper_np = {k: v.cpu().numpy().ravel() for k, v in self.hyper.items()}
        self.decay = bptt.decay_mask(self.spec, self.mats)
        self.ws = bptt.Workspace(self.spec, self.mats, cfg.batch_size, self.task.n_time)
        self.tmp = [torch.empty_like(A) for A in self.mats]

    def state(self) -> TrainState:
        """A :class:`TrainState` on the CPU (copies, safe to keep)."""
        unpack = lambda ms: {k: v.cpu() for k, v in bptt.unpack(self.spec, ms).items()}  # noqa
        return TrainState(unpack(self.mats), unpack(self.m), unpack(self.v), self.step,
                          self.losses.copy(), self.diverged_at.copy())

    def train_step(self, t: int) -> None:
        dev = self.mats[0].device
        x, y, mask = (torch.from_numpy(a).to(dev).transpose(1, 2) for a in  # [N, T, B, .]
                      streams.shard_batch(self.task, self.seeds, t, self.cfg.batch_size))
        self.ws.set_inputs(x)
        active_np = self.diverged_at < 0
        out = bptt.forward(self.ws, self.mats).transpose(0, 1)  # [N, T, B, O]
        if self.ws.fused:
            self._update_fused(out, y, mask, active_np, t)
        else:
            self._update(out, y, mask, active_np, t)
        self.step = t + 1

    def _update(self, out, y, mask, active_np, t: int) -> None:
        """The rest of a step as torch ops: loss, backward pass, L2, divergence, Adam."""
        active = torch.from_numpy(active_np).to(out.device, torch.float32).view(-1, 1, 1)
        loss = self._loss_and_output_grad(out, y, mask, active)
        grads = bptt.backward(self.ws, self.mats)
        for g, A, d in zip(grads, self.mats, self.decay):  # + d/dA of l2 |A|^2 off the biases
            g.addcmul_(A, d * (2 * self.hyper["l2"] * active))
        loss_np = loss.cpu().numpy()
        self.losses[t] = np.where(active_np, loss_np, np.nan)
        finite = np.ones(len(loss_np), bool)
        for g in grads:
            finite &= torch.isfinite(g.flatten(1)).all(1).cpu().numpy()
        self._flag_divergence(loss_np, finite, t)
        self._adam(grads, t)

    def _update_fused(self, out, y, mask, active_np, t: int) -> None:
        """:meth:`_update` through the C kernels of :mod:`lib.cell_kernels` (float32 on the
        CPU): the loss and its output gradient in one pass, then per weight matrix one pass
        for L2, the finiteness check and the squared norm, and one for Adam."""
        act = active_np.astype(np.float32)
        loss_np = cell_kernels.loss_grad(out, y, mask, act, self.ws.dY)
        grads = bptt.backward(self.ws, self.mats)
        sumsq, finite = np.zeros(len(act)), np.ones(len(act), np.int8)
        for g, A in zip(grads, self.mats):
            cell_kernels.l2_sumsq(A, g, 2 * self.hyper_np["l2"] * act, self.spec.n_in, sumsq,
                                  finite)
        self.losses[t] = np.where(active_np, loss_np, np.nan)
        self._flag_divergence(loss_np, finite.astype(bool), t)
        b1, b2, eps = ADAM
        act = (self.diverged_at < 0).astype(np.float32)
        h = self.hyper_np
        scale = np.minimum(h["clip"] / (np.sqrt(sumsq) + 1e-12), 1.0) * act
        step = h["lr"] * self.cfg.lr_decay ** (t / self.cfg.n_steps) * act / (1 - b1 ** (t + 1))
        keep1, keep2 = 1 + (b1 - 1) * act, 1 + (b2 - 1) * act
        for A, g, m, v in zip(self.mats, grads, self.m, self.v):
            cell_kernels.adam_step(A, g, m, v, scale, keep1, keep2, step, 1 - b1, 1 - b2,
                                   1 - b2 ** (t + 1), eps)

    def _loss_and_output_grad(self, out, y, mask, active) -> torch.Tensor:
        """Masked MSE per network [N]; writes dL/dy (zero for inactive networks) into ws.dY.

        out, y, mask: [N, T, B, O]. The arithmetic runs in a buffer laid out as the targets
        (``empty_like`` keeps their strides): on the strided views of the workspace every op
        would loop over rows of only O elements.
        """
        err = torch.sub(out, y, out=torch.empty_like(y)).mul_(mask)
        total = mask.sum(dim=(1, 2, 3))
        loss = (err * err).sum(dim=(1, 2, 3)) / total
        self.ws.dY.copy_(err.mul_((2 * active.view(-1, 1, 1, 1)) / total.view(-1, 1, 1, 1)))
        return loss

    def _flag_divergence(self, loss: np.ndarray, finite_grads: np.ndarray, t: int) -> None:
        """Flag the networks whose loss or gradient (finite_grads [N] bool) is not finite, or
        whose loss exploded, as diverged at step t."""
        finite = np.isfinite(loss) & finite_grads
        exploding = loss > EXPLODE_FACTOR * np.maximum(self.losses[0], 1e-3)
        self.diverged_at[(self.diverged_at < 0) & (~finite | exploding)] = t

    def _adam(self, grads, t: int) -> None:
        """Adam with per-network learning rate, decay and global-norm clipping, in place.

        Networks that are not active keep their weights and moments exactly.
        """
        b1, b2, eps = ADAM
        dev = self.mats[0].device
        active = torch.from_numpy(self.diverged_at < 0).to(dev, torch.float32).view(-1, 1, 1)
        for g in grads:
            torch.nan_to_num_(g, nan=0.0, posinf=0.0, neginf=0.0)
        norm = torch.sqrt(sum(g.pow(2).sum(dim=(1, 2), keepdim=True) for g in grads))
        scale = torch.clamp(self.hyper["clip"] / (norm + 1e-12), max=1.0) * active
        lr = self.hyper["lr"] * self.cfg.lr_decay ** (t / self.cfg.n_steps) * active
        c1, c2 = 1 - b1 ** (t + 1), 1 - b2 ** (t + 1)
        keep1, keep2 = 1 + (b1 - 1) * active, 1 + (b2 - 1) * active  # beta, or 1 if frozen
        for A, g, m, v, tmp in zip(self.mats, grads, self.m, self.v, self.tmp):
            g.mul_(scale)
            m.mul_(keep1).add_(g, alpha=1 - b1)
            v.mul_(keep2).addcmul_(g, g, value=1 - b2)
            torch.div(v, c2, out=tmp).sqrt_().add_(eps)
            torch.div(m, tmp, out=tmp).mul_(lr / c1)
            A.sub_(tmp)


@torch.no_grad()
def evaluate(cfg: ShardConfig, spec, state: TrainState) -> np.ndarray:
    """Normalised test error per network on held-out trials shared by all networks: [N]."""
    trials = cfg.make_task().sample(cfg.eval_batch, EVAL_SEED)
    dev = state.params["W"].device
    x, y, mask = (torch.from_numpy(a)[None].to(dev)
                  for a in (trials.inputs, trials.targets, trials.mask))
    nmse = task_loss(spec, state.params, x, y, mask).cpu().numpy() / float(trials.targets.var())
    nmse = np.where(np.isfinite(nmse), nmse, np.inf)
    return np.where(state.active, nmse, np.inf)
