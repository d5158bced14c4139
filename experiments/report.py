"""The case study's report: headline numbers, tables and figures.

:func:`headline_statistics` computes from the results Dataset
(:mod:`coupler.results`):

- Spearman's rank correlation (``scipy.stats.spearmanr``, with its p-value)
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

__all__ = ["headline_statistics", "make_report", "ONLINE_ERRORS"]

ONLINE_ERRORS = ("online_error_normalized", "online_error_t", "online_error_q")


def _spearman(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    from scipy.stats import spearmanr

    keep = np.isfinite(x) & np.isfinite(y)
    n = int(keep.sum())
    if n < 3 or np.ptp(x[keep]) == 0 or np.ptp(y[keep]) == 0:
        return {"rho": math.nan, "p_value": math.nan, "n": n}
    result = spearmanr(x[keep], y[keep])
    return {"rho": float(result.statistic), "p_value": float(result.pvalue), "n": n}


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
            stats[label] = {key: _scalar(results[key].values[i]) for key in results.data_vars
                            if results[key].dims == ("emulator",)}
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


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, (float, np.floating)):
        return "–" if not math.isfinite(value) else f"{value:.{digits}g}"
    return str(value)


def _noise_floor_line(floor: dict[str, Any], multiples: dict[str, float] | None) -> str:
    """The noise floor (the twins' mean and range) and the survivors' online
    errors as multiples of it."""
    twins = floor.get("twins")
    text = (f"Noise floor ({_fmt(twins)} perturbed twin(s) of the reference against the reference; mean, range in "
            f"brackets): T {_fmt(floor['t'])} K [{_fmt(floor.get('t_min'))}-{_fmt(floor.get('t_max'))}], "
            f"q {_fmt(floor['q'])} g/kg [{_fmt(floor.get('q_min'))}-{_fmt(floor.get('q_max'))}], normalised "
            f"{_fmt(floor['normalized'])} [{_fmt(floor.get('normalized_min'))}-{_fmt(floor.get('normalized_max'))}].")
    if multiples:
        text += (f" The survivors' normalised online errors are {_fmt(multiples['min'])} to {_fmt(multiples['max'])} "
                 f"times it (median {_fmt(multiples['median'])}).")
    return text


def _correlation_row(label: str, s: dict[str, float]) -> str:
    return f"| {label} | {_fmt(s['rho'])} | {_fmt(s['p_value'])} | {s['n']} |"


def _emulator_row(label: str, e: dict[str, Any] | None) -> str:
    if e is None:
        return f"| {label} | – | – | – | – | – | – | – | – |"
    return (f"| {label} | {e['emulator']} | {e['optimizer']} | {e['depth']}x{e['width']} | {_fmt(e['learning_rate'])} "
            f"| {_fmt(e['offline_mse'])} | {_fmt(e['online_error_t'])} | {_fmt(e['online_error_q'])} "
            f"| {_fmt(e['online_error_normalized'])} |")


def _open_run(path: str):
    from gcm_toy.output import open_output

    return open_output(path) if path and Path(path).is_file() else None


def make_report(results: xr.Dataset, out_dir: str | os.PathLike,
                reference: xr.Dataset | str | os.PathLike | None = None) -> Path:
    """Write ``report.md`` and its figures into `out_dir`; the bias maps of
    the best and the worst survivor need `reference` (Dataset or path) and
    the runs' files (``run_path`` in the results)."""
    from experiments import plots
    from experiments.survival import survival_lines

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
        "Spearman rank correlation (scipy.stats.spearmanr) of the offline validation MSE with:", "",
        "| online quantity | rho | p-value | n |", "|---|---|---|---|",
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
        lines.append(f"| {name} | {s['n']} | {s['n_crashed']} | {_fmt(s['fraction_survived'])} "
                     f"| {_fmt(s['median_days_survived'])} | {_fmt(s['median_offline_mse'])} "
                     f"| {_fmt(s['median_online_error'])} |")
    lines += ["", "## Best and worst survivors (by normalised online error)", "",
              "| | emulator | optimizer | depth x width | learning rate | offline MSE | online T [K] "
              "| online q [g/kg] | online normalised |", "|---|---|---|---|---|---|---|---|---|",
              _emulator_row("best", stats["best"]), _emulator_row("worst", stats["worst"]), "",
              "## Figures", ""]
    lines += [f"![{name}]({name})" for name in figures]
    lines.append("")
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path
