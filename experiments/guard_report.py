"""What the out-of-distribution guard buys: the report's section on a sweep
whose emulators were also coupled with the guard on fallback
(``[coupled] fallback_run``, docs/gcm.md).

Paired by emulator (experiments.paired): crashes without and with the
guard (McNemar's exact test), the online error of the emulators that
survive both ways and the cost per simulated day; and the fraction of the
columns and steps the reference physics computed.
"""
from __future__ import annotations

import numpy as np
import xarray as xr

from experiments.paired import paired_runs, percent_text

__all__ = ["GOAL_FALLBACK_FRACTION", "fallback_lines"]

GOAL_FALLBACK_FRACTION = 0.2
"""The guard's aim: no crash with at most this mean fraction of columns on the reference physics."""


def fallback_lines(results: xr.Dataset) -> list[str]:
    """The report's lines on the runs with the guard on fallback (empty when
    the sweep made none)."""
    pairs = paired_runs(results, "fallback_")
    if pairs is None:
        return []
    lines = ["## The out-of-distribution guard on fallback", ""]
    n = pairs.n
    if n < 2:
        return lines + [f"Fewer than 2 emulators have runs with and without the guard ({n}): nothing to compare.",
                        ""]
    ok = pairs.ok
    fraction = results["fallback_fraction"].values[ok]
    flagged = results["fallback_flagged_fraction"].values[ok]
    goal = not pairs.other.any() and float(np.nanmean(fraction)) <= GOAL_FALLBACK_FRACTION
    within = int(np.sum(~pairs.other & (fraction <= GOAL_FALLBACK_FRACTION)))
    lines += [
        f"Every emulator was coupled twice, without a guard and with the guard on fallback (the reference "
        f"physics on the columns whose inputs fall outside the training distribution, docs/gcm.md): {n} pairs.", "",
        *pairs.table_lines(results, "without the guard", "with the guard on fallback"),
        f"{pairs.mcnemar_text()} Columns and steps on the "
        f"reference physics: mean {percent_text(np.nanmean(fraction))}, median {percent_text(np.nanmedian(fraction))}, "
        f"largest {percent_text(np.nanmax(fraction))} (flagged: mean {percent_text(np.nanmean(flagged))}).", "",
        f"The guard's aim, no crash with at most {percent_text(GOAL_FALLBACK_FRACTION)} of the columns on the "
        f"reference physics on average: **{'met' if goal else 'not met'}**; {within} of {n} emulators ran "
        f"without a crash with at most {percent_text(GOAL_FALLBACK_FRACTION)} on the reference physics.", ""]
    return lines
