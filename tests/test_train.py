"""The population trainer: learning, per-network hyperparameters, divergence, sharding.

Every network draws its own trials from its own seed, and on the CPU the trainer runs one
thread, so a network's weights do not depend on its neighbours in the shard: the batched
matmuls over the network axis compute each network's product separately (numpy's BLAS, one
matrix product per network), so these tests demand exact equality, of the weights of a shard
of a single network too. Its test error alone may differ in the last bit on a one-output task
(sine, CDI): the evaluation runs ``lib.models`` with ``torch.bmm``, which with a batch of one
and an output width of one dispatches to a matrix-vector kernel for the readout.

The trainer differentiates with the hand-written backward pass of ``lib.bptt``; its gradient must
equal torch.autograd's through ``lib.models`` for every architecture and activation, and a few
training steps must equal those of the autograd trainer (``lib.train_autograd``).
"""
import dataclasses
import itertools

import numpy as np
import pytest
import torch

from lib import bptt, models, stream_kernels, streams, train
from lib.config import NetSettings, population_config
from lib.population import Population
from lib.tasks import make_task
from lib.train_autograd import train_shard_autograd

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


@pytest.mark.parametrize("task", ["sine", "cdi"])  # one output: the readout is matrix-vector
def test_a_single_network_shard_is_bit_identical_too(task):
    ref, alone = train_by_seed("vanilla", 6, task), train_by_seed("vanilla", 1, task)
    for seed, (w, nmse) in ref.items():
        assert torch.equal(alone[seed][0], w) and abs(alone[seed][1] - nmse) < 1e-6


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


# ---- the hand-written backward pass against autograd ---------------------------------------

def autograd_reference(spec, params, x, y):
    """Loss sum((y_hat - y)^2) and its gradients by torch.autograd: x [N, B, T, I]."""
    p = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    out = models.readout(spec, p, models.unroll(spec, p, x))
    loss = ((out - y) ** 2).sum()
    return out.detach(), dict(zip(p, torch.autograd.grad(loss, list(p.values()))))


def hand_written(spec, params, x, y, blas=True):
    """The same through lib.bptt: outputs [N, B, T, O] and gradients as a parameter dict.
    ``blas=False``: the matmuls through ``torch.bmm``, as on a GPU, instead of numpy's BLAS."""
    mats = bptt.pack(spec, params)
    ws = bptt.Workspace(spec, mats, x.shape[1], x.shape[2])
    if not blas:
        ws.blas = None
    ws.set_inputs(x.transpose(1, 2))
    out = bptt.forward(ws, mats).permute(1, 2, 0, 3)  # [T, N, B, O] -> [N, B, T, O]
    ws.dY.copy_(2 * (out - y).transpose(1, 2))
    return out, bptt.unpack(spec, bptt.backward(ws, mats))


@pytest.mark.parametrize("arch, act", list(itertools.product(models.ARCHS, models.ACTIVATIONS)))
@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
@pytest.mark.parametrize("blas", [True, False])
def test_hand_written_gradient_equals_autograd(arch, act, dtype, tol, blas):
    spec = models.CellSpec(arch, act, n_in=3, n_hidden=5, n_out=2)
    gen = torch.Generator().manual_seed(0)
    params = {k: v.to(dtype) for k, v in models.init_params(spec, [1, 2, 3]).items()}
    for k in ("b", "b_out"):  # non-zero biases, so that their gradients are tested too
        params[k] = params[k] + 0.3 * torch.randn(params[k].shape, generator=gen).to(dtype)
    x = torch.randn(3, 4, 7, 3, generator=gen).to(dtype)
    y = torch.randn(3, 4, 7, 2, generator=gen).to(dtype)
    want_out, want = autograd_reference(spec, params, x, y)
    got_out, got = hand_written(spec, params, x, y, blas)
    torch.testing.assert_close(got_out, want_out, rtol=tol, atol=tol)
    assert got.keys() == want.keys()
    for k in want:
        scale = want[k].abs().max()
        torch.testing.assert_close(got[k] / scale, want[k] / scale, rtol=tol, atol=tol, msg=k)


@pytest.mark.parametrize("arch", models.ARCHS)
def test_the_weight_gradient_summed_in_chunks_equals_autograd(arch, monkeypatch):
    """With the cut-offs lowered, the 8 x 4 rows of every product are summed in chunks of one
    row (the book's shapes need no test this small to use several)."""
    monkeypatch.setattr(bptt, "SMALL_GEMM", 1)
    monkeypatch.setattr(bptt, "MIN_CHUNK", 1)
    spec = models.CellSpec(arch, "tanh", n_in=3, n_hidden=5, n_out=2)
    gen = torch.Generator().manual_seed(1)
    params = {k: v.double() for k, v in models.init_params(spec, [1, 2]).items()}
    x = torch.randn(2, 4, 7, 3, generator=gen, dtype=torch.float64)
    y = torch.randn(2, 4, 7, 2, generator=gen, dtype=torch.float64)
    _, want = autograd_reference(spec, params, x, y)
    _, got = hand_written(spec, params, x, y)
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=1e-12, atol=1e-12, msg=k)


def test_packing_round_trips_and_keeps_the_unused_block_at_zero():
    spec = models.CellSpec("gru", "tanh", n_in=3, n_hidden=5, n_out=2)
    params = models.init_params(spec, [4, 5])
    back = bptt.unpack(spec, bptt.pack(spec, params))
    assert all(torch.equal(back[k], params[k]) for k in params)
    assert not bptt.pack(spec, params)[0][:, :3, 10:].any()  # x -> y block of [u, r | y]


@pytest.mark.parametrize("arch", models.ARCHS)
def test_a_few_adam_steps_equal_the_autograd_trainer(arch):
    # same streams, Adam, L2 and clipping; the two differ only by float32 rounding
    for act, task in (("tanh", "flipflop"), ("relu", "cdi")):
        cfg = population_config("smoke", task, archs=(arch,), activations=(act,),
                                n_steps=4).shards()[0]
        new, ref = train.train_shard(cfg, progress=False), train_shard_autograd(cfg)
        for k in ref.params:
            torch.testing.assert_close(new.params[k], ref.params[k], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(new.losses, ref.losses, rtol=1e-5)


@pytest.mark.parametrize("task", ["flipflop", "sine", "cdi"])
def test_shard_batches_equal_the_per_network_draws(task):
    t = population_config("default", task).shards()[0].make_task()
    seeds = [3, 1, 4, 1, 5]
    got = streams.shard_batch(t, seeds, 7, 6)
    for j, s in enumerate(seeds):
        want = t.sample(6, np.random.default_rng([s, 7]))
        for a, b in zip(got, (want.inputs, want.targets, want.mask)):
            assert a[j].dtype == b.dtype and np.array_equal(a[j], b)


def test_flipflop_shard_batches_equal_the_draws_for_an_odd_count():
    """An odd number of values: the last sign comes from a low half word alone."""
    t = make_task("flipflop", n_time=7)
    got = streams.shard_batch(t, [2, 9], 0, 3)  # 3 x 7 x 3 = 63 values per network
    for j, s in enumerate([2, 9]):
        assert np.array_equal(got[0][j], t.sample(3, np.random.default_rng([s, 0])).inputs)


def test_the_c_streams_are_numpys_generators_word_for_word():
    """SeedSequence and PCG64 in C: entropy words of 0, of one, two and three 32-bit words."""
    if not stream_kernels.available():
        pytest.skip("no C compiler: numpy's generators are the only ones")
    for seeds, step in (([3, 0, 2 ** 32 - 1, 2 ** 32 + 5, 2 ** 70 + 123], 7), ([11], 2 ** 40)):
        got = stream_kernels.pcg64_raw(seeds, step, 257)
        for k, s in enumerate(seeds):
            want = np.random.default_rng([s, step]).bit_generator.random_raw(257)
            assert np.array_equal(got[k], want)


def test_the_c_flipflop_trials_equal_the_numpy_path():
    """Bit for bit, and through an odd value count (the last sign from a low half word)."""
    if not stream_kernels.available():
        pytest.skip("no C compiler: the numpy path is the only one")
    t = make_task("flipflop", n_time=7)
    seeds = [2, 9, 2 ** 33]
    want = streams._flipflop(t, [np.random.default_rng([s, 4]) for s in seeds], 5)
    got = stream_kernels.flipflop_trials(seeds, 4, 5, 7, 3, t.p_pulse)
    for a, b in zip(got, want):
        assert a.shape == (3, 5, 7, 3) and np.array_equal(a, b.reshape(a.shape))


def test_training_flushes_subnormals_and_restores_the_thread():
    """Inside the block a subnormal float32 reads as zero (DAZ) and a product that would be
    subnormal is written as zero (FTZ); after it, both are exact again."""
    tiny = torch.tensor([1e-39], dtype=torch.float32)  # subnormal: below 1.18e-38
    with train.flushing_subnormals(torch.device("cpu")):
        if not torch.set_flush_denormal(True):
            pytest.skip("this CPU cannot flush subnormals")
        assert float(tiny * 1.0) == 0.0
        assert float(torch.tensor([1e-20]) * torch.tensor([1e-20])) == 0.0
    assert float(tiny * 1.0) == pytest.approx(1e-39, rel=1e-3)
    assert float(torch.tensor([1e-20]) * torch.tensor([1e-20])) > 0.0


def test_train_shard_flushes_subnormals_while_it_trains_and_only_then(monkeypatch):
    seen = []
    step = train._Run.train_step

    def spy(self, t):
        seen.append(float(torch.tensor([1e-39]) * 1.0))  # a subnormal, read under DAZ or not
        step(self, t)
    monkeypatch.setattr(train._Run, "train_step", spy)
    if not torch.set_flush_denormal(False):
        pytest.skip("this CPU cannot flush subnormals")
    train.train_shard(shard(n_steps=3), progress=False)
    assert seen == [0.0, 0.0, 0.0]
    assert float(torch.tensor([1e-39]) * 1.0) > 0.0
