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
        trained = getattr(self, "_training_precision", None)
        if trained is not None and precision != trained:
            raise FKBError(
                f"{self.path}: the network is being trained at {trained} bit; pass "
                f"float{trained} arrays (the {precision}-bit copy has the file's weights)", 8)
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

    # ------------------------------------------------------------ training

    _HYPERPARAMETERS = ("learning_rate", "momentum", "rho", "beta_1", "beta_2",
                        "weight_decay", "initial_accumulator_value", "epsilon")
    _FLAGS = ("nesterov", "centered", "amsgrad")

    def compile(self, optimizer: str = "adam", loss: str = "mse", *, precision: int = 32,
                huber_delta: float = 1.0, schedule: dict | None = None, seed: int = 1,
                **hyperparameters: float | bool) -> None:
        """Prepare the Fortran network for training (``train_step``, ``fit``).

        ``optimizer``: ``sgd``, ``rmsprop``, ``adam``, ``adamw`` or ``adagrad``,
        with Keras 3's defaults; override them by keyword (``learning_rate``,
        ``momentum``, ``nesterov``, ``rho``, ``centered``, ``beta_1``,
        ``beta_2``, ``amsgrad``, ``weight_decay``,
        ``initial_accumulator_value``, ``epsilon``). ``loss``: ``mse``,
        ``mae``, ``huber`` (``huber_delta``, in normalized output units) or
        ``log_cosh``. ``schedule``: ``{"kind": "exponential",
        "initial_learning_rate", "decay_steps", "decay_rate", "staircase"}`` or
        ``{"kind": "step", "initial_learning_rate", "step_size", "factor"}``.
        Training runs in ``precision`` (32 or 64) bits; afterwards the network
        takes arrays of that precision only. Optimizer state starts afresh;
        ``seed`` seeds the dropout masks.
        """
        unknown = set(hyperparameters) - set(self._HYPERPARAMETERS) - set(self._FLAGS)
        if unknown:
            raise FKBError(f"unknown optimizer settings: {', '.join(sorted(unknown))}", 8)
        if precision not in (32, 64):
            raise FKBError("precision must be 32 or 64", 8)
        hyper = np.array([float(hyperparameters.get(k, np.nan)) for k in self._HYPERPARAMETERS])
        flags = np.array([int(bool(hyperparameters[k])) if k in hyperparameters else -1
                          for k in self._FLAGS], dtype=np.int32)
        kind, values, steps = 0, np.zeros(3), 0
        if schedule is not None:
            settings = dict(schedule)
            name = settings.pop("kind", None)
            try:
                if name == "exponential":
                    kind = 1
                    values = np.array([settings.pop("initial_learning_rate"),
                                       settings.pop("decay_rate"),
                                       float(bool(settings.pop("staircase", False)))])
                    steps = int(settings.pop("decay_steps"))
                elif name == "step":
                    kind = 2
                    values = np.array([settings.pop("initial_learning_rate"),
                                       settings.pop("factor"), 1.0])
                    steps = int(settings.pop("step_size"))
                else:
                    raise FKBError(f"unknown schedule kind {name!r} (exponential, step)", 8)
            except KeyError as missing:
                raise FKBError(f"the {name} schedule needs {missing}", 8) from None
            if settings:
                raise FKBError(f"unknown schedule settings: {', '.join(sorted(settings))}", 8)
        self._training_precision = None
        handle = self._handle(precision)
        stat, msg = _rt.train_compile(handle, optimizer, hyper, flags, kind, values, steps,
                                      loss, float(huber_delta), int(seed))
        if stat != 0:
            raise FKBError(f"{self.path}: {_message(msg)}", int(stat))
        self._training_precision = precision
        self.n_trainable = int(_rt.n_trainable(handle)[0])

    def _training_arrays(self, x: np.ndarray, y: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
        precision = getattr(self, "_training_precision", None)
        if precision is None:
            raise FKBError(f"{self.path}: call compile before training", 8)
        dtype = np.float32 if precision == 32 else np.float64
        x = np.ascontiguousarray(x, dtype=dtype)
        y = np.ascontiguousarray(y, dtype=dtype)
        if x.ndim != 2 or y.ndim != 2 or x.shape[1] != self.n_inputs \
                or y.shape[1] != self.n_outputs or x.shape[0] != y.shape[0]:
            raise FKBError(f"{self.path}: x has shape {x.shape} and y {y.shape}, expected "
                           f"(n, {self.n_inputs}) and (n, {self.n_outputs})", 6)
        return precision, x, y

    def train_step(self, x: np.ndarray, y: np.ndarray) -> float:
        """One optimizer step on the minibatch ``x`` ``(n, n_inputs)``, ``y``
        ``(n, n_outputs)`` (as Keras's ``train_on_batch``); returns the
        minibatch loss before the step."""
        precision, x, y = self._training_arrays(x, y)
        step = _rt.train_step32 if precision == 32 else _rt.train_step64
        loss, stat, msg = step(self._handle(precision), x.T, y.T)
        if stat != 0:
            raise FKBError(f"{self.path}: {_message(msg)}", int(stat))
        return float(loss)

    def fit(self, x: np.ndarray, y: np.ndarray, epochs: int = 1, batch_size: int = 32,
            seed: int = 1, shuffle: bool = True) -> np.ndarray:
        """Train on the whole dataset in the Fortran runtime, shuffled before
        each epoch from ``seed``; returns each epoch's mean minibatch loss."""
        precision, x, y = self._training_arrays(x, y)
        fit = _rt.fit32 if precision == 32 else _rt.fit64
        history, stat, msg = fit(self._handle(precision), x.T, y.T, int(epochs),
                                 int(batch_size), int(seed), int(bool(shuffle)))
        if stat != 0:
            raise FKBError(f"{self.path}: {_message(msg)}", int(stat))
        return np.array(history, dtype=np.float64)

    def gradient(self, x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        """The minibatch loss and its gradient with respect to the trainable
        weights (the order of :meth:`weights`), without a step."""
        precision, x, y = self._training_arrays(x, y)
        gradient = _rt.gradient32 if precision == 32 else _rt.gradient64
        grad, loss, stat, msg = gradient(self._handle(precision), x.T, y.T, self.n_trainable)
        if stat != 0:
            raise FKBError(f"{self.path}: {_message(msg)}", int(stat))
        return float(loss), np.array(grad)

    def weights(self) -> np.ndarray:
        """The trainable weights as one float64 vector: layer by layer in file
        order, each Keras weight flattened in C order (dense: kernel, bias)."""
        precision = getattr(self, "_training_precision", None)
        if precision is None:
            raise FKBError(f"{self.path}: call compile first", 8)
        w, stat, msg = _rt.get_weights(self._handle(precision), self.n_trainable)
        if stat != 0:
            raise FKBError(f"{self.path}: {_message(msg)}", int(stat))
        return np.array(w)

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
