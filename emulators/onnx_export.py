"""Model file -> ONNX: write a :class:`~emulators.modelfile.ModelSpec` as an
ONNX graph that onnxruntime (or Netron, or any ONNX tool) runs with the
Fortran runtime's outputs, to float32 round-off.

The graph has one input ``x`` of shape ``(batch, n_inputs)`` and one output
``y`` of shape ``(batch, n_outputs)``, the batch axis dynamic, opset
:data:`OPSET`. Each layer becomes the standard operators that compute it
(a ``dense`` layer ``Gemm`` and its activation, the normalization sections
``Sub``/``Div`` and ``Mul``/``Add``, GELU ``Erf``/``Mul``/``Add`` as
PyTorch exports it, ...), the node names carrying the layer's id and type
(``layer3_dense``); the names and units of the inputs and outputs and the
model's name, and the statistics of the training inputs that the runtime's
guard needs, go to ``metadata_props`` (:data:`emulators.onnx_import.METADATA_KEYS`),
so ``fkb convert model.onnx model.fkb`` gives them back. Every graph written
is read back by the importer to the same predictions (``tests/test_onnx.py``).

Custom layer types (``<namespace>.<name>``) have no ONNX form and are refused.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Union

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from emulators.atomic_files import NotAFileError, replacing
from emulators.formats import ConversionError, register_format
from emulators.modelfile import ModelSpec, activation_alpha, validate_spec
from emulators.onnx_import import METADATA_KEYS

__all__ = ["OPSET", "spec_to_onnx", "write_onnx"]

PathLike = Union[str, "os.PathLike[str]"]

OPSET = 17
"""The opset of the graphs written: the first with LayerNormalization; run by
every onnxruntime since 1.14."""
IR_VERSION = 8

_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


class _Graph:
    def __init__(self):
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.count = 0
        self.prefix = "graph"

    def name(self, what: str) -> str:
        self.count += 1
        return f"{self.prefix}/{what}_{self.count}"

    def const(self, value: Any, what: str) -> str:
        name = self.name(what)
        self.initializers.append(numpy_helper.from_array(np.asarray(value, dtype=np.float32), name))
        return name

    def op(self, op_type: str, inputs: list[str], **attributes: Any) -> str:
        out = self.name(op_type)
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attributes))
        return out

    def scalar(self, value: float) -> str:
        return self.const(np.float32(value), "c")


def _activation(g: _Graph, x: str, name: str, alpha: float | None) -> str:
    """The nodes of activation `name` on `x`."""
    if name == "linear":
        return x
    if name == "relu":
        return g.op("Relu", [x])
    if name == "relu6":
        return g.op("Clip", [x, g.scalar(0.0), g.scalar(6.0)])
    if name == "leaky_relu":
        return g.op("LeakyRelu", [x], alpha=float(alpha))
    if name == "elu":
        return g.op("Elu", [x], alpha=float(alpha))
    if name == "selu":
        return g.op("Selu", [x], alpha=_SELU_ALPHA, gamma=_SELU_SCALE)
    if name == "gelu":  # as PyTorch exports it before opset 20
        erf = g.op("Erf", [g.op("Div", [x, g.scalar(math.sqrt(2.0))])])
        return g.op("Mul", [g.op("Mul", [x, g.op("Add", [erf, g.scalar(1.0)])]), g.scalar(0.5)])
    if name == "gelu_tanh":
        cube = g.op("Mul", [g.op("Mul", [x, x]), x])
        inner = g.op("Add", [x, g.op("Mul", [cube, g.scalar(0.044715)])])
        t = g.op("Tanh", [g.op("Mul", [inner, g.scalar(math.sqrt(2.0 / math.pi))])])
        return g.op("Mul", [g.op("Mul", [x, g.op("Add", [t, g.scalar(1.0)])]), g.scalar(0.5)])
    if name == "sigmoid":
        return g.op("Sigmoid", [x])
    if name == "hard_sigmoid":
        return g.op("HardSigmoid", [x], alpha=1.0 / 6.0, beta=0.5)
    if name == "hard_silu":
        return g.op("HardSwish", [x])
    if name == "tanh":
        return g.op("Tanh", [x])
    if name == "softplus":
        return g.op("Softplus", [x])
    if name == "softsign":
        return g.op("Softsign", [x])
    if name == "silu":
        return g.op("Mul", [x, g.op("Sigmoid", [x])])
    if name == "mish":  # Mish is an operator from opset 18
        return g.op("Mul", [x, g.op("Tanh", [g.op("Softplus", [x])])])
    if name == "exponential":
        return g.op("Exp", [x])
    if name == "softmax":
        return g.op("Softmax", [x], axis=-1)
    if name == "log_softmax":
        return g.op("LogSoftmax", [x], axis=-1)
    if name == "celu":
        return g.op("Celu", [x], alpha=float(alpha))
    if name == "hard_tanh":
        return g.op("Clip", [x, g.scalar(-1.0), g.scalar(1.0)])
    if name == "log_sigmoid":  # -softplus(-x), as the runtime computes it (no log(0) for very negative x)
        return g.op("Neg", [g.op("Softplus", [g.op("Neg", [x])])])
    if name == "tanh_shrink":
        return g.op("Sub", [x, g.op("Tanh", [x])])
    if name == "squareplus":
        root = g.op("Sqrt", [g.op("Add", [g.op("Mul", [x, x]), g.scalar(float(alpha))])])
        return g.op("Mul", [g.op("Add", [x, root]), g.scalar(0.5)])
    if name == "gaussian":
        return g.op("Exp", [g.op("Neg", [g.op("Mul", [x, x])])])
    if name == "step":
        return g.op("Cast", [g.op("Greater", [x, g.scalar(0.0)])], to=TensorProto.FLOAT)
    raise ConversionError(f"activation {name} has no ONNX form")  # pragma: no cover - every activation is above


def _relu_layer(g: _Graph, x: str, attrs: dict) -> str:
    """Keras's ReLU layer: ``p = x if x > threshold else 0``, ``min(p, max_value)``,
    ``- negative_slope * max(threshold - x, 0)``; the usual cases as one operator."""
    slope, threshold = float(attrs["negative_slope"]), float(attrs["threshold"])
    max_value = attrs.get("max_value")
    max_value = None if max_value is None else float(max_value)
    if threshold == 0.0 and slope == 0.0:
        if max_value is None:
            return g.op("Relu", [x])
        return g.op("Clip", [x, g.scalar(0.0), g.scalar(max_value)])
    if threshold == 0.0 and max_value is None:
        return g.op("LeakyRelu", [x], alpha=slope)
    if slope == 0.0 and max_value is None and threshold > 0.0:
        return g.op("ThresholdedRelu", [x], alpha=threshold)
    zero = g.scalar(0.0)
    p = g.op("Where", [g.op("Greater", [x, g.scalar(threshold)]), x, zero])
    if max_value is not None:
        p = g.op("Min", [p, g.scalar(max_value)])
    if slope != 0.0:
        below = g.op("Relu", [g.op("Sub", [g.scalar(threshold), x])])
        p = g.op("Sub", [p, g.op("Mul", [below, g.scalar(slope)])])
    return p


def _layer(g: _Graph, layer, sources: list[str]) -> str:
    kind, attrs, p = layer.kind, layer.attributes, layer.params
    x = sources[0]
    if kind == "dense":
        inputs = [x, g.const(p["kernel"], "kernel")] + ([g.const(p["bias"], "bias")] if "bias" in p else [])
        z = g.op("Gemm", inputs, transB=1)
        activation = str(attrs["activation"])
        return _activation(g, z, activation, activation_alpha(activation, attrs))
    if kind == "activation":
        activation = str(attrs["activation"])
        out = _activation(g, x, activation, activation_alpha(activation, attrs))
        return out if out != x else g.op("Identity", [x])
    if kind == "relu":
        return _relu_layer(g, x, attrs)
    if kind == "leaky_relu":
        return g.op("LeakyRelu", [x], alpha=float(attrs["negative_slope"]))
    if kind == "elu":
        return g.op("Elu", [x], alpha=float(attrs["alpha"]))
    if kind == "prelu":
        return g.op("PRelu", [x, g.const(p["alpha"], "slope")])
    if kind == "softmax":
        return g.op("Softmax", [x], axis=-1)
    if kind == "dropout":
        return g.op("Identity", [x])
    if kind == "batch_normalization":
        n = layer.n_out
        gamma = p.get("gamma", np.ones(n, np.float32))
        beta = p.get("beta", np.zeros(n, np.float32))
        return g.op("BatchNormalization", [x, g.const(gamma, "gamma"), g.const(beta, "beta"),
                                           g.const(p["moving_mean"], "moving_mean"),
                                           g.const(p["moving_variance"], "moving_variance")],
                    epsilon=float(attrs["epsilon"]))
    if kind == "layer_normalization":
        n = layer.n_out
        inputs = [x, g.const(p.get("gamma", np.ones(n, np.float32)), "gamma")]
        if "beta" in p:
            inputs.append(g.const(p["beta"], "beta"))
        return g.op("LayerNormalization", inputs, axis=-1, epsilon=float(attrs["epsilon"]))
    if kind == "normalization":
        std = np.maximum(np.sqrt(p["variance"].astype(np.float32)), np.float32(1e-7)).astype(np.float32)
        if attrs["invert"] == 1:
            return g.op("Add", [g.op("Mul", [x, g.const(std, "std")]), g.const(p["mean"], "mean")])
        return g.op("Div", [g.op("Sub", [x, g.const(p["mean"], "mean")]), g.const(std, "std")])
    if kind == "rescaling":
        return g.op("Add", [g.op("Mul", [x, g.const(p["scale"], "scale")]), g.const(p["offset"], "offset")])
    if kind in ("add", "multiply", "maximum", "minimum"):
        op = {"add": "Add", "multiply": "Mul", "maximum": "Max", "minimum": "Min"}[kind]
        out = sources[0]
        for other in sources[1:]:  # left to right, as the runtime sums
            out = g.op(op, [out, other])
        return out
    if kind == "subtract":
        return g.op("Sub", sources)
    if kind == "average":
        return g.op("Mean", sources)
    if kind == "concatenate":
        return g.op("Concat", sources, axis=1)
    raise ConversionError(f"layer {layer.id}: custom layer type {kind} has no ONNX form")


def spec_to_onnx(spec: ModelSpec) -> onnx.ModelProto:
    """The ONNX model of `spec` (checked by ``onnx.checker``)."""
    try:
        validate_spec(spec)
    except ValueError as exc:
        raise ConversionError(f"invalid model: {exc}") from None
    g = _Graph()
    g.prefix = "input_normalization"
    x = "x"
    if spec.input_normalization is not None:
        offset, scale = spec.input_normalization
        x = g.op("Div", [g.op("Sub", [x, g.const(offset, "offset")]), g.const(scale, "scale")])
    tensors = {0: x}
    for layer in spec.layers:
        g.prefix = f"layer{layer.id}_{layer.kind}"
        tensors[layer.id] = _layer(g, layer, [tensors[i] for i in layer.inputs])
    y = tensors[spec.layers[-1].id]
    if spec.output_normalization is not None:
        g.prefix = "output_normalization"
        offset, scale = spec.output_normalization
        y = g.op("Add", [g.op("Mul", [y, g.const(scale, "scale")]), g.const(offset, "offset")])
    if y == "x" or g.nodes[-1].output[0] != y:
        y = g.op("Identity", [y])
    # the last node writes the graph output "y"
    g.nodes[-1].output[0] = "y"
    graph = helper.make_graph(
        g.nodes, spec.name or "fkb_model",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", int(spec.n_inputs)])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", int(spec.n_outputs)])],
        g.initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION,
                              producer_name="fkb", producer_version="1")
    props = {}
    if spec.name:
        props[METADATA_KEYS["name"]] = spec.name
    if spec.inputs:
        props[METADATA_KEYS["inputs"]] = json.dumps([list(pair) for pair in spec.inputs])
    if spec.outputs:
        props[METADATA_KEYS["outputs"]] = json.dumps([list(pair) for pair in spec.outputs])
    if getattr(spec, "input_statistics", None) is not None:
        from emulators.input_statistics import statistics_to_json

        props[METADATA_KEYS["input_statistics"]] = json.dumps(statistics_to_json(spec.input_statistics))
    if props:
        helper.set_model_props(model, props)
    onnx.checker.check_model(model)
    return model


def write_onnx(spec: ModelSpec, path: PathLike) -> None:
    """Write `spec` as an ONNX file, whole or not at all."""
    path = Path(path)
    if path.suffix.lower() != ".onnx":
        raise ConversionError(f"{path}: an ONNX file must end in .onnx")
    model = spec_to_onnx(spec)
    data = model.SerializeToString()
    try:
        with replacing(path, fsync=True) as tmp:
            tmp.write_bytes(data)
    except NotAFileError as exc:
        raise ConversionError(str(exc)) from None
    except OSError as exc:
        raise ConversionError(f"{path}: cannot write: {exc.strerror or exc}") from None


register_format("ONNX", (".onnx",), write=write_onnx)
