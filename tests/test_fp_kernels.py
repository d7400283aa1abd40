"""The fixed-point search's C kernels (``lib/fp_kernels.c``) against the torch ops they
replace, their operand checks, and the build's independence of the vector width."""
from __future__ import annotations

import ctypes

import numpy as np
import pytest
import torch

from lib import fixed_point_solver as solver, fp_kernels, fp_lm, models, native
from lib.fp_adapters import CellMap

pytestmark = pytest.mark.skipif(not fp_kernels.available(), reason="no C compiler")


def _lm_case(P=9, S=13, seed=0):
    g = torch.Generator().manual_seed(seed)
    J = torch.randn(P, S, S, generator=g, dtype=torch.float64) / S ** 0.5
    r = torch.randn(P, S, generator=g, dtype=torch.float64)
    mu = 10.0 ** torch.randint(-14, 2, (P,), generator=g).double()
    return J, r, mu


def _torch_step(J, r, mu):
    """The LM direction straight from its definition: (A^T A + mu I) d = -A^T r, A = J - I."""
    A = J - torch.eye(J.shape[-1], dtype=J.dtype)
    At = A.transpose(-1, -2)
    M = At @ A + mu[:, None, None] * torch.eye(J.shape[-1], dtype=J.dtype)
    return torch.linalg.solve(M, -(At @ r[..., None]))[..., 0]


@pytest.mark.parametrize("S", [3, 13, 37])
def test_lm_solve_equals_the_normal_equations_solved_by_lapack(S):
    """Sizes below, at and above the kernels' 4-row and 8-column blocks."""
    J, r, mu = _lm_case(S=S)
    d, ok = fp_kernels.solve(J, r, mu)
    assert ok.all()
    torch.testing.assert_close(d, _torch_step(J, r, mu), rtol=1e-9, atol=1e-12)
    M, g = fp_kernels.normal(J, r)  # its upper triangle is A^T A
    A = J - torch.eye(S, dtype=J.dtype)
    torch.testing.assert_close(M.triu(), (A.transpose(-1, -2) @ A).triu(), rtol=1e-12, atol=1e-12)


def test_a_rows_solution_does_not_depend_on_the_rows_beside_it():
    """The damped solve runs eight rows side by side: each row's d equals, bit for bit, its
    solve alone, in a group with a row that fails (NaN) and in the last, partial group."""
    J, r, mu = _lm_case(P=19, S=13, seed=3)
    J[5, 2, 2] = float("nan")
    M, g = fp_kernels.normal(J, r)
    d, ok = fp_kernels.damped(M, g, mu)
    assert ok.tolist() == [i != 5 for i in range(19)]
    for i in [0, 4, 6, 7, 8, 15, 16, 18]:
        alone, ok1 = fp_kernels.damped(M[i:i + 1], g[i:i + 1], mu[i:i + 1])
        assert ok1.all() and torch.equal(alone[0], d[i])


def test_rows_the_c_cholesky_rejects_are_solved_in_torch(monkeypatch):
    """A row whose damped matrix is not numerically positive definite (here: NaN) is flagged;
    damped_direction solves the flagged rows in torch (from the kernel's upper triangle) and
    keeps the C solution of the others."""
    J, r, mu = _lm_case(P=4, S=6)
    bad = J.clone()
    bad[2, 0, 0] = float("nan")
    assert fp_kernels.solve(bad, r, mu)[1].tolist() == [True, True, False, True]
    real = fp_kernels.damped
    flag = lambda *a: (real(*a)[0], torch.tensor([True, False, True, True]))  # noqa: E731
    monkeypatch.setattr(fp_kernels, "damped", flag)
    eye = torch.eye(6, dtype=torch.float64)
    M, g = fp_kernels.normal(J, r)
    d = fp_lm.damped_direction(M, g, mu, eye)
    torch.testing.assert_close(d[1], _torch_step(J[1:2], r[1:2], mu[1:2])[0], rtol=1e-9, atol=1e-12)
    assert torch.equal(d[[0, 2, 3]], real(M, g, mu)[0][[0, 2, 3]])


def test_a_rejected_row_is_solved_again_from_its_held_equations(monkeypatch):
    """The polish keeps the normal equations of a row whose step was rejected: its next try
    (larger mu) forms no Jacobian and takes the same step as one formed afresh."""
    from lib import fixed_point_solver as solver
    spec = models.CellSpec("vanilla", "tanh", 2, 8, 1)
    params = models.init_params(spec, [0, 1, 2])
    F = CellMap(spec, {k: 2 * v.double() for k, v in params.items()})  # gain 2: several zeros
    s = torch.randn(6, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 0.3
    x, net = torch.zeros(6, 2, dtype=torch.float64), torch.tensor([0, 0, 1, 1, 2, 2])
    f = F(s[:, None], x[:, None], net)[:, 0]
    q, mu, eye = 0.5 * (f - s).pow(2).sum(-1), torch.full((6,), 1e-6, dtype=torch.float64), \
        torch.eye(8, dtype=torch.float64)
    state = [z.clone() for z in (s, f, q, mu)]
    held = fp_lm.Held(6, 8, torch.float64)
    rows = torch.arange(6)
    solver._lm_step(F, *state[:2], x, net, *state[2:], rows, eye, held)
    rejected = (held.slot >= 0).nonzero()[:, 0]
    assert torch.equal(rejected, (state[2] >= q).nonzero()[:, 0]) and len(rejected)
    formed = []
    real = solver.jacobians
    monkeypatch.setattr(solver, "jacobians",
                        lambda F, s, *a: formed.append(len(s)) or real(F, s, *a))
    fresh = [z.clone() for z in state]
    solver._lm_step(F, *state[:2], x, net, *state[2:], rejected, eye, held)
    assert formed == []  # every row came from held
    empty = fp_lm.Held(6, 8, torch.float64)
    solver._lm_step(F, *fresh[:2], x, net, *fresh[2:], rejected, eye, empty)
    assert formed == [len(rejected)]
    for a, b in zip(state, fresh):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("t", [1, 4])
def test_adam_kernel_step_equals_the_torch_update(t):
    """One iteration from the same state: the C pass gives solver.adam_update's numbers (float32
    rounding), the inactive points held still, rates raised, lowered and capped."""
    g = torch.Generator().manual_seed(t)
    P, S = 50, 7
    s, grad, m = (torch.randn(P, S, generator=g) for _ in range(3))
    v = torch.rand(P, S, generator=g)
    rate, log_g = torch.rand(P, generator=g) * 0.2, torch.randn(P, generator=g)
    q, q_prev = torch.rand(P, generator=g), torch.rand(P, generator=g)
    q_prev[:5] = q[:5]  # equal q: the rate stays
    active = torch.rand(P, generator=g) > 0.3
    ref = solver.adam_update(s, grad, m, v, rate, log_g, q, q_prev, active, t, 1 / 0.95, 0.5, 0.15)
    out = [z.clone() for z in (s, grad, m, v, rate, log_g, q, q_prev)]
    fp_kernels.adam_points(*out, active, t, 1 / 0.95, 0.5, 0.15)
    for got, want in zip([out[i] for i in (0, 2, 3, 4, 5, 7)], ref):
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-7)
    assert torch.equal(out[0][~active], s[~active]) and (out[4] <= 0.15).all()


def test_adam_kernel_run_follows_the_torch_run(monkeypatch):
    """The start phase with the fused update ends where the torch ops end, points finishing on
    the way. The two round differently in float32 and each point's rate follows its own q, so
    the runs drift apart slowly: compared over 15 iterations."""
    spec = models.CellSpec("gru", "tanh", n_in=2, n_hidden=6, n_out=1)
    params = models.init_params(spec, [0, 1])
    F = CellMap(spec, params)
    s0 = torch.randn(2, 40, 6, generator=torch.Generator().manual_seed(3))
    x, net = torch.zeros(2, 40, 2), torch.arange(2)
    run = lambda: solver.adam(F, s0, x, net, iters=15, lr=0.05, tol_q=1e-2)  # noqa: E731
    fused = run()
    real = fp_kernels.usable
    monkeypatch.setattr(fp_kernels, "usable", lambda *t, dtype=torch.float64:
                        dtype != torch.float32 and real(*t, dtype=dtype))
    ops = run()
    assert (ops[2] < 14).any() and (ops[2] == 14).any()  # some finished early, some did not
    torch.testing.assert_close(fused[0], ops[0], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(fused[1], ops[1], rtol=1e-3, atol=1e-9)
    assert torch.equal(fused[2], ops[2])


def test_bad_operands_are_named():
    J, r, mu = _lm_case(P=3, S=4)
    with pytest.raises(ValueError, match="float64"):
        fp_kernels.solve(J.float(), r, mu)
    with pytest.raises(ValueError, match=r"\[P, S, S\]"):
        fp_kernels.solve(J[:, :3], r, mu)
    s = torch.zeros(3, 4)
    with pytest.raises(ValueError, match="contiguous float32"):
        fp_kernels.adam_points(s.double(), s, s, s, *([torch.zeros(3)] * 4),
                               torch.ones(3, dtype=torch.bool), 1, 1.05, 0.5, 1.0)


def test_the_numbers_do_not_depend_on_the_vector_width(tmp_path, monkeypatch):
    """A scalar build (no vectoriser) gives the vectorised build's LM steps and Adam updates
    bit for bit: partial sums run in a fixed order and nothing is contracted."""
    J, r, mu = _lm_case(P=5, S=37)
    g = torch.Generator().manual_seed(4)
    adam_in = [torch.randn(6, 37, generator=g) for _ in range(3)] + [torch.rand(6, 37, generator=g)] \
        + [torch.rand(6, generator=g) for _ in range(4)] + [torch.rand(6, generator=g) > 0.3]

    def both():
        d = fp_kernels.solve(J, r, mu)[0]
        z = [t.clone() for t in adam_in]
        fp_kernels.adam_points(*z, 3, 1 / 0.95, 0.5, 1.0)
        return [d] + z

    vector = both()
    flags = ("-O1", "-fno-tree-vectorize", "-ffp-contract=off", "-shared", "-fPIC")
    scalar = ctypes.CDLL(str(native.build(fp_kernels.SOURCE, native.compiler(), flags, tmp_path)))
    monkeypatch.setattr(fp_kernels, "_lib", lambda: scalar)
    fp_kernels._function.cache_clear()
    try:
        other = both()
    finally:
        fp_kernels._function.cache_clear()
    assert all(torch.equal(a, b) for a, b in zip(vector, other))


def test_without_a_compiler_the_search_runs_on_torch_ops(monkeypatch):
    """No C compiler: the same search runs on the torch ops and finds the same points."""
    from lib import fixed_points as fp, fp_recall
    spec, params, points, _ = fp_recall.known_network(16, 2, seed=1)
    visited = torch.as_tensor(points)[None].float()
    cfg = fp.FixedPointConfig(n_init=64, midpoint_rounds=0)
    with_c = fp.find_fixed_points(spec, params, None, visited, cfg)
    monkeypatch.setattr(fp_kernels, "_lib", lambda: None)
    without = fp.find_fixed_points(spec, params, None, visited, cfg)
    assert len(with_c) == len(without) == 9
    order = lambda r: r.points[np.lexsort(r.points.T)]  # noqa: E731
    np.testing.assert_allclose(order(with_c), order(without), atol=1e-9)


def test_held_gives_slots_while_they_last_and_frees_them():
    held = fp_lm.Held(5, 4, torch.float64, max_bytes=2 * (16 + 4) * 8)  # two slots
    assert held.claim(torch.tensor([4, 0, 2])).tolist() == [0, 1, -1]  # the third finds none
    assert held.slot.tolist() == [1, -1, -1, -1, 0]
    held.release(torch.tensor([4, 3]))
    assert held.claim(torch.tensor([2])).tolist() == [0]
    assert held.slot.tolist() == [1, -1, 0, -1, -1]


def test_a_polish_with_too_few_slots_takes_the_same_steps():
    """Rows that find no free slot form and solve their equations apart (and again at their
    next try): the polish ends on the same points, bit for bit."""
    spec = models.CellSpec("vanilla", "tanh", 2, 8, 1)
    params = models.init_params(spec, [0, 1, 2])
    F = CellMap(spec, {k: 2 * v.double() for k, v in params.items()})
    s = torch.randn(12, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 0.5
    x, net = torch.zeros(12, 2, dtype=torch.float64), torch.arange(3).repeat_interleave(4)
    real = fp_lm.Held
    few = lambda P, S, dtype: real(P, S, dtype, max_bytes=3 * (S * S + S) * 8)  # noqa: E731
    out = solver.polish(F, s.clone(), x, net, 30)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(fp_lm, "Held", few)
        out_few = solver.polish(F, s.clone(), x, net, 30)
    assert all(torch.equal(a, b) for a, b in zip(out, out_few))
    assert (out[1] < 1e-20).sum() >= 6  # most rows reached a zero


@pytest.mark.parametrize("act", ["tanh", "relu"])
def test_lstm_jacobian_kernel_equals_the_torch_assembly_bit_for_bit(act, monkeypatch):
    """The C assembly of the LSTM's Jacobian does the torch ops' arithmetic, operation for
    operation, so the two agree exactly (and with the input Jacobian built from them)."""
    from lib import cell_jacobians
    spec = models.CellSpec("lstm", act, n_in=3, n_hidden=16, n_out=2)
    p = {k: v.double() for k, v in models.init_params(spec, [3]).items()}
    p["W"] = 3 * p["W"]  # gates away from saturation and from linearity alike
    g = torch.Generator().manual_seed(1)
    s, x = torch.randn(40, 32, generator=g, dtype=torch.float64), torch.randn(40, 3, generator=g,
                                                                               dtype=torch.float64)
    J, Jx = cell_jacobians.jacobians(spec, p, s, x, True)
    monkeypatch.setattr(fp_kernels, "usable", lambda *a, **k: False)  # the torch route
    J0, Jx0 = cell_jacobians.jacobians(spec, p, s, x, True)
    assert torch.equal(J, J0) and torch.equal(Jx, Jx0)
    assert J.abs().max() > 0.1 and torch.count_nonzero(J) > J.numel() // 3
