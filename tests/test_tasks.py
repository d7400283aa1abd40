"""Task generators: shapes, targets correct by construction, determinism, validation."""
import numpy as np
import pytest

from lib.tasks import ContextIntegration, FlipFlop, SineWave, make_task


def test_shapes_and_dtypes():
    for task in (FlipFlop(), SineWave(), ContextIntegration()):
        tr = task.sample(5, seed=3)
        assert tr.inputs.shape == (5, task.n_time, task.n_in)
        assert tr.targets.shape == tr.mask.shape == (5, task.n_time, task.n_out)
        assert tr.inputs.dtype == tr.targets.dtype == np.float32


def test_flipflop_target_is_last_pulse():
    task = FlipFlop(n_time=40, p_pulse=0.15)
    tr = task.sample(16, seed=0)
    for b in range(16):
        for c in range(3):
            last = None
            for t in range(task.n_time):
                if tr.inputs[b, t, c] != 0:
                    last = tr.inputs[b, t, c]
                assert tr.targets[b, t, c] == last
    assert set(np.unique(tr.inputs)) <= {-1.0, 0.0, 1.0}
    assert np.all(tr.inputs[:, 0] != 0)  # forced pulse at t=0


def test_flipflop_pulse_rate():
    tr = FlipFlop(n_time=200, p_pulse=0.1).sample(64, seed=1)
    rate = np.mean(tr.inputs[:, 1:] != 0)
    assert abs(rate - 0.1) < 0.01


def test_sine_target_and_encoding():
    task = SineWave()
    tr = task.probe()
    j = np.arange(51)
    assert np.allclose(tr.inputs[:, 0, 0], (j + 1) / 51 + 0.25)
    assert np.allclose(tr.inputs, tr.inputs[:, :1])  # static input
    t = np.arange(task.n_time)
    want = np.sin(task.omegas[:, None] * t[None])
    assert np.allclose(tr.targets[..., 0], want, atol=1e-6)
    assert task.omegas[0] == pytest.approx(0.1) and task.omegas[-1] == pytest.approx(0.6)


def test_cdi_target_is_running_sum_of_cued_stream():
    task = ContextIntegration(n_time=30)
    tr = task.sample(12, seed=4)
    ctx = tr.info["context"]
    assert np.all(tr.inputs[np.arange(12), :, 2 + ctx] == 1)
    assert np.all(tr.inputs[np.arange(12), :, 3 - ctx] == 0)
    for b in range(12):
        stream = tr.inputs[b, :, ctx[b]].astype(np.float64)
        assert np.allclose(tr.targets[b, :, 0], np.cumsum(stream) / 30, atol=1e-5)


def test_cdi_ignores_the_other_stream():
    task, rng = ContextIntegration(n_time=20), np.random.default_rng(0)
    ctx, bias, noise = np.array([0, 1, 0]), rng.uniform(-1, 1, (3, 2)), rng.standard_normal((3, 20, 2))
    changed_noise, changed_bias = noise.copy(), bias.copy()
    changed_noise[np.arange(3), :, 1 - ctx] += 5.0
    changed_bias[np.arange(3), 1 - ctx] *= -1
    a, b = task.trials_for(ctx, bias, noise), task.trials_for(ctx, changed_bias, changed_noise)
    assert np.array_equal(a.targets, b.targets)
    assert not np.array_equal(a.inputs, b.inputs)


def test_determinism_and_seed_dependence():
    for task in (FlipFlop(), SineWave(), ContextIntegration()):
        a, b = task.sample(8, seed=7), task.sample(8, seed=7)
        c = task.sample(8, seed=8)
        assert np.array_equal(a.inputs, b.inputs) and np.array_equal(a.targets, b.targets)
        assert not np.array_equal(a.inputs, c.inputs)
        assert np.array_equal(task.probe().inputs, task.probe().inputs)


def test_probe_cdi_balanced_contexts():
    tr = ContextIntegration().probe(32)
    assert np.bincount(tr.info["context"]).tolist() == [16, 16]


@pytest.mark.parametrize("bad, match", [
    (lambda: make_task("flopflip"), "task='flopflip'.*'flipflop', 'sine', 'cdi'"),
    (lambda: make_task("flipflop", n_time=-3), "n_time=-3"),
    (lambda: make_task("flipflop", p_pulse=1.5), "p_pulse"),
    (lambda: make_task("sine", colour=1), "colour"),
    (lambda: FlipFlop().sample(0), "batch=0"),
    (lambda: SineWave(omega_min=0.5, omega_max=0.2), "omega_max"),
])
def test_bad_parameters_name_the_parameter(bad, match):
    with pytest.raises(ValueError, match=match):
        bad()
