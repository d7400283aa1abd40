"""Frequency accuracy: exact slope and offset recovered, relative errors as constructed."""
import numpy as np
import pytest

from lib import frequency


def test_exact_linear_predictions_are_recovered():
    omegas = np.linspace(0.1, 0.6, 11)
    pred = np.array([1.0 * omegas, 1.0 * omegas, 2.0 * omegas + 0.05, 2.0 * omegas + 0.05])
    t = frequency.long_table(omegas, pred, ["a", "a", "b", "b"])
    out = frequency.frequency_accuracy(t, n_boot=50)
    assert out.loc["a", "slope"] == pytest.approx(1) and out.loc["a", "offset"] == pytest.approx(0, abs=1e-12)
    assert out.loc["b", "slope"] == pytest.approx(2) and out.loc["b", "offset"] == pytest.approx(0.05)
    assert out.loc["a", "median_rel_error"] == 0 and out.loc["b", "corr"] == pytest.approx(1)
    # b: relative error 1 + 0.05 / omega, median at the median omega 0.35
    assert out.loc["b", "median_rel_error"] == pytest.approx(1 + 0.05 / 0.35)
    assert out.loc["a", "n"] == 2 and out.loc["a", "points"] == 22


def test_correlation_misses_what_the_relative_error_sees():
    omegas = np.linspace(0.1, 0.6, 6)
    t = frequency.long_table(omegas, np.array([1.3 * omegas]), ["x"])
    out = frequency.frequency_accuracy(t, n_boot=10)
    assert out.loc["x", "corr"] == pytest.approx(1) and out.loc["x", "median_rel_error"] == pytest.approx(0.3)


def test_missing_predictions_count_as_failures():
    omegas = np.array([0.2, 0.3, 0.4, 0.5])
    pred = np.array([[0.2, np.nan, np.nan, np.nan], [0.2, 0.3, 0.4, np.nan]])
    out = frequency.frequency_accuracy(frequency.long_table(omegas, pred, ["a", "a"]), n_boot=20)
    assert out.loc["a", "missing"] == 4 and np.isinf(out.loc["a", "median_rel_error"])


def test_bootstrap_interval_brackets_the_median():
    rng = np.random.default_rng(0)
    omegas = np.linspace(0.1, 0.6, 8)
    pred = omegas * (1 + 0.1 * rng.standard_normal((30, 8)))
    out = frequency.frequency_accuracy(frequency.long_table(omegas, pred, ["a"] * 30), seed=1)
    r = out.loc["a"]
    assert r.rel_error_lo < r.median_rel_error < r.rel_error_hi < 0.2
    with pytest.raises(ValueError, match="omegas"):
        frequency.long_table(omegas[:-1], pred, ["a"] * 30)
