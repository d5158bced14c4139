"""What the out-of-distribution guard buys: the report's section on a sweep
whose emulators were also coupled with the guard on fallback
(``[coupled] fallback_run``, docs/gcm.md).

Paired by emulator: crashes without and with the guard (McNemar's exact
test on the discordant pairs, statsmodels), the fraction of the columns
and steps the reference physics computed, the online error of the
emulators that survive both ways, and the cost per simulated day.
"""
from __future__ import annotations

import math

import numpy as np
import xarray as xr

from experiments.report import format_median, format_number

__all__ = ["GOAL_FALLBACK_FRACTION", "fallback_lines"]

GOAL_FALLBACK_FRACTION = 0.2
"""The guard's aim: no crash with at most this mean fraction of columns on the reference physics."""


def fallback_lines(results: xr.Dataset) -> list[str]:
    """The report's lines on the runs with the guard on fallback (empty when
    the sweep made none)."""
    if "fallback_days_survived" not in results:
        return []
    from statsmodels.stats.contingency_tables import mcnemar

    ok = (results["status"].values == "ok") & (results["fallback_crashed"].values >= 0)
    n = int(ok.sum())
    lines = ["## The out-of-distribution guard on fallback", ""]
    if n < 2:
        return lines + [f"Fewer than 2 emulators have runs with and without the guard ({n}): nothing to compare.",
                        ""]
    plain = results["crashed"].values[ok] == 1
    guarded = results["fallback_crashed"].values[ok] == 1
    table = [[int(np.sum(plain & guarded)), int(np.sum(plain & ~guarded))],
             [int(np.sum(~plain & guarded)), int(np.sum(~plain & ~guarded))]]
    test = mcnemar(table, exact=True)
    fraction = results["fallback_fraction"].values[ok]
    flagged = results["fallback_flagged_fraction"].values[ok]
    both = ~plain & ~guarded
    error, error_guarded = (results[name].values[ok][both] for name in
                            ("online_error_normalized", "fallback_online_error_normalized"))
    cost, cost_guarded = (results[name].values[ok] for name in ("seconds_per_day", "fallback_seconds_per_day"))
    goal = not guarded.any() and float(np.nanmean(fraction)) <= GOAL_FALLBACK_FRACTION
    within = int(np.sum(~guarded & (fraction <= GOAL_FALLBACK_FRACTION)))
    lines += [
        f"Every emulator was coupled twice, without a guard and with the guard on fallback (the reference "
        f"physics on the columns whose inputs fall outside the training distribution, docs/gcm.md): {n} pairs.", "",
        "| | without the guard | with the guard on fallback |", "|---|---|---|",
        f"| coupled runs crashed | {int(plain.sum())} of {n} | {int(guarded.sum())} of {n} |",
        f"| median days survived | {format_number(float(np.median(results['days_survived'].values[ok])))} "
        f"| {format_number(float(np.median(results['fallback_days_survived'].values[ok])))} |",
        f"| median online error, normalised (the {int(both.sum())} surviving both ways) "
        f"| {format_median(error)} | {format_median(error_guarded)} |",
        f"| median cost [s per simulated day] | {format_median(cost)} | {format_median(cost_guarded)} |", "",
        f"Crashes avoided: {table[0][1]}; crashes caused: {table[1][0]} (McNemar's exact test on the "
        f"discordant pairs, statsmodels: p = {format_number(float(test.pvalue))}). Columns and steps on the "
        f"reference physics: mean {_percent(np.nanmean(fraction))}, median {_percent(np.nanmedian(fraction))}, "
        f"largest {_percent(np.nanmax(fraction))} (flagged: mean {_percent(np.nanmean(flagged))}).", "",
        f"The guard's aim, no crash with at most {_percent(GOAL_FALLBACK_FRACTION)} of the columns on the "
        f"reference physics on average: **{'met' if goal else 'not met'}**; {within} of {n} emulators ran "
        f"without a crash with at most {_percent(GOAL_FALLBACK_FRACTION)} on the reference physics.", ""]
    return lines


def _percent(value: float) -> str:
    return f"{100 * value:.3g} %" if math.isfinite(value) else "-"
