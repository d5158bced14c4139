"""The case study's report: headline numbers, tables and figures.

:func:`headline_statistics` computes from the results Dataset
(:mod:`coupler.results`):

- Spearman's rank correlation (``scipy.stats.spearmanr``, with its p-value
  and a 95 % bootstrap interval from ``scipy.stats.bootstrap``)
  between offline validation MSE and online error among *survivors* (runs
  that completed; for the combined normalised error and for T and q), and
  between offline validation MSE and days survived among all finished runs;
- per optimizer: runs, crashes, fraction surviving, median days survived,
  median offline MSE, median online error of survivors;
- the best and the worst surviving emulator by online error.

:func:`make_report` writes ``report.md`` and the figures of
:mod:`experiments.plots` into a folder.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from coupler.results import per_emulator_variables

__all__ = ["headline_statistics", "make_report", "format_interval", "ONLINE_ERRORS"]

ONLINE_ERRORS = ("online_error_normalized", "online_error_t", "online_error_q")


BOOTSTRAP_RESAMPLES = 2000
"""Resamples of the bootstrap intervals on the Spearman correlations."""


def _rho(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rho, NaN where one side is constant (a degenerate resample)."""
    from scipy.stats import spearmanr

    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    return float(spearmanr(x, y).statistic)


def _spearman(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """rho, its p-value, and a 95 % bootstrap interval (pairs resampled with
    ``scipy.stats.bootstrap``, seeded; percentiles of the resamples' rho
    without the degenerate resamples, whose rho is undefined; from 5 pairs)."""
    from scipy.stats import bootstrap, spearmanr

    keep = np.isfinite(x) & np.isfinite(y)
    n = int(keep.sum())
    empty = {"rho": math.nan, "p_value": math.nan, "n": n, "ci_low": math.nan, "ci_high": math.nan}
    if n < 3 or np.ptp(x[keep]) == 0 or np.ptp(y[keep]) == 0:
        return empty
    result = spearmanr(x[keep], y[keep])
    out = dict(empty, rho=float(result.statistic), p_value=float(result.pvalue))
    if n >= 5:
        import warnings

        with warnings.catch_warnings():   # degenerate resamples: left out below
            warnings.simplefilter("ignore", category=RuntimeWarning)
            resampled = bootstrap((x[keep], y[keep]), _rho, paired=True, vectorized=False, method="percentile",
                                  n_resamples=BOOTSTRAP_RESAMPLES,
                                  rng=np.random.default_rng(0)).bootstrap_distribution
        out["ci_low"], out["ci_high"] = (float(v) for v in np.nanpercentile(resampled, [2.5, 97.5]))
    return out


def _median(values: np.ndarray) -> float:
    values = values[np.isfinite(values)]
    return float(np.median(values)) if values.size else math.nan


def headline_statistics(results: xr.Dataset) -> dict[str, Any]:
    """The report's numbers as a dict (see the module docstring)."""
    ok = results["status"].values == "ok"
    crashed = results["crashed"].values == 1
    survivors = ok & (results["crashed"].values == 0)
    offline = results["offline_mse"].values
    stats: dict[str, Any] = {"n_emulators": int(results.sizes["emulator"]), "n_finished": int(ok.sum()),
                             "n_failed": int((results["status"].values == "failed").sum()),
                             "n_crashed": int((ok & crashed).sum()), "n_survivors": int(survivors.sum())}
    for name in ONLINE_ERRORS:
        stats[f"spearman_offline_vs_{name}"] = _spearman(offline[survivors], results[name].values[survivors])
    stats["spearman_offline_vs_days_survived"] = _spearman(offline[ok], results["days_survived"].values[ok])

    by_optimizer = {}
    for name in sorted({str(o) for o in results["optimizer"].values[ok]}):
        pick = ok & (results["optimizer"].values == name)
        n = int(pick.sum())
        by_optimizer[name] = {
            "n": n, "n_crashed": int((pick & crashed).sum()),
            "fraction_survived": float((pick & survivors).sum() / n) if n else math.nan,
            "median_days_survived": _median(results["days_survived"].values[pick]),
            "median_offline_mse": _median(offline[pick]),
            "median_online_error": _median(results["online_error_normalized"].values[pick & survivors]),
        }
    stats["by_optimizer"] = by_optimizer

    error = np.where(survivors, results["online_error_normalized"].values, np.nan)
    for label, pick in (("best", np.nanargmin), ("worst", np.nanargmax)):
        if np.isfinite(error).any():
            i = int(pick(error))
            stats[label] = {key: _scalar(results[key].values[i]) for key in per_emulator_variables(results)}
            stats[label]["emulator"] = int(results["emulator"].values[i])
        else:
            stats[label] = None
    stats["noise_floor"] = {f"{name}{stat}": results.attrs.get(f"noise_floor_{name}{stat}")
                            for name in ("t", "q", "normalized") for stat in ("", "_min", "_max")}
    stats["noise_floor"]["twins"] = results.attrs.get("noise_floor_twins")
    if "online_error_over_noise_floor" in results:
        multiples = results["online_error_over_noise_floor"].values[survivors]
        multiples = multiples[np.isfinite(multiples)]
        stats["survivors_error_over_noise_floor"] = (
            {"min": float(multiples.min()), "median": float(np.median(multiples)), "max": float(multiples.max())}
            if multiples.size else None)
    return stats


def _scalar(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return value


def format_number(value: Any, digits: int = 3) -> str:
    """A number for the report: `digits` significant digits, '–' for none or NaN."""
    if value is None:
        return "–"
    if isinstance(value, (float, np.floating)):
        return "–" if not math.isfinite(value) else f"{value:.{digits}g}"
    return str(value)


def survival_lines(results: xr.Dataset) -> list[str]:
    """The report's section on survival: the log-rank test and the Cox table."""
    from experiments.survival import cox_hazards, logrank_by_optimizer

    test = logrank_by_optimizer(results)
    table, info = cox_hazards(results)
    lines = ["## Survival analysis (statsmodels)", "",
             f"{test['n']} finished coupled runs, {test['events']} crashed; a run alive at the end is censored at "
             "its length. Kaplan-Meier curves with 95 % bands by optimizer in `survival.png`.", "",
             f"Log-rank test of equal survival across the optimizers: chi2 {format_number(test['statistic'])} with "
             f"{test['df']} degrees of freedom, p = {format_number(test['p_value'])}.", ""]
    if table.empty:
        lines += ["No Cox model: too few runs or crashes, or the fit did not converge (a group that never "
                  "crashes, or always first, makes its hazard ratio infinite).", ""]
        return lines
    lines += [f"Cox proportional-hazards model of the crash hazard ({info['n']} runs, {info['events']} crashes; "
              f"optimizers against {info['reference_optimizer']}). A hazard ratio above 1 means earlier crashes, "
              "per unit of the covariate (a factor of 10 for the log10 ones); the last column tests proportional "
              "hazards (correlation of the Schoenfeld residuals with the rank of the crash time; small p: the "
              "ratio changes with time).", "",
              "| covariate | hazard ratio | 95 % interval | p | PH test p |", "|---|---|---|---|---|"]
    for name, row in table.iterrows():
        lines.append(f"| {name} | {format_number(row['hazard_ratio'])} | {format_number(row['lower_95'])}-"
                     f"{format_number(row['upper_95'])} | {format_number(row['p_value'])} "
                     f"| {format_number(row['ph_test_p'])} |")
    lines.append("")
    return lines


def _noise_floor_line(floor: dict[str, Any], multiples: dict[str, float] | None) -> str:
    """The noise floor (the twins' mean and range) and the survivors' online
    errors as multiples of it."""
    twins = floor.get("twins")
    def value(name: str, units: str) -> str:
        return (f"{format_number(floor[name])}{units} [{format_number(floor.get(name + '_min'))}-"
                f"{format_number(floor.get(name + '_max'))}]")

    text = (f"Noise floor ({format_number(twins)} perturbed twin(s) of the reference against the reference; mean, "
            f"range in brackets): T {value('t', ' K')}, q {value('q', ' g/kg')}, normalised {value('normalized', '')}.")
    if multiples:
        text += (f" The survivors' normalised online errors are {format_number(multiples['min'])} to "
                 f"{format_number(multiples['max'])} times it (median {format_number(multiples['median'])}).")
    return text


def format_interval(s: dict[str, float]) -> str:
    """A Spearman result's 95 % interval as ``[low, high]`` (– without one)."""
    if not (math.isfinite(s.get("ci_low", math.nan)) and math.isfinite(s.get("ci_high", math.nan))):
        return "–"
    return f"[{format_number(s['ci_low'])}, {format_number(s['ci_high'])}]"


def _correlation_row(label: str, s: dict[str, float]) -> str:
    return (f"| {label} | {format_number(s['rho'])} | {format_interval(s)} | {format_number(s['p_value'])} | "
            f"{s['n']} |")


def _emulator_row(label: str, e: dict[str, Any] | None) -> str:
    if e is None:
        return f"| {label} | – | – | – | – | – | – | – | – |"
    numbers = " | ".join(format_number(e[key]) for key in ("learning_rate", "offline_mse", "online_error_t",
                                                           "online_error_q", "online_error_normalized"))
    return f"| {label} | {e['emulator']} | {e['optimizer']} | {e['depth']}x{e['width']} | {numbers} |"


def _open_run(path: str):
    from gcm_toy.output import open_output

    return open_output(path) if path and Path(path).is_file() else None


def make_report(results: xr.Dataset, out_dir: str | os.PathLike,
                reference: xr.Dataset | str | os.PathLike | None = None) -> Path:
    """Write ``report.md`` and its figures into `out_dir`; the bias maps of
    the best and the worst survivor need `reference` (Dataset or path) and
    the runs' files (``run_path`` in the results)."""
    from experiments import plots

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stats = headline_statistics(results)
    figures = {
        "offline_vs_online.png": plots.plot_offline_vs_online(results, out / "offline_vs_online.png"),
        "days_survived.png": plots.plot_days_survived(results, out / "days_survived.png"),
        "survival.png": plots.plot_survival_curve(results, out / "survival.png"),
        "by_optimizer.png": plots.plot_optimizer_boxes(results, out / "by_optimizer.png"),
    }
    if reference is not None and not isinstance(reference, xr.Dataset):
        reference = _open_run(os.fspath(reference))
    for label in ("best", "worst"):
        e = stats[label]
        run = _open_run(e["run_path"]) if e is not None and reference is not None else None
        if run is not None:
            name = f"bias_{label}.png"
            figures[name] = plots.plot_zonal_bias(
                run, reference, out / name, title=f"{label} survivor: emulator {e['emulator']} ({e['optimizer']})")

    floor = stats["noise_floor"]
    lines = [
        "# Offline versus online: case-study report", "",
        f"{stats['n_emulators']} emulators: {stats['n_finished']} finished, {stats['n_failed']} failed in "
        f"training or coupling; of the finished, {stats['n_crashed']} coupled runs crashed and "
        f"{stats['n_survivors']} survived the whole run.", "",
        "## Headline: does offline skill predict online behaviour?", "",
        "Spearman rank correlation (scipy.stats.spearmanr) of the offline validation MSE with, and its 95 % "
        f"bootstrap interval ({BOOTSTRAP_RESAMPLES} resamples of the emulators, scipy.stats.bootstrap):", "",
        "| online quantity | rho | 95 % interval | p-value | n |", "|---|---|---|---|---|",
        _correlation_row("online error, normalised (survivors)", stats["spearman_offline_vs_online_error_normalized"]),
        _correlation_row("online error of T [K] (survivors)", stats["spearman_offline_vs_online_error_t"]),
        _correlation_row("online error of q [g/kg] (survivors)", stats["spearman_offline_vs_online_error_q"]),
        _correlation_row("days survived (all finished)", stats["spearman_offline_vs_days_survived"]), "",
        _noise_floor_line(floor, stats.get("survivors_error_over_noise_floor")), "",
        *survival_lines(results),
        "## Stability and error by optimizer", "",
        "| optimizer | runs | crashed | fraction survived | median days survived | median offline MSE "
        "| median online error (survivors) |", "|---|---|---|---|---|---|---|",
    ]
    for name, s in stats["by_optimizer"].items():
        lines.append(f"| {name} | {s['n']} | {s['n_crashed']} | {format_number(s['fraction_survived'])} "
                     f"| {format_number(s['median_days_survived'])} | {format_number(s['median_offline_mse'])} "
                     f"| {format_number(s['median_online_error'])} |")
    lines += ["", "## Best and worst survivors (by normalised online error)", "",
              "| | emulator | optimizer | depth x width | learning rate | offline MSE | online T [K] "
              "| online q [g/kg] | online normalised |", "|---|---|---|---|---|---|---|---|---|",
              _emulator_row("best", stats["best"]), _emulator_row("worst", stats["worst"]), ""]
    from experiments.guard_report import fallback_lines
    lines += fallback_lines(results)
    lines += ["## Figures", ""]
    lines += [f"![{name}]({name})" for name in figures]
    lines.append("")
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path
