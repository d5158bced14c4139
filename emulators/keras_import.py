"""Keras -> model file: :func:`keras_to_spec` reads a Keras 3 ``.keras`` file,
a legacy ``.h5`` file or an in-memory model. It inspects the saved
configuration *before* loading anything and refuses
(``UnsupportedModelError``) every layer, activation or option it cannot
reproduce exactly; nothing is skipped or replaced."""
from __future__ import annotations

import json
import math
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np

from emulators.formats import ConversionError, UnsupportedModelError
from emulators.keras_format import (
    METADATA_ENTRY,
    _ACTIVATION_FUNCTIONS,
    _CUSTOM_LAYERS,
    _INPUT_NORMALIZATION,
    _INPUT_RESCALING,
    _KERAS_ACTIVATION_NAMES,
    _KERAS_DEFAULT_ALPHA,
    _METADATA_FORMAT,
    _METADATA_VERSION,
    _OUTPUT_NORMALIZATION,
    _REGISTERED_ACTIVATIONS,
    _custom_layer,
    _statistics_from_metadata,
)
from emulators.modelfile import (
    ACTIVATIONS,
    LayerSpec,
    MAX_MODEL_FILE_BYTES,
    ModelFileError,
    ModelSpec,
    Normalization,
    activation_alpha,
    check_readable_file,
    validate_spec,
)

# h5py is imported inside the functions that use it, so that importing this module does not load it
# (start-up time).


# --------------------------------------------------------------------------
# Inspection of saved configurations (before anything is loaded)

_DROPOUT_CLASSES = {
    "Dropout": ("dropout", "rate"),
    "SpatialDropout1D": ("spatial_dropout1d", "rate"),
    "GaussianNoise": ("gaussian_noise", "stddev"),
    "GaussianDropout": ("gaussian_dropout", "rate"),
    "AlphaDropout": ("alpha_dropout", "rate"),
}
_MERGE_CLASSES = {
    "Add": "add",
    "Subtract": "subtract",
    "Multiply": "multiply",
    "Average": "average",
    "Maximum": "maximum",
    "Minimum": "minimum",
    "Concatenate": "concatenate",
}
_SUPPORTED_CLASSES = {
    "InputLayer",
    "Dense",
    "Activation",
    "ReLU",
    "LeakyReLU",
    "ELU",
    "PReLU",
    "Softmax",
    "BatchNormalization",
    "LayerNormalization",
    "Normalization",
    "Rescaling",
    *_DROPOUT_CLASSES,
    *_MERGE_CLASSES,
}
_MODEL_CLASSES = {"Sequential", "Functional", "Model"}
_LAST_AXIS = (-1, 1, [-1], [1], (-1,), (1,))


def _activation_from_config(value: Any) -> str | None:
    """The format's name of a serialized Keras activation, None if unsupported."""
    if value is None:
        return "linear"
    if isinstance(value, str):
        if value in _REGISTERED_ACTIVATIONS:
            return value.split(">", 1)[1]
        return _KERAS_ACTIVATION_NAMES.get(value)
    if isinstance(value, dict):
        inner = value.get("config")
        if isinstance(inner, str):
            if inner in _REGISTERED_ACTIVATIONS:
                return inner.split(">", 1)[1]
            if str(value.get("module") or "keras").startswith("keras"):
                return _KERAS_ACTIVATION_NAMES.get(inner)
    return None


def _describe_activation(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("config") or value.get("class_name") or value)
    return str(value)


def _dtype_name(value: Any) -> str:
    if value is None:
        return "float32"
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        inner = value.get("config")
        if value.get("class_name") in ("DTypePolicy", "Policy", "FloatDTypePolicy") and isinstance(inner, dict):
            return str(inner.get("name"))
        return str(value.get("class_name"))
    return str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_vector_value(value: Any) -> bool:
    """A scalar, a list of numbers, or a serialized NumPy array of numbers."""
    if _is_number(value):
        return True
    if isinstance(value, dict) and value.get("class_name") == "__numpy__":
        value = value.get("config", {}).get("value")
    if isinstance(value, (list, tuple)):
        flat = np.asarray(value, dtype=object).ravel().tolist()
        return all(_is_number(v) for v in flat)
    return False


def _layer_problem(class_name: str, module: str | None, registered: str | None, config: dict) -> str | None:
    """Why a layer cannot be converted, or None. Checks one layer's saved config."""
    if registered in _CUSTOM_LAYERS:
        dtype = _dtype_name(config.get("dtype"))
        return None if dtype == "float32" else f"dtype policy {dtype} is not supported (only float32)"
    if class_name in _MODEL_CLASSES:
        return "nested models are not supported; flatten the model"
    if class_name not in _SUPPORTED_CLASSES:
        if module is not None and not module.startswith("keras"):
            return ("layer class not supported (a custom layer: register it with emulators.convert.register_layer "
                    "in a module given to fkb convert --plugin; see docs/custom-layers.md)")
        return "layer class not supported"
    if module is not None and not module.startswith("keras"):
        return f"custom layer from module {module} is not supported"
    if registered and ">" in str(registered):
        return f"custom registered layer {registered} is not supported"
    if class_name == "InputLayer":
        shape = config.get("batch_shape") or config.get("batch_input_shape")
        if shape is None and config.get("shape") is not None:
            shape = [None, *config["shape"]]
        if shape is None or len(shape) != 2 or not isinstance(shape[-1], int):
            return f"input shape {shape} is not (batch, features)"
        if config.get("sparse") or config.get("ragged"):
            return "sparse or ragged input is not supported"
        dtype = _dtype_name(config.get("dtype"))
        if dtype != "float32":
            return f"input dtype {dtype} is not float32"
        return None
    dtype = _dtype_name(config.get("dtype"))
    if dtype != "float32":
        return f"dtype policy {dtype} is not supported (only float32)"
    if "activation" in config and _activation_from_config(config["activation"]) is None:
        return f"activation {_describe_activation(config['activation'])} is not supported"
    if class_name == "Dense" and config.get("quantization_config") is not None:
        return "quantized Dense is not supported"
    if class_name in ("Softmax", "BatchNormalization", "Concatenate") and config.get("axis", -1) not in _LAST_AXIS:
        return f"axis={config.get('axis')} is not the feature axis"
    if class_name == "LayerNormalization":
        if config.get("axis", -1) not in _LAST_AXIS:
            return f"axis={config.get('axis')} is not the feature axis"
        if config.get("rms_scaling"):
            return "rms_scaling=True is not supported"
    if class_name == "Normalization" and config.get("axis", -1) not in (*_LAST_AXIS, None, [], ()):
        return f"axis={config.get('axis')} is not the feature axis"
    if class_name == "Rescaling":
        for key in ("scale", "offset"):
            if not _is_vector_value(config.get(key, 0.0)):
                return f"{key}={config.get(key)!r} is not a number or a vector of numbers"
    if class_name == "ReLU":
        for key in ("negative_slope", "threshold", "max_value"):
            value = config.get(key)
            if value is not None and not _is_number(value):
                return f"{key}={value!r} is not a finite number"
    if class_name in ("LeakyReLU", "ELU"):
        key = "negative_slope" if class_name == "LeakyReLU" and "negative_slope" in config else "alpha"
        if not _is_number(config.get(key)):
            return f"{key}={config.get(key)!r} is not a finite number"
    return None


def _check_config(model_config: dict, source: str) -> None:
    """Refuse, before loading, a saved model with anything this converter cannot reproduce."""
    class_name = model_config.get("class_name")
    if class_name not in _MODEL_CLASSES:
        raise UnsupportedModelError(f"{source}: model class {class_name} is not supported (only Sequential and functional models)")
    layers = (model_config.get("config") or {}).get("layers")
    if not isinstance(layers, list):
        raise UnsupportedModelError(f"{source}: the saved configuration lists no layers")
    entries = []
    for entry in layers:
        config = entry.get("config") or {}
        name = config.get("name") or entry.get("name") or "?"
        entries.append((name, entry.get("class_name"), entry.get("module"), entry.get("registered_name"), config))
    # unsupported classes first: that is the message a user needs
    for name, layer_class, module, registered, _ in entries:
        if layer_class not in _SUPPORTED_CLASSES and registered not in _CUSTOM_LAYERS:
            problem = _layer_problem(str(layer_class), module, None, {})
            raise UnsupportedModelError(f"{source}: layer '{name}' ({layer_class}): {problem}")
    for name, layer_class, module, registered, config in entries:
        problem = _layer_problem(layer_class, module, registered, config)
        if problem:
            raise UnsupportedModelError(f"{source}: layer '{name}' ({layer_class}): {problem}")


MAX_ARCHIVE_MEMBERS = 64
"""Members a ``.keras`` archive may have (Keras writes 3, the converter 4)."""

MAX_JSON_BYTES = 64 * 2 ** 20
"""The largest ``config.json`` (or FKB metadata) read: 64 MiB inflated
(a Keras configuration has some kilobytes per layer)."""

WEIGHTS_ENTRY = "model.weights.h5"


def _mib(size: int) -> int:
    """Bytes in MiB, rounded up (a size just over a limit does not print as the limit)."""
    return -(-size // 2 ** 20)


def check_keras_archive(archive: zipfile.ZipFile, path: Path) -> None:
    """Refuse, before anything is inflated, a ``.keras`` archive whose members
    inflate to more than the readers' limits: every member and all of them
    together at most MAX_MODEL_FILE_BYTES (2 GiB, a model file's limit), the
    JSON members at most MAX_JSON_BYTES, at most MAX_ARCHIVE_MEMBERS members.
    The sizes are the archive's declared ones, which Python's zipfile (and so
    Keras, which reads the archive with it) never reads beyond."""
    members = archive.infolist()
    if len(members) > MAX_ARCHIVE_MEMBERS:
        raise ConversionError(f"{path}: {len(members)} archive members, more than the {MAX_ARCHIVE_MEMBERS} "
                              "a Keras model file may have")
    total = 0
    for member in members:
        limit = MAX_JSON_BYTES if member.filename.endswith(".json") else MAX_MODEL_FILE_BYTES
        if member.file_size > limit:
            raise ConversionError(f"{path}: archive member {member.filename} inflates to "
                                  f"{_mib(member.file_size)} MiB, more than the {limit // 2 ** 20} MiB "
                                  "it may have")
        total += member.file_size
    if total > MAX_MODEL_FILE_BYTES:
        raise ConversionError(f"{path}: the archive inflates to {_mib(total)} MiB, more than the "
                              f"{MAX_MODEL_FILE_BYTES // 2 ** 20} MiB a model may have")


def check_hdf5_sizes(handle: Any, path: Path, what: str = "") -> None:
    """Refuse an HDF5 file (legacy ``.h5`` or the weights of a ``.keras``)
    whose datasets hold more than MAX_MODEL_FILE_BYTES together: their
    declared shapes, read before a value is (a compressed dataset of zeros
    declares gigabytes in a few bytes)."""
    total = 0

    def visit(name: str, item: Any) -> None:
        nonlocal total
        shape = getattr(item, "shape", None)
        if shape is not None and getattr(item, "dtype", None) is not None:
            total += int(np.prod(shape, dtype=object)) * item.dtype.itemsize

    handle.visititems(visit)
    if total > MAX_MODEL_FILE_BYTES:
        raise ConversionError(f"{path}: {what}datasets of {_mib(total)} MiB, more than the "
                              f"{MAX_MODEL_FILE_BYTES // 2 ** 20} MiB a model may have")


def _read_saved_config(path: Path) -> tuple[dict, dict | None]:
    """The model configuration of a saved file and its FKB metadata (or None),
    after checking the sizes it declares (check_keras_archive, check_hdf5_sizes):
    Keras reads the file next, and it must not be handed one that inflates to
    more than a model may hold."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".keras":
            import h5py

            with zipfile.ZipFile(path) as archive:
                check_keras_archive(archive, path)
                names = set(archive.namelist())
                if "config.json" not in names:
                    raise ConversionError(f"{path}: not a Keras model archive (no config.json)")
                config = json.loads(archive.read("config.json"))
                metadata = json.loads(archive.read(METADATA_ENTRY)) if METADATA_ENTRY in names else None
                if WEIGHTS_ENTRY in names:
                    with archive.open(WEIGHTS_ENTRY) as weights, h5py.File(weights, "r") as handle:
                        check_hdf5_sizes(handle, path, f"{WEIGHTS_ENTRY}: ")
            return config, metadata
        if suffix in (".h5", ".hdf5"):
            import h5py

            with h5py.File(path, "r") as handle:
                check_hdf5_sizes(handle, path)
                raw = handle.attrs.get("model_config")
                if raw is None:
                    raise ConversionError(f"{path}: the HDF5 file holds no model configuration (weights-only file?)")
                if isinstance(raw, bytes):
                    raw = raw.decode("utf-8")
                return json.loads(raw), None
    except (OSError, zipfile.BadZipFile, json.JSONDecodeError, KeyError, UnicodeDecodeError) as exc:
        raise ConversionError(f"{path}: cannot read the saved model: {' '.join(str(exc).split())}") from None
    raise ConversionError(f"{path}: unknown Keras file type {suffix} (expected .keras or .h5)")


# --------------------------------------------------------------------------
# Keras -> spec


@dataclass
class _Unit:
    """One Keras layer converted on its own, before metadata is applied."""

    name: str
    kind: str
    attributes: dict[str, Any]
    params: dict[str, np.ndarray]
    n_out: int
    sources: list[str]  # Keras layer names of its inputs; "" is the model input
    consumers: list[str] = field(default_factory=list)


def _numpy(value: Any) -> np.ndarray:
    """A Keras variable, tensor, array or number as a NumPy array."""
    if hasattr(value, "numpy"):
        value = value.numpy()
    return np.asarray(value)


def _f32(value: Any) -> np.ndarray:
    return np.array(_numpy(value), dtype=np.float32)


def _vector(value: Any, n: int, what: str) -> np.ndarray:
    """A scalar or per-feature Keras value as a float32 vector of ``n`` features."""
    array = np.asarray(_numpy(value), dtype=np.float32)
    if array.size == 1:
        return np.full(n, array.reshape(()), dtype=np.float32)
    if array.size == n and array.shape[-1] == n:
        return array.reshape(n).copy()
    raise UnsupportedModelError(f"{what} of shape {array.shape} does not match {n} features")


def _activation_attributes(function: Any, where: str) -> dict[str, Any]:
    name = _ACTIVATION_FUNCTIONS.get(function)
    if name is None:
        raise UnsupportedModelError(f"{where}: activation {getattr(function, '__name__', function)} is not supported")
    attributes: dict[str, Any] = {"activation": name}
    if ACTIVATIONS[name] is not None:
        attributes["alpha"] = _KERAS_DEFAULT_ALPHA[name]
    return attributes


def _convert_layer(layer: Any, widths: list[int], where: str) -> tuple[str, dict[str, Any], dict[str, np.ndarray]]:
    """Kind, attributes and params of one Keras layer given its input widths."""
    custom = _custom_layer(layer)
    if custom is not None:
        try:
            attributes, params = custom.to_spec(layer, list(widths))
        except (ValueError, TypeError, KeyError) as exc:
            raise UnsupportedModelError(f"{where}: {' '.join(str(exc).split())}") from None
        return custom.kind, dict(attributes), {name: _f32(value) for name, value in params.items()}
    class_name = type(layer).__name__
    n = widths[0]
    if class_name == "Dense":
        attributes = _activation_attributes(layer.activation, where)
        attributes["use_bias"] = int(bool(layer.use_bias))
        params = {"kernel": _f32(layer.kernel).T}
        if layer.use_bias:
            params["bias"] = _f32(layer.bias)
        return "dense", attributes, params
    if class_name == "Activation":
        return "activation", _activation_attributes(layer.activation, where), {}
    if class_name == "ReLU":
        attributes = {}
        if layer.max_value is not None:
            attributes["max_value"] = float(layer.max_value)
        attributes["negative_slope"] = float(layer.negative_slope)
        attributes["threshold"] = float(layer.threshold)
        return "relu", attributes, {}
    if class_name == "LeakyReLU":
        return "leaky_relu", {"negative_slope": float(layer.negative_slope)}, {}
    if class_name == "ELU":
        return "elu", {"alpha": float(layer.alpha)}, {}
    if class_name == "PReLU":
        return "prelu", {}, {"alpha": _vector(layer.alpha, n, f"{where}: alpha")}
    if class_name == "Softmax":
        return "softmax", {}, {}
    if class_name in _DROPOUT_CLASSES:
        variant, key = _DROPOUT_CLASSES[class_name]
        return "dropout", {"variant": variant, key: float(getattr(layer, key))}, {}
    if class_name == "BatchNormalization":
        attributes = {
            "epsilon": float(layer.epsilon),
            "center": int(bool(layer.center)),
            "scale": int(bool(layer.scale)),
            "momentum": float(layer.momentum),
        }
        params = {}
        if layer.scale:
            params["gamma"] = _f32(layer.gamma)
        if layer.center:
            params["beta"] = _f32(layer.beta)
        params["moving_mean"] = _f32(layer.moving_mean)
        params["moving_variance"] = _f32(layer.moving_variance)
        return "batch_normalization", attributes, params
    if class_name == "LayerNormalization":
        attributes = {"epsilon": float(layer.epsilon), "center": int(bool(layer.center)), "scale": int(bool(layer.scale))}
        params = {}
        if layer.scale:
            params["gamma"] = _f32(layer.gamma)
        if layer.center:
            params["beta"] = _f32(layer.beta)
        return "layer_normalization", attributes, params
    if class_name == "Normalization":
        mean = _vector(layer.mean, n, f"{where}: mean")
        variance = _vector(layer.variance, n, f"{where}: variance")
        floor = max(keras.config.epsilon(), 1e-7)
        if keras.config.epsilon() != 1e-7 and np.any(np.sqrt(variance.astype(np.float64)) < floor):
            raise UnsupportedModelError(f"{where}: keras.config.epsilon() is {keras.config.epsilon()}, not 1e-7, and the layer divides by it")
        return "normalization", {"invert": int(bool(layer.invert))}, {"mean": mean, "variance": variance}
    if class_name == "Rescaling":
        return "rescaling", {}, {
            "scale": _vector(layer.scale, n, f"{where}: scale"),
            "offset": _vector(layer.offset, n, f"{where}: offset"),
        }
    if class_name in _MERGE_CLASSES:
        kind = _MERGE_CLASSES[class_name]
        if kind != "concatenate" and len(set(widths)) != 1:
            raise UnsupportedModelError(f"{where}: broadcasting inputs of widths {widths} is not supported")
        return kind, {}, {}
    raise UnsupportedModelError(f"{where}: layer class not supported")  # pragma: no cover - checked before


def _live_layer_problem(layer: Any) -> str | None:
    try:
        config = layer.get_config()
    except Exception as exc:  # noqa: BLE001 - any failure means we cannot inspect it
        return f"its configuration cannot be read ({type(exc).__name__})"
    registered = keras.saving.get_registered_name(type(layer))
    return _layer_problem(type(layer).__name__, type(layer).__module__, registered if ">" in registered else None, config)


def _graph_units(model: Any, source: str) -> tuple[list[_Unit], int]:
    """The layers of ``model`` converted one by one, in a topological order."""
    if not isinstance(model, keras.Model) or type(model).__name__ not in ("Sequential", "Functional"):
        raise UnsupportedModelError(f"{source}: model class {type(model).__name__} is not supported (only Sequential and functional models)")
    # the same order as for saved files: unsupported classes first, then options
    layers = list(model.layers)
    for layer in layers:
        if type(layer).__name__ not in _SUPPORTED_CLASSES and _custom_layer(layer) is None:
            problem = _layer_problem(type(layer).__name__, type(layer).__module__, None, {})
            raise UnsupportedModelError(f"{source}: layer '{layer.name}' ({type(layer).__name__}): {problem}")
    for layer in layers:
        problem = _live_layer_problem(layer)
        if problem:
            raise UnsupportedModelError(f"{source}: layer '{layer.name}' ({type(layer).__name__}): {problem}")
    try:
        inputs, outputs = model.inputs, model.outputs
    except (AttributeError, ValueError):
        inputs, outputs = None, None
    if not inputs or not outputs:
        raise UnsupportedModelError(f"{source}: the model has no defined input; build it with keras.Input")
    if len(inputs) != 1 or len(outputs) != 1:
        raise UnsupportedModelError(f"{source}: the model has {len(inputs)} inputs and {len(outputs)} outputs; only one of each is supported")
    shape = tuple(inputs[0].shape)
    if len(shape) != 2 or shape[1] is None:
        raise UnsupportedModelError(f"{source}: input shape {shape} is not (batch, features)")
    n_inputs = int(shape[1])

    units: dict[str, _Unit] = {}
    order: list[str] = []
    seen_nodes: dict[int, int] = {}
    widths: dict[str, int] = {"": n_inputs}

    def visit(tensor: Any) -> str:
        operation, node_index, _ = tensor._keras_history
        if isinstance(operation, keras.layers.InputLayer):
            return ""
        name = operation.name
        where = f"{source}: layer '{name}' ({type(operation).__name__})"
        if id(operation) in seen_nodes:
            if seen_nodes[id(operation)] != node_index:
                raise UnsupportedModelError(f"{where}: the layer is called more than once (shared layers are not supported)")
            return name
        if not isinstance(operation, keras.layers.Layer):
            raise UnsupportedModelError(f"{where}: operation is not a supported layer")
        problem = _live_layer_problem(operation)
        if problem:
            raise UnsupportedModelError(f"{where}: {problem}")
        seen_nodes[id(operation)] = node_index
        node = operation._inbound_nodes[node_index]
        kwargs = dict(node.arguments.kwargs) if getattr(node, "arguments", None) is not None else {}
        if kwargs.get("training"):
            raise UnsupportedModelError(f"{where}: called with training=True, so it is not inference-only")
        sources = [visit(t) for t in node.input_tensors]
        in_widths = [widths[s] for s in sources]
        kind, attributes, params = _convert_layer(operation, in_widths, where)
        out_shape = tuple(node.output_tensors[0].shape)
        if len(out_shape) != 2 or out_shape[1] is None:
            raise UnsupportedModelError(f"{where}: output shape {out_shape} is not (batch, features)")
        n_out = int(out_shape[1])
        widths[name] = n_out
        units[name] = _Unit(name, kind, attributes, params, n_out, sources)
        order.append(name)
        return name

    output_name = visit(outputs[0])
    if not output_name:
        raise UnsupportedModelError(f"{source}: the model has no layers")
    for name in order:
        for s in units[name].sources:
            if s:
                units[s].consumers.append(name)
    return [units[name] for name in order], n_inputs


def _model_name(name: Any) -> str | None:
    if not isinstance(name, str):
        return None
    text = " ".join(name.split())
    return text if text and text.isascii() and text.isprintable() else None


def _plain_spec(units: list[_Unit], n_inputs: int, name: str | None) -> ModelSpec:
    ids = {"": 0}
    layers = []
    for position, unit in enumerate(units, start=1):
        ids[unit.name] = position
        layers.append(LayerSpec(position, unit.kind, unit.n_out, [ids[s] for s in unit.sources], dict(unit.attributes), dict(unit.params)))
    return ModelSpec(n_inputs=n_inputs, n_outputs=layers[-1].n_out, layers=layers, name=name)


# ---- semantics, used to check that metadata describes the Keras layers


def _activation_semantics(attributes: dict[str, Any]) -> tuple:
    name = str(attributes["activation"])
    return (name, activation_alpha(name, attributes))


def _semantics(kind: str, attributes: dict[str, Any]) -> tuple:
    """What a layer computes, independent of how the format spells it."""
    if kind == "dense":
        return ("dense", int(attributes["use_bias"]), _activation_semantics(attributes))
    if kind == "activation":
        return ("act", _activation_semantics(attributes))
    if kind == "leaky_relu":
        return ("act", ("leaky_relu", float(attributes["negative_slope"])))
    if kind == "elu":
        return ("act", ("elu", float(attributes["alpha"])))
    if kind == "softmax":
        return ("act", ("softmax", None))
    if kind == "relu":
        slope, threshold = float(attributes["negative_slope"]), float(attributes["threshold"])
        max_value = attributes.get("max_value")
        max_value = None if max_value is None else float(max_value)
        if threshold == 0 and max_value is None:
            return ("act", ("relu", None) if slope == 0 else ("leaky_relu", slope))
        if threshold == 0 and slope == 0 and max_value == 6:
            return ("act", ("relu6", None))
        return ("relu", slope, threshold, max_value)
    ignored = {"momentum"}  # training-only
    return (kind, tuple(sorted((k, float(v) if isinstance(v, (int, float)) else v) for k, v in attributes.items() if k not in ignored)))


def _group_semantics(units: list[_Unit]) -> tuple:
    first = _semantics(units[0].kind, units[0].attributes)
    if len(units) == 1:
        return first
    second = _semantics(units[1].kind, units[1].attributes)
    if len(units) == 2 and second[0] == "act":
        if first[0] == "dense" and first[2] == ("linear", None):
            return ("dense", first[1], second[1])
        if first == ("act", ("linear", None)):
            return second
    return ("unmatched", first, second)


def _sqrt_scale(variance: np.ndarray) -> np.ndarray:
    """The divisor Keras's Normalization layer uses: max(sqrt(variance), 1e-7), in float32."""
    return np.maximum(np.sqrt(variance.astype(np.float32)), np.float32(1e-7)).astype(np.float32)


def _apply_metadata(units: list[_Unit], n_inputs: int, metadata: dict, source: str) -> ModelSpec:
    """The spec described by FKB metadata, with the weights of the Keras layers."""

    def fail(problem: str) -> ConversionError:
        return ConversionError(f"{source}: {METADATA_ENTRY} does not describe this model: {problem}")

    if metadata.get("format") != _METADATA_FORMAT or metadata.get("version") != _METADATA_VERSION:
        raise fail(f"unknown metadata format {metadata.get('format')} version {metadata.get('version')}")
    by_name = {unit.name: unit for unit in units}
    alias: dict[str, str] = {"": ""}  # Keras layer name -> name of the spec node it stands for
    norms: dict[str, Normalization] = {}
    covered_extra: set[str] = set()
    for key, invert in ((_INPUT_NORMALIZATION, 0), (_OUTPUT_NORMALIZATION, 1)):
        name = metadata.get(key)
        if name is None:
            continue
        unit = by_name.get(name)
        rescaled = unit is not None and invert and unit.kind == "rescaling"   # outputs of scales below 1e-7
        if unit is None or not rescaled and (unit.kind != "normalization"
                                             or unit.attributes.get("invert") != invert):
            raise fail(f"{key} layer {name} is not a Normalization layer with invert={bool(invert)}")
        if key == _INPUT_NORMALIZATION:
            if unit.sources != [""] or any("" in u.sources for u in units if u is not unit):
                raise fail("the input normalization is not the only consumer of the model input")
            alias[name] = ""
        elif unit is not units[-1]:
            raise fail("the output normalization is not the last layer")
        norms[key] = (Normalization(unit.params["offset"], unit.params["scale"]) if rescaled else
                      Normalization(unit.params["mean"], _sqrt_scale(unit.params["variance"])))
        rescaling = by_name.get(_INPUT_RESCALING) if key == _INPUT_NORMALIZATION else None
        if rescaling is not None:
            power = np.asarray(rescaling.params.get("scale"), dtype=np.float32)
            if (rescaling.kind != "rescaling" or rescaling.sources != [name] or unit.consumers != [rescaling.name]
                    or power.shape != norms[key].scale.shape or np.any(rescaling.params["offset"] != 0)
                    or not np.all(power >= 1) or np.any(np.frexp(power)[0] != 0.5)):
                raise fail(f"{_INPUT_RESCALING} is not a rescaling of {name} by powers of two")
            norms[key] = Normalization(norms[key].offset, (norms[key].scale / power).astype(np.float32))
            alias[rescaling.name] = ""
            covered_extra.add(rescaling.name)

    layers: list[LayerSpec] = []
    ids = {"": 0}
    covered = {name for name in (metadata.get(_INPUT_NORMALIZATION), metadata.get(_OUTPUT_NORMALIZATION)) if name}
    covered |= covered_extra
    last_name = None
    for position, entry in enumerate(metadata.get("layers") or [], start=1):
        names = entry.get("keras") or []
        group = [by_name.get(name) for name in names]
        if not group or None in group or len(group) > 2:
            raise fail(f"layer {position} refers to Keras layers {names}")
        if len(group) == 2 and (group[1].sources != [group[0].name] or group[0].consumers != [group[1].name]):
            raise fail(f"layer {position}: Keras layers {names} are not a chain")
        kind, attributes = entry.get("kind"), dict(entry.get("attributes") or {})
        try:
            wanted = _semantics(kind, attributes)
        except (KeyError, TypeError, ValueError):
            raise fail(f"layer {position} has kind {kind} with attributes {attributes}") from None
        if _group_semantics(group) != wanted:
            raise fail(f"layer {position} ({kind}) differs from Keras layers {names}")
        param_names = entry.get("params") or []
        available = group[0].params
        if sorted(param_names) != sorted(available):
            raise fail(f"layer {position} params {param_names} differ from {sorted(available)}")
        sources = [alias.get(s, s) for s in group[0].sources]
        if any(s not in ids for s in sources):
            raise fail(f"layer {position} consumes a layer that comes later")
        layers.append(LayerSpec(position, kind, group[-1].n_out, [ids[s] for s in sources], attributes, {p: available[p] for p in param_names}))
        for name in names:
            covered.add(name)
            alias[name] = group[-1].name
        ids[group[-1].name] = position
        last_name = group[-1].name
    missing = [unit.name for unit in units if unit.name not in covered]
    if missing:
        raise fail(f"Keras layers {missing} are not described")
    output_norm = norms.get(_OUTPUT_NORMALIZATION)
    model_output = units[-1].sources[0] if output_norm is not None else units[-1].name
    if last_name is None or last_name != model_output:
        raise fail("the last described layer is not the model output")

    spec = ModelSpec(
        n_inputs=n_inputs,
        n_outputs=layers[-1].n_out,
        layers=layers,
        name=metadata.get("name"),
        inputs=[tuple(pair) for pair in metadata.get("inputs") or []],
        outputs=[tuple(pair) for pair in metadata.get("outputs") or []],
        input_normalization=norms.get(_INPUT_NORMALIZATION),
        output_normalization=output_norm,
    )
    try:
        if metadata.get("input_statistics") is not None:
            spec.input_statistics = _statistics_from_metadata(metadata["input_statistics"], n_inputs)
        validate_spec(spec)
    except ValueError as exc:
        raise fail(str(exc)) from None
    return spec


def keras_to_spec(model_or_path: Any) -> ModelSpec:
    """Convert a Keras model (object or ``.keras``/``.h5`` path) to a ModelSpec.

    Supported: Sequential and functional models with one input and one
    output of shape ``(batch, features)`` built from InputLayer, Dense,
    Activation, ReLU, LeakyReLU, ELU, PReLU, Softmax, Dropout,
    SpatialDropout1D, GaussianNoise, GaussianDropout, AlphaDropout,
    BatchNormalization, LayerNormalization, Normalization, Rescaling, Add,
    Subtract, Multiply, Average, Maximum, Minimum and Concatenate, in float32.
    A file's configuration is checked before it is loaded (with
    ``safe_mode=True``). Raises UnsupportedModelError naming the first layer
    that cannot be converted, ConversionError for unreadable files.
    """
    metadata = None
    if isinstance(model_or_path, (str, os.PathLike)):
        path = Path(model_or_path)
        source = str(path)
        try:
            check_readable_file(path)
        except ModelFileError as exc:
            raise ConversionError(str(exc)) from None
        config, metadata = _read_saved_config(path)
        _check_config(config, source)
        try:
            model = keras.saving.load_model(path, safe_mode=True, compile=False)
        except Exception as exc:  # noqa: BLE001 - Keras raises many types for bad files
            raise ConversionError(f"{path}: Keras cannot load the model: {' '.join(str(exc).split())[:300]}") from None
    else:
        model = model_or_path
        source = f"model '{getattr(model, 'name', '?')}'"
        raw = getattr(model, "_fkb_metadata_json", None)
        metadata = json.loads(raw) if isinstance(raw, str) else None
    units, n_inputs = _graph_units(model, source)
    if metadata is not None:
        return _apply_metadata(units, n_inputs, metadata, source)
    spec = _plain_spec(units, n_inputs, _model_name(getattr(model, "name", None)))
    try:
        validate_spec(spec)
    except ValueError as exc:
        raise UnsupportedModelError(f"{source}: {exc}") from None
    return spec
