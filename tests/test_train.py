"""The population trainer: learning, per-network hyperparameters, divergence, sharding.

Every network draws its own trials from its own seed, and on the CPU the trainer runs one
thread, so a network's weights do not depend on its neighbours in the shard. We found them
bit-identical for every shard of two or more networks (batched matmuls over the network axis
compute each network's product separately), so these tests demand exact equality there. The one
exception: a shard of a single network on a one-output task (sine, CDI) differs in the last bit
(|dw| ~ 1e-7 after 10 steps), because ``bmm`` with a batch of one and an output width of one
dispatches to a different (matrix-vector) kernel for the readout; see
``test_a_single_network_shard_agrees_to_rounding``.
"""
import dataclasses

import numpy as np
import pytest
import torch

from lib import models, train
from lib.config import NetSettings, population_config
from lib.population import Population

SMALL = dict(archs=("gru",), activations=("tanh",), n_steps=30)


def shard(nets=None, **overrides):
    """The first shard of a tiny flip-flop population, optionally with explicit networks."""
    cfg = population_config("smoke", "flipflop", **{**SMALL, **overrides}).shards()[0]
    return cfg if nets is None else dataclasses.replace(cfg, nets=tuple(nets))


def by_seed(res):
    """{seed: (flat weights, nmse)} of a trained shard."""
    flat = torch.cat([p.flatten(1) for p in res.params.values()], dim=1)
    return {n.seed: (flat[j], res.nmse[j]) for j, n in enumerate(res.config.nets)}


def initial_flat(cfg):
    return by_seed(train.ShardResult(cfg, None, train.initial_state(cfg).params,
                                     None, np.zeros(len(cfg.nets)), None))


def test_loss_decreases_on_a_tiny_problem():
    cfg = shard(nets=[NetSettings(3e-2, 0.0, 1.0, s) for s in (1, 2)], archs=("vanilla",),
                n_steps=80, hidden_sizes=(16,))
    res = train.train_shard(cfg, progress=False)
    assert res.losses.shape == (80, 2) and not res.diverged.any()
    early, late = res.losses[:10].mean(0), res.losses[-10:].mean(0)
    assert np.all(late < 0.7 * early), (early, late)
    assert np.all(res.nmse < 1.0)


def test_zero_learning_rate_leaves_that_network_untouched():
    cfg = shard(nets=[NetSettings(1e-2, 1e-3, 1.0, 1), NetSettings(0.0, 1e-3, 1.0, 2)])
    res, init = by_seed(train.train_shard(cfg, progress=False)), initial_flat(cfg)
    assert torch.equal(res[2][0], init[2][0])
    assert not torch.allclose(res[1][0], init[1][0])


def test_l2_shrinks_weights():
    # same seed, so same initial weights and same trials; only the L2 strength differs
    cfg = shard(nets=[NetSettings(1e-2, 0.0, 1.0, 7), NetSettings(1e-2, 0.1, 1.0, 7)])
    res = train.train_shard(cfg, progress=False)
    sq = lambda params, j: sum(params[k][j].pow(2).sum() for k in train.REGULARISED)  # noqa
    init = sq(train.initial_state(cfg).params, 0)
    assert sq(res.params, 1) < 0.8 * init and sq(res.params, 1) < 0.8 * sq(res.params, 0)


def test_gradient_clip_is_per_network():
    # a vanishing clip makes Adam's steps tiny (the gradient falls far below eps)
    cfg = shard(nets=[NetSettings(1e-2, 0.0, 1.0, 1), NetSettings(1e-2, 0.0, 1e-12, 2)])
    res, init = by_seed(train.train_shard(cfg, progress=False)), initial_flat(cfg)
    moved = {s: (res[s][0] - init[s][0]).abs().max().item() for s in (1, 2)}
    assert moved[2] < 1e-4 < 1e-2 < moved[1]


def test_diverged_networks_are_flagged_frozen_counted_and_harmless():
    kw = dict(n_seeds=2, l2s=(1e-4,))
    pop_cfg = population_config("smoke", "flipflop", **SMALL, **kw, lrs=(1e-2, 1e4))
    clean_cfg = population_config("smoke", "flipflop", **SMALL, **kw, lrs=(1e-2,))
    snapshots = []
    res = train.train_shard(pop_cfg.shards()[0], progress=False, checkpoint_every=10,
                            checkpoint=lambda st: snapshots.append(dict(st.params)))
    clean = train.train_shard(clean_cfg.shards()[0], progress=False)

    bad = np.array([n.lr == 1e4 for n in pop_cfg.shards()[0].nets])
    assert np.all(res.diverged_at[bad] >= 0) and np.all(res.diverged_at[~bad] == -1)
    assert np.all(np.isinf(res.nmse[bad])) and np.all(np.isfinite(res.nmse[~bad]))
    assert np.all(np.isnan(res.losses[res.diverged_at[bad].max() + 1:, bad]))
    for k, p in res.params.items():  # frozen: no update after step 10
        assert torch.equal(p[bad], snapshots[0][k][bad]), k
    counts = Population(pop_cfg, [res]).counts()
    assert counts["diverged"].sum() == bad.sum() and counts["trained"].sum() == len(bad)
    good, ref = by_seed(res), by_seed(clean)
    for seed, (w, nmse) in ref.items():
        assert torch.equal(good[seed][0], w) and good[seed][1] == nmse


def test_nan_weights_are_caught_at_the_first_step_without_touching_the_others():
    cfg = shard(nets=[NetSettings(1e-2, 1e-4, 1.0, s) for s in (1, 2, 3)])
    state = train.initial_state(cfg)
    state.params["W"][1, 0, 0] = float("nan")
    res = train.train_shard(cfg, state=state, progress=False)
    clean = train.train_shard(shard(nets=[cfg.nets[0], cfg.nets[2]]), progress=False)
    assert list(res.diverged_at) == [-1, 0, -1]
    for k in res.params:
        assert torch.equal(res.params[k][[0, 2]], clean.params[k]), k
    assert np.array_equal(res.losses[:, [0, 2]], clean.losses)


def train_by_seed(arch, shard_size, task="sine"):
    """{seed: (weights, nmse)} of a 6-network population trained in shards of ``shard_size``."""
    common = dict(archs=(arch,), n_seeds=3, l2s=(1e-4, 1e-3), n_steps=10)
    cfg = population_config("smoke", task, **{**SMALL, **common}, shard_size=shard_size)
    return {s: v for sh in cfg.shards()
            for s, v in by_seed(train.train_shard(sh, progress=False)).items()}


@pytest.mark.parametrize("arch", ["vanilla", "lstm"])
def test_a_network_does_not_depend_on_its_shard(arch):
    ref = train_by_seed(arch, 2)  # shards of 2, 2, 2
    assert len(ref) == 6
    for size in (4, 6):  # shards of 4 + 2, and one of 6
        other = train_by_seed(arch, size)
        assert other.keys() == ref.keys()
        for seed, (w, nmse) in ref.items():
            assert torch.equal(other[seed][0], w) and other[seed][1] == nmse


def test_a_single_network_shard_agrees_to_rounding():
    ref, alone = train_by_seed("vanilla", 6), train_by_seed("vanilla", 1)
    for seed, (w, nmse) in ref.items():
        torch.testing.assert_close(alone[seed][0], w, rtol=0, atol=1e-5)
        assert abs(alone[seed][1] - nmse) < 1e-5


def test_nmse_is_test_mse_over_target_variance():
    # with a zero readout the output is 0, so NMSE = mean(y^2) / var(y) on the held-out trials
    cfg = shard(nets=[NetSettings(1e-2, 0.0, 1.0, 1)], archs=("vanilla",))
    state = train.initial_state(cfg)
    state.params["W_out"].zero_()
    trials = cfg.make_task().sample(cfg.eval_batch, train.EVAL_SEED)
    want = float((trials.targets ** 2).mean()) / float(trials.targets.var())
    got = train.evaluate(cfg, train.cell_spec(cfg), state)
    np.testing.assert_allclose(got, [want], rtol=1e-5)


def test_trainer_does_not_modify_the_callers_parameters():
    cfg = shard()
    state = train.initial_state(cfg)
    before = {k: v.clone() for k, v in state.params.items()}
    res = train.train_shard(cfg, state=state, progress=False)
    for k, v in state.params.items():
        assert torch.equal(v, before[k]) and not torch.equal(res.params[k], v), k


def test_every_architecture_trains_without_error():
    for arch in models.ARCHS:
        res = train.train_shard(shard(archs=(arch,), activations=("relu",), n_steps=3),
                                progress=False)
        assert res.losses.shape == (3, 2) and np.all(np.isfinite(res.losses))
