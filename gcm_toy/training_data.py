"""Training data for emulators from a run of the toy GCM.

A moist run (physics ``reference``, usually) keeps, after every physics step,
the emulator interface's inputs and outputs of every column
(:meth:`gcm_toy.Model.training_batch`). :func:`write_training_data` samples
them every ``interval_hours`` of model time and appends them to a netCDF4
file with exactly the names, units and dimensions of
:mod:`emulators.interface` — ``T, Q`` and ``TPHYSTND, PHQ`` on (time, lev,
lat, lon), ``PS, SOLIN, SHFLX, LHFLX, FSNT, FSNS, FLNT, FLNS, PRECT`` on
(time, lat, lon) — so that :func:`emulators.data.open_dataset` and
:func:`emulators.train.train_emulator` read it directly; ``lev_bnds``, the
half levels, gives the level thicknesses (for the column-water-conservation
layer).

A sample's ``time`` [days] is the model time of the state the physics saw
(the dycore hands the physics time level n-1 of its leapfrog step); the
outputs are what the cloud and radiation physics returned for it.

``fkb data`` (:func:`add_data_arguments`, :func:`run_data`) spins a preset
up, writes the samples of the next days and the run's final checkpoint (so
that coupled runs can start from the state where the data end).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import xarray as xr

from emulators import interface
from gcm_toy.config import MOIST_PHYSICS, parse_overrides, steps_for_days
from gcm_toy.model import Model
from emulators.progress import add_progress_option
from emulators.provenance import with_history
from gcm_toy.output import CALENDAR, TIME_UNITS, Grid, netcdf_attrs
from gcm_toy.run import day_label, days_progress_bar

# netCDF4 is imported inside the functions that use it, so that importing this module does not load it
# (start-up time).

__all__ = ["TrainingDataWriter", "write_training_data", "add_data_arguments", "run_data"]


def _interface():
    return interface


class TrainingDataWriter:
    """Appends samples of every column to a netCDF4 file, one time step per
    chunk, flushed sample by sample (float32 by default)."""

    def __init__(self, path: str | os.PathLike, grid: Grid, attrs: Mapping[str, Any], *,
                 dtype: str = "float32", overwrite: bool = False):
        import netCDF4

        interface = _interface()
        self.path = Path(path)
        if self.path.exists() and not overwrite:
            raise FileExistsError(f"{self.path} exists (choose another output, or overwrite)")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        nlev, nlat, nlon = grid.shape
        self.nlev, self.nlat, self.nlon = nlev, nlat, nlon
        self.n_samples = 0
        self._nc = nc = netCDF4.Dataset(self.path, "w", format="NETCDF4")
        nc.createDimension("time", None)
        nc.createDimension(interface.LEVEL_DIM, nlev)
        nc.createDimension("lat", nlat)
        nc.createDimension("lon", nlon)
        coords = {interface.LEVEL_DIM: grid.sigma, "lat": grid.lat, "lon": grid.lon}
        for name, values in coords.items():
            var = nc.createVariable(name, "f8", (name,), fill_value=False)
            var.setncatts(dict(interface.COORDINATE_ATTRS[name]))
            var[:] = values
        # the half levels bounding each level (CF bounds): the level thicknesses
        # that a column budget (emulators.data.level_thickness) needs
        nc.variables[interface.LEVEL_DIM].setncattr("bounds", "lev_bnds")
        nc.createDimension("nv", 2)
        var = nc.createVariable("lev_bnds", "f8", (interface.LEVEL_DIM, "nv"), fill_value=False)
        var.setncatts({"long_name": "sigma at the half levels bounding each level", "units": "1"})
        var[:] = np.stack([grid.sigma_half[:-1], grid.sigma_half[1:]], axis=1)
        var = nc.createVariable("time", "f8", ("time",), fill_value=False)
        var.setncatts({**interface.COORDINATE_ATTRS["time"], "units": TIME_UNITS, "calendar": CALENDAR})
        var = nc.createVariable("gw", "f8", ("lat",), fill_value=False)
        var.setncatts({"long_name": "Gaussian quadrature weights (sum 2)", "units": "1"})
        var[:] = grid.weight
        code = "f4" if dtype == "float32" else "f8"
        self.variables = list(interface.INPUT_VARIABLES) + list(interface.OUTPUT_VARIABLES)
        for name in self.variables:
            dims = interface.VARIABLES[name].dims
            chunks = [1] + [len(nc.dimensions[d]) for d in dims[1:]]
            var = nc.createVariable(name, code, dims, fill_value=False, chunksizes=chunks)
            var.setncatts(interface.variable_attrs(name))
        nc.setncatts(netcdf_attrs(attrs))
        nc.sync()

    def write(self, time_days: float, x: np.ndarray, y: np.ndarray) -> None:
        """Append one sample of every column: x (ncol, 2 nlev + 4) and y
        (ncol, 2 nlev + 5), rows in C order of (lat, lon), as
        :meth:`gcm_toy.Model.training_batch` returns them."""
        interface = _interface()
        nlev, nlat, nlon = self.nlev, self.nlat, self.nlon
        like = xr.Dataset(coords={"time": [time_days], interface.LEVEL_DIM: np.arange(nlev),
                                  "lat": np.arange(nlat), "lon": np.arange(nlon)})
        fields = interface.unstack(x, interface.INPUT_VARIABLES, like)
        fields = fields.merge(interface.unstack(y, interface.OUTPUT_VARIABLES, like))
        i = self.n_samples
        self._nc["time"][i] = time_days
        for name in self.variables:
            dims = interface.VARIABLES[name].dims
            self._nc[name][i, ...] = fields[name].transpose(*dims).values[0]
        self._nc.sync()
        self.n_samples += 1

    def set_attrs(self, attrs: Mapping[str, Any]) -> None:
        self._nc.setncatts(netcdf_attrs(attrs))
        self._nc.sync()

    def close(self) -> None:
        if self._nc.isopen():
            self._nc.close()


def write_training_data(model: Model, days: float, out: str | os.PathLike, *, interval_hours: float = 6.0,
                        spinup_days: float = 0.0, overwrite: bool = False, dtype: str = "float32",
                        progress: bool | None = None) -> Path:
    """Run `model` for `spinup_days`, then `days` more, sampling the emulator
    inputs and outputs of every column every `interval_hours` [h] (the step
    that ends each interval) into the netCDF4 file `out`. `model` must have
    the moist physics and be created with ``keep_training_batch=True``. A run
    that fails the crash check raises RuntimeError (training data come from a
    healthy run); the file keeps the samples written before, with
    ``run_status = "crashed"``. Returns the path."""
    config = model.config
    if config.physics not in MOIST_PHYSICS:
        raise ValueError(f"training data need the moist physics (physics = reference), not {config.physics!r}")
    dt = config.dt
    per_sample = steps_for_days(interval_hours / 24.0, dt, "interval_hours")
    n_spinup = steps_for_days(spinup_days, dt, "spinup_days")
    n_steps = steps_for_days(days, dt, "days")
    if n_steps < per_sample:
        raise ValueError(f"option 'days': {days:g} days hold no sample interval of {interval_hours:g} h")
    bar = days_progress_bar(progress, (n_spinup + n_steps) * dt / 86400.0, model.time_days, "training data")
    try:
        failure = model.advance(n_spinup)
        bar.update(n_spinup * dt / 86400.0)
        if failure is not None:
            raise RuntimeError(f"the spin-up crashed at day {failure.time_days:g}: {failure.reason}")
        attrs = with_history({
            "title": f"emulator training data from the toy GCM {config.short_name()}, physics '{config.physics}'",
            "source": "gcm_toy: inputs and outputs of the cloud and radiation physics of every column "
                      "(emulators.interface)",
            "physics": config.physics,
            "configuration": config.to_toml(),
            "sample_interval_hours": interval_hours,
            "spinup_days": spinup_days,
            "run_status": "running",
        }, note=f"gcm_toy training data, {days:g} days after day {model.time_days:g}, every {interval_hours:g} h")
        writer = TrainingDataWriter(out, model.grid, attrs, dtype=dtype, overwrite=overwrite)
        try:
            for _ in range(n_steps // per_sample):
                failure = model.advance(per_sample)
                if failure is not None:
                    writer.set_attrs({"run_status": "crashed", **failure.attrs()})
                    raise RuntimeError(f"the run crashed at day {failure.time_days:g}: {failure.reason}")
                x, y, labels = model.training_batch()
                writer.write(labels["time_days"], x, y)
                bar.update(per_sample * dt / 86400.0)
            rest = n_steps % per_sample
            failure = model.advance(rest)
            if failure is not None:
                writer.set_attrs({"run_status": "crashed", **failure.attrs()})
                raise RuntimeError(f"the run crashed at day {failure.time_days:g}: {failure.reason}")
            bar.update(rest * dt / 86400.0)
            writer.set_attrs({"run_status": "completed", "end_time_days": model.time_days})
        finally:
            writer.close()
    finally:
        bar.close()
    return Path(out)


# ------------------------------------------------------------------ fkb data
def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``fkb data``."""
    parser.add_argument("--preset", default=None,
                        help="GCM preset or TOML file with the moist physics (default: aquaplanet; with "
                             "--restart: the checkpoint's configuration)")
    parser.add_argument("--days", type=float, required=True, help="days of samples after the spin-up")
    parser.add_argument("--spinup-days", type=float, default=0.0, help="days run first, not sampled (default: 0)")
    parser.add_argument("--interval-hours", type=float, default=6.0, metavar="H",
                        help="one sample of every column every H hours of model time (default: %(default)s)")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="output folder: DIR/training.nc and DIR/checkpoint_dayNNNNN.bin (+ .toml)")
    parser.add_argument("--restart", default=None, metavar="CHECKPOINT",
                        help="start from this checkpoint instead of the preset's initial state")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a GCM option (repeatable; see `fkb gcm options`)")
    parser.add_argument("--precision", choices=("float32", "float64"), default="float32",
                        help="precision of the stored samples (default: %(default)s)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing training.nc")
    add_progress_option(parser)


def run_data(args: argparse.Namespace) -> tuple[Path, Path]:
    """``fkb data``: the training dataset and the final checkpoint of a run."""
    overrides = parse_overrides(args.set)
    if args.restart:
        from gcm_toy.config import verified_checkpoint_config

        config = args.preset or verified_checkpoint_config(args.restart)
        model = Model(config, overrides, initial_state=False, keep_training_batch=True)
        model.load_checkpoint(args.restart)
    else:
        model = Model(args.preset or "aquaplanet", overrides, keep_training_batch=True)
    out = Path(args.out)
    with model:
        path = write_training_data(model, args.days, out / "training.nc", interval_hours=args.interval_hours,
                                   spinup_days=args.spinup_days, overwrite=args.overwrite, dtype=args.precision,
                                   progress=args.progress)
        checkpoint = model.save_checkpoint(out / f"checkpoint_day{day_label(model.time_days)}.bin")
    with xr.open_dataset(path, decode_times=False) as ds:
        n = ds.sizes["time"]
        first, last = (float(ds.time[0]), float(ds.time[-1])) if n else (float("nan"), float("nan"))
        columns = ds.sizes["lat"] * ds.sizes["lon"]
    print(f"wrote {path} ({n} samples of {columns} columns, days {first:g}-{last:g}) and {checkpoint}",
          file=sys.stdout)
    return path, checkpoint
