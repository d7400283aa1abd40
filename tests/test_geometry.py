"""Probe states batched per shard equal one-network runs; PCA and participation ratio known."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from lib import geometry, models
from lib.population import Network
from lib.tasks import FlipFlop


def shard(arch, seeds, n_hidden=6):
    spec = models.CellSpec(arch, "tanh", 3, n_hidden, 3)
    return SimpleNamespace(spec=spec, params=models.init_params(spec, seeds))


def test_probe_states_match_single_network_runs_in_caller_order():
    task = FlipFlop(n_time=12)
    a, b = shard("gru", [1, 2, 3]), shard("lstm", [4, 5])
    nets = [Network(b, 1), Network(a, 2), Network(a, 0), Network(b, 0)]
    states = geometry.probe_states(nets, task, n_trials=5)
    x = torch.as_tensor(task.probe(5).inputs)[None]
    for net, s in zip(nets, states):
        ref = models.unroll(net.spec, net.params, x)[0, ..., :6].detach().numpy()
        assert s.shape == (5, 12, 6) and s.dtype == np.float64
        np.testing.assert_allclose(s, ref, atol=1e-6)
    full = geometry.probe_states(nets[:1], task, state="full", n_trials=5)[0]
    assert full.shape == (5, 12, 12)
    np.testing.assert_allclose(full[..., :6], states[0], atol=1e-6)
    with pytest.raises(ValueError, match="state='c'"):
        geometry.probe_states(nets, task, state="c")


def test_pca_recovers_planted_axes():
    rng = np.random.default_rng(0)
    axes = np.linalg.qr(rng.standard_normal((5, 2)))[0].T  # [2, 5] orthonormal
    X = rng.standard_normal((2000, 2)) * [3.0, 1.0] @ axes + 7.0
    pca = geometry.PCA(2).fit(X)
    np.testing.assert_allclose(np.abs(pca.components_ @ axes.T), np.eye(2), atol=0.02)
    np.testing.assert_allclose(pca.explained_variance_ratio_[:2], [0.9, 0.1], atol=0.02)
    traj = pca.transform(X.reshape(40, 50, 5))
    assert traj.shape == (40, 50, 2)
    np.testing.assert_allclose(traj.reshape(-1, 2).mean(0), 0, atol=1e-9)
    with pytest.raises(ValueError, match="n_components=6"):
        geometry.PCA(6).fit(X)


def test_participation_ratio_known_values():
    rng = np.random.default_rng(1)
    line = rng.standard_normal((100, 1)) @ rng.standard_normal((1, 8))
    assert geometry.participation_ratio(line) == pytest.approx(1.0)
    iso = np.linalg.qr(rng.standard_normal((100, 4)))[0] * 10  # equal variance in 4 directions
    assert geometry.participation_ratio(iso - iso.mean(0)) == pytest.approx(4.0, rel=0.05)
    assert geometry.participation_ratio(np.ones((10, 3))) == 0.0
