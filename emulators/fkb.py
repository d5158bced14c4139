"""The Python handle on the Fortran runtime.

``load(path)`` returns a :class:`Network` whose ``predict`` runs the Fortran
library (``fortran/``) through the f2py extension ``emulators._fkb_runtime``:
the same code a Fortran climate model runs, not a Python re-implementation.

    >>> net = load("emulator.fkb")
    >>> y = net.predict(x)          # x: (n_samples, n_inputs), float32 or float64

Networks train in Fortran too (``compile``, ``train_step``, ``fit``);
``save`` writes the trained network with its training state, and ``load`` of
that file resumes training exactly where it stopped.

A C-ordered ``(n, n_in)`` NumPy array is, byte for byte, the Fortran batch
``x(n_in, n)``, so inputs cross into Fortran without a copy.

The runtime runs on OpenMP threads (``OMP_NUM_THREADS``, all cores by
default, or :func:`set_threads`): the column blocks of a large batch, the
GEMMs of a narrow one, ensemble members, training; with the same bits for
any thread count (docs/fortran-api.md, "Threads").
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from emulators.blas import preload as _preload_blas
from emulators.fortran_object import FortranObject

_preload_blas()  # the BLAS the extension links, before the extension loads
from emulators import _fkb_runtime as _rt  # noqa: E402
from emulators.input_statistics import DEFAULT_DISTANCE_FACTOR, DEFAULT_MARGIN, GuardScores

_FLOAT32 = np.dtype(np.float32)

__all__ = ["FKBError", "Network", "Ensemble", "load", "load_ensemble", "set_threads", "threads", "dense_kernel",
           "STATUS_NAMES"]

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
    9: "out of memory",
}


class FKBError(ValueError):
    """An error reported by the Fortran runtime; ``status`` is its code."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


def set_threads(n: int) -> None:
    """Run the runtime's parallel work on ``n`` OpenMP threads (n >= 1)."""
    if int(n) < 1:
        raise ValueError(f"threads must be at least 1, got {n}")
    _rt.set_threads(int(n))


def threads() -> int:
    """The number of OpenMP threads the runtime uses (1 without OpenMP)."""
    return int(_rt.get_threads())


def dense_kernel() -> str:
    """How dense layers run: ``"avx512"`` (the runtime's own kernels on weights
    packed at load time) or ``"blas"`` (no AVX-512 on this machine, or
    ``FKB_DENSE_KERNEL=blas`` in the environment). Decided when a network is
    loaded."""
    return "avx512" if _rt.get_dense_kernel() else "blas"


def _bits(dtype: np.dtype) -> int:
    """The runtime's real kind of float32 (32) or float64 (64) arrays."""
    return 32 if dtype == _FLOAT32 else 64


def _entry(name: str, bits: int):
    """The extension's entry point `name` in the real kind of `bits` (the
    bindings generate one per kind from one template: fortran/bindings/*.fypp)."""
    return getattr(_rt, f"{name}{bits}")


def _message(raw) -> str:
    if isinstance(raw, np.ndarray):
        raw = raw.tobytes()
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    return str(raw).strip()


class Network(FortranObject):
    """A network loaded into the Fortran runtime.

    Computes in the precision of the input: float32 inputs run the 32-bit
    network, float64 inputs a 64-bit copy (loaded on first use).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._handles: dict[int, int] = {}
        self._stepped = False
        handle = self._handle(32)
        n_in, n_out, n_params, stat = _rt.sizes(handle)
        self.n_inputs = int(n_in)
        self.n_outputs = int(n_out)
        self.n_params = int(n_params)
        # a file saved with its training state loads compiled, at the
        # precision that trained it (the exact state)
        precision = _training_precision(self.path)
        if precision is not None:
            self._training_precision = precision
            self.n_trainable = int(_rt.training_info(self._handle(precision))[0])

    def _handle(self, precision: int) -> int:
        trained = getattr(self, "_training_precision", None)
        if trained is not None and precision != trained and self._stepped:
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
        if type(x) is np.ndarray and x.dtype == _FLOAT32 and x.flags.c_contiguous and (
                x.shape == (self.n_inputs,) or x.shape == (1, self.n_inputs)):
            # one float32 sample, (n_inputs,) or (1, n_inputs): the leanest call
            # (no batch copies, no message string)
            if x.ndim == 1:
                y = np.empty(self.n_outputs, _FLOAT32)
                stat = _rt.predict_column32(self._handle(32), x, y)
            else:
                y = np.empty((1, self.n_outputs), _FLOAT32)
                stat = _rt.predict_column32(self._handle(32), x[0], y[0])
            if stat != 0:
                raise FKBError(f"{self.path}: {_message(_rt.last_message())}", int(stat))
            return y
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
        bits = _bits(x.dtype)
        y, stat, msg = _entry("predict", bits)(self._handle(bits), x.T, self.n_outputs)
        if stat != 0:
            raise FKBError(f"{self.path}: {_message(msg)}", int(stat))
        y = y.T
        return y[0] if single else y

    def guard(self, x: np.ndarray, *, margin: float | None = None,
              distance_factor: float | None = None):
        """Out-of-distribution scores of the inputs ``x`` ``(n, n_inputs)``
        (physical units, as for :meth:`predict`) against the training
        inputs' statistics in the model file, computed by the runtime
        (fortran/src/fkb_guard.inc): a :class:`emulators.input_statistics.GuardScores`
        of ``(n,)`` arrays (largest |z|, distance, inputs outside the widened
        training range, flag). ``margin`` (default 0.1) widens each range by
        that fraction of its width; ``distance_factor`` (default 2) flags
        columns beyond that multiple of the training's 99.9th-percentile
        distance. FKBError for a model file without input statistics."""
        margin = DEFAULT_MARGIN if margin is None else float(margin)
        distance_factor = DEFAULT_DISTANCE_FACTOR if distance_factor is None else float(distance_factor)
        x = np.asarray(x)
        if x.dtype not in (np.float32, np.float64):
            x = x.astype(np.float32)
        single = x.ndim == 1
        if single:
            x = x[np.newaxis, :]
        if x.ndim != 2 or x.shape[1] != self.n_inputs:
            raise FKBError(f"{self.path}: input has shape {x.shape}, expected (n, {self.n_inputs})", 6)
        x = np.ascontiguousarray(x)
        bits = _bits(x.dtype)
        z, d, outside, flagged, stat, msg = _entry("guard", bits)(self._handle(bits), x.T, margin, distance_factor)
        if stat != 0:
            raise FKBError(f"{self.path}: {_message(msg)}", int(stat))
        return GuardScores(z, d, outside, flagged.astype(bool))

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
        ``seed`` seeds the noise of the dropout layers and ``fit``'s shuffling.
        (A network loaded from a file saved with its training state is
        compiled already; ``compile`` would start afresh.)
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
        self._stepped = True  # from here the copies of the two precisions may differ
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
        step = _entry("train_step", precision)
        self._stepped = True
        loss, stat, msg = step(self._handle(precision), x.T, y.T)
        if stat != 0:
            raise FKBError(f"{self.path}: {_message(msg)}", int(stat))
        return float(loss)

    def fit(self, x: np.ndarray, y: np.ndarray, epochs: int = 1, batch_size: int = 32,
            seed: int | None = None, shuffle: bool = True) -> np.ndarray:
        """Train on the whole dataset in the Fortran runtime, shuffled before
        each epoch; returns each epoch's mean minibatch loss.

        The shuffling generator is the network's: ``compile`` seeds it (its
        ``seed``), ``seed`` reseeds it, and without ``seed`` it continues
        from the previous ``fit`` or from a saved training state, so that
        ``fit(2)``, :meth:`save`, ``load``, ``fit(3)`` equals ``fit(5)``.
        """
        precision, x, y = self._training_arrays(x, y)
        fit = _entry("fit", precision)
        self._stepped = True
        history, stat, msg = fit(self._handle(precision), x.T, y.T, int(epochs),
                                 int(batch_size), 0 if seed is None else int(seed),
                                 int(seed is not None), int(bool(shuffle)))
        if stat != 0:
            raise FKBError(f"{self.path}: {_message(msg)}", int(stat))
        return np.array(history, dtype=np.float64)

    def gradient(self, x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        """The minibatch loss and its gradient with respect to the trainable
        weights (the order of :meth:`weights`), without a step."""
        precision, x, y = self._training_arrays(x, y)
        gradient = _entry("gradient", precision)
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

    @property
    def iterations(self) -> int:
        """Optimizer steps taken since ``compile`` (or by the saved training
        state this network was loaded with); 0 before training."""
        precision = getattr(self, "_training_precision", None)
        if precision is None:
            return 0
        return int(_rt.training_info(self._handle(precision))[1])

    @property
    def learning_rate(self) -> float:
        """The learning rate of the next optimizer step (0 before ``compile``).
        Assign to it to change the rate of the following steps, as with
        Keras's ``optimizer.learning_rate`` (``ReduceLROnPlateau``); refused
        for an optimizer with a schedule."""
        precision = getattr(self, "_training_precision", None)
        if precision is None:
            return 0.0
        return float(_rt.learning_rate(self._handle(precision))[0])

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        precision = getattr(self, "_training_precision", None)
        if precision is None:
            raise FKBError(f"{self.path}: call compile first", 8)
        stat, msg = _rt.set_learning_rate(self._handle(precision), float(value))
        if stat != 0:
            raise FKBError(f"{self.path}: {_message(msg)}", int(stat))

    def save(self, path: str | os.PathLike) -> Path:
        """Write the network to a model file ``path``: the current weights
        (float32) with the names, units and normalization of the file it came
        from and, once compiled, its training state (format version 2), so
        that ``load(path)`` continues training exactly (``train_step``,
        ``fit`` without ``compile``). ``fkb convert`` turns the file into a
        ``.keras`` model. Returns ``path``."""
        path = Path(path)
        precision = getattr(self, "_training_precision", None) or 32
        stat, msg = _rt.save_network(self._handle(precision), os.fspath(path))
        if stat != 0:
            raise FKBError(_message(msg), int(stat))
        return path

    def _release(self) -> None:
        for handle in self._handles.values():
            _rt.release(handle)
        self._handles.clear()

    def __repr__(self) -> str:
        return (f"Network({str(self.path)!r}, n_inputs={self.n_inputs}, "
                f"n_outputs={self.n_outputs}, n_params={self.n_params})")


def load(path: str | os.PathLike) -> Network:
    """Load a model file (or an original FKB text file) into the Fortran runtime.

    A file saved with its training state (:meth:`Network.save` of a compiled
    network) loads compiled: ``train_step`` and ``fit`` continue it."""
    return Network(path)


def _training_precision(path: Path) -> int | None:
    """The precision of a model file's training section, None without one
    (read from the header; the Fortran runtime has checked the file)."""
    try:
        with open(path, "rb") as handle:
            if not handle.readline().startswith(b"FKB 2"):
                return None
            for line in handle:
                if line.startswith(b"training "):
                    return 64 if b" precision=64" in line else 32
                if line.startswith(b"end_header"):
                    return None
    except OSError:
        return None
    return None


class Ensemble(FortranObject):
    """Several networks of one interface in the Fortran runtime (``ensemble``
    of ``fortran/src/fkb_ensemble.inc``), evaluated together.

    ``predict`` returns the mean and the population standard deviation
    (``ddof=0``) over members, in the units of the outputs, and on request
    every member's output. Members run in parallel with OpenMP
    (``OMP_NUM_THREADS``); the results do not depend on the thread count.
    With more than one OpenMP thread, give each member one BLAS thread
    (``OPENBLAS_NUM_THREADS=1`` or :func:`emulators.blas.set_threads`) so
    that the cores are not oversubscribed. The ensemble computes in
    ``precision`` (32 or 64) bits; inputs are converted to it.
    """

    def __init__(self, paths_or_folder: str | os.PathLike | list, precision: int = 32):
        if precision not in (32, 64):
            raise FKBError("precision must be 32 or 64", 8)
        self.precision = precision
        self._dtype = np.float32 if precision == 32 else np.float64
        self._handle = 0
        if isinstance(paths_or_folder, (str, os.PathLike)) and Path(paths_or_folder).is_dir():
            handle, stat, msg = _rt.ensemble_load_folder(os.fspath(paths_or_folder), precision)
        else:
            if isinstance(paths_or_folder, (str, os.PathLike)):
                paths_or_folder = [paths_or_folder]
            paths = [os.fspath(p) for p in paths_or_folder]
            if not paths:
                raise FKBError("load: no model files given", 8)
            bad = [p for p in paths if "\n" in p or p != p.rstrip() or not p]
            if bad:
                raise FKBError(f"{bad[0]!r}: a model path must not be empty, contain a newline "
                               "or end in blanks", 8)
            handle, stat, msg = _rt.ensemble_load("\n".join(paths), precision)
        if stat != 0:
            raise FKBError(_message(msg), int(stat))
        self._handle = int(handle)
        n_members, n_in, n_out, stat = _rt.ensemble_sizes(self._handle)
        self.n_members = int(n_members)
        self.n_inputs = int(n_in)
        self.n_outputs = int(n_out)
        self.paths = [Path(_message(_rt.ensemble_member_path(self._handle, k)[0]))
                      for k in range(1, self.n_members + 1)]

    def predict(self, x: np.ndarray, *, members: bool = False, noise_std: float = 0.0,
                seed: int = 0) -> tuple[np.ndarray, ...]:
        """``(mean, std)`` of shape ``(n, n_outputs)`` each for inputs ``x`` of
        shape ``(n, n_inputs)`` (or one sample ``(n_inputs,)``: results
        ``(n_outputs,)``); with ``members=True`` also every member's output,
        ``(n_members, n, n_outputs)``.

        ``noise_std`` perturbs each member's input with Gaussian noise of
        standard deviation ``noise_std`` times the member file's input
        normalization scale (1 where the file has none), i.e. ``noise_std``
        in normalized input units; the noise depends only on ``seed``, the
        member, the sample's row in ``x`` and the feature.
        """
        if not self._handle:
            raise FKBError("the ensemble is closed", 8)
        x = np.asarray(x)
        single = x.ndim == 1
        if single:
            x = x[np.newaxis, :]
        if x.ndim != 2 or x.shape[1] != self.n_inputs:
            raise FKBError(f"input has shape {x.shape}, expected (n, {self.n_inputs})", 6)
        x = np.ascontiguousarray(x, dtype=self._dtype)
        seed = int(seed)
        if not -2**63 <= seed < 2**63:
            raise FKBError(f"seed {seed} does not fit in 64 bits", 8)
        run = _entry("ensemble_predict", self.precision)
        keep = self.n_members if members else 0
        mean, std, ys, stat, msg = run(self._handle, x.T, self.n_outputs, keep,
                                       float(noise_std), seed)
        if stat != 0:
            raise FKBError(_message(msg), int(stat))
        mean, std = mean.T, std.T
        if single:
            mean, std = mean[0], std[0]
        if not members:
            return mean, std
        ys = ys.T  # (n_members, n, n_outputs), C-ordered
        return mean, std, (ys[:, 0] if single else ys)

    def _release(self) -> None:
        if self._handle:
            _rt.ensemble_release(self._handle)
            self._handle = 0

    def __repr__(self) -> str:
        return (f"Ensemble(n_members={self.n_members}, n_inputs={self.n_inputs}, "
                f"n_outputs={self.n_outputs}, precision={self.precision})")


def load_ensemble(paths_or_folder: str | os.PathLike | list, precision: int = 32) -> Ensemble:
    """Load an ensemble: a list of model files, or a folder whose ``*.fkb``
    files (in name order) are the members. All members must agree on the
    numbers, names and units of inputs and outputs."""
    return Ensemble(paths_or_folder, precision)
