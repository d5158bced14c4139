"""The Held & Suarez (1994) benchmark from a toy-GCM run: figures and numbers.

    fkb gcm run --preset held-suarez --days 1200 --out hs
    fkb gcm plot-held-suarez hs

Reads the run's output (``DIR/gcm_day*.nc``, several files of a restarted
run are joined in time), discards the records before the end of the spin-up
(default 200 days), and averages the interval means (``u_mean``, ``t_mean``,
``ps_mean``) weighted by their interval lengths, then in longitude. Writes
latitude-pressure figures of the zonal-mean u and T (pressure = sigma times
the time- and zonal-mean ps of the latitude) and prints the jet maxima
(m/s, latitude, pressure) and the lowest-level tropical winds.

Held & Suarez (1994, their Fig. 2) find westerly jets of about 30 m/s near
45 degrees and 250 hPa and weak surface easterlies in the tropics.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import xarray as xr

from experiments.plots import plot_latitude_pressure

# The toy GCM (its Fortran extension) is imported inside the functions that use it, so that importing
# this module does not load it (start-up time).

__all__ = ["open_run", "after_spinup", "zonal_mean_climate", "jet_maxima", "tropical_surface_wind", "plot_climate",
           "held_suarez_report", "Jet"]

TROPICS_DEG = 30.0
"""Latitudes within +-TROPICS_DEG count as tropical for the surface wind."""

CHUNKS = {"time": 100}
"""Dask chunks for the analysis: ~20 MB per variable at T21 L10 in float32."""


def open_run(path: str | os.PathLike) -> xr.Dataset:
    """A run folder's output files (gcm_day*.nc, in time order) or one file,
    opened lazily with time in days."""
    from gcm_toy.output import open_output

    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("gcm_day*.nc")) or sorted(path.glob("*.nc"))
        if not files:
            raise FileNotFoundError(f"{path}: no netCDF output (gcm_day*.nc) in this folder")
        return open_output(files, chunks=CHUNKS) if len(files) > 1 else open_output(files[0], chunks=CHUNKS)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file or folder")
    return open_output(path, chunks=CHUNKS)


def after_spinup(ds: xr.Dataset, spinup_days: float) -> tuple[xr.Dataset, Callable[[str], xr.DataArray]]:
    """The output records whose interval starts at or after `spinup_days`,
    and a function giving a variable's time mean over them (weighted by
    interval length, in float64), zonally averaged. ValueError if no record
    is left."""
    start = ds["time_bnds"].isel(nv=0)
    keep = (start >= spinup_days - 1e-9).values
    if not keep.any():
        end = float(ds["time"].max()) if ds.sizes["time"] else 0.0
        raise ValueError(f"no output records after the spin-up of {spinup_days:g} days "
                         f"(the run ends at day {end:g}); choose a shorter --spinup-days")
    sel = ds.isel(time=np.flatnonzero(keep))
    weight = (sel["time_bnds"].isel(nv=1) - sel["time_bnds"].isel(nv=0)).load()

    def mean(name: str) -> xr.DataArray:
        return sel[name].astype(np.float64).weighted(weight).mean("time").mean("lon").load()

    return sel, mean


def zonal_mean_climate(ds: xr.Dataset, spinup_days: float = 200.0) -> xr.Dataset:
    """Time mean over the records whose interval starts at or after
    `spinup_days` (weighted by interval length), zonally averaged:
    u [m s-1], t [K] (lev, lat), ps [Pa] (lat) and p [hPa] (lev, lat)."""
    for name in ("u_mean", "t_mean", "ps_mean", "time_bnds"):
        if name not in ds:
            raise ValueError(f"the output has no variable {name!r}: not a toy-GCM output")
    sel, mean = after_spinup(ds, spinup_days)
    u, t, ps = mean("u_mean"), mean("t_mean"), mean("ps_mean")
    p = (sel["lev"] * ps / 100.0).transpose("lev", "lat")
    clim = xr.Dataset({
        "u": u.assign_attrs(long_name="zonal-mean eastward wind", units="m s-1"),
        "t": t.assign_attrs(long_name="zonal-mean air temperature", units="K"),
        "ps": ps.assign_attrs(long_name="zonal-mean surface pressure", units="Pa"),
        "p": p.assign_attrs(long_name="pressure", units="hPa"),
    })
    clim.attrs.update(first_day=float(sel["time_bnds"].isel(nv=0).min()), last_day=float(sel["time"].max()),
                      n_records=int(sel.sizes["time"]), run_status=str(ds.attrs.get("run_status", "unknown")))
    return clim


@dataclass(frozen=True)
class Jet:
    hemisphere: str
    speed: float      #: [m s-1]
    lat: float        #: [degrees_north]
    pressure: float   #: [hPa]
    sigma: float


def jet_maxima(clim: xr.Dataset) -> list[Jet]:
    """The largest zonal-mean westerly of each hemisphere."""
    jets = []
    for name, mask in (("south", clim["lat"] < 0), ("north", clim["lat"] > 0)):
        u = clim["u"].where(mask)
        k, j = np.unravel_index(int(np.nanargmax(u.values)), u.shape)
        jets.append(Jet(name, float(u.values[k, j]), float(clim["lat"][j]), float(clim["p"].values[k, j]),
                        float(clim["lev"][k])))
    return jets


def tropical_surface_wind(clim: xr.Dataset) -> xr.DataArray:
    """Zonal-mean u of the lowest level at the latitudes within +-30 degrees."""
    lowest = clim["u"].isel(lev=-1)
    return lowest.where(abs(clim["lat"]) <= TROPICS_DEG, drop=True)


def plot_climate(clim: xr.Dataset, out_dir: str | os.PathLike) -> list[Path]:
    """Latitude-pressure figures of the zonal-mean u and T: u.png and t.png
    (filled contours with labelled contour lines)."""
    out_dir = Path(out_dir)
    span = f"days {clim.attrs['first_day']:g}-{clim.attrs['last_day']:g}"
    paths = []
    for name, title, levels, cmap in (
            ("u", "zonal-mean eastward wind u [m s$^{-1}$]", np.arange(-40.0, 41.0, 5.0), "RdBu_r"),
            ("t", "zonal-mean temperature T [K]", np.arange(180.0, 321.0, 10.0), "magma")):
        paths.append(plot_latitude_pressure(
            clim["lat"].values, clim["p"].values, clim[name].values, levels, cmap, title,
            f"Held-Suarez: {title.split(' [')[0]}, {span}", out_dir / f"held_suarez_{name}.png",
            line_width=0.6, dpi=120))
    return paths


def format_report(clim: xr.Dataset, jets: list[Jet], surface: xr.DataArray) -> str:
    """The numbers as text."""
    lines = [f"Held-Suarez climate: time mean over days {clim.attrs['first_day']:g}-{clim.attrs['last_day']:g} "
             f"({clim.attrs['n_records']} output records, run_status {clim.attrs['run_status']})",
             "jet maxima (zonal-mean u):"]
    for jet in jets:
        lines.append(f"  {jet.hemisphere:<5}  {jet.speed:6.1f} m/s at {jet.lat:6.1f} deg, {jet.pressure:5.0f} hPa "
                     f"(sigma {jet.sigma:.3f})")
    lines.append("  Held & Suarez (1994): about 30 m/s near 45 deg, 250 hPa")
    lines.append(f"lowest-level zonal-mean u in the tropics (sigma {float(clim['lev'][-1]):.3f}):")
    lines.append("  lat [deg]  " + " ".join(f"{float(v):6.1f}" for v in surface["lat"]))
    lines.append("  u [m/s]    " + " ".join(f"{float(v):6.1f}" for v in surface.values))
    k = int(np.argmin(surface.values))
    lines.append(f"  strongest easterly {float(surface.values[k]):.1f} m/s at {float(surface['lat'][k]):.1f} deg; "
                 "Held & Suarez: weak easterlies (a few m/s)")
    return "\n".join(lines)


def held_suarez_report(run: str | os.PathLike, spinup_days: float = 200.0,
                       out_dir: str | os.PathLike | None = None) -> dict:
    """Figures into `out_dir` (default: the run folder) and the numbers
    printed; returns them (climate dataset, jets, tropical wind, figures)."""
    run = Path(run)
    ds = open_run(run)
    clim = zonal_mean_climate(ds, spinup_days)
    jets = jet_maxima(clim)
    surface = tropical_surface_wind(clim)
    figures = plot_climate(clim, out_dir if out_dir is not None else (run if run.is_dir() else run.parent))
    print(format_report(clim, jets, surface))
    for path in figures:
        print(f"wrote {path}")
    return {"climate": clim, "jets": jets, "tropical_surface_u": surface, "figures": figures}
