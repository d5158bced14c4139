"""Why the coupled runs crashed: the report's section on the crash records
(coupler/crash_attribution.py) of a sweep.

Over the crashed runs that have a record: how many had inputs on their
crash columns flagged out of the training distribution in the last day
before the crash (with a Wilson 95 % interval, statsmodels), read against
the base rate (the fraction of *all* columns flagged over the same day: an
emulator whose whole world has drifted out of its training data will show
flagged crash columns whatever caused the crash), since when, how far
(the guard's distance as a multiple of its threshold), and how wrong the
emulator was on the crash columns' inputs against the reference physics,
as a multiple of its own offline validation error.
"""
from __future__ import annotations

import numpy as np
import xarray as xr

from experiments.report import format_median, format_number

# statsmodels is imported inside the functions that use it, so that importing this module does not
# load it (start-up time).

__all__ = ["crash_lines", "crash_statistics"]


def crash_statistics(results: xr.Dataset) -> dict[str, float | int]:
    """The section's numbers (empty without crash records)."""
    if "crash_ood" not in results:
        return {}
    from statsmodels.stats.proportion import proportion_confint

    crashed = (results["status"].values == "ok") & (results["crashed"].values == 1)
    has = crashed & (results["crash_ood"].values >= 0)
    ood = has & (results["crash_ood"].values == 1)
    n, k = int(has.sum()), int(ood.sum())
    low, high = proportion_confint(k, n, alpha=0.05, method="wilson") if n else (np.nan, np.nan)
    offline = results["offline_mse"].values
    return {
        "n_crashed": int(crashed.sum()), "n_records": n, "n_ood": k, "fraction_ood": k / n if n else np.nan,
        "fraction_ood_low": float(low), "fraction_ood_high": float(high),
        "base_rate": results["crash_flagged_fraction_all"].values[has],
        "hours_ood": results["crash_hours_ood"].values[ood],
        "distance_ratio": results["crash_distance_ratio"].values[has],
        "mse_crash": results["crash_mse_crash_columns"].values[has],
        "mse_crash_over_offline": results["crash_mse_crash_columns"].values[has] / offline[has],
        "mse_all_over_offline": results["crash_mse_all_columns"].values[has] / offline[has],
        "within_base": int(np.sum(ood & (results["crash_flagged_fraction_all"].values < 0.05))),
        "whole_record": int(np.sum(ood & (results["crash_ood_whole_record"].values == 1)))
        if "crash_ood_whole_record" in results else 0,
    }


def crash_lines(results: xr.Dataset) -> list[str]:
    """The report's lines on the crash records (empty when the sweep has none)."""
    s = crash_statistics(results)
    if not s:
        return []
    lines = ["## Why the runs crashed (crash attribution)", ""]
    if s["n_records"] == 0:
        return lines + [f"None of the {s['n_crashed']} crashed runs has a crash record.", ""]
    n = s["n_records"]
    lines += [
        f"Each crashed run's last day was replayed and its crash columns (those beyond a bound at the crash) "
        f"recorded with the emulator's inputs, its outputs and the reference physics' outputs on the same inputs "
        f"(coupler/crash_attribution.py; `fkb crash-report RUN_DIR` tells one): {n} of {s['n_crashed']} crashes.", "",
        "| | value |", "|---|---|",
        f"| crashes whose crash columns' inputs were flagged out of the training distribution in the last day "
        f"| {s['n_ood']} of {n} ({format_number(100 * s['fraction_ood'])} %, Wilson 95 % interval "
        f"{format_number(100 * s['fraction_ood_low'])}-{format_number(100 * s['fraction_ood_high'])} %) |",
        f"| base rate: fraction of all columns flagged over that day, median | "
        f"{format_number(100 * float(np.nanmedian(s['base_rate'])) if np.isfinite(s['base_rate']).any() else None)} % |",
        f"| flagged crashes whose world was otherwise in distribution (base rate < 5 %) | {s['within_base']} |",
        f"| flagged crashes flagged from the first recorded step on (the drift began before the recorded day) "
        f"| {s['whole_record']} |",
        f"| hours from the first flagged input to the crash, median (at most the recorded day) "
        f"| {format_median(s['hours_ood'])} |",
        f"| largest distance on the crash columns / the guard's threshold, median | "
        f"{format_median(s['distance_ratio'])} |",
        f"| emulator vs reference physics on the crash columns' inputs, MSE / offline validation MSE, median | "
        f"{format_median(s['mse_crash_over_offline'])} |",
        f"| the same on all columns over that day, median | {format_median(s['mse_all_over_offline'])} |", "",
        "A flagged crash column with a high base rate says the run had drifted out of the training distribution "
        "everywhere, not that the crash started from one out-of-distribution column; the MSE ratios say how much "
        "worse than offline the emulator was on the states it met before the crash.", ""]
    return lines
