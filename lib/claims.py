"""The paper's claims, each judged by a criterion declared here before any data are seen.

Every criterion is data (:class:`Criterion`: the claim, its measure, its rule, alpha, the margin
and the minimum number of networks, with the reason for the margin); :func:`criteria_table`
renders them for the book to show *before* the results, and :func:`claims_table` applies them to
measured inputs. Each claim has three outcomes:

* ``supported``: the interval (or test) gives positive evidence for the claim;
* ``not supported``: it gives evidence against it;
* ``inconclusive``: neither, or fewer networks than the criterion's minimum; the table then says
  about how many networks would decide it, from the interval's half-width shrinking as 1/sqrt(n).

A claim of sameness ("universal") needs positive evidence: an equivalence margin on the
above-chance accuracy, never a non-significant test. Sub-analyses (e.g. the structure and
linearisation terms of a distance) are :func:`diagnostics`, shown beside the claims; they never
change a verdict.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps

from . import frequency
from .chapter import TASK_TITLES
from .integration import time_constant
from .tables import interval

SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE = "supported", "not supported", "inconclusive"
OUTCOMES = (SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE)


@dataclass(frozen=True)
class Criterion:
    """One claim's decision rule, fixed before the data.

    ``rule`` is a template filled from the other fields, so the text shown in the book and the
    numbers the code applies cannot drift apart. ``min_n`` counts networks (per task, or per
    group where the measure is per architecture or cell).
    """

    key: str
    claim: str
    measure: str
    rule: str
    reason: str
    alpha: float = 0.05
    margin: float = float("nan")
    min_n: int = 20

    def rule_text(self) -> str:
        return self.rule.format(**asdict(self))


CRITERIA = (
    Criterion(
        "individual", "1. Geometry is individual: SVCCA distances separate",
        "tie-aware leave-one-out 1-NN accuracy minus chance: 95% bootstrap interval over networks; "
        "label-permutation p; under every SVCCA rule of chapter 4 (a fixed k and Raghu et al.'s "
        "variance rules)",
        "supported if under every rule p < {alpha} and the interval's lower end > 0; not "
        "supported if under every rule its upper end < {margin} (no more than negligible "
        "information); otherwise inconclusive, also when the rules disagree; no verdict on "
        "fewer than {min_n} networks",
        "the same margin as for universality, so that both claims are judged on one scale; every "
        "rule must agree because the paper does not say which one it used", margin=0.10),
    Criterion(
        "universal", "2. Topology is universal: the topology distance carries no architecture",
        "tie-aware leave-one-out 1-NN accuracy minus chance: 95% bootstrap interval over networks; "
        "label-permutation p",
        "supported if the interval's upper end < {margin} (equivalence); not supported if "
        "p < {alpha} and the upper end >= {margin}; otherwise inconclusive; no verdict on "
        "fewer than {min_n} networks",
        "0.10 above chance means at most one network in ten owes its nearest neighbour to its "
        "architecture: with four architectures (chance about 0.24) the nearest neighbour would "
        "still be of another architecture for about two networks in three", margin=0.10),
    Criterion(
        "graph", "2. Flip-flop networks share the canonical fixed-point graph in every cell",
        "canonical-graph match rate (isolated fixed points as nodes) per architecture x "
        "activation: 95% Clopper-Pearson interval; "
        "permutation chi-square test of independence of match and cell",
        "supported if every cell's lower end >= {margin}; not supported if some cell's upper end "
        "< {margin} or independence is rejected (p < {alpha}); otherwise inconclusive; no "
        "verdict on fewer than {min_n} networks per cell",
        "0.8 lets one network in five miss the graph (a failed search, an unusual solution) while "
        "excluding any cell in which the canonical graph is not the typical solution",
        margin=0.8, min_n=5),
    Criterion(
        "frequency", "2. The linearisation predicts the commanded frequency in every architecture",
        "median relative error |predicted - commanded| / commanded per architecture (a missing "
        "prediction counts as infinite): 95% bootstrap interval over networks",
        "supported if every architecture's upper end < {margin}; not supported if some "
        "architecture's lower end > {margin}; otherwise inconclusive; no verdict on fewer than "
        "{min_n} networks per architecture",
        "an error under 10% places the predicted frequency closer to its own command than to "
        "any command a fifth (20%) away; a correlation would ignore scale and offset errors",
        margin=0.10, min_n=5),
    Criterion(
        "integrates", "2. Every architecture integrates with a slow mode",
        "median time constant tau = 1/|1 - |lambda|| of the integrating mode per architecture "
        "(networks x contexts; no slow point counts as tau = 0): 95% bootstrap interval over "
        "networks, against the trial length T",
        "supported if every architecture's lower end > {margin:g} T; not supported if some "
        "architecture's upper end < {margin:g} T; otherwise inconclusive; no verdict on fewer than "
        "{min_n} networks per architecture",
        "a leaky integrator with tau = 10 T loses on average 1 - (tau/T)(1 - exp(-T/tau)) = 4.8% "
        "of a trial's input; |lambda - 1| < 0.05 would allow tau = 20 steps, far below T",
        margin=10.0, min_n=5),
    Criterion(
        "cautionary", "3. Comparing networks by geometry alone can mislead",
        "tasks on which geometry separates architectures (claim 1) while every scaffold claim "
        "(claim 2) of that task is supported",
        "supported if there is such a task; not supported if on every task claim 1 (architecture) "
        "or a claim 2 row is not supported; otherwise inconclusive",
        "one clear task suffices for a cautionary tale"),
)
CRITERION = {c.key: c for c in CRITERIA}


def criteria_table() -> pd.DataFrame:
    """The declared criteria (claim, measure, rule, alpha, margin, reason), for the book."""
    return pd.DataFrame([dict(claim=c.claim, measure=c.measure, rule=c.rule_text(),
                              alpha=c.alpha, margin=c.margin, reason=c.reason) for c in CRITERIA])


# ------------------------------------------------------------------------------ deciding


def networks_needed(n: int, estimate: float, lo: float, hi: float, bound: float) -> int | None:
    """About how many networks would make [lo, hi] around ``estimate`` exclude ``bound``.

    The interval's reach towards the bound shrinks as 1/sqrt(n) (a precision calculation at the
    current estimate). None when the estimate sits on the bound (no n decides) or is not finite.
    """
    d = abs(estimate - bound)
    half_width = estimate - lo if estimate > bound else hi - estimate
    if not (np.isfinite(d) and np.isfinite(half_width)) or d == 0:
        return None
    return int(max(n, np.ceil(n * (half_width / d) ** 2)))


def _needed(c: Criterion, n: int, *candidates) -> int | None:
    """Largest finite of the candidates (and the criterion's minimum), None if any is None."""
    if any(k is None for k in candidates):
        return None
    return max([c.min_n, *candidates]) if candidates else c.min_n


def judge_separation(c: Criterion, n, est, lo, hi, p, towards: str | None = None
                     ) -> tuple[str, int | None]:
    """Claim 1: the label is in the distances (p < alpha, interval above 0). An inconclusive
    outcome comes with the networks that would decide it (``towards`` SUPPORTED or
    NOT_SUPPORTED: that way only; None: whichever way comes first)."""
    if n >= c.min_n and p < c.alpha and lo > 0:
        return SUPPORTED, None
    if n >= c.min_n and hi < c.margin:
        return NOT_SUPPORTED, None
    # whichever end would be decided first at the current estimate
    bounds = {None: (0.0, c.margin), SUPPORTED: (0.0,), NOT_SUPPORTED: (c.margin,)}[towards]
    routes = [networks_needed(n, est, lo, hi, b) for b in bounds if (b == 0) == (est > 0)
              or 0 < est < c.margin]
    routes = [r for r in routes if r is not None]
    return INCONCLUSIVE, _needed(c, n, min(routes)) if routes else None


def judge_equivalence(c: Criterion, n, est, lo, hi, p) -> tuple[str, int | None]:
    """Claim 2 (universal): the above-chance accuracy is below the margin."""
    if n >= c.min_n and hi < c.margin:
        return SUPPORTED, None
    if n >= c.min_n and p < c.alpha:
        return NOT_SUPPORTED, None
    # below the margin the upper end must fall under it; above, the lower end must leave 0
    bound = c.margin if est < c.margin else 0.0
    return INCONCLUSIVE, _needed(c, n, networks_needed(n, est, lo, hi, bound))


def judge_groups(c: Criterion, n, est, lo, hi, bound,
                 higher_is_better: bool) -> tuple[str, int | None]:
    """Every group's interval must clear ``bound`` on the good side; any on the bad side refutes.

    ``n, est, lo, hi`` are per group [G].
    """
    n, est, lo, hi = (np.asarray(v, float) for v in (n, est, lo, hi))
    good, bad = (lo > bound, hi < bound) if higher_is_better else (hi < bound, lo > bound)
    if np.any(bad & (n >= c.min_n)):
        return NOT_SUPPORTED, None
    if np.all(good) and np.all(n >= c.min_n):
        return SUPPORTED, None
    open_ = ~good & ~bad
    need = [networks_needed(int(k), e, l, h, bound)
            for k, e, l, h in zip(n[open_], est[open_], lo[open_], hi[open_])]
    return INCONCLUSIVE, _needed(c, int(n.min()), *need)


# ------------------------------------------------------------------------------ measures


def clopper_pearson(k, n, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Exact binomial interval [lo, hi] of k successes in n trials (arrays)."""
    k, n, a = np.asarray(k, float), np.asarray(n, float), (1 - level) / 2
    lo = np.where(k > 0, sps.beta.ppf(a, np.maximum(k, 1e-9), n - k + 1), 0.0)
    hi = np.where(k < n, sps.beta.ppf(1 - a, k + 1, np.maximum(n - k, 1e-9)), 1.0)
    return lo, hi


def independence_test(match, cell, n_perm: int = 10000, seed: int = 0) -> tuple[float, float]:
    """Chi-square of match [N] (bool) against cell [N] labels, with a permutation p-value.

    A permutation test (Fisher-Freeman-Halton in spirit) stays valid for the small expected
    counts of a few networks per cell. All permutations are scored in one matrix product.
    """
    m = np.asarray(match, float)
    cells = np.unique(np.asarray(cell), return_inverse=True)[1]
    onehot = np.eye(cells.max() + 1)[cells]  # [N, K]
    size, rate = onehot.sum(0), m.mean()
    if rate in (0.0, 1.0) or len(size) < 2:
        return 0.0, 1.0

    def chi2(hits):  # hits [P, K]
        e1, e0 = size * rate, size * (1 - rate)
        return (((hits - e1) ** 2) / e1 + ((size - hits - e0) ** 2) / e0).sum(-1)

    perms = np.random.default_rng(seed).permuted(np.tile(m, (n_perm, 1)), axis=1)
    obs, null = chi2(m @ onehot), chi2(perms @ onehot)
    return float(obs), float((1 + np.sum(null >= obs - 1e-9)) / (1 + n_perm))


def _bootstrap_median(values: np.ndarray, groups: np.ndarray, n_boot: int, rng, level=0.95):
    """Median of values and its percentile interval, resampling the groups (networks)."""
    ids = np.unique(groups)
    by = [values[groups == g] for g in ids]
    meds = [np.median(np.concatenate([by[i] for i in rng.integers(0, len(ids), len(ids))]))
            for _ in range(n_boot)]
    lo, hi = np.percentile(meds, [50 * (1 - level), 50 * (1 + level)], method="lower")
    return float(np.median(values)), float(lo), float(hi)


def time_constants(cdi_table: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Per architecture: median tau of the integrating mode over networks x contexts, interval.

    ``cdi_table`` has one row per network with ``arch``, ``lam_int_0``, ``lam_int_1`` (nan: no
    slow point in that context, counted as tau = 0, i.e. no integration).
    """
    rng = np.random.default_rng(seed)
    lam = cdi_table[["lam_int_0", "lam_int_1"]].to_numpy(float)
    tau = time_constant(lam)
    tau[np.isnan(tau)] = 0.0  # inf (|lambda| = 1) stays inf
    rows = {}
    for arch in dict.fromkeys(cdi_table["arch"]):
        k = np.flatnonzero(cdi_table["arch"].to_numpy() == arch)
        med, lo, hi = _bootstrap_median(tau[k].ravel(), np.repeat(k, 2), n_boot, rng)
        rows[arch] = dict(n=len(k), missing=int(np.isnan(lam[k]).sum()), tau=med, tau_lo=lo,
                          tau_hi=hi)
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("arch")


def graph_rates(ff_table: pd.DataFrame, n_perm: int = 10000, seed: int = 0):
    """Canonical-graph match rate per architecture x activation with intervals, and the test.

    Returns (DataFrame indexed by (arch, activation): n, matches, rate, lo, hi; chi2; p).
    """
    g = ff_table.groupby(["arch", "activation"], sort=False)["matches"]
    t = pd.DataFrame(dict(n=g.size(), matches=g.sum().astype(int)))
    t["rate"] = t.matches / t.n
    t["lo"], t["hi"] = clopper_pearson(t.matches, t.n)
    cell = ff_table["arch"].astype(str) + "-" + ff_table["activation"].astype(str)
    chi2, p = independence_test(ff_table["matches"].to_numpy(bool), cell, n_perm, seed)
    return t, chi2, p


# ------------------------------------------------------------------------------ the table


def _row(c: Criterion, task, value, n, decision, measure=None, claim=None):
    outcome, needed = decision
    return dict(claim=claim or c.claim, task=task, measure=measure or c.measure, value=value,
                rule=c.rule_text(), networks=int(n), outcome=outcome,
                needed="" if outcome != INCONCLUSIVE else needed if isinstance(needed, str) else
                ("no n decides at this estimate" if needed is None else f"about {_rounded(needed)}"))


def _rounded(n: int) -> str:
    """n to two significant digits, the precision of a 1/sqrt(n) extrapolation: 198221 ->
    '200,000', 442 -> '440', 37 -> '37'."""
    return f"{int(float(f'{n:.2g}')):,}"


def _interval(s) -> str:
    """Three decimals: an end that rounds to the bound it is judged against (0, the margin)
    at two would hide which side of it the verdict fell on."""
    return (f"{s.above_chance:+.3f} [{s.above_chance_lo:+.3f}, {s.above_chance_hi:+.3f}], "
            f"p={s.p_value:.3f}")


def svcca_distances(stats: pd.DataFrame, task) -> list[str]:
    """The SVCCA rules in ``stats`` for ``task``: distances named "SVCCA" or "SVCCA <rule>"."""
    names = dict.fromkeys(stats.loc[task].index.get_level_values(0))
    return [d for d in names if d == "SVCCA" or d.startswith("SVCCA ")]


def judge_every_rule(c: Criterion, rows) -> tuple[str, int | str | None]:
    """Claim 1 under every SVCCA rule (``rows``: their :func:`lib.embed.cluster_stats`): all
    must agree. Where the decided rules agree, an undecided rule is costed by the networks that
    would decide it their way; deciding it the other way would leave the rules disagreeing."""
    args = [(s.n, s.above_chance, s.above_chance_lo, s.above_chance_hi, s.p_value) for s in rows]
    decisions = [judge_separation(c, *a) for a in args]
    decided = {o for o, _ in decisions} - {INCONCLUSIVE}
    if len(decided) == 1:
        way = decided.pop()
        decisions = [judge_separation(c, *a, towards=way) if o == INCONCLUSIVE else (o, k)
                     for (o, k), a in zip(decisions, args)]
    return every_rule(decisions)


def every_rule(decisions: list[tuple[str, int | None]]) -> tuple[str, int | str | None]:
    """One outcome from the same claim judged under several rules: all must agree."""
    outcomes = [o for o, _ in decisions]
    if all(o == SUPPORTED for o in outcomes):
        return SUPPORTED, None
    if all(o == NOT_SUPPORTED for o in outcomes):
        return NOT_SUPPORTED, None
    needed = [n for o, n in decisions if o == INCONCLUSIVE]
    if not needed:
        return INCONCLUSIVE, "none: the SVCCA rules disagree"
    return INCONCLUSIVE, None if None in needed else max(needed)


def clustering_rows(stats: pd.DataFrame) -> list[dict]:
    """Claims 1 (SVCCA separates architecture and activation) and 2 (topology universal) per task.

    ``stats``: :func:`lib.embed.cluster_stats` rows indexed (task, distance, label), with
    distance "topology" and one or more SVCCA rules ("SVCCA", or "SVCCA <rule>", e.g.
    "SVCCA k = 10", "SVCCA 99% of variance"), label in {"arch", "activation"}; other distances
    are diagnostics and ignored here. Claim 1 must hold under every SVCCA rule.
    """
    ind, uni, rows = CRITERION["individual"], CRITERION["universal"], []
    for task in dict.fromkeys(stats.index.get_level_values(0)):
        rules = svcca_distances(stats, task)
        for lab in ("arch", "activation"):
            ss = [stats.loc[(task, d, lab)] for d in rules]
            name = {"arch": "architectures", "activation": "activations"}[lab]
            value = "; ".join((f"{d.removeprefix('SVCCA').strip()}: " if len(rules) > 1 else "")
                              + _interval(s) for d, s in zip(rules, ss))
            decision = judge_every_rule(ind, ss)
            rows.append(_row(ind, task, value, ss[0].n, decision,
                             measure=f"label: {lab}; " + ind.measure, claim=f"{ind.claim} {name}"))
        t = stats.loc[(task, "topology", "arch")]
        rows.append(_row(uni, task, _interval(t), t.n, judge_equivalence(
            uni, t.n, t.above_chance, t.above_chance_lo, t.above_chance_hi, t.p_value)))
    return rows


def graph_row(ff_table: pd.DataFrame, n_perm: int = 10000, seed: int = 0) -> dict:
    """Claim 2 on the flip-flop: the canonical graph in every cell, independent of the cell."""
    c = CRITERION["graph"]
    t, chi2, p = graph_rates(ff_table, n_perm, seed)
    outcome = judge_groups(c, t.n, t.rate, t.lo, t.hi, c.margin, higher_is_better=True)
    if p < c.alpha and outcome[0] != NOT_SUPPORTED:
        outcome = (NOT_SUPPORTED, None)
    cells = ", ".join(f"{a}-{b} {int(r.matches)}/{int(r.n)}" for (a, b), r in t.iterrows())
    value = f"{cells}; independence p={p:.3f}"
    return _row(c, TASK_TITLES["flipflop"], value, len(ff_table), outcome)


def frequency_row(sine_points: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> dict:
    """Claim 2 on the sine wave from per-(network, command) predictions (see lib.frequency)."""
    c = CRITERION["frequency"]
    f = frequency.frequency_accuracy(sine_points, n_boot, seed)
    value = ", ".join(  # three decimals, as _interval: an end near the margin shows its side
        f"{a} {interval(r.median_rel_error, r.rel_error_lo, r.rel_error_hi, 3, signed=False)}"
        for a, r in f.iterrows())
    return _row(c, TASK_TITLES["sine"], value, sine_points["net"].nunique(), judge_groups(
        c, f.n, f.median_rel_error, f.rel_error_lo, f.rel_error_hi, c.margin, False))


def integration_row(cdi_table: pd.DataFrame, trial_length: int, n_boot: int = 1000,
                    seed: int = 0) -> dict:
    """Claim 2 on integration: every architecture's integrating time constant against T."""
    c = CRITERION["integrates"]
    t = time_constants(cdi_table, n_boot, seed)
    bound = c.margin * trial_length
    value = ", ".join(f"{a} {r.tau:.3g} [{r.tau_lo:.3g}, {r.tau_hi:.3g}]" for a, r in t.iterrows())
    return _row(c, TASK_TITLES["cdi"], f"tau (steps): {value}; bound {bound:g}", len(cdi_table),
                judge_groups(c, t.n, t.tau, t.tau_lo, t.tau_hi, bound, True))


def cautionary_row(rows: list[dict], n_total: int) -> dict:
    """Claim 3 from the other rows: a task where geometry separates and the scaffold is shared."""
    c = CRITERION["cautionary"]
    arch1 = {r["task"]: r["outcome"] for r in rows
             if r["claim"].startswith(CRITERION["individual"].claim)
             and r["measure"].startswith("label: arch")}
    scaffold = {t: [r["outcome"] for r in rows if r["task"] == t and r["claim"].startswith("2.")]
                for t in arch1}
    both = [t for t in arch1 if arch1[t] == SUPPORTED and all(o == SUPPORTED for o in scaffold[t])]
    refuted = [t for t in arch1 if arch1[t] == NOT_SUPPORTED or NOT_SUPPORTED in scaffold[t]]
    outcome = SUPPORTED if both else NOT_SUPPORTED if len(refuted) == len(arch1) else INCONCLUSIVE
    value = f"{len(both)} of {len(arch1)} tasks" + (f" ({', '.join(both)})" if both else "")
    return _row(c, "all three", value, n_total, (outcome, "as the rows it rests on"))


def claims_table(stats: pd.DataFrame, ff_table: pd.DataFrame, sine_points: pd.DataFrame,
                 cdi_table: pd.DataFrame, trial_length: int, n_total: int,
                 n_boot: int = 1000, n_perm: int = 10000, seed: int = 0) -> pd.DataFrame:
    """Every claim with its measured value, declared rule, population size and outcome.

    Parameters
    ----------
    stats : cluster statistics indexed (task title, distance, label), see :func:`clustering_rows`
    ff_table : one row per flip-flop network: ``arch``, ``activation``, ``matches`` (bool)
    sine_points : one row per (sine network, command): ``net``, ``arch``, ``commanded``,
        ``predicted`` (:func:`lib.frequency.long_table`)
    cdi_table : one row per integration network: ``arch``, ``lam_int_0``, ``lam_int_1``
    trial_length : steps of an integration trial (the task's ``n_time``)
    n_total : networks behind the table (all tasks)
    n_boot, n_perm, seed : bootstrap resamples, permutations of the independence test, seed

    Returns
    -------
    DataFrame with columns claim, task, measure, value, rule, networks, outcome, needed
    (for an inconclusive outcome: about how many networks would decide it).
    """
    rows = clustering_rows(stats)
    rows += [graph_row(ff_table, n_perm, seed), frequency_row(sine_points, n_boot, seed),
             integration_row(cdi_table, trial_length, n_boot, seed)]
    rows.append(cautionary_row(rows, n_total))
    return pd.DataFrame(rows)


DIAGNOSTICS = ("structure only", "linear only")  # the terms of an input-dependent topology distance


def diagnostics(stats: pd.DataFrame, distances=DIAGNOSTICS) -> pd.DataFrame:
    """Sub-analyses beside the claims, never verdicts: architecture statistics of other distances."""
    keep = [i for i in stats.index if i[1] in distances and i[2] == "arch"]
    cols = ["n", "nn_accuracy", "chance", "p_value", "above_chance", "above_chance_lo",
            "above_chance_hi", "permanova_p", "n_tied"]
    return stats.loc[keep, [c for c in cols if c in stats.columns]]
