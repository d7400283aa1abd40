"""Train a shard of networks at once: per-network Adam, L2, clipping, divergence detection.

Every network sees its own data stream (trial batch t of network n is drawn from the seed
``[seed_n, t]``), so a network's training does not depend on which shard it is in, and a run
resumed from a checkpoint reproduces an uninterrupted run exactly.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from . import models
from .config import ShardConfig

EXPLODE_FACTOR = 100.0  # a loss this many times its first value counts as diverged
EVAL_SEED = 10_000_019  # seed of the held-out evaluation trials (the same for every network)
REGULARISED = ("W", "U", "W_out")


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
    spec, task = cell_spec(cfg), cfg.make_task()
    state = _to_device(state or initial_state(cfg), dev)
    hyper = {k: v.to(dev) for k, v in _hyper(cfg).items()}
    bar = tqdm(range(state.step, cfg.n_steps), disable=not progress, leave=False,
               desc=f"{cfg.task} {cfg.arch}-{cfg.activation} x{len(cfg.nets)}")
    for t in bar:
        _train_step(spec, task, cfg, hyper, state, t)
        if checkpoint is not None and (t + 1) % checkpoint_every == 0 and t + 1 < cfg.n_steps:
            checkpoint(state)
    nmse = evaluate(cfg, spec, state)
    state = _to_device(state, torch.device("cpu"))
    return ShardResult(cfg, spec, state.params, state.losses, nmse, state.diverged_at)


def _to_device(state: TrainState, dev: torch.device) -> TrainState:
    move = lambda d: {k: v.to(dev) for k, v in d.items()}  # noqa: E731
    return TrainState(move(state.params), move(state.m), move(state.v), state.step,
                      state.losses, state.diverged_at)


def _hyper(cfg: ShardConfig) -> dict[str, torch.Tensor]:
    return {k: torch.tensor([getattr(n, k) for n in cfg.nets], dtype=torch.float32)
            for k in ("lr", "l2", "clip")}


def _train_step(spec, task, cfg, hyper, state: TrainState, t: int) -> None:
    params = {k: p.detach().requires_grad_(True) for k, p in state.params.items()}
    dev = state.params["W"].device
    x, y, mask = batch(task, [n.seed for n in cfg.nets], t, cfg.batch_size, dev)
    loss = task_loss(spec, params, x, y, mask)
    l2 = sum((params[k] ** 2).flatten(1).sum(1) for k in REGULARISED)
    active = torch.from_numpy(state.active).to(dev)
    total = torch.where(active, loss + hyper["l2"] * l2, torch.zeros_like(loss)).sum()
    grads = torch.autograd.grad(total, list(params.values()))
    loss_np = loss.detach().cpu().numpy()
    state.losses[t] = np.where(state.active, loss_np, np.nan)
    _flag_divergence(state, loss_np, grads, t)
    _adam(state, dict(zip(params, grads)), hyper, t, cfg)
    state.step = t + 1


def _flag_divergence(state: TrainState, loss: np.ndarray, grads, t: int) -> None:
    finite = np.isfinite(loss)
    for g in grads:
        finite &= torch.isfinite(g.flatten(1)).all(1).cpu().numpy()
    first = state.losses[0]
    exploding = loss > EXPLODE_FACTOR * np.maximum(first, 1e-3)
    newly = state.active & (~finite | exploding)
    state.diverged_at[newly] = t


def _adam(state: TrainState, grads: dict, hyper: dict, t: int, cfg: ShardConfig,
          b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8) -> None:
    """Adam with per-network learning rate, decay and global-norm clipping; frozen if inactive."""
    active = torch.from_numpy(state.active).float().to(state.params["W"].device)
    grads = {k: torch.nan_to_num(g, nan=0.0, posinf=0.0, neginf=0.0) for k, g in grads.items()}
    norm = torch.sqrt(sum(g.pow(2).flatten(1).sum(1) for g in grads.values()))
    scale = torch.clamp(hyper["clip"] / (norm + 1e-12), max=1.0) * active
    lr = hyper["lr"] * cfg.lr_decay ** (t / cfg.n_steps) * active
    c1, c2 = 1 - b1 ** (t + 1), 1 - b2 ** (t + 1)
    for k, g in grads.items():
        shape = (-1,) + (1,) * (g.dim() - 1)
        g = g * scale.view(shape)
        keep = active.view(shape)
        state.m[k] = keep * (b1 * state.m[k] + (1 - b1) * g) + (1 - keep) * state.m[k]
        state.v[k] = keep * (b2 * state.v[k] + (1 - b2) * g * g) + (1 - keep) * state.v[k]
        step = lr.view(shape) * (state.m[k] / c1) / (torch.sqrt(state.v[k] / c2) + eps)
        state.params[k] = state.params[k].detach() - step


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
