"""Claims verdicts follow their stated criteria."""
import pandas as pd

from lib import claims


def stats_frame(svcca_p, topo_p, topo_acc=0.3):
    rows = {}
    for task in ("A", "B"):
        for dist, p, acc in (("SVCCA", svcca_p, 0.9), ("topology", topo_p, topo_acc)):
            for lab in ("arch", "activation"):
                rows[(task, dist, lab)] = dict(n=40, nn_accuracy=acc, chance=0.24, p_value=p)
    return pd.DataFrame(rows).T.rename_axis(["task", "distance", "label"])


def tables(match=(True, True, False), corr=0.95, lam=0.99):
    ff = pd.DataFrame({"matches": list(match)})
    sine = pd.DataFrame({"arch": ["gru", "lstm"], "freq_corr": [corr, 0.99]})
    cdi = pd.DataFrame({"arch": ["gru", "lstm"], "lam_int_0": [lam, 1.0], "lam_int_1": [lam, 1.0]})
    return ff, sine, cdi


def verdicts(df):
    return dict(zip(df["claim"].str[:11] + "/" + df["task"], df["verdict"]))


def test_paper_like_numbers_make_every_claim_hold():
    df = claims.claims_table(stats_frame(0.001, 0.4), *tables(), n_total=80)
    assert set(df["verdict"]) == {"holds"} and len(df) == 2 * 3 + 3 + 1


def test_topology_that_separates_architectures_refutes_universality():
    df = claims.claims_table(stats_frame(0.001, 0.001, topo_acc=0.95), *tables(), n_total=80)
    v = verdicts(df)
    assert v["2. Topology/A"] == "does not hold" and v["3. Comparin/all three"] == "does not hold"
    weaker = claims.claims_table(stats_frame(0.001, 0.001, topo_acc=0.5), *tables(), n_total=80)
    assert verdicts(weaker)["2. Topology/A"] == "partly"


def test_dynamics_criteria():
    df = claims.claims_table(stats_frame(0.001, 0.4), *tables((False, False, True), 0.7, 0.9), 80)
    v = dict(zip(df["claim"].str[3:10], df["verdict"]))
    assert v["Flip-fl"] == "partly" and v["The lin"] == "partly" and v["Every a"] == "does not hold"
