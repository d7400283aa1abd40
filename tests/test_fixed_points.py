"""Fixed-point search: answers known by construction, batching, adapters, no side effects, format."""
from dataclasses import replace

import numpy as np
import pytest
import torch

from lib import fixed_point_solver as solver
from lib import fixed_points as fp
from lib import cell_jacobians, fp_adapters, fp_kernels, fp_recall, models

FAST = fp.FixedPointConfig(n_init=32, adam_iters=300, init_noise=0.5, midpoint_rounds=0)


def linear_map(W, b):
    """F(s) = W s + b per network: W [N, S, S], b [N, S] (a step map, inputs ignored)."""
    def F(s, x, net):
        return torch.einsum("nij,nbj->nbi", W.to(s.dtype)[net], s) + b.to(s.dtype)[net][:, None]
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
        assert r.q[0] <= 1e-20 and not r.slow[0]
        lam = np.linalg.eigvals(W[n].numpy())
        assert r.n_unstable[0] == (np.abs(lam) > 1).sum()
        np.testing.assert_allclose(np.abs(r.eigvals[0]), np.sort(np.abs(lam))[::-1], atol=1e-10)
        R, L, J = r.right[0], r.left[0], r.jacobians[0]
        np.testing.assert_allclose(J @ R, R * r.eigvals[0], atol=1e-10)
        np.testing.assert_allclose(L @ J, r.eigvals[0][:, None] * L, atol=1e-10)
        np.testing.assert_allclose(L @ R, np.eye(S), atol=1e-10)
        # a start ends on the one point or, if Adam left it far away, is "not converged"
        assert set(r.start_point) <= {0, -1} and (r.start_point == 0).mean() > 0.8
    assert res.n_unstable[res.net == 2][0] > 0


# ---------------------------------------------------------------------------------------------
# Ground truth: 3^k known fixed points


def trajectories(spec, params, n_traj=64, n_steps=20, seed=0):
    """States [1, n_traj * n_steps, S] visited from random starts in the box [-1, 1]^S."""
    x0 = torch.as_tensor(np.random.default_rng(seed).uniform(-1, 1, (1, n_traj, spec.state_dim)),
                         dtype=torch.float32)
    with torch.no_grad():
        states = models.unroll(spec, params, torch.zeros(1, n_traj, n_steps, spec.n_in), x0)
    return states.reshape(1, -1, spec.state_dim)


def check_exact(res, pts, n_unstable, tol_slow):
    """Recall 1, nothing spurious or duplicated, q below threshold, stability as constructed."""
    recall, hit, extra = fp_recall.recall(res, pts, np.zeros(len(pts), int))
    assert recall[0] == 1.0 and not extra.any() and len(res) == len(pts)
    assert res.q.max() <= tol_slow
    nearest = np.argmin(np.linalg.norm(res.points[:, None] - pts[None], axis=-1), axis=1)
    np.testing.assert_array_equal(res.n_unstable, n_unstable[nearest])


@pytest.mark.parametrize("k,seed", [(3, 0), (3, 1), (3, 2), (4, 0), (4, 1), (4, 2)])
def test_every_known_fixed_point_from_trajectory_starts(k, seed):
    spec, params, pts, n_unstable = fp_recall.known_network(64, k, seed=seed)
    config = fp.FixedPointConfig(seed=seed)  # the book's settings
    res = fp.find_fixed_points(spec, params, np.zeros(1), trajectories(spec, params, seed=seed),
                               config)
    check_exact(res, pts, n_unstable, config.tol_slow)


@pytest.mark.parametrize("k,seed", [(3, 3), (4, 4)])
def test_every_known_fixed_point_from_starts_in_the_box(k, seed):
    spec, params, pts, n_unstable = fp_recall.known_network(64, k, seed=seed)
    box = torch.as_tensor(np.random.default_rng(seed).uniform(-1, 1, (1, 256, 64)))
    config = fp.FixedPointConfig(seed=seed, midpoint_rounds=2)
    res = fp.find_fixed_points(spec, params, np.zeros(1), box, config, init=box)
    check_exact(res, pts, n_unstable, config.tol_slow)


def test_known_network_points_are_exact():
    spec, params, pts, n_unstable = fp_recall.known_network(16, 2, seed=5)
    F = fp.cell_map(spec, {k: v.double() for k, v in params.items()}, np.zeros(1))
    np.testing.assert_allclose(F(torch.as_tensor(pts)[None])[0].numpy(), pts, atol=1e-12)
    assert len(pts) == 9 and sorted(np.bincount(n_unstable)) == [1, 4, 4]


# ---------------------------------------------------------------------------------------------
# Result contents: per-start record, slow points, per-start inputs, input Jacobians


def test_start_record_points_to_the_point_each_start_reached():
    spec, params, pts, _ = fp_recall.known_network(32, 2, seed=1)
    res = fp.find_fixed_points(spec, params, np.zeros(1), trajectories(spec, params), FAST)
    ok = res.start_point >= 0
    assert ok.mean() > 0.9 and len(res.start_states) == len(res.start_point)
    assert (res.start_iters >= 0).all() and res.start_iters.max() > 0 and np.all(res.start_net == 0)
    np.testing.assert_allclose(res.start_q[ok], res.q[res.start_point[ok]], atol=1e-25)
    sub = res.subset(res.n_unstable == 0)  # renumbered: starts on dropped points become -1
    kept = sub.start_point >= 0
    np.testing.assert_allclose(sub.points[sub.start_point[kept]],
                               res.points[res.start_point[kept]])


def _polish_1d(f, s0, stall):
    """q and iterations of a 200-iteration polish of the 1-d map f from s0."""
    s = torch.tensor([[s0]], dtype=torch.float64)
    _, q, its, _ = solver.polish(fp_adapters.StepFunctionMap(f), s, torch.zeros(1, 0, dtype=s.dtype),
                                 torch.zeros(1, dtype=torch.long), 200, stall=stall)
    return q.item(), its.item()


def test_polish_stops_candidates_that_creep_not_those_that_converge():
    # F(s) - s = -s^3: a zero of multiplicity 3, Newton converges linearly (q falls ~7x a step)
    q, _ = _polish_1d(lambda s, x: s - s ** 3, 0.5, stall=10)
    assert q < 1e-20
    # F(s) - s = 1e-3 (1 + s^2) has no zero: every step lowers q a little, for ever
    creep = lambda s, x: s + 1e-3 * (1 + s ** 2)  # noqa: E731
    assert _polish_1d(creep, 3.0, stall=0)[1] == 200
    assert _polish_1d(creep, 3.0, stall=10)[1] == 20


def test_slow_points_are_flagged():
    # s' = s + c (1 - s^2)^2 ... a 1-d map whose q has a non-zero minimum near 0: a slow point
    c = 1e-5

    def f(s, x):
        return s + c + 0.5 * s ** 2

    res = fp.find(fp_adapters.StepFunctionMap(f), torch.linspace(-0.5, 0.5, 20)[None, :, None],
                  fp.FixedPointConfig(n_init=16, tol_slow=1e-9, tol_fixed=1e-13))
    # q = (c + s^2/2)^2 / 2 is smallest at s = 0: q = c^2 / 2 = 5e-11, a slow point
    assert len(res) == 1 and res.slow[0] and abs(res.points[0, 0]) < 1e-3


def test_one_input_per_start_equals_separate_searches():
    spec = models.CellSpec("gru", "tanh", n_in=1, n_hidden=6, n_out=1)
    params = models.init_params(spec, [3, 4])
    vis = fp.visited_states(spec, params, np.random.default_rng(0).normal(size=(4, 20, 1)))
    levels = np.array([-0.5, 0.0, 0.7])
    starts = fp.initial_states(vis.double(), FAST)  # [2, 32, S]
    x = np.repeat(levels[None, :, None], 2, 0).repeat(32, 1)  # [2, 96, 1]
    cfg = fp.FixedPointConfig(n_init=32, midpoint_rounds=0)
    both = fp.find_fixed_points(spec, params, x, vis, cfg, init=starts.repeat(1, 3, 1))
    for j, level in enumerate(levels):
        one = fp.find_fixed_points(spec, params, np.full(1, level), vis, cfg, init=starts)
        mine = both.subset(both.x[:, 0] == level)
        assert len(one) == len(mine) > 0
        np.testing.assert_allclose(np.sort(one.points, 0), np.sort(mine.points, 0), atol=1e-8)


def test_input_jacobians_match_autograd():
    spec = models.CellSpec("lstm", "tanh", n_in=2, n_hidden=4, n_out=1)
    params = models.init_params(spec, [7])
    vis = fp.visited_states(spec, params, np.random.default_rng(2).normal(size=(3, 15, 2)))
    x = np.array([0.3, -0.2])
    res = fp.find_fixed_points(spec, params, x, vis, FAST)
    F = fp.CellMap(spec, params)
    for m in range(len(res)):
        s = torch.as_tensor(res.points[m])
        f = lambda xx: F(s[None, None], xx[None, None], torch.zeros(1, dtype=torch.long))[0, 0]  # noqa: E731
        ref = torch.autograd.functional.jacobian(f, torch.as_tensor(x))
        np.testing.assert_allclose(res.input_jacobians[m], ref.numpy(), atol=1e-10)


CELLS = [("vanilla", "tanh", False), ("vanilla", "relu", False), ("ugrnn", "tanh", False),
         ("ugrnn", "relu", False), ("gru", "tanh", False), ("gru", "relu", False),
         ("gru", "tanh", True), ("lstm", "tanh", False), ("lstm", "relu", False)]


@pytest.mark.parametrize("arch,act,reset_after", CELLS)
def test_closed_form_jacobians_match_autograd(arch, act, reset_after):
    """CellMap's closed-form dF/ds and dF/dx equal autograd's, point by point."""
    spec = models.CellSpec(arch, act, n_in=2, n_hidden=5, n_out=1, gru_reset_after=reset_after)
    params = models.init_params(spec, [3, 4])
    g = torch.Generator().manual_seed(1)
    params = {k: v + 0.3 * torch.randn(v.shape, generator=g) for k, v in params.items()}
    F = fp.CellMap(spec, params)
    s = torch.randn(6, spec.state_dim, generator=g, dtype=torch.float64)
    net = torch.tensor([0, 1, 1, 0, 1, 0])
    x = torch.randn(6, 2, generator=g, dtype=torch.float64)
    J, Jx = solver.jacobians(F, s, x, net, inputs=True)
    for p in range(6):
        def f(v, u, p=p):
            return F(v[None, None], u[None, None], net[p:p + 1])[0, 0]
        ref_s, ref_x = torch.autograd.functional.jacobian(f, (s[p], x[p]))
        torch.testing.assert_close(J[p], ref_s)
        torch.testing.assert_close(Jx[p], ref_x)
    generic = solver.jacobians(lambda a, b, c: F(a, b, c), s, x, net)  # the autograd route
    torch.testing.assert_close(J, generic)


@pytest.mark.parametrize("arch,act,reset_after", CELLS)
def test_closed_form_q_gradient_matches_autograd(arch, act, reset_after):
    """CellMap's q and dq/ds (the start phase's Adam) equal autograd's through the step map,
    on the stacked networks and on unsorted rows of them."""
    spec = models.CellSpec(arch, act, n_in=2, n_hidden=5, n_out=1, gru_reset_after=reset_after)
    g = torch.Generator().manual_seed(2)
    params = {k: v + 0.3 * torch.randn(v.shape, generator=g)
              for k, v in models.init_params(spec, [3, 4]).items()}
    F = fp.CellMap(spec, params)
    for net in (torch.arange(2), torch.tensor([1, 0, 1])):
        s = torch.randn(len(net), 7, spec.state_dim, generator=g, dtype=torch.float64)
        x = torch.randn(len(net), 7, 2, generator=g, dtype=torch.float64)
        q, grad = solver.q_and_grad(F, s, x, net)
        q_ref, grad_ref = solver.q_and_grad(lambda a, b, c: F(a, b, c), s, x, net)  # autograd
        torch.testing.assert_close(q, q_ref)
        torch.testing.assert_close(grad, grad_ref)


# ---------------------------------------------------------------------------------------------
# Adapters: torch.nn modules and step functions


def torch_and_cell(kind):
    """A torch.nn module and the book cell with the same weights (PyTorch's GRU: reset-after)."""
    torch.manual_seed(0)
    mod = getattr(torch.nn, kind)(2, 5)
    arch = {"RNN": "vanilla", "GRU": "gru", "LSTM": "lstm"}[kind]
    spec = models.CellSpec(arch, "tanh", n_in=2, n_hidden=5, n_out=1, gru_reset_after=kind == "GRU")
    W, U = mod.weight_hh_l0.detach(), mod.weight_ih_l0.detach()
    b = (mod.bias_ih_l0 + mod.bias_hh_l0).detach()
    if kind == "GRU":  # torch order r, z, n -> book order u(z), r, c(n)
        idx = torch.cat([torch.arange(5, 10), torch.arange(0, 5), torch.arange(10, 15)])
        W, U = W[idx], U[idx]
        b = torch.cat([b[5:10], b[0:5], mod.bias_ih_l0.detach()[10:]])
    params = models.init_params(spec, [0])
    params.update(W=W.T[None].clone(), U=U.T[None].clone(), b=b[None, None].clone())
    if kind == "GRU":
        params["b_hn"] = mod.bias_hh_l0.detach()[None, None, 10:].clone()
    return mod, spec, params


@pytest.mark.parametrize("kind", ["RNN", "GRU", "LSTM"])
def test_torch_module_adapter_matches_the_book_cell(kind):
    mod, spec, params = torch_and_cell(kind)
    before = {k: v.clone() for k, v in mod.state_dict().items()}
    F = fp_adapters.ModuleMap(mod)
    s = torch.randn(2, 3, spec.state_dim, dtype=torch.float64)
    x = torch.randn(2, 3, 2, dtype=torch.float64)
    net = torch.zeros(2, dtype=torch.long)
    torch.testing.assert_close(F(s, x, net), fp.CellMap(spec, params)(s, x, net))
    trials = np.random.default_rng(0).normal(size=(4, 10, 2))
    res = fp.find(F, F.states(trials), FAST, inputs=np.zeros(2))
    assert len(res) >= 1 and res.q.max() <= FAST.tol_slow
    out = F(torch.as_tensor(res.points)[None], torch.zeros(1, len(res), 2, dtype=torch.float64), net[:1])
    np.testing.assert_allclose(out[0].numpy(), res.points, atol=1e-9)
    assert all(torch.equal(v, before[k]) for k, v in mod.state_dict().items())


def test_step_function_adapter_two_bistable_units():
    def f(s, x):  # two uncoupled bistable units: 9 fixed points, 4 of them stable
        return torch.tanh(2.0 * s + x)

    starts = torch.as_tensor(np.random.default_rng(0).uniform(-1.2, 1.2, (1, 64, 2)))
    res = fp.find(fp_adapters.StepFunctionMap(f), starts, FAST, inputs=np.zeros(2), starts=starts)
    assert len(res) == 9 and sorted(np.bincount(res.n_unstable)) == [1, 4, 4]
    np.testing.assert_allclose(res.input_jacobians, res.jacobians / 2, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# Batching, merging, side effects, file format, recall


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
    spec, params, _, _ = fp_recall.known_network(8, 2, seed=0)
    res = fp.find_fixed_points(spec, params, np.zeros(1), trajectories(spec, params), FAST)
    path = tmp_path / "fps.npz"
    res.save(path)
    with np.load(path, allow_pickle=False) as z:
        assert all(z[k].dtype != object for k in z.files)
    back = fp.FixedPoints.load(path)
    for name in res.__dataclass_fields__:
        np.testing.assert_array_equal(getattr(back, name), getattr(res, name))


@pytest.mark.parametrize("dim", [2, 19])  # one block of coordinates in C; three (far pairs
# are decided in the first)
@pytest.mark.parametrize("compiled", [True, False])  # the C pass, the torch rounds
@pytest.mark.parametrize("tol", [0.15, 0.04])  # most points with a neighbour; a few
def test_merge_equals_sequential_greedy(tol, compiled, dim, monkeypatch):
    if compiled and not fp_kernels.available():
        pytest.skip("no C compiler: the compiled merge is not built")
    if not compiled:
        monkeypatch.setattr(solver.fp_kernels, "usable", lambda *t, **k: False)
    g = torch.Generator().manual_seed(2)
    s = torch.randn(180, 2, generator=g, dtype=torch.float64) * 0.3
    q = torch.rand(180, generator=g, dtype=torch.float64)
    s = torch.cat([s, torch.randn(180, dim - 2, generator=g, dtype=torch.float64) * 0.005], 1)
    valid = torch.rand(180, generator=g) > 0.2
    system = torch.arange(180) % 3
    rep = solver.merge(s, q, valid, system, tol=tol)
    for k in range(3):
        kept = []
        for i in sorted(np.flatnonzero((valid & (system == k)).numpy()), key=lambda i: float(q[i])):
            near = [j for j in kept if torch.dist(s[i], s[j]) < tol]
            assert rep[i] == (near[0] if near else i)
            if not near:
                kept.append(i)
    assert (rep[~valid] == -1).all() and 0 < (rep == torch.arange(180)).sum() < valid.sum()


def test_system_ids_number_the_distinct_network_input_pairs_in_sorted_order():
    g = torch.Generator().manual_seed(5)
    net = torch.randint(4, (400,), generator=g)
    x = torch.randint(3, (400, 2), generator=g).double() * 0.5
    x[::9, 0] = -0.0  # the same input as 0.0
    key = torch.cat([net[:, None].double(), x], -1)
    assert torch.equal(fp._system_ids(net, x), torch.unique(key, dim=0, return_inverse=True)[1])
    assert torch.equal(fp._system_ids(net, x[:, :0]), net)  # no input: one system per network


def test_nearest_in_the_same_system_per_system_equals_one_masked_matrix():
    g = torch.Generator().manual_seed(4)
    a, b = (torch.randn(n, 3, generator=g, dtype=torch.float64) for n in (300, 200))
    sa, sb = torch.randint(6, (300,), generator=g), torch.randint(5, (200,), generator=g)
    dense, i_dense = solver.nearest(a, sa, b, sb)
    per, i_per = solver.nearest(a, sa, b, sb, dense=0)
    brute = torch.tensor([min([float(torch.dist(a[i], b[j])) for j in range(200) if sb[j] == sa[i]],
                              default=np.inf) for i in range(300)], dtype=torch.float64)
    for d, i in ((dense, i_dense), (per, i_per)):
        np.testing.assert_allclose(d, brute, rtol=1e-10)
        has = torch.isfinite(brute)
        assert (sb[i[has]] == sa[has]).all() and (~has).sum() > 0  # system 5 has no b points


def test_absorb_within_reach_only_after_a_contracting_step():
    """Row 0 is known (frozen) at the origin; rows 1-3 end 0.005 from it (outside tol 1e-3,
    inside reach 0.01): row 1 came from 0.1 (a twentyfold contraction: absorbed), row 2 from
    0.02 (only fourfold: goes on), row 3 of another system (never)."""
    s = torch.tensor([[0.0, 0.0], [0.005, 0.0], [0.0, 0.005], [0.005, 0.0]], dtype=torch.float64)
    before = torch.tensor([[0.1, 0.0], [0.0, 0.02], [0.1, 0.0]], dtype=torch.float64)
    system = torch.tensor([0, 0, 0, 1])
    frozen = torch.tensor([True, False, False, False])
    q = torch.full((4,), 1e-4, dtype=torch.float64)  # none settled
    into = torch.full((4,), -1, dtype=torch.long)
    absorb = solver.Absorb(system, frozen, tol=1e-3, q_settled=1e-8,
                           reach=torch.full((4,), 0.01, dtype=torch.float64))
    absorb.step(s, q, into, torch.tensor([1, 2, 3]), before)
    assert into.tolist() == [-1, 0, -1, -1]
    into[:] = -1
    solver.Absorb(system, frozen, 1e-3, 1e-8).step(s, q, into, torch.tensor([1, 2, 3]), before)
    assert into.tolist() == [-1, -1, -1, -1]  # without reach: tol alone


def test_recall_counts_hits_and_extras():
    spec, params, pts, _ = fp_recall.known_network(16, 2, seed=2)
    config = fp.FixedPointConfig(n_init=64, midpoint_rounds=2)
    res = fp.find_fixed_points(spec, params, np.zeros(1), trajectories(spec, params), config)
    r, hit, extra = fp_recall.recall(res, np.r_[pts, [np.full(16, 5.0)]], np.zeros(10, int))
    assert r[0] == pytest.approx(0.9) and hit[:9].all() and not hit[9] and not extra.any()


def test_exhaustive_reference_contains_the_known_points():
    spec, params, pts, _ = fp_recall.known_network(16, 2, seed=3)
    small = fp.FixedPointConfig(n_init=16, adam_iters=200)
    ref = fp_recall.exhaustive(fp.CellMap(spec, params), trajectories(spec, params), small,
                               inputs=np.zeros(1))
    r, _, extra = fp_recall.recall(ref, pts, np.zeros(len(pts), int))
    assert r[0] == 1.0 and not extra.any()


def test_reference_does_not_shrink_with_a_leaner_search():
    """The exhaustive reference keeps its floor of budgets when the search it measures is
    made leaner, and grows with a larger one."""
    base = fp_recall.reference_config(fp.FixedPointConfig())
    lean = fp_recall.reference_config(fp.FixedPointConfig(n_init=64, adam_iters=10,
                                                          max_midpoints=32))
    assert lean == base and base.n_init >= 4 * fp.FixedPointConfig().n_init
    big = fp_recall.reference_config(fp.FixedPointConfig(n_init=1024, adam_iters=400))
    assert (big.n_init, big.adam_iters, big.midpoint_rounds) == (4096, 2000, 3)
    assert big.tol_reach == 0.0
    narrow = fp_recall.reference_config(fp.FixedPointConfig(wide_noise=0.5,
                                                            neighbour_steps=(0.1,)))
    assert narrow.wide_noise == 2.0 and narrow.neighbour_steps == (0.03, 0.1, 0.3, 1.0, 2.0)


def test_config_rejects_bad_values_and_keeps_the_old_name():
    with pytest.raises(ValueError):
        fp.FixedPointConfig(n_init=0)
    assert fp.FixedPointConfig(tol_keep=1e-5).tol_slow == 1e-5


def test_union_with_a_search_that_found_nothing():
    """A search with no point (F(s) = s + 1 has none) leaves the union's points unchanged."""
    cfg = fp.FixedPointConfig(n_init=4, midpoint_rounds=0)
    vis = torch.randn(1, 8, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    a = fp.find(lambda s, x, net: 0.5 * s, vis, cfg)
    empty = fp.find(lambda s, x, net: s + 1.0, vis, cfg)
    assert len(a) == 1 and len(empty) == 0
    out = fp.union(a, empty, 1e-3)
    assert len(out) == 1 and np.allclose(out.points, 0)
    assert (out.start_point[len(a.start_point):] == -1).all()


def test_points_on_a_continuum_are_not_isolated():
    """F(s) = (s0, s1 / 2) fixes the whole line s1 = 0 (an eigenvalue 1): no point is isolated;
    F(s) = s / 2 has one isolated fixed point."""
    cfg = fp.FixedPointConfig(n_init=8, midpoint_rounds=0)
    vis = torch.randn(1, 16, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    line = fp.find(lambda s, x, net: s * torch.tensor([1.0, 0.5], dtype=s.dtype), vis, cfg)
    point = fp.find(lambda s, x, net: 0.5 * s, vis, cfg)
    assert len(line) > 1 and not fp_recall.isolated(line).any()
    assert len(point) == 1 and fp_recall.isolated(point).all()


def test_polish_to_and_polish_radius_keep_slow_points_where_they_came():
    """F(s) = (s0 + 1e-4 (1 - s0), s1 / 2): an approximate line attractor along s1 = 0 with one
    exact fixed point at (1, 0). Polished to float64 precision every candidate slides there;
    polished only to the slow-point level, the points stay spread along the line."""
    vis = torch.stack([torch.linspace(-1, 0.5, 32), 0.3 * torch.randn(32, generator=torch.Generator()
                       .manual_seed(2))], -1)[None].double()
    F = lambda s, x, net: torch.stack([s[..., 0] + 1e-4 * (1 - s[..., 0]), s[..., 1] / 2], -1)  # noqa: E731
    base = fp.FixedPointConfig(n_init=32, midpoint_rounds=0, init_noise=0.1, wide_fraction=0,
                               tol_slow=1e-5, tol_adam=1e-7)
    exact = fp.find(F, vis, base)
    line = fp.find(F, vis, replace(base, polish_to=1e-7))
    assert np.allclose(exact.points[~exact.slow], [1, 0], atol=1e-6) and (~exact.slow).sum() == 1
    assert len(line) > 10 and np.ptp(line.points[:, 0]) > 1 and line.q.max() <= 1e-5
    # the exact point lies at least 0.5 from every start: a polish held within 0.05 visited
    # radii of where Adam left each candidate reaches it from none, one held within 10 does
    held = fp.find(F, vis, replace(base, polish_radius=0.05))
    assert (~held.slow).sum() == 0 and len(fp.find(F, vis, replace(base, polish_radius=10))) == 1
    with pytest.raises(ValueError, match="polish_to"):
        fp.FixedPointConfig(polish_to=1e-4, tol_slow=1e-5)


def test_neighbour_starts_step_along_the_slowest_modes():
    """F(s) = diag(0.9, 0.5, 0.2) s: the slowest mode of the point 0 is e1, the next e2."""
    A = torch.tensor([0.9, 0.5, 0.2], dtype=torch.float64)
    vis = torch.randn(1, 16, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    cfg = fp.FixedPointConfig(n_init=8, midpoint_rounds=0)
    res = fp.find(lambda s, x, net: s * A.to(s.dtype), vis, cfg)
    assert len(res) == 1
    s, x = fp.neighbours(res, np.array([0]), modes=2, steps=(0.1, 0.3), radius=2.0)
    assert x.shape == (8, 0)
    got = sorted(map(tuple, np.round(np.abs(s), 9)))  # the eigenvector's sign is arbitrary
    want = sorted([(d, 0, 0) for d in (0.2, 0.6)] * 2 + [(0, d, 0) for d in (0.2, 0.6)] * 2)
    assert np.allclose(got, want)
    assert len(fp.neighbours(res, np.array([0]), modes=0, steps=(0.1,), radius=2.0)[0]) == 0


def test_midpoints_pair_only_with_new_points():
    """After a round, only pairs with a point new in that round are started again."""
    spec, params, _, _ = fp_recall.known_network(16, 2, seed=2)
    res = fp.find_fixed_points(spec, params, np.zeros(1), trajectories(spec, params), FAST)
    m = np.arange(len(res))
    assert len(fp.midpoint_pairs(res, m)[0]) == len(m) * (len(m) - 1) // 2
    mids, _ = fp.midpoint_pairs(res, m, since=len(m) - 1)  # only the last point is new
    assert np.allclose(mids, (res.points[:-1] + res.points[-1]) / 2)


def test_neighbour_steps_are_checked():
    with pytest.raises(ValueError, match="neighbour_steps"):
        fp.FixedPointConfig(neighbour_steps=(0.1, -1.0))
    with pytest.raises(ValueError, match="neighbour_modes"):
        fp.FixedPointConfig(neighbour_modes=-1)


def test_cell_map_on_rows_of_networks_in_any_order_and_on_none():
    """Rows of several networks, unsorted, equal the networks stepped one by one; no row: empty."""
    spec = models.CellSpec("lstm", "tanh", n_in=2, n_hidden=4, n_out=1)
    params = models.init_params(spec, [0, 1, 2])
    F = fp.CellMap(spec, params)
    net = torch.tensor([2, 0, 2, 1, 0])
    s = torch.randn(5, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    x = torch.randn(5, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    J, Jx = F.jacobians(s, x, net)
    for r, i in enumerate(net.tolist()):
        one = fp.CellMap(spec, models.select(params, [i]))
        Ji, Jxi = one.jacobians(s[r:r + 1], x[r:r + 1], torch.tensor([0]))
        assert torch.allclose(J[r], Ji[0]) and torch.allclose(Jx[r], Jxi[0])
        alone = one(s[r:r + 1, None], x[r:r + 1, None], torch.tensor([0]))[0]
        assert torch.allclose(F(s[:, None], x[:, None], net)[r], alone)
    J0, Jx0 = F.jacobians(s[:0], x[:0], net[:0])
    assert J0.shape == (0, 8, 8) and Jx0.shape == (0, 8, 2)


@pytest.mark.parametrize("shape", [(3, 5, 2), (1, 5, 2), (3, 1, 5, 2)])
def test_search_input_drive_equals_the_cells_also_without_input(shape):
    """The search's input drive is lib.models.input_drive, bit for bit; for zero inputs the
    bias itself, with no product."""
    spec = models.CellSpec("gru", "tanh", n_in=2, n_hidden=4, n_out=1)
    params = models.init_params(spec, [0, 1, 2])
    params["b"] = torch.randn(params["b"].shape, generator=torch.Generator().manual_seed(0))
    for x in (torch.zeros(shape), torch.randn(shape)):
        got, ref = cell_jacobians.input_drive(params, x), models.input_drive(params, x)
        assert got.shape == ref.shape and torch.equal(got, ref)


@pytest.mark.parametrize("points", [3, fp.CellMap.GATHER_POINTS])  # grouped; gathered weights
def test_cell_map_rows_of_many_points_equal_each_network_alone(points):
    """Rows of several points each (the further rounds' starts), unsorted: step and q and
    gradient equal each network's own map, bit for bit, also when the same rows come back."""
    spec = models.CellSpec("gru", "relu", n_in=2, n_hidden=4, n_out=1)
    params = models.init_params(spec, [0, 1, 2])
    F = fp.CellMap(spec, params)
    g = torch.Generator().manual_seed(3)
    net = torch.tensor([2, 0, 2, 1])
    for _ in range(2):
        s = torch.randn(4, points, 4, generator=g)
        x = torch.randn(4, points, 2, generator=g)
        out, (q, grad) = F(s, x, net), F.q_and_grad(s, x, net)
        for r, i in enumerate(net.tolist()):
            one = fp.CellMap(spec, models.select(params, [i]))
            assert torch.equal(out[r], one(s[r:r + 1], x[r:r + 1], torch.tensor([0]))[0])
            q1, g1 = one.q_and_grad(s[r:r + 1], x[r:r + 1], torch.tensor([0]))
            assert torch.equal(q[r], q1[0]) and torch.equal(grad[r], g1[0])


def test_wide_starts_are_the_last_fraction_with_their_own_noise():
    ref = torch.zeros(1, 4, 3, dtype=torch.float64)
    ref[0, :, 0] = torch.tensor([-1.0, 1.0, -1.0, 1.0])  # pooled sd = sqrt(4/3 / 3)
    s0 = fp.initial_states(ref, fp.FixedPointConfig(n_init=4000, init_noise=0.0, wide_noise=2.0,
                                                    wide_fraction=0.25))
    off = s0[0, :, 1:]  # coordinates 1 and 2: only the noise
    assert (off[:3000] == 0).all()
    assert off[3000:].std().item() == pytest.approx(2.0 * (4 / 9) ** 0.5, rel=0.05)
