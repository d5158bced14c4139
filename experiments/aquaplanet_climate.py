"""The climate of a moist aquaplanet run of the toy GCM: figures and numbers.

    fkb gcm run --preset aquaplanet --days 400 --out ap
    fkb gcm plot-aquaplanet ap --spinup-days 40

Reads the run's output (``DIR/gcm_day*.nc``; the files of a restarted run are
joined in time), discards the records whose interval starts before the end of
the spin-up, averages the interval means weighted by their lengths, then in
longitude, and

* prints the headline numbers (:func:`headline_numbers`): global-mean
  precipitation and evaporation [mm/day] and their relative difference, the
  ITCZ (latitude and value of the largest zonal-mean precipitation), the
  driest subtropical latitude of each hemisphere (10-40 degrees), the
  westerly jets (largest zonal-mean u of each hemisphere at pressures of
  100 hPa and more), global-mean TOA
  and surface fluxes and the net TOA flux;
* writes the figures ``aquaplanet_{t,q,u,cloud}.png`` (latitude-pressure
  sections, pressure = sigma times the zonal-mean ps), ``aquaplanet_precip.png``
  (precipitation and evaporation against latitude) and
  ``aquaplanet_fluxes.png`` (TOA and surface shortwave and longwave fluxes).

Aqua-Planet Experiment models with the QOBS SST (Blackburn et al. 2013,
J. Meteor. Soc. Japan 91A) have a global-mean precipitation near 3 mm/day, a
single equatorial ITCZ, dry subtropics and westerly jets near 30-40 degrees.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from experiments.held_suarez import after_spinup, open_run
from experiments.plots import plot_latitude_pressure

# matplotlib is imported inside the functions that use it, so that importing this module does not load
# it (start-up time).

__all__ = ["aquaplanet_climate", "headline_numbers", "format_numbers", "plot_aquaplanet", "aquaplanet_report",
           "Headline", "SECONDS_PER_DAY"]

SECONDS_PER_DAY = 86400.0
SUBTROPICS_DEG = (10.0, 40.0)
"""Latitude band [degrees] searched for the subtropical precipitation minimum."""
JET_MIN_PRESSURE_HPA = 100.0
"""The jets are the largest zonal-mean u at pressures of at least this [hPa]
(the troposphere; the top level of L10, ~50 hPa, is left out)."""

_FIELDS_3D = ("t_mean", "q_mean", "u_mean", "v_mean")
_FIELDS_2D = ("PRECT", "QFLX", "SHFLX", "LHFLX", "SOLIN", "FSNT", "FSNS", "FLNT", "FLNS", "ps_mean")


def aquaplanet_climate(ds: xr.Dataset, spinup_days: float = 0.0) -> xr.Dataset:
    """Time mean over the records whose interval starts at or after
    `spinup_days` (weighted by interval length), zonally averaged.

    Returns t [K], q [g kg-1], u, v [m s-1], cloud [1] on (lev, lat); p [hPa]
    on (lev, lat); precip and evap [mm day-1], ps [Pa] and the fluxes [W m-2]
    (CAM signs: FSNT, FSNS net downward shortwave; FLNT, FLNS net upward
    longwave) on (lat); gw, the Gaussian weights."""
    missing = [name for name in _FIELDS_3D + _FIELDS_2D + ("time_bnds", "gw") if name not in ds]
    if missing:
        raise ValueError(f"the output has no variable {missing[0]!r}: not a moist toy-GCM run "
                         "(physics reference, emulator or ensemble)")
    sel, mean = after_spinup(ds, spinup_days)
    ps = mean("ps_mean")
    out = {
        "t": mean("t_mean").assign_attrs(long_name="air temperature", units="K"),
        "q": (1000.0 * mean("q_mean")).assign_attrs(long_name="specific humidity", units="g kg-1"),
        "u": mean("u_mean").assign_attrs(long_name="eastward wind", units="m s-1"),
        "v": mean("v_mean").assign_attrs(long_name="northward wind", units="m s-1"),
        "ps": ps.assign_attrs(long_name="surface pressure", units="Pa"),
        "p": (sel["lev"] * ps / 100.0).transpose("lev", "lat").assign_attrs(long_name="pressure", units="hPa"),
        "precip": (SECONDS_PER_DAY * mean("PRECT")).assign_attrs(long_name="precipitation", units="mm day-1"),
        "evap": (SECONDS_PER_DAY * mean("QFLX")).assign_attrs(long_name="evaporation", units="mm day-1"),
        "gw": sel["gw"].astype(np.float64).load(),
    }
    for name in ("SHFLX", "LHFLX", "SOLIN", "FSNT", "FSNS", "FLNT", "FLNS"):
        out[name] = mean(name).assign_attrs(units="W m-2", long_name=str(ds[name].attrs.get("long_name", name)))
    if "CLOUD" in sel:
        out["cloud"] = mean("CLOUD").assign_attrs(long_name="cloud fraction", units="1")
    clim = xr.Dataset(out)
    clim.attrs.update(first_day=float(sel["time_bnds"].isel(nv=0).min()), last_day=float(sel["time"].max()),
                      n_records=int(sel.sizes["time"]), run_status=str(ds.attrs.get("run_status", "unknown")),
                      physics=str(ds.attrs.get("physics", "")))
    return clim


@dataclass(frozen=True)
class Headline:
    """The numbers that say whether the aquaplanet is Earth-like."""
    first_day: float
    last_day: float
    precip: float             #: global-mean precipitation [mm day-1]
    evap: float               #: global-mean evaporation [mm day-1]
    e_minus_p_percent: float  #: 100 (E - P) / P
    itcz_lat: float           #: latitude of the largest zonal-mean precipitation [degrees north]
    itcz_precip: float        #: its value [mm day-1]
    subtropical_min_south: tuple[float, float]  #: (latitude, precipitation [mm day-1]) of the driest row, 10-40 S
    subtropical_min_north: tuple[float, float]  #: the same, 10-40 N
    jet_south: tuple[float, float, float]       #: (speed [m s-1], latitude, pressure [hPa]) of the largest westerly at p >= 100 hPa
    jet_north: tuple[float, float, float]
    toa_net: float            #: FSNT - FLNT [W m-2], global mean (positive: the planet gains energy)
    fsnt: float
    flnt: float
    fsns: float
    flns: float
    shflx: float
    lhflx: float
    solin: float
    atmosphere_radiative_cooling: float  #: FLNT - FLNS - (FSNT - FSNS) [W m-2]
    cloud_cover_max: float    #: largest zonal- and time-mean cloud fraction of any level [1] (NaN without CLOUD)


def _global(clim: xr.Dataset, name: str) -> float:
    w = clim["gw"]
    return float((clim[name] * w).sum() / w.sum())


def headline_numbers(clim: xr.Dataset) -> Headline:
    """Global means, ITCZ, subtropical minima and jets of a climate from
    :func:`aquaplanet_climate`."""
    lat = clim["lat"].values
    precip = clim["precip"].values
    j = int(np.argmax(precip))

    def driest(sign: float) -> tuple[float, float]:
        band = np.flatnonzero((sign * lat >= SUBTROPICS_DEG[0]) & (sign * lat <= SUBTROPICS_DEG[1]))
        if band.size == 0:
            return (float("nan"), float("nan"))
        k = band[int(np.argmin(precip[band]))]
        return (float(lat[k]), float(precip[k]))

    def jet(mask: np.ndarray) -> tuple[float, float, float]:
        troposphere = clim["p"].values >= JET_MIN_PRESSURE_HPA
        u = np.where(mask[None, :] & troposphere, clim["u"].values, -np.inf)
        k, i = np.unravel_index(int(np.argmax(u)), u.shape)
        return (float(u[k, i]), float(lat[i]), float(clim["p"].values[k, i]))

    p, e = _global(clim, "precip"), _global(clim, "evap")
    g = {name: _global(clim, name) for name in ("FSNT", "FLNT", "FSNS", "FLNS", "SHFLX", "LHFLX", "SOLIN")}
    cloud = float(clim["cloud"].max()) if "cloud" in clim else float("nan")
    return Headline(
        first_day=float(clim.attrs["first_day"]), last_day=float(clim.attrs["last_day"]),
        precip=p, evap=e, e_minus_p_percent=100.0 * (e - p) / p if p > 0 else float("nan"),
        itcz_lat=float(lat[j]), itcz_precip=float(precip[j]),
        subtropical_min_south=driest(-1.0), subtropical_min_north=driest(1.0),
        jet_south=jet(lat < 0), jet_north=jet(lat > 0),
        toa_net=g["FSNT"] - g["FLNT"], fsnt=g["FSNT"], flnt=g["FLNT"], fsns=g["FSNS"], flns=g["FLNS"],
        shflx=g["SHFLX"], lhflx=g["LHFLX"], solin=g["SOLIN"],
        atmosphere_radiative_cooling=g["FLNT"] - g["FLNS"] - (g["FSNT"] - g["FSNS"]),
        cloud_cover_max=cloud)


def format_numbers(h: Headline, clim: xr.Dataset | None = None) -> str:
    """The headline numbers as text (and the zonal-mean precipitation and
    evaporation of each latitude when `clim` is given)."""
    lines = [
        f"aquaplanet climate: time mean over days {h.first_day:g}-{h.last_day:g}",
        f"  global precipitation   {h.precip:6.2f} mm/day   (APE QOBS models: about 3)",
        f"  global evaporation     {h.evap:6.2f} mm/day   (E - P) / P = {h.e_minus_p_percent:+.2f} %",
        f"  ITCZ                   {h.itcz_precip:6.2f} mm/day at {h.itcz_lat:+6.1f} deg",
        f"  subtropical minimum    {h.subtropical_min_south[1]:6.2f} mm/day at {h.subtropical_min_south[0]:+6.1f} deg, "
        f"{h.subtropical_min_north[1]:.2f} mm/day at {h.subtropical_min_north[0]:+.1f} deg",
        f"  jets                   {h.jet_south[0]:6.1f} m/s at {h.jet_south[1]:+6.1f} deg, {h.jet_south[2]:.0f} hPa; "
        f"{h.jet_north[0]:.1f} m/s at {h.jet_north[1]:+.1f} deg, {h.jet_north[2]:.0f} hPa",
        f"  TOA  [W/m2]            insolation {h.solin:.1f}, net SW {h.fsnt:.1f}, OLR {h.flnt:.1f}, "
        f"net {h.toa_net:+.1f}",
        f"  surface [W/m2]         net SW {h.fsns:.1f}, net LW {h.flns:.1f}, sensible {h.shflx:.1f}, "
        f"latent {h.lhflx:.1f}",
        f"  atmosphere             radiative cooling {h.atmosphere_radiative_cooling:.1f} W/m2, "
        f"SW absorbed {h.fsnt - h.fsns:.1f} W/m2, largest zonal-mean cloud fraction {h.cloud_cover_max:.2f}",
    ]
    if clim is not None:
        lines.append("  lat [deg]   " + " ".join(f"{v:6.1f}" for v in clim["lat"].values))
        lines.append("  P [mm/day]  " + " ".join(f"{v:6.2f}" for v in clim["precip"].values))
        lines.append("  E [mm/day]  " + " ".join(f"{v:6.2f}" for v in clim["evap"].values))
    return "\n".join(lines)


def plot_aquaplanet(clim: xr.Dataset, out_dir: str | os.PathLike) -> list[Path]:
    """The figures aquaplanet_{t,q,u,cloud,precip,fluxes}.png in `out_dir`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    lat = clim["lat"].values
    span = f"days {clim.attrs['first_day']:g}-{clim.attrs['last_day']:g}"
    paths = []
    sections = [("t", "temperature T [K]", np.arange(190.0, 311.0, 10.0), "magma"),
                ("q", "specific humidity q [g kg$^{-1}$]", np.array([0.1, 0.2, 0.5, 1, 2, 4, 6, 8, 10, 12, 14, 16,
                                                                        18, 20]), "GnBu"),
                ("u", "eastward wind u [m s$^{-1}$]", np.arange(-40.0, 41.0, 5.0), "RdBu_r")]
    if "cloud" in clim:
        sections.append(("cloud", "cloud fraction", np.arange(0.0, 0.81, 0.05), "Blues"))
    for name, title, levels, cmap in sections:
        paths.append(plot_latitude_pressure(
            lat, clim["p"].values, clim[name].values, levels, cmap, title,
            f"aquaplanet: zonal-mean {title.split(' [')[0]}, {span}", out_dir / f"aquaplanet_{name}.png"))

    fig, ax = plt.subplots(figsize=(7.0, 4.0), constrained_layout=True)
    ax.plot(lat, clim["precip"].values, "b-o", ms=3, label=f"precipitation (global {_global(clim, 'precip'):.2f})")
    ax.plot(lat, clim["evap"].values, "r-s", ms=3, label=f"evaporation (global {_global(clim, 'evap'):.2f})")
    ax.set_xlim(-90.0, 90.0)
    ax.set_xticks(np.arange(-90, 91, 30))
    ax.set_ylim(bottom=0.0)
    ax.grid(alpha=0.3)
    ax.set_xlabel("latitude [degrees north]")
    ax.set_ylabel("mm day$^{-1}$")
    ax.set_title(f"aquaplanet: zonal-mean precipitation and evaporation, {span}", fontsize=10)
    ax.legend()
    path = out_dir / "aquaplanet_precip.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    paths.append(path)

    fig, axes = plt.subplots(1, 2, figsize=(10.0, 4.0), constrained_layout=True, sharey=True)
    toa, sfc = axes
    toa.plot(lat, clim["SOLIN"].values, "k:", label="insolation")
    toa.plot(lat, clim["FSNT"].values, "C1-", label="net SW (FSNT)")
    toa.plot(lat, clim["FLNT"].values, "C3-", label="OLR (FLNT)")
    toa.plot(lat, clim["FSNT"].values - clim["FLNT"].values, "k-", label="net (FSNT - FLNT)")
    sfc.plot(lat, clim["FSNS"].values, "C1-", label="net SW (FSNS)")
    sfc.plot(lat, clim["FLNS"].values, "C3-", label="net LW up (FLNS)")
    sfc.plot(lat, clim["LHFLX"].values, "C0-", label="latent heat (LHFLX)")
    sfc.plot(lat, clim["SHFLX"].values, "C2-", label="sensible heat (SHFLX)")
    for ax, where in ((toa, "top of atmosphere"), (sfc, "surface")):
        ax.axhline(0.0, color="0.6", lw=0.5)
        ax.set_xlim(-90.0, 90.0)
        ax.set_xticks(np.arange(-90, 91, 30))
        ax.grid(alpha=0.3)
        ax.set_xlabel("latitude [degrees north]")
        ax.set_title(f"{where}, {span}", fontsize=10)
        ax.legend(fontsize=8)
    toa.set_ylabel("W m$^{-2}$")
    path = out_dir / "aquaplanet_fluxes.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    paths.append(path)
    return paths


def aquaplanet_report(run: str | os.PathLike, spinup_days: float = 0.0,
                      out_dir: str | os.PathLike | None = None, plots: bool = True) -> dict:
    """Numbers printed and figures written into `out_dir` (default: the run
    folder); returns the climate dataset, the Headline (also as a dict) and
    the figure paths."""
    run = Path(run)
    clim = aquaplanet_climate(open_run(run), spinup_days)
    numbers = headline_numbers(clim)
    print(format_numbers(numbers, clim))
    figures = []
    if plots:
        figures = plot_aquaplanet(clim, out_dir if out_dir is not None else (run if run.is_dir() else run.parent))
        for path in figures:
            print(f"wrote {path}")
    return {"climate": clim, "numbers": numbers, "numbers_dict": asdict(numbers), "figures": figures}
