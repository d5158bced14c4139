"""Is a host a credible world? The checks a case study's reference must pass.

An emulator's online test means something only in a host with weather:
baroclinic eddies that move heat and moisture in bursts, chaos that makes
twin runs differ by kelvins rather than millikelvins, a climate in
equilibrium over the window the emulators are scored on, and an equatorial
ITCZ. Measured on a run's output (``gcm_day*.nc`` or a reference.nc) over
a window [start, end] of model days:

* ``eddy_v_std``: standard deviation over time and longitude of the daily
  mean meridional wind near 500 hPa (the mean of the two sigma levels that
  straddle 0.5), about its time-zonal mean, over the latitudes 30-60 of both
  hemispheres (area weighted) [m s-1]; Earth and T21 aquaplanets: well
  above 4 m/s;
* ``precip_halves_change``: relative change of global-mean precipitation
  from the first to the second half of the window;
* ``evap_minus_precip``: (E - P) / P over the window;
* ``rain_max_lat``: latitude of the zonal-mean precipitation maximum;
* ``twin_rms_t`` (with perturbed twins): the RMS difference of temperature
  (area and layer weighted) between each twin and the reference at the end
  of the window [K].

:data:`CRITERIA` are the thresholds of a credible world (docs/gcm.md,
"A credible world").
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np
import xarray as xr

__all__ = ["WorldMetrics", "CRITERIA", "world_metrics", "eddy_v_std", "twin_rms_t", "format_world"]

EDDY_LATITUDES = (30.0, 60.0)
CRITERIA = {
    "eddy_v_std": (">=", 4.0),
    "twin_rms_t": (">=", 0.5),
    "precip_halves_change": ("abs<=", 0.05),
    "evap_minus_precip": ("abs<=", 0.02),
    "rain_max_lat": ("abs<=", 10.0),
}
"""name -> (comparison, threshold) of a credible world."""


@dataclass
class WorldMetrics:
    start_day: float
    end_day: float
    eddy_v_std: float
    precip_mm_day: float = math.nan
    precip_halves_change: float = math.nan
    evap_minus_precip: float = math.nan
    rain_max_lat: float = math.nan
    twin_rms_t: list[float] = field(default_factory=list)

    def passes(self) -> dict[str, bool]:
        """Each criterion of :data:`CRITERIA` that could be measured: met?
        (For the twins: the smallest difference counts.)"""
        out = {}
        for name, (op, limit) in CRITERIA.items():
            value = getattr(self, name)
            if name == "twin_rms_t":
                if not value:
                    continue
                value = min(value)
            if not math.isfinite(value):
                continue
            out[name] = value >= limit if op == ">=" else abs(value) <= limit
        return out

    def as_dict(self) -> dict:
        return asdict(self)


def _window(ds: xr.Dataset, start: float, end: float) -> xr.Dataset:
    bounds = ds["time_bnds"]
    keep = ((bounds.isel(nv=0) >= start - 1e-9) & (bounds.isel(nv=1) <= end + 1e-9)).values
    if not keep.any():
        raise ValueError(f"no output records within days {start:g}-{end:g}")
    return ds.isel(time=np.flatnonzero(keep))


def _daily(values: xr.DataArray, bounds: xr.DataArray) -> xr.DataArray:
    """Means over each whole model day of interval means (weighted by length)."""
    length = (bounds.isel(nv=1) - bounds.isel(nv=0)).load()
    day = np.floor(bounds.isel(nv=0).values + 1e-9)
    weighted = (values * length).assign_coords(day=("time", day)).groupby("day").sum()
    total = length.assign_coords(day=("time", day)).groupby("day").sum()
    return weighted / total


def eddy_v_std(ds: xr.Dataset, start: float, end: float) -> float:
    """Standard deviation of the daily-mean v near 500 hPa about its time-zonal
    mean, over time, longitude and the latitudes 30-60 (area weighted) [m s-1]."""
    sel = _window(ds, start, end)
    lev = sel["lev"].values
    below = int(np.searchsorted(lev, 0.5))
    levels = [below - 1, below] if 0 < below < lev.size else [min(below, lev.size - 1)]
    band = (np.abs(sel["lat"]) >= EDDY_LATITUDES[0]) & (np.abs(sel["lat"]) <= EDDY_LATITUDES[1])
    v = sel["v_mean"].isel(lev=levels).mean("lev").where(band, drop=True).astype(np.float64).load()
    daily = _daily(v, sel["time_bnds"])
    anomaly = daily - daily.mean(("day", "lon"))
    weight = np.cos(np.radians(anomaly["lat"]))
    variance = (anomaly**2).mean(("day", "lon")).weighted(weight).mean("lat")
    return float(np.sqrt(variance))


def twin_rms_t(reference: xr.Dataset, twin: xr.Dataset, day: float) -> float:
    """Area- and layer-weighted RMS of the instantaneous temperature
    difference between a twin and the reference at model day `day` [K]."""
    a = reference["t"].sel(time=day, method="nearest")
    b = twin["t"].sel(time=day, method="nearest")
    if abs(float(a.time) - day) > 1e-6 or abs(float(b.time) - day) > 1e-6:
        raise ValueError(f"the runs have no record at day {day:g}")
    dsigma = xr.DataArray(np.diff(reference["lev_bnds"].values, axis=-1)[:, 0], dims="lev")
    area = reference["gw"] / reference["gw"].sum() / reference.sizes["lon"]
    squared = ((a - b).astype(np.float64) ** 2 * dsigma).sum("lev")
    return float(np.sqrt((squared * area).sum()))


def world_metrics(ds: xr.Dataset, start: float, end: float,
                  twins: Sequence[xr.Dataset] = ()) -> WorldMetrics:
    """Every credibility measure of a run over days [start, end] (moist
    measures only when the run has precipitation; twin differences for the
    given twin runs, at the last record at or before `end`)."""
    metrics = WorldMetrics(start, end, eddy_v_std(ds, start, end))
    sel = _window(ds, start, end)
    if "PRECT" in sel and "QFLX" in sel:
        area = sel["gw"] / sel["gw"].sum()
        length = (sel["time_bnds"].isel(nv=1) - sel["time_bnds"].isel(nv=0)).load()

        def global_mean(name: str, times=slice(None)) -> float:
            values = (sel[name].isel(time=times).astype(np.float64).mean("lon") * area).sum("lat")
            return float(values.weighted(length.isel(time=times)).mean("time")) * 86400.0

        half = sel.sizes["time"] // 2
        precip = global_mean("PRECT")
        first, second = global_mean("PRECT", slice(0, half)), global_mean("PRECT", slice(half, None))
        metrics.precip_mm_day = precip
        metrics.precip_halves_change = (second - first) / first
        metrics.evap_minus_precip = (global_mean("QFLX") - precip) / precip
        zonal = sel["PRECT"].astype(np.float64).weighted(length).mean("time").mean("lon")
        metrics.rain_max_lat = float(zonal["lat"][int(np.argmax(zonal.values))])
    if twins:
        day = float(sel["time"][-1])
        metrics.twin_rms_t = [twin_rms_t(ds, twin, day) for twin in twins]
    return metrics


def format_world(metrics: WorldMetrics) -> str:
    """The measures, each with its criterion and whether it is met."""
    passes = metrics.passes()
    rows = [f"credible world, days {metrics.start_day:g}-{metrics.end_day:g}:"]

    def row(name: str, text: str) -> None:
        op, limit = CRITERIA[name]
        verdict = "" if name not in passes else ("  ok" if passes[name] else "  NOT MET")
        criterion = f">= {limit:g}" if op == ">=" else f"|x| <= {limit:g}"
        rows.append(f"  {text:<58} (criterion {criterion}){verdict}")

    row("eddy_v_std", f"eddy v near 500 hPa, 30-60 deg: {metrics.eddy_v_std:.2f} m/s")
    if math.isfinite(metrics.precip_halves_change):
        row("precip_halves_change", f"precipitation {metrics.precip_mm_day:.2f} mm/day, second half vs first: "
                                    f"{100 * metrics.precip_halves_change:+.1f} %")
        row("evap_minus_precip", f"(E - P) / P: {100 * metrics.evap_minus_precip:+.2f} %")
        row("rain_max_lat", f"zonal-mean rain maximum at {metrics.rain_max_lat:+.1f} deg")
    if metrics.twin_rms_t:
        spread = ", ".join(f"{value:.2f}" for value in metrics.twin_rms_t)
        row("twin_rms_t", f"twins' RMS T difference at the end: {spread} K")
    return "\n".join(rows)
