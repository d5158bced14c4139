"""The results dataset of a sweep: one row per emulator.

:func:`collect_results` reads ``OUT/results/emulator_XXXX.json`` (written by
:mod:`coupler.sweep`) into an xarray Dataset on the dimension ``emulator``:

- the hyperparameters (``depth``, ``width``, ``optimizer``, ``learning_rate``, ...);
- ``status`` ("ok"/"failed") and ``error``;
- offline metrics: ``offline_mse`` (validation MSE of all outputs, in units
  of the normalized outputs), ``offline_r2`` (validation R², mean of the
  per-variable R² pooled over levels), ``test_mse``, ``test_r2``;
- stability: ``days_survived`` [days], ``run_days`` [days], ``crashed``,
  ``crash_reason``;
- online error: ``online_error_t`` [K], ``online_error_q`` [g kg-1],
  ``online_error_normalized`` [1] (see :mod:`coupler.scoring`);
- conservation: ``water_budget_residual`` [mm day-1] and
  ``energy_budget_residual`` [W m-2] of the coupled run over
  ``budget_days`` (:mod:`coupler.budgets`); NaN for a run that crashed in
  its first output interval, and for records made before the budgets were
  (the attribute ``budget_records`` counts the records that have them);
- ``run_path``: the coupled run's netCDF file (for the bias maps);
- ``epochs_trained`` and ``best_epoch``: how long the training ran (fewer
  epochs than ``epochs``: early stopping) and which epoch's weights it kept;
- ``design_cell`` and ``design_repeat``: an emulator's place in a designed
  sweep (coupler/design.py; -1 when drawn at random), whose factors are
  named by the attribute ``design_factors`` (space-separated).

The noise floor (``OUT/reference/noise_floor.nc``: the twins' mean and
range) goes into the attributes ``noise_floor_t``, ``noise_floor_q``,
``noise_floor_normalized`` (with ``_min`` / ``_max``, and
``noise_floor_twins``), and each emulator's normalized online error as a
multiple of it into ``online_error_over_noise_floor``. The reference run's
budget residuals (``OUT/reference/reference.nc``) go into the attributes
``reference_water_budget_residual``, ``reference_energy_budget_residual``
and ``reference_budget_days``.
:func:`write_results` writes ``results.nc`` and ``results.csv``.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import xarray as xr

from coupler.budgets import BUDGET_COLUMNS, budget_record
from coupler.crash_attribution import crash_record_path, read_crash_summary
from coupler.records import EmulatorResult
from emulators.atomic_files import replacing
from emulators.netcdf_files import check_netcdf_file, write_dataset

# The toy GCM (its Fortran extension) is imported inside the functions that use it, so that importing
# this module does not load it (start-up time).

__all__ = ["COLUMNS", "CRASH_COLUMNS", "results_dataset", "collect_results", "reference_budgets", "write_results", "read_results",
           "per_emulator_variables", "require_columns"]

_HYPERPARAMETERS = ("depth", "width", "leaky_relu_slope", "dropout", "batch_normalization", "optimizer",
                    "learning_rate", "batch_size", "epochs", "seed", "water_conservation")

COLUMNS: dict[str, dict[str, str]] = {
    "depth": {"long_name": "hidden layers", "units": "1"},
    "width": {"long_name": "units per hidden layer", "units": "1"},
    "leaky_relu_slope": {"long_name": "leaky-ReLU negative slope", "units": "1"},
    "dropout": {"long_name": "dropout rate", "units": "1"},
    "batch_normalization": {"long_name": "batch normalization (1 = on)", "units": "1"},
    "optimizer": {"long_name": "optimizer"},
    "learning_rate": {"long_name": "learning rate", "units": "1"},
    "batch_size": {"long_name": "batch size", "units": "1"},
    "epochs": {"long_name": "maximum training epochs", "units": "1"},
    "seed": {"long_name": "training seed", "units": "1"},
    "water_conservation": {"long_name": "column-water-conservation layer at the end of the network (1 = on)",
                           "units": "1"},
    "status": {"long_name": "task status (ok or failed)"},
    "error": {"long_name": "error message of a failed task"},
    "offline_mse": {"long_name": "validation MSE of all outputs, normalized units", "units": "1"},
    "offline_r2": {"long_name": "validation R2, mean over output variables", "units": "1"},
    "test_mse": {"long_name": "test MSE of all outputs, normalized units", "units": "1"},
    "test_r2": {"long_name": "test R2, mean over output variables", "units": "1"},
    "days_survived": {"long_name": "model days the coupled run survived", "units": "days"},
    "run_days": {"long_name": "planned length of the coupled run", "units": "days"},
    "crashed": {"long_name": "1 if the coupled run crashed", "units": "1"},
    "crash_reason": {"long_name": "why the coupled run stopped"},
    "online_error_t": {"long_name": "online RMSE of zonal-mean temperature", "units": "K"},
    "online_error_q": {"long_name": "online RMSE of zonal-mean specific humidity", "units": "g kg-1"},
    "online_error_normalized": {"long_name": "online error of T and q over the reference's spread", "units": "1"},
    "online_error_over_noise_floor": {"long_name": "online_error_normalized as a multiple of the noise floor "
                                                   "(the twins' mean)", "units": "1"},
    **BUDGET_COLUMNS,
    "run_path": {"long_name": "netCDF file of the coupled run"},
    "epochs_trained": {"long_name": "epochs trained (fewer than epochs: stopped early)", "units": "1"},
    "best_epoch": {"long_name": "epoch of the lowest validation loss, whose weights were kept (from 0)", "units": "1"},
    "design_cell": {"long_name": "cell of a designed sweep (-1: drawn at random)", "units": "1"},
    "design_repeat": {"long_name": "repeat (training seed) of the cell in a designed sweep (-1: drawn at random)",
                      "units": "1"},
}
"""Variables of the results dataset and their attributes."""

FALLBACK_COLUMNS: dict[str, dict[str, str]] = {
    "seconds_per_day": {"long_name": "wall time of the coupled run per simulated day", "units": "s day-1"},
    "fallback_days_survived": {"long_name": "model days the coupled run with the guard on fallback survived",
                               "units": "days"},
    "fallback_crashed": {"long_name": "1 if the coupled run with the guard on fallback crashed", "units": "1"},
    "fallback_online_error_t": {"long_name": "online_error_t of the run with the guard on fallback", "units": "K"},
    "fallback_online_error_q": {"long_name": "online_error_q of the run with the guard on fallback",
                                "units": "g kg-1"},
    "fallback_online_error_normalized": {"long_name": "online_error_normalized of the run with the guard on "
                                                      "fallback", "units": "1"},
    "fallback_flagged_fraction": {"long_name": "mean fraction of columns and steps the guard flagged out of "
                                               "distribution", "units": "1"},
    "fallback_fraction": {"long_name": "mean fraction of columns and steps on the reference physics "
                                       "(guard on fallback)", "units": "1"},
    "fallback_seconds_per_day": {"long_name": "wall time of the run with the guard on fallback per simulated day",
                                 "units": "s day-1"},
}
"""Variables of a sweep whose coupled runs were also made with the guard on
fallback (``[coupled] fallback_run``); absent otherwise."""

FINETUNE_COLUMNS: dict[str, dict[str, str]] = {
    "finetune_days_survived": {"long_name": "model days the coupled run with online fine-tuning survived",
                               "units": "days"},
    "finetune_crashed": {"long_name": "1 if the coupled run with online fine-tuning crashed", "units": "1"},
    "finetune_online_error_t": {"long_name": "online_error_t of the run with online fine-tuning", "units": "K"},
    "finetune_online_error_q": {"long_name": "online_error_q of the run with online fine-tuning",
                                "units": "g kg-1"},
    "finetune_online_error_normalized": {"long_name": "online_error_normalized of the run with online "
                                                      "fine-tuning", "units": "1"},
    "finetune_teacher_fraction": {"long_name": "fraction of columns and steps the reference physics ran on as "
                                               "the fine-tuning teacher", "units": "1"},
    "finetune_loss_first": {"long_name": "online fine-tuning loss (MSE of the normalized outputs) in the first "
                                         "output interval with a round", "units": "1"},
    "finetune_loss_last": {"long_name": "online fine-tuning loss in the last output interval with a round",
                           "units": "1"},
    "finetune_stopped": {"long_name": "1 if fine-tuning stopped on a non-finite loss (last good weights kept)",
                         "units": "1"},
    "finetune_learning_rate": {"long_name": "Adam's learning rate of the online fine-tuning", "units": "1"},
    "finetune_columns": {"long_name": "columns per fine-tuning round", "units": "1"},
    "finetune_every_steps": {"long_name": "model steps between fine-tuning rounds", "units": "1"},
    "finetune_seconds_per_day": {"long_name": "wall time of the run with online fine-tuning per simulated day",
                                 "units": "s day-1"},
}
"""Variables of a sweep whose coupled runs were also made with online
fine-tuning (``[coupled] finetune_run``); absent otherwise."""

CRASH_COLUMNS: dict[str, dict[str, str]] = {
    "crash_ood": {"long_name": "1 if the crash columns' inputs were flagged out of the training distribution in "
                               "the last day before the crash (-1: no crash record)", "units": "1"},
    "crash_hours_ood": {"long_name": "hours from the first flagged input on the crash columns to the crash",
                        "units": "hours"},
    "crash_ood_whole_record": {"long_name": "1 if the crash columns were flagged from the first recorded step on "
                                            "(the drift began before the recorded day)", "units": "1"},
    "crash_distance_ratio": {"long_name": "largest guard distance on the crash columns over the last day, as a "
                                          "multiple of the guard's threshold", "units": "1"},
    "crash_max_abs_z": {"long_name": "largest |z| of an input on the crash columns over the last day", "units": "1"},
    "crash_flagged_fraction_all": {"long_name": "fraction of all columns and steps flagged over the crash's last "
                                                "day (base rate)", "units": "1"},
    "crash_mse_crash_columns": {"long_name": "MSE of the emulator against the reference physics on the crash "
                                             "columns' inputs over the last day, normalized units", "units": "1"},
    "crash_mse_all_columns": {"long_name": "MSE of the emulator against the reference physics on all columns over "
                                           "the crash's last day, normalized units", "units": "1"},
}
"""Variables of a sweep whose crashed runs have crash records
(:mod:`coupler.crash_attribution`); absent when none has."""

_DERIVED = ("online_error_over_noise_floor",)
"""Columns computed from the others and the noise floor, not read from a record."""

_STRINGS = ("optimizer", "status", "error", "crash_reason", "run_path")

_RUN_COLUMNS = ("days_survived", "crashed", "online_error_t", "online_error_q", "online_error_normalized",
                "seconds_per_day")
"""The columns of a coupled run, again for the runs with the guard on fallback and with fine-tuning."""

_FINETUNE_KEYS = ("teacher_fraction", "loss_first", "loss_last", "stopped", "learning_rate", "columns",
                  "every_steps")

# Where each column comes from: (column, source, key). A source is a part of
# an emulator's result record: "record" itself, one of its tables
# ("hyperparameters", "offline", "artifacts", "design"), or a coupled run's
# EmulatorResult ("online", "online_fallback", "online_finetune") whose
# attribute is `key` ("budgets.NAME", "guard.NAME", "finetune.NAME" and
# "crash.NAME" look into its tables).
_SOURCES: tuple[tuple[str, str, str], ...] = (
    *((name, "hyperparameters", name) for name in _HYPERPARAMETERS),
    ("status", "record", "status"), ("error", "record", "error"),
    ("offline_mse", "offline", "validation_mse"), ("offline_r2", "offline", "validation_r2"),
    ("test_mse", "offline", "test_mse"), ("test_r2", "offline", "test_r2"),
    *((name, "online", name) for name in ("days_survived", "run_days", "crashed", "crash_reason", "online_error_t",
                                           "online_error_q", "online_error_normalized", "seconds_per_day")),
    *((name, "online", f"budgets.{name}") for name in BUDGET_COLUMNS),
    ("run_path", "artifacts", "run"),
    ("epochs_trained", "offline", "epochs"), ("best_epoch", "offline", "best_epoch"),
    ("design_cell", "design", "cell"), ("design_repeat", "design", "repeat"),
    *((f"fallback_{name}", "online_fallback", name) for name in _RUN_COLUMNS),
    ("fallback_flagged_fraction", "online_fallback", "guard.mean_flagged_fraction"),
    ("fallback_fraction", "online_fallback", "guard.mean_fallback_fraction"),
    *((f"finetune_{name}", "online_finetune", name) for name in _RUN_COLUMNS),
    *((f"finetune_{key}", "online_finetune", f"finetune.{key}") for key in _FINETUNE_KEYS),
    ("crash_ood", "online", "crash.ood_before_crash"), ("crash_hours_ood", "online", "crash.hours_ood_before_crash"),
    ("crash_ood_whole_record", "online", "crash.ood_whole_record"),
    ("crash_distance_ratio", "online", "crash.max_distance_ratio"), ("crash_max_abs_z", "online", "crash.max_abs_z"),
    ("crash_flagged_fraction_all", "online", "crash.flagged_fraction_all_columns"),
    ("crash_mse_crash_columns", "online", "crash.mse_crash_columns"),
    ("crash_mse_all_columns", "online", "crash.mse_all_columns"),
)


def _lookup(source: Any, key: str) -> Any:
    """`key` of a record's table (a dict) or of an EmulatorResult; "a.b": b of its table a."""
    name, _, rest = key.partition(".")
    value = source.get(name) if isinstance(source, Mapping) else getattr(source, name)
    return _lookup(value or {}, rest) if rest else value


def _row(record: Mapping[str, Any]) -> dict[str, Any]:
    sources = {"record": record,
               **{name: record.get(name) or {} for name in ("hyperparameters", "offline", "artifacts", "design")},
               **{name: EmulatorResult.from_record(record.get(name))
                  for name in ("online", "online_fallback", "online_finetune")}}
    row = {column: _lookup(sources[source], key) for column, source, key in _SOURCES}
    if sources["hyperparameters"] and row["water_conservation"] is None:
        row["water_conservation"] = False    # recorded before the hyperparameter existed: no layer
    return row


def _column(name: str, values: list[Any]) -> np.ndarray:
    if name in _STRINGS:
        return np.array(["" if v is None else str(v) for v in values], dtype=object)
    if name in ("batch_normalization", "crashed", "fallback_crashed", "finetune_crashed", "finetune_stopped", "water_conservation", "crash_ood",
                "crash_ood_whole_record"):
        return np.array([-1 if v is None else int(bool(v)) for v in values], dtype=np.int8)
    if name in ("depth", "width", "batch_size", "epochs", "seed", "epochs_trained", "best_epoch", "design_cell",
                "design_repeat"):
        return np.array([-1 if v is None else int(v) for v in values], dtype=np.int64)
    return np.array([math.nan if v is None else float(v) for v in values], dtype=np.float64)


def results_dataset(records: Sequence[Mapping[str, Any]], attrs: Mapping[str, Any] | None = None) -> xr.Dataset:
    """The results Dataset of result records (as written by the sweep),
    sorted by emulator index. Missing numbers are NaN (-1 for integers and
    flags), missing text "". """
    records = sorted(records, key=lambda r: int(r["index"]))
    rows = [_row(r) for r in records]
    index = np.array([int(r["index"]) for r in records], dtype=np.int64)
    columns = dict(COLUMNS)
    if any(r.get("online_finetune") for r in records):
        columns.update(FINETUNE_COLUMNS)
        columns["seconds_per_day"] = FALLBACK_COLUMNS["seconds_per_day"]
    if any(r.get("online_fallback") for r in records):
        columns.update(FALLBACK_COLUMNS)
    elif any((r.get("online") or {}).get("seconds_per_day") is not None for r in records):
        columns["seconds_per_day"] = FALLBACK_COLUMNS["seconds_per_day"]
    if any((r.get("online") or {}).get("crash") for r in records):
        columns.update(CRASH_COLUMNS)
    data = {name: ("emulator", _column(name, [row[name] for row in rows]), dict(columns[name]))
            for name in columns if name not in _DERIVED}
    ds = xr.Dataset(data, coords={"emulator": ("emulator", index, {"long_name": "emulator index in the sweep",
                                                                  "units": "1"})})
    ds.attrs = {"title": "offline and online scores of the emulators of a sweep",
                "missing_values": "NaN for numbers, -1 for integers and flags, empty text",
                "budget_records": sum(1 for r in records if "water_budget_residual" in (r.get("online") or {})),
                **dict(attrs or {})}
    factors = {tuple((r.get("design") or {}).get("factors") or ()) for r in records}
    if len(factors) == 1 and all(factors):
        ds.attrs["design_factors"] = " ".join(next(iter(factors)))
    floor = ds.attrs.get("noise_floor_normalized", math.nan)
    ds["online_error_over_noise_floor"] = (ds["online_error_normalized"] / floor if floor and floor > 0
                                           else ds["online_error_normalized"] * math.nan)
    ds["online_error_over_noise_floor"].attrs = dict(COLUMNS["online_error_over_noise_floor"])
    return ds


def collect_results(out_dir: str | os.PathLike) -> xr.Dataset:
    """Read every ``OUT/results/emulator_*.json`` (and the noise floor in
    ``OUT/reference/noise_floor.nc`` if present) into the results Dataset."""
    out = Path(out_dir)
    records = []
    for path in sorted((out / "results").glob("emulator_*.json")):
        with open(path) as fh:
            records.append(_with_crash_record(json.load(fh), out))
    attrs: dict[str, Any] = {}
    floor_path = out / "reference" / "noise_floor.nc"
    if floor_path.is_file():
        with xr.open_dataset(floor_path) as floor:
            for name in ("t", "q", "normalized"):
                for stat in ("", "_min", "_max"):
                    if f"online_error_{name}{stat}" in floor:
                        attrs[f"noise_floor_{name}{stat}"] = float(floor[f"online_error_{name}{stat}"])
            attrs["noise_floor_twins"] = int(floor.attrs.get("n_twins", 1))
    attrs.update(reference_budgets(out / "reference" / "reference.nc"))
    return results_dataset(records, attrs)


def _with_crash_record(record: dict[str, Any], out: Path) -> dict[str, Any]:
    """`record` with the summary of its run's crash record (made during the
    run, or afterwards by ``fkb crash-report``) if it has none yet."""
    online = record.get("online")
    if not online or not online.get("crashed") or online.get("crash"):
        return record
    run = Path((record.get("artifacts") or {}).get("run") or "")
    if not run.is_file():
        run = out / "emulators" / f"emulator_{int(record['index']):04d}" / "coupled.nc"
    crash = read_crash_summary(crash_record_path(run))
    if crash:
        online["crash"] = crash
    return record


def require_columns(results: xr.Dataset, names: Sequence[str], purpose: str) -> None:
    """ValueError, in one line, naming the first of `names` the results lack
    (a results file of an older version, or of another kind of sweep), and
    what needed it (`purpose`)."""
    missing = [name for name in names if name not in results.variables]
    if missing:
        raise ValueError(f"the results have no column {missing[0]!r}, which {purpose} needs (a results file of an "
                         "older version? `fkb report DIR` on the sweep's folder collects them again from its "
                         "emulators' records)")


def reference_budgets(path: str | os.PathLike) -> dict[str, float]:
    """The reference run's budget residuals as the results' attributes
    (``reference_water_budget_residual``, ...); none without the run or
    for a run without the moist output."""
    from gcm_toy.output import open_output

    if not Path(path).is_file():
        return {}
    with open_output(path) as run:
        budgets = budget_record(run)
    if not math.isfinite(budgets["water_budget_residual"]):
        return {}
    return {f"reference_{name}": value for name, value in budgets.items()}


def per_emulator_variables(results: xr.Dataset) -> list[str]:
    """The variables with one value per emulator (not the tables on other
    dimensions, such as the survival analysis's on ``covariate``)."""
    return [name for name in results.data_vars if results[name].dims == ("emulator",)]


def write_results(results: xr.Dataset, out_dir: str | os.PathLike, stem: str = "results") -> tuple[Path, Path]:
    """Write ``OUT/results.nc`` and ``OUT/results.csv`` (one row per
    emulator); each written whole (emulators.atomic_files)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    nc_path, csv_path = out / f"{stem}.nc", out / f"{stem}.csv"
    write_dataset(results, nc_path)
    with replacing(csv_path) as tmp:
        results[per_emulator_variables(results)].to_dataframe().to_csv(tmp)   # one row per emulator
    return nc_path, csv_path


def read_results(path: str | os.PathLike) -> xr.Dataset:
    """A results dataset from ``results.nc`` or a sweep folder."""
    path = Path(path)
    if path.is_dir():
        if not (path / "results.nc").is_file():
            return collect_results(path)
        path = path / "results.nc"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such results file")
    check_netcdf_file(path)
    return xr.load_dataset(path)
