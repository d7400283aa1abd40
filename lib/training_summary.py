"""Summaries of trained populations for the training chapter: design, learning curves, outputs.

Training losses are shown *normalised* (MSE divided by the variance of the task's targets on the
held-out evaluation trials), the same scale as the test NMSE that decides inclusion, so that the
inclusion threshold can be drawn on every curve and the three tasks share one axis.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from . import models, train
from .config import PopulationConfig
from .population import Network, Population


def design_table(configs: dict[str, PopulationConfig]) -> pd.DataFrame:
    """One row per task: the grid that was trained and how (from the configurations)."""
    fmt = lambda v: ", ".join(str(x) for x in v)  # noqa: E731
    rows = {}
    for task, c in configs.items():
        trials = dict(c.task_overrides).get("n_time", c.shards()[0].make_task().n_time)
        rows[task] = {"architectures": fmt(c.archs), "activations": fmt(c.activations),
                      "hidden units": fmt(c.hidden_sizes), "learning rates": fmt(c.lrs),
                      "L2 strengths": fmt(c.l2s), "gradient clip": fmt(c.clips),
                      "seeds per setting": c.n_seeds, "networks": c.n_networks,
                      "training steps": c.n_steps, "batch (trials)": c.batch_size,
                      "steps per trial": trials, "lr decay (total)": c.lr_decay,
                      "inclusion: NMSE ≤": c.max_nmse}
    return pd.DataFrame(rows)


def target_variance(config: PopulationConfig) -> float:
    """Variance of the targets on the held-out evaluation trials (the NMSE denominator)."""
    shard = config.shards()[0]
    return float(shard.make_task().sample(shard.eval_batch, train.EVAL_SEED).targets.var())


def running_mean(x: np.ndarray, window: int) -> np.ndarray:
    """Trailing running mean along axis 0 of x [T, N] (shorter window at the start): [T, N]."""
    c = np.cumsum(np.nan_to_num(x, nan=0.0), axis=0)
    t = np.arange(1, len(x) + 1)
    lo = np.maximum(t - window, 0)
    total = c - np.vstack([np.zeros((1,) + x.shape[1:]), c])[lo]
    return total / (t - lo).reshape(-1, *([1] * (x.ndim - 1)))


def learning_curves(pop: Population, window: int = 25,
                    quantiles: tuple = (0.1, 0.9)) -> dict[tuple, pd.DataFrame]:
    """Normalised training loss per (arch, activation): median and a quantile band over networks.

    Networks that diverged are left out (their losses stop at divergence). Returns
    ``{(arch, activation): DataFrame[step, median, lo, hi, n]}``.
    """
    var = target_variance(pop.config)
    by_cell: dict[tuple, list] = {}
    for sh in pop.shards:
        keep = ~sh.diverged
        if keep.any():
            key = (sh.config.arch, sh.config.activation)
            by_cell.setdefault(key, []).append(sh.losses[:, keep] / var)
    out = {}
    for key, parts in by_cell.items():
        smooth = running_mean(np.concatenate(parts, axis=1), max(1, window))
        lo, med, hi = np.quantile(smooth, [quantiles[0], 0.5, quantiles[1]], axis=1)
        out[key] = pd.DataFrame({"step": np.arange(1, len(smooth) + 1), "median": med,
                                 "lo": lo, "hi": hi, "n": smooth.shape[1]})
    return out


def typical_network(pop: Population) -> tuple[Network, pd.Series]:
    """The included network of median test NMSE (ties: the first), and its table row."""
    df = pop.table()
    df = df[df.included].sort_values("nmse", kind="stable")
    if df.empty:
        raise ValueError("no network passed the inclusion criterion")
    row = df.iloc[(len(df) - 1) // 2]
    return Network(pop.shards[int(row["shard"])], int(row["index"])), row


@torch.no_grad()
def network_outputs(net: Network, inputs: np.ndarray) -> np.ndarray:
    """Outputs of one network: inputs [B, T, I] -> outputs [B, T, O] (numpy)."""
    params = net.params
    states = models.unroll(net.spec, params, torch.from_numpy(np.asarray(inputs))[None])
    return models.readout(net.spec, params, states)[0].numpy()
