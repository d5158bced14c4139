"""Output of the toy GCM: CF metadata, and the record writers of a run.

One output record per output interval holds, at the interval's end time,
the instantaneous state (``u, v, t, q, ps``, ``cell_methods = "time: point"``)
and the means over the interval (``u_mean, v_mean, t_mean, q_mean,
ps_mean``, ``cell_methods = "time: mean"``, the interval in ``time_bnds``).
``q`` and ``q_mean`` are written only for a moist model (``humidity = true``).
The moist physics adds its diagnostics (:data:`DIAGNOSTICS`: precipitation,
evaporation, surface fluxes, radiative fluxes, SST, insolation, cloud
fraction), as means over the interval.

Dimensions ``(time, lev, lat, lon)``: latitude south to north, longitude
east from 0, sigma level 1 at the top. ``time`` is in days since the start of
the model run, CF units ``days since 0001-01-01 00:00:00`` on a 360-day
calendar. Datasets are opened with ``decode_times=False`` so that ``time``
stays a number of days (xarray's default decoding gives cftime dates).

:class:`NetCDFWriter` writes netCDF4 incrementally: each record is flushed
to disk when written, so a run that dies keeps what it wrote.
:class:`MemoryWriter` builds the same Dataset in memory.
"""
from __future__ import annotations

import contextlib
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import numpy as np
import xarray as xr

from emulators.netcdf_files import check_netcdf_file
# netCDF4 is imported inside the functions that use it, so that importing this module does not load it
# (start-up time).

__all__ = ["FIELDS", "DIAGNOSTICS", "DIAGNOSTIC_ORDER", "TIME_UNITS", "CALENDAR", "Grid", "Record", "NetCDFWriter", "MemoryWriter",
           "open_output", "open_outputs", "state_dataset", "netcdf_attrs"]

TIME_UNITS = "days since 0001-01-01 00:00:00"
CALENDAR = "360_day"

FIELDS: dict[str, dict[str, str]] = {
    "u": {"standard_name": "eastward_wind", "long_name": "eastward wind", "units": "m s-1"},
    "v": {"standard_name": "northward_wind", "long_name": "northward wind", "units": "m s-1"},
    "t": {"standard_name": "air_temperature", "long_name": "air temperature", "units": "K"},
    "q": {"standard_name": "specific_humidity", "long_name": "specific humidity", "units": "kg kg-1"},
    "ps": {"standard_name": "surface_air_pressure", "long_name": "surface pressure", "units": "Pa"},
}
"""CF attributes of the state variables; ps is 2-D (lat, lon), the others 3-D."""

DIAGNOSTICS: dict[str, dict[str, str]] = {
    "PRECT": {"standard_name": "precipitation_flux", "long_name": "precipitation", "units": "kg m-2 s-1"},
    "QFLX": {"standard_name": "water_evaporation_flux", "long_name": "surface evaporation",
             "units": "kg m-2 s-1"},
    "SHFLX": {"standard_name": "surface_upward_sensible_heat_flux", "long_name": "surface sensible heat flux",
              "units": "W m-2"},
    "LHFLX": {"standard_name": "surface_upward_latent_heat_flux", "long_name": "surface latent heat flux",
              "units": "W m-2"},
    "SST": {"standard_name": "sea_surface_temperature", "long_name": "sea surface temperature (Qobs)",
            "units": "K"},
    "SOLIN": {"standard_name": "toa_incoming_shortwave_flux", "long_name": "solar insolation", "units": "W m-2"},
    "FSNT": {"standard_name": "toa_net_downward_shortwave_flux", "long_name": "net shortwave flux at the top",
             "units": "W m-2"},
    "FSNS": {"standard_name": "surface_net_downward_shortwave_flux",
             "long_name": "net shortwave flux at the surface", "units": "W m-2"},
    "FLNT": {"standard_name": "toa_net_upward_longwave_flux", "long_name": "net longwave flux at the top (OLR)",
             "units": "W m-2"},
    "FLNS": {"standard_name": "surface_net_upward_longwave_flux", "long_name": "net longwave flux at the surface",
             "units": "W m-2"},
    "PRECC": {"standard_name": "convective_precipitation_flux", "long_name": "convective precipitation",
              "units": "kg m-2 s-1"},
    "QFILL": {"long_name": "water added to negative humidity by the dynamical core's filler (global mean)",
              "units": "kg m-2 s-1"},
    "CLOUD": {"standard_name": "cloud_area_fraction_in_atmosphere_layer",
              "long_name": "cloud fraction (mean of the subcolumns)", "units": "1"},
    "GUARD_FLAGGED": {"long_name": "fraction of physics steps with the column's emulator inputs flagged out of "
                                   "the training distribution", "units": "1"},
    "PHYS_FALLBACK": {"long_name": "fraction of physics steps with the column computed by the reference "
                                   "physics (emulator guard: fallback)", "units": "1"},
    "GUARD_FLAGGED_GLOBAL": {"long_name": "area-weighted global mean of GUARD_FLAGGED", "units": "1"},
    "PHYS_FALLBACK_GLOBAL": {"long_name": "area-weighted global mean of PHYS_FALLBACK", "units": "1"},
    "FINETUNE_LOSS": {"long_name": "online fine-tuning loss: mean over the interval's rounds of the mean squared "
                                   "error of the emulator's normalized outputs against the reference physics on "
                                   "the round's columns, before the round's update (NaN: no round)", "units": "1"},
}
"""CF attributes of the moist physics' diagnostics (CAM names and signs: SW
net downward, LW net upward, fluxes positive upward). All are means over the
output interval of the values of every physics step; CLOUD is 3-D; only
the reference physics diagnoses CLOUD and PRECC (the convective part of PRECT)."""

DIAGNOSTIC_ORDER = ("PRECT", "QFLX", "SHFLX", "LHFLX", "SST", "SOLIN", "FSNT", "FSNS", "FLNT", "FLNS")
"""The 2-D diagnostics in the order of the binding's gcm_get_diag_mean."""
GUARD_DIAGNOSTICS = ("GUARD_FLAGGED", "PHYS_FALLBACK")
"""The emulator guard's 2-D diagnostics, after DIAGNOSTIC_ORDER in the binding's
gcm_get_diag_mean; written (with their ``_GLOBAL`` series) only by a run with a guard."""


@dataclass(frozen=True)
class Grid:
    """Coordinates of a model: Gaussian latitudes [degrees_north] south to
    north and their weights (sum 2), longitudes [degrees_east], sigma of the
    full levels (top first) and of the nlev+1 half levels."""

    lat: np.ndarray
    lon: np.ndarray
    weight: np.ndarray
    sigma: np.ndarray
    sigma_half: np.ndarray

    @property
    def shape(self) -> tuple[int, int, int]:
        """(nlev, nlat, nlon)."""
        return len(self.sigma), len(self.lat), len(self.lon)

    def global_mean(self, field: np.ndarray) -> float:
        """The area-weighted (Gaussian weights) mean of a (lat, lon) field."""
        return float(np.sum(np.asarray(field).mean(axis=-1) * self.weight) / np.sum(self.weight))

    def coordinates(self) -> dict[str, tuple[tuple[str, ...], np.ndarray, dict[str, Any]]]:
        """name -> (dims, values, CF attributes) of the static coordinates."""
        return {
            "lev": (("lev",), self.sigma, {
                "standard_name": "atmosphere_sigma_coordinate", "long_name": "sigma at full levels (k = 1 at the top)",
                "units": "1", "positive": "down", "axis": "Z", "bounds": "lev_bnds",
                "formula_terms": "sigma: lev ps: ps ptop: ptop"}),
            "lat": (("lat",), self.lat, {
                "standard_name": "latitude", "long_name": "latitude (Gaussian)", "units": "degrees_north",
                "axis": "Y"}),
            "lon": (("lon",), self.lon, {
                "standard_name": "longitude", "long_name": "longitude", "units": "degrees_east", "axis": "X"}),
        }

    def auxiliary(self) -> dict[str, tuple[tuple[str, ...], np.ndarray, dict[str, Any]]]:
        """Static non-coordinate variables: level bounds, model top, Gaussian weights."""
        return {
            "lev_bnds": (("lev", "nv"), np.stack([self.sigma_half[:-1], self.sigma_half[1:]], axis=1),
                         {"long_name": "sigma at the half levels bounding each level", "units": "1"}),
            "ptop": ((), np.float64(0.0), {"long_name": "pressure at the model top", "units": "Pa"}),
            "gw": (("lat",), self.weight, {"long_name": "Gaussian quadrature weights (sum 2)", "units": "1"}),
        }


@dataclass
class Record:
    """One output record: the state at `time` [days] and the means over
    (`start`, `time`] [days]; fields in (lev, lat, lon) / (lat, lon)."""

    time: float
    start: float
    instant: Mapping[str, np.ndarray]
    mean: Mapping[str, np.ndarray]
    diagnostics: Mapping[str, np.ndarray] | None = None
    """physics diagnostics (interval means), by their DIAGNOSTICS names"""

    def source(self, name: str) -> np.ndarray:
        """The values of an output variable ('t', 't_mean', 'PRECT', ...)."""
        if name in DIAGNOSTICS:
            return (self.diagnostics or {})[name]
        return (self.mean if name.endswith("_mean") else self.instant)[name.removesuffix("_mean")]


def _time_attrs() -> dict[str, str]:
    return {"standard_name": "time", "long_name": "model time", "units": TIME_UNITS, "calendar": CALENDAR,
            "axis": "T", "bounds": "time_bnds"}


def variable_attrs(name: str, dt: float) -> dict[str, str]:
    """CF attributes of an output variable ('t', 't_mean', ...); dt [s] is the
    sampling interval of the means."""
    if name in DIAGNOSTICS:
        attrs = dict(DIAGNOSTICS[name])
        attrs["cell_methods"] = f"time: mean (interval: {dt:g} s)"
        return attrs
    attrs = dict(FIELDS[name.removesuffix("_mean")])
    if name.endswith("_mean"):
        attrs["long_name"] += ", mean over the output interval"
        attrs["cell_methods"] = f"time: mean (interval: {dt:g} s)"
    else:
        attrs["cell_methods"] = "time: point"
    return attrs


def _dims(name: str) -> tuple[str, ...]:
    if name in DIAGNOSTICS:
        if name in ("QFILL", "FINETUNE_LOSS") or name.endswith("_GLOBAL"):
            return ("time",)
        return ("time", "lev", "lat", "lon") if name == "CLOUD" else ("time", "lat", "lon")
    return ("time", "lat", "lon") if name.removesuffix("_mean") == "ps" else ("time", "lev", "lat", "lon")


def netcdf_attrs(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """netCDF attributes: no None, bools as 0/1, numpy scalars as Python values."""
    out = {}
    for key, value in attrs.items():
        if value is None:
            continue
        if isinstance(value, (bool, np.bool_)):
            value = int(value)
        elif isinstance(value, np.generic):
            value = value.item()
        out[key] = value
    return out


class NetCDFWriter:
    """Writes records to a netCDF4 file as they come, flushed one by one."""

    def __init__(self, path: str | os.PathLike, grid: Grid, names: list[str], dt: float, dtype: str,
                 attrs: Mapping[str, Any], overwrite: bool = False):
        import netCDF4

        self.path = Path(path)
        if self.path.exists() and not overwrite:
            raise FileExistsError(f"{self.path} exists (choose another output, or overwrite=True / --overwrite)")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.names = names
        self._nc = netCDF4.Dataset(self.path, "w", format="NETCDF4")
        nc = self._nc
        nlev, nlat, nlon = grid.shape
        nc.createDimension("time", None)
        nc.createDimension("lev", nlev)
        nc.createDimension("lat", nlat)
        nc.createDimension("lon", nlon)
        nc.createDimension("nv", 2)
        for name, (dims, values, var_attrs) in {**grid.coordinates(), **grid.auxiliary()}.items():
            var = nc.createVariable(name, "f8", dims, fill_value=False)
            var.setncatts(var_attrs)
            var[...] = values
        var = nc.createVariable("time", "f8", ("time",), fill_value=False)
        var.setncatts(_time_attrs())
        var = nc.createVariable("time_bnds", "f8", ("time", "nv"), fill_value=False)
        var.setncatts({"long_name": "start and end of the output interval", "units": TIME_UNITS,
                       "calendar": CALENDAR})
        for name in names:
            dims = _dims(name)
            chunks = [1] + [len(nc.dimensions[d]) for d in dims[1:]]
            var = nc.createVariable(name, "f4" if dtype == "float32" else "f8", dims, fill_value=False,
                                    chunksizes=chunks)
            var.setncatts(variable_attrs(name, dt))
        nc.setncatts(netcdf_attrs(attrs))
        nc.sync()
        self.n_records = 0

    def write(self, record: Record) -> None:
        """Append a record and flush it to disk."""
        nc, i = self._nc, self.n_records
        nc["time"][i] = record.time
        nc["time_bnds"][i, :] = [record.start, record.time]
        for name in self.names:
            nc[name][i, ...] = record.source(name)
        nc.sync()
        self.n_records += 1

    def set_attrs(self, attrs: Mapping[str, Any]) -> None:
        """Set (or replace) global attributes, flushed to disk."""
        self._nc.setncatts(netcdf_attrs(attrs))
        self._nc.sync()

    def close(self) -> None:
        if self._nc.isopen():
            self._nc.close()

    def dataset(self) -> xr.Dataset:
        """The file, opened lazily (Dask chunks of one record)."""
        self.close()
        return open_output(self.path)


class MemoryWriter:
    """Collects records and returns the Dataset the file would hold."""

    def __init__(self, grid: Grid, names: list[str], dt: float, dtype: str, attrs: Mapping[str, Any]):
        self.grid, self.names, self.dt, self.dtype = grid, names, dt, np.dtype(dtype)
        self.attrs = netcdf_attrs(attrs)
        self.records: list[Record] = []
        self.n_records = 0

    def write(self, record: Record) -> None:
        self.records.append(Record(record.time, record.start,
                                   {k: np.asarray(v, self.dtype) for k, v in record.instant.items()},
                                   {k: np.asarray(v, self.dtype) for k, v in record.mean.items()},
                                   {k: np.asarray(v, self.dtype) for k, v in (record.diagnostics or {}).items()}))
        self.n_records += 1

    def set_attrs(self, attrs: Mapping[str, Any]) -> None:
        self.attrs.update(netcdf_attrs(attrs))

    def close(self) -> None:
        pass

    def dataset(self) -> xr.Dataset:
        grid = self.grid
        coords = {name: xr.Variable(dims, values, attrs) for name, (dims, values, attrs) in grid.coordinates().items()}
        times = np.array([r.time for r in self.records], dtype=np.float64)
        coords["time"] = xr.Variable(("time",), times, _time_attrs())
        data: dict[str, xr.Variable] = {
            name: xr.Variable(dims, values, attrs) for name, (dims, values, attrs) in grid.auxiliary().items()}
        data["time_bnds"] = xr.Variable(
            ("time", "nv"), np.array([[r.start, r.time] for r in self.records], np.float64).reshape(-1, 2),
            {"long_name": "start and end of the output interval", "units": TIME_UNITS, "calendar": CALENDAR})
        nlev, nlat, nlon = grid.shape
        for name in self.names:
            shape = {1: (), 3: (nlat, nlon)}.get(len(_dims(name)), (nlev, nlat, nlon))
            values = (np.stack([r.source(name) for r in self.records]) if self.records
                      else np.zeros((0, *shape), self.dtype))
            data[name] = xr.Variable(_dims(name), values, variable_attrs(name, self.dt))
        return xr.Dataset(data, coords=coords, attrs=dict(self.attrs))


def open_output(path: str | os.PathLike | list, chunks: Mapping[str, int] | None = None) -> xr.Dataset:
    """Open one output file (or several, one time series) lazily, with
    ``time`` kept in days.

    Several files are put in order of the model time they start at and
    concatenated in time. Where they overlap, as a run that was killed and
    the run restarted from one of its checkpoints do, the later-starting
    file supersedes the earlier one from its start on: the earlier file's
    records after that time are dropped, so that no time appears twice and
    the series is the uninterrupted run's (restarts are bit for bit). Two
    files that start at the same time are refused (neither supersedes the
    other)."""
    chunks = {"time": 1} if chunks is None else chunks
    paths = [os.fspath(p) for p in path] if isinstance(path, (list, tuple)) else [os.fspath(path)]
    for one in paths:   # a clear line naming the file, before xarray's list of backends or an HDF error
        check_netcdf_file(one)
    if not isinstance(path, (list, tuple)):
        return _open_one(paths[0], chunks)
    opened: list[xr.Dataset] = []
    try:
        for one in paths:
            opened.append(_open_one(one, chunks))
        return _series(opened, paths)
    except BaseException:
        for ds in opened:
            ds.close()
        raise


def _open_one(path: str, chunks: Mapping[str, int]) -> xr.Dataset:
    try:
        return xr.open_dataset(path, decode_times=False, chunks=chunks)
    except OSError as exc:   # the header was netCDF, the rest is not readable
        raise ValueError(f"{path}: a corrupt or truncated netCDF file ({exc.strerror or exc})") from None


def _start_day(ds: xr.Dataset) -> float:
    """The model time [days] a file's run starts at: its ``start_time_days``,
    else the start of its first record."""
    if "start_time_days" in ds.attrs:
        return float(ds.attrs["start_time_days"])
    if "time_bnds" in ds and ds.sizes.get("time", 0):
        return float(ds["time_bnds"][0, 0])
    return float(ds["time"][0]) if ds.sizes.get("time", 0) else math.inf


def _series(datasets: list[xr.Dataset], paths: list[str]) -> xr.Dataset:
    """One time series of runs' files: ordered by start, each cut where the
    next one starts (see :func:`open_output`)."""
    starts = [_start_day(ds) for ds in datasets]
    order = sorted(range(len(datasets)), key=lambda i: starts[i])
    for a, b in zip(order, order[1:]):
        if starts[a] == starts[b]:
            raise ValueError(f"{paths[a]}, {paths[b]}: both start at day {starts[a]:g}; which one is the run "
                             "to keep is not for open_output to guess")
    pieces = []
    for position, i in enumerate(order):
        ds = datasets[i]
        if position + 1 < len(order):
            ds = ds.isel(time=np.flatnonzero(ds["time"].values <= starts[order[position + 1]]))
        pieces.append(ds)
    combined = xr.concat(pieces, dim="time", data_vars="minimal", coords="minimal", compat="override",
                         join="override", combine_attrs="override")
    combined.set_close(lambda: [ds.close() for ds in datasets])
    return combined


@contextlib.contextmanager
def open_outputs(paths: Iterable[str | os.PathLike]) -> Iterator[list[xr.Dataset]]:
    """Several output files, each opened as by :func:`open_output`, as a list
    that is closed again when the ``with`` block ends."""
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(open_output(path)) for path in paths]


def state_dataset(grid: Grid, fields: Mapping[str, np.ndarray], time_days: float,
                  attrs: Mapping[str, Any] | None = None) -> xr.Dataset:
    """A model state (fields in (lev, lat, lon) / (lat, lon)) as a Dataset
    with CF attributes and a scalar time coordinate [days]."""
    coords = {name: xr.Variable(dims, values, a) for name, (dims, values, a) in grid.coordinates().items()}
    time_attrs = _time_attrs()
    del time_attrs["bounds"]
    coords["time"] = xr.Variable((), np.float64(time_days), time_attrs)
    data = {}
    for name, values in fields.items():
        attrs_v = dict(FIELDS[name])
        dims = ("lat", "lon") if name == "ps" else ("lev", "lat", "lon")
        data[name] = xr.Variable(dims, values, attrs_v)
    return xr.Dataset(data, coords=coords, attrs=dict(attrs or {}))
