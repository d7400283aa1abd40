"""The paper's claims as rows of numbers, each with the criterion that decides whether it holds.

Criteria (stated here once, shown in the book next to the table):

* *geometry is individual* (per task, architecture and activation): the SVCCA 1-NN accuracy is
  above chance with permutation p < ``alpha``;
* *topology is universal* (per task): the topology 1-NN accuracy of architecture is not
  significant (p >= ``alpha``); "partly" when it is significant but below the SVCCA accuracy;
  the same for the structure term alone where the statistics give it (``"structure only"``);
* *the flip-flop graph is shared*: at least half of the networks match the canonical graph
  ("partly" if any does);
* *the linearisation predicts the frequency*: every architecture's median correlation between
  predicted and commanded frequency exceeds 0.9 ("partly" above 0.5);
* *every architecture integrates*: every architecture's median integrating eigenvalue is within
  0.05 of 1;
* *the cautionary tale*: both of the first two claims hold on every task ("partly" when the
  first holds somewhere and the second is not refuted everywhere).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

ALPHA = 0.05


def verdict(ok: bool, partly: bool = False) -> str:
    """``"holds"``, ``"partly"`` or ``"does not hold"``."""
    return "holds" if ok else ("partly" if partly else "does not hold")


def _row(claim, task, measure, value, reference, n, holds):
    return dict(claim=claim, task=task, measure=measure, value=value, reference=reference,
                networks=int(n), verdict=holds)


def clustering_rows(stats: pd.DataFrame, alpha: float = ALPHA) -> list[dict]:
    """Claims 1 and 2 per task from cluster statistics indexed (task, distance, label).

    ``stats`` has columns n, nn_accuracy, chance, p_value, with distance in {SVCCA, topology}
    and label in {arch, activation}.
    """
    rows = []
    for task in dict.fromkeys(stats.index.get_level_values(0)):
        sv, tp = stats.loc[(task, "SVCCA", "arch")], stats.loc[(task, "topology", "arch")]
        sva = stats.loc[(task, "SVCCA", "activation")]
        for text, s in (("1. Geometry is individual: SVCCA separates architectures", sv),
                        ("1. ... and activations", sva)):
            rows.append(_row(text, task, "1-NN accuracy, permutation p",
                             f"{s.nn_accuracy:.2f} (p={s.p_value:.3f})", f"chance {s.chance:.2f}",
                             s.n, verdict(s.p_value < alpha and s.nn_accuracy > s.chance)))
        rows.append(_row("2. Topology is universal: it does not separate architectures", task,
                         "1-NN accuracy, permutation p",
                         f"{tp.nn_accuracy:.2f} (p={tp.p_value:.3f})",
                         f"chance {tp.chance:.2f}; SVCCA {sv.nn_accuracy:.2f}", tp.n,
                         verdict(tp.p_value >= alpha, partly=tp.nn_accuracy < sv.nn_accuracy)))
        if (task, "structure only", "arch") in stats.index:
            st = stats.loc[(task, "structure only", "arch")]
            rows.append(_row("2. ... the fixed points' structure alone (no linearisation)", task,
                             "1-NN accuracy, permutation p",
                             f"{st.nn_accuracy:.2f} (p={st.p_value:.3f})", f"chance {st.chance:.2f}",
                             st.n, verdict(st.p_value >= alpha, partly=st.nn_accuracy < sv.nn_accuracy)))
    return rows


def dynamics_rows(ff_table, sine_table, cdi_table) -> list[dict]:
    """The universal-scaffold claims measured on the fixed points of each task.

    ``ff_table``: column ``matches``; ``sine_table``: ``arch``, ``freq_corr``; ``cdi_table``:
    ``arch``, ``lam_int_0``, ``lam_int_1`` (one row per network).
    """
    frac = float(ff_table["matches"].mean())
    corr = sine_table.groupby("arch", sort=False)["freq_corr"].median()
    lam = cdi_table[["lam_int_0", "lam_int_1"]].mean(axis=1).groupby(cdi_table["arch"]).median()
    return [
        _row("2. Flip-flop networks share the canonical fixed-point graph", "3-bit flip-flop",
             "fraction of networks matching it", f"{frac:.2f}", "1 if universal", len(ff_table),
             verdict(frac >= 0.5, partly=frac > 0)),
        _row("2. The linearisation predicts the commanded frequency in every architecture",
             "Frequency-cued sine wave", "lowest per-architecture median corr(predicted, commanded)",
             f"{corr.min():.2f}", "1 if exact", len(sine_table),
             verdict(corr.min() > 0.9, partly=corr.min() > 0.5)),
        _row("2. Every architecture integrates with a mode near 1", "Context-dependent integration",
             "per-architecture median integrating eigenvalue", f"{lam.min():.3f} to {lam.max():.3f}",
             "1 for a perfect integrator", len(cdi_table), verdict(bool(np.all(np.abs(lam - 1) < 0.05)))),
    ]


def claims_table(stats: pd.DataFrame, ff_table, sine_table, cdi_table, n_total: int) -> pd.DataFrame:
    """Every claim with its measured value, reference, population size and verdict."""
    rows = clustering_rows(stats) + dynamics_rows(ff_table, sine_table, cdi_table)
    first = [r["verdict"] for r in rows if r["claim"].startswith("1. Geometry")]
    second = [r["verdict"] for r in rows if r["claim"].startswith("2. Topology")]
    ok = first.count("holds") == len(first) and second.count("holds") == len(second)
    partly = "holds" in first and second.count("does not hold") < len(second)
    rows.append(_row("3. Comparing networks by geometry alone can mislead", "all three",
                     "tasks where geometry separates architectures; where topology does not",
                     f"{first.count('holds')}/{len(first)}; {second.count('holds')}/{len(second)}",
                     f"{len(first)}/{len(first)}; {len(second)}/{len(second)}", n_total,
                     verdict(ok, partly)))
    return pd.DataFrame(rows)
