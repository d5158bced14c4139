"""Replicates of a case study and what they say about the paper's claims.

``fkb casestudy --preset P --replicates N`` runs the sweep N times on one
reference stage (the same training data, reference runs and noise floor):
replicate 1 is the study itself (sweep seed ``s``, in ``OUT/``), replicate
``r`` draws its emulators, and so their training seeds, with sweep seed
``s + r - 1`` (in ``OUT/replicates/seed_S/``, with its own results and
report). :func:`claim_verdicts` then says, claim by claim, whether the
replicates reproduce a claim of Ott et al. (2020), contradict it, or leave
it undetermined, and :func:`write_replicates_report` writes that to
``OUT/replicates.md``:

- *offline skill predicts online error*: Spearman's rho between offline
  validation MSE and the normalised online error of the survivors is
  positive. Reproduced when every replicate's 95 % bootstrap interval lies
  above zero, contradicted when every one lies below, else undetermined;
- *offline skill predicts stability*: rho between offline validation MSE
  and days survived (all finished runs) is negative; the same rule;
- *the optimizer matters for stability*: the log-rank test across the
  optimizers rejects equal survival at the 5 % level in every replicate
  (reproduced); in none, with every replicate's test possible
  (undetermined: no evidence is not evidence of no effect); otherwise
  undetermined.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Sequence

from emulators.atomic_files import write_text_replacing
from experiments.report import format_interval, format_number

__all__ = ["CLAIMS", "claim_verdicts", "replicate_folder", "write_replicates_report"]

CLAIMS = (
    ("offline skill predicts online error", "spearman_offline_vs_online_error_normalized", 1,
     "rho(offline validation MSE, online error of the survivors) > 0"),
    ("offline skill predicts stability", "spearman_offline_vs_days_survived", -1,
     "rho(offline validation MSE, days survived) < 0"),
    ("the optimizer matters for stability", "logrank_optimizer", 0,
     "log-rank test of equal survival across the optimizers, p < 0.05"),
)
"""(claim, statistic, expected sign (0: a test), what is tested)."""

LOGRANK_LEVEL = 0.05


def replicate_folder(out_dir: str | os.PathLike, replicate: int, seed: int) -> Path:
    """Where replicate `replicate` (from 1) of sweep seed `seed` lives: the
    study's own folder for the first, ``OUT/replicates/seed_S`` for others."""
    out = Path(out_dir)
    return out if replicate == 1 else out / "replicates" / f"seed_{seed}"


def _correlation_verdict(values: Sequence[dict[str, float]], sign: int) -> str:
    lows = [v.get("ci_low", math.nan) for v in values]
    highs = [v.get("ci_high", math.nan) for v in values]
    if not values or not all(math.isfinite(x) for x in lows + highs):
        return "undetermined"
    if sign > 0 and all(low > 0 for low in lows) or sign < 0 and all(high < 0 for high in highs):
        return "reproduced"
    if sign > 0 and all(high < 0 for high in highs) or sign < 0 and all(low > 0 for low in lows):
        return "contradicted"
    return "undetermined"


def claim_verdicts(replicates: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """For each of :data:`CLAIMS`: ``claim``, ``test``, ``verdict``
    (reproduced, contradicted, undetermined) and the replicates' numbers.
    ``replicates``: per replicate its headline statistics
    (:func:`experiments.report.headline_statistics`) with ``logrank``, the
    log-rank test (:func:`experiments.survival.logrank_by_optimizer`)."""
    verdicts = []
    for claim, key, sign, test in CLAIMS:
        if sign == 0:
            p_values = [r["logrank"]["p_value"] for r in replicates]
            verdict = ("reproduced" if p_values and all(math.isfinite(p) and p < LOGRANK_LEVEL for p in p_values)
                       else "undetermined")
            numbers = [f"p {format_number(p)}" for p in p_values]
        else:
            values = [r[key] for r in replicates]
            verdict = _correlation_verdict(values, sign)
            numbers = [f"rho {format_number(v['rho'])} {format_interval(v)} (n {v['n']})" for v in values]
        verdicts.append({"claim": claim, "test": test, "verdict": verdict, "numbers": numbers})
    return verdicts


def write_replicates_report(out_dir: str | os.PathLike, seeds: Sequence[int],
                            replicates: Sequence[dict[str, Any]]) -> Path:
    """``OUT/replicates.md``: the claims, their verdicts and each replicate's
    numbers (``replicates`` as for :func:`claim_verdicts`, in the order of
    ``seeds``)."""
    out = Path(out_dir)
    lines = ["# Replicates: the paper's claims", "",
             f"{len(seeds)} replicates of the sweep on one reference stage, sweep seeds "
             + ", ".join(str(s) for s in seeds) + " (each with its own draws and training seeds; reports in "
             + ", ".join(f"`{os.path.relpath(replicate_folder(out, i + 1, s), out)}/report.md`"
                         for i, s in enumerate(seeds)) + ").", "",
             "A correlation claim is *reproduced* when every replicate's 95 % bootstrap interval excludes zero "
             "on the claimed side, *contradicted* when every one excludes it on the other side, and "
             "*undetermined* otherwise; the optimizer claim is reproduced when every replicate's log-rank test "
             f"rejects equal survival at the {LOGRANK_LEVEL:g} level.", "",
             "| claim | test | verdict | " + " | ".join(f"seed {s}" for s in seeds) + " |",
             "|---|---|---|" + "---|" * len(seeds)]
    for v in claim_verdicts(replicates):
        lines.append(f"| {v['claim']} | {v['test']} | **{v['verdict']}** | " + " | ".join(v["numbers"]) + " |")
    lines.append("")
    lines.append("| seed | emulators | finished | crashed | survivors |")
    lines.append("|---|---|---|---|---|")
    for s, r in zip(seeds, replicates):
        lines.append(f"| {s} | {r['n_emulators']} | {r['n_finished']} | {r['n_crashed']} | {r['n_survivors']} |")
    path = out / "replicates.md"
    write_text_replacing(path, "\n".join(lines) + "\n")
    return path
