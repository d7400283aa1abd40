"""Helpers of the figures whose answers are known by construction."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from lib.plots.dynamics import clip_to_box, fixed_points_pca  # noqa: E402


def test_points_outside_the_box_land_on_its_surface_along_their_ray():
    lo, hi = np.array([-1.0, 0.0]), np.array([1.0, 4.0])  # centre (0, 2), half sizes (1, 2)
    p = np.array([[0.5, 3.0], [4.0, 2.0], [-3.0, 8.0]])
    got, out = clip_to_box(p, lo, hi)
    assert out.tolist() == [False, True, True]
    np.testing.assert_allclose(got[0], p[0])
    np.testing.assert_allclose(got[1], [1.0, 2.0])  # straight right: on the right face
    np.testing.assert_allclose(got[2], [-1.0, 4.0])  # reach max(3, 3) = 3: the corner
    assert clip_to_box(np.zeros((0, 2)), lo, hi)[0].shape == (0, 2)


def test_a_far_fixed_point_is_drawn_on_the_edge_and_the_axes_follow_the_visited_states():
    rng = np.random.default_rng(0)
    visited = rng.uniform(-1, 1, (500, 3)) * [3.0, 2.0, 1.0]  # PCA axes ~ the coordinate axes
    points = np.array([[0.0, 0.0, 0.0], [300.0, 0.0, 0.0]])
    fig = plt.figure()
    ax = fig.add_subplot(projection="3d")
    assert fixed_points_pca(ax, visited, points, np.array([0, 1])) == 1
    lo, hi = ax.get_xlim()
    assert hi - lo < 3 * 6.0  # the far point would have made it ~300 wide
    plt.close(fig)
