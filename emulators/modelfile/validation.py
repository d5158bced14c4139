"""Validation of a :class:`~emulators.modelfile.spec.ModelSpec`, shared by the
reader and the writer."""
from __future__ import annotations

import math

import numpy as np

from emulators.modelfile.spec import (
    ACTIVATIONS,
    AttributeValue,
    CustomLayerKind,
    DROPOUT_VARIANTS,
    InputStatistics,
    LayerSpec,
    MAX_MODEL_VALUES,
    MAX_MODEL_WIDTH,
    MERGE_KINDS,
    ModelSpec,
    Normalization,
    TrainingState,
    _ACT,
    _ATTRIBUTES,
    _BOOL,
    _CUSTOM_KINDS,
    _REAL,
    _TEXT_RE,
    _TOKEN_RE,
    _VARIANT,
    _unknown_kind,
)
from emulators.modelfile.tokens import _format_attribute


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
