"""The model file's records (:class:`ModelSpec`, :class:`LayerSpec`, ...) and
the vocabulary of the format: activations, layer kinds, custom layer kinds,
size limits (docs/model-file.md)."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Callable, NamedTuple, Union

import numpy as np


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
