"""ONNX graphs built with ``onnx.helper``, one per operator and pattern the
importer supports, for tests/test_onnx.py (and the table of differences in
docs/pytorch.md: ``python tests/onnx_cases.py``).

``CASES`` maps a name to ``(builder, opsets, expected)``: ``builder(g)`` adds
nodes to a :class:`Graph` and returns the output tensor's name; ``opsets``
the opsets it is built at; ``expected`` the model file's layers, as
``kind`` or ``kind:activation`` strings, or None when not checked.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

N_IN = 6
NEWEST = onnx.defs.onnx_opset_version()


class Graph:
    """A graph under construction: input ``x`` of shape (batch, *shape)."""

    def __init__(self, opset: int, shape: tuple[int, ...] = (N_IN,), seed: int = 0):
        self.opset = opset
        self.shape = shape
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.rng = np.random.default_rng(seed)
        self.count = 0
        self.constant_nodes = False

    def _name(self, what: str) -> str:
        self.count += 1
        return f"{what}_{self.count}"

    def const(self, value, dtype=np.float32) -> str:
        name = self._name("c")
        array = np.asarray(value, dtype=dtype)
        if self.constant_nodes:
            self.nodes.append(helper.make_node("Constant", [], [name], value=numpy_helper.from_array(array, name)))
        else:
            self.inits.append(numpy_helper.from_array(array, name))
        return name

    def ints(self, values) -> str:
        return self.const(values, np.int64)

    def op(self, op_type: str, inputs: list[str], n_out: int = 1, **attrs):
        outs = [self._name(op_type) for _ in range(n_out)]
        self.nodes.append(helper.make_node(op_type, inputs, outs, name=outs[0] + "_node", **attrs))
        return outs[0] if n_out == 1 else outs

    def weights(self, *shape, scale=0.5) -> str:
        return self.const(self.rng.normal(scale=scale, size=shape))

    def dense(self, x: str, n_in: int, n_out: int) -> str:
        return self.op("Gemm", [x, self.weights(n_out, n_in), self.weights(n_out, scale=0.2)], transB=1)

    def axes(self, op_type: str, x: str, axes: list[int], **attrs) -> str:
        """ReduceMean/Squeeze/Unsqueeze with axes as attribute or input, by opset."""
        as_input = {"ReduceMean": 18, "Squeeze": 13, "Unsqueeze": 13}[op_type]
        if self.opset >= as_input:
            return self.op(op_type, [x, self.ints(axes)], **attrs)
        return self.op(op_type, [x], axes=axes, **attrs)

    def model(self, out: str, out_shape=None) -> onnx.ModelProto:
        renamed = False
        for node in self.nodes:
            for i, name in enumerate(node.output):
                if name == out:
                    node.output[i] = "y"
                    renamed = True
            for i, name in enumerate(node.input):
                if name == out:
                    node.input[i] = "y"
        if not renamed:  # the output is the input itself
            self.nodes.append(helper.make_node("Identity", [out], ["y"]))
        graph = helper.make_graph(
            self.nodes, "case",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", *self.shape])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape or ["batch", "outputs"])],
            self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", self.opset)])
        model.ir_version = min(model.ir_version, 10)
        onnx.checker.check_model(model)
        return model


def _unary(op_type: str, **attrs) -> Callable[[Graph], str]:
    def build(g: Graph) -> str:
        return g.op(op_type, [g.dense("x", N_IN, 5)], **attrs)
    return build


def _clip(lo, hi) -> Callable[[Graph], str]:
    def build(g: Graph) -> str:
        h = g.dense("x", N_IN, 5)
        return g.op("Clip", [h, g.const(lo) if lo is not None else "", g.const(hi) if hi is not None else ""])
    return build


# ---- decomposed activations, as exporters write them


def gelu_torchscript(g):
    h = g.dense("x", N_IN, 5)
    erf = g.op("Erf", [g.op("Div", [h, g.const(1.4142135381698608)])])
    return g.op("Mul", [g.op("Mul", [h, g.op("Add", [erf, g.const(1.0)])]), g.const(0.5)])


def gelu_half_first(g):
    h = g.dense("x", N_IN, 5)
    erf = g.op("Erf", [g.op("Mul", [g.const(0.70710678), h])])
    return g.op("Mul", [g.op("Mul", [g.const(0.5), h]), g.op("Add", [g.const(1.0), erf])])


def gelu_tanh_torchscript(g):
    h = g.dense("x", N_IN, 5)
    cube = g.op("Mul", [g.op("Mul", [h, h]), h])
    inner = g.op("Add", [h, g.op("Mul", [cube, g.const(0.044715)])])
    t = g.op("Tanh", [g.op("Mul", [inner, g.const(0.7978845834732056)])])
    return g.op("Mul", [g.op("Mul", [h, g.op("Add", [t, g.const(1.0)])]), g.const(0.5)])


def gelu_tanh_pow(g):
    h = g.dense("x", N_IN, 5)
    inner = g.op("Add", [h, g.op("Mul", [g.const(0.044715), g.op("Pow", [h, g.const(3.0)])])])
    t = g.op("Tanh", [g.op("Mul", [g.const(math.sqrt(2 / math.pi)), inner])])
    return g.op("Mul", [h, g.op("Mul", [g.const(0.5), g.op("Add", [g.const(1.0), t])])])


def silu(g):
    h = g.dense("x", N_IN, 5)
    return g.op("Mul", [h, g.op("Sigmoid", [h])])


def swish_beta(g):  # no activation of the runtime: rescaling, sigmoid, multiply
    h = g.dense("x", N_IN, 5)
    return g.op("Mul", [h, g.op("Sigmoid", [g.op("Mul", [h, g.const(1.7)])])])


def mish_decomposed(g):
    h = g.dense("x", N_IN, 5)
    return g.op("Mul", [h, g.op("Tanh", [g.op("Softplus", [h])])])


def hardswish_decomposed(g):
    h = g.dense("x", N_IN, 5)
    clipped = g.op("Clip", [g.op("Add", [h, g.const(3.0)]), g.const(0.0), g.const(6.0)])
    return g.op("Div", [g.op("Mul", [h, clipped]), g.const(6.0)])


def hardswish_hardsigmoid(g):
    h = g.dense("x", N_IN, 5)
    return g.op("Mul", [h, g.op("HardSigmoid", [h], alpha=1 / 6, beta=0.5)])


def softsign_decomposed(g):
    h = g.dense("x", N_IN, 5)
    return g.op("Div", [h, g.op("Add", [g.op("Abs", [h]), g.const(1.0)])])


def log_sigmoid(g):
    return g.op("Log", [g.op("Sigmoid", [g.dense("x", N_IN, 5)])])


def log_sigmoid_softplus(g):
    h = g.dense("x", N_IN, 5)
    return g.op("Neg", [g.op("Softplus", [g.op("Neg", [h])])])


def tanh_shrink(g):
    h = g.dense("x", N_IN, 5)
    return g.op("Sub", [h, g.op("Tanh", [h])])


def softplus_threshold(beta: float, threshold: float):
    def build(g):  # as torch.onnx.export(dynamo=True) writes nn.Softplus(beta, threshold)
        h = g.dense("x", N_IN, 5)
        scaled = h if beta == 1.0 else g.op("Mul", [h, g.const(beta)])
        soft = g.op("Softplus", [scaled])
        if beta != 1.0:
            soft = g.op("Div", [soft, g.const(beta)])
        return g.op("Where", [g.op("Greater", [scaled, g.const(threshold)]), h, soft])
    return build


def softplus_log_exp(g):
    h = g.dense("x", N_IN, 5)
    return g.op("Log", [g.op("Add", [g.op("Exp", [h]), g.const(1.0)])])


def gaussian(g):
    h = g.dense("x", N_IN, 5)
    return g.op("Exp", [g.op("Neg", [g.op("Mul", [h, h])])])


def step(g):
    h = g.dense("x", N_IN, 5)
    return g.op("Cast", [g.op("Greater", [h, g.const(0.0)])], to=TensorProto.FLOAT)


def squareplus(g):
    h = g.dense("x", N_IN, 5)
    root = g.op("Sqrt", [g.op("Add", [g.op("Mul", [h, h]), g.const(2.5)])])
    return g.op("Mul", [g.op("Add", [h, root]), g.const(0.5)])


# ---- layers


def gemm_options(g):
    w = g.weights(N_IN, 4)  # transB=0: (n_in, n_out)
    c = g.const(g.rng.normal(size=(1, 4)))
    return g.op("Gemm", [g.op("Relu", ["x"]), w, c], alpha=0.5, beta=2.0)


def gemm_no_bias(g):
    return g.op("Gemm", ["x", g.weights(3, N_IN)], transB=1)


def matmul_add(g):
    h = g.op("Add", [g.op("MatMul", ["x", g.weights(N_IN, 5)]), g.weights(5)])
    return g.op("Add", [g.weights(3), g.op("MatMul", [g.op("Tanh", [h]), g.weights(5, 3)])])


def layer_norm(g):
    h = g.dense("x", N_IN, 7)
    return g.op("LayerNormalization", [h, g.const(1 + g.rng.normal(scale=0.2, size=7)), g.weights(7)],
                axis=-1, epsilon=1e-5)


def layer_norm_no_bias(g):
    h = g.dense("x", N_IN, 7)
    return g.op("LayerNormalization", [h, g.const(1 + g.rng.normal(scale=0.2, size=7))], axis=1, epsilon=1e-3)


def layer_norm_decomposed(g, square="Pow"):
    h = g.dense("x", N_IN, 7)
    centered = g.op("Sub", [h, g.axes("ReduceMean", h, [-1])])
    sq = g.op("Pow", [centered, g.const(2.0)]) if square == "Pow" else g.op("Mul", [centered, centered])
    variance = g.axes("ReduceMean", sq, [-1])
    std = g.op("Sqrt", [g.op("Add", [variance, g.const(1e-5)])])
    if square == "Pow":
        normalized = g.op("Div", [centered, std])
    else:
        normalized = g.op("Mul", [centered, g.op("Reciprocal", [std])])
    return g.op("Add", [g.op("Mul", [normalized, g.const(1 + g.rng.normal(scale=0.2, size=7))]), g.weights(7)])


def batch_norm(g):
    h = g.dense("x", N_IN, 5)
    r = g.rng
    return g.op("BatchNormalization", [h, g.const(1 + r.normal(scale=0.3, size=5)), g.weights(5),
                                       g.const(r.normal(size=5)), g.const(r.uniform(0.5, 2.0, size=5))],
                epsilon=1e-3)


def dropout_identity(g):
    h = g.dense("x", N_IN, 5)
    if g.opset >= 12:
        h = g.op("Dropout", [h, g.const(0.3)])
    return g.op("Relu", [g.op("Identity", [h])])


def residual_concat(g):
    h = g.op("Elu", [g.dense("x", N_IN, 5)], alpha=0.7)
    skip = g.op("Add", [g.op("Tanh", [g.dense(h, 5, 5)]), h])
    both = g.op("Concat", [h, skip, "x"], axis=1)
    return g.dense(both, 5 + 5 + N_IN, 3)


def merges(g):
    a = g.dense("x", N_IN, 4)
    b = g.op("Sigmoid", [g.dense("x", N_IN, 4)])
    c = g.op("Sub", [a, b])
    d = g.op("Mul", [c, a])
    e = g.op("Max", [d, b])
    f = g.op("Min", [e, a])
    s = g.op("Sum", [f, a, b])
    return g.op("Mean", [s, c])


def input_output_normalization(g):
    mean, std = g.const(g.rng.normal(size=N_IN) * 100), g.const(g.rng.uniform(0.5, 50, size=N_IN))
    h = g.op("Div", [g.op("Sub", ["x", mean]), std])
    y = g.dense(g.op("Relu", [g.dense(h, N_IN, 8)]), 8, 3)
    return g.op("Add", [g.op("Mul", [y, g.const(g.rng.uniform(1e-8, 1e-6, size=3))]), g.const(g.rng.normal(size=3))])


def constant_arithmetic(g):  # rescaling layers in the middle of the graph
    h = g.dense("x", N_IN, 5)
    h = g.op("Div", [g.op("Sub", [g.const(2.0), h]), g.const(g.rng.uniform(0.5, 2, size=5))])
    h = g.op("Add", [g.op("Mul", [g.const(g.rng.normal(size=(1, 5))), h]), g.const(-0.3)])
    return g.dense(g.op("Neg", [h]), 5, 2)


def reshapes(g):  # x.view(x.size(0), -1), flatten, unsqueeze/squeeze, as TorchScript writes them
    h = g.dense("x", N_IN, 6)
    batch = g.axes("Unsqueeze", g.op("Gather", [g.op("Shape", [h]), g.ints(0)], axis=0), [0])
    h = g.op("Reshape", [h, g.op("Concat", [batch, g.ints([2, 3])], axis=0)])
    h = g.op("Flatten", [h], axis=1)
    h = g.axes("Squeeze", g.axes("Unsqueeze", h, [1]), [1])
    h = g.op("Reshape", [h, g.ints([-1, 6])])
    return g.dense(h, 6, 2)


def rank3_input(g):  # (batch, 2, 3) in, features flattened in C order
    h = g.op("Tanh", ["x"])
    h = g.op("Mul", [h, g.const(g.rng.normal(size=(2, 3)))])
    h = g.op("Reshape", [h, g.ints([0, -1])])
    return g.dense(h, 6, 4)


def select_features(g):  # slices, gathers, transposes and splits of the features: 0/1 dense layers
    t = g.op("Transpose", [g.op("Reshape", ["x", g.ints([-1, 2, 3])])], perm=[0, 2, 1])
    t = g.op("Flatten", [t], axis=1)
    s = g.op("Slice", [t, g.ints([1]), g.ints([5]), g.ints([1])])
    k = g.op("Gather", ["x", g.ints([5, 0, 2])], axis=1)
    if g.opset >= 18:
        a, b = g.op("Split", [k], n_out=2, axis=1, num_outputs=2)
    else:
        a, b = g.op("Split", [k, g.ints([2, 1])], n_out=2, axis=1)
    return g.op("Concat", [s, a, b], axis=1)


def softmax_head(g):
    return g.op("Softmax", [g.dense(g.op("Relu", [g.dense("x", N_IN, 8)]), 8, 4)], axis=-1)


def cast_expand(g):
    h = g.op("Cast", [g.dense("x", N_IN, 4)], to=TensorProto.FLOAT)
    return g.op("Expand", [h, g.ints([1, 4])])


def prelu_scalar(g):
    return g.op("PRelu", [g.dense("x", N_IN, 4), g.const([0.2])])


def prelu_vector(g):
    return g.op("PRelu", [g.dense("x", N_IN, 4), g.const(g.rng.uniform(0, 0.5, size=4))])


def with_constant_nodes(builder):
    def build(g):
        g.constant_nodes = True
        return builder(g)
    return build


ALL = (13, 17, 18, NEWEST)
FROM17 = (17, 18, NEWEST)

CASES: dict[str, tuple[Callable[[Graph], str], tuple[int, ...], list[str] | None]] = {
    # one operator
    "Relu": (_unary("Relu"), ALL, ["dense:relu"]),
    "Sigmoid": (_unary("Sigmoid"), ALL, ["dense:sigmoid"]),
    "Tanh": (_unary("Tanh"), ALL, ["dense:tanh"]),
    "Softplus": (_unary("Softplus"), ALL, ["dense:softplus"]),
    "Softsign": (_unary("Softsign"), ALL, ["dense:softsign"]),
    "Elu": (_unary("Elu", alpha=0.7), ALL, ["dense:elu"]),
    "Selu": (_unary("Selu"), ALL, ["dense:selu"]),
    "Celu": (_unary("Celu", alpha=1.3), ALL, ["dense:celu"]),
    "LeakyRelu": (_unary("LeakyRelu", alpha=0.05), ALL, ["dense:leaky_relu"]),
    "HardSigmoid (torch)": (_unary("HardSigmoid", alpha=1 / 6, beta=0.5), ALL, ["dense:hard_sigmoid"]),
    "HardSigmoid (0.2, 0.5)": (_unary("HardSigmoid"), ALL, ["dense", "rescaling", "activation:hard_sigmoid"]),
    "HardSwish": (_unary("HardSwish"), (14, 17, NEWEST), ["dense:hard_silu"]),
    "Mish": (_unary("Mish"), (18, NEWEST), ["dense:mish"]),
    "Gelu": (_unary("Gelu"), (20, NEWEST), ["dense:gelu"]),
    "Gelu (tanh)": (_unary("Gelu", approximate="tanh"), (20, NEWEST), ["dense:gelu_tanh"]),
    "Exp": (_unary("Exp"), ALL, ["dense:exponential"]),
    "ThresholdedRelu": (_unary("ThresholdedRelu", alpha=0.3), ALL, ["dense", "relu"]),
    "Softmax": (softmax_head, ALL, ["dense:relu", "dense:softmax"]),
    "LogSoftmax": (_unary("LogSoftmax", axis=1), ALL, ["dense:log_softmax"]),
    "PRelu (scalar)": (prelu_scalar, ALL, ["dense", "prelu"]),
    "PRelu (vector)": (prelu_vector, ALL, ["dense", "prelu"]),
    "Clip (0, 6)": (_clip(0.0, 6.0), ALL, ["dense:relu6"]),
    "Clip (-1, 1)": (_clip(-1.0, 1.0), ALL, ["dense:hard_tanh"]),
    "Clip (0, 2.5)": (_clip(0.0, 2.5), ALL, ["dense", "relu"]),
    "Clip (0, none)": (_clip(0.0, None), ALL, ["dense:relu"]),
    "Clip (-0.5, 0.7)": (_clip(-0.5, 0.7), ALL, None),
    "Clip (none, 0.5)": (_clip(None, 0.5), ALL, None),
    "Clip (-2, none)": (_clip(-2.0, None), ALL, None),
    "Gemm (alpha, beta, transB=0)": (gemm_options, ALL, ["activation:relu", "dense"]),
    "Gemm (no bias)": (gemm_no_bias, ALL, ["dense"]),
    "MatMul + Add": (matmul_add, ALL, ["dense:tanh", "dense"]),
    "LayerNormalization": (layer_norm, FROM17, ["dense", "layer_normalization"]),
    "LayerNormalization (no bias)": (layer_norm_no_bias, FROM17, ["dense", "layer_normalization"]),
    "LayerNorm decomposed (Pow, Div)": (layer_norm_decomposed, ALL, ["dense", "layer_normalization"]),
    "LayerNorm decomposed (Mul, Reciprocal)": (lambda g: layer_norm_decomposed(g, "Mul"), ALL,
                                               ["dense", "layer_normalization"]),
    "BatchNormalization": (batch_norm, ALL, ["dense", "batch_normalization"]),
    "Dropout, Identity": (dropout_identity, ALL, ["dense:relu"]),
    "Add skip, Concat": (residual_concat, ALL, ["dense:elu", "dense:tanh", "add", "concatenate", "dense"]),
    "Sub/Mul/Max/Min/Sum/Mean": (merges, ALL, None),
    "input and output normalization": (input_output_normalization, ALL, ["dense:relu", "dense"]),
    "constant Sub/Div/Mul/Add/Neg": (constant_arithmetic, ALL, None),
    "Shape/Gather/Reshape/Flatten/Squeeze": (reshapes, ALL, ["dense", "dense"]),
    "rank-3 input": (rank3_input, ALL, None),
    "Transpose/Slice/Gather/Split features": (select_features, (13, 18, NEWEST), None),
    "Cast, Expand": (cast_expand, ALL, ["dense"]),
    "constants as Constant nodes": (with_constant_nodes(input_output_normalization), ALL, ["dense:relu", "dense"]),
    # decomposed activations
    "GELU as Erf (TorchScript)": (gelu_torchscript, ALL, ["dense:gelu"]),
    "GELU as Erf (0.5 x first)": (gelu_half_first, ALL, ["dense:gelu"]),
    "GELU tanh (TorchScript)": (gelu_tanh_torchscript, ALL, ["dense:gelu_tanh"]),
    "GELU tanh (Pow)": (gelu_tanh_pow, ALL, ["dense:gelu_tanh"]),
    "SiLU as Mul(x, Sigmoid(x))": (silu, ALL, ["dense:silu"]),
    "swish beta (no single layer)": (swish_beta, ALL, None),
    "Mish decomposed": (mish_decomposed, ALL, ["dense:mish"]),
    "HardSwish decomposed": (hardswish_decomposed, ALL, ["dense:hard_silu"]),
    "HardSwish as x HardSigmoid(x)": (hardswish_hardsigmoid, ALL, ["dense:hard_silu"]),
    "softsign decomposed": (softsign_decomposed, ALL, ["dense:softsign"]),
    "log-sigmoid as Log(Sigmoid)": (log_sigmoid, ALL, ["dense:log_sigmoid"]),
    "log-sigmoid as -Softplus(-x)": (log_sigmoid_softplus, ALL, ["dense:log_sigmoid"]),
    "tanh-shrink": (tanh_shrink, ALL, ["dense:tanh_shrink"]),
    "Softplus threshold (Where/Greater)": (softplus_threshold(1.0, 20.0), ALL, ["dense:softplus"]),
    "Softplus beta=2 threshold": (softplus_threshold(2.0, 20.0), ALL, ["dense", "rescaling", "activation:softplus",
                                                                       "rescaling"]),
    "softplus as Log(1 + Exp)": (softplus_log_exp, ALL, ["dense:softplus"]),
    "gaussian": (gaussian, ALL, ["dense:gaussian"]),
    "step as Cast(Greater)": (step, ALL, ["dense:step"]),
    "squareplus": (squareplus, ALL, ["dense:squareplus"]),
}

SHAPES = {"rank-3 input": (2, 3)}


def build(name: str, opset: int) -> onnx.ModelProto:
    builder, _, _ = CASES[name]
    g = Graph(opset, SHAPES.get(name, (N_IN,)), seed=sum(map(ord, name)))
    return g.model(builder(g))


def inputs(model: onnx.ModelProto, n: int = 41, seed: int = 1) -> np.ndarray:
    shape = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim[1:]]
    rng = np.random.default_rng(seed)
    x = rng.normal(scale=2.0, size=(n, *shape)).astype(np.float32)
    if model.graph.node and any(node.op_type == "Sub" and "x" in node.input for node in model.graph.node):
        x = x * 50 + 100  # physical units around a normalization's offsets
    return x


if __name__ == "__main__":  # the table of differences of docs/pytorch.md
    import sys
    import tempfile
    from pathlib import Path

    import onnxruntime as ort

    from emulators.fkb import load
    from emulators.modelfile import write_model_file
    from emulators.onnx_import import onnx_to_spec

    print("| pattern | opsets | layers | max abs difference | max abs output |")
    print("|---|---|---|---|---|")
    for name, (_, opsets, _) in CASES.items():
        worst, top = 0.0, 0.0
        for opset in opsets:
            model = build(name, opset)
            x = inputs(model)
            y_ort = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
            spec = onnx_to_spec(model)
            with tempfile.TemporaryDirectory() as folder:
                write_model_file(spec, Path(folder) / "m.fkb")
                y = load(Path(folder) / "m.fkb").predict(x.reshape(len(x), -1))
            worst = max(worst, float(np.max(np.abs(y - y_ort.reshape(len(x), -1)))))
            top = max(top, float(np.max(np.abs(y_ort))))
        kinds = ", ".join(l.kind + (f" {l.attributes['activation']}" if "activation" in l.attributes else "")
                          for l in spec.layers)
        print(f"| {name} | {', '.join(map(str, opsets))} | {kinds} | {worst:.2g} | {top:.3g} |")
    sys.exit(0)
