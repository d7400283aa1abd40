"""The three neuroscience tasks of the paper, as seeded batched trial generators.

Every task is a frozen dataclass whose fields are the choices the paper left open, with the
defaults this book uses. ``task.sample(batch, seed)`` draws training trials and
``task.probe()`` returns the fixed trial set shared by every network when networks are compared.

Shapes (numpy, float32): ``inputs`` [batch, time, n_in], ``targets`` and ``mask`` [batch, time, n_out].
One time step is one RNN update: the input at step t can affect the output at step t.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from functools import cached_property

import numpy as np

from .checks import check_choice, check_positive, check_range

PROBE_SEED = 2019  # seed of the shared probe trials (the paper's year; any fixed value works)


@dataclass(frozen=True)
class Trials:
    """A batch of trials.

    Attributes
    ----------
    inputs : ndarray [batch, time, n_in]
    targets : ndarray [batch, time, n_out]
    mask : ndarray [batch, time, n_out]
        1 where the loss counts, 0 elsewhere.
    info : dict of ndarray [batch, ...]
        Per-trial conditions (frequency index, context, biases, ...).
    """

    inputs: np.ndarray
    targets: np.ndarray
    mask: np.ndarray
    info: dict = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        """(batch, time)."""
        return self.inputs.shape[:2]


def _rng(seed) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def _trials(inputs, targets, **info) -> Trials:
    f32 = np.float32
    return Trials(inputs.astype(f32), targets.astype(f32), np.ones_like(targets, dtype=f32), info)


@dataclass(frozen=True)
class FlipFlop:
    """3-bit flip-flop: each output holds the sign of the last pulse on its input channel.

    Parameters
    ----------
    n_bits : number of independent channels (3 in the paper).
    n_time : trial length in steps.
    p_pulse : probability of a pulse per step and channel (chosen here: 0.1, inside the
        0.05-0.2 range where flips are frequent enough to learn from and rare enough that
        memory is needed). A pulse is +1 or -1 with equal probability.
    Every channel also gets a pulse at t=0 so that the target is defined from the first step.
    """

    n_bits: int = 3
    n_time: int = 50
    p_pulse: float = 0.1
    name = "flipflop"

    def __post_init__(self):
        check_positive("n_bits", self.n_bits, integer=True)
        check_positive("n_time", self.n_time, integer=True)
        check_range("p_pulse", self.p_pulse, 0.0, 1.0)

    @property
    def n_in(self) -> int:
        return self.n_bits

    @property
    def n_out(self) -> int:
        return self.n_bits

    def sample(self, batch: int, seed=0) -> Trials:
        """Draw ``batch`` random trials."""
        check_positive("batch", batch, integer=True)
        rng = _rng(seed)
        shape = (batch, self.n_time, self.n_bits)
        pulse = rng.random(shape) < self.p_pulse
        pulse[:, 0] = True
        signs = rng.choice(np.array([-1.0, 1.0]), size=shape)
        inputs = np.where(pulse, signs, 0.0)
        return _trials(inputs, _hold_last_pulse(inputs))

    def probe(self, n_trials: int = 64) -> Trials:
        """Shared probe trials: ``n_trials`` random trials from a fixed seed."""
        return self.sample(n_trials, PROBE_SEED)


def _hold_last_pulse(inputs: np.ndarray) -> np.ndarray:
    """Sign of the last non-zero entry along time; inputs [B, T, C] with a pulse at t=0."""
    t = np.arange(inputs.shape[1])[None, :, None]
    last = np.maximum.accumulate(np.where(inputs != 0, t, 0), axis=1)
    return np.take_along_axis(inputs, last, axis=1)


@dataclass(frozen=True)
class SineWave:
    """Frequency-cued sine wave: a static input sets the frequency of the output sin(omega t).

    Parameters
    ----------
    n_freqs : number of command frequencies (51 as in Sussillo & Barak 2013).
    n_time : trial length in steps.
    omega_min, omega_max : frequencies in radians per step, spaced linearly (chosen here).
    The static input for frequency j = 1..n_freqs is j / n_freqs + 0.25.
    """

    n_freqs: int = 51
    n_time: int = 100
    omega_min: float = 0.1
    omega_max: float = 0.6
    name = "sine"

    def __post_init__(self):
        check_positive("n_freqs", self.n_freqs, integer=True)
        check_positive("n_time", self.n_time, integer=True)
        check_range("omega_min", self.omega_min, 1e-6, np.pi)
        check_range("omega_max", self.omega_max, self.omega_min, np.pi)

    n_in = 1
    n_out = 1

    @property
    def omegas(self) -> np.ndarray:
        """[n_freqs] commanded frequencies, radians per step."""
        return np.linspace(self.omega_min, self.omega_max, self.n_freqs)

    @property
    def levels(self) -> np.ndarray:
        """[n_freqs] static input value that commands each frequency."""
        return np.arange(1, self.n_freqs + 1) / self.n_freqs + 0.25

    @cached_property
    def waves(self) -> np.ndarray:
        """[n_freqs, n_time] sin(omega_j t): the target of every command, computed once (the
        trainer draws a batch of trials at every step)."""
        return np.sin(self.omegas[:, None] * np.arange(self.n_time)[None, :])

    def trials_for(self, freq_index: np.ndarray) -> Trials:
        """Trials for the given frequency indices (0-based), one trial each."""
        j = np.asarray(freq_index)
        inputs = np.broadcast_to(self.levels[j][:, None, None], (len(j), self.n_time, 1))
        return _trials(inputs, self.waves[j][..., None], freq_index=j, omega=self.omegas[j])

    def sample(self, batch: int, seed=0) -> Trials:
        """Draw ``batch`` trials with uniformly random command frequencies."""
        check_positive("batch", batch, integer=True)
        return self.trials_for(_rng(seed).integers(0, self.n_freqs, size=batch))

    def probe(self, n_trials: int | None = None) -> Trials:
        """Shared probe trials: one trial per command frequency (``n_trials`` is ignored)."""
        return self.trials_for(np.arange(self.n_freqs))


@dataclass(frozen=True)
class ContextIntegration:
    """Context-dependent integration (Mante et al. 2013).

    Inputs: two noisy streams ``b_k + noise_sd * xi_t`` with a per-trial bias
    ``b_k ~ U(-bias_max, bias_max)``, then two one-hot context channels.
    Target: ``target_scale * cumsum(stream of the cued context)``; the other stream is ignored.

    Parameters
    ----------
    n_time : trial length in steps.
    bias_max, noise_sd : stream statistics (chosen here).
    target_scale : gain of the integral; the default 1 / n_time keeps the target O(1).
    """

    n_time: int = 50
    bias_max: float = 1.0
    noise_sd: float = 1.0
    target_scale: float | None = None
    name = "cdi"

    def __post_init__(self):
        check_positive("n_time", self.n_time, integer=True)
        check_positive("bias_max", self.bias_max, allow_zero=True)
        check_positive("noise_sd", self.noise_sd, allow_zero=True)
        if self.target_scale is not None:
            check_positive("target_scale", self.target_scale)

    n_in = 4
    n_out = 1

    @property
    def gain(self) -> float:
        """Scale of the integral in the target."""
        return self.target_scale if self.target_scale is not None else 1.0 / self.n_time

    def trials_for(self, context: np.ndarray, bias: np.ndarray, noise: np.ndarray) -> Trials:
        """Trials from context [B] in {0, 1}, bias [B, 2] and unit noise [B, T, 2]."""
        context = np.asarray(context)
        streams = bias[:, None, :] + self.noise_sd * noise
        cue = np.broadcast_to(np.eye(2)[context][:, None, :], streams.shape)
        selected = np.take_along_axis(streams, context[:, None, None], axis=2)
        targets = self.gain * np.cumsum(selected, axis=1)
        inputs = np.concatenate([streams, cue], axis=2)
        return _trials(inputs, targets, context=context, bias=bias)

    def sample(self, batch: int, seed=0) -> Trials:
        """Draw ``batch`` random trials (random context, biases and noise)."""
        check_positive("batch", batch, integer=True)
        rng = _rng(seed)
        context = rng.integers(0, 2, size=batch)
        bias = rng.uniform(-self.bias_max, self.bias_max, size=(batch, 2))
        return self.trials_for(context, bias, rng.standard_normal((batch, self.n_time, 2)))

    def probe(self, n_trials: int = 64) -> Trials:
        """Shared probe trials: half per context, biases on a grid, noise from a fixed seed."""
        check_positive("n_trials", n_trials, integer=True)
        context = np.arange(n_trials) % 2
        grid = np.linspace(-self.bias_max, self.bias_max, max(n_trials // 2, 1))
        b = grid[np.arange(n_trials) // 2 % len(grid)]
        bias = np.stack([b, b[::-1]], axis=1)
        noise = np.random.default_rng(PROBE_SEED).standard_normal((n_trials, self.n_time, 2))
        return self.trials_for(context, bias, noise)


TASKS = {"flipflop": FlipFlop, "sine": SineWave, "cdi": ContextIntegration}


def make_task(name: str, **overrides):
    """Build a task by name (``flipflop``, ``sine`` or ``cdi``) with field overrides."""
    check_choice("task", name, TASKS)
    cls = TASKS[name]
    known = {f.name for f in fields(cls)}
    for key in overrides:
        check_choice(f"{name} task parameter", key, sorted(known))
    return replace(cls(), **overrides)
