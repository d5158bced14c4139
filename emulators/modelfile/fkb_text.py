"""Reading the text format of the original Fortran-Keras Bridge
(``KerasWeightsProcessing/convert_weights.py``) the way its Fortran
``network_type % load`` reads it."""
from __future__ import annotations

import re

import numpy as np

from emulators.modelfile.spec import AttributeValue, LayerSpec, MAX_MODEL_VALUES, ModelSpec
from emulators.modelfile.tokens import _positive_int
from emulators.modelfile.validation import _check_total_values, _check_total_width, validate_spec


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
