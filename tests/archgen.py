"""Seeded random Keras architectures, for testing conversion and the Fortran runtime.

``generate_cases(n, seed)`` yields :class:`Case` objects: a built Keras model
with non-trivial random weights (batch-normalization statistics, PReLU
slopes, normalization means and variances included) and an input batch
``x`` of shape ``(n_samples, n_inputs)`` in float32. The same
``(seed, index)`` always gives the same architecture, weights and ``x``.

Case ``index`` always contains layer type ``LAYER_TYPES[index % len]`` and
a Dense layer with activation ``ACTIVATIONS[index % len]``, so any
``max(len(LAYER_TYPES), len(ACTIVATIONS))`` consecutive cases cover every
supported layer type and activation. Models mix sequential MLPs and
functional graphs with residual adds, concatenations and every merge.
Outputs are kept finite and moderate (``max|y| < 1e4``) by redrawing a case
when needed. LayerNormalization always gets 2 or more features: over one
feature it returns exactly ``beta``, which Keras computes in float32 as
``x*inv + (beta - mean*inv)`` with a rounding residue of relative size
``|x| / sqrt(epsilon) * 6e-8`` -- a Keras artifact, not a conversion error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator

import keras
import numpy as np

from emulators.convert import gaussian, gelu_tanh, step

__all__ = ["ACTIVATIONS", "Case", "LAYER_TYPES", "generate_cases", "make_case"]

ACTIVATIONS: list[Any] = [
    "linear",
    "relu",
    "relu6",
    "leaky_relu",
    "elu",
    "selu",
    "gelu",
    "sigmoid",
    "hard_sigmoid",
    "hard_silu",
    "hard_swish",
    "tanh",
    "softplus",
    "softsign",
    "silu",
    "swish",
    "mish",
    "exponential",
    "softmax",
    "log_softmax",
    "celu",
    "hard_tanh",
    "log_sigmoid",
    "tanh_shrink",
    "squareplus",
    None,
    gelu_tanh,
    gaussian,
    step,
]
"""Every activation a Dense or Activation layer may use (Keras spellings)."""

MERGES = ["add", "subtract", "multiply", "average", "maximum", "minimum", "concatenate"]
LAYER_TYPES: list[str] = [
    "dense",
    "activation",
    "relu",
    "leaky_relu",
    "elu",
    "prelu",
    "softmax",
    "dropout",
    "gaussian_noise",
    "gaussian_dropout",
    "alpha_dropout",
    "batch_normalization",
    "layer_normalization",
    "normalization",
    "normalization_adapted",
    "normalization_scalar",
    "rescaling",
    *MERGES,
]
"""Layer types the generator builds (Normalization in three flavours)."""

_MAX_OUTPUT = 1e4


@dataclass
class Case:
    """One generated architecture."""

    index: int
    model: Any  # keras.Model
    x: np.ndarray  # (n_samples, n_inputs) float32
    description: str

    def __iter__(self):  # lets ``model, x = case`` work
        return iter((self.model, self.x))


class _Builder:
    """Builds one random model; weights are set after the graph exists."""

    def __init__(self, rng: np.random.Generator, forced_activation: Any) -> None:
        self.rng = rng
        self.forced_activation = forced_activation
        self.post_build: list[Callable[[], None]] = []
        self.parts: list[str] = []

    # -- random choices

    def width(self) -> int:
        return int(self.rng.integers(1, 33))

    def activation(self) -> Any:
        return ACTIVATIONS[int(self.rng.integers(len(ACTIVATIONS)))]

    def uniform(self, low: float, high: float, size: Any = None) -> Any:
        value = self.rng.uniform(low, high, size)
        return float(value) if size is None else value.astype(np.float32)

    def normal(self, scale: float, size: Any) -> np.ndarray:
        return (self.rng.normal(0.0, scale, size)).astype(np.float32)

    # -- layers

    def dense(self, width: int, activation: Any) -> Any:
        use_bias = bool(self.rng.random() < 0.85)
        layer = keras.layers.Dense(width, activation=activation, use_bias=use_bias)
        gain = self.uniform(0.5, 1.5)

        def init() -> None:
            n_in = layer.kernel.shape[0]
            weights = [self.normal(gain / np.sqrt(n_in), (n_in, width))]
            if use_bias:
                weights.append(self.normal(0.3, (width,)))
            layer.set_weights(weights)

        self.post_build.append(init)
        name = activation if isinstance(activation, str) or activation is None else activation.__name__
        self.parts.append(f"Dense({width},{name},bias={int(use_bias)})")
        return layer

    def single(self, kind: str, width: int) -> Any:
        """A one-input layer of type ``kind`` for features of ``width``."""
        rng = self.rng
        if kind == "dense":
            return self.dense(self.width(), self.activation())
        if kind == "activation":
            activation = self.activation()
            name = activation if isinstance(activation, str) or activation is None else activation.__name__
            self.parts.append(f"Activation({name})")
            return keras.layers.Activation(activation)
        if kind == "relu":
            max_value = [None, self.uniform(0.5, 6.0), 6.0][int(rng.integers(3))]
            slope = [0.0, self.uniform(0.01, 0.5)][int(rng.integers(2))]
            threshold = [0.0, self.uniform(0.05, 0.5)][int(rng.integers(2))]
            self.parts.append(f"ReLU(max={max_value},slope={slope:.3g},threshold={threshold:.3g})")
            return keras.layers.ReLU(max_value=max_value, negative_slope=slope, threshold=threshold)
        if kind == "leaky_relu":
            slope = self.uniform(0.0, 0.6)
            self.parts.append(f"LeakyReLU({slope:.3g})")
            return keras.layers.LeakyReLU(negative_slope=slope)
        if kind == "elu":
            alpha = self.uniform(0.2, 2.0)
            self.parts.append(f"ELU({alpha:.3g})")
            return keras.layers.ELU(alpha=alpha)
        if kind == "prelu":
            shared = [None, [1]][int(rng.integers(2))]
            layer = keras.layers.PReLU(shared_axes=shared)
            self.post_build.append(lambda: layer.set_weights([self.uniform(-0.5, 0.8, layer.alpha.shape)]))
            self.parts.append(f"PReLU(shared={shared})")
            return layer
        if kind == "softmax":
            self.parts.append("Softmax")
            return keras.layers.Softmax()
        if kind == "dropout":
            self.parts.append("Dropout")
            return keras.layers.Dropout(self.uniform(0.0, 0.5))
        if kind == "gaussian_noise":
            self.parts.append("GaussianNoise")
            return keras.layers.GaussianNoise(self.uniform(0.0, 1.0))
        if kind == "gaussian_dropout":
            self.parts.append("GaussianDropout")
            return keras.layers.GaussianDropout(self.uniform(0.0, 0.5))
        if kind == "alpha_dropout":
            self.parts.append("AlphaDropout")
            return keras.layers.AlphaDropout(self.uniform(0.0, 0.5))
        if kind == "batch_normalization":
            center, scale = bool(rng.random() < 0.8), bool(rng.random() < 0.8)
            epsilon = [1e-3, 1e-5, self.uniform(1e-4, 1e-1)][int(rng.integers(3))]
            layer = keras.layers.BatchNormalization(center=center, scale=scale, epsilon=epsilon, momentum=self.uniform(0.8, 0.999))

            def init_bn() -> None:
                weights = []
                if scale:
                    weights.append(self.uniform(0.5, 1.5, width) * np.where(rng.random(width) < 0.2, -1, 1).astype(np.float32))
                if center:
                    weights.append(self.normal(0.3, width))
                weights += [self.normal(0.5, width), self.uniform(0.3, 2.0, width)]
                layer.set_weights(weights)

            self.post_build.append(init_bn)
            self.parts.append(f"BatchNormalization(center={int(center)},scale={int(scale)},eps={epsilon:.3g})")
            return layer
        if kind == "layer_normalization":
            center, scale = bool(rng.random() < 0.8), bool(rng.random() < 0.8)
            epsilon = [1e-3, 1e-5, self.uniform(1e-4, 1e-1)][int(rng.integers(3))]
            layer = keras.layers.LayerNormalization(center=center, scale=scale, epsilon=epsilon)

            def init_ln() -> None:
                weights = []
                if scale:
                    weights.append(self.uniform(0.5, 1.5, width))
                if center:
                    weights.append(self.normal(0.3, width))
                layer.set_weights(weights)

            self.post_build.append(init_ln)
            self.parts.append(f"LayerNormalization(center={int(center)},scale={int(scale)},eps={epsilon:.3g})")
            return layer
        if kind == "normalization":
            invert = bool(rng.random() < 0.3)
            mean = self.normal(1.0, width)
            variance = self.uniform(0.25, 4.0, width)
            self.parts.append(f"Normalization(invert={int(invert)})")
            return keras.layers.Normalization(mean=mean.tolist(), variance=variance.tolist(), invert=invert)
        if kind == "normalization_adapted":
            invert = bool(rng.random() < 0.3)
            layer = keras.layers.Normalization(invert=invert)

            def init_norm() -> None:
                layer.set_weights([self.normal(1.0, width), self.uniform(0.25, 4.0, width), np.array(100)])
                layer.finalize_state()

            self.post_build.append(init_norm)
            self.parts.append(f"Normalization(adapted,invert={int(invert)})")
            return layer
        if kind == "normalization_scalar":
            mean, variance = float(self.normal(1.0, ())), self.uniform(0.25, 4.0)
            self.parts.append("Normalization(axis=None)")
            return keras.layers.Normalization(axis=None, mean=mean, variance=variance)
        if kind == "rescaling":
            vector_scale, vector_offset = bool(rng.random() < 0.5), bool(rng.random() < 0.5)
            scale = self.uniform(-2.0, 2.0, width) if vector_scale else self.uniform(-2.0, 2.0)
            offset = self.normal(1.0, width) if vector_offset else [0.0, self.uniform(-1.0, 1.0)][int(rng.integers(2))]
            self.parts.append(f"Rescaling(vector_scale={int(vector_scale)},vector_offset={int(vector_offset)})")
            return keras.layers.Rescaling(scale=scale, offset=offset)
        raise ValueError(kind)

    def merge(self, kind: str, current: Any, pool: list[Any]) -> Any:
        """Merge ``current`` with 1 or 2 earlier tensors (projected to a common width)."""
        rng = self.rng
        count = 1 if kind == "subtract" else int(rng.integers(1, 3))
        partners = [pool[int(rng.integers(len(pool)))] for _ in range(count)]
        width = current.shape[-1]
        inputs = [current]
        for tensor in partners:
            if kind != "concatenate" and tensor.shape[-1] != width:
                tensor = self.dense(width, self.activation())(tensor)
            inputs.append(tensor)
        if rng.random() < 0.5:
            inputs.reverse()
        layer = getattr(keras.layers, {"add": "Add", "subtract": "Subtract", "multiply": "Multiply", "average": "Average", "maximum": "Maximum", "minimum": "Minimum", "concatenate": "Concatenate"}[kind])()
        self.parts.append(f"{type(layer).__name__}x{len(inputs)}")
        return layer(inputs)


def _build(seed: int, index: int, attempt: int) -> tuple[Any, np.ndarray, str]:
    rng = np.random.default_rng([seed, index, attempt])
    forced_layer = LAYER_TYPES[index % len(LAYER_TYPES)]
    forced_activation = ACTIVATIONS[index % len(ACTIVATIONS)]
    builder = _Builder(rng, forced_activation)
    functional = forced_layer in MERGES or rng.random() < 0.7
    n_inputs = int(rng.integers(1, 33))
    n_extra = int(rng.integers(1, 5))
    choices = [k for k in LAYER_TYPES if functional or k not in MERGES]
    kinds = [forced_layer] + [choices[int(rng.integers(len(choices)))] for _ in range(n_extra)]
    rng.shuffle(kinds)

    inputs = keras.Input(shape=(n_inputs,))
    first_width = builder.width()
    first = builder.dense(first_width, forced_activation)
    final_width = int(rng.integers(1, 9)) if rng.random() < 0.6 else None
    if functional:
        current = first(inputs)
        pool = [inputs, current]
        for kind in kinds:
            if kind == "layer_normalization" and current.shape[-1] == 1:
                current = builder.dense(int(rng.integers(2, 33)), builder.activation())(current)
            if kind in MERGES:
                current = builder.merge(kind, current, pool)
            else:
                current = builder.single(kind, int(current.shape[-1]))(current)
            pool.append(current)
        if final_width is not None:
            current = builder.dense(final_width, builder.activation())(current)
        model = keras.Model(inputs, current, name=f"archgen_{seed}_{index}")
    else:
        layers, width = [first], first_width
        for kind in kinds:
            if kind == "layer_normalization" and width == 1:
                width = int(rng.integers(2, 33))
                layers.append(builder.dense(width, builder.activation()))
            layer = builder.single(kind, width)
            layers.append(layer)
            if isinstance(layer, keras.layers.Dense):
                width = layer.units
        if final_width is not None:
            layers.append(builder.dense(final_width, builder.activation()))
        model = keras.Sequential([inputs, *layers], name=f"archgen_{seed}_{index}")
    for init in builder.post_build:
        init()

    n_samples = int(rng.integers(24, 49))
    x = rng.normal(0.0, 1.0, (n_samples, n_inputs)) * rng.uniform(0.5, 3.0, n_inputs) + rng.uniform(-2.0, 2.0, n_inputs)
    kind_name = "Functional" if functional else "Sequential"
    return model, x.astype(np.float32), f"{kind_name}[{n_inputs}]: " + " -> ".join(builder.parts)


def make_case(seed: int, index: int, max_attempts: int = 50) -> Case:
    """Case ``index`` of the stream seeded by ``seed``.

    Redraws (deterministically) until the model's outputs for ``x`` are
    finite and below 1e4 in magnitude.
    """
    for attempt in range(max_attempts):
        model, x, description = _build(seed, index, attempt)
        y = np.asarray(model(x))
        if np.all(np.isfinite(y)) and np.max(np.abs(y)) < _MAX_OUTPUT:
            return Case(index, model, x, description)
    raise RuntimeError(f"no well-behaved model for seed {seed} index {index} in {max_attempts} attempts")


def generate_cases(n: int, seed: int = 0, start: int = 0) -> Iterator[Case]:
    """Cases ``start .. start + n - 1`` of the stream seeded by ``seed``."""
    for index in range(start, start + n):
        yield make_case(seed, index)
