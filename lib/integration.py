"""Line attractors of the integration task: coverage, time constants and the mode ablation.

* :func:`line_coverage`: how much of the line the trajectories trace (along the readout) has
  slow points near it. Each slow point covers a window of half-width ``delta`` (a fraction of
  the traced range, 0.05 declared here: ten evenly spread points cover the whole line) and the
  coverage is the measure of the union of windows inside the range, over the range.
* :func:`time_constant`: ``tau = 1 / |1 - |lambda||`` steps, the e-folding time of a mode;
  slow growth (``|lambda| > 1``) distorts an integral as much as slow decay, so both count.
* :func:`mode_ablation` / :func:`line_ablation`: the response of the linearised network to a
  sustained unit input along the selected stream, ``y(T) = w^T sum_{t<T} J^t b``, rebuilt from
  the top-m modes (by |lambda|) as a fraction of the full response, averaged over all slow points
  of the line (as in the paper). A sustained input, unlike a pulse read at lag T, does not
  discount modes with |lambda| ~ 0.9 by lambda^T.
* :func:`random_alignment`: the |cos| a direction drawn at random would have with a given one,
  the baseline for the alignment of an input drive with the integrating mode.
"""
from __future__ import annotations

import numpy as np
from scipy.special import gammaln

from .checks import check_positive, check_range

DELTA = 0.05  # half-width of a slow point's window, as a fraction of the traced range


def line_coverage(trajectory, slow, delta: float = DELTA, quantile: float = 0.01) -> float:
    """Fraction of the trajectories' readout range within ``delta * range`` of a slow point.

    Parameters
    ----------
    trajectory : [M] readout values of the states visited in one context
    slow : [m] readout values of that context's slow points (empty: coverage 0)
    delta : half-width of each slow point's window, as a fraction of the range
    quantile : the range runs from this quantile to its complement, so that a few
        stray states do not define the line's ends

    Returns
    -------
    coverage in [0, 1] (nan if the trajectory range is empty)
    """
    check_range("delta", delta, 0.0, 1.0)
    check_range("quantile", quantile, 0.0, 0.49)
    lo, hi = np.quantile(np.asarray(trajectory, float), [quantile, 1 - quantile])
    if not hi > lo:
        return float("nan")
    s = np.sort(np.asarray(slow, float).ravel())
    half = delta * (hi - lo)
    a, b = np.clip(s - half, lo, hi), np.clip(s + half, lo, hi)
    # union of sorted intervals: extend each start past the furthest end seen so far
    reach = np.maximum.accumulate(np.r_[lo, b])[:-1]
    covered = np.clip(b - np.maximum(a, reach), 0, None).sum()
    return float(covered / (hi - lo))


def time_constant(eigvals) -> np.ndarray:
    """tau = 1 / |1 - |lambda|| in steps [same shape]; inf for |lambda| = 1, nan stays nan."""
    r = np.abs(np.asarray(eigvals))
    with np.errstate(divide="ignore"):
        return 1.0 / np.abs(1.0 - r)


def random_alignment(dim) -> np.ndarray:
    """Expected |cos| between a fixed vector and a uniformly random direction in ``dim``
    dimensions [same shape as dim]: ``Gamma(d/2) / (sqrt(pi) Gamma((d+1)/2))`` (2/pi for d = 2,
    1/2 for d = 3, about ``sqrt(2 / (pi d))`` for large d)."""
    d = np.asarray(dim, dtype=float)
    if np.any(d < 1) or np.any(d != np.round(d)):
        raise ValueError(f"dim must hold positive integers, got {dim!r}")
    return np.exp(gammaln(d / 2) - gammaln((d + 1) / 2)) / np.sqrt(np.pi)


def eigen_decomposition(J) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Eigenvalues [S], right eigenvectors [S, S] (columns) and left ones [S, S] (rows, L R = I)."""
    lam, R = np.linalg.eig(np.asarray(J))
    return lam, R, np.linalg.inv(R)


def mode_contributions(eigvals, right, left, b, w, n_steps: int) -> np.ndarray:
    """Per-mode shares [..., S] of ``w^T sum_{t<T} J^t b``, sorted by decreasing |lambda|.

    Parameters
    ----------
    eigvals : [..., S]; right : [..., S, S] (columns); left : [..., S, S] (rows, L R = I)
    b : [..., S] input direction; w : [S] or [..., S] readout; n_steps : T

    The geometric sum is ``(1 - lambda^T) / (1 - lambda)``, T at lambda = 1. Sorting is stable
    with the positive imaginary part first, so a conjugate pair stays adjacent.
    """
    check_positive("n_steps", n_steps, integer=True)
    lam = np.asarray(eigvals, complex)
    b, w = np.asarray(b), np.asarray(w)
    wr = np.einsum("...s,...sk->...k", np.broadcast_to(w, b.shape), right)
    lb = np.einsum("...ks,...s->...k", left, b)
    one = np.isclose(lam, 1.0, rtol=0, atol=1e-12)
    with np.errstate(divide="ignore", invalid="ignore"):
        geo = np.where(one, n_steps, (1 - lam ** n_steps) / np.where(one, 2, 1 - lam))
    c = wr * lb * geo
    order = np.lexsort((-lam.imag, -np.abs(lam)), axis=-1)
    return np.take_along_axis(c, order, axis=-1)


def mode_ablation(eigvals, right, left, b, w, n_steps: int, n_modes: int | None = None,
                  tol: float = 1e-12) -> np.ndarray:
    """Response rebuilt from the top m modes over the full response, m = 1..n_modes [..., M].

    The real part of the cumulative sum is taken, so a conjugate pair cut in half counts half
    its (real) contribution. Points whose full response is below ``tol`` give nan.
    """
    c = mode_contributions(eigvals, right, left, b, w, n_steps)
    full = c.sum(axis=-1).real
    part = np.cumsum(c, axis=-1).real[..., :n_modes]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(np.abs(full)[..., None] > tol, part / full[..., None], np.nan)


def line_ablation(eigvals, right, left, b, w, n_steps: int,
                  n_modes: int | None = None) -> np.ndarray:
    """:func:`mode_ablation` averaged over the P slow points of a line [M] (inputs [P, ...])."""
    return np.nanmean(mode_ablation(eigvals, right, left, b, w, n_steps, n_modes), axis=0)


def modes_to_reach(ablation, level: float) -> np.ndarray:
    """Modes needed to rebuild ``level`` of the full response: ablation [..., M] (fractions for
    m = 1..M modes, :func:`line_ablation`) -> [...] float, nan where a row has no line (all
    nan) or stays below ``level`` over all its M modes (it needs more than M)."""
    hit = np.nan_to_num(np.asarray(ablation, dtype=float), nan=-np.inf) >= level
    return np.where(hit.any(axis=-1), np.argmax(hit, axis=-1) + 1.0, np.nan)
