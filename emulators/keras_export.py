"""Model file -> Keras: :func:`spec_to_keras` builds a functional Keras model
with the same predictions as a :class:`~emulators.modelfile.ModelSpec`;
:func:`write_keras` saves it as ``.keras`` with an ``fkb_metadata.json``
entry that carries what Keras has no place for, so that model file ->
``.keras`` -> model file is byte-identical."""
from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import keras
import numpy as np

from emulators.atomic_files import NotAFileError, replacing
from emulators.formats import ConversionError
from emulators.keras_format import (
    METADATA_ENTRY,
    PathLike,
    _CUSTOM_KINDS,
    _INPUT_NORMALIZATION,
    _INPUT_RESCALING,
    _KERAS_DEFAULT_ALPHA,
    _METADATA_FORMAT,
    _METADATA_VERSION,
    _OUTPUT_NORMALIZATION,
    _REGISTERED_ACTIVATIONS,
    _statistics_metadata,
)
from emulators.keras_import import _MERGE_CLASSES
from emulators.modelfile import LayerSpec, ModelSpec, Normalization, activation_alpha, validate_spec


# --------------------------------------------------------------------------
# spec -> Keras


def _keras_activation(name: str) -> Any:
    for registered, function in _REGISTERED_ACTIVATIONS.items():
        if registered.split(">", 1)[1] == name:
            return function
    return name


def _activation_layers(name: str, alpha: float | None, layer_name: str) -> list[Any]:
    """Keras layers computing activation ``name`` with parameter ``alpha`` (no Dense)."""
    if alpha is None or alpha == _KERAS_DEFAULT_ALPHA.get(name):
        return [keras.layers.Activation(_keras_activation(name), name=layer_name)]
    if name == "leaky_relu":
        return [keras.layers.LeakyReLU(negative_slope=alpha, name=layer_name)]
    if name == "elu":
        return [keras.layers.ELU(alpha=alpha, name=layer_name)]
    raise ConversionError(f"activation {name} with alpha={alpha} has no Keras equivalent (Keras fixes it at {_KERAS_DEFAULT_ALPHA[name]})")


def _keras_layers(layer: LayerSpec) -> list[Any]:
    """The Keras layers (one, or Dense + activation) that compute ``layer``."""
    attrs = layer.attributes
    base = f"{layer.kind}_{layer.id}"
    if layer.kind in ("dense", "activation"):
        activation = str(attrs["activation"])
        alpha = activation_alpha(activation, attrs)
        if layer.kind == "activation":
            return _activation_layers(activation, alpha, base)
        use_bias = bool(attrs["use_bias"])
        if alpha is None or alpha == _KERAS_DEFAULT_ALPHA.get(activation):
            return [keras.layers.Dense(layer.n_out, activation=_keras_activation(activation), use_bias=use_bias, name=base)]
        dense = keras.layers.Dense(layer.n_out, activation="linear", use_bias=use_bias, name=base)
        return [dense, *_activation_layers(activation, alpha, f"{base}_activation")]
    if layer.kind == "relu":
        return [
            keras.layers.ReLU(
                max_value=attrs.get("max_value"),
                negative_slope=attrs["negative_slope"],
                threshold=attrs["threshold"],
                name=base,
            )
        ]
    if layer.kind == "leaky_relu":
        return [keras.layers.LeakyReLU(negative_slope=attrs["negative_slope"], name=base)]
    if layer.kind == "elu":
        return [keras.layers.ELU(alpha=attrs["alpha"], name=base)]
    if layer.kind == "prelu":
        return [keras.layers.PReLU(name=base)]
    if layer.kind == "softmax":
        return [keras.layers.Softmax(name=base)]
    if layer.kind == "dropout":
        variant = attrs["variant"]
        if variant == "dropout":
            return [keras.layers.Dropout(attrs["rate"], name=base)]
        if variant == "gaussian_noise":
            return [keras.layers.GaussianNoise(attrs["stddev"], name=base)]
        if variant == "gaussian_dropout":
            return [keras.layers.GaussianDropout(attrs["rate"], name=base)]
        if variant == "alpha_dropout":
            return [keras.layers.AlphaDropout(attrs["rate"], name=base)]
        raise ConversionError(f"layer {layer.id}: Keras's SpatialDropout1D needs 3-D inputs and cannot act on 1-D features")
    if layer.kind == "batch_normalization":
        return [
            keras.layers.BatchNormalization(
                epsilon=attrs["epsilon"],
                center=bool(attrs["center"]),
                scale=bool(attrs["scale"]),
                momentum=attrs.get("momentum", 0.99),
                name=base,
            )
        ]
    if layer.kind == "layer_normalization":
        return [keras.layers.LayerNormalization(epsilon=attrs["epsilon"], center=bool(attrs["center"]), scale=bool(attrs["scale"]), name=base)]
    if layer.kind == "normalization":
        p = layer.params
        return [
            keras.layers.Normalization(
                mean=p["mean"].astype(np.float32).tolist(),
                variance=p["variance"].astype(np.float32).tolist(),
                invert=bool(attrs["invert"]),
                name=base,
            )
        ]
    if layer.kind == "rescaling":
        p = layer.params
        return [keras.layers.Rescaling(scale=p["scale"].astype(np.float32), offset=p["offset"].astype(np.float32), name=base)]
    merge = {v: k for k, v in _MERGE_CLASSES.items()}
    if layer.kind in merge:
        return [getattr(keras.layers, merge[layer.kind])(name=base)]
    raise ConversionError(f"layer {layer.id}: unknown layer type {layer.kind}")  # pragma: no cover


def _keras_weights(layer: LayerSpec) -> list[np.ndarray]:
    """Weights of the first Keras layer of ``layer``, in Keras's order."""
    p = layer.params
    if layer.kind == "dense":
        return [np.ascontiguousarray(p["kernel"].T, dtype=np.float32)] + ([p["bias"]] if "bias" in p else [])
    if layer.kind == "prelu":
        return [p["alpha"]]
    if layer.kind in ("batch_normalization", "layer_normalization"):
        weights = [p[name] for name in ("gamma", "beta") if name in p]
        if layer.kind == "batch_normalization":
            weights += [p["moving_mean"], p["moving_variance"]]
        return weights
    return []


def _normalization_layer(norm: Normalization, invert: bool, name: str) -> Any:
    """Keras's Normalization layer of `norm`, where it reproduces it exactly
    (a scale of at least 1e-7, Keras's floor, whose float32 square has the
    scale as its square root); else, for the outputs, a Rescaling layer with
    the vectors, which computes ``y * scale + offset`` as the runtime does
    (physical tendencies in kg/kg/s have scales of 1e-8). Inputs with scales
    below the floor go through :func:`_input_normalization_layers`."""
    scale = np.asarray(norm.scale, dtype=np.float32)
    variance = (scale * scale).astype(np.float32)
    exact = np.all(np.isfinite(variance)) and np.all(scale >= 1e-7) and np.array_equal(np.sqrt(variance), scale)
    if not exact and invert:
        return keras.layers.Rescaling(scale=scale, offset=np.asarray(norm.offset, dtype=np.float32), name=name)
    if not exact:
        small = int(np.argmin(scale))
        raise ConversionError(f"{name} scale of input {small + 1} is {scale[small]:.3g}: Keras's Normalization layer "
                              "cannot divide by less than 1e-7 (or by a value whose float32 square differs)")
    return keras.layers.Normalization(
        mean=np.asarray(norm.offset, dtype=np.float32).tolist(),
        variance=variance.tolist(),
        invert=invert,
        name=name,
    )


def _powers_of_two_above_floor(scale: np.ndarray) -> np.ndarray:
    """Per input, the smallest power of two p >= 1 with ``scale * p >= 1e-7``
    (Keras's floor), in float32."""
    exponent = np.maximum(np.ceil(np.log2(1e-7 / scale.astype(np.float64))), 0)
    power = np.ldexp(np.float32(1), exponent.astype(np.int32)).astype(np.float32)
    power[scale * power < np.float32(1e-7)] *= np.float32(2)      # log2 rounded down in float64
    return power


def _input_normalization_layers(norm: Normalization) -> list[Any]:
    """Keras layers computing the runtime's ``(x - offset) / scale`` bit for bit.

    Keras's Normalization divides by ``max(sqrt(variance), 1e-7)``, so a scale
    below 1e-7 (an input that hardly varies in the training data) cannot be
    held directly. Dividing by ``scale * p`` for a power of two ``p`` and then
    multiplying by ``p`` (a Rescaling layer named :data:`_INPUT_RESCALING`)
    gives the same float32 numbers: scaling by a power of two is exact, so
    ``fl((x - offset) / (scale * p)) * p == fl((x - offset) / scale)`` unless a
    value is subnormal."""
    scale = np.asarray(norm.scale, dtype=np.float32)
    if np.all(scale >= 1e-7) or not np.all(np.isfinite(scale) & (scale > 0)):
        return [_normalization_layer(norm, False, _INPUT_NORMALIZATION)]
    power = _powers_of_two_above_floor(scale)
    shifted = Normalization(np.asarray(norm.offset, dtype=np.float32), (scale * power).astype(np.float32))
    return [_normalization_layer(shifted, False, _INPUT_NORMALIZATION),
            keras.layers.Rescaling(scale=power, offset=np.zeros_like(power), name=_INPUT_RESCALING)]


def _metadata(spec: ModelSpec, groups: list[list[str]]) -> dict:
    return {
        "format": _METADATA_FORMAT,
        "version": _METADATA_VERSION,
        "name": spec.name,
        "inputs": [list(pair) for pair in spec.inputs],
        "outputs": [list(pair) for pair in spec.outputs],
        _INPUT_NORMALIZATION: _INPUT_NORMALIZATION if spec.input_normalization is not None else None,
        _OUTPUT_NORMALIZATION: _OUTPUT_NORMALIZATION if spec.output_normalization is not None else None,
        "layers": [
            {"keras": names, "kind": layer.kind, "attributes": dict(layer.attributes), "params": list(layer.params)}
            for layer, names in zip(spec.layers, groups)
        ],
        **({"input_statistics": _statistics_metadata(spec.input_statistics)}
           if spec.input_statistics is not None else {}),
    }


def spec_to_keras(spec: ModelSpec) -> Any:
    """A functional Keras model with the predictions of ``spec``.

    Input/output normalization become Keras ``Normalization`` layers named
    ``input_normalization`` / ``output_normalization``; a dense layer whose
    activation parameter differs from Keras's fixed default becomes Dense +
    LeakyReLU/ELU. The FKB metadata rides along as ``model._fkb_metadata_json``
    (and :func:`write_keras` stores it in the ``.keras`` file). Raises
    ConversionError for what Keras cannot express (celu/squareplus with a
    non-default parameter, SpatialDropout1D). Normalization scales below
    Keras's floor of 1e-7 are held exactly by a Rescaling layer beside it.
    """
    try:
        validate_spec(spec)
    except ValueError as exc:
        raise ConversionError(f"invalid model: {exc}") from None
    used = {spec.layers[-1].id}
    for layer in reversed(spec.layers):
        if layer.id in used:
            used.update(layer.inputs)
    unused = [layer.id for layer in spec.layers if layer.id not in used]
    if unused:
        raise ConversionError(f"layers {unused} do not feed the output; a Keras model cannot hold them")
    inputs = keras.Input(shape=(int(spec.n_inputs),), name="inputs")
    tensors: dict[int, Any] = {0: inputs}
    if spec.input_normalization is not None:
        for keras_layer in _input_normalization_layers(spec.input_normalization):
            tensors[0] = keras_layer(tensors[0])
    groups: list[list[str]] = []
    pending: list[tuple[Any, list[np.ndarray]]] = []
    for layer in spec.layers:
        sources = [tensors[i] for i in layer.inputs]
        custom = _CUSTOM_KINDS.get(layer.kind)
        try:
            if custom is not None:
                keras_layer, weights = custom.from_spec(layer)
                keras_layers = [keras_layer]
            else:
                keras_layers, weights = _keras_layers(layer), _keras_weights(layer)
            several = layer.kind in _MERGE_CLASSES.values() or len(sources) > 1
            tensor = keras_layers[0](sources if several else sources[0])
            for extra in keras_layers[1:]:
                tensor = extra(tensor)
        except (ValueError, TypeError) as exc:  # Keras validates its arguments (e.g. slopes >= 0)
            raise ConversionError(f"layer {layer.id} ({layer.kind}): Keras refuses it: {' '.join(str(exc).split())}") from None
        tensors[layer.id] = tensor
        groups.append([k.name for k in keras_layers])
        pending.append((keras_layers[0], weights))
    output = tensors[spec.layers[-1].id]
    if spec.output_normalization is not None:
        output = _normalization_layer(spec.output_normalization, True, _OUTPUT_NORMALIZATION)(output)
    name = spec.name if spec.name and "/" not in spec.name else "fkb_model"
    model = keras.Model(inputs, output, name=name)
    for keras_layer, weights in pending:
        if weights:
            keras_layer.set_weights(weights)
    model._fkb_metadata_json = json.dumps(_metadata(spec, groups))
    return model


def write_keras(spec: ModelSpec, path: PathLike) -> None:
    """Save ``spec`` as a ``.keras`` file (atomically) with its FKB metadata."""
    path = Path(path)
    if path.suffix != ".keras":
        raise ConversionError(f"{path}: a Keras model file must end in .keras")
    model = spec_to_keras(spec)
    try:
        with replacing(path) as tmp:
            model.save(tmp)
            with zipfile.ZipFile(tmp, "a") as archive:
                archive.writestr(METADATA_ENTRY, model._fkb_metadata_json)
    except NotAFileError as exc:
        raise ConversionError(str(exc)) from None
