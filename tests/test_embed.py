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


def test_unrelated_labels_are_at_chance():
    D, _, _ = planted()
    rng = np.random.default_rng(2)
    accs, ps = [], []
    for _ in range(40):
        s = embed.cluster_stats(D, rng.permutation(np.repeat([0, 1, 2, 3], 10)), n_perm=200,
                                seed=int(rng.integers(1e6)))
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
