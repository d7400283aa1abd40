"""Cluster statistics of distance matrices: planted clusters found, shuffled labels at chance."""
import numpy as np
import pytest

from lib import embed


def planted(n_per=10, n_classes=4, sep=5.0, seed=0):
    """Points in n_classes well-separated Gaussian blobs; distances and labels."""
    rng = np.random.default_rng(seed)
    centres = sep * np.eye(n_classes, 6)
    y = np.repeat(np.arange(n_classes), n_per)
    pts = centres[y] + rng.standard_normal((len(y), 6)) * 0.5
    D = np.linalg.norm(pts[:, None] - pts[None], axis=-1)
    return D, np.array(["abcd"[c] for c in y]), pts


def test_planted_clusters_are_found():
    D, y, _ = planted()
    s = embed.cluster_stats(D, y, n_perm=500, seed=1)
    assert s["nn_accuracy"] == 1.0
    assert s["chance"] == pytest.approx(9 / 39)
    assert s["majority"] == 0.25 and s["classes"] == 4 and s["n"] == 40
    assert s["p_value"] == pytest.approx(1 / 501)
    assert s["silhouette"] > 0.7
    assert s["n_tied"] == 0 and s["permanova_p"] == pytest.approx(1 / 501)
    assert s["gap_p"] == pytest.approx(1 / 501) and s["r2"] > 0.8
    assert 0.5 < s["above_chance_lo"] < s["above_chance"] + 0.05 and s["above_chance_hi"] < 1
    assert s["gap_lo"] > 0


def test_unrelated_labels_are_at_chance():
    D, _, _ = planted()
    rng = np.random.default_rng(2)
    accs, ps = [], []
    for _ in range(40):
        s = embed.cluster_stats(D, rng.permutation(np.repeat([0, 1, 2, 3], 10)), n_perm=200,
                                seed=int(rng.integers(1e6)), n_boot=20)
        accs.append(s["nn_accuracy"]), ps.append(s["p_value"])
    assert abs(np.mean(accs) - 9 / 39) < 0.06
    assert 0.3 < np.mean(ps) < 0.7  # p-values of a true null are roughly uniform
    assert np.mean(np.array(ps) < 0.05) < 0.2


def test_permutation_null_is_centred_on_chance_and_deterministic():
    D, y, _ = planted(sep=0.0)
    p1, null1 = embed.permutation_test(D, y, n_perm=2000, seed=3)
    p2, null2 = embed.permutation_test(D, y, n_perm=2000, seed=3)
    np.testing.assert_array_equal(null1, null2)
    assert p1 == p2 and 0 < p1 <= 1
    assert null1.mean() == pytest.approx(embed.chance_accuracy(y), abs=0.01)


def test_mds_recovers_a_planar_configuration():
    rng = np.random.default_rng(4)
    pts = rng.standard_normal((20, 2))
    D = np.linalg.norm(pts[:, None] - pts[None], axis=-1)
    Y = embed.mds(D, seed=0)
    D2 = np.linalg.norm(Y[:, None] - Y[None], axis=-1)
    np.testing.assert_allclose(D2, D, atol=1e-3)


def test_bad_inputs_fail_clearly():
    D, y, _ = planted()
    with pytest.raises(ValueError, match="one entry per network"):
        embed.nn_accuracy(D, y[:-1])
    with pytest.raises(ValueError, match="symmetric"):
        embed.cluster_stats(D + np.triu(np.ones_like(D)), y)
    with pytest.raises(ValueError, match="square"):
        embed.mds(D[:, :5])
    with pytest.raises(ValueError, match="n_perm"):
        embed.permutation_test(D, y, n_perm=0)
    assert np.isnan(embed.silhouette(D, np.zeros(len(D))))


def sorted_labels(n_per=(10, 10, 10, 10)):
    return np.repeat(np.arange(len(n_per)), n_per)


def test_all_equal_distances_give_chance_exactly():
    y = sorted_labels((12, 6, 8, 14))
    D = 1.0 - np.eye(len(y))
    s = embed.cluster_stats(D, y, n_perm=300, seed=0, n_boot=200)
    assert s["nn_accuracy"] == pytest.approx(embed.chance_accuracy(y), abs=1e-12)
    assert s["p_value"] == 1.0 and s["permanova_p"] == 1.0  # every permutation ties
    assert s["n_tied"] == len(y) and s["n_tied_mixed"] == len(y)
    assert s["pseudo_F"] == pytest.approx(1.0) and s["gap"] == pytest.approx(0.0)


def test_lowest_index_bias_is_gone():
    # network 0 (class a) is equally close to 1 (a) and 2, 3 (b): exact credit 1/3
    y = np.array([0, 0, 1, 1, 1])
    D = np.full((5, 5), 2.0)
    D[0, 1:4] = D[1:4, 0] = 1.0
    np.fill_diagonal(D, 0)
    old = y[embed.nearest_neighbours(D)] == y  # lowest index: network 0 gets full credit
    assert old[0]
    W = embed.neighbour_weights(D)
    np.testing.assert_allclose(W[0], [0, 1 / 3, 1 / 3, 1 / 3, 0])
    credit0 = (W[0] * (y == y[0])).sum()
    assert credit0 == pytest.approx(1 / 3)
    # reversing the order of the networks does not change the new accuracy, only the old one
    r = np.arange(5)[::-1]
    assert embed.nn_accuracy(D[np.ix_(r, r)], y[r]) == pytest.approx(embed.nn_accuracy(D, y))


def test_tie_counts_are_exact():
    y = np.array([0, 0, 0, 1, 1, 1])
    pts = np.array([0.0, 1.0, 2.0, 10.0, 11.0, 13.0])
    D = np.abs(pts[:, None] - pts[None])
    # network 1 is tied (0 and 2), network 4 is not (3 at 1, 5 at 2); no mixed tie
    assert embed.tie_counts(D, y) == (1, 0)
    D2 = D.copy()
    D2[2, 3] = D2[3, 2] = 1.0  # 2 ties 1 (same) and 3 (other); 3 ties 2 (other) and 4 (same)
    assert embed.tie_counts(D2, y) == (3, 2)
    assert embed.nn_accuracy(D2, y) == pytest.approx((1 + 1 + 0.5 + 0.5 + 1 + 1) / 6)


def test_null_p_values_are_roughly_uniform():
    from scipy import stats
    y = sorted_labels((8, 8, 8, 8))
    ps = []
    for seed in range(50):
        pts = np.random.default_rng(100 + seed).standard_normal((len(y), 5))
        D = np.linalg.norm(pts[:, None] - pts[None], axis=-1)
        ps.append(embed.permutation_test(D, y, n_perm=200, seed=seed)[0])
    assert stats.kstest(ps, "uniform").statistic < 0.25
    assert np.mean(np.array(ps) < 0.05) < 0.2


def test_vectorised_accuracies_match_a_loop():
    D, y, _ = planted(sep=1.0)
    perms = embed.label_permutations(y, 50, seed=5)
    _, null = embed.permutation_test(D, y, n_perm=50, seed=5)
    loop = [embed.nn_accuracy(D, p) for p in perms]
    np.testing.assert_allclose(null, loop)
    f = embed.pseudo_f(D, perms)
    gap = embed.distance_gap(D, perms)
    for p, fk, gk in zip(perms[:5], f, gap):
        same = p[:, None] == p[None]
        off = ~np.eye(len(p), dtype=bool)
        assert gk == pytest.approx(D[~same].mean() - D[same & off].mean())
        ss_t = (D ** 2).sum() / (2 * len(p))
        ss_w = sum((D[np.ix_(p == c, p == c)] ** 2).sum() / (2 * (p == c).sum()) for c in range(4))
        assert fk == pytest.approx(((ss_t - ss_w) / 3) / (ss_w / (len(p) - 4)))


def test_bootstrap_never_pairs_a_network_with_its_copy():
    # no label structure at all: copies at distance 0 would otherwise push accuracy to ~1
    y = sorted_labels((10, 10))
    pts = np.random.default_rng(7).standard_normal((20, 4))
    D = np.linalg.norm(pts[:, None] - pts[None], axis=-1)
    b = embed.bootstrap_effects(D, y, n_boot=400, seed=1)
    assert b["above_chance_lo"] < 0 < b["above_chance_hi"] < 0.5
    assert b["gap_lo"] < 0 < b["gap_hi"]
    idx = embed.stratified_resamples(y, 5, seed=0)
    assert idx.shape == (5, 20) and (y[idx] == y).all()  # class sizes kept


def test_paired_difference_is_exact_against_itself_and_finds_a_planted_gap():
    D, y, _ = planted()
    same = embed.paired_difference(D, D, y, n_boot=200)
    assert same["difference"] == same["difference_lo"] == same["difference_hi"] == 0.0  # paired
    flat = np.ones_like(D) - np.eye(len(D))  # every neighbour tied: accuracy at chance, 9/39
    r = embed.paired_difference(D, flat, y, n_boot=200)
    assert r["difference"] == pytest.approx(1 - 9 / 39) and r["n"] == 40
    assert 0.5 < r["difference_lo"] <= r["difference_hi"] <= 1
    assert embed.paired_difference(flat, D, y, n_boot=200)["difference_hi"] < -0.5
    with pytest.raises(ValueError, match="same networks"):
        embed.paired_difference(D, D[:-1, :-1], y)
