"""Every network's own stream of training trials, drawn for a whole shard at once.

Network n's batch at step t is ``task.sample(batch, default_rng([seed_n, t]))``. Drawing the
random numbers needs one generator per network, but turning them into trials does not: here
each generator draws exactly what ``task.sample`` draws, in the same order, and the trials of
all networks are then built by one vectorised call. The result is identical to stacking the
per-network samples (``tests/test_train.py`` checks it), at about half the cost. For the
flip-flop task the C library :mod:`lib.stream_kernels` runs the generators themselves too,
word for word as numpy does, and builds the trials in the same pass.
"""
from __future__ import annotations

import numpy as np

from . import stream_kernels, tasks


def shard_batch(task, seeds, step: int, batch: int) -> tuple[np.ndarray, ...]:
    """Stacked per-network trials: inputs [N, B, T, I], targets and mask [N, B, T, O]."""
    if isinstance(task, tasks.FlipFlop) and stream_kernels.available():
        inputs, targets = stream_kernels.flipflop_trials(seeds, step, batch, task.n_time,
                                                         task.n_bits, task.p_pulse)
        return inputs, targets, np.ones_like(targets)
    rngs = [np.random.default_rng([s, step]) for s in seeds]
    draw = _DRAW.get(type(task))
    if draw is None:  # a task without a vectorised builder: one sample per network
        trials = [task.sample(batch, r) for r in rngs]
        return tuple(np.stack([getattr(t, k) for t in trials])
                     for k in ("inputs", "targets", "mask"))
    n = len(seeds)
    return tuple(a.reshape(n, batch, *a.shape[-2:]) for a in draw(task, rngs, batch))


def _flipflop(task: tasks.FlipFlop, rngs, batch: int) -> tuple[np.ndarray, ...]:
    """``FlipFlop.sample``'s draws, made from each generator's raw 64-bit words (without the C
    library; :func:`lib.stream_kernels.flipflop_trials` applies the same rule).

    ``sample`` draws ``rng.random(shape)`` (per value one word x: ``(x >> 11) 2^-53``) and then
    ``rng.integers(0, 2, shape)`` (per value one 32-bit half word u, low half first, by
    Lemire's rule: ``(2 u) >> 32``, i.e. u's top bit). Each network's words come in one
    ``random_raw`` call; the trials of the shard are then built in one pass.
    """
    n = batch * task.n_time * task.n_bits
    raw = np.empty((len(rngs), n + (n + 1) // 2), np.uint64)
    for k, rng in enumerate(rngs):
        if not isinstance(rng.bit_generator, np.random.PCG64):
            raise TypeError(f"flip-flop streams use PCG64 generators, got {rng.bit_generator}")
        raw[k] = rng.bit_generator.random_raw(raw.shape[1])
    return _flipflop_numpy(task, raw, batch)


def _flipflop_numpy(task: tasks.FlipFlop, raw: np.ndarray, batch: int) -> tuple[np.ndarray, ...]:
    """:func:`_flipflop`'s trials from the raw words [N, n + ceil(n / 2)] in numpy."""
    shape = (batch, task.n_time, task.n_bits)
    n = batch * task.n_time * task.n_bits
    pulse = (raw[:, :n] >> np.uint64(11)).astype(np.float64)
    pulse *= 2.0 ** -53
    pulse = (pulse < task.p_pulse).reshape(-1, *shape[1:])
    words = raw[:, n:]
    sign = np.empty((len(raw), 2 * words.shape[1]), np.float32)
    sign[:, 0::2] = (words >> np.uint64(31)) & np.uint64(1)  # low half's top bit
    sign[:, 1::2] = words >> np.uint64(63)  # high half's top bit
    sign = np.ascontiguousarray(sign[:, :n]).reshape(pulse.shape)
    pulse[:, 0] = True
    sign *= 2
    sign -= 1  # index 0 or 1 -> sign -1 or +1
    inputs = np.multiply(sign, pulse, out=sign)
    targets = _hold(inputs)
    return inputs, targets, np.ones_like(targets)


def _hold(inputs: np.ndarray) -> np.ndarray:
    """``tasks._hold_last_pulse`` as a loop over time: the same values, ~10x faster here.

    inputs [B, T, C] with a pulse at t = 0 -> the sign of the last pulse [B, T, C].
    """
    out = np.ascontiguousarray(inputs.transpose(1, 0, 2))  # [T, B, C]: contiguous steps
    for t in range(1, len(out)):
        np.copyto(out[t], out[t - 1], where=out[t] == 0)
    return out.transpose(1, 0, 2)  # a view: the trainer reads targets time-major


def _sine(task: tasks.SineWave, rngs, batch: int) -> tuple[np.ndarray, ...]:
    return _arrays(task.trials_for(np.concatenate([r.integers(0, task.n_freqs, size=batch)
                                                   for r in rngs])))


def _cdi(task: tasks.ContextIntegration, rngs, batch: int) -> tuple[np.ndarray, ...]:
    context, bias, noise = [], [], []
    for rng in rngs:  # the draws of ContextIntegration.sample, in its order
        context.append(rng.integers(0, 2, size=batch))
        bias.append(rng.uniform(-task.bias_max, task.bias_max, size=(batch, 2)))
        noise.append(rng.standard_normal((batch, task.n_time, 2)))
    return _arrays(task.trials_for(*(np.concatenate(a) for a in (context, bias, noise))))


def _arrays(trials: tasks.Trials) -> tuple[np.ndarray, ...]:
    return trials.inputs, trials.targets, trials.mask


_DRAW = {tasks.FlipFlop: _flipflop, tasks.SineWave: _sine, tasks.ContextIntegration: _cdi}
