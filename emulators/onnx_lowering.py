"""ONNX -> model file, step 4: lower the interpreted, recognized graph to the
model file's layers (Gemm/MatMul -> dense, normalizations, merges, rescaling
or the file's input and output normalization). Used by
:mod:`emulators.onnx_import`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from emulators.formats import UnsupportedModelError
from emulators.modelfile import LayerSpec, Normalization
from emulators.onnx_interpreter import _Dyn, _Node, _PATTERN_ONLY, _close, _f32, _scalar
from emulators.onnx_patterns import _live_nodes


# --------------------------------------------------------------------------
# Lowering to the model file's layers


@dataclass(eq=False)
class _Layer:
    kind: str
    inputs: list["_Layer | None"]  # None: the model input
    n_out: int
    attributes: dict[str, Any] = field(default_factory=dict)
    params: dict[str, np.ndarray] = field(default_factory=dict)
    affine: tuple[str, np.ndarray] | None = None  # kind "affine": ("add" | "sub" | "mul" | "div" | "rsub", vector)


_ONNX_ACTIVATIONS = {
    "Relu": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh", "Softplus": "softplus", "Softsign": "softsign",
    "Exp": "exponential", "HardSwish": "hard_silu", "Mish": "mish", "Softmax": "softmax", "LogSoftmax": "log_softmax",
}
_SELU = (1.6732632423543772848170429916717, 1.0507009873554804934193349852946)


class _Lowering:
    def __init__(self, output: _Dyn, source: str, model_input: _Dyn):
        self.output = output
        self.source = source
        self.layers: list[_Layer] = []
        self.of: dict[int, _Layer | None] = {id(model_input): None}  # id(_Dyn) -> layer (None: the model input)

    def refuse(self, node: _Node, reason: str) -> UnsupportedModelError:
        return UnsupportedModelError(f"{self.source}: node '{node.name}' ({node.op}): {reason}")

    def add(self, kind: str, inputs: list[_Layer | None], n_out: int, attributes: dict | None = None,
            params: dict | None = None, affine: tuple | None = None) -> _Layer:
        layer = _Layer(kind, list(inputs), int(n_out), dict(attributes or {}), dict(params or {}), affine)
        self.layers.append(layer)
        return layer

    def source_of(self, value: _Dyn) -> _Layer | None:
        return self.of[id(value)]

    def activation(self, x: _Layer | None, n: int, name: str, alpha: float | None = None) -> _Layer:
        attributes: dict[str, Any] = {"activation": name}
        if alpha is not None:
            attributes["alpha"] = float(alpha)
        return self.add("activation", [x], n, attributes)

    def affine(self, x: _Layer | None, n: int, op: str, vector: np.ndarray) -> _Layer:
        vector = np.broadcast_to(np.asarray(vector, dtype=np.float32).reshape(-1), (n,)).astype(np.float32)
        return self.add("affine", [x], n, affine=(op, vector))

    def run(self) -> list[_Layer]:
        for node in _live_nodes(self.output):
            self.of[id(node.out)] = self.lower(node)
        if self.output.node is None:  # the input itself
            self.of[id(self.output)] = None
        return self.layers

    def lower(self, node: _Node) -> _Layer | None:
        op, ins, attrs = node.op, node.inputs, node.attrs
        n = node.out.size
        if any(isinstance(v, _Dyn) and v.boolean for v in ins) or node.out.boolean:
            raise self.refuse(node, f"{op} is supported only inside a recognized pattern (Softplus with a "
                                    "threshold, step); this use matches none")
        if any(isinstance(v, _Dyn) and v.size != n for v in ins) and op not in ("Dense", "Select", "Concat", "Reshape"):
            raise self.refuse(node, f"{op} broadcasts a single feature against {n}; supported only inside a recognized "
                                    "pattern (layer normalization)")
        dyn = [self.source_of(v) for v in ins if isinstance(v, _Dyn)]
        x = dyn[0] if dyn else None
        if op == "Reshape":
            return x
        if op == "Dense":
            kernel = attrs["kernel"]
            params = {"kernel": kernel}
            if "bias" in attrs:
                params["bias"] = attrs["bias"]
            return self.add("dense", [x], kernel.shape[0], {"activation": "linear", "use_bias": int("bias" in attrs)},
                            params)
        if op == "Select":
            index = attrs["index"]
            kernel = np.zeros((index.size, ins[0].size), dtype=np.float32)
            kernel[np.arange(index.size), index] = 1.0
            return self.add("dense", [x], index.size, {"activation": "linear", "use_bias": 0}, {"kernel": kernel})
        if op == "Concat":
            return self.add("concatenate", dyn, n)
        if op == "Act":
            return self.activation(x, n, attrs["activation"], attrs.get("alpha"))
        if op in _ONNX_ACTIVATIONS:
            return self.activation(x, n, _ONNX_ACTIVATIONS[op])
        if op == "LeakyRelu":
            return self.activation(x, n, "leaky_relu", _f32(attrs.get("alpha", 0.01)))
        if op == "Elu":
            return self.activation(x, n, "elu", _f32(attrs.get("alpha", 1.0)))
        if op == "Celu":
            return self.activation(x, n, "celu", _f32(attrs.get("alpha", 1.0)))
        if op == "Selu":
            alpha, gamma = float(attrs.get("alpha", 1.67326319217681884765625)), float(attrs.get("gamma", 1.05070102214813232421875))
            if not (_close(alpha, _SELU[0]) and _close(gamma, _SELU[1])):
                raise self.refuse(node, f"Selu(alpha={alpha:g}, gamma={gamma:g}) differs from SELU's constants")
            return self.activation(x, n, "selu")
        if op == "Gelu":
            approximate = attrs.get("approximate", "none")
            if approximate not in ("none", "tanh"):
                raise self.refuse(node, f"approximate={approximate!r} is not supported")
            return self.activation(x, n, "gelu" if approximate == "none" else "gelu_tanh")
        if op == "HardSigmoid":
            alpha, beta = float(attrs.get("alpha", 0.2)), float(attrs.get("beta", 0.5))
            if _close(alpha, 1 / 6) and _close(beta, 0.5):
                return self.activation(x, n, "hard_sigmoid")
            # clip(alpha x + beta, 0, 1) = relu6(z + 3) / 6 with z = 6 alpha x + 6 beta - 3
            pre = self.add("rescaling", [x], n, params={"scale": np.full(n, 6 * alpha, np.float32),
                                                         "offset": np.full(n, 6 * beta - 3, np.float32)})
            return self.activation(pre, n, "hard_sigmoid")
        if op == "KerasRelu":
            return self.add("relu", [x], n, dict(attrs))
        if op == "ThresholdedRelu":
            return self.add("relu", [x], n, {"negative_slope": 0.0, "threshold": _f32(attrs.get("alpha", 1.0))})
        if op == "PRelu":
            return self.add("prelu", [x], n, params={"alpha": attrs["slope"]})
        if op == "Clip" or (op in ("Max", "Min") and len(ins) == 2 and isinstance(ins[1], np.ndarray)):
            return self.clip(node, x, n)
        if op == "LayerNorm":
            return self.norm_layer("layer_normalization", x, n, attrs)
        if op == "BatchNorm":
            return self.norm_layer("batch_normalization", x, n, attrs)
        if op == "Neg":
            return self.affine(x, n, "mul", np.float32(-1.0))
        if op == "Pow":
            exponent = _scalar(ins[1]) if isinstance(ins[1], np.ndarray) else None
            if exponent == 1.0:
                return x
            if exponent == 2.0:
                return self.add("multiply", [x, x], n)
            raise self.refuse(node, "Pow is supported only with exponent 1 or 2, or inside a recognized pattern")
        if op in ("Add", "Sub", "Mul", "Div", "Max", "Min", "Sum", "Mean"):
            return self.arithmetic(node, n)
        if op in _PATTERN_ONLY or op in ("ReduceMean",):
            raise self.refuse(node, f"{op} is supported only inside a recognized pattern (GELU, softsign, "
                                    "log-sigmoid, Softplus with a threshold, layer normalization); this use matches none")
        raise self.refuse(node, f"operator {op} is not supported here")

    def clip(self, node: _Node, x: _Layer | None, n: int) -> _Layer | None:
        if node.op == "Clip":
            lo, hi = float(node.attrs["min"]), float(node.attrs["max"])
        else:
            s = _scalar(node.inputs[1])
            if s is None:
                raise self.refuse(node, f"{node.op} with a constant that varies over the features is not supported")
            lo, hi = (s, math.inf) if node.op == "Max" else (-math.inf, s)
        lo, hi = _f32(lo), _f32(hi)
        if lo > hi:
            raise self.refuse(node, f"Clip(min={lo:g}, max={hi:g}) with min > max")
        if lo == -math.inf and hi == math.inf:
            return x
        if lo == 0.0 and hi == math.inf:
            return self.activation(x, n, "relu")
        if lo == 0.0 and hi == 6.0:
            return self.activation(x, n, "relu6")
        if lo == -1.0 and hi == 1.0:
            return self.activation(x, n, "hard_tanh")
        if lo == 0.0:
            return self.add("relu", [x], n, {"max_value": hi, "negative_slope": 0.0, "threshold": 0.0})
        if lo == -math.inf:  # min(x, hi) = hi - relu(hi - x)
            inner = self.affine(self.affine(x, n, "mul", np.float32(-1.0)), n, "add", np.float32(hi))
            return self.affine(self.affine(self.activation(inner, n, "relu"), n, "mul", np.float32(-1.0)), n, "add",
                               np.float32(hi))
        # clip(x, lo, hi) = relu(x - lo, max hi - lo) + lo
        inner = self.affine(x, n, "sub", np.float32(lo))
        attributes = {"negative_slope": 0.0, "threshold": 0.0}
        if hi != math.inf:
            attributes = {"max_value": _f32(hi - lo), **attributes}
        return self.affine(self.add("relu", [inner], n, attributes), n, "add", np.float32(lo))

    def norm_layer(self, kind: str, x: _Layer | None, n: int, attrs: dict) -> _Layer:
        params: dict[str, np.ndarray] = {}
        if attrs["gamma"] is not None:
            params["gamma"] = attrs["gamma"]
        if attrs["beta"] is not None:
            params["beta"] = attrs["beta"]
        attributes = {"epsilon": _f32(attrs["epsilon"]), "center": int("beta" in params), "scale": int("gamma" in params)}
        if kind == "batch_normalization":
            params["moving_mean"], params["moving_variance"] = attrs["mean"], attrs["variance"]
        return self.add(kind, [x], n, attributes, params)

    def arithmetic(self, node: _Node, n: int) -> _Layer:
        op, ins = node.op, node.inputs
        dyn = [v for v in ins if isinstance(v, _Dyn)]
        consts = [v for v in ins if isinstance(v, np.ndarray)]
        sources = [self.source_of(v) for v in dyn]
        if not consts:
            kinds = {"Add": "add", "Sum": "add", "Sub": "subtract", "Mul": "multiply", "Max": "maximum",
                     "Min": "minimum", "Mean": "average"}
            if op == "Div":
                raise self.refuse(node, "Div of two tensors that depend on the input is supported only inside a "
                                        "recognized pattern (softsign); this use matches none")
            if len(sources) == 1:  # Sum or Mean of one tensor, Max(x) ...
                return sources[0]
            return self.add(kinds[op], sources, n)
        if len(dyn) != 1 or len(ins) != 2 or op not in ("Add", "Sub", "Mul", "Div"):
            raise self.refuse(node, f"{op} of a constant and several tensors is not supported")
        c = np.asarray(consts[0], dtype=np.float32)
        first_is_const = isinstance(ins[0], np.ndarray)
        if op == "Sub" and first_is_const:
            return self.affine(sources[0], n, "rsub", c)
        if op == "Div" and first_is_const:
            raise self.refuse(node, "dividing a constant by a tensor that depends on the input is supported only "
                                    "inside a recognized pattern")
        if op == "Div" and np.any(c == 0):
            raise self.refuse(node, "divides by zero")
        return self.affine(sources[0], n, op.lower(), c)


def _finish(layers: list[_Layer], output: _Layer | None, n_inputs: int,
            source: str) -> tuple[list[LayerSpec], Normalization | None, Normalization | None]:
    """Fuse (bias adds into dense layers, activations into the dense layer
    they follow, normalization at the ends), then number the layers."""
    def users() -> dict[int, list[_Layer]]:
        table: dict[int, list[_Layer]] = {}
        for layer in layers:
            for source_layer in layer.inputs:
                table.setdefault(id(source_layer), []).append(layer)
        return table

    alias: dict[int, _Layer | None] = {}

    def resolve(layer: _Layer | None) -> _Layer | None:
        while layer is not None and id(layer) in alias:
            layer = alias[id(layer)]
        return layer

    def remove(layer: _Layer, replacement: _Layer | None) -> None:
        alias[id(layer)] = replacement
        layers.remove(layer)
        for other in layers:
            other.inputs = [resolve(i) for i in other.inputs]

    # a bias added after a dense layer without one; an activation after a linear dense layer
    changed = True
    while changed:
        changed = False
        table = users()
        for layer in list(layers):
            if layer.kind not in ("affine", "activation"):
                continue
            before = layer.inputs[0]
            if before is None or before.kind != "dense" or len(table.get(id(before), [])) != 1 or before is output:
                continue
            if layer.kind == "affine" and layer.affine[0] in ("add", "sub") and not before.attributes["use_bias"] \
                    and before.attributes["activation"] == "linear":
                vector = layer.affine[1] if layer.affine[0] == "add" else -layer.affine[1]
                before.params["bias"] = vector.astype(np.float32)
                before.attributes["use_bias"] = 1
            elif layer.kind == "activation" and before.attributes["activation"] == "linear":
                before.attributes = {"activation": layer.attributes["activation"],
                                     **({"alpha": layer.attributes["alpha"]} if "alpha" in layer.attributes else {}),
                                     "use_bias": before.attributes["use_bias"]}
            else:
                continue
            if output is layer:
                output = before
            remove(layer, before)
            changed = True
            break

    # input normalization: (x - offset) / scale as the first layers
    input_norm = None
    table = users()
    first = table.get(id(None), [])
    offset = scale = None
    if len(first) == 1 and first[0].kind == "affine" and first[0] is not output:
        layer = first[0]
        if layer.affine[0] == "sub":
            offset = layer.affine[1]
            following = table.get(id(layer), [])
            remove(layer, None)
            if len(following) == 1 and following[0].kind == "affine" and following[0].affine[0] == "div" \
                    and following[0] is not output:
                scale = following[0].affine[1]
                remove(following[0], None)
        elif layer.affine[0] == "div":
            scale = layer.affine[1]
            remove(layer, None)
    if offset is not None or scale is not None:
        n = n_inputs
        input_norm = Normalization(np.zeros(n, np.float32) if offset is None else offset,
                                   np.ones(n, np.float32) if scale is None else scale)

    # output normalization: y * scale + offset as the last layers
    output_norm = None
    offset = scale = None
    table = users()
    if output is not None and output.kind == "affine" and output.affine[0] in ("add", "sub") \
            and len(table.get(id(output), [])) == 0:
        offset = output.affine[1] if output.affine[0] == "add" else -output.affine[1]
        before = output.inputs[0]
        remove(output, before)
        output = before
        table = users()
        if output is not None and output.kind == "affine" and output.affine[0] == "mul" \
                and len(table.get(id(output), [])) == 0:
            scale = output.affine[1]
            before = output.inputs[0]
            remove(output, before)
            output = before
    elif output is not None and output.kind == "affine" and output.affine[0] == "mul":
        scale = output.affine[1]
        before = output.inputs[0]
        remove(output, before)
        output = before
    if offset is not None or scale is not None:
        n = (offset if offset is not None else scale).size
        output_norm = Normalization(np.zeros(n, np.float32) if offset is None else offset,
                                    np.ones(n, np.float32) if scale is None else scale)

    # the other constant arithmetic: rescaling layers (merged where exact)
    for layer in layers:
        if layer.kind != "affine":
            continue
        op, vector = layer.affine
        n = layer.n_out
        ones, zeros = np.ones(n, np.float32), np.zeros(n, np.float32)
        if op == "add":
            scale_offset = (ones, vector)
        elif op == "sub":
            scale_offset = (ones, (-vector).astype(np.float32))
        elif op == "mul":
            scale_offset = (vector, zeros)
        elif op == "div":  # x / c as x * (1 / c): one more rounding
            scale_offset = ((np.float32(1.0) / vector).astype(np.float32), zeros)
        else:  # rsub: c - x
            scale_offset = (-ones, vector)
        layer.kind, layer.affine = "rescaling", None
        layer.params = {"scale": scale_offset[0], "offset": scale_offset[1]}
    changed = True
    while changed:
        changed = False
        table = users()
        for layer in list(layers):
            before = layer.inputs[0] if layer.inputs else None
            if layer.kind != "rescaling" or before is None or before.kind != "rescaling" or before is output \
                    or len(table.get(id(before), [])) != 1:
                continue
            if np.all(before.params["offset"] == 0) and np.all(layer.params["scale"] == 1):
                before.params["offset"] = layer.params["offset"]
                if output is layer:
                    output = before
                remove(layer, before)
                changed = True
                break

    if output is None or not layers:
        n = n_inputs if output is None else output.n_out
        identity = _Layer("activation", [output], n, {"activation": "linear"})
        layers.append(identity)
        output = identity
    if layers[-1] is not output:
        raise UnsupportedModelError(f"{source}: internal error: the output is not the last layer")  # pragma: no cover
    ids: dict[int, int] = {id(None): 0}
    specs = []
    for position, layer in enumerate(layers, start=1):
        ids[id(layer)] = position
        attributes = dict(layer.attributes)
        specs.append(LayerSpec(position, layer.kind, layer.n_out, [ids[id(i)] for i in layer.inputs], attributes,
                               {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in layer.params.items()}))
    return specs, input_norm, output_norm
