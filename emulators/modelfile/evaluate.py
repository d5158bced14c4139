"""A float64 reference implementation of every layer and activation of the
format, in NumPy; it cross-checks Keras and the Fortran runtime."""
from __future__ import annotations

import math

import numpy as np

from emulators.modelfile.spec import (
    ACTIVATIONS,
    LayerSpec,
    ModelSpec,
    _CUSTOM_KINDS,
    _NORMALIZATION_EPSILON,
    _SELU_ALPHA,
    _SELU_SCALE,
    activation_alpha,
)

# SciPy is imported inside the functions that use it, so that importing this module does not load it
# (start-up time).


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
