"""MDS of distance matrices, and numbers for "the networks cluster by label".

The paper shows MDS pictures; this module turns them into statistics of the distance matrix
itself (not of the 2-D picture, which distorts distances):

* leave-one-out nearest-neighbour accuracy of predicting a network's label (architecture,
  activation) from its closest other network;
* chance: the accuracy expected when labels carry no information, i.e. the mean over label
  permutations, ``sum_c n_c (n_c - 1) / (N (N - 1))``; also the majority-class rate;
* a permutation p-value of the accuracy (labels shuffled, distances fixed);
* the silhouette score (scikit-learn, ``metric="precomputed"``), in [-1, 1], 0 for no structure.

One call gives them all: ``cluster_stats(D, labels, n_perm=1000, seed=0)``.
"""
from __future__ import annotations

import numpy as np
from sklearn.manifold import MDS
from sklearn.metrics import silhouette_score

from .checks import check_positive


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
    """Index [N] of each network's nearest other network (ties: the lowest index)."""
    D = check_distance_matrix(D).copy()
    np.fill_diagonal(D, np.inf)
    return np.argmin(D, axis=1)


def _codes(labels, n: int) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.shape != (n,):
        raise ValueError(f"labels must have one entry per network ({n}); got shape {labels.shape}")
    return np.unique(labels, return_inverse=True)[1]


def nn_accuracy(D, labels) -> float:
    """Leave-one-out 1-nearest-neighbour accuracy of predicting ``labels`` [N] from D [N, N]."""
    nn = nearest_neighbours(D)
    y = _codes(labels, len(nn))
    return float(np.mean(y[nn] == y))


def chance_accuracy(labels) -> float:
    """Expected leave-one-out 1-NN accuracy under randomly permuted labels."""
    counts = np.unique(np.asarray(labels), return_counts=True)[1]
    n = counts.sum()
    return float((counts * (counts - 1)).sum() / (n * (n - 1)))


def permutation_test(D, labels, n_perm: int = 1000, seed: int = 0) -> tuple[float, np.ndarray]:
    """p-value of the 1-NN accuracy against ``n_perm`` label permutations (vectorised).

    The nearest neighbours depend on D alone, so they are found once and every permutation
    is one fancy-indexing comparison.

    Returns
    -------
    p : (1 + #{permuted accuracy >= observed}) / (1 + n_perm)
    null : [n_perm] permuted accuracies
    """
    check_positive("n_perm", n_perm, integer=True)
    nn = nearest_neighbours(D)
    y = _codes(labels, len(nn))
    perms = np.random.default_rng(seed).permuted(np.tile(y, (n_perm, 1)), axis=1)
    null = np.mean(perms[:, nn] == perms, axis=1)
    observed = np.mean(y[nn] == y)
    return float((1 + np.sum(null >= observed - 1e-12)) / (1 + n_perm)), null


def silhouette(D, labels) -> float:
    """Silhouette score of ``labels`` under D (nan unless 2 <= classes <= N - 1)."""
    D = check_distance_matrix(D)
    y = _codes(labels, len(D))
    if not 2 <= len(np.unique(y)) <= len(D) - 1:
        return float("nan")
    return float(silhouette_score(D, y, metric="precomputed"))


def cluster_stats(D, labels, n_perm: int = 1000, seed: int = 0) -> dict:
    """All statistics of how well a distance matrix separates ``labels``.

    Parameters
    ----------
    D : [N, N] distance matrix
    labels : [N] class of each network (e.g. architecture)
    n_perm, seed : permutations of the p-value and their seed

    Returns
    -------
    dict with ``n`` (networks), ``classes``, ``nn_accuracy``, ``chance`` (expected accuracy
    under shuffled labels), ``majority`` (largest class fraction), ``p_value``, ``silhouette``
    """
    D = check_distance_matrix(D)
    y = np.asarray(labels)
    counts = np.unique(y, return_counts=True)[1]
    p, _ = permutation_test(D, y, n_perm, seed)
    return dict(n=len(D), classes=len(counts), nn_accuracy=nn_accuracy(D, y),
                chance=chance_accuracy(y), majority=float(counts.max() / counts.sum()),
                p_value=p, silhouette=silhouette(D, y))
