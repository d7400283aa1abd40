"""Representational distances between networks, for all pairs of a population at once.

Three metrics on state matrices ``X_i`` [M samples, U_i units] whose rows line up across
networks (the shared probe trials, :mod:`lib.geometry`):

* **SVCCA** (Raghu et al. 2017; the paper's metric). Centre, keep the top-k left singular
  vectors ``Q_i`` [M, k] (k fixed, or the fewest directions holding a fraction of the
  variance), run CCA between the two k-dimensional subspaces. The canonical correlations of
  a pair are the singular values of ``Q_i^T Q_j``, so each network's basis is computed once and
  a pair costs one small matmul and one k x k SVD. Distance = 1 - mean canonical correlation.
* **Procrustes shape distance** (Williams et al. 2021, angular form, alpha = 1). Centre,
  scale to unit Frobenius norm, best rotation: ``arccos ||X_i^T X_j||_*``. A metric.
* **Linear CKA** (Kornblith et al. 2019). ``||X_i^T X_j||_F^2 / (||X_i^T X_i||_F
  ||X_j^T X_j||_F)`` after centring; distance = 1 - CKA.

All three are invariant to shifts, rotations and isotropic scaling of a network's units;
SVCCA (within the kept subspace) also to any invertible linear map.

All pairs: the per-network matrices are stacked into one [M, N*K] matrix and the K x K blocks
of its Gram matrix are formed a block-row of networks at a time (``max_elements`` bounds the
memory), each block reduced to a number by a batched SVD or norm.
"""
from __future__ import annotations

import numpy as np
import scipy.linalg

from .checks import check_choice, check_positive
from .geometry import network_table, population_states, sample_matrix

METRICS = ("svcca", "procrustes", "cka")


# --- per-network preprocessing ---------------------------------------------------------------

def _as_samples(X, name: str) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or not np.all(np.isfinite(X)):
        raise ValueError(f"{name} must be a finite [samples, units] matrix; got shape {X.shape}")
    return X - X.mean(axis=0)


def _check_k(k, name: str = "k"):
    if isinstance(k, bool) or not isinstance(k, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name}={k!r} must be an int >= 1 or a variance fraction in (0, 1]")
    if isinstance(k, (int, np.integer)):
        check_positive(name, int(k), integer=True)
    elif not 0 < k <= 1:
        raise ValueError(f"{name}={k!r} must be an int >= 1 or a variance fraction in (0, 1]")


def svcca_basis(X, k=10, name: str = "X") -> np.ndarray:
    """Orthonormal basis of the top-k principal subspace of X.

    Parameters
    ----------
    X : [M, U] samples x units
    k : int (number of directions) or float in (0, 1] (fewest directions whose variance
        reaches this fraction of the total)
    name : how X is called in error messages

    Returns
    -------
    Q : [M, k] with orthonormal columns, spanning the centred data's top-k directions

    Raises
    ------
    ValueError
        If X is constant, if k exceeds the units or is not below the samples (centring removes
        one dimension), or if X has fewer than k directions with non-zero variance.
    """
    _check_k(k)
    Xc = _as_samples(X, name)
    M, U = Xc.shape
    lam, V, rank = _spectrum(Xc)
    if lam[0] <= np.finfo(float).tiny:
        raise ValueError(f"{name} has no variance: every unit is constant")
    if isinstance(k, (float, np.floating)):
        frac = np.cumsum(np.clip(lam, 0, None)) / np.clip(lam, 0, None).sum()
        k = min(int(np.searchsorted(frac, k - 1e-12) + 1), rank)
    elif k > U:
        raise ValueError(f"k={k} exceeds the {U} units of {name}")
    elif k >= M:
        raise ValueError(f"k={k} needs more than k samples; {name} has {M}")
    elif k > rank:
        raise ValueError(f"{name} has only {rank} directions with non-zero variance (constant or "
                         f"linearly dependent units); choose k <= {rank}")
    # only the subspace matters to CCA; a QR makes the basis orthonormal to machine precision
    return np.linalg.qr(Xc @ V[:, :k])[0]


def _spectrum(Xc):
    """Covariance eigenvalues [U] (descending), eigenvectors [U, U] and numerical rank of Xc.

    The small [U, U] Gram matrix is diagonalised instead of taking an SVD of the tall data
    (several times faster). Directions whose variance is below eps * max(M, U) of the largest
    are numerical zeros (the states come from float32 arithmetic, far coarser than this).
    """
    lam, V = np.linalg.eigh(Xc.T @ Xc)
    lam, V = lam[::-1], V[:, ::-1]
    rank = int((lam > max(lam[0], 0.0) * max(Xc.shape) * np.finfo(float).eps).sum())
    return lam, V, rank


def state_rank(X) -> int:
    """Number of directions with non-zero variance in X [M, U] (the largest usable SVCCA k)."""
    return _spectrum(_as_samples(X, "X"))[2]


def _normalised(X, name: str) -> np.ndarray:
    Xc = _as_samples(X, name)
    norm = np.linalg.norm(Xc)
    if norm <= np.finfo(float).tiny:
        raise ValueError(f"{name} has no variance: every unit is constant")
    return Xc / norm


# --- the all-pairs engine --------------------------------------------------------------------

def _stack_padded(mats) -> tuple[np.ndarray, int]:
    """N matrices [M, K_i] -> ([M, N*K], K), zero columns padding each to K = max K_i."""
    M = {m.shape[0] for m in mats}
    if len(M) != 1:
        raise ValueError(f"all networks need the same samples (rows); got row counts {sorted(M)}")
    K = max(m.shape[1] for m in mats)
    out = np.zeros((M.pop(), len(mats), K))
    for i, m in enumerate(mats):
        out[:, i, :m.shape[1]] = m
    return out.reshape(out.shape[0], -1), K


def pairwise_blocks(mats, reduce, max_elements: int = 2 ** 24) -> np.ndarray:
    """Apply ``reduce`` to every block ``A_i^T A_j`` of the stacked matrices, for all pairs.

    Parameters
    ----------
    mats : sequence of N arrays [M, K_i] (zero-padded to a common K)
    reduce : function of blocks [r, c, K, K] -> values [r, c]
    max_elements : bound on the entries of the blocks held at once (memory)

    Returns
    -------
    [N, N] symmetric matrix of ``reduce(A_i^T A_j)``; only i <= j is computed.
    """
    flat, K = _stack_padded(mats)
    N = len(mats)
    rows = max(1, max_elements // (N * K * K))
    out = np.zeros((N, N))
    for i0 in range(0, N, rows):
        i1 = min(N, i0 + rows)
        G = flat[:, i0 * K:i1 * K].T @ flat[:, i0 * K:]  # upper block-triangle only
        G = G.reshape(i1 - i0, K, N - i0, K).transpose(0, 2, 1, 3)
        out[i0:i1, i0:] = reduce(G)
    upper = np.triu(out)
    return upper + np.triu(upper, 1).T


def _nuclear(G):
    return np.linalg.svd(G, compute_uv=False).sum(axis=-1)


# --- the three metrics -----------------------------------------------------------------------

def svcca_distances(Xs, k=10, max_elements: int = 2 ** 24) -> np.ndarray:
    """SVCCA distance 1 - mean canonical correlation for all pairs.

    Parameters
    ----------
    Xs : sequence of N arrays [M, U_i] (same samples in every network)
    k : int or variance fraction (see :func:`svcca_basis`). With a fraction, networks may
        keep different numbers of directions; a pair then has min(k_i, k_j) correlations.

    Returns
    -------
    D : [N, N] in [0, 1], symmetric, zero diagonal
    """
    bases = [svcca_basis(X, k, name=f"network {i}") for i, X in enumerate(Xs)]
    ks = np.array([b.shape[1] for b in bases])
    sim = pairwise_blocks(bases, _nuclear, max_elements) / np.minimum.outer(ks, ks)
    return _as_distance(1.0 - sim)


def procrustes_distances(Xs, max_elements: int = 2 ** 24) -> np.ndarray:
    """Angular Procrustes shape distance arccos ||X_i^T X_j||_* (unit-norm, centred) for all pairs.

    Networks with fewer units are zero-padded (Williams et al. 2021), so a network and its
    rotated, shifted, isotropically scaled copy are at distance 0.

    Returns
    -------
    D : [N, N] in [0, pi/2], symmetric, zero diagonal
    """
    mats = [_normalised(X, f"network {i}") for i, X in enumerate(Xs)]
    return _as_distance(np.arccos(np.clip(pairwise_blocks(mats, _nuclear, max_elements), -1, 1)))


def cka_distances(Xs, max_elements: int = 2 ** 24) -> np.ndarray:
    """1 - linear CKA for all pairs.

    Returns
    -------
    D : [N, N] in [0, 1], symmetric, zero diagonal
    """
    mats = [_normalised(X, f"network {i}") for i, X in enumerate(Xs)]
    hsic = pairwise_blocks(mats, lambda G: (G ** 2).sum(axis=(-1, -2)), max_elements)
    norms = np.sqrt(np.diag(hsic))
    return _as_distance(1.0 - hsic / np.outer(norms, norms))


def _as_distance(D: np.ndarray) -> np.ndarray:
    D = np.clip(D, 0.0, None)
    np.fill_diagonal(D, 0.0)
    return D


def distance_matrix(Xs, metric: str = "svcca", k=10, max_elements: int = 2 ** 24) -> np.ndarray:
    """All-pairs distance by name: ``"svcca"`` (uses ``k``), ``"procrustes"`` or ``"cka"``."""
    check_choice("metric", metric, METRICS)
    if metric == "svcca":
        return svcca_distances(Xs, k, max_elements)
    fn = procrustes_distances if metric == "procrustes" else cka_distances
    return fn(Xs, max_elements)


# --- slow per-pair references (tests and the benchmark) --------------------------------------

def svcca_pair(X, Y, k=10) -> float:
    """SVCCA distance of one pair from scratch: SVD-truncate both, then whitened CCA.

    A deliberately independent route: the truncated data ``U_k S_k`` of each network, the
    covariance blocks, inverse square roots via ``scipy.linalg``, and the singular values of
    ``Cxx^-1/2 Cxy Cyy^-1/2``.
    """
    def reduced(Z):
        Z = Z - Z.mean(axis=0)
        u, s, _ = scipy.linalg.svd(Z, full_matrices=False)
        n = k if isinstance(k, (int, np.integer)) else int(
            np.searchsorted(np.cumsum(s ** 2) / np.sum(s ** 2), k - 1e-12) + 1)
        return u[:, :n] * s[:n]

    A, B = reduced(np.asarray(X, float)), reduced(np.asarray(Y, float))
    inv_sqrt = lambda C: scipy.linalg.inv(scipy.linalg.sqrtm(C)).real
    T = inv_sqrt(A.T @ A) @ (A.T @ B) @ inv_sqrt(B.T @ B)
    return 1.0 - float(scipy.linalg.svdvals(T).mean())


def procrustes_pair(X, Y) -> float:
    """Angular Procrustes distance of one pair via ``scipy.linalg.orthogonal_procrustes``."""
    X, Y = np.asarray(X, float), np.asarray(Y, float)
    U = max(X.shape[1], Y.shape[1])
    X, Y = (np.pad(Z - Z.mean(0), ((0, 0), (0, U - Z.shape[1]))) for Z in (X, Y))
    X, Y = X / np.linalg.norm(X), Y / np.linalg.norm(Y)
    R, _ = scipy.linalg.orthogonal_procrustes(X, Y)
    return float(np.arccos(np.clip(np.sum((X @ R) * Y), -1, 1)))


def cka_pair(X, Y) -> float:
    """1 - linear CKA of one pair from the sample Gram matrices, HSIC = tr(K H L H)."""
    M = len(X)
    H = np.eye(M) - 1.0 / M
    X, Y = np.asarray(X, float), np.asarray(Y, float)
    K, L = X @ X.T, Y @ Y.T
    hsic = lambda A, B: np.trace(A @ H @ B @ H)
    return 1.0 - hsic(K, L) / np.sqrt(hsic(K, K) * hsic(L, L))


# --- populations -----------------------------------------------------------------------------

def population_distances(pop, metric: str = "svcca", k=10, states=None):
    """Distances between the included networks of a trained population.

    Parameters
    ----------
    pop : :class:`lib.population.Population`
    metric, k : see :func:`distance_matrix`
    states : precomputed :func:`lib.geometry.probe_states` of ``pop.included()`` (optional)

    Returns
    -------
    D : [N, N] distance matrix, networks in the order of ``pop.included()`` (grouped by
        architecture, then activation)
    table : DataFrame, one row per network (label, arch, activation, n_hidden, index)
    """
    if states is None:
        states, _ = population_states(pop)
    Xs = [sample_matrix(s) for s in states]
    return distance_matrix(Xs, metric, k), network_table(pop.included())


def svcca_for_population(pop, k=10, states=None):
    """SVCCA distances and network table of a population (see :func:`population_distances`)."""
    return population_distances(pop, "svcca", k, states)
