"""Every network's own stream of training trials, drawn for a whole shard at once.

Network n's batch at step t is ``task.sample(batch, default_rng([seed_n, t]))``. Drawing the
random numbers needs one generator per network, but turning them into trials does not: here
each generator draws exactly what ``task.sample`` draws, in the same order, and the trials of
all networks are then built by one vectorised call. The result is identical to stacking the
per-network samples (``tests/test_train.py`` checks it), at about half the cost.
"""
from __future__ import annotations

import numpy as np

from . import tasks


def shard_batch(task, seeds, step: int, batch: int) -> tuple[np.ndarray, ...]:
    """Stacked per-network trials: inputs [N, B, T, I], targets and mask [N, B, T, O]."""
    rngs = [np.random.default_rng([s, step]) for s in seeds]
    draw = _DRAW.get(type(task))
    if draw is None:  # a task without a vectorised builder: one sample per network
        trials = [task.sample(batch, r) for r in rngs]
        return tuple(np.stack([getattr(t, k) for t in trials])
                     for k in ("inputs", "targets", "mask"))
    tr = draw(task, rngs, batch)
    n = len(seeds)
    return tuple(a.reshape(n, batch, *a.shape[1:]) for a in (tr.inputs, tr.targets, tr.mask))


def _flipflop(task: tasks.FlipFlop, rngs, batch: int) -> tasks.Trials:
    shape = (batch, task.n_time, task.n_bits)
    pulse = np.empty((len(rngs) * batch, *shape[1:]), bool)
    sign = np.empty(pulse.shape, np.float32)
    for k, rng in enumerate(rngs):  # the draws of FlipFlop.sample, in its order
        rows = slice(k * batch, (k + 1) * batch)
        np.less(rng.random(shape), task.p_pulse, out=pulse[rows])
        sign[rows] = rng.integers(0, 2, size=shape)  # what rng.choice([-1, 1]) draws: the index
    pulse[:, 0] = True
    sign *= 2
    sign -= 1  # index 0 or 1 -> sign -1 or +1
    inputs = np.multiply(sign, pulse, out=sign)
    targets = _hold(inputs)
    return tasks.Trials(inputs, targets, np.ones_like(targets))


def _hold(inputs: np.ndarray) -> np.ndarray:
    """``tasks._hold_last_pulse`` as a loop over time: the same values, ~10x faster here.

    inputs [B, T, C] with a pulse at t = 0 -> the sign of the last pulse [B, T, C].
    """
    out = np.ascontiguousarray(inputs.transpose(1, 0, 2))  # [T, B, C]: contiguous steps
    for t in range(1, len(out)):
        np.copyto(out[t], out[t - 1], where=out[t] == 0)
    return out.transpose(1, 0, 2)  # a view: the trainer reads targets time-major


def _sine(task: tasks.SineWave, rngs, batch: int) -> tasks.Trials:
    return task.trials_for(np.concatenate([r.integers(0, task.n_freqs, size=batch)
                                           for r in rngs]))


def _cdi(task: tasks.ContextIntegration, rngs, batch: int) -> tasks.Trials:
    context, bias, noise = [], [], []
    for rng in rngs:  # the draws of ContextIntegration.sample, in its order
        context.append(rng.integers(0, 2, size=batch))
        bias.append(rng.uniform(-task.bias_max, task.bias_max, size=(batch, 2)))
        noise.append(rng.standard_normal((batch, task.n_time, 2)))
    return task.trials_for(*(np.concatenate(a) for a in (context, bias, noise)))


_DRAW = {tasks.FlipFlop: _flipflop, tasks.SineWave: _sine, tasks.ContextIntegration: _cdi}
