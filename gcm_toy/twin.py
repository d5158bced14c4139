"""Twin experiments: how fast the toy GCM amplifies a small perturbation.

A control run and `n_twins` perturbed runs start from the same state; the
perturbed ones get seeded temperature noise of a given RMS amplitude, either
at every grid point (``"grid"``, the classic twin) or only in the spherical
harmonics of total wavenumber 6-15 (``"synoptic"``, which the truncation
and the hyperdiffusion leave alone). Both the control and the twins are
restarted from grid fields (:meth:`Model.set_state`), so the only difference
between them is the perturbation. Every `sample_hours` the difference to the
control is measured:

- RMS of temperature, meridional wind (over all levels, weighted by the
  sigma thickness of the layers and the Gaussian area weights) and surface
  pressure;
- the temperature RMS in latitude bands (tropics |lat| < 30, midlatitudes
  30-60, polar > 60) and in total-wavenumber bands (planetary n <= 5,
  synoptic 6-15, short 16-M), from a spherical-harmonic analysis on the
  Gaussian grid.

:func:`fit_doubling_time` fits the exponential phase: ln(RMS T) against
time by least squares, from the first time the difference reaches three
times its level after the adjustment of the initial noise (its median over
days 1-3) until it reaches a tenth of its saturation level, sqrt(2) times
the control's own RMS deviation from its time mean over the run (two
independent states differ by that much); the rule the SPEEDY anchor was
fitted with (docs/gcm-dynamics.md, "Error growth").
"""
from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import xarray as xr
from scipy.special import sph_harm_y

from gcm_toy.config import ConfigLike, Overrides, parse_overrides, steps_for_days
from gcm_toy.model import Model
from gcm_toy.output import Grid

__all__ = ["PERTURBATIONS", "LATITUDE_BANDS", "WAVENUMBER_BANDS", "TwinResult", "DoublingFit", "harmonic_basis",
           "perturbation", "difference_metrics", "fit_doubling_time", "run_twins", "twin_table"]

PERTURBATIONS = ("grid", "synoptic")
"""Kinds of temperature perturbation: noise at every grid point, or noise in
the spherical harmonics of total wavenumber 6-15 only."""
SYNOPTIC_WAVENUMBERS = (6, 15)
LATITUDE_BANDS = {"tropics": (0.0, 30.0), "midlatitudes": (30.0, 60.0), "polar": (60.0, 90.0)}
"""|latitude| ranges [degrees] of the temperature difference by band."""
WAVENUMBER_BANDS = {"planetary": (0, 5), "synoptic": (6, 15), "short": (16, 10_000)}
"""Total-wavenumber ranges of the temperature difference by scale (clipped
to the truncation)."""
START_FACTOR = 3.0
"""The fit of the exponential phase starts where the difference reaches this
multiple of its post-adjustment level (its median over days 1-3)..."""
SATURATION_FRACTION = 0.1
"""...and ends where it reaches this fraction of its saturation level."""


def harmonic_basis(grid: Grid, n_min: int, n_max: int) -> tuple[np.ndarray, np.ndarray]:
    """Real spherical harmonics of total wavenumber n_min..n_max on the grid,
    normalised so that their area mean squared is 1, as (nlat * nlon, nbasis),
    and the total wavenumber of each column."""
    lat = np.radians(grid.lat)[:, None]
    lon = np.radians(grid.lon)[None, :]
    colatitude = np.broadcast_to(0.5 * np.pi - lat, (lat.size, lon.size))
    longitude = np.broadcast_to(lon, (lat.size, lon.size))
    columns, degrees = [], []
    for n in range(n_min, n_max + 1):
        for m in range(0, n + 1):
            y = sph_harm_y(n, m, colatitude, longitude) * math.sqrt(4.0 * math.pi)
            if m == 0:
                parts = [y.real]
            else:  # cos(m lon) and sin(m lon) parts, each of mean square 1
                parts = [math.sqrt(2.0) * y.real, math.sqrt(2.0) * y.imag]
            for part in parts:
                columns.append(part.ravel())
                degrees.append(n)
    return np.stack(columns, axis=1), np.asarray(degrees)


def _area_weights(grid: Grid) -> np.ndarray:
    """(nlat, nlon) weights summing to 1 (Gaussian weights, equal in longitude)."""
    w = np.repeat(grid.weight[:, None], len(grid.lon), axis=1)
    return w / w.sum()


def _layer_weights(grid: Grid) -> np.ndarray:
    return np.diff(np.asarray(grid.sigma_half))


def perturbation(grid: Grid, kind: str, amplitude: float, seed: int, truncation: int) -> np.ndarray:
    """A seeded temperature perturbation (lev, lat, lon) of area- and
    layer-weighted RMS `amplitude` [K]; the synoptic kind in total
    wavenumbers 6-15 that the truncation T_`truncation` keeps."""
    if kind not in PERTURBATIONS:
        raise ValueError(f"perturbation {kind!r}: expected one of {', '.join(PERTURBATIONS)}")
    rng = np.random.default_rng(seed)
    nlev, nlat, nlon = grid.shape
    if kind == "grid":
        noise = rng.standard_normal(grid.shape)
    else:
        lowest, highest = SYNOPTIC_WAVENUMBERS
        basis, _ = harmonic_basis(grid, lowest, min(highest, truncation))
        coefficients = rng.standard_normal((basis.shape[1], nlev))
        noise = (basis @ coefficients).T.reshape(grid.shape)
    rms = math.sqrt(float(np.sum(_layer_weights(grid)[:, None, None] * _area_weights(grid) * noise**2)))
    return amplitude * noise / rms


class _Analysis:
    """Area- and layer-weighted RMS of differences, by latitude band and by
    total-wavenumber band."""

    def __init__(self, grid: Grid, truncation: int):
        self.grid = grid
        self.area = _area_weights(grid)
        self.layer = _layer_weights(grid)
        self.lat_masks = {name: (np.abs(grid.lat) >= lo) & (np.abs(grid.lat) < hi)
                          for name, (lo, hi) in LATITUDE_BANDS.items()}
        self.basis, self.degree = harmonic_basis(grid, 0, truncation)
        self.bands = {name: (self.degree >= lo) & (self.degree <= hi)
                      for name, (lo, hi) in WAVENUMBER_BANDS.items() if lo <= truncation}

    def rms(self, field: np.ndarray) -> float:
        if field.ndim == 2:
            return math.sqrt(float(np.sum(self.area * field**2)))
        return math.sqrt(float(np.sum(self.layer[:, None, None] * self.area * field**2)))

    def by_latitude(self, field: np.ndarray) -> dict[str, float]:
        out = {}
        for name, mask in self.lat_masks.items():
            area = self.area[mask]
            out[name] = math.sqrt(float(np.sum(self.layer[:, None, None] * area * field[:, mask, :] ** 2)
                                        / area.sum()))
        return out

    def by_wavenumber(self, field: np.ndarray) -> dict[str, float]:
        """RMS of the part of `field` in each wavenumber band (Parseval: the
        sum of squared coefficients of the orthonormal harmonics)."""
        nlev = field.shape[0]
        flat = field.reshape(nlev, -1) * self.area.ravel()
        coefficients = flat @ self.basis          # (nlev, nbasis): area means of field * Y
        power = self.layer @ coefficients**2      # layer-weighted, per harmonic
        return {name: math.sqrt(float(power[mask].sum())) for name, mask in self.bands.items()}


def difference_metrics(analysis: _Analysis, a: dict[str, np.ndarray], b: dict[str, np.ndarray]
                       ) -> dict[str, float]:
    """Every measure of the difference between two states (grid fields)."""
    dt = a["t"] - b["t"]
    out = {"rms_t": analysis.rms(dt), "rms_v": analysis.rms(a["v"] - b["v"]),
           "rms_ps": analysis.rms(a["ps"] - b["ps"]) / 100.0}
    out.update({f"rms_t_{name}": value for name, value in analysis.by_latitude(dt).items()})
    out.update({f"rms_t_n_{name}": value for name, value in analysis.by_wavenumber(dt).items()})
    return out


@dataclass
class DoublingFit:
    """The exponential phase of a growth curve."""

    doubling_days: float
    """ln 2 over the fitted growth rate [days]; inf if it does not grow."""
    rate_per_day: float
    start_day: float
    end_day: float
    saturation: float
    """sqrt(2) x the control's RMS deviation from its time mean [same units]."""


def fit_doubling_time(days: np.ndarray, rms: np.ndarray, saturation: float) -> DoublingFit:
    """Least-squares fit of ln(rms) against time over the exponential phase:
    from the first time (day 1 or later) that rms reaches three times its
    post-adjustment level (its median over days 1-3) until the last time
    before it first exceeds a tenth of `saturation`. Doubling time inf if
    that window holds fewer than three samples (no exponential phase seen)."""
    days = np.asarray(days, dtype=float)
    rms = np.asarray(rms, dtype=float)
    adjusted = (days >= 1.0) & (days <= 3.0)
    if not adjusted.any():
        adjusted = days >= min(1.0, days[-1])
    level = float(np.median(rms[adjusted]))
    candidates = np.flatnonzero((days >= 1.0) & (rms >= START_FACTOR * level))
    if candidates.size == 0:
        return DoublingFit(math.inf, 0.0, math.nan, math.nan, saturation)
    start = int(candidates[0])
    beyond = np.flatnonzero(rms > SATURATION_FRACTION * saturation)
    beyond = beyond[beyond > start]
    end = int(beyond[0]) - 1 if beyond.size else rms.size - 1
    if end - start < 2:
        return DoublingFit(math.inf, 0.0, float(days[start]), float(days[max(end, start)]), saturation)
    rate = float(np.polyfit(days[start:end + 1], np.log(rms[start:end + 1]), 1)[0])
    doubling = math.log(2.0) / rate if rate > 1e-6 else math.inf   # flat to rounding: no growth
    return DoublingFit(doubling, rate, float(days[start]), float(days[end]), saturation)


@dataclass
class TwinResult:
    """Growth curves (Dataset with dims time, twin) and the fitted doubling
    times (of the geometric mean over the twins) of T, v and ps."""

    curves: xr.Dataset
    fits: dict[str, DoublingFit] = field(default_factory=dict)

    def crossing_day(self, threshold: float, name: str = "rms_t") -> float:
        """First day the twins' geometric-mean difference reaches `threshold`
        (NaN if never)."""
        mean = np.exp(np.log(self.curves[name]).mean("twin"))
        above = np.flatnonzero(mean.values >= threshold)
        return float(self.curves.time[above[0]]) if above.size else float("nan")


def run_twins(config: ConfigLike, restart: str | Path | None = None, *, overrides: Overrides = None,
              spinup_days: float = 0.0, days: float = 30.0, amplitude: float = 0.01, kind: str = "grid",
              n_twins: int = 3, seed: int = 1, sample_hours: float = 6.0, reseed_physics: bool = False,
              progress=None) -> TwinResult:
    """Run a control and `n_twins` perturbed twins from the state of
    `restart` (a checkpoint; else the configuration's initial state after
    `spinup_days`) for `days`, and measure their differences every
    `sample_hours`. With `reseed_physics` twin k also draws the random
    numbers of the reference physics (the toy superparameterization's
    subgrid noise) with seed (the control's + k): a different realization of
    the unresolved convection, as in a stochastic-physics ensemble.
    `progress(day)` is called after every sample."""
    for name, value in (("days", days), ("perturbation amplitude", amplitude), ("sample_hours", sample_hours),
                        ("spinup_days", spinup_days)):
        if not math.isfinite(value):
            raise ValueError(f"twin experiment: {name} must be a finite number, got {value:g}")
    if days <= 0:
        raise ValueError(f"twin experiment: days must be positive, got {days:g}")
    if amplitude <= 0:
        raise ValueError(f"twin experiment: the perturbation amplitude must be positive, got {amplitude:g}")
    if not 1 <= n_twins <= 1000:
        raise ValueError(f"twin experiment: from 1 to 1000 twins, got {n_twins}")
    if not 0 <= seed <= 2 ** 31 - 1 - n_twins:    # twin k's seed, seed + k, is a 32-bit integer of the model
        raise ValueError(f"twin experiment: seed must be an integer from 0 to {2 ** 31 - 1 - n_twins}, got {seed}")
    if kind not in PERTURBATIONS:
        raise ValueError(f"perturbation {kind!r}: expected one of {', '.join(PERTURBATIONS)}")
    if restart is None and config is None:
        raise ValueError("twin experiment: give a configuration or a checkpoint to start from")

    if restart is None:         # spin up once; every run starts from that state
        with tempfile.TemporaryDirectory() as folder:
            spun_up = Model(config, overrides)
            failure = spun_up.advance(steps_for_days(spinup_days, spun_up.config.dt, "spinup_days"))
            if failure is not None:
                raise ValueError(f"twin experiment: the spin-up crashed: {failure.reason}")
            checkpoint = spun_up.save_checkpoint(Path(folder) / "start.bin")
            spun_up.close()
            result = run_twins(config, checkpoint, overrides=overrides, days=days, amplitude=amplitude, kind=kind,
                               n_twins=n_twins, seed=seed, sample_hours=sample_hours,
                               reseed_physics=reseed_physics, progress=progress)
        result.curves.attrs["restart"] = ""                       # the spin-up's checkpoint is gone
        return result

    def start_model(extra: dict | None = None) -> Model:
        options = parse_overrides(overrides)
        options.update(extra or {})
        return Model.from_checkpoint(restart, options, config=config)

    control = start_model()
    state = control.fields()
    start_day = control.time_days
    steps_per_sample = steps_for_days(sample_hours / 24.0, control.config.dt, "sample_hours")
    if steps_per_sample == 0:
        raise ValueError("twin experiment: sample_hours is shorter than a time step")
    n_samples = max(1, int(round(days * 24.0 / sample_hours)))
    control.set_state(state)
    twins = []
    for k in range(n_twins):
        twin = start_model({"seed": control.config.seed + k + 1} if reseed_physics else None)
        perturbed = dict(state)
        perturbed["t"] = state["t"] + perturbation(control.grid, kind, amplitude, seed + k,
                                                      control.config.truncation)
        twin.set_state(perturbed)
        twins.append(twin)

    analysis = _Analysis(control.grid, control.config.truncation)
    records: list[list[dict[str, float]]] = []
    control_t, control_v, control_ps = [], [], []
    times = [0.0]
    initial = [difference_metrics(analysis, twin.fields(), state) for twin in twins]
    records.append(initial)
    for sample in range(n_samples):
        for model in [control] + twins:
            failure = model.advance(steps_per_sample)
            if failure is not None:
                raise ValueError(f"twin experiment: a run crashed at day {failure.time_days:g}: {failure.reason}")
        reference = control.fields()
        control_t.append(reference["t"])
        control_v.append(reference["v"])
        control_ps.append(reference["ps"])
        records.append([difference_metrics(analysis, twin.fields(), reference) for twin in twins])
        times.append((sample + 1) * steps_per_sample * control.config.dt / 86400.0)
        if progress is not None:
            progress(times[-1])

    names = list(records[0][0])
    data = {name: (("time", "twin"), np.array([[r[name] for r in row] for row in records])) for name in names}
    curves = xr.Dataset(data, coords={"time": ("time", np.array(times)), "twin": np.arange(1, n_twins + 1)})
    units = {"rms_v": "m s-1", "rms_ps": "hPa"}
    for name in names:
        curves[name].attrs = {"units": units.get(name, "K"), "long_name": _long_name(name)}
    curves.time.attrs = {"units": "days", "long_name": f"days since the perturbation (model day {start_day:g})"}

    saturation = {"rms_t": _saturation(analysis, control_t), "rms_v": _saturation(analysis, control_v),
                  "rms_ps": _saturation(analysis, control_ps) / 100.0}
    fits = {}
    for name, level in saturation.items():
        mean = np.exp(np.log(np.maximum(curves[name].values, 1e-300)).mean(axis=1))
        fits[name] = fit_doubling_time(curves.time.values, mean, level)
        curves[name].attrs.update({"saturation": level, "doubling_days": fits[name].doubling_days,
                                   "fit_start_day": fits[name].start_day, "fit_end_day": fits[name].end_day})
    c = control.config
    curves.attrs = {"title": f"twin experiment, toy GCM {c.short_name()}, physics '{c.physics}'",
                    "start_day": start_day, "perturbation": kind, "amplitude_K": amplitude, "n_twins": n_twins,
                    "seed": seed, "reseed_physics": int(reseed_physics), "restart": str(restart),
                    "truncation": c.truncation, "dt": c.dt, "diffusion_order": c.diffusion_order,
                    "diffusion_time": c.diffusion_time, "robert_coefficient": c.robert_coefficient,
                    "williams_alpha": c.williams_alpha}
    return TwinResult(curves, fits)


def _saturation(analysis: _Analysis, samples: Sequence[np.ndarray]) -> float:
    """sqrt(2) x the RMS deviation of the control from its mean over the run."""
    stack = np.stack(samples)
    anomaly = stack - stack.mean(axis=0)
    return math.sqrt(2.0) * math.sqrt(float(np.mean([analysis.rms(a) ** 2 for a in anomaly])))


def _long_name(name: str) -> str:
    base = {"rms_t": "RMS temperature difference, twin - control",
            "rms_v": "RMS meridional-wind difference, twin - control",
            "rms_ps": "RMS surface-pressure difference, twin - control"}
    if name in base:
        return base[name]
    if name.startswith("rms_t_n_"):
        band = name[len("rms_t_n_"):]
        lo, hi = WAVENUMBER_BANDS[band]
        return f"RMS temperature difference in total wavenumbers {lo}-{hi} ({band})"
    band = name[len("rms_t_"):]
    lo, hi = LATITUDE_BANDS[band]
    return f"RMS temperature difference at {lo:g}-{hi:g} degrees latitude ({band})"


TABLE_DAYS = (0, 1, 2, 3, 5, 7, 10, 15, 20, 25, 30, 40, 50, 60, 90)


def twin_table(result: TwinResult) -> str:
    """The growth curves (geometric mean over the twins) at a few days, the
    fitted doubling times and the days the T difference reaches 0.1, 0.5 and
    1 K, as text."""
    c = result.curves
    mean = np.exp(np.log(c.where(c > 0)).mean("twin"))
    scales = [name for name in ("rms_t_n_planetary", "rms_t_n_synoptic", "rms_t_n_short") if name in c]
    bands = [f"rms_t_{name}" for name in LATITUDE_BANDS]
    header = (f"{c.attrs['title']}, from model day {c.attrs['start_day']:g}: {c.attrs['n_twins']} twin(s), "
              f"{c.attrs['perturbation']} noise of {c.attrs['amplitude_K']:g} K RMS on T (geometric means)")
    columns = ["day", "T [K]", "v [m/s]", "ps [hPa]"] + [n.split("_")[-1] for n in bands] + \
        ["n " + n.split("_")[-1] for n in scales]
    lines = [header, " ".join(f"{name:>12}" for name in columns)]
    for day in TABLE_DAYS:
        if day > float(c.time[-1]) + 1e-9:
            break
        row = mean.sel(time=day, method="nearest")
        values = [float(row[name]) for name in ["rms_t", "rms_v", "rms_ps"] + bands + scales]
        lines.append(f"{day:>12g} " + " ".join(f"{value:>12.4g}" for value in values))
    for name, label in (("rms_t", "T"), ("rms_v", "v"), ("rms_ps", "ps")):
        fit = result.fits[name]
        lines.append(f"doubling time of {label}: {fit.doubling_days:.2f} days (fit over days {fit.start_day:g}-"
                     f"{fit.end_day:g}; saturation {fit.saturation:.3g})")
    crossings = ", ".join(f"{k:g} K at day {result.crossing_day(k):.1f}" for k in (0.1, 0.5, 1.0))
    lines.append(f"T difference reaches {crossings}")
    return "\n".join(lines)
