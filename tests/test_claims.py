"""Claims follow their declared criteria: supported, not supported, inconclusive."""
import numpy as np
import pandas as pd
import pytest

from lib import claims, frequency
from lib.chapter import TASK_TITLES

TASKS = list(TASK_TITLES.values())


def stats_frame(svcca=(0.6, 0.5, 0.7, 0.001), topo=(0.0, -0.05, 0.05, 0.5), n=80):
    """Cluster statistics: (above_chance, lo, hi, p) for SVCCA (both labels) and topology."""
    rows = {}
    for task in TASKS:
        for dist, (e, lo, hi, p) in (("SVCCA", svcca), ("topology", topo), ("structure only", topo)):
            for lab in ("arch", "activation"):
                rows[(task, dist, lab)] = dict(n=n, nn_accuracy=0.24 + e, chance=0.24, p_value=p,
                                               above_chance=e, above_chance_lo=lo, above_chance_hi=hi)
    return pd.DataFrame(rows).T.rename_axis(["task", "distance", "label"])


def ff(rates=(1.0, 1.0, 1.0, 1.0), n=20):
    rows = [dict(arch=a, activation="tanh", matches=i < round(r * n))
            for a, r in zip(("vanilla", "ugrnn", "gru", "lstm"), rates) for i in range(n)]
    return pd.DataFrame(rows)


def sine(scale=1.0, n=10):
    omegas = np.linspace(0.1, 0.6, 6)
    rng = np.random.default_rng(0)
    pred = omegas * scale * (1 + 0.01 * rng.standard_normal((2 * n, 6)))
    return frequency.long_table(omegas, pred, ["gru"] * n + ["lstm"] * n)


def cdi(lam=0.9999, n=10):
    return pd.DataFrame({"arch": ["gru"] * n + ["lstm"] * n, "lam_int_0": [lam] * n + [1.0] * n,
                         "lam_int_1": [lam] * n + [0.99999] * n})


def table(**kw):
    args = dict(stats=stats_frame(), ff_table=ff(), sine_points=sine(), cdi_table=cdi(),
                trial_length=100, n_total=240, n_boot=200, n_perm=500)
    return claims.claims_table(**(args | kw))


def outcomes(df, key):
    return list(df.loc[df["claim"].str.startswith(claims.CRITERION[key].claim), "outcome"])


def test_paper_like_numbers_support_every_claim():
    df = table()
    assert set(df["outcome"]) == {"supported"}, df[["claim", "task", "outcome"]]
    assert len(df) == 3 * 3 + 3 + 1


def test_a_non_significant_test_is_not_universality():
    # wide interval around a small effect: p large, but the upper end above the margin
    df = table(stats=stats_frame(topo=(0.03, -0.1, 0.25, 0.4)))
    assert set(outcomes(df, "universal")) == {"inconclusive"}
    needed = df.loc[df.outcome == "inconclusive", "needed"]
    assert needed.str.startswith("about").sum() == 3 and len(needed) == 4
    assert outcomes(df, "cautionary") == ["inconclusive"]


def test_topology_that_separates_architectures_refutes_universality():
    df = table(stats=stats_frame(topo=(0.5, 0.4, 0.6, 0.001)))
    assert set(outcomes(df, "universal")) == {"not supported"}
    assert outcomes(df, "cautionary") == ["not supported"]


def test_too_few_networks_are_inconclusive():
    df = table(stats=stats_frame(n=10))
    assert set(outcomes(df, "individual")) == {"inconclusive"}
    assert set(outcomes(df, "universal")) == {"inconclusive"}


def test_geometry_without_information_is_not_individual():
    df = table(stats=stats_frame(svcca=(0.0, -0.05, 0.05, 0.6)))
    assert set(outcomes(df, "individual")) == {"not supported"}


def test_graph_criterion_per_cell_and_independence():
    assert outcomes(table(ff_table=ff((1, 1, 0.1, 1))), "graph") == ["not supported"]
    assert outcomes(table(ff_table=ff((1, 1, 1, 1), n=8)), "graph") == ["inconclusive"]
    t, chi2, p = claims.graph_rates(ff((1, 1, 0.5, 0.5), n=12), n_perm=2000)
    assert p < 0.05 and chi2 > 0 and list(t["matches"]) == [12, 12, 6, 6]
    assert claims.independence_test(np.ones(10, bool), np.arange(10) % 2) == (0.0, 1.0)


def test_independence_test_null_is_calibrated():
    ps = [claims.independence_test(np.random.default_rng(s).random(40) < 0.5,
                                   np.arange(40) % 4, n_perm=300, seed=s)[1] for s in range(40)]
    assert np.mean(np.array(ps) < 0.05) < 0.15 and 0.35 < np.mean(ps) < 0.7


def test_frequency_and_integration_criteria():
    assert outcomes(table(sine_points=sine(1.5)), "frequency") == ["not supported"]
    assert outcomes(table(cdi_table=cdi(0.95)), "integrates") == ["not supported"]  # tau = 20
    assert outcomes(table(cdi_table=cdi(np.nan)), "integrates") == ["not supported"]
    t = claims.time_constants(cdi(0.99), n_boot=50)
    assert t.loc["gru", "tau"] == pytest.approx(100)


def test_clopper_pearson_and_networks_needed():
    lo, hi = claims.clopper_pearson(np.array([8]), np.array([8]))
    assert lo[0] == pytest.approx(0.025 ** (1 / 8)) and hi[0] == 1
    # half the interval's reach in 4x the networks
    assert claims.networks_needed(20, 0.05, -0.05, 0.15, 0.10) == 20 * 4
    assert claims.networks_needed(20, 0.10, 0.0, 0.2, 0.10) is None


def test_criteria_are_declared_and_rendered():
    ct = claims.criteria_table()
    assert list(ct.columns[:3]) == ["claim", "measure", "rule"] and len(ct) == len(claims.CRITERIA)
    assert "0.1" in ct.loc[1, "rule"] and "{" not in "".join(ct["rule"])
    with pytest.raises(Exception):
        claims.CRITERIA[0].margin = 0.5  # frozen


def test_diagnostics_never_enter_the_verdicts():
    s = stats_frame()
    s.loc[s.index.get_level_values("distance") == "structure only", "p_value"] = 0.0001
    assert table(stats=s).equals(table())
    assert len(claims.diagnostics(s)) == 3


def test_networks_needed_follow_the_nearer_decision():
    ind, uni = claims.CRITERION["individual"], claims.CRITERION["universal"]
    # 0.03 above chance, interval [-0.10, 0.20]: the upper end reaches 0.10 first (~ 40 * (0.17/0.07)^2)
    assert claims.judge_separation(ind, 40, 0.03, -0.1, 0.2, 0.3) == ("inconclusive", 236)
    # above the margin, universality is refuted once the lower end leaves 0
    assert claims.judge_equivalence(uni, 40, 0.15, -0.02, 0.3, 0.1) == ("inconclusive", 52)


def with_rules(svcca_by_rule: dict) -> pd.DataFrame:
    """Cluster statistics with one SVCCA row per rule: {rule name: (above_chance, lo, hi, p)}."""
    base = stats_frame()
    svcca = [stats_frame(svcca=v).xs("SVCCA", level=1, drop_level=False)
             .rename(index={"SVCCA": f"SVCCA {rule}"}, level=1) for rule, v in svcca_by_rule.items()]
    return pd.concat([base.drop(index="SVCCA", level=1), *svcca])


def test_claim_one_must_hold_under_every_svcca_rule():
    """Two SVCCA rules that disagree give "inconclusive"; rules that agree decide the claim."""
    good, bad = (0.6, 0.5, 0.7, 0.001), (0.02, -0.05, 0.06, 0.6)
    df = table(stats=with_rules({"k = 10": good, "99% of variance": good}))
    assert set(outcomes(df, "individual")) == {"supported"}
    df = table(stats=with_rules({"k = 10": bad, "99% of variance": bad}))
    assert set(outcomes(df, "individual")) == {"not supported"}
    df = table(stats=with_rules({"k = 10": good, "99% of variance": bad}))
    rows = df[df["claim"].str.startswith(claims.CRITERION["individual"].claim)]
    assert set(rows["outcome"]) == {"inconclusive"}
    assert set(rows["needed"]) == {"none: the SVCCA rules disagree"}
    assert all("k = 10:" in v and "99% of variance:" in v for v in rows["value"])


def test_an_undecided_rule_is_costed_the_way_the_decided_rules_went():
    ind = claims.CRITERION["individual"]
    # 0.03 above chance, interval [-0.10, 0.20], 40 networks: the upper end would reach the
    # margin first (236), but only the lower end leaving 0 (40 * (0.13 / 0.03)^2) agrees
    assert claims.judge_separation(ind, 40, 0.03, -0.1, 0.2, 0.3, towards=claims.SUPPORTED) == (
        "inconclusive", 752)
    assert claims.judge_separation(ind, 40, 0.03, -0.1, 0.2, 0.3,
                                   towards=claims.NOT_SUPPORTED) == ("inconclusive", 236)
    good = pd.Series(dict(n=40, above_chance=0.5, above_chance_lo=0.4, above_chance_hi=0.6,
                          p_value=0.001))
    open_ = pd.Series(dict(n=40, above_chance=0.03, above_chance_lo=-0.1, above_chance_hi=0.2,
                           p_value=0.3))
    assert claims.judge_every_rule(ind, [good, open_]) == ("inconclusive", 752)
    assert claims.judge_every_rule(ind, [open_, open_]) == ("inconclusive", 236)


def test_every_rule_combines_outcomes():
    S, N, I = claims.SUPPORTED, claims.NOT_SUPPORTED, claims.INCONCLUSIVE
    assert claims.every_rule([(S, None), (S, None)]) == (S, None)
    assert claims.every_rule([(N, None), (N, None)]) == (N, None)
    assert claims.every_rule([(S, None), (I, 40), (I, 90)]) == (I, 90)
    assert claims.every_rule([(S, None), (I, None)]) == (I, None)


def test_networks_needed_are_printed_to_two_significant_digits():
    assert [claims._rounded(n) for n in (198221, 442, 37, 5)] == ["200,000", "440", "37", "5"]


def test_frequency_values_show_three_decimals_and_infinity():
    df = table(sine_points=sine(1.5))  # every prediction 50 % too high: error 0.500
    value = df.loc[df["claim"].str.startswith(claims.CRITERION["frequency"].claim), "value"].iloc[0]
    assert value.startswith("gru 0.50") and len(value.split()[1]) == 5  # "0.5xx"
    missing = sine().assign(predicted=np.nan)  # no point found anywhere: infinite error
    df = table(sine_points=missing)
    value = df.loc[df["claim"].str.startswith(claims.CRITERION["frequency"].claim), "value"].iloc[0]
    assert "∞ [∞, ∞]" in value
