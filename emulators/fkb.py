"""The Python handle on the Fortran runtime.

``load(path)`` returns a :class:`Network` whose ``predict`` runs the Fortran
library (``fortran/``) through the f2py extension ``emulators._fkb_runtime``:
the same code a Fortran climate model runs, not a Python re-implementation.

    >>> net = load("emulator.fkb")
    >>> y = net.predict(x)          # x: (n_samples, n_inputs), float32 or float64

A C-ordered ``(n, n_in)`` NumPy array is, byte for byte, the Fortran batch
``x(n_in, n)``, so inputs cross into Fortran without a copy.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from emulators import _fkb_runtime as _rt

__all__ = ["FKBError", "Network", "load", "STATUS_NAMES"]

STATUS_NAMES = {
    0: "ok",
    1: "io error",
    2: "format error",
    3: "unknown version",
    4: "hash mismatch",
    5: "unsupported",
    6: "shape error",
    7: "non-finite value",
    8: "invalid argument",
}


class FKBError(ValueError):
    """An error reported by the Fortran runtime; ``status`` is its code."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


def _message(raw) -> str:
    if isinstance(raw, np.ndarray):
        raw = raw.tobytes()
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    return str(raw).strip()


class Network:
    """A network loaded into the Fortran runtime.

    Computes in the precision of the input: float32 inputs run the 32-bit
    network, float64 inputs a 64-bit copy (loaded on first use).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._handles: dict[int, int] = {}
        handle = self._handle(32)
        n_in, n_out, n_params, stat = _rt.sizes(handle)
        self.n_inputs = int(n_in)
        self.n_outputs = int(n_out)
        self.n_params = int(n_params)

    def _handle(self, precision: int) -> int:
        if precision not in self._handles:
            handle, stat, msg = _rt.load(os.fspath(self.path), precision)
            if stat != 0:
                raise FKBError(_message(msg), int(stat))
            self._handles[precision] = int(handle)
        return self._handles[precision]

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Outputs ``(n, n_outputs)`` for inputs ``x`` of shape ``(n, n_inputs)``
        (or one sample of shape ``(n_inputs,)``), in x's precision."""
        x = np.asarray(x)
        if x.dtype not in (np.float32, np.float64):
            x = x.astype(np.float64 if x.dtype.kind == "f" and x.itemsize > 4 else np.float32)
        single = x.ndim == 1
        if single:
            x = x[np.newaxis, :]
        if x.ndim != 2 or x.shape[1] != self.n_inputs:
            raise FKBError(
                f"{self.path}: input has shape {x.shape}, expected (n, {self.n_inputs})", 6)
        x = np.ascontiguousarray(x)
        if x.dtype == np.float32:
            y, stat, msg = _rt.predict32(self._handle(32), x.T, self.n_outputs)
        else:
            y, stat, msg = _rt.predict64(self._handle(64), x.T, self.n_outputs)
        if stat != 0:
            raise FKBError(f"{self.path}: {_message(msg)}", int(stat))
        y = y.T
        return y[0] if single else y

    def close(self) -> None:
        """Free the Fortran memory of this network."""
        for handle in self._handles.values():
            _rt.release(handle)
        self._handles.clear()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __enter__(self) -> "Network":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"Network({str(self.path)!r}, n_inputs={self.n_inputs}, "
                f"n_outputs={self.n_outputs}, n_params={self.n_params})")


def load(path: str | os.PathLike) -> Network:
    """Load a model file (or an original FKB text file) into the Fortran runtime."""
    return Network(path)
