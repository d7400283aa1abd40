"""The autograd trainer the book used before :mod:`lib.bptt`, kept as a reference.

It trains the same networks with the same data streams, Adam, L2, clipping and divergence rule
as :func:`lib.train.train_shard`, but differentiates with ``torch.autograd`` through
:func:`lib.models.unroll`. The tests check the fast trainer against it, and
``benchmarks/bench_train.py`` times it as the baseline. It does not determine any stored
weights, so it is not part of the cache key.
"""
from __future__ import annotations

import numpy as np
import torch

from .config import ShardConfig
from .train import (EXPLODE_FACTOR, REGULARISED, ShardResult, TrainState, batch, cell_spec,
                    evaluate, hyperparameters, initial_state, task_loss)


def train_shard_autograd(cfg: ShardConfig, state: TrainState | None = None) -> ShardResult:
    """Train every network of a shard with autograd (CPU, one thread); resume from ``state``."""
    torch.set_num_threads(1)
    spec, task = cell_spec(cfg), cfg.make_task()
    state = state or initial_state(cfg)
    state = TrainState(dict(state.params), dict(state.m), dict(state.v), state.step,
                       state.losses.copy(), state.diverged_at.copy())
    hyper = hyperparameters(cfg)
    for t in range(state.step, cfg.n_steps):
        _train_step(spec, task, cfg, hyper, state, t)
    return ShardResult(cfg, spec, state.params, state.losses, evaluate(cfg, spec, state),
                       state.diverged_at)


def _train_step(spec, task, cfg, hyper, state: TrainState, t: int) -> None:
    params = {k: p.detach().requires_grad_(True) for k, p in state.params.items()}
    x, y, mask = batch(task, [n.seed for n in cfg.nets], t, cfg.batch_size)
    loss = task_loss(spec, params, x, y, mask)
    l2 = sum((params[k] ** 2).flatten(1).sum(1) for k in REGULARISED)
    active = torch.from_numpy(state.active)
    total = torch.where(active, loss + hyper["l2"] * l2, torch.zeros_like(loss)).sum()
    grads = torch.autograd.grad(total, list(params.values()))
    loss_np = loss.detach().numpy()
    state.losses[t] = np.where(state.active, loss_np, np.nan)
    _flag_divergence(state, loss_np, grads, t)
    _adam(state, dict(zip(params, grads)), hyper, t, cfg)
    state.step = t + 1


def _flag_divergence(state: TrainState, loss: np.ndarray, grads, t: int) -> None:
    finite = np.isfinite(loss)
    for g in grads:
        finite &= torch.isfinite(g.flatten(1)).all(1).numpy()
    exploding = loss > EXPLODE_FACTOR * np.maximum(state.losses[0], 1e-3)
    state.diverged_at[state.active & (~finite | exploding)] = t


def _adam(state: TrainState, grads: dict, hyper: dict, t: int, cfg: ShardConfig,
          b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8) -> None:
    active = torch.from_numpy(state.active).float()
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
