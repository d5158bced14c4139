"""Emulators built from hyperparameters.

:class:`Hyperparameters` is the whole configuration of one emulator and its
training (a dataclass with defaults and validation, read from TOML or from
``key=value`` strings); :func:`build_emulator` makes the Keras network,
:func:`build_optimizer` and :func:`build_loss` the rest of what ``compile``
needs. The network is a multilayer perceptron of ``depth`` hidden layers of
``width`` units, each ``Dense -> [BatchNormalization] -> activation ->
[Dropout]``, and a linear output layer; it uses only layers the Fortran
runtime runs (Dense, LeakyReLU, Activation, BatchNormalization, Dropout).

The search space follows Ott et al. (2020): depth, width, leaky-ReLU slope,
dropout, batch normalization, optimizer (Adam, RMSprop, SGD, SGD with
momentum, Nesterov), learning rate, batch size. ``water_conservation``
appends the column-water-conservation layer
(:class:`emulators.conservation.ColumnWaterConservation`) to the MLP.
"""
from __future__ import annotations

import dataclasses
import os
import typing
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from emulators.settings import read_settings_file

# TensorFlow is imported inside the functions that use it, so that importing this module does not load
# it (start-up time).

__all__ = ["Hyperparameters", "build_emulator", "build_learning_rate", "build_optimizer", "build_loss", "ACTIVATIONS",
           "OPTIMIZERS", "SCHEDULES", "LOSSES", "ALLOWED_LAYERS"]

ACTIVATIONS = ("relu", "leaky_relu", "elu", "selu", "gelu", "tanh", "sigmoid", "softplus", "silu", "linear")
OPTIMIZERS = ("adam", "rmsprop", "sgd", "sgd_momentum", "nesterov")
SCHEDULES = ("constant", "exponential", "step", "plateau")
LOSSES = ("mse", "mae", "huber")
TRAINERS = ("keras", "fortran")
"""Who runs the training: Keras ``model.fit`` or the Fortran runtime (emulators.train_fortran)."""
ALLOWED_LAYERS = ("InputLayer", "Dense", "LeakyReLU", "Activation", "BatchNormalization", "Dropout",
                  "ColumnWaterConservation")
"""Keras layer classes an emulator built here may contain (all run in the Fortran runtime;
the last, a custom layer, in its 32-bit networks, which the trainer and the GCM use)."""


@dataclass(frozen=True)
class Hyperparameters:
    """Architecture and training settings of one emulator.

    Learning-rate schedules count in epochs: ``exponential`` multiplies the
    rate by ``lr_decay_rate`` every ``lr_decay_epochs`` epochs smoothly (per
    step), ``step`` does so in steps at whole multiples of ``lr_decay_epochs``,
    ``plateau`` after ``lr_decay_epochs`` epochs without a validation loss
    lower than the best by 1e-4 (Keras's ``ReduceLROnPlateau``).
    ``momentum`` is used by ``sgd_momentum`` and ``nesterov`` only,
    ``leaky_relu_slope`` by ``leaky_relu`` only, ``huber_delta`` by ``huber``
    only (in units of the normalized outputs). Training stops early after
    ``patience`` epochs without a lower validation loss and keeps the best
    weights. ``trainer``: ``keras`` (``model.fit``) or ``fortran`` (the
    runtime's ``fit`` on the same network, initial weights, batches and
    rules; :mod:`emulators.train_fortran`). ``water_conservation``: end the
    network in :class:`~emulators.conservation.ColumnWaterConservation`,
    which moves the predicted moisture tendencies so that every column's
    water budget closes with the predicted precipitation (trained with the
    rest; docs/custom-layers.md).
    """

    depth: int = 5
    width: int = 128
    activation: str = "leaky_relu"
    leaky_relu_slope: float = 0.3
    dropout: float = 0.0
    batch_normalization: bool = False
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    momentum: float = 0.9
    lr_schedule: str = "constant"
    lr_decay_rate: float = 0.5
    lr_decay_epochs: int = 5
    batch_size: int = 1024
    epochs: int = 20
    patience: int = 5
    loss: str = "mse"
    huber_delta: float = 1.0
    seed: int = 0
    trainer: str = "fortran"
    water_conservation: bool = False

    def __post_init__(self):
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            kind = hints[f.name]
            if kind is bool:
                ok = isinstance(value, bool)
            elif kind is int:
                ok = isinstance(value, int) and not isinstance(value, bool)
            elif kind is float:
                ok = isinstance(value, (int, float)) and not isinstance(value, bool)
                if ok:
                    object.__setattr__(self, f.name, float(value))
            else:
                ok = isinstance(value, str)
            if not ok:
                raise ValueError(f"hyperparameter {f.name}={value!r} is not a {kind.__name__}")
        _choice("activation", self.activation, ACTIVATIONS)
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("lr_schedule", self.lr_schedule, SCHEDULES)
        _choice("loss", self.loss, LOSSES)
        _choice("trainer", self.trainer, TRAINERS)
        _at_least("depth", self.depth, 0)
        _at_least("width", self.width, 1)
        _at_least("batch_size", self.batch_size, 1)
        _at_least("epochs", self.epochs, 1)
        _at_least("patience", self.patience, 0)
        _at_least("lr_decay_epochs", self.lr_decay_epochs, 1)
        _interval("leaky_relu_slope", self.leaky_relu_slope, 0.0, 1.0, closed_right=True)
        _interval("dropout", self.dropout, 0.0, 1.0)
        _interval("momentum", self.momentum, 0.0, 1.0)
        _interval("lr_decay_rate", self.lr_decay_rate, 0.0, 1.0, closed_left=False, closed_right=True)
        if not self.learning_rate > 0.0:
            raise ValueError(f"hyperparameter learning_rate={self.learning_rate!r} must be positive")
        if not self.huber_delta > 0.0:
            raise ValueError(f"hyperparameter huber_delta={self.huber_delta!r} must be positive")

    # ------------------------------------------------------------ reading
    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "Hyperparameters":
        """From a mapping of field names to values; unknown names are refused."""
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = [k for k in values if k not in names]
        if unknown:
            raise ValueError(f"unknown hyperparameter {unknown[0]!r}; known: {', '.join(names)}")
        return cls(**dict(values))

    @classmethod
    def from_toml(cls, path: str | os.PathLike) -> "Hyperparameters":
        """From a TOML file of ``key = value`` lines (top level, or in a
        ``[hyperparameters]`` table)."""
        data = read_settings_file(path, "file")
        if "hyperparameters" in data and isinstance(data["hyperparameters"], dict):
            data = data["hyperparameters"]
        return cls.from_dict(data)

    def with_settings(self, settings: Sequence[str]) -> "Hyperparameters":
        """A copy with ``key=value`` strings applied (as from ``--set``); values
        are parsed by the field's type (booleans: true/false, 1/0, yes/no)."""
        hints = typing.get_type_hints(type(self))
        values = self.to_dict()
        for setting in settings:
            key, sep, text = setting.partition("=")
            key, text = key.strip(), text.strip()
            if not sep or not key:
                raise ValueError(f"setting {setting!r} is not key=value")
            if key not in values:
                raise ValueError(f"unknown hyperparameter {key!r}; known: {', '.join(values)}")
            values[key] = _parse(key, text, hints[key])
        return type(self).from_dict(values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_toml(self) -> str:
        """TOML text that :meth:`from_toml` reads back to an equal object."""
        lines = []
        for key, value in self.to_dict().items():
            if isinstance(value, bool):
                text = "true" if value else "false"
            elif isinstance(value, str):
                text = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
            else:
                text = repr(value)
            lines.append(f"{key} = {text}")
        return "\n".join(lines) + "\n"


def _choice(name: str, value: str, options: Sequence[str]) -> None:
    if value not in options:
        raise ValueError(f"hyperparameter {name}={value!r} is not one of {', '.join(options)}")


def _at_least(name: str, value: int, minimum: int) -> None:
    if value < minimum:
        raise ValueError(f"hyperparameter {name}={value!r} must be at least {minimum}")


def _interval(name: str, value: float, lo: float, hi: float, closed_left: bool = True,
              closed_right: bool = False) -> None:
    ok = (value >= lo if closed_left else value > lo) and (value <= hi if closed_right else value < hi)
    if not ok:
        interval = f"{'[' if closed_left else '('}{lo:g}, {hi:g}{']' if closed_right else ')'}"
        raise ValueError(f"hyperparameter {name}={value!r} is not in {interval}")


def _parse(key: str, text: str, kind: type) -> Any:
    try:
        if kind is bool:
            lowered = text.lower()
            if lowered in ("true", "1", "yes", "on"):
                return True
            if lowered in ("false", "0", "no", "off"):
                return False
            raise ValueError
        if kind is int:
            return int(text)
        if kind is float:
            return float(text)
    except ValueError:
        raise ValueError(f"hyperparameter {key}={text!r} is not a {kind.__name__}") from None
    return text.strip("'\"")


# ------------------------------------------------------------------ building
def build_emulator(hp: Hyperparameters, n_inputs: int, n_outputs: int, name: str = "emulator",
                   seed: int | None = None, normalization: Any = None, dsigma: Sequence[float] | None = None):
    """The Keras MLP of ``hp``: ``(n, n_inputs)`` normalized inputs ->
    ``(n, n_outputs)`` normalized outputs.

    Every random layer gets its own seed, derived from `seed` (default
    ``hp.seed``): the Glorot-uniform kernels and the dropout masks depend on
    it alone, not on Keras's global generator, which other threads of the
    process (a Dask worker's event loop) may draw from at any time.

    With ``hp.water_conservation`` the MLP's prediction goes through
    :class:`~emulators.conservation.ColumnWaterConservation` (its profile
    starts uniform, no random numbers), which needs the
    ``normalization`` (an :class:`emulators.data.NormalizationStats` of the
    interface's names, with ``PHQ_1 ..``, ``PRECT`` and ``PS``) and the
    sigma thickness of each level, ``dsigma``."""
    import keras

    if n_inputs < 1 or n_outputs < 1:
        raise ValueError(f"an emulator needs at least one input and output, got {n_inputs} and {n_outputs}")
    conservation = None
    if hp.water_conservation:
        conservation = _conservation_layer(normalization, dsigma, n_inputs, n_outputs)
    seeds = np.random.SeedSequence(hp.seed if seed is None else seed).generate_state(2 * hp.depth + 1)
    kernel = lambda i: keras.initializers.GlorotUniform(seed=int(seeds[i]))  # noqa: E731
    inputs = keras.Input(shape=(n_inputs,), name="inputs")
    h = inputs
    for i in range(1, hp.depth + 1):
        separate_activation = hp.batch_normalization or hp.activation == "leaky_relu"
        h = keras.layers.Dense(hp.width, activation=None if separate_activation else hp.activation,
                               kernel_initializer=kernel(i - 1), name=f"dense_{i}")(h)
        if hp.batch_normalization:
            h = keras.layers.BatchNormalization(name=f"batch_normalization_{i}")(h)
        if hp.activation == "leaky_relu":
            h = keras.layers.LeakyReLU(negative_slope=hp.leaky_relu_slope, name=f"leaky_relu_{i}")(h)
        elif separate_activation:
            h = keras.layers.Activation(hp.activation, name=f"{hp.activation}_{i}")(h)
        if hp.dropout > 0:
            h = keras.layers.Dropout(hp.dropout, seed=int(seeds[hp.depth + i]), name=f"dropout_{i}")(h)
    outputs = keras.layers.Dense(n_outputs, activation="linear", kernel_initializer=kernel(hp.depth),
                                 name="outputs")(h)
    if conservation is not None:
        outputs = conservation([outputs, inputs])
    return keras.Model(inputs, outputs, name=name)


def _conservation_layer(normalization: Any, dsigma: Sequence[float] | None, n_inputs: int, n_outputs: int):
    """The column-water-conservation layer for an emulator normalized with
    `normalization`; one-line ValueErrors for what it lacks."""
    if normalization is None or dsigma is None:
        raise ValueError("hyperparameter water_conservation needs the normalization and the level thicknesses "
                         "(dsigma) to build its layer")
    outputs, inputs = list(normalization.output_names), list(normalization.input_names)
    if (len(inputs), len(outputs)) != (n_inputs, n_outputs):
        raise ValueError(f"the normalization has {len(inputs)} inputs and {len(outputs)} outputs, the network "
                         f"{n_inputs} and {n_outputs}")
    missing = [n for n in ("PHQ_1", "PRECT") if n not in outputs] + (["PS"] if "PS" not in inputs else [])
    if missing:
        raise ValueError(f"hyperparameter water_conservation needs the outputs PHQ and PRECT and the input PS; "
                         f"the emulator lacks {', '.join(missing)}")
    from emulators.conservation import ColumnWaterConservation   # registers the layer with Keras and the converter

    return ColumnWaterConservation.for_emulator(normalization, [float(d) for d in dsigma], name="column_water")


def build_learning_rate(hp: Hyperparameters, steps_per_epoch: int):
    """The learning rate of ``hp``: a float, or a Keras schedule of the
    optimizer step counted in epochs of ``steps_per_epoch`` batches."""
    import keras

    if steps_per_epoch < 1:
        raise ValueError(f"steps_per_epoch must be at least 1, got {steps_per_epoch}")
    if hp.lr_schedule in ("constant", "plateau"):   # plateau: a callback lowers it (plateau_callback)
        return hp.learning_rate
    return keras.optimizers.schedules.ExponentialDecay(
        hp.learning_rate, decay_steps=hp.lr_decay_epochs * steps_per_epoch,
        decay_rate=hp.lr_decay_rate, staircase=hp.lr_schedule == "step")


PLATEAU_MIN_DELTA = 1e-4
"""Keras's ``ReduceLROnPlateau`` default: an epoch improves when its
validation loss is lower than the best by more than this."""


def plateau_callback(hp: Hyperparameters):
    """The Keras callback of the ``plateau`` schedule, or None for another."""
    if hp.lr_schedule != "plateau":
        return None
    import keras

    return keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=hp.lr_decay_rate,
                                             patience=hp.lr_decay_epochs, min_delta=PLATEAU_MIN_DELTA)


def build_optimizer(hp: Hyperparameters, steps_per_epoch: int):
    """The Keras optimizer of ``hp`` with its learning rate (schedule)."""
    import keras

    rate = build_learning_rate(hp, steps_per_epoch)
    if hp.optimizer == "adam":
        return keras.optimizers.Adam(rate)
    if hp.optimizer == "rmsprop":
        return keras.optimizers.RMSprop(rate)
    if hp.optimizer == "sgd":
        return keras.optimizers.SGD(rate)
    return keras.optimizers.SGD(rate, momentum=hp.momentum, nesterov=hp.optimizer == "nesterov")


def build_loss(hp: Hyperparameters):
    """The Keras loss of ``hp`` (on normalized outputs)."""
    import keras

    if hp.loss == "mse":
        return keras.losses.MeanSquaredError()
    if hp.loss == "mae":
        return keras.losses.MeanAbsoluteError()
    return keras.losses.Huber(delta=hp.huber_delta)
