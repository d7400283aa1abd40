"""All-pairs SVCCA, Procrustes and CKA: invariances, matrix properties, slow references, errors."""
import numpy as np
import pytest
from scipy.stats import ortho_group

from lib import cca


def low_rank(rng, m=300, u=12, r=6):
    """A [m, u] state matrix of rank r with decaying variances (like trained networks)."""
    return (rng.standard_normal((m, r)) * np.linspace(3, 0.5, r)) @ rng.standard_normal((r, u))


def population(seed=0, n=7, m=300):
    rng = np.random.default_rng(seed)
    shared = rng.standard_normal((m, 8))
    # related networks: a mix of a shared latent and private noise, different unit counts
    return [np.tanh(shared @ rng.standard_normal((8, u)) + 0.5 * rng.standard_normal((m, u)))
            for u in rng.integers(10, 16, size=n)]


@pytest.mark.parametrize("metric", cca.METRICS)
def test_rotated_scaled_shifted_copy_is_at_distance_zero(metric):
    rng = np.random.default_rng(1)
    X = low_rank(rng, u=12, r=12)
    Q = ortho_group.rvs(12, random_state=2)
    copies = [X, 3.7 * X @ Q + rng.standard_normal(12), X @ Q]
    D = cca.distance_matrix(copies + [rng.standard_normal((300, 12))], metric, k=5)
    assert np.abs(D[:3, :3]).max() < 1e-6
    assert D[0, 3] > 0.05


def test_svcca_is_invariant_to_invertible_maps_but_procrustes_is_not():
    rng = np.random.default_rng(3)
    X = low_rank(rng, u=8, r=8)
    A = rng.standard_normal((8, 8)) + 3 * np.eye(8)  # invertible, not orthogonal
    assert cca.svcca_distances([X, X @ A], k=8)[0, 1] < 1e-8
    assert cca.procrustes_distances([X, X @ A])[0, 1] > 0.05


@pytest.mark.parametrize("metric", cca.METRICS)
def test_matrix_is_symmetric_with_zero_diagonal(metric):
    D = cca.distance_matrix(population(), metric, k=4)
    assert D.shape == (7, 7)
    np.testing.assert_array_equal(D, D.T)
    np.testing.assert_array_equal(np.diag(D), 0)
    assert np.all(D[~np.eye(7, dtype=bool)] > 0)


@pytest.mark.parametrize("k", [1, 4, 10, 0.9])
def test_batched_svcca_equals_per_pair_reference(k):
    Xs = population(seed=4)
    # a tiny block budget forces many chunks, so the chunking is exercised too
    D = cca.svcca_distances(Xs, k, max_elements=200)
    ref = np.array([[cca.svcca_pair(X, Y, k) if i != j else 0.0 for j, Y in enumerate(Xs)]
                    for i, X in enumerate(Xs)])
    np.testing.assert_allclose(D, ref, atol=1e-8, rtol=0)


def test_batched_procrustes_and_cka_equal_per_pair_references():
    Xs = population(seed=5, m=120)
    for batched, pair in ((cca.procrustes_distances, cca.procrustes_pair),
                          (cca.cka_distances, cca.cka_pair)):
        D = batched(Xs, max_elements=500)
        ref = np.array([[pair(X, Y) if i != j else 0.0 for j, Y in enumerate(Xs)]
                        for i, X in enumerate(Xs)])
        np.testing.assert_allclose(D, ref, atol=1e-8, rtol=0)


def test_known_canonical_correlation():
    # Y shares one direction exactly with X and the other is independent: correlations (1, ~0)
    rng = np.random.default_rng(6)
    a, b, c = rng.standard_normal((3, 20000))
    X, Y = np.stack([a, b], 1), np.stack([a, c], 1)
    assert cca.svcca_distances([X, Y], k=2)[0, 1] == pytest.approx(0.5, abs=0.02)


def test_variance_fraction_picks_the_number_of_directions():
    rng = np.random.default_rng(7)
    X = rng.standard_normal((500, 5)) * np.array([10, 10, 0.01, 0.01, 0.01])
    assert cca.svcca_basis(X, 0.99).shape == (500, 2)
    assert cca.svcca_basis(X, 3).shape == (500, 3)


def test_degenerate_inputs_fail_clearly():
    rng = np.random.default_rng(8)
    X = rng.standard_normal((50, 6))
    with pytest.raises(ValueError, match="no variance"):
        cca.svcca_basis(np.ones((50, 6)), 2)
    with pytest.raises(ValueError, match="no variance"):
        cca.procrustes_distances([X, np.full((50, 6), 3.0)])
    assert cca.state_rank(np.c_[X[:, :2], np.ones((50, 4))]) == 2
    assert cca.state_rank(np.ones((50, 6))) == 0
    with pytest.raises(ValueError, match="only 2 directions"):
        cca.svcca_basis(np.c_[X[:, :2], np.ones((50, 4))], 3)  # four constant units
    with pytest.raises(ValueError, match="samples"):
        cca.svcca_basis(X[:4], 4)
    with pytest.raises(ValueError, match="exceeds the 6 units"):
        cca.svcca_basis(X, 7)
    for bad in (0, -1, 1.5, True, "5"):
        with pytest.raises(ValueError, match="k="):
            cca.svcca_basis(X, bad)
    with pytest.raises(ValueError, match="same samples"):
        cca.svcca_distances([X, X[:40]], 2)
    with pytest.raises(ValueError, match="metric='cca'"):
        cca.distance_matrix([X, X], "cca")
