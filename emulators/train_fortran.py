"""Train an emulator in the Fortran runtime, with Keras's rules.

The network is the one Keras builds and initializes (the same architecture,
the same initial weights); the runtime trains it (``emulators.fkb.Network.fit``,
one call per epoch: shuffling, forward, backward and the optimizer step all in
Fortran, docs/fortran-api.md "Training"), and the trained weights come back
into the Keras model (through ``emulators.convert.spec_to_keras``), so that
everything after training (metrics, ``model.keras``, the model file) is the
same for either trainer.

What a sweep needs from ``fit``, with Keras's semantics:

* early stopping on the validation loss as ``keras.callbacks.EarlyStopping(
  monitor="val_loss", patience, restore_best_weights=True)``: an epoch
  improves when its validation loss is below the best so far; training stops
  once ``patience`` epochs in a row have not improved (never after the first
  epoch), and the weights of the best epoch are restored at the end;
* the learning-rate schedule of the hyperparameters (counted in epochs of
  minibatches, as :func:`emulators.architectures.build_learning_rate`), and
  the ``plateau`` schedule as ``keras.callbacks.ReduceLROnPlateau(monitor=
  "val_loss", factor, patience, min_delta=1e-4)``;
* the loss curve per epoch (``loss``: the epoch's mean minibatch loss;
  ``val_loss``: the loss on the whole validation split) and seconds per epoch;
* seeded shuffling (the hyperparameters' seed).

The training split is held once in memory, in float32 (the arrays the
runtime trains on, without copies); the validation split likewise.
"""
from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from emulators.architectures import PLATEAU_MIN_DELTA, Hyperparameters
from emulators.data import ColumnStream
from emulators.modelfile import write_model_file
from emulators.progress import progress_bar

# TensorFlow and the Fortran runtime are imported inside the functions that use them, so that
# importing this module does not load them (start-up time).

__all__ = ["EarlyStopping", "ReduceOnPlateau", "fit_in_fortran", "stream_arrays", "loss_value"]


def stream_arrays(stream: ColumnStream) -> tuple[np.ndarray, np.ndarray]:
    """All samples of an unshuffled stream as float32 arrays ``(n, n_inputs)``,
    ``(n, n_outputs)``, filled batch by batch (no second copy)."""
    x = y = None
    row = 0
    for xb, yb in stream:
        if x is None:
            x = np.empty((stream.n_samples, xb.shape[1]), np.float32)
            y = np.empty((stream.n_samples, yb.shape[1]), np.float32)
        x[row:row + len(xb)] = xb
        y[row:row + len(yb)] = yb
        row += len(xb)
    if x is None or row != stream.n_samples:
        raise ValueError(f"the data stream gave {row} samples, expected {stream.n_samples}")
    return x, y


def loss_value(loss: str, huber_delta: float, predicted: np.ndarray, target: np.ndarray) -> float:
    """Keras's ``mse``, ``mae`` or ``huber`` loss over all samples and outputs."""
    e = predicted.astype(np.float64) - target
    if loss == "mse":
        return float(np.mean(e * e))
    a = np.abs(e)
    if loss == "mae":
        return float(np.mean(a))
    if loss == "huber":
        return float(np.mean(np.where(a <= huber_delta, 0.5 * e * e, huber_delta * (a - 0.5 * huber_delta))))
    raise ValueError(f"unknown loss {loss!r} (mse, mae, huber)")


class EarlyStopping:
    """``keras.callbacks.EarlyStopping(monitor="val_loss", patience,
    restore_best_weights=True)`` as a state machine: :meth:`update` takes
    each epoch's validation loss and says whether to keep the current
    weights as the best and whether to stop."""

    def __init__(self, patience: int):
        self.patience = patience
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.wait = 0

    def update(self, epoch: int, val_loss: float) -> tuple[bool, bool]:
        """``(keep, stop)`` after epoch ``epoch`` (from 0). As Keras, the
        first epoch always improves (even with a NaN loss, which no later
        epoch then beats)."""
        keep = self.best_epoch is None
        if keep:
            self.best_epoch = epoch
        self.wait += 1
        if self.best is None or val_loss < self.best:
            self.best, self.best_epoch, self.wait = val_loss, epoch, 0
            return True, False
        return keep, self.wait >= self.patience and epoch > 0


class ReduceOnPlateau:
    """``keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor,
    patience, min_delta)`` (no cooldown, no floor) as a state machine:
    :meth:`update` takes each epoch's validation loss and the current rate
    and returns the rate of the next epoch."""

    def __init__(self, factor: float, patience: int, min_delta: float = PLATEAU_MIN_DELTA):
        self.factor, self.patience, self.min_delta = factor, patience, min_delta
        self.best: float | None = None
        self.wait = 0

    def update(self, val_loss: float, rate: float) -> float:
        if self.best is None or val_loss + self.min_delta < self.best:
            self.best, self.wait = val_loss, 0
            return rate
        self.wait += 1
        if self.wait >= self.patience and rate > 0.0:
            self.wait = 0
            return rate * self.factor
        return rate


def _optimizer_settings(hp: Hyperparameters, steps_per_epoch: int) -> tuple[str, dict[str, Any], dict | None]:
    """``Network.compile``'s optimizer name, settings and schedule for ``hp``
    (those of :func:`emulators.architectures.build_optimizer`)."""
    settings: dict[str, Any] = {}
    schedule = None
    if hp.lr_schedule in ("constant", "plateau"):
        settings["learning_rate"] = hp.learning_rate
    else:
        schedule = {"kind": "exponential", "initial_learning_rate": hp.learning_rate,
                    "decay_steps": hp.lr_decay_epochs * steps_per_epoch, "decay_rate": hp.lr_decay_rate,
                    "staircase": hp.lr_schedule == "step"}
    if hp.optimizer in ("adam", "rmsprop", "sgd"):
        return hp.optimizer, settings, schedule
    settings["momentum"] = hp.momentum
    settings["nesterov"] = hp.optimizer == "nesterov"
    return "sgd", settings, schedule


def fit_in_fortran(model, hp: Hyperparameters, train_stream: ColumnStream,
                   val_stream: ColumnStream, progress: bool | None = None) -> tuple[Any, dict[str, list[float]]]:
    """Train the Keras ``model`` (built, initialized, normalized units) in the
    Fortran runtime on the two streams' samples; returns ``model`` with the
    trained weights (the best epoch's) and the history (``loss``,
    ``val_loss``, ``seconds``).

    A loss that becomes NaN or infinite stops training with a ValueError
    naming the epoch (the runtime keeps the last good weights). `progress`:
    a bar of the epochs with their losses (None: on a terminal)."""
    from emulators.convert import keras_to_spec, load_spec, spec_to_keras
    from emulators.fkb import FKBError, load

    x, y = stream_arrays(train_stream)
    x_val, y_val = stream_arrays(val_stream)
    steps_per_epoch = math.ceil(len(x) / hp.batch_size)
    name, settings, schedule = _optimizer_settings(hp, steps_per_epoch)
    history: dict[str, list[float]] = {"loss": [], "val_loss": [], "seconds": []}
    with tempfile.TemporaryDirectory(prefix="fkb-train-") as tmp:
        start_file, best_file = Path(tmp) / "start.fkb", Path(tmp) / "best.fkb"
        write_model_file(keras_to_spec(model), start_file)
        with load(start_file) as net:
            net.compile(name, hp.loss, huber_delta=hp.huber_delta, schedule=schedule, seed=hp.seed + 1,
                        **settings)
            stopping = EarlyStopping(hp.patience)
            plateau = ReduceOnPlateau(hp.lr_decay_rate, hp.lr_decay_epochs) \
                if hp.lr_schedule == "plateau" else None
            bar = progress_bar(hp.epochs, "training (Fortran)", unit="epoch", progress=progress)
            for epoch in range(hp.epochs):
                t0 = time.perf_counter()
                try:
                    loss = float(net.fit(x, y, epochs=1, batch_size=hp.batch_size,
                                         seed=hp.seed + 1 if epoch == 0 else None)[-1])
                except FKBError as error:
                    raise ValueError(f"training stopped in epoch {epoch + 1}: {error}") from None
                val_loss = loss_value(hp.loss, hp.huber_delta, net.predict(x_val), y_val)
                history["loss"].append(loss)
                history["val_loss"].append(val_loss)
                history["seconds"].append(time.perf_counter() - t0)
                if plateau is not None:
                    rate = net.learning_rate
                    lowered = plateau.update(val_loss, rate)
                    if lowered != rate:
                        net.learning_rate = lowered
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.4g}", val_loss=f"{val_loss:.4g}")
                keep, stop = stopping.update(epoch, val_loss)
                if keep:
                    net.save(best_file)
                if stop:
                    break
            bar.close()
        _take_weights(model, spec_to_keras(load_spec(best_file)))
    return model, history


def _take_weights(model, trained) -> None:
    """Set ``model``'s weights (batch normalization's moving statistics
    included) to those of ``trained``, the same network rebuilt from the
    runtime's model file, weight by weight in Keras's order."""
    ours, theirs = model.weights, trained.weights
    shapes = [tuple(w.shape) for w in ours], [tuple(w.shape) for w in theirs]
    if shapes[0] != shapes[1]:
        raise ValueError(f"the network trained in Fortran came back with weights of shapes {shapes[1]}, "
                         f"not the model's {shapes[0]}")
    for variable, value in zip(ours, theirs):
        variable.assign(np.asarray(value))
