"""Tables and numbers shown in the book: human column names, integer counts as integers,
intervals in one cell, powers of ten with superscripts."""
from __future__ import annotations

import pandas as pd

LABELS = {"arch": "architecture", "activation": "activation"}


def cluster_table(stats: pd.DataFrame) -> pd.io.formats.style.Styler:
    """Cluster statistics (rows of :func:`lib.embed.cluster_stats`) for a reader.

    ``stats`` is indexed by any levels ending in ``label`` ("arch" / "activation"); the result
    keeps the index, names the label in words, and shows: networks, tie-aware 1-NN accuracy,
    chance, accuracy above chance with its 95 % bootstrap interval, the permutation p of the
    accuracy, PERMANOVA's p, and how many networks had tied nearest neighbours.
    """
    s = stats.rename(index=LABELS, level="label")
    out = pd.DataFrame({
        "networks": s["n"].astype(int),
        "1-NN accuracy": s["nn_accuracy"].astype(float),
        "chance": s["chance"].astype(float),
        "above chance [95% CI]": [interval(e, lo, hi) for e, lo, hi in
                                  zip(s["above_chance"], s["above_chance_lo"], s["above_chance_hi"])],
        "p (1-NN)": s["p_value"].astype(float),
        "p (PERMANOVA)": s["permanova_p"].astype(float),
        "tied networks": s["n_tied"].astype(int),
    }, index=s.index)
    return out.style.format({"1-NN accuracy": "{:.2f}", "chance": "{:.2f}", "p (1-NN)": "{:.3f}",
                             "p (PERMANOVA)": "{:.3f}"})


def number(x: float, digits: int = 2, signed: bool = True) -> str:
    """``x`` with ``digits`` decimals (a leading sign if ``signed``), ``∞`` for an infinity.

    A nonzero value that would round to zero gets up to two more decimals, so that its sign
    shows (an interval's end at -0.004 is below 0, which a verdict can turn on); one still
    smaller reads as zero."""
    if x in (float("inf"), float("-inf")):
        return "∞" if x > 0 else "−∞"
    sign = "+" if signed else ""
    for d in range(digits, digits + 3):
        text = f"{x:{sign}.{d}f}"
        if float(text) != 0:
            return text
    return f"{0.0:{sign}.{digits}f}"


def interval(estimate: float, lo: float, hi: float, digits: int = 2, signed: bool = True) -> str:
    """``"+0.12 [-0.004, +0.17]"``: an estimate and its interval in one cell (:func:`number`)."""
    return " ".join([number(estimate, digits, signed),
                     f"[{number(lo, digits, signed)}, {number(hi, digits, signed)}]"])


def power_of_ten(x: float) -> str:
    """``x`` >= 0 with a superscript power of ten, two significant digits at most: 1e-05 ->
    ``10⁻⁵``, 2.5e-3 -> ``2.5 × 10⁻³`` (for prose, where ``1e-05`` reads as code; plain text,
    so it renders wherever a glued string does)."""
    if x == 0:
        return "0"
    mantissa, exponent = f"{x:.1e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    power = "10" + str(int(exponent)).translate(_SUPERSCRIPT)
    return power if mantissa == "1" else f"{mantissa} × {power}"


_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")
