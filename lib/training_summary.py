"""Summaries of trained populations for the training chapter: design, learning curves, outputs.

Training losses are shown *normalised* (MSE divided by the variance of the task's targets on the
held-out evaluation trials), the same scale as the test NMSE that decides inclusion, so that the
inclusion threshold can be drawn on every curve and the three tasks share one axis.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import torch

from . import models, train
from .config import PopulationConfig
from .population import Network, Population
from .tables import power_of_ten


def design_table(configs: dict[str, PopulationConfig]) -> pd.DataFrame:
    """One row per task: the grid that was trained and how (from the configurations)."""
    fmt = lambda v: ", ".join(str(x) for x in v)  # noqa: E731
    rows = {}
    for task, c in configs.items():
        trials = dict(c.task_overrides).get("n_time", c.shards()[0].make_task().n_time)
        rows[task] = {"architectures": fmt(c.archs), "activations": fmt(c.activations),
                      "hidden units": fmt(c.hidden_sizes), "learning rates": fmt(c.lrs),
                      "L2 strengths": ", ".join(map(power_of_ten, c.l2s)),
                      "gradient clip": fmt(c.clips),
                      "seeds per setting": c.n_seeds, "networks": c.n_networks,
                      "training steps": c.n_steps, "batch (trials)": c.batch_size,
                      "steps per trial": trials, "lr decay (total)": c.lr_decay,
                      "inclusion: NMSE ≤": c.max_nmse, "cells trained otherwise": _exceptions(c)}
    return pd.DataFrame(rows)


def _exceptions(c: PopulationConfig) -> str:
    """The per-cell settings of a configuration, one entry per cell, e.g. ``lstm-relu: W_g = 0,
    forget-gate bias 4, lr 0.0007, 5000 steps``, or ``none``: its learning rate and steps, and
    the ReLU LSTM's own start (:func:`lib.models.init_params`), which every task shares."""
    cells: dict[str, list[str]] = {}
    if "lstm" in c.archs and "relu" in c.activations:
        cells["lstm-relu"] = [f"W_g = 0, forget-gate bias {models.RELU_LSTM_FORGET_BIAS:g}"]
    for a, f, v in c.cell_lrs:
        cells.setdefault(f"{a}-{f}", []).append(f"lr {v:g}")
    for a, f, v in c.cell_steps:
        cells.setdefault(f"{a}-{f}", []).append(f"{v} steps")
    return "; ".join(f"{cell}: {', '.join(v)}" for cell, v in cells.items()) or "none"


def target_variance(config: PopulationConfig) -> float:
    """Variance of the targets on the held-out evaluation trials (the NMSE denominator)."""
    shard = config.shards()[0]
    return float(shard.make_task().sample(shard.eval_batch, train.EVAL_SEED).targets.var())


def running_mean(x: np.ndarray, window: int) -> np.ndarray:
    """Trailing running mean along axis 0 of x [T, N] (shorter window at the start): [T, N].

    Computed window by window rather than from a cumulative sum: early losses of a few networks
    reach 1e12, and differences of such cumulative sums would swamp the later values of 1e-3.
    NaNs count as missing.
    """
    x = np.asarray(x, dtype=np.float64)
    padded = np.concatenate([np.full((window - 1,) + x.shape[1:], np.nan), x])
    windows = np.lib.stride_tricks.sliding_window_view(padded, window, axis=0)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN windows give NaN, as wanted
        return np.nanmean(windows, axis=-1)


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


def steps_to_reach(curves: dict[tuple, pd.DataFrame], level: float) -> pd.Series:
    """First training step at which each cell's median curve is at or below ``level``.

    ``curves`` as returned by :func:`learning_curves`; cells that never get there are NaN.
    Returns a Series indexed by (arch, activation).
    """
    out = {}
    for key, df in curves.items():
        hit = df.step[df["median"] <= level]
        out[key] = float(hit.iloc[0]) if len(hit) else np.nan
    return pd.Series(out, dtype=float)


def describe_reach(reach: pd.Series, n_steps: int, where: str) -> str:
    """A phrase on when the cells of one task reach a level (``reach`` from :func:`steps_to_reach`)."""
    done, never = reach.dropna(), [f"{a}-{f}" for a, f in reach.index[reach.isna()]]
    text = (f"{where} by step {done.max():.0f} (slowest: {'-'.join(done.idxmax())}; the longest "
            f"training there runs {n_steps} steps)" if len(done) else f"{where} in no cell")
    return text + (f", never for {', '.join(never)}" if never and len(done) else "")


def typical_network(pop: Population) -> tuple[Network, pd.Series]:
    """The included network of median test NMSE (ties: the first), and its table row."""
    pop.included()  # raises EmptyPopulationError, with the counts, when there is none
    df = pop.table()
    df = df[df.included].sort_values("nmse", kind="stable")
    row = df.iloc[(len(df) - 1) // 2]
    return Network(pop.shards[int(row["shard"])], int(row["index"])), row


@torch.no_grad()
def network_outputs(net: Network, inputs: np.ndarray) -> np.ndarray:
    """Outputs of one network: inputs [B, T, I] -> outputs [B, T, O] (numpy)."""
    params = net.params
    states = models.unroll(net.spec, params, torch.from_numpy(np.asarray(inputs))[None])
    return models.readout(net.spec, params, states)[0].numpy()


def describe_counts(counts: pd.DataFrame) -> dict[str, str]:
    """Sentences for the prose from a (task, arch, activation) table of :meth:`Population.counts`.

    Returns ``diverged_cells`` (cells where any network diverged), ``short_cells`` (cells that
    lost networks: how many of those trained were kept) and ``empty_cells`` (a sentence on
    cells left empty).
    """
    cells = [f"{a}-{f} on the {t.lower()}" for t, a, f in counts.index]
    diverged = [f"{c} ({n} of {m})" for c, n, m in zip(cells, counts.diverged, counts.trained)
                if n > 0]
    short = [f"{c} ({n} of {m} kept)" for c, n, m in zip(cells, counts.included, counts.trained)
             if n < m]
    empty = [c for c, n in zip(cells, counts.included) if n == 0]
    return {"diverged_cells": "; ".join(diverged) or "none",
            "short_cells": "; ".join(short) or "none",
            "empty_cells": (f"No network of {', '.join(empty)} passed, so that cell is absent "
                            "from the analyses of that task in the following chapters."
                            if empty else "Every cell keeps at least one network.")}


FLAT_FRACTION = 0.2  # the last 20 % of training ...
FLAT_BOUND = 0.1  # ... may lower the median loss by at most 10 % of the reference level


def flattening(curves: dict[tuple, pd.DataFrame], level: float | None = None,
               fraction: float = FLAT_FRACTION, bound: float = FLAT_BOUND) -> pd.DataFrame:
    """Has each cell's median learning curve flattened by the last step?

    The criterion: over the last ``fraction`` of training, the (smoothed) median loss falls by
    less than ``bound`` times a reference level, ``(m[start] - m[end]) / ref < bound``. With
    ``level=None`` the reference is the curve's own value ``m[start]`` (a relative criterion,
    strict: curves far below the inclusion threshold keep falling by 15-25 % on a log scale);
    with ``level`` the inclusion threshold (``config.max_nmse`` on the normalised curves), a
    flat curve is one that further training at the same pace could not move by a tenth of the
    threshold, so it could not change which networks pass.

    ``curves`` as returned by :func:`learning_curves`. Returns a DataFrame indexed by
    (arch, activation) with columns ``start`` and ``end`` (median loss at the two ends),
    ``improvement`` (the fall over the reference) and ``flat`` (bool).
    """
    rows = {}
    for key, df in curves.items():
        med = df["median"].to_numpy()
        first = min(len(med) - 1, int(round((1 - fraction) * len(med))))
        start, end = float(med[first]), float(med[-1])
        ref = start if level is None else level
        gain = (start - end) / ref if ref > 0 else 0.0
        rows[key] = {"start": start, "end": end, "improvement": gain, "flat": gain < bound}
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index = pd.MultiIndex.from_tuples(out.index, names=["arch", "activation"])
    return out
