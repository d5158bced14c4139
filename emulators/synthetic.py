"""A synthetic training dataset with the layout of the GCM's reference run.

Until the toy GCM writes real data, the emulator pipeline is developed and
tested against this dataset: the interface's variables (see
:mod:`emulators.interface`) on (time, lev, lat, lon), with CF attributes, in
physically plausible ranges. The outputs are smooth nonlinear functions of
the inputs of the same column (a convective heating/drying that switches on
with low-level humidity and surface evaporation, radiative cooling, solar
heating by water vapour, a cloud fraction that dims the shortwave and traps
longwave, precipitation that closes the column water budget) plus noise, so
a network has something to learn and cannot learn it exactly.

The inputs vary smoothly in space and time (a sum of travelling waves with
seeded amplitudes and phases) plus white noise; a diurnal cycle drives the
insolation. Any block of time steps is generated on its own, so a dataset
larger than memory is written block by block.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import xarray as xr

from emulators.atomic_files import replacing
from emulators.interface import COORDINATE_ATTRS, INPUT_VARIABLES, LEVEL_DIM, OUTPUT_VARIABLES, VARIABLES, variable_attrs
from emulators.provenance import with_history

# netCDF4 is imported inside the functions that use it, so that importing this module does not load it
# (start-up time).

__all__ = ["synthetic_dataset", "write_synthetic_dataset", "TIME_UNITS", "TIME_STEP_DAYS"]

TIME_UNITS = "days since 2000-01-01 00:00:00"
CALENDAR = "proleptic_gregorian"
TIME_STEP_DAYS = 0.25  # one sample every 6 hours, as a GCM's output interval

# Physical constants (SI), the toy GCM's (docs/gcm-dynamics.md, "Physical constants").
GRAVITY = 9.80616       # m s-2
CP = 1004.64            # J kg-1 K-1
LV = 2.5e6              # J kg-1
RV = 461.5              # J kg-1 K-1
SOLAR_CONSTANT = 1360.0  # W m-2
STEFAN_BOLTZMANN = 5.67e-8
SECONDS_PER_DAY = 86400.0

_N_WAVES = 6  # travelling waves per anomaly field
_N_FIELDS = 6  # independent anomaly fields


def _grid(nlev: int, nlat: int, nlon: int) -> dict[str, np.ndarray]:
    sigma = (np.arange(nlev) + 0.5) / nlev
    lat = -90.0 + (np.arange(nlat) + 0.5) * 180.0 / nlat
    lon = np.arange(nlon) * 360.0 / nlon
    return {"lev": sigma, "lat": lat, "lon": lon}


def _wave_parameters(seed: int) -> np.random.Generator:
    return np.random.default_rng([seed, 0])


def _anomalies(time_days: np.ndarray, lat: np.ndarray, lon: np.ndarray, seed: int) -> np.ndarray:
    """Smooth fields of unit RMS, shape (_N_FIELDS, nt, nlat, nlon): sums of
    waves travelling in longitude with seeded wavenumbers, periods and phases."""
    rng = _wave_parameters(seed)
    k = rng.integers(1, 5, (_N_FIELDS, _N_WAVES))
    m = rng.integers(1, 4, (_N_FIELDS, _N_WAVES))
    period = rng.uniform(2.0, 12.0, (_N_FIELDS, _N_WAVES)) * rng.choice([-1.0, 1.0], (_N_FIELDS, _N_WAVES))
    phase = rng.uniform(0.0, 2 * np.pi, (_N_FIELDS, _N_WAVES, 2))
    lam = np.deg2rad(lon)[None, None, :]
    phi = np.deg2rad(lat)[None, :, None]
    t = time_days[:, None, None]
    fields = np.zeros((_N_FIELDS, time_days.size, lat.size, lon.size))
    for f in range(_N_FIELDS):
        for w in range(_N_WAVES):
            fields[f] += (np.cos(k[f, w] * lam - 2 * np.pi * t / period[f, w] + phase[f, w, 0])
                          * np.cos(m[f, w] * phi + phase[f, w, 1]))
    return fields * np.sqrt(4.0 / _N_WAVES)


def _saturation_specific_humidity(t: np.ndarray, p: np.ndarray) -> np.ndarray:
    """kg kg-1, Clausius-Clapeyron over water."""
    es = 610.78 * np.exp(LV / RV * (1.0 / 273.16 - 1.0 / t))
    return 0.622 * es / np.maximum(p - 0.378 * es, 0.5 * p)


def _block(time_index: np.ndarray, grid: dict[str, np.ndarray], seed: int, noise: float) -> dict[str, np.ndarray]:
    """Inputs and outputs for the time steps ``time_index``; arrays (nt, nlev,
    nlat, nlon) for level variables and (nt, nlat, nlon) otherwise."""
    sigma, lat, lon = grid["lev"], grid["lat"], grid["lon"]
    nt = time_index.size
    time_days = time_index * TIME_STEP_DAYS
    # White noise is drawn per time step, so a block's values do not depend on
    # how the time axis is cut into blocks.
    white = np.stack([np.random.default_rng([seed, 1, int(i)]).standard_normal((8, sigma.size, lat.size, lon.size))
                      for i in time_index], axis=1)
    a = _anomalies(time_days, lat, lon, seed)
    s = sigma[None, :, None, None]
    phi = np.deg2rad(lat)[None, None, :, None]

    # ---- inputs
    t_surface = 300.0 - 45.0 * np.sin(phi) ** 2 + 3.0 * a[0][:, None]
    temperature = np.maximum(t_surface * s ** 0.19, 205.0 + 10.0 * s)  # troposphere, then an isothermal-ish top
    temperature = temperature + 2.0 * a[1][:, None] * np.sin(np.pi * (0.2 + 0.8 * s)) + 0.5 * white[0]
    ps = 1.0e5 + 800.0 * a[2] + 100.0 * white[1, :, 0]
    pressure = s * ps[:, None]
    rh = 0.1 + 0.85 / (1.0 + np.exp(-(1.5 * a[3][:, None] + 3.0 * (s - 0.55) + 0.3 * white[2])))
    q = rh * _saturation_specific_humidity(temperature, pressure)
    cos_zenith = np.cos(phi[:, 0]) * np.cos(2 * np.pi * (time_days[:, None, None] + lon[None, None, :] / 360.0) - np.pi)
    solin = SOLAR_CONSTANT * np.maximum(cos_zenith, 0.0)
    shflx = 15.0 + 10.0 * a[4] + 3.0 * white[3, :, 0]
    lhflx = 90.0 + 30.0 * np.cos(phi[:, 0]) ** 2 + 40.0 * a[5] + 10.0 * white[4, :, 0]

    # ---- outputs: smooth functions of the column's inputs
    low = s >= 0.7
    rh_low = (rh * low).sum(axis=1) / low.sum()
    mid = (s >= 0.3) & (s < 0.7)
    rh_mid = (rh * mid).sum(axis=1) / max(mid.sum(), 1)
    convection = np.log1p(np.exp(6.0 * (rh_low - 0.65) + (lhflx - 90.0) / 40.0))  # >= 0
    cloud = 1.0 / (1.0 + np.exp(-8.0 * (rh_mid - 0.55)))
    q_ratio = q / (q[:, -1:] + 1e-12)
    heating_profile = np.sin(np.pi * s) ** 2
    drying_profile = np.exp(-((s - 0.85) / 0.2) ** 2) * q_ratio
    radiative = (-1.5 + 6.0 * (solin / SOLAR_CONSTANT)[:, None] * q / (q + 3.0e-3)) * s
    heating = radiative + 3.0 * convection[:, None] * heating_profile  # K day-1
    dry = 3.0 * convection[:, None] * drying_profile * CP / LV  # kg kg-1 day-1
    tphystnd = heating / SECONDS_PER_DAY * (1.0 + noise * white[5])
    phq = -dry / SECONDS_PER_DAY * (1.0 + noise * white[6])
    dsigma = 1.0 / sigma.size
    prect = np.sum(-phq * dsigma, axis=1) * ps / GRAVITY  # closes the column water budget
    water_path = np.sum(q * dsigma, axis=1) * ps / GRAVITY  # kg m-2
    fsnt = solin * (0.9 - 0.35 * cloud)
    fsns = fsnt * (0.85 - 0.15 * water_path / 50.0) - 0.05 * solin * cloud
    t_mid = temperature[:, sigma.size // 2]
    t_low = temperature[:, -1]
    flnt = 0.9 * STEFAN_BOLTZMANN * t_mid ** 4 * (1.0 - 0.2 * cloud) + 30.0
    flns = STEFAN_BOLTZMANN * t_surface[:, 0] ** 4 - STEFAN_BOLTZMANN * t_low ** 4 * (
        0.72 + 0.2 * cloud + 0.05 * water_path / 50.0)
    daylight = solin / SOLAR_CONSTANT  # no shortwave noise at night
    scale = {"FSNT": 10.0 * daylight, "FSNS": 10.0 * daylight, "FLNT": 3.0, "FLNS": 3.0, "PRECT": 2.0e-6}
    out = {"T": temperature, "Q": q, "PS": ps, "SOLIN": solin, "SHFLX": shflx, "LHFLX": lhflx,
           "TPHYSTND": tphystnd, "PHQ": phq, "FSNT": fsnt, "FSNS": fsns, "FLNT": flnt, "FLNS": flns,
           "PRECT": prect}
    for i, name in enumerate(scale):
        out[name] = out[name] + noise * scale[name] * white[7, :, i % sigma.size]
    return {name: value.astype(np.float32) for name, value in out.items()}


def _dataset(block: dict[str, np.ndarray], time_index: np.ndarray, grid: dict[str, np.ndarray],
             seed: int, noise: float) -> xr.Dataset:
    coords = {
        "time": ("time", time_index * TIME_STEP_DAYS,
                 {**COORDINATE_ATTRS["time"], "units": TIME_UNITS, "calendar": CALENDAR}),
        LEVEL_DIM: (LEVEL_DIM, grid["lev"], dict(COORDINATE_ATTRS[LEVEL_DIM])),
        "lat": ("lat", grid["lat"], dict(COORDINATE_ATTRS["lat"])),
        "lon": ("lon", grid["lon"], dict(COORDINATE_ATTRS["lon"])),
    }
    data_vars = {name: (VARIABLES[name].dims, block[name], variable_attrs(name))
                 for name in INPUT_VARIABLES + OUTPUT_VARIABLES}
    nlev = grid["lev"].size          # equally spaced levels: half levels at k / nlev, as the toy GCM writes them
    half = np.arange(nlev + 1) / nlev
    coords[LEVEL_DIM][2]["bounds"] = "lev_bnds"
    data_vars["lev_bnds"] = ((LEVEL_DIM, "nv"), np.stack([half[:-1], half[1:]], axis=1),
                             {"long_name": "sigma at the half levels bounding each level", "units": "1"})
    attrs = with_history({"title": "synthetic emulator training data (emulators.synthetic)",
                          "source": f"emulators.synthetic seed={seed} noise={noise}"})
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)


def synthetic_dataset(n_time: int = 32, nlev: int = 10, nlat: int = 8, nlon: int = 16,
                      seed: int = 0, noise: float = 0.05) -> xr.Dataset:
    """An in-memory synthetic dataset with ``n_time`` steps of 6 hours.

    ``noise`` is the relative amplitude of the noise on the outputs. Time is
    numeric (days since 2000-01-01), as on disk before decoding.
    """
    _check_sizes(n_time, nlev, nlat, nlon)
    grid = _grid(nlev, nlat, nlon)
    time_index = np.arange(n_time)
    return _dataset(_block(time_index, grid, seed, noise), time_index, grid, seed, noise)


def write_synthetic_dataset(path: str | os.PathLike, n_time: int = 32, nlev: int = 10, nlat: int = 8,
                            nlon: int = 16, seed: int = 0, noise: float = 0.05,
                            time_block: int = 16) -> Path:
    """Write a synthetic dataset to netCDF4, ``time_block`` steps at a time, so
    its size is not limited by memory. Chunked on disk one time step per chunk
    (as a GCM writes it). Returns the path."""
    import netCDF4

    _check_sizes(n_time, nlev, nlat, nlon)
    if time_block < 1:
        raise ValueError(f"time_block must be at least 1, got {time_block}")
    path = Path(path)
    grid = _grid(nlev, nlat, nlon)
    first = np.arange(min(time_block, n_time))
    ds = _dataset(_block(first, grid, seed, noise), first, grid, seed, noise)
    encoding = {name: {"dtype": "float32", "chunksizes": (1, *ds[name].shape[1:])}
                for name in INPUT_VARIABLES + OUTPUT_VARIABLES}
    encoding["time"] = {"dtype": "float64"}
    with replacing(path) as tmp:
        ds.to_netcdf(tmp, format="NETCDF4", engine="netcdf4", unlimited_dims=["time"], encoding=encoding)
        with netCDF4.Dataset(tmp, "a") as nc:
            for start in range(first.size, n_time, time_block):
                index = np.arange(start, min(start + time_block, n_time))
                block = _block(index, grid, seed, noise)
                nc["time"][start:index[-1] + 1] = index * TIME_STEP_DAYS
                for name in INPUT_VARIABLES + OUTPUT_VARIABLES:
                    nc[name][start:index[-1] + 1] = block[name]
    return path


def _check_sizes(n_time: int, nlev: int, nlat: int, nlon: int) -> None:
    for label, value in (("n_time", n_time), ("nlev", nlev), ("nlat", nlat), ("nlon", nlon)):
        if int(value) < 1:
            raise ValueError(f"{label} must be at least 1, got {value}")
    if nlev < 3:
        raise ValueError(f"nlev must be at least 3 for the synthetic physics, got {nlev}")
