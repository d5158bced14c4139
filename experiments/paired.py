"""Every emulator coupled twice, as it is and with a policy of the GCM's
(the guard on fallback, online fine-tuning): the paired comparison both
report sections share.

The second run's columns in the results carry a prefix (``fallback_``,
``finetune_``: ``PREFIX_crashed``, ``PREFIX_days_survived``,
``PREFIX_online_error_normalized``, ``PREFIX_seconds_per_day``). Paired by
emulator: crashes without and with the policy (McNemar's exact test on the
discordant pairs, statsmodels), median days survived, the median online
error of the emulators that survive both ways, the median cost per
simulated day.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import xarray as xr

from experiments.report import format_median, format_number

# statsmodels is imported inside the functions that use it, so that importing this module does not
# load it (start-up time).

__all__ = ["PairedRuns", "paired_runs", "percent_text"]


@dataclass(frozen=True)
class PairedRuns:
    """The emulators coupled both ways (``ok``: a mask over the results)
    and what the comparison found."""

    prefix: str
    ok: np.ndarray
    plain: np.ndarray
    """crashed without the policy, over the pairs"""
    other: np.ndarray
    """crashed with it"""
    table: list[list[int]]
    """[[both crashed, only without], [only with, neither]]"""
    p_value: float
    both_survived: np.ndarray

    @property
    def n(self) -> int:
        return int(self.ok.sum())

    def table_lines(self, results: xr.Dataset, without: str, with_: str) -> list[str]:
        """The markdown table: crashes, median days survived, median online
        error of the survivors both ways, median cost."""
        ok, both, prefix = self.ok, self.both_survived, self.prefix
        error, error_other = (results[name].values[ok][both] for name in
                              ("online_error_normalized", f"{prefix}online_error_normalized"))
        cost, cost_other = (results[name].values[ok] for name in ("seconds_per_day", f"{prefix}seconds_per_day"))
        n = self.n
        return [
            f"| | {without} | {with_} |", "|---|---|---|",
            f"| coupled runs crashed | {int(self.plain.sum())} of {n} | {int(self.other.sum())} of {n} |",
            f"| median days survived | {format_number(float(np.median(results['days_survived'].values[ok])))} "
            f"| {format_number(float(np.median(results[f'{prefix}days_survived'].values[ok])))} |",
            f"| median online error, normalised (the {int(both.sum())} surviving both ways) "
            f"| {format_median(error)} | {format_median(error_other)} |",
            f"| median cost [s per simulated day] | {format_median(cost)} | {format_median(cost_other)} |", ""]

    def mcnemar_text(self) -> str:
        return (f"Crashes avoided: {self.table[0][1]}; crashes caused: {self.table[1][0]} (McNemar's exact test "
                f"on the discordant pairs, statsmodels: p = {format_number(self.p_value)}).")


def paired_runs(results: xr.Dataset, prefix: str) -> PairedRuns | None:
    """The pairs of a sweep whose emulators were also coupled with a policy
    (columns ``PREFIX...``); None when it made no such runs."""
    if f"{prefix}days_survived" not in results:
        return None
    from statsmodels.stats.contingency_tables import mcnemar

    ok = (results["status"].values == "ok") & (results[f"{prefix}crashed"].values >= 0)
    plain = results["crashed"].values[ok] == 1
    other = results[f"{prefix}crashed"].values[ok] == 1
    table = [[int(np.sum(plain & other)), int(np.sum(plain & ~other))],
             [int(np.sum(~plain & other)), int(np.sum(~plain & ~other))]]
    p_value = float(mcnemar(table, exact=True).pvalue) if ok.sum() >= 2 else math.nan
    return PairedRuns(prefix, ok, plain, other, table, p_value, ~plain & ~other)


def percent_text(value: float) -> str:
    return f"{100 * value:.3g} %" if math.isfinite(value) else "-"
