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

:func:`conservation_statistics` gathers the coupled runs' water and energy
budget residuals (:mod:`coupler.budgets`) beside the reference run's,
overall and with and without the column-water-conservation layer, and the
log-rank test of survival by that layer when the sweep drew both.

:func:`make_report` writes ``report.md`` and the figures of
:mod:`experiments.plots` into a folder. Results that lack a column the
report needs (a results.nc of another version) are refused with a
ValueError naming the columns; results recorded before the budgets were
get a report that says the budgets are absent.
"""
from __future__ import annotations

import math
import os
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from coupler.budgets import BUDGET_COLUMNS
from coupler.results import per_emulator_variables, require_columns
from emulators.atomic_files import write_text_replacing
from emulators.progress import progress_bar
from experiments import plots
from experiments.designed import designed_lines, is_designed
from experiments.survival import cox_hazards, logrank_by, logrank_by_optimizer

# SciPy and the toy GCM (its Fortran extension) are imported inside the functions that use them, so
# that importing this module does not load them (start-up time); the report's section modules
# (crash_report, finetune_report, guard_report) import this module, so it imports them inside
# make_report.

__all__ = ["headline_statistics", "conservation_statistics", "make_report", "format_interval", "check_reportable",
           "format_number", "format_median",
           "ONLINE_ERRORS", "REPORT_COLUMNS", "MIN_FINISHED"]

ONLINE_ERRORS = ("online_error_normalized", "online_error_t", "online_error_q")

REPORT_COLUMNS = ("status", "crashed", "offline_mse", "days_survived", "optimizer", "learning_rate", "depth", "width",
                  "dropout", "batch_normalization", *ONLINE_ERRORS)
"""Columns of the results the report reads (a results file lacking one is refused in one line; the
budget columns and ``water_conservation`` are optional: results of before them report without)."""

MIN_FINISHED = 2
"""Finished emulators a report's statistics need at least."""


def check_reportable(results: xr.Dataset) -> None:
    """ValueError, in one line, for results the report cannot be made of: a
    missing column (a results file of an older version) or fewer than
    :data:`MIN_FINISHED` finished emulators."""
    require_columns(results, REPORT_COLUMNS, "the report")
    finished = int((results["status"].values == "ok").sum())
    if finished < MIN_FINISHED:
        raise ValueError(f"{finished} of {results.sizes['emulator']} emulators finished; a report needs at least "
                         f"{MIN_FINISHED} finished runs")


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
    require_columns(results, REPORT_COLUMNS, "the report")
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


def _spread(values: np.ndarray) -> dict[str, float]:
    """Median, smallest and largest of the finite values, and their number."""
    values = values[np.isfinite(values)]
    if not values.size:
        return {"n": 0, "median": math.nan, "min": math.nan, "max": math.nan}
    return {"n": int(values.size), "median": float(np.median(values)), "min": float(values.min()),
            "max": float(values.max())}


def conservation_statistics(results: xr.Dataset) -> dict[str, Any]:
    """The coupled runs' budget residuals beside the reference's:
    ``coupled`` (whether any run was coupled), ``recorded`` (whether the
    results hold budgets at all: records of before them do not), ``reference`` (the reference run's residuals and period,
    None each if unknown), per group of finished runs (``all``, and
    ``without_layer`` / ``with_layer`` when the sweep drew both) the spread
    of ``water`` [mm day-1] and ``energy`` [W m-2] residuals, runs, runs
    without a budget (crashed in their first output interval) and
    survivors; and ``logrank``, the test of equal survival with and without
    the layer (None unless both were drawn)."""
    reference = {name: results.attrs.get(f"reference_{name}") for name in BUDGET_COLUMNS}
    recorded = all(name in results for name in BUDGET_COLUMNS) and int(results.attrs.get("budget_records", 0)) > 0
    stats: dict[str, Any] = {"recorded": recorded, "reference": reference, "groups": {}, "logrank": None,
                             "coupled": bool(np.isfinite(results["days_survived"].values).any())}
    ok = results["status"].values == "ok"
    survivors = ok & (results["crashed"].values == 0)
    layer = results["water_conservation"].values if "water_conservation" in results else np.zeros(ok.size)
    groups = {"all": ok}
    if (ok & (layer == 0)).any() and (ok & (layer == 1)).any():
        groups.update(without_layer=ok & (layer == 0), with_layer=ok & (layer == 1))
        stats["logrank"] = logrank_by(results, "water_conservation")
    stats["layer_values"] = sorted({int(v) for v in layer[ok]})
    if not recorded:
        return stats
    for label, pick in groups.items():
        water = results["water_budget_residual"].values[pick]
        stats["groups"][label] = {"n": int(pick.sum()), "no_budget": int((~np.isfinite(water)).sum()),
                                  "survived": int((pick & survivors).sum()), "water": _spread(water),
                                  "energy": _spread(results["energy_budget_residual"].values[pick])}
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


def format_median(values: np.ndarray, digits: int = 3) -> str:
    """The median of the finite `values` for the report ('–' for none)."""
    return format_number(_median(np.asarray(values, dtype=np.float64)), digits)


def survival_lines(results: xr.Dataset) -> list[str]:
    """The report's section on survival: the log-rank test and the Cox table."""
    test = logrank_by_optimizer(results)
    table, info = cox_hazards(results)
    lines = ["## Survival analysis (statsmodels)", "",
             f"{test['n']} finished coupled runs, {test['events']} crashed; a run alive at the end is censored at "
             "its length. Kaplan-Meier curves with 95 % bands by optimizer in `survival.png`.", "",
             f"Log-rank test of equal survival across the optimizers: chi2 {format_number(test['statistic'])} with "
             f"{test['df']} degrees of freedom, p = {format_number(test['p_value'])}.", ""]
    if table.empty:
        lines += [f"No Cox model: {info['reason']}.", ""]
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


_GROUP_LABELS = {"all": "emulators, all finished", "without_layer": "without the water-conservation layer",
                 "with_layer": "with the water-conservation layer"}


def conservation_lines(results: xr.Dataset) -> list[str]:
    """The report's section on conservation: the budget residuals of the
    coupled runs beside the reference's, and survival by the layer."""
    stats = conservation_statistics(results)
    ref = stats["reference"]
    lines = ["## Conservation: column water and energy budgets", ""]
    reference_text = (f"the reference run leaves {format_number(ref['water_budget_residual'])} mm/day of water and "
                      f"{format_number(ref['energy_budget_residual'])} W/m2 of energy over its "
                      f"{format_number(ref['budget_days'])} days"
                      if ref["water_budget_residual"] is not None else "the reference run's budgets are unknown "
                      "(no reference.nc beside the results)")
    if not stats["coupled"]:
        lines += ["No coupled runs in these results (an offline sweep, or every task failed): no budgets.", ""]
    elif not stats["recorded"]:
        lines += [f"**Budget residuals: absent.** These results were recorded before the coupled runs' budgets "
                  "were (coupler/budgets.py), so the emulators' residuals are not known; couple them again (a "
                  f"sweep of this version, or fkb couple) to have them. For comparison, {reference_text}.", ""]
    else:
        lines += ["Global-mean budget residuals of each coupled run from its first output record to its last "
                  "(to the crash; coupler/budgets.py): water, the change of the column's water beyond E - P "
                  "[mm/day]; energy, the change of its c_p T + L_v q + kinetic energy beyond the net radiation "
                  "into the column plus SHFLX and LHFLX [W/m2], which includes L_v times the water residual "
                  "(1 mm/day = 28.9 W/m2); both per kilogram of air times the column mass, the form in which "
                  "the toy GCM (whose mass fixer turns net evaporation into mass) closes them. The reference "
                  "physics closes both column by column; what the reference run leaves is the dynamical "
                  "core's.", "",
                  "| runs | n | water residual [mm/day], median [range] | energy residual [W/m2], median [range] |",
                  "|---|---|---|---|",
                  f"| reference run | 1 | {format_number(ref['water_budget_residual'])} | "
                  f"{format_number(ref['energy_budget_residual'])} |"]
        for label, group in stats["groups"].items():
            w, e = group["water"], group["energy"]
            lines.append(f"| {_GROUP_LABELS[label]} | {w['n']} | {format_number(w['median'])} "
                         f"[{format_number(w['min'])}, {format_number(w['max'])}] | {format_number(e['median'])} "
                         f"[{format_number(e['min'])}, {format_number(e['max'])}] |")
        lines.append("")
        missing = stats["groups"]["all"]["no_budget"]
        if missing:
            lines += [f"{missing} finished run(s) crashed within their first output interval and have no budget "
                      "(a tendency needs two records).", ""]
    test = stats["logrank"]
    if test is not None:
        groups = test["groups"]
        without, with_ = groups.get("0", {"n": 0, "survived": 0}), groups.get("1", {"n": 0, "survived": 0})
        lines += [f"Survival with the water-conservation layer: {with_['survived']} of {with_['n']} runs survived, "
                  f"without it {without['survived']} of {without['n']}; log-rank test of equal survival: chi2 "
                  f"{format_number(test['statistic'])} with {test['df']} degree(s) of freedom, p = "
                  f"{format_number(test['p_value'])}{_cox_note(results)}.", ""]
    elif stats["layer_values"]:
        state = "with" if stats["layer_values"] == [1] else "without"
        lines += [f"Every finished emulator was drawn {state} the water-conservation layer: its effect on survival "
                  "is not measured here (draw both with `water_conservation = [false, true]` in the sweep's "
                  "[space]).", ""]
    return lines


def _cox_note(results: xr.Dataset) -> str:
    """The layer's hazard ratio in the Cox model (results with the survival
    analysis merged in), as a parenthesis; empty without one."""
    if "covariate" not in results.coords or "water_conservation" not in results["covariate"].values:
        return " (no Cox model with the layer: too few crashes, or no convergence)"
    row = results.sel(covariate="water_conservation")
    return (f"; in the Cox model above, with the other covariates, the layer's hazard ratio is "
            f"{format_number(float(row['cox_hazard_ratio']))} [{format_number(float(row['cox_hazard_ratio_lower']))}-"
            f"{format_number(float(row['cox_hazard_ratio_upper']))}], p = {format_number(float(row['cox_p_value']))}")


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


def _plot_bias(path: Path, *, label: str, survivor: dict[str, Any], reference: xr.Dataset) -> Path | None:
    """The zonal-mean bias map of a survivor's run (None when its run file
    is not there)."""
    from experiments import plots

    run = _open_run(survivor["run_path"])
    if run is None:
        return None
    return plots.plot_zonal_bias(run, reference, path, title=f"{label} survivor: emulator {survivor['emulator']} "
                                                            f"({survivor['optimizer']})")


def make_report(results: xr.Dataset, out_dir: str | os.PathLike,
                reference: xr.Dataset | str | os.PathLike | None = None,
                sections: list[str] | None = None, progress: bool | None = None) -> Path:
    """Write ``report.md`` and its figures into `out_dir`; the bias maps of
    the best and the worst survivor need `reference` (Dataset or path) and
    the runs' files (``run_path`` in the results). Results missing a column
    are refused (ValueError, one line); with fewer than :data:`MIN_FINISHED`
    finished emulators the report says so and nothing more. A designed
    sweep's report has its designed comparison (experiments/designed.py).
    `sections`: more lines, before the figures (e.g. experiments/warming.py's).
    `progress`: a bar of the statistics and figures (None: on a terminal)."""
    require_columns(results, REPORT_COLUMNS, "the report")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    finished = int((results["status"].values == "ok").sum())
    if finished < MIN_FINISHED:
        path = out / "report.md"
        write_text_replacing(path, "# Offline versus online: case-study report\n\n"
                             f"{finished} of {results.sizes['emulator']} emulators finished: no statistics, tables "
                             f"or figures before at least {MIN_FINISHED} have.\n")
        return path
    bar = progress_bar(10, "report", unit="step", progress=progress)
    stats = headline_statistics(results)
    bar.update(1)
    table, info = cox_hazards(results)
    bar.update(1)
    designed = is_designed(results)
    if reference is not None and not isinstance(reference, xr.Dataset):
        reference = _open_run(os.fspath(reference))
    plotters = {
        "offline_vs_online.png": lambda path: plots.plot_offline_vs_online(results, path),
        "days_survived.png": lambda path: plots.plot_days_survived(results, path),
        "survival.png": lambda path: plots.plot_survival_curve(results, path),
        "by_optimizer.png": lambda path: plots.plot_optimizer_boxes(results, path),
    }
    if len(table):
        plotters["hazard_ratios.png"] = lambda path: plots.plot_hazard_ratios(table, info, path)
    if "crash_ood" in results and (results["crash_ood"].values >= 0).any():
        plotters["crash_attribution.png"] = lambda path: plots.plot_crash_attribution(results, path)
    if designed:
        plotters["design.png"] = lambda path: plots.plot_design_grid(results, path)
    for label in ("best", "worst"):
        e = stats[label]
        if e is not None and reference is not None:
            plotters[f"bias_{label}.png"] = partial(_plot_bias, label=label, survivor=e, reference=reference)
    bar.reset(total=2 + len(plotters))
    bar.update(2)
    figures = {}
    for name, plot in plotters.items():
        drawn = plot(out / name)
        if drawn is not None:
            figures[name] = drawn
        bar.update(1)
    bar.close()

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
        *(designed_lines(results) if designed else []),
        *conservation_lines(results),
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
    from experiments.crash_report import crash_lines
    from experiments.finetune_report import finetune_lines
    from experiments.guard_report import fallback_lines
    lines += fallback_lines(results)
    lines += finetune_lines(results)
    lines += crash_lines(results)
    lines += list(sections or [])
    lines += ["## Figures", ""]
    lines += [f"![{name}]({name})" for name in figures]
    lines.append("")
    path = out / "report.md"
    write_text_replacing(path, "\n".join(lines))
    return path
