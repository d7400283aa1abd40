"""Fixed-point search: answers known by construction, batching, no side effects, file format."""
import numpy as np
import pytest
import torch

from lib import fixed_points as fp
from lib import models

FAST = fp.FixedPointConfig(n_init=32, adam_iters=200, lr=0.05, init_noise=0.1)


def linear_map(W, b):
    """F(s) = W s + b per network: W [N, S, S], b [N, S]."""
    def F(s):
        return torch.einsum("nij,nbj->nbi", W.to(s.dtype), s) + b.to(s.dtype)[:, None]
    return F


def test_linear_map_fixed_point_jacobian_and_eigenvectors():
    g = torch.Generator().manual_seed(0)
    N, S = 3, 4
    W = torch.randn(N, S, S, generator=g, dtype=torch.float64) * 0.4
    W[2] += 1.2 * torch.eye(S, dtype=torch.float64)  # network 2 has unstable modes
    b = torch.randn(N, S, generator=g, dtype=torch.float64)
    res = fp.find(linear_map(W, b), torch.randn(N, 50, S, generator=g), FAST)
    assert sorted(res.net.tolist()) == [0, 1, 2]  # exactly one point per network
    for n in range(N):
        r = res.of(n)
        expect = torch.linalg.solve(torch.eye(S, dtype=torch.float64) - W[n], b[n]).numpy()
        np.testing.assert_allclose(r.points[0], expect, atol=1e-10)
        np.testing.assert_allclose(r.jacobians[0], W[n].numpy(), atol=1e-12)
        assert r.q[0] <= 1e-20
        lam = np.linalg.eigvals(W[n].numpy())
        assert r.n_unstable[0] == (np.abs(lam) > 1).sum()
        np.testing.assert_allclose(np.abs(r.eigvals[0]), np.sort(np.abs(lam))[::-1], atol=1e-10)
        R, L, J = r.right[0], r.left[0], r.jacobians[0]
        np.testing.assert_allclose(J @ R, R * r.eigvals[0], atol=1e-10)
        np.testing.assert_allclose(L @ J, r.eigvals[0][:, None] * L, atol=1e-10)
        np.testing.assert_allclose(L @ R, np.eye(S), atol=1e-10)
    assert res.n_unstable[res.net == 2][0] > 0


def self_excited(n_hidden, gain=2.0):
    """Vanilla tanh network with W = gain * I and no input: stable points +-a, saddles at 0."""
    spec = models.CellSpec("vanilla", "tanh", n_in=1, n_hidden=n_hidden, n_out=1)
    params = models.init_params(spec, [0])
    params["W"] = gain * torch.eye(n_hidden)[None]
    params["b"] = torch.zeros_like(params["b"])
    return spec, params


def grid(n_hidden, k=7):
    axes = [torch.linspace(-1.2, 1.2, k)] * n_hidden
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(1, -1, n_hidden)


def test_two_unit_self_excited_network_has_four_attractors_and_five_saddles():
    spec, params = self_excited(2)
    res = fp.find_fixed_points(spec, params, np.zeros(1), grid(2), FAST)
    a = 0.9575040240772687  # root of a = tanh(2a)
    pts = np.round(res.points / a).astype(int)
    assert sorted(map(tuple, pts)) == sorted((i, j) for i in (-1, 0, 1) for j in (-1, 0, 1))
    n_zero = (pts == 0).sum(1)  # each unit at 0 has the unstable eigenvalue 2
    np.testing.assert_array_equal(res.n_unstable, n_zero)
    assert res.q.max() <= 1e-20
    stable = res.n_unstable == 0
    np.testing.assert_allclose(np.abs(res.eigvals[stable]), 2 * (1 - a * a), atol=1e-9)


def test_relu_network_fixed_point_known():
    spec = models.CellSpec("vanilla", "relu", n_in=1, n_hidden=3, n_out=1)
    params = models.init_params(spec, [0])
    params["W"] = 0.5 * torch.eye(3)[None]
    params["b"] = torch.ones_like(params["b"])
    params["U"] = torch.zeros_like(params["U"])  # s = relu(s / 2 + 1): s = 2, J = I / 2
    res = fp.find_fixed_points(spec, params, np.zeros(1), torch.rand(1, 40, 3) * 3, FAST)
    assert len(res) == 1
    np.testing.assert_allclose(res.points[0], 2.0, atol=1e-12)
    np.testing.assert_allclose(res.jacobians[0], 0.5 * np.eye(3), atol=1e-12)
    assert res.n_unstable[0] == 0


@pytest.mark.parametrize("arch", models.ARCHS)
def test_every_architecture_finds_true_fixed_points(arch):
    spec = models.CellSpec(arch, "tanh", n_in=2, n_hidden=6, n_out=1)
    params = models.init_params(spec, [1, 2])
    visited = fp.visited_states(spec, params, np.random.default_rng(0).normal(size=(4, 20, 2)))
    res = fp.find_fixed_points(spec, params, np.zeros(2), visited, FAST)
    assert res.points.shape[1] == spec.state_dim and len(res) >= 2
    for n in range(2):
        pts = torch.as_tensor(res.of(n).points)[None]
        one = fp.cell_map(spec, models.select(params, [n]), np.zeros(2))
        np.testing.assert_allclose(one(pts)[0].numpy(), res.of(n).points, atol=1e-9)
    assert res.q.max() <= FAST.tol_keep


def test_jacobians_match_autograd_reference():
    spec = models.CellSpec("gru", "tanh", n_in=1, n_hidden=5, n_out=1)
    params = models.init_params(spec, [3, 4])
    F = fp.cell_map(spec, params, np.full(1, 0.3))
    s = torch.randn(2, 3, 5, dtype=torch.float64)
    J = fp.jacobians(F, s)
    for n in range(2):
        for b in range(3):
            def f(v, n=n, b=b):
                x = s.clone()
                x[n, b] = v
                return F(x)[n, b]
            ref = torch.autograd.functional.jacobian(f, s[n, b])
            torch.testing.assert_close(J[n, b], ref)


def test_batched_search_equals_one_network_at_a_time():
    spec = models.CellSpec("lstm", "tanh", n_in=1, n_hidden=4, n_out=1)
    params = models.init_params(spec, [5, 6, 7])
    visited = fp.visited_states(spec, params, np.random.default_rng(1).normal(size=(3, 15, 1)))
    init = fp.initial_states(visited.double(), FAST)
    x = np.array([[0.2], [0.0], [-0.3]])
    both = fp.find_fixed_points(spec, params, x, visited, FAST, init=init)
    for n in range(3):
        one = fp.find_fixed_points(spec, models.select(params, [n]), x[n], visited[n:n + 1], FAST,
                                   init=init[n:n + 1])
        mine = both.of(n)
        assert len(one) == len(mine)
        np.testing.assert_allclose(np.sort(one.points, 0), np.sort(mine.points, 0), atol=1e-9)
        np.testing.assert_array_equal(np.sort(one.n_unstable), np.sort(mine.n_unstable))
        np.testing.assert_allclose(both.inputs[n], x[n])


def test_caller_params_are_not_modified():
    spec = models.CellSpec("ugrnn", "relu", n_in=2, n_hidden=5, n_out=2)
    params = models.init_params(spec, [8, 9])
    before = {k: v.clone() for k, v in params.items()}
    visited = fp.visited_states(spec, params, np.ones((2, 10, 2)))
    fp.find_fixed_points(spec, params, np.zeros(2), visited, FAST)
    for k, v in params.items():
        assert torch.equal(v, before[k]) and v.dtype == before[k].dtype and not v.requires_grad


def test_save_load_roundtrip_without_pickle(tmp_path):
    spec, params = self_excited(2)
    res = fp.find_fixed_points(spec, params, np.zeros(1), grid(2), FAST)
    path = tmp_path / "fps.npz"
    res.save(path)
    with np.load(path, allow_pickle=False) as z:
        assert all(z[k].dtype != object for k in z.files)
    back = fp.FixedPoints.load(path)
    for name in res.__dataclass_fields__:
        np.testing.assert_array_equal(getattr(back, name), getattr(res, name))


def test_unique_equals_sequential_greedy():
    g = torch.Generator().manual_seed(2)
    s = torch.randn(3, 60, 2, generator=g, dtype=torch.float64) * 0.3
    q = torch.rand(3, 60, generator=g, dtype=torch.float64)
    valid = torch.rand(3, 60, generator=g) > 0.2
    kept = fp.unique(s, q, valid, tol=0.15)
    for n in range(3):
        ref, chosen = np.zeros(60, bool), []
        for i in sorted(np.flatnonzero(valid[n].numpy()), key=lambda i: float(q[n, i])):
            if all(torch.dist(s[n, i], s[n, j]) >= 0.15 for j in chosen):
                chosen.append(i)
                ref[i] = True
        np.testing.assert_array_equal(kept[n].numpy(), ref)
    assert 0 < kept.sum() < valid.sum()  # the tolerance merged some points, not all


def test_input_jacobian_of_vanilla_at_origin_is_input_weights():
    from lib.dynamics import input_jacobians
    spec = models.CellSpec("vanilla", "tanh", n_in=3, n_hidden=4, n_out=1)
    params = models.init_params(spec, [11])
    params["b"] = torch.zeros_like(params["b"])  # tanh'(0) = 1: dF/dx = U^T at s = 0, x = 0
    B = input_jacobians(spec, params, torch.zeros(1, 2, 4), np.zeros((1, 3)))
    for b in range(2):
        torch.testing.assert_close(B[0, b], params["U"][0].T.double())
