"""Online scores of a coupled run: stability and error against the reference.

Everything here takes and returns xarray Datasets of toy-GCM output
(:mod:`gcm_toy.output`: ``t_mean``, ``q_mean``, ``ps_mean`` on
``(time, lev, lat, lon)`` with ``time_bnds`` in days, ``lev_bnds`` in sigma
and the Gaussian weights ``gw``; the run's ``run_status`` and ``crash_*``
attributes).

Online error (after Lin et al., ClimScale; see docs/case-study.md):

1. the interval means of each output record are averaged, weighted by the
   record's length, over windows of ``window_days`` (30 days: a model
   "month") counted from the start of the run, and over longitude; only
   windows a run covers completely count;
2. per window ``w`` and level/latitude ``(k, j)`` the weight is the pressure
   thickness times the area weight of the *reference*,
   ``W_kj = dsigma_k * ps_ref_j * gw_j`` (``ps_ref_j`` its zonal-mean surface
   pressure in the window), normalised to sum 1;
3. ``RMSE_T(w) = sqrt(sum_kj W_kj (T_kj - T_ref_kj)^2)`` in K and the same
   for q in g kg-1;
4. a run's online error is the mean of ``RMSE(w)`` over the windows it
   survived (NaN if it survived none);
5. the combined normalised error is ``(RMSE_T / S_T + RMSE_q / S_q) / 2``
   where ``S_X(w) = sqrt(sum_kj W_kj (X_ref_kj - mean_W X_ref)^2)`` is the
   reference's own spatial variability of its zonal-mean field (same
   weights), so 1 means an error as large as the climate's structure.

The noise floor is the same error between the reference and references
started from slightly perturbed states, its twins (:func:`noise_floor`:
their mean and range).
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import xarray as xr

# The toy GCM (its Fortran extension) is imported inside the functions that use it, so that importing
# this module does not load it (start-up time).

__all__ = ["DEFAULT_WINDOW_DAYS", "guard_summary", "window_means", "pressure_area_weights", "online_error", "noise_floor",
           "noise_floor_of_files",
           "stability_record", "score_run"]

DEFAULT_WINDOW_DAYS = 30.0
"""Length of a scoring window [days]: a month of the 360-day calendar."""

_TOLERANCE_DAYS = 1e-6


def _start_day(run: xr.Dataset) -> float:
    """Model day the run started at (its ``start_time_days`` attribute, else
    the start of its first record)."""
    if "start_time_days" in run.attrs:
        return float(run.attrs["start_time_days"])
    if "time_bnds" in run and run.sizes.get("time", 0):
        return float(run["time_bnds"].values[0, 0])
    return 0.0


def window_means(run: xr.Dataset, window_days: float = DEFAULT_WINDOW_DAYS,
                 variables: tuple[str, ...] = ("t", "q", "ps")) -> xr.Dataset:
    """Zonal- and window-mean fields of a run: ``t`` [K], ``q`` [kg kg-1] on
    ``(window, lev, lat)`` and ``ps`` [Pa] on ``(window, lat)``, from the
    interval means ``X_mean`` weighted by record length. Windows of
    ``window_days`` [days] count from the run's start; only complete windows
    are returned (coordinate ``window`` = 0, 1, ..., with ``window_start`` and
    ``window_end`` in days). Variables the run lacks (q of a dry run) are left
    out. Raises ValueError if a record straddles two windows."""
    if not window_days > 0:
        raise ValueError(f"window_days must be positive, got {window_days}")
    names = [v for v in variables if f"{v}_mean" in run]
    if "time_bnds" not in run:
        raise ValueError("run has no time_bnds: not toy-GCM output")
    start = _start_day(run)
    bounds = np.asarray(run["time_bnds"].values, dtype=np.float64).reshape(-1, 2) - start
    index = np.floor(bounds[:, 0] / window_days + _TOLERANCE_DAYS).astype(int)
    straddle = bounds[:, 1] > (index + 1) * window_days + _TOLERANCE_DAYS
    if straddle.any():
        i = int(np.argmax(straddle))
        raise ValueError(f"output record {i} (days {bounds[i, 0] + start:g}-{bounds[i, 1] + start:g}) straddles "
                         f"two windows of {window_days:g} days; choose a window that is a multiple of the "
                         "output interval")
    duration = bounds[:, 1] - bounds[:, 0]
    coverage = np.bincount(index, weights=duration) if index.size else np.zeros(0)
    complete = [int(w) for w in np.flatnonzero(np.abs(coverage - window_days) < 1e-6 * max(window_days, 1.0))]

    zonal = run[[f"{v}_mean" for v in names]].astype(np.float64).mean("lon").load()
    out = {}
    for v in names:
        field = zonal[f"{v}_mean"]
        stacked = []
        for w in complete:
            pick = index == w
            weights = xr.DataArray(duration[pick], dims="time")
            stacked.append((field.isel(time=np.flatnonzero(pick)) * weights).sum("time") / weights.sum())
        dims = field.dims[1:]
        data = (np.stack([s.values for s in stacked]) if stacked
                else np.zeros((0, *[run.sizes[d] for d in dims])))
        out[v] = xr.DataArray(data, dims=("window", *dims), attrs=dict(run[f"{v}_mean"].attrs))
    windows = np.array(complete, dtype=int)
    coords: dict[str, Any] = {
        "window": ("window", windows, {"units": "1",
                                        "long_name": f"index of the {window_days:g}-day window from the run's start"}),
        "window_start": ("window", start + windows * window_days, {"units": "days", "long_name": "window start"}),
        "window_end": ("window", start + (windows + 1) * window_days, {"units": "days", "long_name": "window end"}),
    }
    for name in ("lev", "lat"):
        coords[name] = run[name]
    ds = xr.Dataset(out, coords=coords, attrs={"window_days": float(window_days)})
    for name in ("gw", "lev_bnds"):
        if name in run:
            ds[name] = run[name].load()
    return ds


def pressure_area_weights(reference_windows: xr.Dataset) -> xr.DataArray:
    """Weights ``dsigma(lev) * ps(window, lat) * gw(lat)`` [Pa] of the
    reference's window means (:func:`window_means`), normalised to sum 1 in
    each window; dsigma from ``lev_bnds`` (sigma-half thickness)."""
    bounds = reference_windows["lev_bnds"]
    dsigma = (bounds.isel(nv=1) - bounds.isel(nv=0)).drop_vars("nv", errors="ignore")
    weights = dsigma * reference_windows["ps"] * reference_windows["gw"]
    weights = weights / weights.sum(("lev", "lat"))
    weights.attrs = {"long_name": "pressure-thickness times area weight, normalised per window", "units": "1"}
    return weights.transpose("window", "lev", "lat")


def _weighted_rms(diff: xr.DataArray, weights: xr.DataArray) -> xr.DataArray:
    return np.sqrt((weights * diff ** 2).sum(("lev", "lat")))


def online_error(run: xr.Dataset, reference: xr.Dataset,
                 window_days: float = DEFAULT_WINDOW_DAYS) -> xr.Dataset:
    """Pressure- and area-weighted RMSE of the zonal-mean T [K] and q [g kg-1]
    of `run` against `reference`, per window the run survived, and its mean
    over those windows (``online_error_t``, ``online_error_q``,
    ``online_error_normalized``; NaN if no window survived). Both runs must
    be on the same grid and start on the same day. q is NaN for dry runs."""
    if run.sizes["lev"] != reference.sizes["lev"] or run.sizes["lat"] != reference.sizes["lat"]:
        raise ValueError(f"run and reference are on different grids: (lev, lat) = "
                         f"({run.sizes['lev']}, {run.sizes['lat']}) and ({reference.sizes['lev']}, "
                         f"{reference.sizes['lat']})")
    if abs(_start_day(run) - _start_day(reference)) > _TOLERANCE_DAYS:
        raise ValueError(f"run starts on day {_start_day(run):g}, the reference on day {_start_day(reference):g}")
    a = window_means(run, window_days)
    b = window_means(reference, window_days)
    common = np.intersect1d(a["window"].values, b["window"].values)
    a, b = a.sel(window=common), b.sel(window=common)
    weights = pressure_area_weights(b)
    data: dict[str, xr.DataArray] = {}
    spreads = []
    for name, scale, units in (("t", 1.0, "K"), ("q", 1000.0, "g kg-1")):
        if name in a and name in b:
            x, x_ref = a[name] * scale, b[name] * scale
            rmse = _weighted_rms(x - x_ref, weights)
            spread = _weighted_rms(x_ref - (weights * x_ref).sum(("lev", "lat")), weights)
        else:
            rmse = spread = xr.DataArray(np.full(common.size, np.nan), dims="window")
        long = {"t": "temperature", "q": "specific humidity"}[name]
        data[f"rmse_{name}"] = rmse.assign_attrs(
            units=units, long_name=f"pressure- and area-weighted RMSE of the zonal-mean {long}")
        data[f"spread_{name}"] = spread.assign_attrs(
            units=units, long_name=f"reference's weighted spatial standard deviation of its zonal-mean {long}")
        spreads.append(rmse / spread)
    data["rmse_normalized"] = (0.5 * (spreads[0] + spreads[1])).assign_attrs(
        units="1", long_name="mean of the T and q RMSE, each over the reference's spatial spread")
    ds = xr.Dataset(data, coords={k: a[k] for k in ("window", "window_start", "window_end")})
    n = common.size
    for name, units in (("t", "K"), ("q", "g kg-1"), ("normalized", "1")):
        key = f"rmse_{name}"
        value = float(ds[key].mean()) if n else math.nan
        ds[f"online_error_{name}"] = xr.DataArray(value, attrs={
            "units": units, "long_name": f"mean over the windows survived of {key}"})
    ds["n_windows"] = xr.DataArray(n, attrs={"units": "1", "long_name": "complete windows scored"})
    ds.attrs = {"window_days": float(window_days),
                "definition": "sqrt(sum W (X - X_ref)^2), W = dsigma * ps_ref * gw normalised per window; "
                              "zonal and window means of the interval means"}
    return ds


def noise_floor(reference: xr.Dataset, perturbed: xr.Dataset | Sequence[xr.Dataset],
                window_days: float = DEFAULT_WINDOW_DAYS) -> xr.Dataset:
    """The online error of references restarted from slightly perturbed
    states (twins) against the reference: what the chaos of the flow alone
    makes of the score, the floor below which an emulator's error is weather.

    Per twin and window ``rmse_*`` (dims twin, window); per window their
    mean, smallest and largest (``floor_*_mean`` / ``_min`` / ``_max``);
    ``online_error_*`` is the mean over the twins of their online errors, with
    ``online_error_*_min`` / ``_max`` the range."""
    twins = [perturbed] if isinstance(perturbed, xr.Dataset) else list(perturbed)
    if not twins:
        raise ValueError("noise floor: at least one perturbed run is needed")
    errors = [online_error(twin, reference, window_days) for twin in twins]
    per_twin = xr.concat([e.drop_vars([n for n in e if n.startswith("online_error")]) for e in errors],
                         dim="twin", coords="minimal", compat="override")
    per_twin = per_twin.assign_coords(twin=("twin", np.arange(1, len(twins) + 1),
                                            {"units": "1", "long_name": "perturbed twin number"}))
    ds = per_twin.copy()
    for name, units in (("t", "K"), ("q", "g kg-1"), ("normalized", "1")):
        rmse = per_twin[f"rmse_{name}"]
        for stat in ("mean", "min", "max"):
            ds[f"floor_{name}_{stat}"] = getattr(rmse, stat)("twin").assign_attrs(
                units=units, long_name=f"{stat} over the twins of rmse_{name} in the window")
        values = np.array([float(e[f"online_error_{name}"]) for e in errors])
        for stat, value in (("", values.mean()), ("_min", values.min()), ("_max", values.max())):
            ds[f"online_error_{name}{stat}"] = xr.DataArray(value, attrs={
                "units": units, "long_name": f"{stat.strip('_') or 'mean'} over the twins of their online error"})
    ds.attrs = dict(errors[0].attrs)
    ds.attrs["meaning"] = "noise floor: perturbed-initial-state references (twins) against the reference"
    ds.attrs["n_twins"] = len(twins)
    return ds


def noise_floor_of_files(reference: xr.Dataset, twin_paths, window_days: float = DEFAULT_WINDOW_DAYS) -> xr.Dataset:
    """:func:`noise_floor` of the twin runs in the netCDF files `twin_paths`
    (opened, scored and closed again), loaded into memory."""
    from gcm_toy.output import open_outputs

    with open_outputs(twin_paths) as twins:
        return noise_floor(reference, twins, window_days).load()


def stability_record(run: xr.Dataset, run_days: float | None = None) -> xr.Dataset:
    """How long a run lived and why it stopped: ``days_survived`` [days]
    (capped at `run_days`, the planned length), ``crashed`` (1 if the GCM's
    crash check fired), ``completed``; attributes ``run_status``,
    ``crash_reason`` ("" if none) and ``crash_time_days`` (NaN if none).

    A run whose status is neither "completed" nor "crashed" (its process
    died, or it raised) survived until its last record."""
    status = str(run.attrs.get("run_status", "unknown"))
    start = _start_day(run)
    last = float(run["time_bnds"].values[-1, 1]) if "time_bnds" in run and run.sizes.get("time", 0) else start
    if status == "crashed":
        survived = float(run.attrs.get("crash_time_days", last)) - start
        reason = str(run.attrs.get("crash_reason", "crashed"))
    elif status == "completed":
        survived = float(run.attrs.get("end_time_days", last)) - start
        reason = ""
    else:
        survived = last - start
        reason = status
    if run_days is not None:
        survived = min(survived, float(run_days))
    crash_time = float(run.attrs.get("crash_time_days", math.nan)) if status == "crashed" else math.nan
    return xr.Dataset(
        {"days_survived": xr.DataArray(max(survived, 0.0), attrs={"units": "days",
                                                                  "long_name": "model days before the run stopped"}),
         "run_days": xr.DataArray(float(run_days) if run_days is not None else math.nan,
                                  attrs={"units": "days", "long_name": "planned run length"}),
         "crashed": xr.DataArray(np.int8(status == "crashed"), attrs={"units": "1",
                                                                      "long_name": "1 if the crash check fired"}),
         "completed": xr.DataArray(np.int8(status == "completed"),
                                   attrs={"units": "1", "long_name": "1 if the run reached its planned end"})},
        attrs={"run_status": status, "crash_reason": reason, "crash_time_days": crash_time})


def score_run(run: xr.Dataset, reference: xr.Dataset, run_days: float | None = None,
              window_days: float = DEFAULT_WINDOW_DAYS) -> xr.Dataset:
    """Stability record and online error of `run` in one Dataset (attributes
    from :func:`stability_record`)."""
    stability = stability_record(run, run_days)
    error = online_error(run, reference, window_days)
    ds = xr.merge([stability, error], combine_attrs="override")   # each variable keeps its units and long name
    ds.attrs = {**error.attrs, **stability.attrs}
    return ds


def guard_summary(run: xr.Dataset) -> dict[str, Any] | None:
    """The emulator guard of a coupled run (None without one): its policy
    and, over the run, the mean fractions of the columns and steps it
    flagged out of distribution and sent to the reference physics."""
    policy = _run_option(run, "guard")
    if policy in (None, "off") or "GUARD_FLAGGED_GLOBAL" not in run:
        return None
    flagged, fallback = run["GUARD_FLAGGED_GLOBAL"].values, run["PHYS_FALLBACK_GLOBAL"].values
    return {"policy": policy,
            "mean_flagged_fraction": float(flagged.mean()) if flagged.size else math.nan,
            "mean_fallback_fraction": float(fallback.mean()) if fallback.size else math.nan}


def finetune_summary(run: xr.Dataset) -> dict[str, Any] | None:
    """The online fine-tuning of a coupled run (None without it): its
    options, the mean loss of the first and last output intervals with a
    round (``FINETUNE_LOSS``) and over the run, whether tuning stopped and
    why (the run record's ``finetune_status``), the optimizer steps, and
    ``teacher_fraction``: the fraction of the columns and steps the
    reference physics ran on as the teacher (the columns of a round over
    the grid's, per round's interval, until tuning stopped or the run
    ended)."""
    if not _run_option(run, "finetune") or "FINETUNE_LOSS" not in run:
        return None
    from dataclasses import fields

    from gcm_toy import GCMConfig

    defaults = {f.name: f.default for f in fields(GCMConfig)}
    option = {key: _run_option(run, f"finetune_{key}") for key in
              ("every_steps", "columns", "steps", "learning_rate", "seed", "start_day")}
    option = {key: defaults[f"finetune_{key}"] if value is None else value for key, value in option.items()}
    loss = np.asarray(run["FINETUNE_LOSS"].values, dtype=np.float64)
    finite = loss[np.isfinite(loss)]
    ncol = int(run.sizes["lat"] * run.sizes["lon"])
    start = float(run.attrs.get("start_time_days", math.nan))
    end = float(run.attrs.get("end_time_days", math.nan))
    stopped_step = int(run.attrs.get("finetune_stopped_step", -1))
    tuned_until = end
    dt = _run_option(run, "dt")
    if stopped_step >= 0 and dt:
        tuned_until = min(end, stopped_step * float(dt) / 86400.0)
    if option["start_day"] is not None:
        start_tuning = max(start, float(option["start_day"]))
    else:
        start_tuning = start
    span = end - start
    share = max(tuned_until - start_tuning, 0.0) / span if span > 0 else math.nan
    return {**{f"{key}": option[key] for key in ("every_steps", "columns", "steps", "learning_rate", "seed")},
            "status": str(run.attrs.get("finetune_status", "")), "stopped": stopped_step >= 0,
            "stopped_step": stopped_step, "optimizer_steps": int(run.attrs.get("finetune_optimizer_steps", 0)),
            "loss_first": float(finite[0]) if finite.size else math.nan,
            "loss_last": float(finite[-1]) if finite.size else math.nan,
            "loss_mean": float(finite.mean()) if finite.size else math.nan,
            "teacher_fraction": min(int(option["columns"]), ncol) / ncol / int(option["every_steps"]) * share}


def _run_option(run: xr.Dataset, key: str) -> Any:
    """An option of the configuration a run records (its ``configuration`` attribute, TOML)."""
    import tomllib
    try:
        return tomllib.loads(run.attrs.get("configuration", "")).get(key)
    except tomllib.TOMLDecodeError:
        return None
