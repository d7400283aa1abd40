"""Representational distances between networks, for all pairs of a population at once.

Four metrics on state matrices ``X_i`` [M samples, U_i units] whose rows line up across
networks (the shared probe trials, :mod:`lib.geometry`):

* **SVCCA** (Raghu et al. 2017; the paper's metric). Centre, keep the top-k left singular
  vectors ``Q_i`` [M, k] (k fixed, or the fewest directions holding a fraction of the
  variance), run CCA between the two k-dimensional subspaces. The canonical correlations of
  a pair are the singular values of ``Q_i^T Q_j``, so each network's basis is computed once and
  a pair costs one small matmul and one k x k SVD. Distance = 1 - mean canonical correlation.
* **PWCCA** (Morcos et al. 2018). CCA on every direction with variance, the canonical
  correlations averaged with weights that say how much of each network's activity lies along
  each canonical variate; symmetrised (see :func:`pwcca_distances`).
* **Procrustes shape distance** (Williams et al. 2021, angular form, alpha = 1). Centre,
  scale to unit Frobenius norm, best rotation: ``arccos ||X_i^T X_j||_*``. A metric.
* **Linear CKA** (Kornblith et al. 2019). ``||X_i^T X_j||_F^2 / (||X_i^T X_i||_F
  ||X_j^T X_j||_F)`` after centring; distance = 1 - CKA.

SVCCA, Procrustes and CKA are invariant to shifts, rotations and isotropic scaling of a
network's units, SVCCA (within the kept subspace) also to any invertible linear map. PWCCA's
weights sum absolute values over units, so it is invariant to shifts, isotropic scaling,
permutations and sign flips of units, not to general rotations (a rotated copy is still at
distance 0: every canonical correlation is 1).

All pairs: :func:`lib.pairwise.pairwise_blocks` forms the blocks ``A_i^T A_j`` group by group
of equal width (hidden size, or kept dimensions), a memory-bounded tile of pairs at a time, so
each pair costs what its own sizes cost. :func:`distances` gives every metric, and SVCCA for
many k, at the price of one: each network's centred states are factorised once into a basis
nested by variance and their coordinates in it, so one block per pair serves them all.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import scipy.linalg

from .checks import check_choice, check_positive
from .geometry import network_table, population_states, sample_matrix
from .pairwise import pairwise_blocks

METRICS = ("svcca", "pwcca", "procrustes", "cka")
MAX_ELEMENTS = 2 ** 24  # numbers a tile of pairs may hold (128 MiB of float64)


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


def _n_directions(lam, rank: int, shape, k, name: str) -> int:
    """Directions SVCCA keeps for ``k`` (an int, or a variance fraction: Raghu et al.'s rule)."""
    M, U = shape
    if isinstance(k, (float, np.floating)):
        lam = np.clip(lam, 0, None)
        frac = np.cumsum(lam) / lam.sum()
        return min(int(np.searchsorted(frac, k - 1e-12) + 1), rank)
    if k > U:
        raise ValueError(f"k={k} exceeds the {U} units of {name}")
    if k >= M:
        raise ValueError(f"k={k} needs more than k samples; {name} has {M}")
    if k > rank:
        raise ValueError(f"{name} has only {rank} directions with non-zero variance (constant or "
                         f"linearly dependent units); choose k <= {rank}")
    return int(k)


def _prepare(X, ks, name: str, full: bool = False):
    """One network's centred states, factorised once for every metric.

    Returns Q [M, w] with orthonormal columns, C = Q^T Xc [w, U] and the directions kept for
    each k of ``ks`` [len(ks)]. The first k_t columns of Q span the top-k_t principal subspace
    for each t (the QR of the projected data keeps the nesting: its first k columns depend only
    on the first k columns). w is the rank with ``full`` (then Xc = Q C up to the numerically
    zero directions, which every metric can use), else the largest kept number.
    """
    for k in ks:
        _check_k(k)
    Xc = _as_samples(X, name)
    lam, V, rank = _spectrum(Xc)
    if lam[0] <= np.finfo(float).tiny:
        raise ValueError(f"{name} has no variance: every unit is constant")
    kept = np.array([_n_directions(lam, rank, Xc.shape, k, name) for k in ks], dtype=int)
    w = rank if full or not len(ks) else int(kept.max())
    Q = np.linalg.qr(Xc @ V[:, :w])[0]
    return Q, Q.T @ Xc, kept


def svcca_basis(X, k=10, name: str = "X") -> np.ndarray:
    """Orthonormal basis of the top-k principal subspace of X.

    Parameters
    ----------
    X : [M, U] samples x units
    k : int (number of directions) or float in (0, 1] (fewest directions whose variance
        reaches this fraction of the total: Raghu et al.'s rule, e.g. 0.99)
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
    return _prepare(X, [k], name)[0]


def state_rank(X) -> int:
    """Number of directions with non-zero variance in X [M, U] (the largest usable SVCCA k)."""
    return _spectrum(_as_samples(X, "X"))[2]


def _nuclear(G, *_):
    return np.linalg.svd(G, compute_uv=False).sum(axis=-1)


# --- SVCCA -----------------------------------------------------------------------------------

def svcca_curve(Xs, ks, max_elements: int = MAX_ELEMENTS) -> np.ndarray:
    """SVCCA distances for several k at once: one basis and one block per pair serve them all.

    Parameters
    ----------
    Xs : sequence of N arrays [M, U_i] (same samples in every network)
    ks : sequence of T values of k (ints, variance fractions, or both; see
        :func:`svcca_basis`). Every int k must be usable by every network
        (k <= :func:`state_rank`).
    max_elements : bound on the numbers held at once by a tile of pairs

    Returns
    -------
    D : [T, N, N], ``D[t]`` equal to ``svcca_distances(Xs, ks[t])``
    """
    return distances(Xs, ("svcca",), ks, max_elements)["svcca"]


def _svcca_sim(G, ka, kb) -> np.ndarray:
    """Mean canonical correlation [r, c] from blocks G [r, c, Ka, Kb] of nested bases.

    Row network i keeps its first ``ka[i]`` directions, column network j its first ``kb[j]``;
    a pair has min(ka[i], kb[j]) correlations. Where the tile's networks keep different
    numbers, the unused rows and columns are zeroed (zeros add no singular values).
    """
    wa, wb = ka.max(), kb.max()
    g = G[..., :wa, :wb]
    if ka.min() < wa or kb.min() < wb:
        g = g * (np.arange(wa) < ka[:, None])[:, None, :, None] \
              * (np.arange(wb) < kb[:, None])[None, :, None, :]
    return _nuclear(g) / np.minimum.outer(ka, kb)


def svcca_distances(Xs, k=10, max_elements: int = MAX_ELEMENTS) -> np.ndarray:
    """SVCCA distance 1 - mean canonical correlation for all pairs.

    Parameters
    ----------
    Xs : sequence of N arrays [M, U_i] (same samples in every network)
    k : int or variance fraction (see :func:`svcca_basis`). With a fraction, networks may
        keep different numbers of directions; a pair then has min(k_i, k_j) correlations.
    max_elements : bound on the numbers held at once by a tile of pairs

    Returns
    -------
    D : [N, N] in [0, 1], symmetric, zero diagonal
    """
    return svcca_curve(Xs, [k], max_elements)[0]


def separation_curve(Xs, labels: dict, ks, score: Callable | None = None,
                     max_elements: int = MAX_ELEMENTS) -> pd.DataFrame:
    """How well SVCCA separates each labelling, as a function of k.

    Parameters
    ----------
    Xs : sequence of N arrays [M, U_i]
    labels : ``{name: [N] labels}``, e.g. ``{"arch": ..., "activation": ...}``
    ks : the k values (ints and/or variance fractions), computed in one pass
        (:func:`svcca_curve`)
    score : function ``(D [N, N], labels [N]) -> float``; default
        :func:`lib.embed.nn_accuracy` (leave-one-out 1-NN accuracy)

    Returns
    -------
    DataFrame with one row per k: column ``k`` and one column per labelling
    """
    return separation_scores(svcca_curve(Xs, ks, max_elements), labels, ks, score)


def separation_scores(D, labels: dict, ks, score: Callable | None = None) -> pd.DataFrame:
    """:func:`separation_curve` from SVCCA distances already computed, D [T, N, N] for the T
    values ``ks`` (e.g. ``distances(...)["svcca"]``)."""
    if score is None:
        from .embed import nn_accuracy as score
    return pd.DataFrame([{"k": k, **{name: score(Dk, y) for name, y in labels.items()}}
                         for k, Dk in zip(ks, D)])


# --- PWCCA -----------------------------------------------------------------------------------

def _pwcca_sim(G, Ca, Cb) -> np.ndarray:
    """Symmetrised projection-weighted mean correlation [r, c].

    G [r, c, Ka, Kb] = Q_a^T Q_b; Ca [r, Ka, Ua], Cb [c, Kb, Ub] each network's data in its
    basis. The canonical variates are Q_a u_i and Q_b v_i (u, v singular vectors of G); the
    weight of variate i is the summed absolute projection of the network's units onto it.
    """
    u, rho, vh = np.linalg.svd(G, full_matrices=False)  # [r,c,Ka,d], [r,c,d], [r,c,d,Kb]
    rho = np.clip(rho, 0.0, 1.0)
    wa = np.abs(np.swapaxes(u, -1, -2) @ Ca[:, None]).sum(-1)  # [r, c, d]
    wb = np.abs(vh @ Cb[None]).sum(-1)
    return 0.5 * ((wa * rho).sum(-1) / wa.sum(-1) + (wb * rho).sum(-1) / wb.sum(-1))


def pwcca_distances(Xs, max_elements: int = MAX_ELEMENTS) -> np.ndarray:
    """Projection-weighted CCA distance (Morcos et al. 2018), symmetrised, for all pairs.

    CCA between the spans of two networks' centred states (every direction with non-zero
    variance, as Morcos et al.; no truncation to k), giving d = min(r_i, r_j) canonical
    correlations rho and variates h_1..h_d of each network. Network i weighs variate h_t by
    ``alpha_t = sum_units |h_t^T x_unit|`` (normalised to sum 1), so correlations of
    directions that carry much of its activity count more, and its PWCCA similarity is
    ``sum_t alpha_t rho_t``.

    PWCCA is asymmetric: the weights come from one network. Morcos et al.'s code weighs by
    the network with fewer units; here the distance is symmetrised as
    ``1 - (sim_i + sim_j) / 2``, the average of the two directions, so that the matrix is
    symmetric and does not depend on which network is called first. With different ranks
    the larger network's weights cover only the d paired variates, as in Morcos et al.

    Parameters
    ----------
    Xs : sequence of N arrays [M, U_i], same samples, M > U_i
    max_elements : bound on the numbers held at once by a tile of pairs

    Returns
    -------
    D : [N, N] in [0, 1], symmetric, zero diagonal
    """
    return distances(Xs, ("pwcca",), max_elements=max_elements)["pwcca"]


# --- Procrustes and CKA ----------------------------------------------------------------------

def procrustes_distances(Xs, max_elements: int = MAX_ELEMENTS) -> np.ndarray:
    """Angular Procrustes shape distance arccos ||X_i^T X_j||_* (unit-norm, centred) for all pairs.

    Networks of different widths compare as if the smaller were zero-padded (Williams et al.
    2021), so a network and its rotated, shifted, isotropically scaled copy are at distance 0.
    Zero columns add no singular values, so no padding is done: a pair's block is
    [U_i, U_j].

    Returns
    -------
    D : [N, N] in [0, pi/2], symmetric, zero diagonal
    """
    return distances(Xs, ("procrustes",), max_elements=max_elements)["procrustes"]


def cka_distances(Xs, max_elements: int = MAX_ELEMENTS) -> np.ndarray:
    """1 - linear CKA for all pairs.

    Returns
    -------
    D : [N, N] in [0, 1], symmetric, zero diagonal
    """
    return distances(Xs, ("cka",), max_elements=max_elements)["cka"]


def _as_distance(D: np.ndarray) -> np.ndarray:
    D = np.clip(D, 0.0, None)
    np.fill_diagonal(D, 0.0)
    return D


# --- every metric in one pass ----------------------------------------------------------------

def distances(Xs, metrics=METRICS, ks=(10,), max_elements: int = MAX_ELEMENTS) -> dict:
    """Several distances for all pairs in one pass: one factorisation per network and one
    block per pair serve every metric and every k.

    Each network's centred states are Xc = Q C with Q [M, r] orthonormal and nested by
    variance (:func:`_prepare`), so a pair's only product over the samples is the block
    G = Q_i^T Q_j [r_i, r_j]: SVCCA takes its leading k x k parts, PWCCA its singular
    vectors, and ``Xc_i^T Xc_j = C_i^T G C_j`` [U_i, U_j] gives Procrustes (its nuclear norm)
    and CKA (its squared Frobenius norm) at the price of two small matmuls.

    Parameters
    ----------
    Xs : sequence of N arrays [M, U_i] (same samples in every network; PWCCA needs M > U_i)
    metrics : any of ``"svcca"``, ``"pwcca"``, ``"procrustes"``, ``"cka"``
    ks : SVCCA's T values of k (see :func:`svcca_curve`); ignored without ``"svcca"``
    max_elements : bound on the numbers held at once by a tile of pairs

    Returns
    -------
    dict: ``"svcca"`` [T, N, N] (one matrix per k) and ``"kept"`` [N, T] (directions each
    network keeps for each k) with SVCCA; ``"pwcca"``, ``"procrustes"``, ``"cka"`` [N, N].
    """
    metrics = _check_metrics(metrics)
    ks = list(ks) if "svcca" in metrics else []
    if "svcca" in metrics and not ks:
        raise ValueError("ks must hold at least one k")
    full = metrics != ("svcca",)
    parts = [_prepare(X, ks, f"network {i}", full) for i, X in enumerate(Xs)]
    Qs, Cs = [q for q, *_ in parts], [c for _, c, _ in parts]
    kept = np.stack([kk for *_, kk in parts])  # [N, T]
    if "pwcca" in metrics:
        _check_pwcca_samples(Xs)
    u_max = max(c.shape[1] for c in Cs)
    reduce = _reducer(metrics, kept, Cs)

    def per_pair(a, b):  # the block and a working copy, PWCCA's singular vectors and
        n = 2 * a * b + len(ks)  # projections, the [U_i, U_j] product and its SVD's copy
        n += (4 * a * b + 2 * min(a, b) * u_max) if "pwcca" in metrics else 0
        return n + (2 * u_max * u_max if {"procrustes", "cka"} & set(metrics) else 0)

    sim = pairwise_blocks(Qs, reduce, max_elements, keys=[c.shape for c in Cs],
                          per_pair=per_pair)
    return _assemble(metrics, sim, kept, Cs)


def _check_metrics(metrics) -> tuple:
    metrics = (metrics,) if isinstance(metrics, str) else tuple(metrics)
    if not metrics:
        raise ValueError(f"metrics=() must name at least one of {METRICS}")
    for m in metrics:
        check_choice("metric", m, METRICS)
    return tuple(m for m in METRICS if m in metrics)  # in a fixed order, without repeats


def _check_pwcca_samples(Xs):
    for i, X in enumerate(Xs):  # else spans meet by counting alone (correlations of 1)
        M, U = np.shape(X)
        if U >= M:
            raise ValueError(f"PWCCA needs more samples than units; network {i} has {M} "
                             f"samples and {U} units")


def _reducer(metrics: tuple, kept, Cs) -> Callable:
    """The tile reduction of :func:`distances`: blocks G [r, c, Ka, Kb] -> [r, c, V], the
    values in the order of :func:`_assemble` (one per k, PWCCA, Procrustes, CKA)."""
    def reduce(G, rows, cols):
        out = [_svcca_sim(G, kept[rows, t], kept[cols, t]) for t in range(kept.shape[1])]
        if metrics == ("svcca",):
            return np.stack(out, -1)
        Ca, Cb = np.stack([Cs[i] for i in rows]), np.stack([Cs[j] for j in cols])
        if "pwcca" in metrics:
            out.append(_pwcca_sim(G, Ca, Cb))
        if "procrustes" in metrics or "cka" in metrics:
            P = np.swapaxes(Ca, -1, -2)[:, None] @ G @ Cb[None]  # Xc_i^T Xc_j [r, c, Ua, Ub]
            if "procrustes" in metrics:
                out.append(_nuclear(P))
            if "cka" in metrics:
                out.append((P ** 2).sum(axis=(-1, -2)))
        return np.stack(out, -1)
    return reduce


def _assemble(metrics: tuple, sim, kept, Cs) -> dict:
    """Distances from the reduced values sim [N, N, V] (see :func:`_reducer`)."""
    T, out, v = kept.shape[1], {}, iter(range(kept.shape[1], sim.shape[-1]))
    if "svcca" in metrics:
        out["svcca"] = np.stack([_as_distance(1.0 - sim[..., t]) for t in range(T)])
        out["kept"] = kept
    if "pwcca" in metrics:
        out["pwcca"] = _as_distance(1.0 - sim[..., next(v)])
    if "procrustes" in metrics:
        norms = np.array([np.linalg.norm(c) for c in Cs])  # = |Xc|
        cos = sim[..., next(v)] / np.outer(norms, norms)
        out["procrustes"] = _as_distance(np.arccos(np.clip(cos, -1, 1)))
    if "cka" in metrics:
        hsic = sim[..., next(v)]
        d = np.sqrt(np.diag(hsic))
        out["cka"] = _as_distance(1.0 - hsic / np.outer(d, d))
    return out


def distance_matrix(Xs, metric: str = "svcca", k=10,
                    max_elements: int = MAX_ELEMENTS) -> np.ndarray:
    """All-pairs distance by name: ``"svcca"`` (uses ``k``), ``"pwcca"``, ``"procrustes"`` or
    ``"cka"`` (these three use every direction and ignore ``k``)."""
    check_choice("metric", metric, METRICS)
    if metric == "svcca":
        return svcca_distances(Xs, k, max_elements)
    fn = dict(pwcca=pwcca_distances, procrustes=procrustes_distances, cka=cka_distances)[metric]
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


def pwcca_pair(X, Y) -> float:
    """Symmetrised PWCCA distance of one pair by whitened CCA (``scipy.linalg``; full-rank X, Y).

    The canonical weights are ``Cxx^-1/2 u`` and ``Cyy^-1/2 v`` from the SVD of
    ``Cxx^-1/2 Cxy Cyy^-1/2``; the variates are the centred data times them (unit norm).
    """
    A, B = (np.asarray(Z, float) - np.mean(Z, axis=0) for Z in (X, Y))
    inv_sqrt = lambda C: scipy.linalg.inv(scipy.linalg.sqrtm(C)).real
    Wa, Wb = inv_sqrt(A.T @ A), inv_sqrt(B.T @ B)
    u, rho, vh = scipy.linalg.svd(Wa @ (A.T @ B) @ Wb, full_matrices=False)
    sims = []
    for Z, H in ((A, A @ Wa @ u), (B, B @ Wb @ vh.T)):
        alpha = np.abs(H.T @ Z).sum(axis=1)
        sims.append(float(alpha @ rho / alpha.sum()))
    return 1.0 - float(np.mean(sims))


# --- populations -----------------------------------------------------------------------------

def population_distances(pop, metric: str = "svcca", k=10, states=None):
    """Distances between the included networks of a trained population.

    Parameters
    ----------
    pop : :class:`lib.population.Population`
    metric, k : see :func:`distance_matrix` (``"svcca"``, ``"pwcca"``, ``"procrustes"``,
        ``"cka"``; ``k`` is SVCCA's)
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
