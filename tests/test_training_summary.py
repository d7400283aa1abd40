"""Summaries used by the training chapter, on inputs whose answers are known."""
import numpy as np
import pandas as pd
import pytest

from lib import training_summary as summary
from lib.config import population_config
from lib.population import Population
from lib.train import ShardResult, cell_spec, initial_state


def test_running_mean_is_a_trailing_window_mean():
    x = np.arange(10.0)[:, None] * [1.0, 2.0]
    got = summary.running_mean(x, 3)
    want = np.array([np.mean(x[max(0, t - 2):t + 1], axis=0) for t in range(10)])
    np.testing.assert_allclose(got, want)


def fake_population(nmse_by_cell, n_steps=5):
    """A population of untrained shards whose test NMSE and divergence are set by hand."""
    cfg = population_config("smoke", "flipflop", archs=("vanilla", "gru"), activations=("tanh",),
                            n_steps=n_steps, max_nmse=0.1)
    shards = []
    for sh, nmse in zip(cfg.shards(), nmse_by_cell):
        nmse = np.asarray(nmse, float)
        losses = np.tile(np.linspace(1.0, 0.01, n_steps)[:, None], (1, len(nmse)))
        shards.append(ShardResult(sh, cell_spec(sh), initial_state(sh).params, losses, nmse,
                                  np.where(np.isinf(nmse), 2, -1)))
    return Population(cfg, shards)


def test_counts_sentences_and_typical_network():
    pop = fake_population([[0.05, np.inf], [0.5, 0.01]])
    counts = pd.concat({"Flip": pop.counts()}, names=["task"])
    text = summary.describe_counts(counts)
    assert text["diverged_cells"] == "vanilla-tanh on the flip (1 of 2)"
    assert text["short_cells"] == "vanilla-tanh on the flip (1 of 2 kept); gru-tanh on the flip (1 of 2 kept)"
    assert text["empty_cells"].startswith("Every cell")
    net, row = summary.typical_network(pop)  # included: 0.01 and 0.05 -> the lower median
    assert (net.label, row.nmse) == ("gru-tanh", 0.01)
    with pytest.raises(ValueError, match="no network"):
        summary.typical_network(fake_population([[np.inf, 1.0], [2.0, 3.0]]))


def test_learning_curves_and_the_step_that_reaches_a_level():
    pop = fake_population([[0.05, np.inf], [0.5, 0.01]], n_steps=5)
    curves = summary.learning_curves(pop, window=1)
    var = summary.target_variance(pop.config)
    assert curves[("vanilla", "tanh")].n.iloc[0] == 1  # the diverged network is left out
    np.testing.assert_allclose(curves[("gru", "tanh")]["median"], np.linspace(1, 0.01, 5) / var,
                               rtol=1e-6)
    reach = summary.steps_to_reach(curves, 0.5 / var)  # linspace(1, .01, 5)[2] = 0.505 > 0.5
    assert list(reach) == [4.0, 4.0]
    assert "by step 4 (slowest: vanilla-tanh; the longest training there runs 5 steps)" in \
        summary.describe_reach(reach, 5, "on x")
    assert summary.describe_reach(reach * np.nan, 5, "on x") == "on x in no cell"


def test_running_mean_survives_huge_early_values():
    # a cumulative-sum implementation loses the 1e-3 tail to rounding after a 1e12 start
    x = np.r_[1e12, 1e9, np.full(100, 1e-3)].astype(np.float32)[:, None]
    got = summary.running_mean(x, 25)
    np.testing.assert_allclose(got[30:], 1e-3, rtol=1e-6)


def curve(values):
    return pd.DataFrame({"step": np.arange(1, len(values) + 1), "median": values})


def test_flattening_measures_the_fall_over_the_last_fifth():
    # exp(-t/tau) falls by 1 - exp(-0.2 T / tau) over the last fifth: 63 % for tau = T/5,
    # 2 % for tau = 10 T; a constant curve does not fall at all
    t = np.arange(100.0)
    curves = {("fast", "tanh"): curve(np.exp(-t / 20)), ("slow", "tanh"): curve(np.exp(-t / 1000)),
              ("flat", "relu"): curve(np.full(100, 0.3))}
    got = summary.flattening(curves)
    np.testing.assert_allclose(got.loc[("fast", "tanh"), "improvement"], 1 - np.exp(-19 / 20))
    np.testing.assert_allclose(got.loc[("slow", "tanh"), "improvement"], 1 - np.exp(-19 / 1000))
    assert got.loc[("flat", "relu"), "improvement"] == 0
    assert list(got.flat) == [False, True, True]
    assert not summary.flattening(curves, bound=0.01).loc[("slow", "tanh"), "flat"]
    # against a level: the fall of exp(-t/20) from t=80 to 99 is small next to a level of 1
    fall = np.exp(-80 / 20) - np.exp(-99 / 20)
    against = summary.flattening(curves, level=1.0)
    np.testing.assert_allclose(against.loc[("fast", "tanh"), "improvement"], fall)
    assert against.loc[("fast", "tanh"), "flat"]


def test_design_table_gives_each_cell_its_own_settings_once():
    from dataclasses import replace
    cfg = population_config("default", "sine")
    cell = summary.design_table({"sine": cfg})["sine"]["cells trained otherwise"]
    assert cell.count("lstm-relu") == 1 and "W_g = 0, forget-gate bias 4" in cell
    for a, f, v in cfg.cell_lrs:
        assert f"{a}-{f}: " in cell and f"lr {v:g}" in cell
    nothing = replace(population_config("default", "flipflop"), archs=("gru",), cell_lrs=(),
                      cell_steps=())
    assert summary.design_table({"ff": nothing})["ff"]["cells trained otherwise"] == "none"
