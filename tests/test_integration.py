"""Line coverage, time constants and the mode ablation on systems with known answers."""
import numpy as np
import pytest

from lib import integration as ig


def test_coverage_of_intervals():
    traj = np.linspace(0, 1, 1001)
    assert ig.line_coverage(traj, [0.5], delta=0.1, quantile=0) == pytest.approx(0.2)
    # overlapping windows count once; a window at the end is clipped to the range
    assert ig.line_coverage(traj, [0.5, 0.55, 1.0], delta=0.1, quantile=0) == pytest.approx(0.25 + 0.1)
    assert ig.line_coverage(traj, np.linspace(0, 1, 11), delta=0.05, quantile=0) == pytest.approx(1)
    assert ig.line_coverage(traj, [], quantile=0) == 0
    assert ig.line_coverage(traj, [5.0], quantile=0) == 0  # far outside the line


def test_time_constant():
    tau = ig.time_constant(np.array([0.9, 1.1, 1.0, 0.99 * np.exp(0.3j)]))
    np.testing.assert_allclose(tau[[0, 1, 3]], [10, 10, 100])
    assert np.isinf(tau[2])


def direct_response(J, b, w, T):
    x, y = b.copy(), 0.0
    for _ in range(T):
        y, x = y + w @ x, J @ x
    return y


def test_diagonal_system_gives_geometric_sums():
    T = 50
    lam = np.array([0.5, 1.0, 0.9])  # deliberately unsorted
    J = np.diag(lam)
    b = w = np.ones(3)
    share = np.array([T, (1 - 0.9 ** T) / 0.1, (1 - 0.5 ** T) / 0.5])
    curve = ig.mode_ablation(*ig.eigen_decomposition(J), b, w, T)
    np.testing.assert_allclose(curve, np.cumsum(share) / share.sum())
    assert share.sum() == pytest.approx(direct_response(J, b, w, T))


def test_rotation_invariance_and_agreement_with_simulation():
    rng = np.random.default_rng(0)
    S, T = 6, 40
    J = 0.9 * np.linalg.qr(rng.standard_normal((S, S)))[0] @ np.diag(np.linspace(0.3, 1.1, S))
    b, w = rng.standard_normal(S), rng.standard_normal(S)
    Q = np.linalg.qr(rng.standard_normal((S, S)))[0]
    c1 = ig.mode_contributions(*ig.eigen_decomposition(J), b, w, T)
    c2 = ig.mode_contributions(*ig.eigen_decomposition(Q @ J @ Q.T), Q @ b, Q @ w, T)
    np.testing.assert_allclose(c1.sum().real, direct_response(J, b, w, T), rtol=1e-9)
    np.testing.assert_allclose(np.cumsum(c1).real, np.cumsum(c2).real, rtol=1e-7, atol=1e-9)


def test_line_average_over_points():
    T = 20
    J1, J2 = np.diag([1.0, 0.5]), np.diag([1.0, 0.0])
    dec = [ig.eigen_decomposition(J) for J in (J1, J2)]
    lam, R, L = (np.stack(x) for x in zip(*dec))
    b = np.ones((2, 2))
    curve = ig.line_ablation(lam, R, L, b, np.ones(2), T)
    first = np.mean([T / (T + (1 - 0.5 ** T) / 0.5), T / (T + 1)])
    np.testing.assert_allclose(curve, [first, 1.0])


def test_modes_to_reach_counts_the_first_mode_at_the_level_and_leaves_out_missing_lines():
    ablation = np.array([[0.95, 1.0, 1.0],       # one mode is enough
                         [0.5, 0.89, 0.9],       # the third reaches 0.9 exactly
                         [np.nan] * 3,           # no line of slow points: not 1 mode
                         [0.2, 0.4, 0.6]])       # never within three modes: not 1 mode
    np.testing.assert_array_equal(ig.modes_to_reach(ablation, 0.9), [1.0, 3.0, np.nan, np.nan])


def test_random_alignment_closed_forms_and_a_simulation():
    np.testing.assert_allclose(ig.random_alignment([1, 2, 3]), [1.0, 2 / np.pi, 0.5], rtol=1e-12)
    rng = np.random.default_rng(0)
    for d in (32, 64):
        v = rng.standard_normal((200_000, d))
        mc = np.abs(v[:, 0]) / np.linalg.norm(v, axis=1)  # a fixed axis against random directions
        np.testing.assert_allclose(ig.random_alignment(d), mc.mean(), rtol=5e-3)
        np.testing.assert_allclose(ig.random_alignment(d), np.sqrt(2 / (np.pi * d)), rtol=2e-2)
    with pytest.raises(ValueError, match="dim"):
        ig.random_alignment(2.5)
