"""How well a linearisation predicts the commanded frequency: scale, offset and error.

A correlation between predicted and commanded frequency ignores scale and offset (a
prediction that is always twice the command correlates perfectly), so per architecture this
module gives the least-squares slope and offset, the median relative error
``|predicted - commanded| / commanded`` with a bootstrap interval over networks, and the
correlation for comparison.

A missing prediction (no fixed point, or no complex eigenvalue pair) counts as an infinite
error: it is a failure to predict, and the median then ignores it only while fewer than half
of an architecture's predictions are missing.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .checks import check_positive


def long_table(omegas, predicted, arch) -> pd.DataFrame:
    """One row per (network, command) from omegas [J], predicted [N, J] and arch [N].

    Returns columns ``net``, ``arch``, ``commanded``, ``predicted``.
    """
    predicted = np.asarray(predicted, float)
    omegas, arch = np.asarray(omegas, float), np.asarray(arch)
    N, J = predicted.shape
    if omegas.shape != (J,) or arch.shape != (N,):
        raise ValueError(f"omegas must be [{J}] and arch [{N}] for predicted {predicted.shape}")
    return pd.DataFrame(dict(net=np.repeat(np.arange(N), J), arch=np.repeat(arch, J),
                             commanded=np.tile(omegas, N), predicted=predicted.ravel()))


def relative_error(commanded, predicted) -> np.ndarray:
    """|predicted - commanded| / commanded [M]; inf where the prediction is missing."""
    c, p = np.asarray(commanded, float), np.asarray(predicted, float)
    return np.where(np.isfinite(p), np.abs(p - c) / c, np.inf)


def fit_line(commanded, predicted) -> tuple[float, float, float]:
    """Least squares ``predicted ~ slope * commanded + offset``, and the correlation (finite pairs)."""
    c, p = np.asarray(commanded, float), np.asarray(predicted, float)
    ok = np.isfinite(p)
    if ok.sum() < 3 or np.ptp(c[ok]) == 0:
        return np.nan, np.nan, np.nan
    slope, offset = np.polyfit(c[ok], p[ok], 1)
    return float(slope), float(offset), float(np.corrcoef(c[ok], p[ok])[0, 1])


def _median_ci(err: np.ndarray, net: np.ndarray, n_boot: int, rng, level: float):
    """Percentile interval of the median error, resampling networks with replacement."""
    nets, inv = np.unique(net, return_inverse=True)
    by_net = [err[inv == k] for k in range(len(nets))]
    meds = [np.median(np.concatenate([by_net[k] for k in rng.integers(0, len(nets), len(nets))]))
            for _ in range(n_boot)]
    with np.errstate(invalid="ignore"):  # inf medians (mostly missing) interpolate to nan/inf
        lo, hi = np.percentile(meds, [50 * (1 - level), 50 * (1 + level)], method="lower")
    return float(lo), float(hi)


def frequency_accuracy(table: pd.DataFrame, n_boot: int = 1000, seed: int = 0,
                       level: float = 0.95) -> pd.DataFrame:
    """Per architecture: how well predicted frequencies follow the commanded ones.

    Parameters
    ----------
    table : one row per (network, command), columns ``net`` (network id), ``arch``,
        ``commanded``, ``predicted`` (rad/step; nan when missing), e.g. :func:`long_table`.
    n_boot, seed, level : bootstrap over networks of the median relative error.

    Returns
    -------
    DataFrame indexed by arch: ``n`` (networks), ``points``, ``missing`` (predictions),
    ``slope``, ``offset`` (least squares, 1 and 0 if exact), ``median_rel_error`` with
    ``rel_error_lo``/``rel_error_hi``, ``corr``.
    """
    check_positive("n_boot", n_boot, integer=True)
    rng = np.random.default_rng(seed)
    rows = {}
    for arch, d in table.groupby("arch", sort=False):
        err = relative_error(d["commanded"], d["predicted"])
        slope, offset, corr = fit_line(d["commanded"], d["predicted"])
        lo, hi = _median_ci(err, d["net"].to_numpy(), n_boot, rng, level)
        rows[arch] = dict(n=d["net"].nunique(), points=len(d), missing=int(np.isinf(err).sum()),
                          slope=slope, offset=offset, median_rel_error=float(np.median(err)),
                          rel_error_lo=lo, rel_error_hi=hi, corr=corr)
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("arch")
