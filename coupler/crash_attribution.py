"""Why a coupled run crashed: the emulator's inputs on the crash columns over
its last day, how far they were from its training data, and what the
reference physics would have done with them.

A crash is a state that broke one of the toy GCM's bounds (temperature,
wind, surface pressure) or a network output that was not finite. Which
columns broke them is known only at the end, so the last day is *replayed*:
restarts are bit for bit, so the run is taken up again from a rolling
checkpoint (:func:`coupler.sweep.coupled_run` keeps the last two, a day
apart) or from its start, and stepped one step at a time to the crash,
keeping the emulator's inputs and outputs of every column. At every step
the same state is handed to a second model that runs the reference physics
(its checkpoint is loaded there and one step is taken), so the emulator's
tendencies can be set beside the reference physics' on exactly the inputs
the emulator saw. The replay must crash at the recorded step, or the
record is refused.

What is kept (``coupled_crash.nc`` beside the run, :data:`CRASH_FILE`):
the inputs ``x``, the emulator's outputs and the reference's on the crash
columns (those that broke a bound at the crash, the reported place first,
at most :data:`MAX_COLUMNS`) over the last day, with the guard's scores of
those inputs against the training data the model file carries
(emulators/input_statistics.py: the largest ``|z|``, the low-rank
Mahalanobis distance, inputs outside the widened training range, the flag
with the GCM's default margin and factor); and as attributes the summary:
whether the crash columns' inputs were flagged before the crash and since
when, the largest distance as a multiple of the flag's threshold, the
fraction of *all* columns flagged over the same day (the base rate the
first number must be read against), and the emulator's mean squared error
against the reference physics on the crash columns and on all columns, in
the normalized output space of its offline validation error.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from emulators.formats import load_spec
from emulators.input_statistics import DEFAULT_DISTANCE_FACTOR, DEFAULT_MARGIN, guard_scores
from emulators.interface import input_names, output_names
from emulators.netcdf_files import write_dataset

# The toy GCM (its Fortran extension) is imported inside the functions that use it, so that importing
# this module does not load it (start-up time); coupler.runs imports this module, so this module
# imports it inside functions.

__all__ = ["CRASH_FILE", "MAX_COLUMNS", "ReplayError", "crash_columns", "attribute_crash", "crash_record_path",
           "rewind_dir", "attribute_run", "format_crash_report", "crash_summary", "read_crash_summary"]

CRASH_FILE = "coupled_crash.nc"
"""The crash record of ``coupled.nc`` (a run ``NAME.nc`` has ``NAME_crash.nc``)."""
MAX_COLUMNS = 64
"""At most this many crash columns are kept (the reported place first)."""
RECORD_DAYS = 1.0
"""The replayed and recorded time before the crash [days]."""


class ReplayError(RuntimeError):
    """The replay did not reproduce the recorded crash."""


def crash_record_path(run_path: str | os.PathLike) -> Path:
    """``NAME_crash.nc`` beside the run ``NAME.nc``."""
    run_path = Path(run_path)
    return run_path.with_name(f"{run_path.stem}_crash.nc")


def rewind_dir(record_path: str | os.PathLike) -> Path:
    """The folder of the rolling checkpoints a coupled run keeps for its crash record."""
    record_path = Path(record_path)
    return record_path.with_name(f".{record_path.stem}.rewind")


def crash_columns(model, failure) -> list[int]:
    """Indices (C order of (lat, lon), as the emulator's batches) of the
    columns whose state breaks a bound of `model`'s configuration (or is not
    finite) after `failure`, the reported place first, at most
    :data:`MAX_COLUMNS`, worst first by how far beyond its bound."""
    c = model.config
    f = model.fields()
    wind = np.hypot(f["u"], f["v"])
    excess = np.zeros(f["ps"].shape)
    with np.errstate(invalid="ignore"):
        for value, low, high in ((f["t"], c.t_min, c.t_max), (wind, -np.inf, c.wind_max),
                                 (f["ps"][None], c.ps_min, c.ps_max)):
            scale = high - low if np.isfinite(high - low) else high
            beyond = np.maximum(low - value, value - high) / scale
            beyond = np.where(np.isfinite(value), beyond, np.inf)
            excess = np.maximum(excess, np.max(beyond, axis=0))
    order = [int(i) for i in np.argsort(-excess, axis=None, kind="stable") if excess.flat[i] > 0]
    first = _nearest_column(model.grid, failure.lat, failure.lon)
    if first is not None:
        order = [first] + [i for i in order if i != first]
    return order[:MAX_COLUMNS]


def _nearest_column(grid, lat: float, lon: float) -> int | None:
    if not (math.isfinite(lat) and math.isfinite(lon)):
        return None
    ilat = int(np.argmin(np.abs(grid.lat - lat)))
    ilon = int(np.argmin(np.abs((grid.lon - lon + 180.0) % 360.0 - 180.0)))
    return ilat * len(grid.lon) + ilon


@dataclasses.dataclass
class _Replay:
    steps: list[int]
    time_days: list[float]
    x: list[np.ndarray]
    y_emulator: list[np.ndarray]
    y_reference: list[np.ndarray]
    failure: Any
    columns: list[int]
    grid: Any
    input_difference: float


def _rewind_points(folder: Path | None, dt: float) -> list[tuple[int, Path]]:
    """The rolling checkpoints in `folder` as (step, path), latest first."""
    if folder is None or not folder.is_dir():
        return []
    points = []
    for path in folder.glob("checkpoint_day*.bin"):
        match = re.fullmatch(r"checkpoint_day([0-9.]+)\.bin", path.name)
        if match:
            points.append((int(round(float(match.group(1)) * 86400.0 / dt)), path))
    return sorted(points, reverse=True)


def _replay(emulator_path, config, crash_step: int, rewind: Path | None) -> _Replay:
    """Take the coupled run up again a day (:data:`RECORD_DAYS`) before
    `crash_step` and step it to the crash, recording every column."""
    from coupler.runs import start_coupled_model

    with start_coupled_model(emulator_path, config, keep_training_batch=True) as model:
        record_steps = max(1, int(round(RECORD_DAYS * 86400.0 / model.config.dt)))
        first = crash_step - record_steps
        for step, point in _rewind_points(rewind, model.config.dt):   # the latest one early enough
            if step <= first:
                model.load_checkpoint(point)
                break
        return _record(model, config, crash_step, max(first, model.step_count))


def _record(model, config, crash_step: int, first: int) -> _Replay:
    """Step `model` to `first` quietly, then one step at a time to the
    crash, keeping every column's inputs and outputs beside the reference
    physics' outputs on the same states."""
    from gcm_toy import Model

    failure = model.advance(first - model.step_count)
    if failure is not None:
        raise ReplayError(f"the replay crashed at step {failure.step}, before the recorded crash at step "
                          f"{crash_step}: the run cannot be reproduced with this code and these files")
    steps, times, xs, ys, refs = [], [], [], [], []
    difference = 0.0
    last = first - 2        # the physics of a step sees the leapfrog's older state: the last quiet step saw first - 2
    with tempfile.TemporaryDirectory(prefix="fkb-replay-") as tmp, \
            Model(config.preset, config.gcm_overrides(None), initial_state=False,
                  keep_training_batch=True) as reference:
        state = Path(tmp) / "state.bin"
        while failure is None:
            if model.step_count > crash_step:
                raise ReplayError(f"the replay passed the recorded crash at step {crash_step} without crashing: "
                                  "the run cannot be reproduced with this code and these files")
            model.save_checkpoint(state)
            reference.load_checkpoint(state)
            reference.advance(1)            # the reference physics on this state (its own crash is irrelevant)
            ref = _batch(reference, last)
            failure = model.advance(1)
            emu = _batch(model, last)
            if ref is not None and emu is not None and emu[3] != ref[3]:
                emu = None                  # the emulator's batch is an older step's: its physics failed
            if ref is None and emu is None:
                break                       # no physics ran: the state failed the crash check first
            x = emu[0] if emu is not None else ref[0]
            if emu is not None and ref is not None:
                difference = max(difference, float(np.max(np.abs(emu[0] - ref[0]))) if x.size else 0.0)
            nan = np.full((ref or emu)[1].shape, np.nan)
            last = (ref or emu)[3]
            steps.append(last)
            times.append((ref or emu)[2])
            xs.append(x.astype(np.float32))
            ys.append((emu[1] if emu is not None else nan).astype(np.float32))
            refs.append((ref[1] if ref is not None else nan).astype(np.float32))
        if failure is None:
            raise ReplayError(f"the replay stopped before the recorded crash at step {crash_step}: no physics ran")
        if failure.step != crash_step:
            raise ReplayError(f"the replay crashed at step {failure.step}, not at the recorded step {crash_step}: "
                              "the run cannot be reproduced with this code and these files")
        columns = crash_columns(model, failure)
        return _Replay(steps, times, xs, ys, refs, failure, columns, model.grid, difference)


def _batch(model, last: int):
    """The inputs, outputs, model time [days] and step of the state seen by
    `model`'s last physics step if that is newer than the step `last`, else
    None (its physics failed or did not run)."""
    from gcm_toy.model import GCMError
    try:
        x, y, labels = model.training_batch()
    except GCMError:                          # no physics step has completed yet
        return None
    return (x, y, labels["time_days"], labels["step"]) if labels["step"] > last else None


def _statistics(emulator_path):
    from coupler.runs import _emulator_paths
    return load_spec(_emulator_paths(emulator_path)[0])


def attribute_crash(emulator_path, config, crash_step: int, out: str | os.PathLike, *,
                    rewind: str | os.PathLike | None = None) -> xr.Dataset:
    """Replay the last day before the crash at `crash_step` of the coupled
    run of `emulator_path` with `config` (a
    :class:`coupler.sweep.CoupledRunConfig`), from the latest checkpoint in
    `rewind` a day or more before it, else from the run's start, and write
    the crash record to `out` (see the module). Returns it (loaded)."""
    replay = _replay(emulator_path, config, int(crash_step), Path(rewind) if rewind is not None else None)
    spec = _statistics(emulator_path)
    cols = replay.columns
    nlon = len(replay.grid.lon)
    x_all = np.stack(replay.x)                              # (step, ncol, input)
    y_all, r_all = np.stack(replay.y_emulator), np.stack(replay.y_reference)
    nstep, ncol, n_in = x_all.shape
    nlev = (n_in - 4) // 2
    summary: dict[str, Any] = {
        "crash_step": int(replay.failure.step), "crash_time_days": float(replay.failure.time_days),
        "crash_reason": replay.failure.reason, "crash_variable": replay.failure.variable,
        "crash_lat": float(replay.failure.lat), "crash_lon": float(replay.failure.lon),
        "n_crash_columns": len(cols), "recorded_steps": nstep,
        "recorded_hours": float((replay.failure.time_days - replay.time_days[0]) * 24.0) if nstep else 0.0,
        "input_difference_emulator_reference": replay.input_difference,
        "emulator": "\n".join(os.path.abspath(p) for p in _paths(emulator_path)),
    }
    data: dict[str, Any] = {}
    coords = {"step": ("step", np.asarray(replay.steps, np.int64), {"units": "1", "long_name": "model time step"}),
              "time": ("step", np.asarray(replay.time_days), {"units": "days", "long_name": "model time of the state the physics saw"}),
              # labels, not CF coordinate variables: the columns are in crash order, the names strings
              "column_index": ("column", np.asarray(cols, np.int64),
                               {"units": "1", "long_name": "index of the column on the grid (lat index * nlon + lon index)"}),
              "lat": ("column", replay.grid.lat[np.asarray(cols, int) // nlon] if cols else np.zeros(0),
                      {"units": "degrees_north", "standard_name": "latitude"}),
              "lon": ("column", replay.grid.lon[np.asarray(cols, int) % nlon] if cols else np.zeros(0),
                      {"units": "degrees_east", "standard_name": "longitude"}),
              "input_name": ("input", input_names(nlev), {"long_name": "name of the emulator input"}),
              "output_name": ("output", output_names(nlev), {"long_name": "name of the emulator output"})}
    data["x"] = (("step", "column", "input"), x_all[:, cols], {"long_name": "the emulator's inputs (physical units)"})
    data["y_emulator"] = (("step", "column", "output"), y_all[:, cols], {"long_name": "the emulator's outputs"})
    data["y_reference"] = (("step", "column", "output"), r_all[:, cols],
                           {"long_name": "the reference physics' outputs on the same inputs"})

    scale = _output_scale(spec, r_all)
    def mse(a, b) -> float:
        if a.size == 0 or not scale[1].any():
            return math.nan
        d = ((a.astype(np.float64) - b) / scale[0])[..., scale[1]]
        return float(np.nanmean(d ** 2)) if np.isfinite(d).any() else math.nan
    # steps whose physics failed on the replayed state (its outputs are NaN there)
    summary["reference_failed_steps"] = int(np.isnan(r_all).all(axis=(1, 2)).sum())
    summary["emulator_failed_steps"] = int(np.isnan(y_all).all(axis=(1, 2)).sum())
    summary["mse_crash_columns"] = mse(y_all[:, cols], r_all[:, cols])
    summary["mse_all_columns"] = mse(y_all, r_all)

    stats = spec.input_statistics
    summary["has_input_statistics"] = stats is not None
    if stats is not None:
        threshold = DEFAULT_DISTANCE_FACTOR * float(stats.distance_q999)
        every = guard_scores(stats, x_all.reshape(-1, n_in), DEFAULT_MARGIN, DEFAULT_DISTANCE_FACTOR)
        flagged_all = every.flagged.reshape(nstep, ncol)
        distance_all = every.distance.reshape(nstep, ncol)
        for name in ("max_abs_z", "distance", "n_outside", "flagged"):
            values = getattr(every, name).reshape(nstep, ncol)[:, cols]
            data[name] = (("step", "column"), values.astype(np.int8) if name == "flagged" else values,
                          {"long_name": f"guard score '{name}' of the inputs against the training data"})
        flagged = flagged_all[:, cols]
        summary["distance_threshold"] = threshold
        summary["max_distance_ratio"] = float(distance_all[:, cols].max() / threshold) if cols else math.nan
        summary["max_abs_z"] = float(every.max_abs_z.reshape(nstep, ncol)[:, cols].max()) if cols else math.nan
        summary["ood_before_crash"] = bool(flagged.any()) if cols else False
        if cols and flagged.any():
            first = int(np.argmax(flagged.any(axis=1)))
            summary["hours_ood_before_crash"] = float((replay.failure.time_days - replay.time_days[first]) * 24.0)
        else:
            summary["hours_ood_before_crash"] = 0.0
        summary["flagged_fraction_crash_columns"] = float(flagged.mean()) if cols else math.nan
        summary["flagged_fraction_all_columns"] = float(flagged_all.mean())
        data["distance_all_columns_max"] = (("step",), distance_all.max(axis=1),
                                            {"long_name": "largest guard distance over all columns"})
    ds = xr.Dataset({k: xr.Variable(v[0], v[1], v[2]) for k, v in data.items()},
                    coords={k: xr.Variable(v[0], v[1], v[2] if len(v) > 2 else {}) for k, v in coords.items()})
    ds.attrs.update({"title": "crash record of a coupled emulator run: the last day before the crash, replayed",
                     "Conventions": "CF-1.8",
                     **{k: (int(v) if isinstance(v, bool) else v) for k, v in summary.items()}})
    out = Path(out)
    write_dataset(ds, out, note="crash record: the last day before the crash, replayed")
    return ds


def _paths(emulator_path) -> list[str]:
    from coupler.runs import _emulator_paths
    return _emulator_paths(emulator_path)


def _output_scale(spec, y_reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The scale of each output for the normalized error, and which outputs
    count: the model file's output normalization (the units of the offline
    validation error) without its constant outputs (scale at the 1e-7
    floor); a model without one: the reference outputs' spread over the
    recorded day, without those that do not vary."""
    norm = spec.output_normalization
    if norm is not None and np.asarray(norm.scale).size == y_reference.shape[-1]:
        scale = np.asarray(norm.scale, np.float64).reshape(-1)
        return scale, scale > 1e-6
    scale = np.nanstd(y_reference.reshape(-1, y_reference.shape[-1]).astype(np.float64), axis=0)
    varies = np.isfinite(scale) & (scale > 0)
    return np.where(varies, scale, 1.0), varies


def crash_summary(record: xr.Dataset) -> dict[str, Any]:
    """The summary attributes of a crash record as Python values."""
    out: dict[str, Any] = {}
    for key, value in record.attrs.items():
        if key in ("title", "Conventions", "history"):
            continue
        out[key] = value.item() if isinstance(value, np.generic) else value
    for key in ("ood_before_crash", "has_input_statistics"):
        if key in out:
            out[key] = bool(out[key])
    if "flagged" in record and record.sizes.get("step", 0) and record.sizes.get("column", 0):
        # flagged from the first recorded step on: the drift began before the recorded day
        out["ood_whole_record"] = bool(record["flagged"].isel(step=0).values.any())
    return out


def read_crash_summary(path: str | os.PathLike) -> dict[str, Any] | None:
    """The summary of the crash record at `path`, None if there is none."""
    path = Path(path)
    if not path.is_file():
        return None
    with xr.open_dataset(path) as ds:
        return crash_summary(ds)


def _load_run_setup(run_dir: Path, run_name: str):
    """The coupled-run configuration and the emulator of the run `run_name`
    in `run_dir` (``fkb couple``'s folder, with its coupled.json, or a
    sweep's emulator folder, whose study holds it in ``reference/``)."""
    from coupler.runs import REFERENCE_CONFIG, CoupledRunConfig, load_reference

    own = run_dir / REFERENCE_CONFIG
    if own.is_file():
        config = CoupledRunConfig.from_dict(json.loads(own.read_text()))
    else:
        study = run_dir.parent.parent
        try:
            config, _ = load_reference(study)
        except FileNotFoundError:
            raise FileNotFoundError(f"{run_dir}: no {REFERENCE_CONFIG} here or in {study / 'reference'} "
                                    "saying how the run was made") from None
        if run_name == "coupled_fallback":
            config = dataclasses.replace(config, overrides={**dict(config.overrides), "guard": "fallback"})
    return config


def attribute_run(run_dir: str | os.PathLike, run_name: str = "coupled", *, force: bool = False) -> xr.Dataset:
    """The crash record of the run ``RUN_DIR/RUN_NAME.nc``: read if it is
    there (and not `force`), else made by a replay from the run's start.
    ValueError if the run did not crash."""
    from gcm_toy import open_output

    run_dir = Path(run_dir)
    run_path = run_dir / f"{run_name}.nc"
    if not run_path.is_file():
        raise FileNotFoundError(f"{run_dir}: no coupled run {run_path.name} here")
    record = crash_record_path(run_path)
    if record.is_file() and not force:
        with xr.open_dataset(record) as ds:
            return ds.load()
    with open_output(run_path) as run:
        attrs = dict(run.attrs)
    if attrs.get("run_status") != "crashed":
        raise ValueError(f"{run_path}: the run did not crash (run_status {attrs.get('run_status')!r})")
    config = _load_run_setup(run_dir, run_name)
    emulators = [p for p in str(attrs.get("emulator") or "").splitlines() if p]
    local = [run_dir / Path(p).name for p in emulators]
    paths = [p if Path(p).is_file() else os.fspath(q) for p, q in zip(emulators, local)]
    missing = [p for p in paths if not Path(p).is_file()]
    if not paths or missing:
        raise FileNotFoundError(f"{run_path}: its emulator {missing[0] if missing else '(none recorded)'} "
                                "is not there to replay the run")
    return attribute_crash(paths if len(paths) > 1 else paths[0], config, int(attrs["crash_step"]), record)


def format_crash_report(record: xr.Dataset) -> str:
    """One crash, told in a few lines."""
    s = crash_summary(record)
    lines = [f"crash at day {s['crash_time_days']:.3f} (step {s['crash_step']}): {s['crash_reason']}",
             f"  place {s['crash_lat']:.1f} N {s['crash_lon']:.1f} E; {s['n_crash_columns']} column(s) beyond a "
             f"bound; {s['recorded_steps']} steps replayed ({s['recorded_hours']:.1f} h before the crash)"]
    if s.get("has_input_statistics"):
        ood = ("yes, " + f"{s['hours_ood_before_crash']:.1f} h before the crash"
               + (" (from the first recorded step on: it began earlier)" if s.get("ood_whole_record") else "")
               ) if s["ood_before_crash"] else "no"
        lines += [f"  inputs out of the training distribution on the crash columns: {ood}",
                  f"  largest distance {s['max_distance_ratio']:.2f} x the guard's threshold; largest |z| "
                  f"{s['max_abs_z']:.1f}",
                  f"  columns flagged over that day: {100 * s['flagged_fraction_crash_columns']:.0f} % of the crash "
                  f"columns' steps, {100 * s['flagged_fraction_all_columns']:.1f} % of all columns' steps"]
    else:
        lines.append("  the model file carries no input statistics: no distance from the training data")
    lines.append(f"  emulator vs reference physics on the same inputs (normalized MSE): crash columns "
                 f"{s['mse_crash_columns']:.3g}, all columns {s['mse_all_columns']:.3g}")
    if s.get("reference_failed_steps") or s.get("emulator_failed_steps"):
        lines.append(f"  the reference physics failed on {s.get('reference_failed_steps', 0)} and the emulator on "
                     f"{s.get('emulator_failed_steps', 0)} of the {s['recorded_steps']} replayed states")
    if s.get("input_difference_emulator_reference", 0.0) > 0:
        lines.append(f"  note: the two models' inputs differed by up to {s['input_difference_emulator_reference']:.3g}")
    return "\n".join(lines)
