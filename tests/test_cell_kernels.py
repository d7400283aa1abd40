"""The fused C kernels of the CPU trainer against the torch ops they replace.

``lib.bptt`` runs every cell either through ``lib.cell_kernels`` (float32 on the CPU) or
through torch ops (float64, GPUs, no C compiler). Both paths must give the same outputs and
gradients up to float32 rounding; the gradients of both against autograd are in test_train.py.
"""
from __future__ import annotations

import ctypes
import dataclasses
import itertools

import numpy as np
import pytest
import torch

from lib import bptt, cell_kernels, models, native, store
from lib.config import population_config

pytestmark = pytest.mark.skipif(not cell_kernels.available(), reason="no C compiler")


def run(spec, params, x, fused: bool):
    """Outputs [T, N, B, O] and gradients of sum(y_hat * r) for fixed random r, one path."""
    mats = bptt.pack(spec, params)
    ws = bptt.Workspace(spec, mats, x.shape[2], x.shape[1])
    assert ws.fused  # float32 on the CPU: the kernels are chosen
    ws.fused = fused
    ws.set_inputs(x)
    out = bptt.forward(ws, mats).clone()
    r = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
    ws.dY.copy_(r.transpose(0, 1))
    return out, [g.clone() for g in bptt.backward(ws, mats)]


@pytest.mark.parametrize("arch, act", list(itertools.product(models.ARCHS, models.ACTIVATIONS)))
def test_fused_kernels_equal_the_torch_ops(arch, act):
    spec = models.CellSpec(arch, act, n_in=3, n_hidden=19, n_out=2)  # 19: a vector remainder
    params = models.init_params(spec, [1, 2, 3])
    x = 2 * torch.randn(3, 30, 5, 3, generator=torch.Generator().manual_seed(0))
    (out_k, grads_k), (out_t, grads_t) = run(spec, params, x, True), run(spec, params, x, False)
    torch.testing.assert_close(out_k, out_t, rtol=1e-5, atol=1e-5)
    for gk, gt in zip(grads_k, grads_t):
        scale = gt.abs().max()
        torch.testing.assert_close(gk / scale, gt / scale, rtol=1e-5, atol=1e-5)


def test_the_kernel_sigmoid_is_accurate_over_the_whole_float_range():
    z = torch.cat([torch.linspace(-120, 120, 4001), torch.tensor([0.0, -1e-8, 1e-8, 88.5,
                                                                  -88.5, 1e30, -1e30])])
    got = z.view(1, 1, -1).clone()
    cell_kernels.sigmoid_blocks(got, got.shape[2], 1)
    want = torch.sigmoid(z.double())
    err = (got.view(-1).double() - want).abs()
    assert torch.isfinite(got).all() and err.max() < 2e-7
    normal = z >= -87  # below, the exponential is clamped: sigmoid < 2e-38 comes out as 6e-39
    assert (err[normal] / want[normal]).max() < 1e-6  # relative, in the tails too


def test_kernel_operands_are_checked():
    z = torch.zeros(2, 3, 8)
    with pytest.raises(ValueError, match="contiguous"):
        cell_kernels.vanilla_fwd("tanh", z.transpose(1, 2), z.transpose(1, 2))
    with pytest.raises(ValueError, match="float32"):
        cell_kernels.vanilla_fwd("tanh", z.double(), z.double())
    with pytest.raises(ValueError, match="shapes"):
        cell_kernels.vanilla_fwd("tanh", z, z[:1])


def test_without_a_compiler_the_torch_ops_run_and_are_stored_apart(monkeypatch):
    cfg = population_config("smoke", "flipflop").shards()[0]
    fused_key = store.shard_key(cfg)
    monkeypatch.setattr(cell_kernels, "_lib", lambda: None)
    spec = models.CellSpec("lstm", "tanh", n_in=3, n_hidden=4, n_out=3)
    mats = bptt.pack(spec, models.init_params(spec, [0]))
    assert not bptt.Workspace(spec, mats, 2, 3).fused
    assert store.shard_key(cfg) != fused_key


def test_the_numbers_do_not_depend_on_the_vector_width(tmp_path, monkeypatch):
    """A scalar build (no vectoriser) gives the vectorised build's outputs and gradients bit
    for bit: without FMA contraction or fast-math every operation rounds as written."""
    spec = models.CellSpec("lstm", "tanh", n_in=3, n_hidden=37, n_out=3)
    params = models.init_params(spec, [1, 2])
    x = 3 * torch.randn(2, 20, 7, 3, generator=torch.Generator().manual_seed(0))
    vector = run(spec, params, x, True)
    flags = ("-O1", "-fno-tree-vectorize", "-ffp-contract=off", "-shared", "-fPIC")
    built = native.build(cell_kernels.SOURCE, native.compiler(), flags, tmp_path)
    scalar_lib = ctypes.CDLL(str(built))
    monkeypatch.setattr(cell_kernels, "_lib", lambda: scalar_lib)
    cell_kernels._function.cache_clear()
    try:
        scalar = run(spec, params, x, True)
    finally:
        cell_kernels._function.cache_clear()
    assert torch.equal(vector[0], scalar[0])
    assert all(torch.equal(a, b) for a, b in zip(vector[1], scalar[1]))


@pytest.mark.parametrize("arch", ["vanilla", "gru"])  # gru: two weight matrices, one norm
def test_the_fused_loss_and_adam_equal_the_torch_ops(arch):
    """Training steps whose loss, L2, divergence check, clipping and Adam run through the C
    kernels equal the same steps as torch ops, to float32 rounding: a network clipped hard
    (clip 1e-3), one with no L2, and one whose NaN weight makes it diverge at the first step."""
    from lib import train
    from lib.config import NetSettings
    cfg = population_config("smoke", "cdi", archs=(arch,), activations=("tanh",)).shards()[0]
    cfg = dataclasses.replace(cfg, nets=(NetSettings(1e-2, 1e-3, 1e-3, 1),
                                         NetSettings(1e-2, 0.0, 1.0, 2),
                                         NetSettings(1e-2, 1e-3, 1.0, 3)))
    runs = []
    for fused in (True, False):
        state = train.initial_state(cfg)
        state.params["W"][2, 0, 0] = float("nan")
        run = train._Run(cfg, state, torch.device("cpu"))
        run.ws.fused = fused
        for t in range(5):
            run.train_step(t)
        runs.append(run)
    k, t = runs
    assert list(k.diverged_at) == list(t.diverged_at) == [-1, -1, 0]
    np.testing.assert_allclose(k.losses[:, :2], t.losses[:, :2], rtol=1e-5)
    assert np.isnan(k.losses[:, 2]).all() and np.isnan(t.losses[:, 2]).all()
    for a, b in zip(k.mats + k.m + k.v, t.mats + t.m + t.v):
        torch.testing.assert_close(a[:2], b[:2], rtol=1e-4, atol=1e-6)
        assert torch.equal(a[2].isnan(), b[2].isnan())


def test_the_loss_kernel_is_the_masked_mse():
    g = torch.Generator().manual_seed(0)
    out, y = torch.randn(3, 4, 5, 2, generator=g), torch.randn(3, 4, 5, 2, generator=g)
    mask = (torch.rand(3, 4, 5, 2, generator=g) > 0.3).float()
    dy = torch.zeros_like(out)
    loss = cell_kernels.loss_grad(out, y, mask, np.array([1, 0, 1], np.float32), dy)
    err = (out - y) * mask
    total = mask.sum((1, 2, 3))
    np.testing.assert_allclose(loss, ((err ** 2).sum((1, 2, 3)) / total).numpy(), rtol=1e-6)
    want = err * (2 * torch.tensor([1.0, 0, 1]) / total).view(-1, 1, 1, 1)
    torch.testing.assert_close(dy, want)
    with pytest.raises(ValueError, match="shapes"):
        cell_kernels.loss_grad(out, y[:2], mask, np.ones(3, np.float32), dy)
