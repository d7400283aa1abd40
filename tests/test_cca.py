"""All-pairs SVCCA, PWCCA, Procrustes and CKA: invariances, matrix properties, slow references,
networks of different sizes, the memory bound, errors."""
import functools

import numpy as np
import pytest
from scipy.stats import ortho_group

from lib import cca, pairwise


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


# --- networks of different sizes, the memory bound, PWCCA, many k at once ----------------------

def mixed_population(seed=10, sizes=(8, 16, 40, 8, 16, 40, 16), m=240):
    """Related networks of 8, 16 and 40 units (full rank), mixed in order."""
    rng = np.random.default_rng(seed)
    shared = rng.standard_normal((m, 6))
    return [np.tanh(shared @ rng.standard_normal((6, u)) + 0.3 * rng.standard_normal((m, u)))
            for u in sizes]


def pairwise_reference(Xs, pair):
    return np.array([[pair(X, Y) if i != j else 0.0 for j, Y in enumerate(Xs)]
                     for i, X in enumerate(Xs)])


REFERENCES = {"procrustes": cca.procrustes_pair, "cka": cca.cka_pair, "pwcca": cca.pwcca_pair,
              "svcca": cca.svcca_pair}


@pytest.mark.parametrize("metric,k", [("procrustes", None), ("cka", None), ("pwcca", None),
                                      ("svcca", 5), ("svcca", 0.9)])
@pytest.mark.parametrize("max_elements", [50, 40_000, 2 ** 24])  # a pair, a few, whole groups
def test_mixed_sizes_equal_per_pair_references(metric, k, max_elements):
    D = cca.distance_matrix(mixed_population(), metric, k=k, max_elements=max_elements)
    np.testing.assert_allclose(D, mixed_reference(metric, k), atol=1e-10, rtol=0)


@functools.cache
def mixed_reference(metric, k):
    """The per-pair reference on :func:`mixed_population` (slow: computed once per metric)."""
    pair = REFERENCES[metric] if k is None else (lambda X, Y: cca.svcca_pair(X, Y, k))
    return pairwise_reference(mixed_population(), pair)


def test_variance_rule_keeps_different_numbers_of_directions_per_network():
    Xs = mixed_population()
    kept = [cca.svcca_basis(X, 0.9).shape[1] for X in Xs]
    assert len(set(kept)) > 1  # so the 0.9 case above mixes widths
    D = cca.svcca_distances(Xs, 0.9, max_elements=3000)
    np.testing.assert_allclose(D, mixed_reference("svcca", 0.9), atol=1e-10, rtol=0)


@pytest.mark.parametrize("max_elements", [1, 5_000, 60_000])
def test_tiles_never_hold_more_than_max_elements(max_elements):
    Xs = mixed_population(sizes=(8, 16, 40) * 4, m=100)
    seen = []

    def reduce(G, rows, cols):
        r, c, a, b = G.shape
        seen.append(r * c > 1)
        held = 100 * (r * a + c * b) + r * c * 2 * a * b
        assert r * c == 1 or held <= max_elements
        return np.zeros((r, c))

    pairwise.pairwise_blocks(Xs, reduce, max_elements)
    assert any(seen) == (max_elements > 1)  # tiles grow as far as the budget allows


def test_plan_tile_uses_the_budget_and_respects_it():
    for n_rows, n_cols, a, b, m, per, E in [(60, 60, 32, 32, 2000, 2048, 2 ** 24),
                                            (60, 1, 32, 256, 2000, 2 ** 17, 2 ** 24),
                                            (3, 500, 10, 10, 6400, 200, 2 ** 22)]:
        r, c = pairwise.plan_tile(n_rows, n_cols, a, b, m, per, E)
        assert 1 <= r <= n_rows and 1 <= c <= n_cols
        assert m * (r * a + c * b) + r * c * per <= E
        # one more row or column would not fit, or there is none
        assert r == n_rows or m * ((r + 1) * a + c * b) + (r + 1) * c * per > E
        assert c == n_cols or m * (r * a + (c + 1) * b) + r * (c + 1) * per > E


def test_pwcca_of_a_known_pair():
    # X = [3a, b], Y = [a, c] with a, b, c independent: correlations (1, 0). X puts weight 3/4 on
    # the shared variate, Y 1/2, so the two directions give 0.75 and 0.5 and the distance 0.375
    rng = np.random.default_rng(11)
    a, b, c = rng.standard_normal((3, 40000))
    X, Y = np.stack([3 * a, b], 1), np.stack([a, c], 1)
    assert cca.pwcca_distances([X, Y])[0, 1] == pytest.approx(0.375, abs=0.01)
    assert cca.pwcca_pair(X, Y) == pytest.approx(0.375, abs=0.01)


def test_pwcca_ignores_permutations_signs_scale_and_shift_of_units():
    Xs = mixed_population(sizes=(12, 12, 20))
    P = np.random.default_rng(12).permutation(12)
    signs = np.where(np.arange(12) % 3 == 0, -1.0, 1.0)
    copy = 2.5 * Xs[0][:, P] * signs + 7.0
    D = cca.pwcca_distances([Xs[0], copy, Xs[1], Xs[2]])
    assert D[0, 1] < 1e-10
    np.testing.assert_allclose(D[0, 2:], D[1, 2:], atol=1e-10)
    assert np.all(D[0, 2:] > 0.05)


def test_pwcca_needs_more_samples_than_units():
    X = np.random.default_rng(13).standard_normal((10, 12))
    with pytest.raises(ValueError, match="more samples than units"):
        cca.pwcca_distances([X, X])


def test_svcca_curve_equals_one_k_at_a_time():
    Xs = mixed_population()
    ks = [1, 2, 3, 5, 8, 0.8, 0.95]
    curve = cca.svcca_curve(Xs, ks, max_elements=20_000)
    assert curve.shape == (len(ks), len(Xs), len(Xs))
    for k, D in zip(ks, curve):
        np.testing.assert_allclose(D, cca.svcca_distances(Xs, k), atol=1e-12, rtol=0)
    with pytest.raises(ValueError, match="exceeds the 8 units"):
        cca.svcca_curve(Xs, [4, 9])


def test_separation_curve_finds_planted_groups():
    # two groups built on different latents: each network's nearest neighbour is in its group
    rng = np.random.default_rng(14)
    latents = rng.standard_normal((2, 300, 4))
    Xs = [np.tanh(latents[g] @ rng.standard_normal((4, u)) + 0.2 * rng.standard_normal((300, u)))
          for g in (0, 1) for u in (8, 16, 8, 40)]
    labels = {"group": np.repeat(["a", "b"], 4), "size": [8, 16, 8, 40] * 2}
    table = cca.separation_curve(Xs, labels, ks=[1, 2, 4, 0.9])
    assert list(table["k"]) == [1, 2, 4, 0.9]
    assert np.all(table["group"] == 1.0)


@pytest.mark.parametrize("max_elements", [50, 2 ** 24])  # a pair a tile, whole groups
def test_one_pass_gives_every_metric_as_the_per_pair_references(max_elements):
    Xs, ks = mixed_population(), [5, 0.9, 2]
    out = cca.distances(Xs, cca.METRICS, ks, max_elements=max_elements)
    for metric in ("procrustes", "cka", "pwcca"):
        np.testing.assert_allclose(out[metric], mixed_reference(metric, None), atol=1e-10, rtol=0)
    for t, k in enumerate(ks[:2]):
        np.testing.assert_allclose(out["svcca"][t], mixed_reference("svcca", k), atol=1e-10,
                                   rtol=0)
    assert out["kept"].tolist() == [[cca.svcca_basis(X, k).shape[1] for k in ks] for X in Xs]
    assert set(cca.distances(Xs, ["cka", "svcca"], [2])) == {"cka", "svcca", "kept"}
    for bad in ([], ["cca"]):
        with pytest.raises(ValueError, match="metric"):
            cca.distances(Xs, bad)
