"""MDS of distance matrices, and numbers for "the networks cluster by label".

The paper shows MDS pictures; this module turns them into statistics of the distance matrix
itself (not of the 2-D picture, which distorts distances):

* leave-one-out nearest-neighbour accuracy of predicting a network's label (architecture,
  activation) from its closest other network. Coarse distances tie often and networks are
  ordered by label, so ties get no order: a network scores the fraction of its tied nearest
  neighbours that share its label, and the number of networks with ties is reported;
* chance: the accuracy expected when labels carry no information, i.e. the mean over label
  permutations, ``sum_c n_c (n_c - 1) / (N (N - 1))`` (exact with tie credit too); also the
  majority-class rate;
* permutation p-values (labels shuffled, distances fixed; all permutations in one product);
* threshold-free tests of label structure: PERMANOVA's pseudo-F and the mean between-class
  minus within-class distance;
* effect sizes with percentile bootstrap intervals over networks (above-chance accuracy, gap);
* the silhouette score (scikit-learn, ``metric="precomputed"``), in [-1, 1], 0 for no structure.

One call gives them all: ``cluster_stats(D, labels, n_perm=1000, seed=0)``.
"""
from __future__ import annotations

import numpy as np
from sklearn.manifold import MDS
from sklearn.metrics import silhouette_score

from .checks import check_positive, check_range


def check_distance_matrix(D) -> np.ndarray:
    """Return D [N, N] as float64 after checking it is square, finite, symmetric, zero-diagonal."""
    D = np.asarray(D, dtype=np.float64)
    if D.ndim != 2 or D.shape[0] != D.shape[1] or D.shape[0] < 3:
        raise ValueError(f"D must be a square distance matrix of >= 3 networks; got {D.shape}")
    if not np.all(np.isfinite(D)) or np.any(D < 0):
        raise ValueError("D must hold finite non-negative distances")
    if not np.allclose(D, D.T, atol=1e-10) or np.any(np.diag(D) != 0):
        raise ValueError("D must be symmetric with a zero diagonal")
    return D


def mds(D, n_components: int = 2, seed: int = 0) -> np.ndarray:
    """Metric MDS (SMACOF, scikit-learn) of a precomputed distance matrix.

    Initialised with classical MDS, so the result does not depend on random restarts;
    ``seed`` is passed on for completeness.

    Returns
    -------
    Y : [N, n_components]
    """
    D = check_distance_matrix(D)
    check_positive("n_components", n_components, integer=True)
    est = MDS(n_components=n_components, metric_mds=True, metric="precomputed",
              init="classical_mds", random_state=seed, normalized_stress="auto")
    return est.fit_transform(D)


def nearest_neighbours(D) -> np.ndarray:
    """Index [N] of each network's nearest other network, ties broken by the lowest index.

    Kept for callers that need one neighbour per network; it is biased when distances tie and
    networks are ordered by label, so the statistics below use :func:`neighbour_weights`.
    """
    D = check_distance_matrix(D).copy()
    np.fill_diagonal(D, np.inf)
    return np.argmin(D, axis=1)


def _tie_weights(D: np.ndarray, rtol: float) -> np.ndarray:
    """Weights [..., N, N]: 1/|T_i| on the tied nearest neighbours T_i of row i (inf excluded)."""
    m = D.min(axis=-1, keepdims=True)
    tied = (D <= m + rtol * np.maximum(m, 1e-300)) & np.isfinite(D)
    return tied / tied.sum(axis=-1, keepdims=True)


def neighbour_weights(D, rtol: float = 1e-9) -> np.ndarray:
    """Credit weights [N, N] of the tie-aware leave-one-out nearest neighbour.

    Row i spreads one unit of credit evenly over every other network whose distance to i
    equals the smallest one (within a relative ``rtol``), so no ordering of the networks
    can favour one label among tied neighbours.
    """
    D = check_distance_matrix(D).copy()
    np.fill_diagonal(D, np.inf)
    return _tie_weights(D, rtol)


def tie_counts(D, labels, rtol: float = 1e-9) -> tuple[int, int]:
    """Networks with more than one nearest neighbour, and those whose tied set mixes labels."""
    W = neighbour_weights(D, rtol)
    y = _codes(labels, len(W))
    tied = (W > 0).sum(axis=1) > 1
    same = ((W > 0) & (y[None] == y[:, None])).sum(axis=1)
    mixed = tied & (same > 0) & (same < (W > 0).sum(axis=1))
    return int(tied.sum()), int(mixed.sum())


def _codes(labels, n: int) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.shape != (n,):
        raise ValueError(f"labels must have one entry per network ({n}); got shape {labels.shape}")
    return np.unique(labels, return_inverse=True)[1]


def nn_accuracy(D, labels, rtol: float = 1e-9) -> float:
    """Tie-aware leave-one-out 1-NN accuracy of ``labels`` [N] from D [N, N].

    A network scores the fraction of its tied nearest neighbours that share its label.
    """
    W = neighbour_weights(D, rtol)
    y = _codes(labels, len(W))
    return float(np.mean((W * (y[None] == y[:, None])).sum(axis=1)))


def chance_accuracy(labels) -> float:
    """Expected leave-one-out 1-NN accuracy under randomly permuted labels.

    Exact for the tie-aware accuracy too: each row of credit weights sums to one.
    """
    counts = np.unique(np.asarray(labels), return_counts=True)[1]
    n = counts.sum()
    return float((counts * (counts - 1)).sum() / (n * (n - 1)))


def label_permutations(labels, n_perm: int, seed: int = 0) -> np.ndarray:
    """Class codes [n_perm, N] of ``n_perm`` independent shuffles of ``labels``."""
    check_positive("n_perm", n_perm, integer=True)
    y = np.unique(np.asarray(labels), return_inverse=True)[1]
    return np.random.default_rng(seed).permuted(np.tile(y, (n_perm, 1)), axis=1)


def _chunks(n_perm: int, size: int, budget: int = 2 ** 24):
    """Slices of the permutation axis holding at most ``budget`` numbers of ``size`` each."""
    step = max(1, budget // max(size, 1))
    return [slice(a, min(a + step, n_perm)) for a in range(0, n_perm, step)]


def _one_hot(codes: np.ndarray, n_classes: int) -> np.ndarray:
    """[P, N] codes -> [N, P * C] indicator columns (one block of C per permutation)."""
    P, N = codes.shape
    Y = np.zeros((N, P, n_classes))
    Y[np.arange(N)[:, None], np.arange(P)[None], codes.T] = 1.0
    return Y.reshape(N, P * n_classes)


def _accuracies(W: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Tie-aware accuracies [P] for label codes [P, N]: one matmul for all permutations."""
    P, N = codes.shape
    C = int(codes.max()) + 1
    out = np.empty(P)
    for s in _chunks(P, N * C):
        cs = codes[s]
        # credit of row i going to each class, then picked at i's own class
        WY = (W @ _one_hot(cs, C)).reshape(N, len(cs), C)
        out[s] = np.take_along_axis(WY, cs.T[..., None], axis=2)[..., 0].mean(axis=0)
    return out


def _within_sums(M: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Sums [P, C] over ordered same-class pairs of M [N, N] for label codes [P, N]."""
    P, N = codes.shape
    C = int(codes.max()) + 1
    out = np.empty((P, C))
    for s in _chunks(P, N * C):
        Y = _one_hot(codes[s], C)
        out[s] = ((M @ Y) * Y).sum(axis=0).reshape(-1, C)
    return out


def _p_value(observed: float, null: np.ndarray) -> float:
    """(1 + #{null >= observed}) / (1 + n_perm), with a tolerance for rounding."""
    return float((1 + np.sum(null >= observed - 1e-12 * max(1.0, abs(observed)))) / (1 + len(null)))


def permutation_test(D, labels, n_perm: int = 1000, seed: int = 0) -> tuple[float, np.ndarray]:
    """p-value of the tie-aware 1-NN accuracy against ``n_perm`` label permutations.

    The credit weights depend on D alone, so they are found once and all permutations are
    scored together by one matrix product.

    Returns
    -------
    p : (1 + #{permuted accuracy >= observed}) / (1 + n_perm)
    null : [n_perm] permuted accuracies
    """
    W = neighbour_weights(D)
    y = _codes(labels, len(W))
    null = _accuracies(W, label_permutations(y, n_perm, seed))
    return _p_value(_accuracies(W, y[None])[0], null), null


def pseudo_f(D, codes: np.ndarray) -> np.ndarray:
    """PERMANOVA pseudo-F [P] (Anderson 2001) of label codes [P, N] under distances D [N, N].

    ``F = (SS_B / (g - 1)) / (SS_W / (N - g))`` with ``SS_T = sum_{i<j} d_ij^2 / N`` and
    ``SS_W = sum_c sum_{i<j in c} d_ij^2 / n_c``; class sizes are the same in every row.
    """
    N = D.shape[0]
    sizes = np.bincount(codes[0])
    g = len(sizes)
    ss_t = (D ** 2).sum() / (2 * N)
    ss_w = (_within_sums(D ** 2, codes) / (2 * sizes)).sum(axis=1)
    return ((ss_t - ss_w) / (g - 1)) / (ss_w / (N - g))


def distance_gap(D, codes: np.ndarray) -> np.ndarray:
    """Mean between-class minus mean within-class distance [P] for label codes [P, N]."""
    N = D.shape[0]
    sizes = np.bincount(codes[0])
    n_within = (sizes * (sizes - 1)).sum()
    within = _within_sums(D, codes).sum(axis=1)
    return (D.sum() - within) / (N * N - (sizes ** 2).sum()) - within / n_within


def structure_test(D, labels, n_perm: int = 1000, seed: int = 0) -> dict:
    """Threshold-free tests of label structure, with permutation p-values.

    Returns
    -------
    dict with ``pseudo_F``, ``permanova_p``, ``r2`` (SS_B / SS_T, the share of squared distance
    explained by the labels), ``gap`` (mean between- minus within-class distance), ``gap_p``.
    Both p-values use the same ``n_perm`` label permutations.
    """
    D = check_distance_matrix(D)
    y = _codes(labels, len(D))
    if len(np.unique(y)) < 2 or len(np.unique(y)) >= len(D):
        raise ValueError("structure_test needs 2 <= classes < N")
    perms = label_permutations(y, n_perm, seed)
    f, f0 = pseudo_f(D, y[None])[0], pseudo_f(D, perms)
    gap, gap0 = distance_gap(D, y[None])[0], distance_gap(D, perms)
    g, N = len(np.unique(y)), len(D)
    r2 = f * (g - 1) / (f * (g - 1) + (N - g))
    return dict(pseudo_F=float(f), permanova_p=_p_value(f, f0), r2=float(r2), gap=float(gap),
                gap_p=_p_value(gap, gap0))


def stratified_resamples(labels, n_boot: int, seed: int = 0) -> np.ndarray:
    """Network indices [n_boot, N]: each class resampled with replacement to its own size.

    Resampling within classes keeps the design's class sizes (fixed by the training grid, not
    random), so chance stays comparable between resamples.
    """
    check_positive("n_boot", n_boot, integer=True)
    y = np.unique(np.asarray(labels), return_inverse=True)[1]
    rng = np.random.default_rng(seed)
    parts = [members[rng.integers(0, len(members), (n_boot, len(members)))]
             for members in (np.flatnonzero(y == c) for c in range(y.max() + 1))]
    return np.concatenate(parts, axis=1)


def _resample_effects(D: np.ndarray, y: np.ndarray, b: np.ndarray, rtol: float) -> np.ndarray:
    """Above-chance accuracy and distance gap [B, 2] of resamples b [B, N].

    Copies of one network sit at distance 0 from each other: they are never each other's
    neighbour, nor a pair in the mean distances, so resampling cannot invent structure.
    Chance is that of the resample (a random other network), so the effect is unbiased when
    labels carry no information; with strong structure the fewer distinct same-class networks
    lower the resample's chance a little, shifting the interval up by at most a few hundredths.
    """
    Db = D[b[:, :, None], b[:, None, :]]
    other = b[:, :, None] != b[:, None, :]
    same = y[b][:, :, None] == y[b][:, None, :]
    W = _tie_weights(np.where(other, Db, np.inf), rtol)
    acc = (W * same).sum(-1).mean(-1)
    chance = ((same & other).sum(-1) / other.sum(-1)).mean(-1)  # a random other network
    with np.errstate(invalid="ignore", divide="ignore"):
        within = (Db * (same & other)).sum((1, 2)) / (same & other).sum((1, 2))
    between = (Db * ~same).sum((1, 2)) / (~same).sum((1, 2))
    return np.stack([acc - chance, between - within], axis=1)


def bootstrap_effects(D, labels, n_boot: int = 1000, seed: int = 0, level: float = 0.95,
                      rtol: float = 1e-9) -> dict:
    """Percentile bootstrap intervals over networks of two effect sizes.

    Effects: ``above_chance`` (tie-aware 1-NN accuracy minus chance) and ``gap`` (mean
    between-class minus within-class distance). Networks are resampled with replacement
    within their class (:func:`stratified_resamples`); a network's copies are excluded from
    its neighbours and from the distance means (:func:`_resample_effects`).

    Returns
    -------
    dict with ``above_chance``, ``above_chance_lo``, ``above_chance_hi``, ``gap_lo``,
    ``gap_hi`` (the observed ``gap`` is in :func:`structure_test`).
    """
    D = check_distance_matrix(D)
    y = _codes(labels, len(D))
    check_range("level", level, 0.5, 0.999)
    idx = stratified_resamples(y, n_boot, seed)
    eff = np.concatenate([_resample_effects(D, y, idx[s], rtol)
                          for s in _chunks(n_boot, len(D) ** 2, 2 ** 22)])
    lo, hi = np.nanpercentile(eff, [50 * (1 - level), 50 * (1 + level)], axis=0)
    return dict(above_chance=nn_accuracy(D, y, rtol) - chance_accuracy(y),
                above_chance_lo=float(lo[0]), above_chance_hi=float(hi[0]),
                gap_lo=float(lo[1]), gap_hi=float(hi[1]))


def paired_difference(D1, D2, labels, n_boot: int = 1000, seed: int = 0, level: float = 0.95,
                      rtol: float = 1e-9) -> dict:
    """How much better D1 [N, N] separates ``labels`` than D2 [N, N] does, on the same networks.

    The difference of the two 1-NN accuracies (chance cancels) with a paired percentile
    bootstrap interval: each resample (:func:`stratified_resamples`) draws the same networks
    for both matrices, so what the networks share does not widen the interval.

    Returns
    -------
    dict with ``difference``, ``difference_lo``, ``difference_hi`` and ``n``.
    """
    D1, D2 = check_distance_matrix(D1), check_distance_matrix(D2)
    if D1.shape != D2.shape:
        raise ValueError(f"D1 and D2 must hold the same networks: shapes {D1.shape} and {D2.shape}")
    y = _codes(labels, len(D1))
    check_range("level", level, 0.5, 0.999)
    idx = stratified_resamples(y, n_boot, seed)
    diff = np.concatenate([_resample_effects(D1, y, idx[s], rtol)[:, 0]
                           - _resample_effects(D2, y, idx[s], rtol)[:, 0]
                           for s in _chunks(n_boot, len(D1) ** 2, 2 ** 22)])
    lo, hi = np.nanpercentile(diff, [50 * (1 - level), 50 * (1 + level)])
    return dict(n=len(D1), difference=nn_accuracy(D1, y, rtol) - nn_accuracy(D2, y, rtol),
                difference_lo=float(lo), difference_hi=float(hi))


def silhouette(D, labels) -> float:
    """Silhouette score of ``labels`` under D (nan unless 2 <= classes <= N - 1)."""
    D = check_distance_matrix(D)
    y = _codes(labels, len(D))
    if not 2 <= len(np.unique(y)) <= len(D) - 1:
        return float("nan")
    return float(silhouette_score(D, y, metric="precomputed"))


def cluster_stats(D, labels, n_perm: int = 1000, seed: int = 0, n_boot: int = 1000,
                  level: float = 0.95) -> dict:
    """All statistics of how well a distance matrix separates ``labels``.

    Parameters
    ----------
    D : [N, N] distance matrix
    labels : [N] class of each network (e.g. architecture)
    n_perm, seed : permutations of the p-values and their seed (also seeds the bootstrap)
    n_boot, level : bootstrap resamples over networks and the interval's coverage

    Returns
    -------
    dict with ``n`` (networks), ``classes``, ``nn_accuracy`` (tie-aware), ``chance`` (expected
    accuracy under shuffled labels), ``majority`` (largest class fraction), ``p_value`` (of the
    accuracy), ``silhouette``, ``n_tied`` (networks with several nearest neighbours),
    ``n_tied_mixed`` (of which the tied set mixes labels), ``above_chance`` with
    ``above_chance_lo/hi``, and from :func:`structure_test` ``pseudo_F``, ``permanova_p``,
    ``r2``, ``gap`` (with ``gap_lo/hi``), ``gap_p``.
    """
    D = check_distance_matrix(D)
    y = np.asarray(labels)
    counts = np.unique(y, return_counts=True)[1]
    p, _ = permutation_test(D, y, n_perm, seed)
    n_tied, n_mixed = tie_counts(D, y)
    out = dict(n=len(D), classes=len(counts), nn_accuracy=nn_accuracy(D, y),
               chance=chance_accuracy(y), majority=float(counts.max() / counts.sum()),
               p_value=p, silhouette=silhouette(D, y), n_tied=n_tied, n_tied_mixed=n_mixed)
    if 2 <= len(counts) < len(D):
        out |= bootstrap_effects(D, y, n_boot, seed, level) | structure_test(D, y, n_perm, seed)
    return out
