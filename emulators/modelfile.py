"""FKB model files: read, write and evaluate them in pure NumPy.

Two formats are read (told apart by the first line):

* version 1 of the FKB model file (``docs/model-file.md``): an ASCII header,
  then every weight as little-endian float32, protected by a SHA-256 hash;
* the text format of the original Fortran-Keras Bridge
  (``KerasWeightsProcessing/convert_weights.py``), read the way its Fortran
  ``network_type % load`` reads it.

Only version 1 is written. :func:`evaluate` is a float64 reference
implementation of every layer and activation of the format; it cross-checks
Keras and the Fortran runtime. Nothing here imports Keras.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, NamedTuple, Union

import numpy as np

__all__ = [
    "ACTIVATIONS",
    "CustomLayerKind",
    "FORMAT_VERSION",
    "InputStatistics",
    "LAYER_KINDS",
    "LayerSpec",
    "ModelFileError",
    "ModelSpec",
    "TrainingState",
    "Normalization",
    "activation_alpha",
    "apply_activation",
    "encode_model_file",
    "evaluate",
    "read_model_file",
    "register_layer_kind",
    "validate_spec",
    "write_model_file",
]

FORMAT_VERSION = 3
"""The newest model-file format version this module reads and writes.

Version 2 is version 1 plus an optional training section (the optimizer
state of a network trained in Fortran); version 3 adds an optional
``input_statistics`` section (the training data's distribution, for the
runtime's out-of-distribution guard). A spec is written in the lowest
version that holds it: without either section as version 1, byte for byte
as before."""

AttributeValue = Union[str, int, float]
PathLike = Union[str, "os.PathLike[str]"]


class ModelFileError(Exception):
    """A model file (or a spec about to be written) is unusable.

    The message is one line naming the file and the problem.
    """


class Normalization(NamedTuple):
    """Affine normalization of the model's inputs or outputs.

    Inputs: the network sees ``(x - offset) / scale``.
    Outputs: the model returns ``y * scale + offset``.
    Both are float32 vectors in the units of the variables they normalize.
    """

    offset: np.ndarray
    scale: np.ndarray


@dataclass
class LayerSpec:
    """One node of the layer graph.

    ``inputs`` holds ids of earlier layers, 0 being the model input.
    ``params`` maps a tensor name to a float32 array whose shape is the
    Fortran shape of the tensor (a dense ``kernel`` is ``(n_out, n_in)`` and
    ``y = kernel @ x + bias``); the file stores it in column-major order.
    """

    id: int
    kind: str
    n_out: int
    inputs: list[int]
    attributes: dict[str, AttributeValue] = field(default_factory=dict)
    params: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class TrainingState:
    """The training section of a model file (format version 2,
    docs/model-file.md "Training state"): what the Fortran runtime needs to
    continue training exactly where it saved.

    ``attributes`` are those of the ``training`` line besides ``precision``
    (``iterations``, ``loss``, ``huber_delta``); ``optimizer`` and
    ``optimizer_attributes`` its ``optimizer`` line (every hyperparameter),
    ``schedule``/``schedule_attributes`` the optional ``schedule`` line;
    ``generators`` maps a node id (0: the shuffling of ``fit``, else a
    layer's own, e.g. dropout masks) to its generator state. ``tensors``
    are the slot arrays (Keras's names: ``momentum``, ``velocity``, ...),
    each a vector over the trainable weights in the order of
    ``Network.weights``, and at precision 64 the exact ``weights`` and
    ``moving_statistics``; float32 arrays at precision 32, float64 at 64.
    """

    precision: int
    optimizer: str
    optimizer_attributes: dict[str, AttributeValue] = field(default_factory=dict)
    attributes: dict[str, AttributeValue] = field(default_factory=dict)
    schedule: str | None = None
    schedule_attributes: dict[str, AttributeValue] = field(default_factory=dict)
    generators: dict[int, int] = field(default_factory=dict)
    tensors: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class InputStatistics:
    """The distribution of the inputs a network was trained on (format
    version 3, docs/model-file.md "Input statistics"), in the model's
    physical input units: what the runtime's out-of-distribution guard
    compares each column with.

    ``minimum``, ``maximum``, ``mean``, ``std`` per input; in the
    standardized space ``z = (x - mean) / std``, ``basis`` ``(n_inputs,
    rank)`` holds the leading principal directions of the training inputs
    (orthonormal columns) and ``variance`` ``(rank,)`` their variances,
    ``residual_variance`` the mean variance of the directions left out;
    ``distance_q999`` is the 99.9th percentile of the training samples'
    distance (emulators/input_statistics.py) and ``samples`` how many
    samples the statistics describe. Float32 arrays in a file.
    """

    minimum: np.ndarray
    maximum: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    basis: np.ndarray
    variance: np.ndarray
    residual_variance: float
    distance_q999: float
    samples: int

    @property
    def rank(self) -> int:
        return int(self.variance.shape[0])


@dataclass
class ModelSpec:
    """A whole network as held by a model file.

    ``inputs``/``outputs`` list ``(name, units)`` per variable; an empty list
    means the file gives none (default names ``x1..xn`` / ``y1..yn``, units
    ``1``). ``sha256`` is the content hash read from a version-1 file, None
    for a spec built in memory or read from an original FKB text file.
    """

    n_inputs: int
    n_outputs: int
    layers: list[LayerSpec]
    name: str | None = None
    inputs: list[tuple[str, str]] = field(default_factory=list)
    outputs: list[tuple[str, str]] = field(default_factory=list)
    input_normalization: Normalization | None = None
    output_normalization: Normalization | None = None
    sha256: str | None = None
    training: TrainingState | None = None
    input_statistics: InputStatistics | None = None

    @property
    def input_names(self) -> list[str]:
        """Names of the inputs, defaults filled in."""
        if self.inputs:
            return [name for name, _ in self.inputs]
        return [f"x{i}" for i in range(1, self.n_inputs + 1)]

    @property
    def input_units(self) -> list[str]:
        """Units of the inputs, defaults filled in."""
        return [units for _, units in self.inputs] if self.inputs else ["1"] * self.n_inputs

    @property
    def output_names(self) -> list[str]:
        """Names of the outputs, defaults filled in."""
        if self.outputs:
            return [name for name, _ in self.outputs]
        return [f"y{i}" for i in range(1, self.n_outputs + 1)]

    @property
    def output_units(self) -> list[str]:
        """Units of the outputs, defaults filled in."""
        return [units for _, units in self.outputs] if self.outputs else ["1"] * self.n_outputs

    @property
    def n_params(self) -> int:
        """Number of float32 values in the layers (normalization excluded)."""
        return sum(int(p.size) for layer in self.layers for p in layer.params.values())


# --------------------------------------------------------------------------
# Vocabulary of the format

# Activation name -> default of its parameter ``alpha`` (None: no parameter).
ACTIVATIONS: dict[str, float | None] = {
    "linear": None,
    "relu": None,
    "relu6": None,
    "leaky_relu": 0.2,
    "elu": 1.0,
    "selu": None,
    "gelu": None,
    "gelu_tanh": None,
    "sigmoid": None,
    "hard_sigmoid": None,
    "hard_silu": None,
    "tanh": None,
    "softplus": None,
    "softsign": None,
    "silu": None,
    "mish": None,
    "exponential": None,
    "softmax": None,
    "log_softmax": None,
    "celu": 1.0,
    "hard_tanh": None,
    "log_sigmoid": None,
    "tanh_shrink": None,
    "squareplus": 4.0,
    "gaussian": None,
    "step": None,
}

DROPOUT_VARIANTS = {
    "dropout": "rate",
    "spatial_dropout1d": "rate",
    "gaussian_noise": "stddev",
    "gaussian_dropout": "rate",
    "alpha_dropout": "rate",
}

MERGE_KINDS = ("add", "subtract", "multiply", "average", "maximum", "minimum", "concatenate")

# kind -> (required attributes, optional attributes); each maps name -> type
_REAL, _BOOL, _ACT, _VARIANT = "real", "bool", "activation", "variant"
_ATTRIBUTES: dict[str, tuple[dict[str, str], dict[str, str]]] = {
    "dense": ({"activation": _ACT, "use_bias": _BOOL}, {"alpha": _REAL}),
    "activation": ({"activation": _ACT}, {"alpha": _REAL}),
    "relu": ({"negative_slope": _REAL, "threshold": _REAL}, {"max_value": _REAL}),
    "leaky_relu": ({"negative_slope": _REAL}, {}),
    "elu": ({"alpha": _REAL}, {}),
    "prelu": ({}, {}),
    "softmax": ({}, {}),
    "dropout": ({"variant": _VARIANT}, {"rate": _REAL, "stddev": _REAL}),
    "batch_normalization": (
        {"epsilon": _REAL, "center": _BOOL, "scale": _BOOL},
        {"momentum": _REAL},
    ),
    "layer_normalization": ({"epsilon": _REAL, "center": _BOOL, "scale": _BOOL}, {}),
    "normalization": ({"invert": _BOOL}, {}),
    "rescaling": ({}, {}),
    **{kind: ({}, {}) for kind in MERGE_KINDS},
}
LAYER_KINDS: tuple[str, ...] = tuple(_ATTRIBUTES)
"""Every layer type of format version 1."""


@dataclass(frozen=True)
class CustomLayerKind:
    """A layer type defined outside the format (docs/custom-layers.md).

    ``kind`` is a namespaced name, ``<namespace>.<name>``, which no built-in
    type has. ``check(layer, input_widths)`` raises ValueError for an entry
    the type cannot compute (attributes, params, widths, ``n_out``);
    ``evaluate(layer, inputs)`` is its float64 reference: ``inputs`` are
    ``(n, width)`` float64 arrays, one per input, and it returns
    ``(n, layer.n_out)``.
    """

    kind: str
    evaluate: Callable[[LayerSpec, list[np.ndarray]], np.ndarray]
    check: Callable[[LayerSpec, list[int]], None] | None = None


_CUSTOM_KINDS: dict[str, CustomLayerKind] = {}
_CUSTOM_KIND_RE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_.-]*[A-Za-z0-9_-]\Z")


def register_layer_kind(
    kind: str,
    *,
    evaluate: Callable[[LayerSpec, list[np.ndarray]], np.ndarray],
    check: Callable[[LayerSpec, list[int]], None] | None = None,
) -> CustomLayerKind:
    """Make the reader, the writer and :func:`evaluate` accept layer type ``kind``.

    Registering a kind again replaces it (a plugin module may be reloaded).
    ``emulators.convert.register_layer`` calls this for a custom Keras layer.
    """
    if not isinstance(kind, str) or not _CUSTOM_KIND_RE.match(kind):
        raise ValueError(f"custom layer type {kind!r} is not <namespace>.<name> (letters, digits, _ - and a dot inside)")
    entry = CustomLayerKind(kind, evaluate, check)
    _CUSTOM_KINDS[kind] = entry
    return entry


def _unknown_kind(kind: str, quoted: bool = False) -> str:
    text = f"unknown layer type {kind!r}" if quoted else f"unknown layer type {kind}"
    if "." in kind:
        text += " (a custom layer: import the module that registers it, e.g. fkb convert --plugin MODULE; see docs/custom-layers.md)"
    return text

_NORMALIZATION_EPSILON = 1e-7  # Keras backend.epsilon(), floor of sqrt(variance)
_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946

_INT_RE = re.compile(r"[+-]?\d+\Z")

# Limits both readers (this module and fortran/src/fkb_files.f90) apply
# before they allocate (docs/model-file.md, "Limits"):
MAX_MODEL_FILE_BYTES = 2 ** 31
"""The largest model file the readers read (2 GiB, as the Fortran reader's
``max_model_file_bytes``): a larger one is refused before it is read."""

MAX_MODEL_VALUES = MAX_MODEL_FILE_BYTES // 4
"""The most weights a model may have: what a model file of the largest size
holds in float32 (2^29); an original FKB text file, whose repeat counts can
declare many values in a few bytes, is held to it too."""

MAX_MODEL_WIDTH = 2 ** 22
"""The most features n_inputs and the widths of all layers may add up to
(4194304): a column's workspace in the runtime (16 MiB in float32), and the
names the runtime gives the inputs and outputs. A layer without weights
(softmax, dropout, ...) costs nothing in the file, so its width is bounded
here and not by the file's size; a dense network this wide would need far
more than MAX_MODEL_VALUES weights anyway."""

MAX_HEADER_INT = 2 ** 31 - 1
"""Integers of a header (counts, ids, widths, dimensions) are at most this
(Fortran's default integer), written with at most 10 digits."""

_REAL_RE = re.compile(r"[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?\Z")
_TOKEN_RE = re.compile(r"[!-~]+\Z")  # printable ASCII, no space
_TEXT_RE = re.compile(r"[ -~]+\Z")  # printable ASCII with spaces


def activation_alpha(activation: str, attributes: dict[str, AttributeValue]) -> float | None:
    """The parameter of ``activation`` given by ``attributes`` (or its default)."""
    default = ACTIVATIONS[activation]
    if default is None:
        return None
    return float(attributes.get("alpha", default))


# --------------------------------------------------------------------------
# Validation shared by the reader and the writer


def _check_attributes(layer: LayerSpec) -> None:
    required, optional = _ATTRIBUTES[layer.kind]
    for key in required:
        if key not in layer.attributes:
            raise ValueError(f"{layer.kind} layer needs attribute {key}")
    for key, value in layer.attributes.items():
        kind = required.get(key) or optional.get(key)
        if kind is None:
            raise ValueError(f"{layer.kind} layer has unknown attribute {key}")
        if kind == _REAL:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"attribute {key}={value} is not a number")
            if not math.isfinite(value):
                raise ValueError(f"attribute {key}={value} is not finite")
        elif kind == _BOOL:
            if isinstance(value, bool) or value not in (0, 1) or not isinstance(value, int):
                raise ValueError(f"attribute {key}={value} is not 0 or 1")
        elif kind == _ACT:
            if value not in ACTIVATIONS:
                raise ValueError(f"unknown activation {value}")
        elif kind == _VARIANT and value not in DROPOUT_VARIANTS:
            raise ValueError(f"unknown dropout variant {value}")
    if "activation" in layer.attributes:
        activation = str(layer.attributes["activation"])
        has_alpha = ACTIVATIONS[activation] is not None
        if has_alpha and "alpha" not in layer.attributes:
            raise ValueError(f"activation {activation} needs attribute alpha")
        if not has_alpha and "alpha" in layer.attributes:
            raise ValueError(f"activation {activation} takes no alpha")
    if layer.kind == "dropout":
        wanted = DROPOUT_VARIANTS[str(layer.attributes["variant"])]
        extra = {"rate", "stddev"} - {wanted}
        if wanted not in layer.attributes:
            raise ValueError(f"dropout variant {layer.attributes['variant']} needs attribute {wanted}")
        for key in extra & set(layer.attributes):
            raise ValueError(f"dropout variant {layer.attributes['variant']} takes no {key}")


def _expected_params(layer: LayerSpec, widths: list[int]) -> dict[str, tuple[int, ...]]:
    """Names and Fortran shapes of the tensors ``layer`` must carry."""
    attrs = layer.attributes
    n = widths[0]
    if layer.kind == "dense":
        shapes: dict[str, tuple[int, ...]] = {"kernel": (layer.n_out, n)}
        if attrs["use_bias"] == 1:
            shapes["bias"] = (layer.n_out,)
        return shapes
    if layer.kind == "prelu":
        return {"alpha": (n,)}
    if layer.kind in ("batch_normalization", "layer_normalization"):
        shapes = {}
        if attrs["scale"] == 1:
            shapes["gamma"] = (n,)
        if attrs["center"] == 1:
            shapes["beta"] = (n,)
        if layer.kind == "batch_normalization":
            shapes["moving_mean"] = (n,)
            shapes["moving_variance"] = (n,)
        return shapes
    if layer.kind == "normalization":
        return {"mean": (n,), "variance": (n,)}
    if layer.kind == "rescaling":
        return {"scale": (n,), "offset": (n,)}
    return {}


def _expected_width(layer: LayerSpec, widths: list[int]) -> int:
    if layer.kind == "dense":
        return layer.n_out
    if layer.kind == "concatenate":
        return sum(widths)
    return widths[0]


def _check_layer(layer: LayerSpec, position: int, widths: dict[int, int]) -> None:
    """Check one layer against the widths of the layers before it."""
    if layer.id != position:
        raise ValueError(f"layer id {layer.id} out of order (expected {position})")
    custom = _CUSTOM_KINDS.get(layer.kind)
    if layer.kind not in _ATTRIBUTES and custom is None:
        raise ValueError(_unknown_kind(layer.kind))
    if isinstance(layer.n_out, bool) or not isinstance(layer.n_out, (int, np.integer)) or layer.n_out < 1:
        raise ValueError(f"output width {layer.n_out} is not a positive integer")
    if not layer.inputs:
        raise ValueError("has no inputs")
    for source in layer.inputs:
        if source not in widths:
            raise ValueError(f"input {source} is not an earlier layer")
    if custom is not None:
        _check_custom_layer(layer, custom, [widths[source] for source in layer.inputs])
        return
    n_in = len(layer.inputs)
    if layer.kind in MERGE_KINDS:
        if layer.kind == "subtract" and n_in != 2:
            raise ValueError(f"subtract needs exactly 2 inputs, got {n_in}")
        if n_in < 2:
            raise ValueError(f"{layer.kind} needs at least 2 inputs, got {n_in}")
    elif n_in != 1:
        raise ValueError(f"{layer.kind} takes 1 input, got {n_in}")
    in_widths = [widths[source] for source in layer.inputs]
    if layer.kind in MERGE_KINDS and layer.kind != "concatenate" and len(set(in_widths)) != 1:
        raise ValueError(f"{layer.kind} of inputs with different widths {in_widths}")
    _check_attributes(layer)
    expected = _expected_width(layer, in_widths)
    if layer.n_out != expected:
        raise ValueError(f"output width {layer.n_out} inconsistent with its inputs (expected {expected})")
    shapes = _expected_params(layer, in_widths)
    if set(layer.params) != set(shapes):
        missing = sorted(set(shapes) - set(layer.params))
        extra = sorted(set(layer.params) - set(shapes))
        what = [f"missing param {m}" for m in missing] + [f"unexpected param {e}" for e in extra]
        raise ValueError(", ".join(what))
    for pname, shape in shapes.items():
        value = layer.params[pname]
        if not isinstance(value, np.ndarray) or tuple(value.shape) != shape:
            got = getattr(value, "shape", type(value).__name__)
            raise ValueError(f"param {pname} has shape {tuple(got) if isinstance(got, tuple) else got}, expected {shape}")
    if layer.kind == "normalization" and np.any(layer.params["variance"] < 0):
        raise ValueError("param variance has negative values")
    _check_values(layer)


def _check_values(layer: LayerSpec) -> None:
    """What the Fortran builders (the layers' setup, fortran/src/fkb_layer_*.inc)
    refuse of a layer's values, refused here too, so that both readers accept
    the same files."""
    attrs = layer.attributes
    nonnegative = {"relu": ("negative_slope", "threshold", "max_value"), "dropout": ("rate", "stddev")}
    for key in nonnegative.get(layer.kind, ()):
        if key in attrs and attrs[key] < 0:
            raise ValueError(f"attribute {key} is negative")
    if layer.kind == "layer_normalization" and attrs["epsilon"] < 0:
        raise ValueError("epsilon is negative")
    if attrs.get("activation") == "celu" and attrs.get("alpha") == 0:
        raise ValueError("activation celu needs a non-zero alpha")
    if layer.kind == "batch_normalization":
        bad = np.flatnonzero(layer.params["moving_variance"].astype(np.float64) + float(attrs["epsilon"]) <= 0)
        if bad.size:
            raise ValueError(f"moving_variance + epsilon is not positive for feature {int(bad[0]) + 1}")


def _check_custom_layer(layer: LayerSpec, custom: CustomLayerKind, in_widths: list[int]) -> None:
    """What the format requires of any layer, then the type's own check."""
    for key, value in layer.attributes.items():
        if isinstance(value, bool) or not isinstance(value, (int, float, str, np.integer, np.floating)):
            raise ValueError(f"attribute {key}={value!r} is not a number or an identifier")
        if isinstance(value, (float, np.floating)) and not math.isfinite(value):
            raise ValueError(f"attribute {key}={value} is not finite")
    for pname, value in layer.params.items():
        if not isinstance(value, np.ndarray) or value.ndim not in (1, 2):
            raise ValueError(f"param {pname} is not an array of 1 or 2 dimensions")
    if custom.check is not None:
        custom.check(layer, list(in_widths))


def _check_name_list(pairs: list[tuple[str, str]], count: int, what: str) -> None:
    if not pairs:
        return
    if len(pairs) != count:
        raise ValueError(f"{len(pairs)} {what} names for {count} {what}s")
    for i, (name, units) in enumerate(pairs, start=1):
        if not isinstance(name, str) or not _TOKEN_RE.match(name):
            raise ValueError(f"{what} {i} name {name!r} is not one printable ASCII token")
        if not isinstance(units, str) or not _TEXT_RE.match(units) or units != units.strip():
            raise ValueError(f"{what} {i} units {units!r} must be printable ASCII without leading or trailing spaces")


def _check_normalization(norm: Normalization | None, n: int, what: str) -> None:
    if norm is None:
        return
    for pname, value in zip(("offset", "scale"), norm):
        if not isinstance(value, np.ndarray) or value.shape != (n,):
            raise ValueError(f"{what} {pname} must be an array of shape ({n},)")
        if not np.all(np.isfinite(value)):
            raise ValueError(f"{what} {pname} has non-finite values")


def _check_total_values(total: int) -> None:
    """A model has at most MAX_MODEL_VALUES weights."""
    if total > MAX_MODEL_VALUES:
        raise ValueError(f"the layers declare {total} weights, more than the {MAX_MODEL_VALUES} (2 GiB of float32) "
                         "a model may have")


def _check_total_width(n_inputs: int, widths: list) -> None:
    """n_inputs and the layers' widths add up to at most MAX_MODEL_WIDTH."""
    total = int(n_inputs) + sum(int(w) for w in widths if isinstance(w, (int, np.integer)))
    if total > MAX_MODEL_WIDTH:
        raise ValueError(f"n_inputs and the layers' widths add up to {total}, more than the {MAX_MODEL_WIDTH} "
                         "a model may have")


def validate_spec(spec: ModelSpec) -> None:
    """Check a spec against the rules of format version 1.

    Raises ValueError with a one-line description of the first problem.
    """
    for what, n in (("n_inputs", spec.n_inputs), ("n_outputs", spec.n_outputs)):
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"{what} {n} is not a positive integer")
    if spec.name is not None and (
        not isinstance(spec.name, str) or not _TEXT_RE.match(spec.name) or spec.name != spec.name.strip()
    ):
        raise ValueError(f"model name {spec.name!r} must be printable ASCII without leading or trailing spaces")
    _check_name_list(spec.inputs, spec.n_inputs, "input")
    _check_name_list(spec.outputs, spec.n_outputs, "output")
    _check_normalization(spec.input_normalization, spec.n_inputs, "input_normalization")
    _check_normalization(spec.output_normalization, spec.n_outputs, "output_normalization")
    if spec.input_statistics is not None:
        try:
            _check_input_statistics(spec.input_statistics, spec.n_inputs)
        except ValueError as exc:
            raise ValueError(f"input_statistics: {exc}") from None
    if not spec.layers:
        raise ValueError("the model has no layers")
    _check_total_width(spec.n_inputs, [layer.n_out for layer in spec.layers])
    widths = {0: int(spec.n_inputs)}
    for position, layer in enumerate(spec.layers, start=1):
        try:
            _check_layer(layer, position, widths)
        except ValueError as exc:
            raise ValueError(f"layer {position}: {exc}") from None
        widths[layer.id] = int(layer.n_out)
        for pname, value in layer.params.items():
            if not np.all(np.isfinite(value)):
                raise ValueError(f"layer {position}: param {pname} has non-finite values")
    if spec.layers[-1].n_out != spec.n_outputs:
        raise ValueError(f"last layer has width {spec.layers[-1].n_out} but n_outputs is {spec.n_outputs}")
    if spec.training is not None:
        try:
            _check_training(spec.training, len(spec.layers))
        except ValueError as exc:
            raise ValueError(f"training section: {exc}") from None


_GENERATOR_MAX = 2147483646  # states of the Park-Miller generator: 1 .. 2^31 - 2

_STATISTICS_VECTORS = ("minimum", "maximum", "mean", "std")


def _check_input_statistics(stats: InputStatistics, n: int) -> None:
    """Shapes and values of an input_statistics section (as the Fortran reader checks them)."""
    for name in _STATISTICS_VECTORS:
        value = getattr(stats, name)
        if not isinstance(value, np.ndarray) or value.shape != (n,):
            raise ValueError(f"{name} must be an array of shape ({n},)")
    rank = stats.variance.shape[0] if isinstance(stats.variance, np.ndarray) and stats.variance.ndim == 1 else -1
    if not 0 <= rank <= n:
        raise ValueError(f"variance must be a vector of at most {n} values")
    if not isinstance(stats.basis, np.ndarray) or stats.basis.shape != (n, rank):
        raise ValueError(f"basis must be an array of shape ({n}, {rank})")
    for name in _STATISTICS_VECTORS + ("basis", "variance"):
        if not np.all(np.isfinite(getattr(stats, name))):
            raise ValueError(f"{name} has non-finite values")
    if np.any(stats.minimum > stats.maximum):
        raise ValueError(f"minimum is above maximum for input {int(np.argmax(stats.minimum > stats.maximum)) + 1}")
    if not np.all(stats.std > 0):
        raise ValueError(f"std is not positive for input {int(np.argmin(stats.std > 0)) + 1}")
    if not np.all(stats.variance > 0):
        raise ValueError("variance has values that are not positive")
    for name in ("residual_variance", "distance_q999"):
        value = getattr(stats, name)
        if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not value > 0 \
                or not math.isfinite(value):
            raise ValueError(f"{name} {value!r} is not a positive number")
    if isinstance(stats.samples, bool) or not isinstance(stats.samples, (int, np.integer)) or stats.samples < 1:
        raise ValueError(f"samples {stats.samples!r} is not a positive integer")


def _check_key_values(what: str, attributes: dict[str, AttributeValue]) -> None:
    for key, value in attributes.items():
        if not isinstance(key, str) or not _TOKEN_RE.match(key) or "=" in key:
            raise ValueError(f"{what}: key {key!r} is not a token")
        if isinstance(value, (float, np.floating)) and not math.isfinite(value):
            raise ValueError(f"{what}: {key}={value} is not finite")
        _format_attribute(key, value)  # raises for a value that is no number or identifier


def _check_training(state: TrainingState, n_layers: int) -> None:
    """The syntax of a training section; its meaning is checked by the
    Fortran runtime that loads it (which refuses a state that does not fit
    the network)."""
    if state.precision not in (32, 64):
        raise ValueError(f"precision {state.precision} is not 32 or 64")
    for what, name in (("optimizer", state.optimizer), ("schedule", state.schedule)):
        if name is not None and (not isinstance(name, str) or not _TOKEN_RE.match(name) or "=" in name):
            raise ValueError(f"{what} {name!r} is not one token")
    if "precision" in state.attributes:
        raise ValueError("precision belongs in TrainingState.precision, not in attributes")
    _check_key_values("training", state.attributes)
    _check_key_values("optimizer", state.optimizer_attributes)
    _check_key_values("schedule", state.schedule_attributes)
    if state.schedule is None and state.schedule_attributes:
        raise ValueError("schedule attributes without a schedule")
    for node, value in state.generators.items():
        if not isinstance(node, (int, np.integer)) or not 0 <= node <= n_layers:
            raise ValueError(f"generator id {node} is not in 0..{n_layers}")
        if not isinstance(value, (int, np.integer)) or not 1 <= value <= _GENERATOR_MAX:
            raise ValueError(f"generator {node}: state {value} is not in 1..{_GENERATOR_MAX}")
    dtype = np.float32 if state.precision == 32 else np.float64
    for name, value in state.tensors.items():
        if not isinstance(name, str) or not _TOKEN_RE.match(name):
            raise ValueError(f"param name {name!r} is not a token")
        if not isinstance(value, np.ndarray) or value.ndim not in (1, 2) or value.size == 0:
            raise ValueError(f"param {name} is not a non-empty array of 1 or 2 dimensions")
        if value.dtype != dtype:
            raise ValueError(f"param {name} has dtype {value.dtype}, precision {state.precision} needs {np.dtype(dtype)}")
        if not np.all(np.isfinite(value)):
            raise ValueError(f"param {name} has non-finite values")


# --------------------------------------------------------------------------
# Writing


def _format_attribute(key: str, value: AttributeValue) -> str:
    if isinstance(value, (bool, np.bool_)):
        text = str(int(value))
    elif isinstance(value, (int, np.integer)):
        text = str(int(value))
    elif isinstance(value, (float, np.floating)):
        text = repr(float(value))
    else:
        text = str(value)
        if not _TOKEN_RE.match(text) or "=" in text or _INT_RE.match(text) or _REAL_RE.match(text):
            raise ValueError(f"attribute {key}={text!r} is not an identifier")
    return f"{key}={text}"


def _as_float32(value: np.ndarray, what: str) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype == np.float32:
        return array
    if not np.issubdtype(array.dtype, np.floating) and not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{what} has dtype {array.dtype}, not a real type")
    converted = array.astype(np.float32)
    with np.errstate(invalid="ignore"):
        exact = np.array_equal(converted.astype(array.dtype), array, equal_nan=True)
    if not exact:
        raise ValueError(f"{what} has dtype {array.dtype} and values that float32 cannot hold exactly")
    return converted


def _param_line(name: str, shape: tuple[int, ...]) -> str:
    return "param " + name + "".join(f" {d}" for d in shape)


def encode_model_file(spec: ModelSpec) -> bytes:
    """The bytes of ``spec`` as a version-1 model file.

    Raises ModelFileError (message without a file name) for an invalid spec.
    """
    try:
        return _encode(spec)
    except ValueError as exc:
        raise ModelFileError(f"cannot write model: {exc}") from None


def _encode(spec: ModelSpec) -> bytes:
    spec = _with_float32_params(spec)
    validate_spec(spec)
    lines: list[str] = []
    tensors: list[np.ndarray] = []
    if spec.name is not None:
        lines.append(f"name {spec.name}")
    lines.append(f"n_inputs {int(spec.n_inputs)}")
    lines.append(f"n_outputs {int(spec.n_outputs)}")
    for keyword, pairs in (("input", spec.inputs), ("output", spec.outputs)):
        for i, (name, units) in enumerate(pairs, start=1):
            lines.append(f"{keyword} {i} {name} {units}")
    for keyword, norm in (
        ("input_normalization", spec.input_normalization),
        ("output_normalization", spec.output_normalization),
    ):
        if norm is not None:
            lines.append(keyword)
            for pname, value in zip(("offset", "scale"), norm):
                lines.append(_param_line(pname, value.shape))
                tensors.append(value)
    version = 1
    stats = spec.input_statistics
    if stats is not None:
        version = 3
        lines.append(" ".join(["input_statistics"] + [_format_attribute(k, v) for k, v in (
            ("samples", int(stats.samples)), ("rank", stats.rank),
            ("residual_variance", float(stats.residual_variance)),
            ("distance_q999", float(stats.distance_q999)))]))
        for pname in _STATISTICS_VECTORS + ("basis", "variance"):
            value = getattr(stats, pname)
            if value.size:
                lines.append(_param_line(pname, value.shape))
                tensors.append(value)
    for layer in spec.layers:
        words = [f"layer {layer.id} {layer.kind} {int(layer.n_out)}"]
        words.append("inputs=" + ",".join(str(int(i)) for i in layer.inputs))
        words.extend(_format_attribute(k, v) for k, v in layer.attributes.items())
        lines.append(" ".join(words))
        for pname, value in layer.params.items():
            if not _TOKEN_RE.match(pname):
                raise ValueError(f"layer {layer.id}: param name {pname!r} is not a token")
            lines.append(_param_line(pname, value.shape))
            tensors.append(value)
    payload_type = ["<f4"] * len(tensors)
    state = spec.training
    if state is not None:
        version = max(version, 2)
        words = [f"training precision={state.precision}"]
        words.extend(_format_attribute(k, v) for k, v in state.attributes.items())
        lines.append(" ".join(words))
        lines.append(" ".join([f"optimizer {state.optimizer}"]
                              + [_format_attribute(k, v) for k, v in state.optimizer_attributes.items()]))
        if state.schedule is not None:
            lines.append(" ".join([f"schedule {state.schedule}"]
                                  + [_format_attribute(k, v) for k, v in state.schedule_attributes.items()]))
        for node, value in state.generators.items():
            lines.append(f"generator {int(node)} {int(value)}")
        for pname, value in state.tensors.items():
            lines.append(_param_line(pname, value.shape))
            tensors.append(value)
            payload_type.append("<f4" if state.precision == 32 else "<f8")
    lines.append("end_header")
    header = ("\n".join(lines) + "\n").encode("ascii")
    payload = b"".join(t.astype(kind).ravel(order="F").tobytes() for t, kind in zip(tensors, payload_type))
    body = header + payload
    digest = hashlib.sha256(body).hexdigest()
    return f"FKB {version}\nsha256 {digest}\n".encode("ascii") + body


def _with_float32_params(spec: ModelSpec) -> ModelSpec:
    """A shallow copy of ``spec`` whose tensors are float32 (exact casts only)."""
    layers = []
    for layer in spec.layers:
        params = {
            name: _as_float32(value, f"layer {layer.id} param {name}") for name, value in layer.params.items()
        }
        layers.append(LayerSpec(layer.id, layer.kind, layer.n_out, list(layer.inputs), dict(layer.attributes), params))
    norms = []
    for what, norm in (("input_normalization", spec.input_normalization), ("output_normalization", spec.output_normalization)):
        if norm is None:
            norms.append(None)
        else:
            norms.append(Normalization(*(_as_float32(v, f"{what} {n}") for n, v in zip(("offset", "scale"), norm))))
    return ModelSpec(
        n_inputs=spec.n_inputs,
        n_outputs=spec.n_outputs,
        layers=layers,
        name=spec.name,
        inputs=list(spec.inputs),
        outputs=list(spec.outputs),
        input_normalization=norms[0],
        output_normalization=norms[1],
        sha256=spec.sha256,
        training=_with_state_dtype(spec.training),
        input_statistics=_with_float32_statistics(spec.input_statistics),
    )


def _with_float32_statistics(stats: InputStatistics | None) -> InputStatistics | None:
    """A copy of ``stats`` with float32 arrays (rounded: statistics, not weights)."""
    if stats is None:
        return None
    arrays = {}
    for name in _STATISTICS_VECTORS + ("basis", "variance"):
        value = np.asarray(getattr(stats, name))
        if not np.issubdtype(value.dtype, np.number):
            raise ValueError(f"input_statistics {name} is not numeric")
        arrays[name] = value.astype(np.float32)
    return InputStatistics(**arrays, residual_variance=stats.residual_variance,
                           distance_q999=stats.distance_q999, samples=stats.samples)


def _with_state_dtype(state: TrainingState | None) -> TrainingState | None:
    """A copy of ``state`` whose tensors have its precision's dtype (exact casts only)."""
    if state is None:
        return None
    tensors = {}
    for name, value in state.tensors.items():
        if state.precision == 32:
            tensors[name] = _as_float32(value, f"training param {name}")
        else:
            array = np.asarray(value)
            if not np.issubdtype(array.dtype, np.floating) or array.dtype.itemsize > 8:
                raise ValueError(f"training param {name} has dtype {array.dtype}, not float32 or float64")
            tensors[name] = array.astype(np.float64)
    return TrainingState(state.precision, state.optimizer, dict(state.optimizer_attributes),
                         dict(state.attributes), state.schedule, dict(state.schedule_attributes),
                         dict(state.generators), tensors)


def write_model_file(spec: ModelSpec, path: PathLike) -> str:
    """Write ``spec`` as a version-1 model file; return its SHA-256 hex digest.

    The file appears atomically (temporary file in the same folder, then
    ``os.replace``). Raises ModelFileError naming the file for an invalid spec
    or an I/O failure.
    """
    path = Path(path)
    try:
        data = _encode(spec)
    except ValueError as exc:
        raise ModelFileError(f"{path}: cannot write model: {exc}") from None
    digest = data.split(b"\n", 2)[1].split(b" ")[1].decode("ascii")
    from emulators.atomic_files import replacing
    try:
        with replacing(path, fsync=True) as tmp:
            tmp.write_bytes(data)
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot write: {exc.strerror or exc}") from None
    return digest


# --------------------------------------------------------------------------
# Reading




def check_readable_file(path: PathLike, limit: int = MAX_MODEL_FILE_BYTES) -> None:
    """Refuse, with a ModelFileError of one line, a path that is not a regular
    file (a FIFO would block a reader, a device never end) or is larger than
    `limit` bytes: the messages of the Fortran reader (fkb_files.f90)."""
    import stat as stat_module

    path = Path(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise ModelFileError(f"{path}: no such file") from None
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if stat_module.S_ISDIR(info.st_mode):
        raise ModelFileError(f"{path}: is a directory")
    if not stat_module.S_ISREG(info.st_mode):
        raise ModelFileError(f"{path}: is not a regular file (a FIFO, device or socket)")
    if info.st_size > limit:
        raise ModelFileError(f"{path}: {info.st_size // 2 ** 20} MiB, more than the {limit // 2 ** 20} MiB a model "
                             "file may have")


def _read_regular_file(path: Path) -> bytes:
    check_readable_file(path)
    return path.read_bytes()


def read_model_file(path: PathLike) -> ModelSpec:
    """Read a version-1 model file or an original FKB text file.

    Raises ModelFileError with a one-line message naming the file and the
    problem: unreadable file, bad magic, unknown version, hash mismatch,
    malformed line, unknown layer type or activation, bad graph or shapes,
    payload size mismatch, non-finite weight.
    """
    path = Path(path)
    try:
        data = _read_regular_file(path)
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        first = data.split(b"\n", 1)[0].strip()
        if re.fullmatch(rb"\d+", first):
            spec = _parse_fkb_text(data)
        elif first.split(b" ")[0] == b"FKB":
            spec = _parse_v1(data)
        elif not data:
            raise ValueError("empty file")
        else:
            raise ValueError("not a model file (bad magic: first line is neither 'FKB <version>' nor a layer count)")
    except ValueError as exc:
        message = " ".join(str(exc).split())
        raise ModelFileError(f"{path}: {message}") from None
    if spec.training is not None:
        _check_training_meaning(path)
    return spec


def _check_training_meaning(path: Path) -> None:
    """What a training section means (the optimizer and its hyperparameters,
    the loss, the schedule, which slots and generators it must have, the
    64-bit weights rounding to the layers') is checked by one implementation,
    the Fortran runtime's (fkb_training_state.f90): the file is loaded by it,
    and its refusal of the training state is this reader's too, so that both
    readers accept the same files. Without the compiled runtime, the syntax
    checks above stand alone."""
    try:
        from emulators.fkb import FKBError, load
    except ImportError:
        return
    try:
        load(path)
    except FKBError as exc:
        if f"{path}: training state: " in str(exc):
            raise ModelFileError(str(exc)) from None


def _parse_attribute(text: str) -> AttributeValue:
    if _INT_RE.match(text) and _header_int(text) is not None:   # else a real, as Fortran reads it
        return int(text)
    if _REAL_RE.match(text):
        return float(text)
    return text


def _header_int(text: str) -> int | None:
    """An integer of the header as the Fortran reader parses one (an optional
    sign and at most 10 digits, at most MAX_HEADER_INT), else None."""
    if not re.fullmatch(r"[+-]?[0-9]{1,10}", text) or abs(int(text)) > MAX_HEADER_INT:
        return None
    return int(text)


def _positive_int(text: str, what: str) -> int:
    value = _header_int(text)
    if value is None or value < 1:
        raise ValueError(f"{what} {text!r} is not a positive integer (of at most 10 digits, below 2^31)")
    return value


def _parse_v1(data: bytes) -> ModelSpec:
    magic, _, rest = data.partition(b"\n")
    words = magic.decode("ascii", "replace").split()
    if len(words) != 2 or not _INT_RE.match(words[1]):
        raise ValueError(f"bad magic line {magic[:40].decode('ascii', 'replace')!r} (expected 'FKB 1')")
    version = int(words[1])
    if not 1 <= version <= FORMAT_VERSION:
        raise ValueError(f"unknown format version {words[1]} (this reader knows versions 1 to {FORMAT_VERSION})")
    hash_line, newline, body = rest.partition(b"\n")
    hash_words = hash_line.decode("ascii", "replace").split(" ")
    if not newline or len(hash_words) != 2 or hash_words[0] != "sha256" or not re.fullmatch(r"[0-9a-f]{64}", hash_words[1]):
        raise ValueError("line 2 is not 'sha256 <64 lowercase hex digits>'")
    actual = hashlib.sha256(body).hexdigest()
    if actual != hash_words[1]:
        raise ValueError(f"hash mismatch: the file is corrupt or truncated (header says {hash_words[1][:12]}..., content hashes to {actual[:12]}...)")

    # header lines, numbered as in the file
    lines: list[tuple[int, str]] = []
    position = 0
    line_number = 2
    while True:
        end = body.find(b"\n", position)
        if end < 0:
            raise ValueError("header has no end_header line")
        line_number += 1
        raw = body[position:end]
        position = end + 1
        try:
            text = raw.decode("ascii")
        except UnicodeDecodeError:
            raise ValueError(f"line {line_number}: header line is not ASCII") from None
        if text == "end_header":
            break
        lines.append((line_number, text))
    payload = body[position:]

    spec_fields: dict[str, object] = {}
    inputs: dict[int, tuple[str, str]] = {}
    outputs: dict[int, tuple[str, str]] = {}
    norm_params: dict[str, dict[str, np.ndarray]] = {}
    layers: list[LayerSpec] = []
    declared: list[tuple[dict[str, np.ndarray], str, tuple[int, ...], int, str]] = []  # target, name, shape, line, dtype
    section: dict[str, np.ndarray] | None = None
    training: TrainingState | None = None
    statistics: dict[str, np.ndarray] | None = None
    statistics_attributes: dict[str, AttributeValue] = {}

    for number, text in lines:
        if re.search(r"[\x00-\x1f\x7f]", text):   # as the Fortran reader
            raise ValueError(f"line {number}: control character in the header")
        tokens = [t for t in text.split(" ") if t]
        if not tokens:
            raise ValueError(f"line {number}: empty header line")
        keyword = tokens[0]
        try:
            if training is not None and keyword not in ("param", "optimizer", "schedule", "generator"):
                raise ValueError(f"{keyword!r} line after the training section (it must come last)")
            if training is not None and keyword != "param":
                _parse_training_line(keyword, tokens, training, len(layers))
                continue
            if keyword == "training":
                if version < 2:
                    raise ValueError("a training section needs format version 2 (the file says 1)")
                if not layers:
                    raise ValueError("the training section comes after the layers")
                attributes = _parse_key_values(tokens[1:])
                precision = attributes.pop("precision", None)
                if precision not in (32, 64):
                    raise ValueError("the training line needs precision=32 or precision=64")
                training = TrainingState(int(precision), "", attributes=attributes)
                section = training.tensors
                continue
            if keyword in ("optimizer", "schedule", "generator"):
                raise ValueError(f"{keyword} line outside a training section")
            if keyword == "param":
                if section is None:
                    raise ValueError("param line outside a layer or normalization section")
                if len(tokens) not in (3, 4):
                    raise ValueError("param line needs a name and 1 or 2 dimensions")
                pname = tokens[1]
                shape = tuple(_positive_int(t, "dimension") for t in tokens[2:])
                if pname in section:
                    raise ValueError(f"param {pname} declared twice")
                dtype = "<f8" if training is not None and training.precision == 64 else "<f4"
                declared.append((section, pname, shape, number, dtype))
                section[pname] = np.empty(0)  # placeholder, filled from the payload
                continue
            section = None
            if keyword == "name":
                if "name" in spec_fields:
                    raise ValueError("name given twice")
                spec_fields["name"] = text[len("name"):].strip() or None
            elif keyword in ("n_inputs", "n_outputs"):
                if keyword in spec_fields:
                    raise ValueError(f"{keyword} given twice")
                if len(tokens) != 2:
                    raise ValueError(f"{keyword} line needs one integer")
                spec_fields[keyword] = _positive_int(tokens[1], keyword)
            elif keyword in ("input", "output"):
                if len(tokens) < 4:
                    raise ValueError(f"{keyword} line needs an index, a name and units")
                index = _positive_int(tokens[1], f"{keyword} index")
                target = inputs if keyword == "input" else outputs
                if index in target:
                    raise ValueError(f"{keyword} {index} given twice")
                units = text.split(None, 3)[3].strip()
                target[index] = (tokens[2], units)
            elif keyword in ("input_normalization", "output_normalization"):
                if len(tokens) != 1:
                    raise ValueError(f"{keyword} line takes no values")
                if keyword in norm_params:
                    raise ValueError(f"{keyword} given twice")
                section = norm_params[keyword] = {}
            elif keyword == "input_statistics":
                if version < 3:
                    raise ValueError(f"an input_statistics section needs format version 3 (the file says {version})")
                if statistics is not None:
                    raise ValueError("input_statistics given twice")
                if layers:
                    raise ValueError("the input_statistics section comes before the layers")
                statistics_attributes = _parse_key_values(tokens[1:])
                known = {"samples", "rank", "residual_variance", "distance_q999"}
                if set(statistics_attributes) != known:
                    raise ValueError("the input_statistics line needs exactly " + ", ".join(sorted(known)))
                for key, low in (("samples", 1), ("rank", 0)):
                    value = statistics_attributes[key]
                    if isinstance(value, bool) or not isinstance(value, int) or value < low:
                        raise ValueError(f"input_statistics {key}={value} is out of range")
                section = statistics = {}
            elif keyword == "layer":
                layer = _parse_layer_line(tokens)
                layers.append(layer)
                section = layer.params
            else:
                raise ValueError(f"unknown keyword {keyword!r}")
        except ValueError as exc:
            raise ValueError(f"line {number}: {exc}") from None

    for keyword in ("n_inputs", "n_outputs"):
        if keyword not in spec_fields:
            raise ValueError(f"header has no {keyword} line")

    if training is not None and not training.optimizer:
        raise ValueError("the training section has no optimizer line")
    expected = sum(np.dtype(dtype).itemsize * int(np.prod(shape)) for _, _, shape, _, dtype in declared)
    if len(payload) != expected:
        raise ValueError(f"payload size mismatch: the header declares {expected} bytes of tensors, the file holds {len(payload)}")
    offset = 0
    for target, pname, shape, number, dtype in declared:
        size = int(np.prod(shape))
        values = np.frombuffer(payload, dtype=dtype, count=size, offset=offset)
        offset += np.dtype(dtype).itemsize * size
        if not np.all(np.isfinite(values)):
            raise ValueError(f"line {number}: param {pname} holds a non-finite value")
        target[pname] = values.astype(np.dtype(dtype).newbyteorder("=")).reshape(shape, order="F")

    normalizations = {}
    for keyword, params in norm_params.items():
        if set(params) != {"offset", "scale"}:
            raise ValueError(f"{keyword} needs exactly the params offset and scale")
        zero = np.flatnonzero(params["scale"] == 0)
        if zero.size:   # as the Fortran reader: a division by zero
            raise ValueError(f"{keyword} scale is zero for feature {int(zero[0]) + 1}")
        normalizations[keyword] = Normalization(params["offset"], params["scale"])

    n_inputs = int(spec_fields["n_inputs"])  # type: ignore[arg-type]
    n_outputs = int(spec_fields["n_outputs"])  # type: ignore[arg-type]
    input_statistics = None
    if statistics is not None:
        rank = statistics_attributes["rank"]
        wanted = set(_STATISTICS_VECTORS) | ({"basis", "variance"} if rank else set())
        if set(statistics) != wanted:
            raise ValueError("input_statistics needs exactly the params " + ", ".join(sorted(wanted)))
        if not rank:
            statistics["basis"], statistics["variance"] = np.zeros((n_inputs, 0), np.float32), np.zeros(0, np.float32)
        if isinstance(rank, bool) or not isinstance(rank, int) or statistics["variance"].shape != (rank,):
            raise ValueError(f"input_statistics rank={rank} does not match its variance param")
        input_statistics = InputStatistics(
            **{name: statistics[name] for name in _STATISTICS_VECTORS + ("basis", "variance")},
            residual_variance=statistics_attributes["residual_variance"],
            distance_q999=statistics_attributes["distance_q999"], samples=statistics_attributes["samples"])
    named = []
    for keyword, target, count in (("input", inputs, n_inputs), ("output", outputs, n_outputs)):
        outside = [index for index in target if index > count]
        if outside:   # the Fortran reader's words
            raise ValueError(f"{keyword} index '{min(outside)}' is not in 1..{count}")
        if target and len(target) != count:
            raise ValueError(f"{keyword} lines given for {len(target)} of the {count} {keyword}s (all or none)")
        named.append([target[i] for i in sorted(target)])

    spec = ModelSpec(
        n_inputs=n_inputs,
        n_outputs=n_outputs,
        layers=layers,
        name=spec_fields.get("name"),  # type: ignore[arg-type]
        inputs=named[0],
        outputs=named[1],
        input_normalization=normalizations.get("input_normalization"),
        output_normalization=normalizations.get("output_normalization"),
        sha256=hash_words[1],
        training=training,
        input_statistics=input_statistics,
    )
    validate_spec(spec)
    return spec


def _parse_key_values(tokens: list[str]) -> dict[str, AttributeValue]:
    """``key=value`` tokens of a training, optimizer or schedule line."""
    attributes: dict[str, AttributeValue] = {}
    for token in tokens:
        key, eq, value = token.partition("=")
        if not eq or not key or not value:
            raise ValueError(f"malformed attribute {token!r} (expected key=value)")
        if key in attributes:
            raise ValueError(f"attribute {key} given twice")
        attributes[key] = _parse_attribute(value)
    return attributes


def _parse_training_line(keyword: str, tokens: list[str], training: TrainingState, n_layers: int) -> None:
    """An ``optimizer``, ``schedule`` or ``generator`` line of the training section."""
    if keyword in ("optimizer", "schedule"):
        if len(tokens) < 2:
            raise ValueError(f"expected '{keyword} <kind> [key=value ...]'")
        if keyword == "optimizer":
            if training.optimizer:
                raise ValueError("a second optimizer line")
            training.optimizer = tokens[1]
            training.optimizer_attributes = _parse_key_values(tokens[2:])
        else:
            if training.schedule is not None:
                raise ValueError("a second schedule line")
            training.schedule = tokens[1]
            training.schedule_attributes = _parse_key_values(tokens[2:])
        return
    if len(tokens) != 3 or not _INT_RE.match(tokens[1]) or not _INT_RE.match(tokens[2]):
        raise ValueError("expected 'generator <id> <state>'")
    node, value = (-1 if _header_int(t) is None else _header_int(t) for t in tokens[1:])  # as Fortran parses them
    if not 0 <= node <= n_layers:
        raise ValueError(f"generator id {node} is not in 0..{n_layers}")
    if not 1 <= value <= _GENERATOR_MAX:
        raise ValueError(f"generator {node}: state {value} is not in 1..{_GENERATOR_MAX}")
    if node in training.generators:
        raise ValueError(f"a second generator line for id {node}")
    training.generators[node] = value


def _parse_layer_line(tokens: list[str]) -> LayerSpec:
    if len(tokens) < 5:
        raise ValueError("layer line needs: layer <id> <type> <n_out> inputs=<ids>")
    layer_id = _positive_int(tokens[1], "layer id")
    kind = tokens[2]
    if kind not in _ATTRIBUTES and kind not in _CUSTOM_KINDS:
        raise ValueError(_unknown_kind(kind, quoted=True))
    n_out = _positive_int(tokens[3], "layer width")
    attributes: dict[str, AttributeValue] = {}
    layer_inputs: list[int] | None = None
    for token in tokens[4:]:
        key, eq, value = token.partition("=")
        if not eq or not key or not value:
            raise ValueError(f"malformed attribute {token!r} (expected key=value)")
        if key == "inputs":
            if layer_inputs is not None:
                raise ValueError("inputs given twice")
            parts = [_header_int(p) for p in value.split(",")]
            if None in parts:
                raise ValueError(f"malformed inputs={value}")
            layer_inputs = parts
        elif key in attributes:
            raise ValueError(f"attribute {key} given twice")
        else:
            attributes[key] = _parse_attribute(value)
    if layer_inputs is None:
        raise ValueError("layer line has no inputs=")
    return LayerSpec(layer_id, kind, n_out, layer_inputs, attributes, {})


# --------------------------------------------------------------------------
# The original FKB text format

# original activation name -> (our activation, whether the line's value is alpha)
_FKB_ACTIVATIONS = {
    "linear": ("linear", False),
    "relu": ("relu", False),
    "leakyrelu": ("leaky_relu", True),
    "tanh": ("tanh", False),
    "sigmoid": ("sigmoid", False),
    "elu": ("elu", True),
    "softplus": ("softplus", False),
    "exponential": ("exponential", False),
    "gaussian": ("gaussian", False),
    "step": ("step", False),
}
_FKB_BATCHNORM_EPSILON = 0.001
_FORTRAN_REAL_RE = re.compile(r"([+-]?(?:\d+\.?\d*|\.\d+))(?:[eEdDqQ]([+-]?\d+)|([+-]\d+))?\Z")


def _fortran_real(token: str) -> float:
    """A real as Fortran list-directed input reads it (``1.5E-3``, ``1.5d-3``, ``1.5-300``)."""
    match = _FORTRAN_REAL_RE.match(token)
    if not match:
        raise ValueError(f"{token!r} is not a number")
    mantissa, exponent, bare_exponent = match.groups()
    exponent = exponent or bare_exponent
    return float(f"{mantissa}e{exponent}" if exponent else mantissa)


def _float32_value(value: float) -> float:
    """``value`` rounded to float32 (as the original library stores it), shortest repr."""
    return float(str(np.float32(value)))


class _Records:
    """Records (lines) of an original FKB text file, read list-directed."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        self.index = 0

    def _items(self, line: str, limit: int = MAX_MODEL_VALUES) -> list[str]:
        """The items of a record, repeat counts ``r*value`` expanded; more than
        `limit` of them (a record that has too many for its tensor) is an error
        before they are expanded."""
        items: list[str] = []
        for token in re.split(r"[\s,]+", line.strip()):
            if not token:
                continue
            count, star, value = token.partition("*")
            if star:
                if not re.fullmatch(r"\d+", count) or not value:
                    raise ValueError(f"unsupported list-directed item {token!r}")
                if len(items) + int(count) > limit:
                    raise ValueError(f"line {self.index + 1}: {len(items) + int(count)} values where {limit} "
                                     "were expected")
                items.extend([value] * int(count))
            else:
                items.append(token)
        return items

    def read(self, count: int, what: str) -> tuple[list[str], int]:
        """``count`` items starting at the next record; surplus items are an error."""
        first_line = self.index + 1
        items: list[str] = []
        while len(items) < count:
            if self.index >= len(self.lines):
                raise ValueError(f"file ends while reading {what} (needs {count} values, found {len(items)})")
            items.extend(self._items(self.lines[self.index], count - len(items)))
            self.index += 1
        if len(items) > count:
            raise ValueError(f"line {self.index}: {what} has {len(items)} values where {count} were expected")
        return items, first_line

    def reals(self, count: int, what: str) -> np.ndarray:
        items, first_line = self.read(count, what)
        try:
            values = np.array([_fortran_real(t) for t in items], dtype=np.float64).astype(np.float32)
        except ValueError as exc:
            raise ValueError(f"line {first_line}: {what}: {exc}") from None
        if not np.all(np.isfinite(values)):
            raise ValueError(f"line {first_line}: {what} holds a non-finite value")
        return values

    def check_end(self) -> None:
        for number in range(self.index, len(self.lines)):
            if self.lines[number].strip():
                raise ValueError(f"line {number + 1}: unexpected data after the last tensor")


def _parse_fkb_text(data: bytes) -> ModelSpec:
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise ValueError("original FKB text file holds non-ASCII bytes") from None
    records = _Records(text)
    (count_text,), _ = records.read(1, "layer count")
    n_lines = _positive_int(count_text, "layer count")
    entries: list[tuple[int, str, str]] = []
    for _ in range(n_lines):
        line_number = records.index + 1
        if records.index >= len(records.lines):
            raise ValueError(f"file ends before the {n_lines} layer lines")
        items = records._items(records.lines[records.index])
        records.index += 1
        if len(items) != 2:
            raise ValueError(f"line {line_number}: layer line needs a name and a value, got {len(items)} items")
        entries.append((line_number, items[0].strip("'\""), items[1]))
    records.reals(1, "learning rate")

    if not entries or entries[0][1] != "input":
        raise ValueError(f"line {entries[0][0] if entries else 2}: the first layer line must be 'input <n>'")
    layers: list[LayerSpec] = []
    dense_layers: list[LayerSpec] = []
    batchnorm_layers: list[LayerSpec] = []
    kernel_shapes: dict[int, tuple[int, int]] = {}
    width = 0
    position = 0
    while position < len(entries):
        number, name, value_text = entries[position]
        try:
            value = _fortran_real(value_text)
            if name == "input":
                if position != 0:
                    raise ValueError("input line after the first layer line")
                width = _fkb_width(value)
            elif name == "dense":
                n_out = _fkb_width(value)
                if position + 1 >= len(entries):
                    raise ValueError("dense line without a following activation line")
                act_number, act_name, act_value = entries[position + 1]
                if act_name not in _FKB_ACTIVATIONS:
                    raise ValueError(f"dense layer followed by {act_name!r} on line {act_number}, not an activation the original library knows")
                activation, takes_alpha = _FKB_ACTIVATIONS[act_name]
                attributes: dict[str, AttributeValue] = {"activation": activation}
                if takes_alpha:
                    alpha = _float32_value(_fortran_real(act_value))
                    if act_name == "leakyrelu" and alpha > 1:
                        # the original computes max(alpha*x, x): a leaky ReLU only for alpha <= 1
                        raise ValueError(f"leakyrelu slope {alpha} > 1 on line {act_number} is not a leaky ReLU")
                    attributes["alpha"] = alpha
                attributes["use_bias"] = 1
                # the kernel's shape is all that is known until the tensors are read
                layer = LayerSpec(len(layers) + 1, "dense", n_out, [len(layers)], attributes, {})
                kernel_shapes[layer.id] = (n_out, width)
                dense_layers.append(layer)
                layers.append(layer)
                width = n_out
                position += 1
            elif name == "dropout":
                rate = _float32_value(value)
                layers.append(LayerSpec(len(layers) + 1, "dropout", width, [len(layers)], {"variant": "dropout", "rate": rate}, {}))
            elif name == "batchnormalization":
                layer = LayerSpec(
                    len(layers) + 1,
                    "batch_normalization",
                    width,
                    [len(layers)],
                    {"epsilon": _FKB_BATCHNORM_EPSILON, "center": 1, "scale": 1},
                    {},
                )
                batchnorm_layers.append(layer)
                layers.append(layer)
            elif name in _FKB_ACTIVATIONS:
                raise ValueError(f"activation line {name!r} does not follow a dense line")
            else:
                raise ValueError(f"unknown layer {name!r}")
        except ValueError as exc:
            raise ValueError(f"line {number}: {exc}") from None
        position += 1
    if not layers:
        raise ValueError("the file defines no layers after its input line")
    n_inputs = _fkb_width(_fortran_real(entries[0][2]))
    _check_total_width(n_inputs, [layer.n_out for layer in layers])
    _check_total_values(sum(n_out * (n_in + 1) for n_out, n_in in kernel_shapes.values())
                        + sum(4 * layer.n_out for layer in batchnorm_layers))

    for layer in dense_layers:
        layer.params = {"bias": records.reals(layer.n_out, f"biases of layer {layer.id}")}
    for layer in dense_layers:
        n_out, n_in = kernel_shapes[layer.id]
        # the record is w(n_in, n_out) in column-major order = kernel(n_out, n_in) row by row
        values = records.reals(n_in * n_out, f"weights of layer {layer.id}")
        layer.params = {"kernel": values.reshape(n_out, n_in), "bias": layer.params["bias"]}
    for layer in batchnorm_layers:
        what = f"batch normalization of layer {layer.id}"
        beta = records.reals(layer.n_out, f"beta of {what}")
        gamma = records.reals(layer.n_out, f"gamma of {what}")
        mean = records.reals(layer.n_out, f"mean of {what}")
        variance = records.reals(layer.n_out, f"variance of {what}")
        layer.params = {"gamma": gamma, "beta": beta, "moving_mean": mean, "moving_variance": variance}
    records.check_end()

    spec = ModelSpec(n_inputs=n_inputs, n_outputs=width, layers=layers)
    validate_spec(spec)
    return spec


def _fkb_width(value: float) -> int:
    """The width on a layer line, read as a float32 as the original library
    (and the Fortran reader) read it: a whole number from 1 to below 2e9 (the
    original truncated a fraction; both readers refuse it)."""
    single = np.float32(value)
    if not (np.isfinite(single) and 1 <= single < np.float32(2.0e9)) or single != np.floor(single):
        raise ValueError(f"layer size {value} is not a positive integer")
    return int(single)


# --------------------------------------------------------------------------
# Reference evaluation (float64)


def _erf(x: np.ndarray) -> np.ndarray:
    try:
        from scipy.special import erf  # type: ignore[import-not-found]
    except ImportError:  # pragma: no cover - scipy is a dependency of the project
        return np.vectorize(math.erf, otypes=[np.float64])(x)
    return erf(x)


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    out = np.empty_like(x)
    positive = x >= 0
    out[positive] = 1.0 / (1.0 + np.exp(-x[positive]))
    e = np.exp(x[~positive])
    out[~positive] = e / (1.0 + e)
    return out


def apply_activation(name: str, x: np.ndarray, alpha: float | None = None) -> np.ndarray:
    """Activation ``name`` of the format applied to ``x`` of shape ``(n, features)``.

    ``alpha`` defaults to the activation's default parameter. float64.
    """
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name}")
    x = np.asarray(x, dtype=np.float64)
    if alpha is None:
        alpha = ACTIVATIONS[name]
    with np.errstate(over="ignore", under="ignore"):
        if name == "linear":
            return x.copy()
        if name == "relu":
            return np.maximum(x, 0.0)
        if name == "relu6":
            return np.clip(x, 0.0, 6.0)
        if name == "leaky_relu":
            return np.where(x >= 0, x, alpha * x)
        if name == "elu":
            return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0.0)))
        if name == "selu":
            return _SELU_SCALE * np.where(x > 0, x, _SELU_ALPHA * np.expm1(np.minimum(x, 0.0)))
        if name == "gelu":
            return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))
        if name == "gelu_tanh":
            return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))
        if name == "sigmoid":
            return _sigmoid(x)
        if name == "hard_sigmoid":
            return np.clip(x + 3.0, 0.0, 6.0) / 6.0
        if name == "hard_silu":
            return x * np.clip(x + 3.0, 0.0, 6.0) / 6.0
        if name == "tanh":
            return np.tanh(x)
        if name == "softplus":
            return _softplus(x)
        if name == "softsign":
            return x / (np.abs(x) + 1.0)
        if name == "silu":
            return x * _sigmoid(x)
        if name == "mish":
            return x * np.tanh(_softplus(x))
        if name == "exponential":
            return np.exp(x)
        if name == "softmax":
            e = np.exp(x - np.max(x, axis=-1, keepdims=True))
            return e / np.sum(e, axis=-1, keepdims=True)
        if name == "log_softmax":
            shifted = x - np.max(x, axis=-1, keepdims=True)
            return shifted - np.log(np.sum(np.exp(shifted), axis=-1, keepdims=True))
        if name == "celu":
            return np.maximum(x, 0.0) + alpha * np.expm1(np.minimum(x, 0.0) / alpha)
        if name == "hard_tanh":
            return np.clip(x, -1.0, 1.0)
        if name == "log_sigmoid":
            return -_softplus(-x)
        if name == "tanh_shrink":
            return x - np.tanh(x)
        if name == "squareplus":
            return 0.5 * (x + np.sqrt(x * x + alpha))
        if name == "gaussian":
            return np.exp(-x * x)
        if name == "step":
            return np.where(x > 0, 1.0, 0.0)
    raise AssertionError(name)  # pragma: no cover - every name is handled above


def _evaluate_layer(layer: LayerSpec, xs: list[np.ndarray]) -> np.ndarray:
    custom = _CUSTOM_KINDS.get(layer.kind)
    if custom is not None:
        y = np.asarray(custom.evaluate(layer, xs), dtype=np.float64)
        if y.shape != (xs[0].shape[0], layer.n_out):
            raise ValueError(f"layer {layer.id} ({layer.kind}) evaluated to shape {y.shape}, expected {(xs[0].shape[0], layer.n_out)}")
        return y
    attrs = layer.attributes
    p = {name: np.asarray(value, dtype=np.float64) for name, value in layer.params.items()}
    x = xs[0]
    kind = layer.kind
    if kind == "dense":
        z = x @ p["kernel"].T
        if "bias" in p:
            z = z + p["bias"]
        activation = str(attrs["activation"])
        return apply_activation(activation, z, activation_alpha(activation, attrs))
    if kind == "activation":
        activation = str(attrs["activation"])
        return apply_activation(activation, x, activation_alpha(activation, attrs))
    if kind == "relu":
        threshold = float(attrs["threshold"])
        slope = float(attrs["negative_slope"])
        positive = np.where(x > threshold, x, 0.0)
        if "max_value" in attrs:
            positive = np.clip(positive, 0.0, float(attrs["max_value"]))
        return positive - slope * np.maximum(threshold - x, 0.0)
    if kind == "leaky_relu":
        return np.where(x >= 0, x, float(attrs["negative_slope"]) * x)
    if kind == "elu":
        return apply_activation("elu", x, float(attrs["alpha"]))
    if kind == "prelu":
        return np.where(x >= 0, x, p["alpha"] * x)
    if kind == "softmax":
        return apply_activation("softmax", x)
    if kind == "dropout":
        return x.copy()
    if kind == "batch_normalization":
        y = (x - p["moving_mean"]) / np.sqrt(p["moving_variance"] + float(attrs["epsilon"]))
        if "gamma" in p:
            y = y * p["gamma"]
        if "beta" in p:
            y = y + p["beta"]
        return y
    if kind == "layer_normalization":
        mean = x.mean(axis=1, keepdims=True)
        variance = ((x - mean) ** 2).mean(axis=1, keepdims=True)
        y = (x - mean) / np.sqrt(variance + float(attrs["epsilon"]))
        if "gamma" in p:
            y = y * p["gamma"]
        if "beta" in p:
            y = y + p["beta"]
        return y
    if kind == "normalization":
        std = np.maximum(np.sqrt(p["variance"]), _NORMALIZATION_EPSILON)
        if attrs["invert"] == 1:
            return p["mean"] + x * std
        return (x - p["mean"]) / std
    if kind == "rescaling":
        return x * p["scale"] + p["offset"]
    if kind == "add":
        return np.sum(xs, axis=0)
    if kind == "subtract":
        return xs[0] - xs[1]
    if kind == "multiply":
        return np.prod(xs, axis=0)
    if kind == "average":
        return np.mean(xs, axis=0)
    if kind == "maximum":
        return np.max(xs, axis=0)
    if kind == "minimum":
        return np.min(xs, axis=0)
    if kind == "concatenate":
        return np.concatenate(xs, axis=1)
    raise ValueError(f"unknown layer type {kind}")  # pragma: no cover - validated earlier


def evaluate(spec: ModelSpec, x: np.ndarray) -> np.ndarray:
    """Predictions of ``spec`` for ``x`` of shape ``(n_samples, n_inputs)``.

    Pure NumPy in float64: input normalization, every layer, output
    normalization. Returns ``(n_samples, n_outputs)`` float64, in the units
    of the outputs.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != spec.n_inputs:
        raise ValueError(f"x must have shape (n_samples, {spec.n_inputs}), got {x.shape}")
    if spec.input_normalization is not None:
        offset, scale = (np.asarray(v, dtype=np.float64) for v in spec.input_normalization)
        x = (x - offset) / scale
    values = {0: x}
    for layer in spec.layers:
        values[layer.id] = _evaluate_layer(layer, [values[i] for i in layer.inputs])
    y = values[spec.layers[-1].id]
    if spec.output_normalization is not None:
        offset, scale = (np.asarray(v, dtype=np.float64) for v in spec.output_normalization)
        y = y * scale + offset
    return y
