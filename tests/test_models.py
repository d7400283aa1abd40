"""Stacked cells against single-network references and PyTorch's own cells.

Every stacked network must compute exactly what one network written out by hand computes;
GRU (reset-after form) and LSTM must match ``torch.nn.GRUCell`` / ``torch.nn.LSTMCell`` given
the same weights. Comparisons run in float64 so that agreement is to rounding error.
"""
import itertools

import pytest
import torch

from lib import models
from lib.models import CellSpec

N, B, I, H, O, T = 3, 5, 4, 6, 2, 7
CASES = list(itertools.product(models.ARCHS, models.ACTIVATIONS))


def random_params(spec, seeds=(1, 2, 3)):
    """Initial parameters with every bias made non-zero, in float64."""
    params = {k: v.double() for k, v in models.init_params(spec, seeds).items()}
    gen = torch.Generator().manual_seed(99)
    for k in ("b", "b_out", "b_hn"):
        if k in params:
            params[k] = params[k] + 0.3 * torch.randn(params[k].shape, generator=gen).double()
    return params


def one(params, n):
    """Network n's weights without the network axis: W [H, G], b [G], ..."""
    return {k: (v[n, 0] if k.startswith("b") else v[n]) for k, v in params.items()}


def reference_step(spec, p, s, x):
    """One step of one network, written from the equations: s [B, S], x [B, I] -> [B, S]."""
    phi, Hh, sig = models.PHI[spec.activation], spec.n_hidden, torch.sigmoid
    blocks = lambda M: [M[..., k * Hh:(k + 1) * Hh] for k in range(M.shape[-1] // Hh)]  # noqa
    W, U, b = blocks(p["W"]), blocks(p["U"]), blocks(p["b"])
    if spec.arch == "vanilla":
        return phi(s @ W[0] + x @ U[0] + b[0])
    if spec.arch == "ugrnn":
        u = sig(s @ W[0] + x @ U[0] + b[0])
        return u * s + (1 - u) * phi(s @ W[1] + x @ U[1] + b[1])
    if spec.arch == "gru":
        u = sig(s @ W[0] + x @ U[0] + b[0])
        r = sig(s @ W[1] + x @ U[1] + b[1])
        if spec.gru_reset_after:
            c = phi(x @ U[2] + b[2] + r * (s @ W[2] + p["b_hn"]))
        else:
            c = phi((r * s) @ W[2] + x @ U[2] + b[2])
        return u * s + (1 - u) * c
    h, c = s[:, :Hh], s[:, Hh:]
    i, f, g, o = (h @ Wk + x @ Uk + bk for Wk, Uk, bk in zip(W, U, b))
    c_new = sig(f) * c + sig(i) * phi(g)
    return torch.cat([sig(o) * phi(c_new), c_new], dim=1)


def inputs(spec, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(N, B, T, spec.n_in, generator=gen).double()
    s = torch.randn(N, B, spec.state_dim, generator=gen).double()
    return x, s


@pytest.mark.parametrize("arch, act", CASES + [("gru", "tanh-reset-after")])
def test_stacked_step_matches_single_network_reference(arch, act):
    spec = CellSpec(arch, act.split("-")[0], I, H, O, gru_reset_after=act.endswith("after"))
    params = random_params(spec)
    x, s = inputs(spec)
    got = models.step(spec, params, s, x[:, :, 0])
    assert got.shape == (N, B, spec.state_dim)
    for n in range(N):
        want = reference_step(spec, one(params, n), s[n], x[n, :, 0])
        torch.testing.assert_close(got[n], want, rtol=1e-12, atol=1e-12)


def test_networks_differ_so_the_comparison_can_fail():
    spec = CellSpec("gru", "tanh", I, H, O)
    params = random_params(spec)
    x, s = inputs(spec)
    got = models.step(spec, params, s, x[:, :, 0])
    assert not torch.allclose(got[0], reference_step(spec, one(params, 1), s[0], x[0, :, 0]))


@pytest.mark.parametrize("arch, act", CASES)
def test_unroll_is_repeated_step_and_readout_is_linear(arch, act):
    spec = CellSpec(arch, act, I, H, O)
    params = random_params(spec)
    x, s0 = inputs(spec)
    states = models.unroll(spec, params, x, s0)
    s = s0
    for t in range(T):
        s = models.step(spec, params, s, x[:, :, t])
        torch.testing.assert_close(states[:, :, t], s, rtol=1e-12, atol=1e-12)
    y = models.readout(spec, params, states)
    for n in range(N):
        want = states[n, ..., :H] @ params["W_out"][n] + params["b_out"][n, 0]
        torch.testing.assert_close(y[n], want, rtol=1e-12, atol=1e-12)


def test_shared_inputs_broadcast_to_every_network():
    spec = CellSpec("ugrnn", "relu", I, H, O)
    params = random_params(spec)
    x, _ = inputs(spec)
    shared = models.unroll(spec, params, x[:1])
    copied = models.unroll(spec, params, x[:1].expand(N, -1, -1, -1))
    torch.testing.assert_close(shared, copied, rtol=0, atol=0)
    assert torch.all(shared[:, :, 0] == models.step(spec, params, torch.zeros(N, B, H).double(),
                                                     x[:1, :, 0]))


def test_gru_reset_after_matches_torch_grucell():
    spec = CellSpec("gru", "tanh", I, H, O, gru_reset_after=True)
    params = random_params(spec)
    x, s = inputs(spec)
    got = models.step(spec, params, s, x[:, :, 0])
    for n in range(N):
        p = one(params, n)
        cell = torch.nn.GRUCell(I, H).double()
        # torch stacks gates as rows (r, z, n) and computes x W^T; ours are columns (u=z, r, c)
        order = lambda M: torch.cat([M[..., H:2 * H], M[..., :H], M[..., 2 * H:]], -1)  # noqa
        with torch.no_grad():
            cell.weight_ih.copy_(order(p["U"]).T)
            cell.weight_hh.copy_(order(p["W"]).T)
            cell.bias_ih.copy_(order(p["b"]))  # gate biases: ours = b_ih + b_hh
            cell.bias_hh.copy_(torch.cat([torch.zeros(2 * H).double(), p["b_hn"]]))
            want = cell(x[n, :, 0], s[n])
        torch.testing.assert_close(got[n], want, rtol=1e-12, atol=1e-12)


def test_lstm_matches_torch_lstmcell_and_state_is_h_then_c():
    spec = CellSpec("lstm", "tanh", I, H, O)
    params = random_params(spec)
    x, s = inputs(spec)
    got = models.step(spec, params, s, x[:, :, 0])
    assert spec.state_dim == 2 * H
    for n in range(N):
        p = one(params, n)
        cell = torch.nn.LSTMCell(I, H).double()
        half = 0.5 * p["b"]  # torch has two bias vectors that add up; split ours in two
        with torch.no_grad():  # gate order (i, f, g, o) is the same as torch's
            cell.weight_ih.copy_(p["U"].T)
            cell.weight_hh.copy_(p["W"].T)
            cell.bias_ih.copy_(half)
            cell.bias_hh.copy_(p["b"] - half)
            h, c = cell(x[n, :, 0], (s[n, :, :H], s[n, :, H:]))
        torch.testing.assert_close(got[n, :, :H], h, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(got[n, :, H:], c, rtol=1e-12, atol=1e-12)


def test_paper_gru_differs_from_reset_after_form():
    """The two GRU conventions are different maps (so the flag is not a no-op)."""
    a = CellSpec("gru", "tanh", I, H, O)
    b = CellSpec("gru", "tanh", I, H, O, gru_reset_after=True)
    params = random_params(b)
    x, s = inputs(a)
    paper = {k: v for k, v in params.items() if k != "b_hn"}
    assert not torch.allclose(models.step(a, paper, s, x[:, :, 0]),
                              models.step(b, params, s, x[:, :, 0]))


@pytest.mark.parametrize("arch", models.ARCHS)
def test_callers_params_are_not_modified(arch):
    spec = CellSpec(arch, "tanh", I, H, O)
    params = random_params(spec)
    before = {k: v.clone() for k, v in params.items()}
    x, s = inputs(spec)
    loss = models.readout(spec, params, models.unroll(spec, params, x, s)).sum()
    models.step(spec, params, s, x[:, :, 0])
    sub = models.select(params, [2, 0])
    sub["W"].add_(1.0)
    assert loss.isfinite()
    for k in params:
        assert torch.equal(params[k], before[k]), k
    torch.testing.assert_close(sub["U"], before["U"][[2, 0]], rtol=0, atol=0)


def test_init_is_seeded_per_network():
    spec = CellSpec("lstm", "relu", I, H, O)
    a = models.init_params(spec, [5, 6, 7])
    b = models.init_params(spec, [7, 5])
    assert torch.equal(a["W"][2], b["W"][0]) and torch.equal(a["W"][0], b["W"][1])
    assert not torch.equal(a["W"][0], a["W"][1])
    assert torch.all(a["b"][:, 0, H:2 * H] == models.RELU_LSTM_FORGET_BIAS)
    assert torch.all(a["b"][:, 0, :H] == 0)


def test_bad_cell_spec_names_the_parameter():
    with pytest.raises(ValueError, match="arch='rnn'"):
        CellSpec("rnn", "tanh", I, H, O)
    with pytest.raises(ValueError, match="n_hidden=0"):
        CellSpec("gru", "tanh", I, 0, O)


def test_relu_lstm_starts_as_a_bounded_leaky_integrator():
    # W_g = 0 at init, so under a constant input c' = f c + i g with a constant g = relu(x U_g
    # + b_g) and f, i < 1: c grows at most linearly (c_t <= (t + 1) max g), never exponentially.
    # Every other weight is drawn as for tanh; the forget bias is larger.
    relu, tanh = (CellSpec("lstm", act, 1, 16, 1) for act in ("relu", "tanh"))
    p_relu, p_tanh = models.init_params(relu, [3, 4]), models.init_params(tanh, [3, 4])
    assert not p_relu["W"][..., 32:48].any() and p_tanh["W"][..., 32:48].abs().min() > 0
    for k in p_tanh:
        keep = p_tanh[k].clone()
        if k == "W":
            keep[..., 32:48] = 0
        if k == "b":
            keep[..., 16:32] = models.RELU_LSTM_FORGET_BIAS
        assert torch.equal(p_relu[k], keep), k
    T = 500
    x = torch.full((2, 1, T, 1), 1.25)
    with torch.no_grad():
        c = models.unroll(relu, p_relu, x)[..., 16:]  # [2, 1, T, 16]
        g = torch.relu(models.input_drive(p_relu, x[:, :, :1]))[..., 32:48].amax(dim=(1, 2, 3))
    steps = torch.arange(1, T + 1).view(1, 1, T, 1)
    assert torch.all(c.abs() <= steps * g.view(2, 1, 1, 1) + 1e-5)
