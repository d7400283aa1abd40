"""Every network's training stream in C (``stream_kernels.c``), loaded through ctypes.

Network n's batch at step t comes from ``numpy.random.default_rng([seed_n, t])``. Creating
one numpy generator per network and step, and drawing its words, cost more than building the
trials from them (about 1.8 ms of a 64-network flip-flop batch here); the C library seeds and
runs the same generator (numpy's SeedSequence and PCG64, word for word) and builds the trials
in the same pass. Compiled once per machine by :mod:`lib.native`; without a C compiler
:func:`available` is False and :mod:`lib.streams` draws through numpy.
"""
from __future__ import annotations

import ctypes
import functools
from pathlib import Path

import numpy as np

from . import native

SOURCE = Path(__file__).with_name("stream_kernels.c")
_I, _P = ctypes.c_int64, ctypes.c_void_p
LANES = 4  # as in stream_kernels.c: streams generated side by side


@functools.cache
def _lib() -> ctypes.CDLL | None:
    return native.load(SOURCE, "the trials are drawn through numpy's generators")


def available() -> bool:
    """True when the compiled kernels can be used (built now if needed)."""
    return _lib() is not None


@functools.cache
def _typed(name: str, *argtypes):
    fn = getattr(_lib(), name)
    fn.argtypes, fn.restype = list(argtypes), None
    return fn


def entropy(seeds, step: int) -> tuple[np.ndarray, np.ndarray]:
    """The 32-bit words numpy's SeedSequence makes of the entropy ``[seed, step]`` of every
    network: words [N, E] uint32 (zero-padded) and their counts [N] int64.

    numpy's rule: each non-negative integer becomes its 32-bit words, least significant first
    (0 becomes one word 0), and the list their concatenation.
    """
    per = [_words(s) + _words(step) for s in seeds]
    out = np.zeros((len(per), max(map(len, per), default=1)), np.uint32)
    for k, w in enumerate(per):
        out[k, :len(w)] = w
    return out, np.array([len(w) for w in per], np.int64)


def _words(v) -> list[int]:
    v = int(v)
    if v < 0:
        raise ValueError(f"stream entropy must be non-negative, got {v}")
    words = [v & 0xFFFFFFFF]
    while v >> 32:
        v >>= 32
        words.append(v & 0xFFFFFFFF)
    return words


def pcg64_raw(seeds, step: int, n_words: int) -> np.ndarray:
    """``default_rng([seed, step]).bit_generator.random_raw(n_words)`` of every seed, [N, W]."""
    e, n = entropy(seeds, step)
    out = np.empty((len(e), n_words), np.uint64)
    _typed("pcg64_raw", _I, _P, _I, _P, _I, _P)(len(e), e.ctypes.data, e.shape[1], n.ctypes.data,
                                                n_words, out.ctypes.data)
    return out


def flipflop_trials(seeds, step: int, batch: int, n_time: int, n_bits: int,
                    p_pulse: float) -> tuple[np.ndarray, np.ndarray]:
    """The flip-flop inputs and targets of every seed's stream at ``step`` (what
    ``FlipFlop.sample(batch, default_rng([seed, step]))`` gives): two float32 arrays
    [N, batch, n_time, n_bits], views of time-major [N, n_time, batch, n_bits] buffers."""
    e, n = entropy(seeds, step)
    values = batch * n_time * n_bits
    scratch = np.empty(LANES * (values + (values + 1) // 2), np.uint64)
    inputs, targets = (np.empty((len(e), n_time, batch, n_bits), np.float32) for _ in "it")
    _typed("flipflop_streams", _I, _P, _I, _P, _I, _I, _I, ctypes.c_double, _P, _P, _P)(
        len(e), e.ctypes.data, e.shape[1], n.ctypes.data, batch, n_time, n_bits, p_pulse,
        scratch.ctypes.data, inputs.ctypes.data, targets.ctypes.data)
    return inputs.transpose(0, 2, 1, 3), targets.transpose(0, 2, 1, 3)
