"""ONNX -> model file, step 2: interpret the graph (docs/pytorch.md, "What the
importer reads"). Every node whose inputs are all constants is folded with
ONNX's reference implementation; what depends on the graph's one input is a
tensor of shape ``(batch, features...)`` whose features, flattened in C order,
are the model file's vectors. Used by :mod:`emulators.onnx_import`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from emulators.formats import ConversionError, UnsupportedModelError

# onnx is imported inside the functions that use it, so that importing this module does not load it
# (start-up time).


MIN_OPSET = 13
"""The oldest opset of the default domain the importer reads."""

_MAX_FOLDED = 1 << 26  # elements of a constant the importer folds (256 MiB of float32)
_BATCH = (1 << 40) + 17  # stands for the batch size inside folded shape tensors
_REL_TOL = 2e-6  # constants of a recognized pattern: float32 roundings of the exact values


def max_opset() -> int:
    """The newest opset of the default domain the importer reads (the ``onnx`` package's)."""
    return int(onnx.defs.onnx_opset_version())


def _one_line(text: Any) -> str:
    return " ".join(str(text).split())


def _check_operators(model: onnx.ModelProto, source: str) -> None:
    """Refuse the first node of an operator the importer does not know (before
    onnx.checker, whose message for an unknown domain would say less)."""
    for node in model.graph.node:
        label = node.name or (node.output[0] if node.output else "?")
        if node.domain not in ("", "ai.onnx"):
            raise UnsupportedModelError(f"{source}: node '{label}' ({node.domain}::{node.op_type}): operators of "
                                        f"domain '{node.domain}' are not supported")
        if node.op_type not in _FOLDABLE and node.op_type not in _DYNAMIC:
            raise UnsupportedModelError(f"{source}: node '{label}' ({node.op_type}): operator {node.op_type} is not "
                                        "supported (docs/pytorch.md lists the operators fkb imports)")


# --------------------------------------------------------------------------
# The interpreted graph


@dataclass(eq=False)
class _Dyn:
    """A tensor that depends on the model input: shape ``(batch, *shape)``."""

    shape: tuple[int, ...]
    node: "_Node | None" = None  # None: the model input
    boolean: bool = False

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))


@dataclass(eq=False)
class _Node:
    """An operation on tensors that depend on the input (ONNX op names, and
    ``Act``, ``Select`` and ``LayerNorm`` of the importer's own)."""

    op: str
    inputs: list[Any]  # _Dyn, np.ndarray (a constant) or None
    attrs: dict[str, Any]
    name: str
    out: _Dyn = field(default=None)  # type: ignore[assignment]


def _new_node(op: str, inputs: list[Any], attrs: dict[str, Any], name: str, shape: tuple[int, ...]) -> _Node:
    node = _Node(op, inputs, attrs, name)
    node.out = _Dyn(tuple(shape), node)
    return node


_ELEMENTWISE_UNARY = {
    "Relu", "Sigmoid", "Tanh", "Softplus", "Softsign", "Elu", "Selu", "Celu", "LeakyRelu", "HardSigmoid",
    "HardSwish", "Mish", "Gelu", "Exp", "Erf", "Abs", "Neg", "Log", "Sqrt", "Reciprocal", "ThresholdedRelu",
    "Clip", "Act",
}
_ELEMENTWISE_BINARY = {"Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Mean", "Greater", "Less",
                       "GreaterOrEqual", "LessOrEqual", "Where", "PRelu", "Cast"}
_PATTERN_ONLY = {"Erf", "Abs", "Log", "Sqrt", "Reciprocal", "Greater", "Less", "GreaterOrEqual", "LessOrEqual",
                 "Where", "ReduceMean", "Cast"}

# operators folded when all their inputs are constants
_FOLDABLE = {
    "Constant", "Identity", "Cast", "CastLike", "Reshape", "Transpose", "Unsqueeze", "Squeeze", "Concat", "Gather",
    "GatherElements", "Slice", "Shape", "Size", "Add", "Sub", "Mul", "Div", "Neg", "Sqrt", "Pow", "Reciprocal",
    "Abs", "Exp", "Log", "Erf", "Tanh", "Sigmoid", "Max", "Min", "Sum", "Mean", "Equal", "Greater", "Less",
    "GreaterOrEqual", "LessOrEqual", "Where", "Not", "And", "Or", "ConstantOfShape", "Expand", "Range", "Split",
    "Flatten", "MatMul", "Gemm", "Clip", "Relu", "Sign", "Floor", "Ceil", "Round", "ReduceMean", "ReduceSum",
    "ReduceProd", "ReduceMax", "ReduceMin", "Tile", "Dropout", "Softplus", "Softmax", "Mod",
}
_BROADCASTING = {"Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Mean", "Equal", "Greater", "Less",
                 "GreaterOrEqual", "LessOrEqual", "Where", "And", "Or", "Mod", "PRelu"}
# operators on tensors that depend on the input
_DYNAMIC = {
    "Identity", "Dropout", "Cast", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Concat", "Gemm", "MatMul",
    "Shape", "Expand", "Softmax", "LogSoftmax", "LayerNormalization", "BatchNormalization", "ReduceMean",
    "Transpose", "Slice", "Gather", "Split",
    *_ELEMENTWISE_UNARY, *_ELEMENTWISE_BINARY,
} - {"Act"}
_SHAPE_OPS = {"Identity", "Gather", "Slice", "Concat", "Unsqueeze", "Squeeze", "Cast", "Reshape", "Split"}


class _Refusal(Exception):
    """A node the importer cannot map (message: the reason, without the node)."""


def _attributes(node: onnx.NodeProto) -> dict[str, Any]:
    values = {}
    for attribute in node.attribute:
        value = onnx.helper.get_attribute_value(attribute)
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        values[attribute.name] = value
    return values


def _scalar(value: Any) -> float | None:
    """The one value of a constant whose elements are all equal, else None."""
    if not isinstance(value, np.ndarray) or value.size == 0 or value.dtype.kind not in "fiub":
        return None
    flat = value.reshape(-1).astype(np.float64)
    first = flat[0]
    if np.all(flat == first):
        return float(first)
    return None


def _f32(value: float) -> float:
    """A float32 attribute as the shortest decimal that reads back as it
    (0.1 rather than 0.10000000149011612): the model file's text."""
    return float(str(np.float32(value)))


def _close(a: float, b: float, tol: float = _REL_TOL) -> bool:
    if a == b:
        return True
    if not (math.isfinite(a) and math.isfinite(b)):
        return False
    return abs(a - b) <= tol * max(abs(a), abs(b))


class _Interpreter:
    """Walks the ONNX graph once: folds constants, builds :class:`_Node`s."""

    def __init__(self, model: onnx.ModelProto, source: str):
        self.model = model
        self.source = source
        self.opset = 0
        for entry in model.opset_import:
            if entry.domain in ("", "ai.onnx"):
                self.opset = int(entry.version)
        self.values: dict[str, Any] = {}
        self.static_batch: int | None = None
        self.nodes: list[_Node] = []

    # ---- errors
    def refuse(self, node: onnx.NodeProto | None, reason: str) -> UnsupportedModelError:
        if node is None:
            return UnsupportedModelError(f"{self.source}: {reason}")
        label = node.name or (node.output[0] if node.output else "?")
        op = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}::{node.op_type}"
        return UnsupportedModelError(f"{self.source}: node '{label}' ({op}): {reason}")

    # ---- the graph's interface
    def graph_input(self) -> _Dyn:
        graph = self.model.graph
        initializers = {t.name for t in graph.initializer}
        inputs = [v for v in graph.input if v.name not in initializers]
        if len(inputs) != 1:
            names = ", ".join(v.name for v in inputs) or "none"
            raise self.refuse(None, f"the graph has {len(inputs)} inputs ({names}); only one input "
                                    "(batch, features) is supported")
        if len(graph.output) != 1:
            names = ", ".join(v.name for v in graph.output)
            raise self.refuse(None, f"the graph has {len(graph.output)} outputs ({names}); only one is supported")
        value = inputs[0]
        kind = value.type.WhichOneof("value")
        if kind != "tensor_type":
            raise self.refuse(None, f"input '{value.name}' is not a tensor")
        tensor_type = value.type.tensor_type
        if tensor_type.elem_type != onnx.TensorProto.FLOAT:
            name = onnx.TensorProto.DataType.Name(tensor_type.elem_type) if tensor_type.elem_type in \
                onnx.TensorProto.DataType.values() else str(tensor_type.elem_type)
            raise self.refuse(None, f"input '{value.name}' has element type {name}; only float32 is supported")
        if not tensor_type.HasField("shape"):
            raise self.refuse(None, f"input '{value.name}' has no shape: give it (batch, features)")
        dims = list(tensor_type.shape.dim)
        if len(dims) < 2:
            raise self.refuse(None, f"input '{value.name}' has rank {len(dims)}; it needs a batch axis and "
                                    "features: (batch, features)")
        if dims[0].HasField("dim_value"):
            self.static_batch = int(dims[0].dim_value)
        shape = []
        for axis, dim in enumerate(dims[1:], start=1):
            if not dim.HasField("dim_value") or dim.dim_value < 1:
                what = f"'{dim.dim_param}'" if dim.HasField("dim_param") else "unknown"
                raise self.refuse(None, f"input '{value.name}' axis {axis} is dynamic ({what}); only the batch "
                                        "axis (0) may be")
            shape.append(int(dim.dim_value))
        self.input_name = value.name
        return _Dyn(tuple(shape), None)

    # ---- walking
    def run(self) -> _Dyn:
        graph = self.model.graph
        if self.opset < MIN_OPSET:
            raise self.refuse(None, f"opset {self.opset} is older than {MIN_OPSET}, the oldest supported; "
                                    f"export again with opset_version={MIN_OPSET} or newer")
        if self.opset > max_opset():
            raise self.refuse(None, f"opset {self.opset} is newer than {max_opset()}, the newest the onnx "
                                    "package knows")
        _check_operators(self.model, self.source)
        x = self.graph_input()
        for tensor in graph.initializer:
            try:
                self.values[tensor.name] = numpy_helper.to_array(tensor)
            except Exception as exc:  # noqa: BLE001 - malformed tensor data
                raise self.refuse(None, f"initializer '{tensor.name}' cannot be read: {_one_line(exc)[:200]}") from None
        self.values[self.input_name] = x
        for node in graph.node:
            self.visit(node)
        name = graph.output[0].name
        if name not in self.values:
            raise self.refuse(None, f"the graph output '{name}' is produced by no node")
        out = self.values[name]
        if not isinstance(out, _Dyn):
            raise self.refuse(None, f"the graph output '{name}' does not depend on the input")
        if out.boolean:
            raise self.refuse(None, f"the graph output '{name}' is boolean, not float32")
        return out

    def visit(self, node: onnx.NodeProto) -> None:
        inputs = []
        for name in node.input:
            if not name:
                inputs.append(None)
            elif name in self.values:
                if isinstance(self.values[name], _DroppedMask):
                    raise self.refuse(node, f"uses the mask '{name}' of a Dropout (training only)")
                inputs.append(self.values[name])
            else:
                raise self.refuse(node, f"uses '{name}' before any node produces it")
        try:
            attrs = _attributes(node)
            if any(isinstance(v, _Dyn) for v in inputs):
                outputs = self.dynamic(node, inputs, attrs)
            else:
                outputs = self.fold(node, inputs, attrs)
        except _Refusal as exc:
            raise self.refuse(node, str(exc)) from None
        except ConversionError:
            raise
        except Exception as exc:  # noqa: BLE001 - a malformed node (a corrupt file): one line, no traceback
            raise ConversionError(f"{self.source}: node '{node.name or node.op_type}' ({node.op_type}) is malformed: "
                                  f"{type(exc).__name__}: {_one_line(exc)[:200]}") from None
        for name, value in zip(node.output, outputs):
            if name:
                self.values[name] = value

    # ---- constants
    def fold(self, node: onnx.NodeProto, inputs: list[Any], attrs: dict[str, Any]) -> list[Any]:
        op = node.op_type
        if op not in _FOLDABLE:
            raise self.refuse(node, f"operator {op} on constants only is not supported")
        if op == "Constant":
            for key in ("value", "value_float", "value_floats", "value_int", "value_ints"):
                if key in attrs:
                    value = attrs[key]
                    if isinstance(value, onnx.TensorProto):
                        return [numpy_helper.to_array(value)]
                    dtype = np.float32 if key.startswith("value_float") else np.int64
                    return [np.array(value, dtype=dtype)]
            raise self.refuse(node, "a Constant of this kind (sparse, string) is not supported")
        arrays = [v for v in inputs if v is not None]
        holds_batch = any(isinstance(v, np.ndarray) and v.dtype.kind in "iu" and np.any(v == _BATCH) for v in arrays)
        if holds_batch and op not in _SHAPE_OPS:
            raise self.refuse(node, "computes with the batch size; only the features may be reshaped")
        if op == "Dropout":
            return [inputs[0], None]
        self._check_fold_size(node, inputs, attrs)
        try:
            from onnx.reference import ReferenceEvaluator

            evaluator = ReferenceEvaluator(node, opsets={"": self.opset})
            feeds = {name: value for name, value in zip(node.input, inputs) if name}
            results = evaluator.run(None, feeds)
        except Exception as exc:  # noqa: BLE001 - the reference raises many types for bad graphs
            raise self.refuse(node, f"cannot fold it on its constant inputs: {_one_line(exc)[:200]}") from None
        return [np.asarray(r) for r in results]

    def _check_fold_size(self, node: onnx.NodeProto, inputs: list[Any], attrs: dict[str, Any]) -> None:
        op = node.op_type
        size = None
        try:
            if op == "ConstantOfShape" and inputs[0] is not None:
                size = int(np.prod(np.asarray(inputs[0], dtype=np.float64)))
            elif op == "Expand":
                size = int(np.prod(np.broadcast_shapes(inputs[0].shape, tuple(int(d) for d in inputs[1]))))
            elif op == "Tile":
                size = int(inputs[0].size * np.prod(np.asarray(inputs[1], dtype=np.float64)))
            elif op == "Range":
                start, limit, delta = (float(np.asarray(v).reshape(-1)[0]) for v in inputs[:3])
                size = int(math.ceil((limit - start) / delta)) if delta != 0 else _MAX_FOLDED + 1
            elif op in _BROADCASTING:
                size = int(np.prod(np.broadcast_shapes(*(np.shape(v) for v in inputs if v is not None)),
                                   dtype=np.float64))
            elif op in ("MatMul", "Gemm") and len(inputs) >= 2:
                a, b = np.shape(inputs[0]), np.shape(inputs[1])
                size = int(np.prod(a[:-1], dtype=np.float64) * (b[-1] if b else 1)) + (
                    int(np.prod(a, dtype=np.float64)) if op == "Gemm" else 0)
        except (ValueError, TypeError, IndexError, OverflowError):
            raise self.refuse(node, "malformed constant inputs") from None
        if size is not None and size > _MAX_FOLDED:
            raise self.refuse(node, f"would make a constant of {size} elements")

    # ---- tensors that depend on the input
    def const_input(self, inputs: list[Any], index: int, what: str) -> np.ndarray | None:
        value = inputs[index] if index < len(inputs) else None
        if isinstance(value, _Dyn):
            raise _Refusal(f"its {what} depends on the input; only a constant is supported")
        return value

    def feature_vector(self, value: np.ndarray, x: _Dyn, what: str) -> np.ndarray:
        """A constant that broadcasts against ``x`` as a float32 vector over x's flattened features."""
        value = np.asarray(value)
        if value.dtype.kind not in "fiub":
            raise _Refusal(f"its {what} is not numeric")
        rank = len(x.shape) + 1
        if value.ndim > rank:
            raise _Refusal(f"its {what} of shape {value.shape} has more axes than the tensor (batch, {x.shape})")
        if value.ndim == rank and value.shape[0] != 1:
            raise _Refusal(f"its {what} of shape {value.shape} varies along the batch axis")
        try:
            out = np.broadcast_shapes(value.shape, (1, *x.shape))
        except ValueError:
            raise _Refusal(f"its {what} of shape {value.shape} does not broadcast against (batch, "
                           f"{', '.join(map(str, x.shape))})") from None
        if tuple(out[1:]) != tuple(x.shape):
            raise _Refusal(f"its {what} of shape {value.shape} broadcasts the features {x.shape} to {out[1:]}")
        flat = np.broadcast_to(value, (1, *x.shape)).reshape(-1)
        return np.ascontiguousarray(flat, dtype=np.float32)

    def emit(self, op: str, inputs: list[Any], attrs: dict[str, Any], node: onnx.NodeProto,
             shape: tuple[int, ...], boolean: bool = False) -> _Dyn:
        ir = _new_node(op, inputs, attrs, node.name or (node.output[0] if node.output else op), shape)
        ir.out.boolean = boolean
        self.nodes.append(ir)
        return ir.out

    def dynamic(self, node: onnx.NodeProto, inputs: list[Any], attrs: dict[str, Any]) -> list[Any]:
        op = node.op_type
        if op not in _DYNAMIC:
            raise _Refusal(f"operator {op} on a tensor that depends on the input is not supported")
        dyns = [v for v in inputs if isinstance(v, _Dyn)]
        if any(v.boolean for v in dyns) and op not in ("Where", "Cast", "Identity"):
            raise _Refusal("takes a boolean tensor")
        x = inputs[0]
        handler = getattr(self, f"op_{op}", None)
        if handler is not None:
            return handler(node, inputs, attrs)
        if op in _ELEMENTWISE_UNARY:
            if not isinstance(x, _Dyn):
                raise _Refusal("its first input is a constant")
            extra = [self.const_input(inputs, i, "parameter") for i in range(1, len(inputs))]
            return [self.emit(op, [x, *extra], attrs, node, x.shape)]
        if op in _ELEMENTWISE_BINARY:
            return [self.binary(node, inputs, attrs)]
        raise _Refusal(f"operator {op} on a tensor that depends on the input is not supported")  # pragma: no cover

    def binary(self, node: onnx.NodeProto, inputs: list[Any], attrs: dict[str, Any]) -> _Dyn:
        op = node.op_type
        dyns = [v for v in inputs if isinstance(v, _Dyn)]
        wide = [v for v in dyns if v.size != 1]  # a single feature (a mean) broadcasts, for the patterns
        shape = wide[0].shape if wide else dyns[0].shape
        for v in dyns:
            if v.shape != shape and v.size != 1:
                raise _Refusal(f"combines tensors of shapes (batch, {v.shape}) and (batch, {shape}); "
                               "broadcasting between tensors that depend on the input is not supported")
        checked = []
        for v in inputs:
            if v is None or isinstance(v, _Dyn):
                checked.append(v)
            else:
                checked.append(v if op in ("Where",) and v.dtype == np.bool_ else self._broadcast_const(v, dyns[0]))
        boolean = op in ("Greater", "Less", "GreaterOrEqual", "LessOrEqual")
        return self.emit(op, checked, attrs, node, shape, boolean=boolean)

    def _broadcast_const(self, value: np.ndarray, x: _Dyn) -> np.ndarray:
        """A constant operand, kept as given when all its elements are equal
        (for the patterns), else checked to broadcast over the features."""
        value = np.asarray(value)
        if value.ndim > len(x.shape) + 1 or (value.ndim == len(x.shape) + 1 and value.shape[0] != 1):
            self.feature_vector(value, x, "constant operand")  # raises with the reason
        if _scalar(value) is not None:
            return value.reshape(-1)[:1].reshape(())
        return self.feature_vector(value, x, "constant operand").reshape(x.shape)

    # -- identities
    def op_Identity(self, node, inputs, attrs):
        return [inputs[0]]

    def op_Dropout(self, node, inputs, attrs):
        training = self.const_input(inputs, 2, "training_mode")
        if training is not None and bool(np.asarray(training).reshape(-1)[0]):
            raise _Refusal("runs in training mode")
        if len(node.output) > 1 and node.output[1]:
            return [inputs[0], _DroppedMask()]
        return [inputs[0]]

    def op_Cast(self, node, inputs, attrs):
        x = inputs[0]
        to = attrs.get("to")
        if to != onnx.TensorProto.FLOAT:
            raise _Refusal(f"casts to {onnx.TensorProto.DataType.Name(to) if to in onnx.TensorProto.DataType.values() else to}; only float32 is supported")
        if x.boolean:
            return [self.emit("Cast", [x], attrs, node, x.shape)]
        return [x]

    def op_Expand(self, node, inputs, attrs):
        x, shape = inputs[0], self.const_input(inputs, 1, "shape")
        target = [int(d) for d in np.asarray(shape).reshape(-1)]
        full = (_BATCH, *x.shape)
        if len(target) > len(full):
            raise _Refusal("adds axes before the batch axis")
        try:
            padded = [1] * (len(full) - len(target)) + target
            result = [a if b in (1, _BATCH) or b == a else None for a, b in zip(full, padded)]
        except TypeError:
            raise _Refusal("malformed shape") from None
        if None in result or (self.static_batch is None and padded[0] not in (1, _BATCH)):
            raise _Refusal(f"expands (batch, {x.shape}) to {target}: only an expansion that changes nothing is supported")
        return [x]

    # -- shapes
    def op_Shape(self, node, inputs, attrs):
        x = inputs[0]
        full = np.array([_BATCH, *x.shape], dtype=np.int64)
        start = attrs.get("start", 0)
        end = attrs.get("end", None)
        return [full[start:end]]

    def _reshaped(self, x: _Dyn, target: list[int], allowzero: bool) -> tuple[int, ...]:
        full = [_BATCH, *x.shape]
        dims = []
        for i, d in enumerate(target):
            if d == 0 and not allowzero:
                if i >= len(full):
                    raise _Refusal(f"shape {target} copies an axis the tensor does not have")
                d = full[i]
            dims.append(d)
        if not dims:
            raise _Refusal("reshapes to a scalar")
        first, rest = dims[0], dims[1:]
        n = x.size
        if any(d == _BATCH for d in rest) or any(d < -1 or d == 0 for d in rest):
            raise _Refusal(f"reshapes (batch, {x.shape}) to {self._show(target)}: it touches the sample axis")
        if rest.count(-1) > 1 or (first == -1 and -1 in rest):
            raise _Refusal(f"reshapes to {self._show(target)} with more than one -1")
        known = int(np.prod([d for d in rest if d != -1], dtype=np.int64)) if rest else 1
        if first == _BATCH or (self.static_batch is not None and first == self.static_batch) or first == -1:
            if -1 in rest:
                if known == 0 or n % known:
                    raise _Refusal(f"reshapes {n} features to {self._show(target)}")
                rest = [n // known if d == -1 else d for d in rest]
            elif known != n:
                raise _Refusal(f"reshapes (batch, {x.shape}) to {self._show(target)}: it touches the sample axis")
            return tuple(int(d) for d in rest)
        raise _Refusal(f"reshapes (batch, {x.shape}) to {self._show(target)}: it touches the sample axis")

    @staticmethod
    def _show(target: list[int]) -> str:
        return "[" + ", ".join("batch" if d == _BATCH else str(d) for d in target) + "]"

    def op_Reshape(self, node, inputs, attrs):
        x, shape = inputs[0], self.const_input(inputs, 1, "shape")
        if shape is None:
            raise _Refusal("has no shape input")
        target = [int(d) for d in np.asarray(shape).reshape(-1)]
        return [self._alias(x, self._reshaped(x, target, bool(attrs.get("allowzero", 0))))]

    def _alias(self, x: _Dyn, shape: tuple[int, ...]) -> _Dyn:
        """x with other feature dimensions (the flattened features are the same)."""
        if tuple(shape) == x.shape:
            return x
        node = _new_node("Reshape", [x], {}, "reshape", shape)
        self.nodes.append(node)
        return node.out

    def op_Flatten(self, node, inputs, attrs):
        x = inputs[0]
        rank = len(x.shape) + 1
        axis = attrs.get("axis", 1)
        axis = axis + rank if axis < 0 else axis
        if axis < 1 or int(np.prod(x.shape[:axis - 1], dtype=np.int64)) != 1:
            raise _Refusal(f"Flatten(axis={attrs.get('axis', 1)}) of (batch, {x.shape}) touches the sample axis")
        return [self._alias(x, (x.size,))]

    def _axes(self, node, inputs, attrs, rank: int) -> list[int] | None:
        axes = attrs.get("axes")
        if axes is None and len(inputs) > 1 and inputs[1] is not None:
            axes = [int(a) for a in np.asarray(self.const_input(inputs, 1, "axes")).reshape(-1)]
        if axes is None:
            return None
        return [int(a) + rank if int(a) < 0 else int(a) for a in axes]

    def op_Unsqueeze(self, node, inputs, attrs):
        x = inputs[0]
        rank = len(x.shape) + 1
        raw = attrs.get("axes")
        if raw is None and len(inputs) > 1 and inputs[1] is not None:
            raw = [int(a) for a in np.asarray(self.const_input(inputs, 1, "axes")).reshape(-1)]
        if not raw:
            raise _Refusal("has no axes")
        out_rank = rank + len(raw)
        axes = [int(a) + out_rank if int(a) < 0 else int(a) for a in raw]
        if 0 in axes:
            raise _Refusal("inserts an axis before the batch axis")
        shape = [_BATCH, *x.shape]
        for a in sorted(axes):
            if a > len(shape):
                raise _Refusal(f"axis {a} out of range")
            shape.insert(a, 1)
        return [self._alias(x, tuple(shape[1:]))]

    def op_Squeeze(self, node, inputs, attrs):
        x = inputs[0]
        rank = len(x.shape) + 1
        axes = self._axes(node, inputs, attrs, rank)
        if axes is None:
            raise _Refusal("Squeeze without axes would also squeeze a batch of one sample; give the axes")
        if 0 in axes:
            raise _Refusal("squeezes the batch axis")
        if any(a >= rank or x.shape[a - 1] != 1 for a in axes):
            raise _Refusal(f"squeezes axes {axes} of (batch, {x.shape}) that are not of size 1")
        return [self._alias(x, tuple(d for i, d in enumerate(x.shape, start=1) if i not in axes))]

    # -- selections of features: a dense layer of zeros and ones
    def _select(self, node, x: _Dyn, index: np.ndarray, shape: tuple[int, ...]) -> _Dyn:
        index = np.asarray(index, dtype=np.int64).reshape(-1)
        if index.size == x.size and np.array_equal(index, np.arange(x.size)):
            return self._alias(x, shape)
        return self.emit("Select", [x], {"index": index}, node, shape)

    def op_Transpose(self, node, inputs, attrs):
        x = inputs[0]
        rank = len(x.shape) + 1
        perm = list(attrs.get("perm", list(range(rank))[::-1]))
        if perm[0] != 0:
            raise _Refusal(f"Transpose(perm={perm}) moves the batch axis")
        positions = np.arange(x.size).reshape(x.shape)
        moved = np.transpose(positions, [p - 1 for p in perm[1:]])
        return [self._select(node, x, moved, moved.shape)]

    def op_Slice(self, node, inputs, attrs):
        x = inputs[0]
        starts, ends = (np.asarray(self.const_input(inputs, i, n)).reshape(-1) for i, n in ((1, "starts"), (2, "ends")))
        rank = len(x.shape) + 1
        axes = inputs[3] if len(inputs) > 3 and inputs[3] is not None else np.arange(len(starts))
        axes = [int(a) + rank if int(a) < 0 else int(a) for a in np.asarray(self.const_input([axes], 0, "axes")).reshape(-1)]
        steps = inputs[4] if len(inputs) > 4 and inputs[4] is not None else np.ones(len(starts), dtype=np.int64)
        steps = np.asarray(self.const_input([steps], 0, "steps")).reshape(-1)
        positions = np.arange(x.size).reshape(x.shape)
        index = [slice(None)] * len(x.shape)
        for a, s, e, k in zip(axes, starts, ends, steps):
            if a == 0:
                if int(s) == 0 and int(e) >= _BATCH and int(k) == 1:
                    continue
                raise _Refusal("slices the batch axis")
            index[a - 1] = slice(int(s), int(e), int(k))
        picked = positions[tuple(index)]
        if picked.size == 0:
            raise _Refusal("selects no feature")
        return [self._select(node, x, picked, picked.shape)]

    def op_Gather(self, node, inputs, attrs):
        x, indices = inputs[0], self.const_input(inputs, 1, "indices")
        rank = len(x.shape) + 1
        axis = attrs.get("axis", 0)
        axis = axis + rank if axis < 0 else axis
        if axis == 0:
            raise _Refusal("gathers along the batch axis")
        positions = np.arange(x.size).reshape(x.shape)
        try:
            picked = np.take(positions, np.asarray(indices, dtype=np.int64), axis=axis - 1, mode="raise")
        except (IndexError, ValueError):
            raise _Refusal("indices out of range") from None
        if picked.size == 0:
            raise _Refusal("selects no feature")
        return [self._select(node, x, picked, picked.shape)]

    def op_Split(self, node, inputs, attrs):
        x = inputs[0]
        rank = len(x.shape) + 1
        axis = attrs.get("axis", 0)
        axis = axis + rank if axis < 0 else axis
        if axis == 0:
            raise _Refusal("splits the batch axis")
        length = x.shape[axis - 1]
        split = attrs.get("split")
        if split is None and len(inputs) > 1 and inputs[1] is not None:
            split = [int(s) for s in np.asarray(self.const_input(inputs, 1, "split")).reshape(-1)]
        n = len(node.output)
        if split is None:
            parts = attrs.get("num_outputs", n)
            size = -(-length // parts)
            split = [min(size, length - i * size) for i in range(parts)]
        if sum(split) != length or any(s < 0 for s in split):
            raise _Refusal(f"splits {length} features into {split}")
        positions = np.arange(x.size).reshape(x.shape)
        outputs, start = [], 0
        for s in split:
            picked = np.take(positions, np.arange(start, start + s), axis=axis - 1)
            start += s
            outputs.append(self._select(node, x, picked, picked.shape) if s else None)
        return outputs

    def op_Concat(self, node, inputs, attrs):
        if any(v is not None and not isinstance(v, _Dyn) for v in inputs):
            raise _Refusal("concatenates a constant with tensors that depend on the input")
        parts = [v for v in inputs if v is not None and v.size > 0]
        rank = len(parts[0].shape) + 1
        axis = attrs.get("axis")
        axis = axis + rank if axis < 0 else axis
        if any(len(v.shape) + 1 != rank for v in parts):
            raise _Refusal("concatenates tensors of different ranks")
        if axis == 0:
            raise _Refusal("concatenates along the batch axis")
        if axis != 1:
            if any(v.shape[:axis - 1] != parts[0].shape[:axis - 1] or int(np.prod(v.shape[:axis - 1])) != 1 for v in parts):
                raise _Refusal(f"concatenates along axis {axis}, which interleaves the flattened features; only "
                               "axis 1 (or a later axis after axes of size 1) is supported")
        for v in parts:
            if v.shape[:axis - 1] + v.shape[axis:] != parts[0].shape[:axis - 1] + parts[0].shape[axis:]:
                raise _Refusal("concatenates tensors whose other axes differ")
        shape = list(parts[0].shape)
        shape[axis - 1] = sum(v.shape[axis - 1] for v in parts)
        if len(parts) == 1:
            return [self._alias(parts[0], tuple(shape))]
        return [self.emit("Concat", parts, {}, node, tuple(shape))]

    # -- dense
    def _dense(self, node, x: _Dyn, weight: np.ndarray, bias: np.ndarray | None) -> _Dyn:
        if len(x.shape) != 1:
            raise _Refusal(f"multiplies a tensor of shape (batch, {x.shape}); only (batch, features) is supported "
                           "(flatten it first)")
        if weight.ndim != 2 or weight.shape[0] != x.shape[0]:
            raise _Refusal(f"weight of shape {weight.shape} does not take {x.shape[0]} features")
        kernel = np.ascontiguousarray(weight.T, dtype=np.float32)
        n_out = kernel.shape[0]
        attrs = {"kernel": kernel}
        if bias is not None:
            b = np.asarray(bias)
            if b.ndim == 2 and b.shape[0] != 1:
                raise _Refusal(f"bias of shape {b.shape} varies along the batch axis")
            try:
                attrs["bias"] = np.ascontiguousarray(np.broadcast_to(b, (1, n_out)).reshape(n_out), dtype=np.float32)
            except ValueError:
                raise _Refusal(f"bias of shape {b.shape} does not fit {n_out} outputs") from None
        return self.emit("Dense", [x], attrs, node, (n_out,))

    def op_Gemm(self, node, inputs, attrs):
        a, b = inputs[0], inputs[1]
        if not isinstance(a, _Dyn) or isinstance(b, _Dyn):
            raise _Refusal("only Gemm(x, constant weight) is supported: its weight depends on the input")
        if attrs.get("transA", 0):
            raise _Refusal("transA=1 would transpose the batch axis")
        if np.ndim(b) != 2:
            raise _Refusal(f"weight of rank {np.ndim(b)}")
        alpha, beta = float(attrs.get("alpha", 1.0)), float(attrs.get("beta", 1.0))
        weight32 = np.asarray(b, dtype=np.float32)
        weight32 = weight32.T if attrs.get("transB", 0) else weight32
        if alpha != 1.0:
            weight32 = (weight32 * np.float32(alpha)).astype(np.float32)
        c = self.const_input(inputs, 2, "bias") if len(inputs) > 2 else None
        if c is not None and beta != 1.0:
            c = (np.asarray(c, dtype=np.float32) * np.float32(beta)).astype(np.float32)
        return [self._dense(node, a, weight32, c)]

    def op_MatMul(self, node, inputs, attrs):
        a, b = inputs
        if not isinstance(a, _Dyn) or isinstance(b, _Dyn):
            raise _Refusal("only MatMul(x, constant weight) is supported")
        weight = np.asarray(b)
        if weight.ndim != 2:
            raise _Refusal(f"weight of rank {weight.ndim}; only a matrix is supported")
        return [self._dense(node, a, weight.astype(np.float32), None)]

    # -- normalizations, softmax
    def _last_axis(self, x: _Dyn, axis: int, what: str) -> None:
        rank = len(x.shape) + 1
        axis = axis + rank if axis < 0 else axis
        if len(x.shape) != 1 or axis != 1:
            if axis >= 1 and int(np.prod(x.shape[:axis - 1], dtype=np.int64)) == 1 and axis == rank - 1:
                return
            raise _Refusal(f"{what} over axis {axis} of (batch, {x.shape}); only over all the features is supported")

    def op_Softmax(self, node, inputs, attrs):
        x = inputs[0]
        self._last_axis(x, attrs.get("axis", -1), "softmax")
        return [self.emit("Softmax", [x], {}, node, x.shape)]

    def op_LogSoftmax(self, node, inputs, attrs):
        x = inputs[0]
        self._last_axis(x, attrs.get("axis", -1), "log-softmax")
        return [self.emit("LogSoftmax", [x], {}, node, x.shape)]

    def op_LayerNormalization(self, node, inputs, attrs):
        x = inputs[0]
        rank = len(x.shape) + 1
        axis = attrs.get("axis", -1)
        axis = axis + rank if axis < 0 else axis
        if axis != 1 and not (int(np.prod(x.shape[:axis - 1], dtype=np.int64)) == 1 and axis >= 1):
            raise _Refusal(f"normalizes over axes {axis}.. of (batch, {x.shape}); only over all the features is supported")
        if any(name for name in node.output[1:]):
            raise _Refusal("its mean and inverse standard deviation outputs are used (training only)")
        scale = self.const_input(inputs, 1, "scale")
        bias = self.const_input(inputs, 2, "bias")
        gamma = self.feature_vector(scale, x, "scale") if scale is not None else None
        beta = self.feature_vector(bias, x, "bias") if bias is not None else None
        return [self.emit("LayerNorm", [x], {"gamma": gamma, "beta": beta, "epsilon": float(attrs.get("epsilon", 1e-5))},
                          node, x.shape)]

    def op_BatchNormalization(self, node, inputs, attrs):
        x = inputs[0]
        if attrs.get("training_mode", 0):
            raise _Refusal("runs in training mode (training_mode=1)")
        if any(name for name in node.output[1:]):
            raise _Refusal("its running statistics outputs are used (training only)")
        params = []
        for i, what in ((1, "scale"), (2, "bias"), (3, "mean"), (4, "variance")):
            value = self.const_input(inputs, i, what)
            if value is None:
                raise _Refusal(f"has no {what}")
            value = np.asarray(value, dtype=np.float32).reshape(-1)
            channels = x.shape[0]
            if value.size != channels:
                raise _Refusal(f"{what} has {value.size} values for {channels} channels")
            params.append(np.repeat(value, int(np.prod(x.shape[1:], dtype=np.int64))))
        gamma, beta, mean, variance = params
        return [self.emit("BatchNorm", [x], {"gamma": gamma, "beta": beta, "mean": mean, "variance": variance,
                                             "epsilon": float(attrs.get("epsilon", 1e-5))}, node, x.shape)]

    def op_ReduceMean(self, node, inputs, attrs):
        x = inputs[0]
        rank = len(x.shape) + 1
        axes = self._axes(node, inputs, attrs, rank)
        if axes is None or sorted(axes) != [1] or len(x.shape) != 1 or not attrs.get("keepdims", 1):
            raise _Refusal("only a mean over the features (keepdims), as in a layer normalization, is supported")
        return [self.emit("ReduceMean", [x], {}, node, (1,))]

    def op_Clip(self, node, inputs, attrs):
        x = inputs[0]
        lo = self.const_input(inputs, 1, "min")
        hi = self.const_input(inputs, 2, "max")
        lo = attrs.get("min", -math.inf) if lo is None and self.opset < 11 else lo
        bounds = []
        for value, default in ((lo, -math.inf), (hi, math.inf)):
            if value is None:
                bounds.append(default)
                continue
            s = _scalar(np.asarray(value))
            if s is None:
                raise _Refusal("its bounds vary over the features; only scalar bounds are supported")
            bounds.append(s)
        return [self.emit("Clip", [x], {"min": bounds[0], "max": bounds[1]}, node, x.shape)]

    def op_PRelu(self, node, inputs, attrs):
        x = inputs[0]
        slope = self.const_input(inputs, 1, "slope")
        return [self.emit("PRelu", [x], {"slope": self.feature_vector(slope, x, "slope")}, node, x.shape)]

    def op_Where(self, node, inputs, attrs):
        condition = inputs[0]
        if not isinstance(condition, _Dyn):
            raise _Refusal("a condition that does not depend on the input is not supported")
        return [self.binary(node, inputs, attrs)]


class _DroppedMask:
    """The mask output of a Dropout: any use of it is refused."""
