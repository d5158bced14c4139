"""netCDF files written whole and self-describing.

:func:`write_dataset` is how the project writes an xarray Dataset to disk:
through :func:`emulators.atomic_files.replacing` (a reader sees the old file
or the new one; a failure leaves the old one), with ``Conventions`` and a
``history`` line for the command (:mod:`emulators.provenance`); a file that
replaces an earlier one keeps the earlier file's history lines before its own.
Text variables are written as character arrays (netCDF ``char``, UTF-8),
the form CF and every netCDF reader know, and read back as text by xarray.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import xarray as xr

from emulators.atomic_files import replacing
from emulators.provenance import with_history

__all__ = ["write_dataset", "file_history", "check_netcdf_file"]


def check_netcdf_file(path: str | os.PathLike) -> None:
    """Refuse, with one line naming the file, what is not a netCDF file (by
    its first bytes: netCDF-3 'CDF', netCDF-4/HDF5; ValueError) or not a
    readable regular file (FileNotFoundError), before a reader says
    'NetCDF: HDF error' or lists xarray's backends."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file" if not os.path.exists(path) else
                                f"{path}: not a regular file")
    with open(path, "rb") as fh:
        magic = fh.read(8)
    if not (magic.startswith(b"CDF") or magic.startswith(b"\x89HDF\r\n\x1a\n")):
        raise ValueError(f"{path}: not a netCDF file" + (" (empty)" if not magic else ""))


def file_history(path: str | os.PathLike) -> str | None:
    """The ``history`` attribute of the netCDF file at `path`; None when
    there is no such file, it has none, or it cannot be read."""
    if not Path(path).is_file():
        return None
    import netCDF4

    try:
        with netCDF4.Dataset(path, "r") as nc:
            return str(nc.getncattr("history")) if "history" in nc.ncattrs() else None
    except (OSError, RuntimeError):
        return None


def _is_text(variable: xr.Variable) -> bool:
    """Whether `variable` holds text (a NumPy string array, or objects that
    are all str)."""
    if variable.dtype.kind == "U":
        return True
    if variable.dtype.kind != "O":
        return False
    values = variable.values.ravel()
    return all(isinstance(v, str) for v in values)


def write_dataset(dataset: xr.Dataset, path: str | os.PathLike, note: str | None = None,
                  **to_netcdf: Any) -> Path:
    """Write `dataset` to `path` (netCDF4) with ``Conventions`` and this
    command's ``history`` line (`note`: what it did, optional); `to_netcdf`:
    further arguments of :meth:`xarray.Dataset.to_netcdf` (e.g. encoding).
    `dataset` itself is not changed. Returns `path`."""
    stamped = dataset.copy(deep=False)
    stamped.attrs = with_history(dataset.attrs, note, previous=file_history(path))
    encoding = {name: {"dtype": "S1"} for name, variable in stamped.variables.items() if _is_text(variable)}
    for name, options in (to_netcdf.pop("encoding", None) or {}).items():
        encoding[name] = {**encoding.get(name, {}), **options}
    to_netcdf["encoding"] = encoding
    to_netcdf.setdefault("engine", "netcdf4")
    with replacing(path) as tmp:
        stamped.to_netcdf(tmp, **to_netcdf)
    return Path(path)
