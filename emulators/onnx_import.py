"""ONNX -> model file: read an ONNX network (from PyTorch's ``torch.onnx.export``,
either exporter, or any other tool) into a :class:`~emulators.modelfile.ModelSpec`
that the Fortran runtime runs, natively, without an ONNX runtime.

The importer interprets the graph in four steps (docs/pytorch.md, "What the
importer reads"):

1. **Load and check.** The protobuf is parsed with the ``onnx`` package;
   weights in external files (the ``.onnx.data`` of ``dynamo=True``) are read
   from beside the model, each reference checked (relative, inside the
   model's folder, within the file); local functions are inlined;
   ``onnx.checker`` validates the graph. Opsets 13 through the newest the
   ``onnx`` package knows are read.
2. **Interpret.** Every node whose inputs are all constants (initializers,
   ``Constant`` nodes, shapes) is folded with ONNX's reference
   implementation. What depends on the graph's one input is a tensor of
   shape ``(batch, features...)``: the batch axis is never touched (a
   Reshape, Flatten, Squeeze or Unsqueeze may only reshape the features),
   and its features, flattened in C order, are the model file's vectors.
3. **Recognize.** Subgraphs that exporters emit for one function are
   matched back to one of the runtime's layers where they compute it
   exactly: GELU as ``Erf``/``Mul``/``Add`` (and its tanh form), SiLU as
   ``Mul(x, Sigmoid(x))``, Mish, HardSwish, softsign, log-sigmoid,
   tanh-shrink, Softplus with PyTorch's threshold (``Where``/``Greater``),
   layer normalization as ``ReduceMean``/``Pow``/``Sqrt``. An elementwise
   expression is compared symbolically (a polynomial in the functions of
   the input, constants to 2e-6 relative), not sampled.
4. **Lower.** Gemm and MatMul (+ Add) become ``dense`` layers (with the
   activation that follows them), LayerNormalization/BatchNormalization
   (inference) their layers, Add/Sub/Mul/Max/Min/Sum/Mean of two tensors the
   merges, Concat ``concatenate``, constant Add/Sub/Mul/Div ``rescaling``
   (or, at the start and the end of the graph, the model file's input and
   output normalization), Dropout and Identity nothing.

Anything else is refused with one line naming the operator and its node
(:class:`~emulators.formats.UnsupportedModelError`); an unreadable file
with one line too (:class:`~emulators.formats.ConversionError`).

Names and units of the inputs and outputs come from the model's
``metadata_props`` (:data:`METADATA_KEYS`), when present.
"""
from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Union

import numpy as np
import onnx
from onnx import numpy_helper

from emulators.formats import ConversionError, UnsupportedModelError, register_format
from emulators.modelfile import (
    MAX_MODEL_FILE_BYTES,
    LayerSpec,
    ModelFileError,
    ModelSpec,
    Normalization,
    check_readable_file,
    validate_spec,
)

__all__ = ["METADATA_KEYS", "MIN_OPSET", "max_opset", "onnx_to_spec", "read_onnx_model"]

PathLike = Union[str, "os.PathLike[str]"]

MIN_OPSET = 13
"""The oldest opset of the default domain the importer reads."""

METADATA_KEYS = {
    "name": "fkb.name",
    "inputs": "fkb.inputs",
    "outputs": "fkb.outputs",
    "input_statistics": "fkb.input_statistics",
}
"""``metadata_props`` keys the importer reads and the exporter writes:
``fkb.name`` the model's name, ``fkb.inputs`` / ``fkb.outputs`` a JSON list
of ``[name, units]`` pairs, one per input (output) feature,
``fkb.input_statistics`` the statistics of the training inputs that the
runtime's guard needs (a JSON object, as in a ``.keras`` file's metadata:
:func:`emulators.input_statistics.statistics_to_json`)."""

_MAX_FOLDED = 1 << 26  # elements of a constant the importer folds (256 MiB of float32)
_BATCH = (1 << 40) + 17  # stands for the batch size inside folded shape tensors
_REL_TOL = 2e-6  # constants of a recognized pattern: float32 roundings of the exact values


def max_opset() -> int:
    """The newest opset of the default domain the importer reads (the ``onnx`` package's)."""
    return int(onnx.defs.onnx_opset_version())


# --------------------------------------------------------------------------
# Loading


def _one_line(text: Any) -> str:
    return " ".join(str(text).split())


def _external_tensors(model: onnx.ModelProto) -> Iterable[onnx.TensorProto]:
    yield from model.graph.initializer
    for node in model.graph.node:
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.TENSOR:
                yield attribute.t
            elif attribute.type == onnx.AttributeProto.TENSORS:
                yield from attribute.tensors


def _tensor_nbytes(tensor: onnx.TensorProto) -> int | None:
    try:
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type)
    except Exception:  # noqa: BLE001 - unknown or undefined type
        return None
    if tensor.data_type in (onnx.TensorProto.STRING,) or dtype.itemsize == 0:
        return None
    count = 1
    for dim in tensor.dims:
        if dim < 0:
            return None
        count *= int(dim)
    return count * dtype.itemsize


def _load_external_data(model: onnx.ModelProto, path: Path) -> None:
    """Read every tensor stored in an external file into the model, each
    reference checked: a relative location inside the model's folder, a
    regular file, the offset and length within it, the bytes the tensor needs."""
    folder = path.resolve().parent
    files: dict[Path, bytes] = {}
    total = 0   # bytes given to tensors: a file's bytes may be referenced by many tensors
    for tensor in _external_tensors(model):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        info = {entry.key: entry.value for entry in tensor.external_data}
        name = tensor.name if isinstance(tensor.name, str) and tensor.name else "(unnamed)"
        where = f"{path}: tensor '{name}'"
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in info.items()):
            raise ConversionError(f"{where}: malformed reference to its external data (corrupt?)")
        location = info.get("location", "")
        if not location:
            raise ConversionError(f"{where} is stored externally but names no file")
        relative = Path(location)
        if relative.is_absolute() or ".." in relative.parts:
            raise ConversionError(f"{where}: its external file {location!r} is not inside the model's folder")
        target = folder / relative
        if target not in files:
            if not target.exists():
                raise ConversionError(f"{where}: its weights are in the external file {location}, which is "
                                      f"missing (keep it beside the model, in {folder})")
            try:
                check_readable_file(target)
                if sum(map(len, files.values())) + target.stat().st_size > MAX_MODEL_FILE_BYTES:
                    raise ConversionError(f"{path}: its external files hold more than the "
                                          f"{MAX_MODEL_FILE_BYTES // 2 ** 20} MiB a model may have")
                files[target] = target.read_bytes()
            except ModelFileError as exc:
                raise ConversionError(f"{where}: external file: {exc}") from None
            except OSError as exc:
                raise ConversionError(f"{where}: cannot read the external file {location}: "
                                      f"{exc.strerror or exc}") from None
        data = files[target]
        try:
            offset = int(info.get("offset", 0))
            length = int(info["length"]) if "length" in info else len(data) - offset
        except ValueError:
            raise ConversionError(f"{where}: malformed offset or length of its external data") from None
        if offset < 0 or length < 0 or offset + length > len(data):
            raise ConversionError(f"{where}: its external data (offset {offset}, {length} bytes) lies beyond the "
                                  f"end of {location} ({len(data)} bytes): truncated?")
        expected = _tensor_nbytes(tensor)
        if expected is not None and expected != length:
            raise ConversionError(f"{where}: its external data has {length} bytes, the tensor needs {expected}")
        total += length
        if total > MAX_MODEL_FILE_BYTES:
            raise ConversionError(f"{path}: its tensors' external data add up to more than the "
                                  f"{MAX_MODEL_FILE_BYTES // 2 ** 20} MiB a model may have")
        tensor.raw_data = data[offset:offset + length]
        del tensor.external_data[:]
        tensor.data_location = onnx.TensorProto.DEFAULT


def read_onnx_model(path: PathLike) -> onnx.ModelProto:
    """Parse, complete (external data, local functions) and check an ONNX file.
    Raises ConversionError with one line for anything unreadable."""
    path = Path(path)
    try:
        check_readable_file(path)
        data = path.read_bytes()
    except ModelFileError as exc:
        raise ConversionError(str(exc)) from None
    except OSError as exc:
        raise ConversionError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if not data:
        raise ConversionError(f"{path}: empty file")
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except Exception:  # noqa: BLE001 - protobuf's DecodeError, or worse for garbage
        raise ConversionError(f"{path}: not an ONNX model: the protobuf does not parse (truncated or corrupt?)") from None
    if not model.HasField("graph") or not model.graph.node:
        raise ConversionError(f"{path}: not an ONNX model: it holds no graph (truncated or corrupt?)")
    if model.ir_version < 3:
        raise ConversionError(f"{path}: ONNX IR version {model.ir_version} is too old or missing (corrupt?)")
    if model.graph.sparse_initializer:
        raise UnsupportedModelError(f"{path}: sparse initializers are not supported")
    _load_external_data(model, path)
    if model.functions:
        try:
            from onnx import inliner

            model = inliner.inline_local_functions(model)
        except Exception as exc:  # noqa: BLE001
            raise ConversionError(f"{path}: cannot inline the model's local functions: {_one_line(exc)[:200]}") from None
    _check_operators(model, str(path))
    try:
        onnx.checker.check_model(model)
    except Exception as exc:  # noqa: BLE001 - ValidationError, or a C++ error for malformed protos
        message = _one_line(exc)
        message = re.sub(r"^\[ONNXRuntimeError\].*?:\s*", "", message)
        raise ConversionError(f"{path}: invalid ONNX model: {message[:300]}") from None
    return model


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


# --------------------------------------------------------------------------
# Recognition: elementwise expressions as polynomials in functions of x


class _NoMatch(Exception):
    pass


# A polynomial is a tuple of terms (coeff, monomial), a monomial a sorted tuple
# of (atom, power), an atom ("x",) or (function, params, argument polynomials).
_X_ATOM = ("x",)
_MAX_TERMS = 48


def _poly_const(c: float) -> tuple:
    return ((float(c), ()),) if c != 0 else ()


def _poly_atom(atom: tuple) -> tuple:
    return ((1.0, ((atom, 1),)),)


def _combine(terms: Iterable[tuple[float, tuple]]) -> tuple:
    sums: dict[tuple, float] = {}
    for coeff, mono in terms:
        sums[mono] = sums.get(mono, 0.0) + coeff
    out = tuple(sorted(((c, m) for m, c in sums.items() if c != 0.0), key=lambda t: repr(t[1])))
    if len(out) > _MAX_TERMS:
        raise _NoMatch()
    return out


def _poly_add(*polys: tuple) -> tuple:
    return _combine(term for p in polys for term in p)


def _poly_scale(p: tuple, c: float) -> tuple:
    return _combine((coeff * c, mono) for coeff, mono in p)


def _mono_mul(a: tuple, b: tuple) -> tuple:
    powers: dict[tuple, int] = {}
    for atom, k in a + b:
        powers[atom] = powers.get(atom, 0) + k
    return tuple(sorted(powers.items(), key=lambda t: repr(t[0])))


def _poly_mul(p: tuple, q: tuple) -> tuple:
    if len(p) * len(q) > _MAX_TERMS * 4:
        raise _NoMatch()
    return _combine((a * b, _mono_mul(m, n)) for a, m in p for b, n in q)


def _poly_func(name: str, params: tuple, *args: tuple) -> tuple:
    # a function of a constant is a constant (folded before), so args hold x
    return _poly_atom((name, params, tuple(args)))


def _sig_atom(atom: tuple) -> tuple:
    if atom == _X_ATOM:
        return atom
    return (atom[0], len(atom[1]), tuple(_signature(arg) for arg in atom[2]))


def _sig_mono(mono: tuple) -> tuple:
    return tuple(sorted(((_sig_atom(a), k) for a, k in mono), key=repr))


def _signature(p: tuple) -> tuple:
    """The shape of a polynomial, without its coefficients."""
    return tuple(sorted((_sig_mono(m) for _, m in p), key=repr))


def _params_approx(a: tuple, b: tuple) -> bool:
    if len(a) != len(b):
        return False
    for u, v in zip(a, b):
        if isinstance(u, float) and isinstance(v, float):
            if not _close(u, v):
                return False
        elif u != v:
            return False
    return True


def _atom_approx(a: tuple, b: tuple) -> bool:
    if a == _X_ATOM or b == _X_ATOM:
        return a == b
    return (a[0] == b[0] and _params_approx(a[1], b[1]) and len(a[2]) == len(b[2])
            and all(_poly_approx(p, q) for p, q in zip(a[2], b[2])))


def _mono_approx(m: tuple, n: tuple) -> bool:
    if len(m) != len(n):
        return False
    m = sorted(m, key=lambda t: repr(_sig_atom(t[0])))
    n = sorted(n, key=lambda t: repr(_sig_atom(t[0])))
    return all(k == j and _atom_approx(a, b) for (a, k), (b, j) in zip(m, n))


def _poly_approx(p: tuple, q: tuple) -> bool:
    """Polynomials equal up to their coefficients' float32 rounding (terms matched greedily)."""
    if len(p) != len(q):
        return False
    remaining = list(q)
    for coeff, mono in p:
        for i, (c2, m2) in enumerate(remaining):
            if _close(coeff, c2) and _mono_approx(mono, m2):
                del remaining[i]
                break
        else:
            return False
    return True


_FUNCTION_ATOMS = {
    "Erf": "erf", "Tanh": "tanh", "Sigmoid": "sigmoid", "Softplus": "softplus", "Abs": "abs", "Log": "log",
    "Exp": "exp", "Relu": "relu", "Softsign": "softsign", "Sqrt": "sqrt", "Reciprocal": "recip", "Mish": "mish",
    "HardSwish": "hardswish",
}


class _Canon:
    """The polynomial of an expression in the variable ``x`` (a _Dyn)."""

    def __init__(self, x: _Dyn, limit: int = 40):
        self.x = x
        self.memo: dict[int, tuple] = {}
        self.budget = limit

    def __call__(self, value: Any) -> tuple:
        if value is self.x:
            return _poly_atom(_X_ATOM)
        if isinstance(value, np.ndarray):
            s = _scalar(value)
            if s is None or not math.isfinite(s):
                raise _NoMatch()
            return _poly_const(s)
        if not isinstance(value, _Dyn) or value.node is None:
            raise _NoMatch()
        key = id(value)
        if key not in self.memo:
            self.budget -= 1
            if self.budget < 0:
                raise _NoMatch()
            self.memo[key] = self.node(value.node)
        return self.memo[key]

    def node(self, node: _Node) -> tuple:
        op, ins, attrs = node.op, node.inputs, node.attrs
        if op in ("Add", "Sum"):
            return _poly_add(*(self(v) for v in ins))
        if op == "Sub":
            return _poly_add(self(ins[0]), _poly_scale(self(ins[1]), -1.0))
        if op == "Neg":
            return _poly_scale(self(ins[0]), -1.0)
        if op == "Mul":
            return _poly_mul(self(ins[0]), self(ins[1]))
        if op == "Div":
            denominator = ins[1]
            if isinstance(denominator, np.ndarray):
                s = _scalar(denominator)
                if not s:
                    raise _NoMatch()
                return _poly_scale(self(ins[0]), 1.0 / s)
            return _poly_mul(self(ins[0]), _poly_func("recip", (), self(denominator)))
        if op == "Pow":
            exponent = _scalar(ins[1]) if isinstance(ins[1], np.ndarray) else None
            if exponent is None:
                raise _NoMatch()
            base = self(ins[0])
            if exponent in (1.0, 2.0, 3.0, 4.0):
                out = base
                for _ in range(int(exponent) - 1):
                    out = _poly_mul(out, base)
                return out
            if exponent == 0.5:
                return _poly_func("sqrt", (), base)
            if exponent == -1.0:
                return _poly_func("recip", (), base)
            return _poly_func("pow", (exponent,), base)
        if op in _FUNCTION_ATOMS:
            return _poly_func(_FUNCTION_ATOMS[op], (), self(ins[0]))
        if op == "Clip":
            return _poly_func("clip", (float(attrs["min"]), float(attrs["max"])), self(ins[0]))
        if op == "HardSigmoid":
            alpha, beta = float(attrs.get("alpha", 0.2)), float(attrs.get("beta", 0.5))
            # max(0, min(1, alpha x + beta)) = clip(alpha x + beta, 0, 1)
            return _poly_func("clip", (0.0, 1.0), _poly_add(_poly_scale(self(ins[0]), alpha), _poly_const(beta)))
        if op in ("Max", "Min") and len(ins) == 2 and isinstance(ins[1], np.ndarray):
            s = _scalar(ins[1])
            if s is None:
                raise _NoMatch()
            bounds = (s, math.inf) if op == "Max" else (-math.inf, s)
            return _poly_func("clip", bounds, self(ins[0]))
        if op in ("Greater", "Less"):
            a, b = self(ins[0]), self(ins[1])
            difference = _poly_add(a, _poly_scale(b, -1.0)) if op == "Greater" else _poly_add(b, _poly_scale(a, -1.0))
            return _poly_func("positive", (), difference)  # 1 where the difference is > 0, else 0
        if op == "Cast":
            return self(ins[0])
        if op == "Where":
            condition = self(ins[0])
            a, b = self(ins[1]), self(ins[2])
            # where(c, a, b) = b + c (a - b) for c in {0, 1}
            return _poly_add(b, _poly_mul(condition, _poly_add(a, _poly_scale(b, -1.0))))
        if op == "Act":
            return _poly_func("act", (attrs["activation"], attrs.get("alpha")), self(ins[0]))
        raise _NoMatch()


def _x() -> tuple:
    return _poly_atom(_X_ATOM)


def _t(name: str, *args: tuple, params: tuple = ()) -> tuple:
    return _poly_func(name, params, *args)


def _lin(a: float, b: float = 0.0) -> tuple:
    return _poly_add(_poly_scale(_x(), a), _poly_const(b))


def _templates() -> list[tuple[str, tuple]]:
    x = _x()
    half_x = _poly_scale(x, 0.5)
    cube = _poly_mul(_poly_mul(x, x), x)
    k = math.sqrt(2.0 / math.pi)
    out = [
        ("gelu", _poly_add(half_x, _poly_mul(half_x, _t("erf", _poly_scale(x, 1 / math.sqrt(2.0)))))),
        ("gelu_tanh", _poly_add(half_x, _poly_mul(half_x, _t("tanh", _poly_add(_poly_scale(x, k),
                                                                               _poly_scale(cube, k * 0.044715)))))),
        ("silu", _poly_mul(x, _t("sigmoid", x))),
        ("mish", _poly_mul(x, _t("tanh", _t("softplus", x)))),
        ("mish", _poly_mul(x, _t("tanh", _t("log", _poly_add(_poly_const(1.0), _t("exp", x)))))),
        ("hard_silu", _poly_mul(x, _t("clip", _lin(1 / 6, 0.5), params=(0.0, 1.0)))),
        ("hard_silu", _poly_scale(_poly_mul(x, _t("clip", _lin(1.0, 3.0), params=(0.0, 6.0))), 1 / 6)),
        ("hard_silu", _poly_scale(_poly_mul(x, _t("clip", _t("clip", _lin(1.0, 3.0), params=(0.0, math.inf)),
                                                  params=(-math.inf, 6.0))), 1 / 6)),
        ("hard_silu", _t("hardswish", x)),
        ("hard_sigmoid", _poly_scale(_t("clip", _lin(1.0, 3.0), params=(0.0, 6.0)), 1 / 6)),
        ("hard_sigmoid", _t("clip", _lin(1 / 6, 0.5), params=(0.0, 1.0))),
        ("softsign", _poly_mul(x, _t("recip", _poly_add(_poly_const(1.0), _t("abs", x))))),
        ("log_sigmoid", _t("log", _t("sigmoid", x))),
        ("log_sigmoid", _poly_scale(_t("softplus", _poly_scale(x, -1.0)), -1.0)),
        ("tanh_shrink", _poly_add(x, _poly_scale(_t("tanh", x), -1.0))),
        ("softplus", _t("log", _poly_add(_poly_const(1.0), _t("exp", x)))),
        ("gaussian", _t("exp", _poly_scale(_poly_mul(x, x), -1.0))),
        ("step", _t("positive", x)),
        ("relu6", _t("clip", x, params=(0.0, 6.0))),
        ("hard_tanh", _t("clip", x, params=(-1.0, 1.0))),
        ("relu", _t("clip", x, params=(0.0, math.inf))),
    ]
    return out


_TEMPLATES: list[tuple[str, tuple]] | None = None


def _softplus_threshold(p: tuple) -> tuple[float, float] | None:
    """PyTorch's Softplus(beta, threshold) exported as where(beta x > threshold,
    x, softplus(beta x) / beta): (beta, threshold) when `p` is that, else None."""
    positives = [atom for _, mono in p for atom, _ in mono if atom[0] == "positive"]
    if not positives:
        return None
    argument = positives[0][2][0]
    linear = {m: c for c, m in argument}
    x_mono = ((_X_ATOM, 1),)
    if set(linear) - {x_mono, ()} or x_mono not in linear:
        return None
    beta = linear[x_mono]
    threshold = -linear.get((), 0.0)
    if not beta > 0:
        return None
    condition = _poly_atom(positives[0])
    soft = _poly_scale(_t("softplus", _poly_scale(_x(), beta)), 1.0 / beta)
    template = _poly_add(soft, _poly_mul(condition, _poly_add(_x(), _poly_scale(soft, -1.0))))
    if not _poly_approx(p, template):
        return None
    return beta, threshold


def _squareplus(p: tuple) -> float | None:
    """(x + sqrt(x^2 + b)) / 2: b, else None."""
    roots = [atom for _, mono in p for atom, _ in mono if atom[0] == "sqrt"]
    if not roots:
        return None
    inner = {m: c for c, m in roots[0][2][0]}
    b = inner.get((), 0.0)
    x = _x()
    template = _poly_scale(_poly_add(x, _t("sqrt", _poly_add(_poly_mul(x, x), _poly_const(b)))), 0.5)
    return b if b > 0 and _poly_approx(p, template) else None


def _keras_relu(p: tuple) -> dict[str, float] | None:
    """Keras's ReLU layer as fkb's exporter writes it: ``p = where(x >
    threshold, x, 0)``, ``min(p, max_value)``, ``- negative_slope *
    relu(threshold - x)``: the layer's attributes, else None."""
    atoms = [atom for _, mono in p for atom, _ in mono]
    nested = [a for atom in atoms if atom[0] == "clip" for a in (atom,) + tuple(
        inner for _, mono in atom[2][0] for inner, _ in mono)]
    positives = [atom for atom in atoms + nested if atom[0] == "positive"]
    if not positives:
        return None
    linear = {m: c for c, m in positives[0][2][0]}
    x_mono = ((_X_ATOM, 1),)
    if set(linear) - {x_mono, ()} or linear.get(x_mono) != 1.0:
        return None
    threshold = -linear.get((), 0.0)
    x = _x()
    gate = _poly_mul(_poly_atom(positives[0]), x)
    clips = [atom for atom in atoms if atom[0] == "clip" and atom[1][0] == -math.inf]
    max_value = clips[0][1][1] if clips else None
    if max_value is not None:
        gate = _t("clip", gate, params=(-math.inf, max_value))
    relus = [(c, atom) for c, mono in p for atom, _ in mono if atom[0] == "relu"]
    slope = -relus[0][0] if relus else 0.0
    template = gate
    if relus:
        template = _poly_add(gate, _poly_scale(_t("relu", _lin(-1.0, threshold)), -slope))
    if not _poly_approx(p, template) or slope < 0 or (max_value is not None and max_value < 0):
        return None
    attributes = {"negative_slope": _f32(slope), "threshold": _f32(threshold)}
    if max_value is not None:
        attributes = {"max_value": _f32(max_value), **attributes}
    return attributes


# --------------------------------------------------------------------------
# Rewriting the graph with what was recognized


def _live_nodes(output: _Dyn) -> list[_Node]:
    """The nodes the output depends on, each after its inputs."""
    order: list[_Node] = []
    seen: set[int] = set()
    stack: list[tuple[_Node, bool]] = [(output.node, False)] if output.node is not None else []
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((node, True))
        for value in reversed(node.inputs):
            if isinstance(value, _Dyn) and value.node is not None and id(value.node) not in seen:
                stack.append((value.node, False))
    return order


def _region_values(root: _Node, limit: int = 24) -> list[_Dyn]:
    """Tensors feeding `root` through elementwise nodes, nearest first."""
    seen: set[int] = set()
    order: list[_Dyn] = []
    queue = [v for v in root.inputs if isinstance(v, _Dyn)]
    while queue and len(order) < limit:
        value = queue.pop(0)
        if id(value) in seen:
            continue
        seen.add(id(value))
        order.append(value)
        node = value.node
        if node is not None and (node.op in _ELEMENTWISE_UNARY or node.op in _ELEMENTWISE_BINARY):
            queue.extend(v for v in node.inputs if isinstance(v, _Dyn))
    return order


def _recognize_activation(root: _Node) -> bool:
    """Rewrite `root` into an activation of a tensor feeding it, if its
    expression is one (exactly, up to the float32 rounding of constants)."""
    global _TEMPLATES
    if root.op not in ("Mul", "Add", "Sub", "Div", "Log", "Where", "Neg", "Exp", "Cast", "Clip", "Max", "Min"):
        return False
    if _TEMPLATES is None:
        _TEMPLATES = _templates()
    for x in _region_values(root):
        try:
            p = _Canon(x)(root.out)
        except (_NoMatch, RecursionError):
            continue
        if not any(atom == _X_ATOM for _, mono in p for atom, _ in mono) and not p:
            continue
        for name, template in _TEMPLATES:
            if _signature(p) == _signature(template) and _poly_approx(p, template):
                _become_activation(root, x, name)
                return True
        found = _softplus_threshold(p)
        if found is not None:
            beta, threshold = found
            # where the threshold switches to x, softplus(beta x)/beta - x = log1p(exp(-beta x))/beta is below
            # float32 round-off of x only if the threshold is large enough
            if threshold * 2.0 ** -24 < math.log1p(math.exp(-min(threshold, 700.0))) or threshold < 0:
                raise _Refusal(f"Softplus(beta={beta:g}, threshold={threshold:g}): the threshold is too small to "
                               "be float32 round-off; the runtime's softplus has none")
            _become_scaled_activation(root, x, "softplus", beta)
            return True
        relu = _keras_relu(p)
        if relu is not None:
            root.op, root.inputs, root.attrs = "KerasRelu", [x], relu
            return True
        b = _squareplus(p)
        if b is not None:
            _become_activation(root, x, "squareplus", alpha=_f32(b))
            return True
    return False


def _become_activation(root: _Node, x: _Dyn, name: str, alpha: float | None = None) -> None:
    root.op, root.inputs = "Act", [x]
    root.attrs = {"activation": name} | ({"alpha": alpha} if alpha is not None else {})


def _become_scaled_activation(root: _Node, x: _Dyn, name: str, beta: float) -> None:
    if beta == 1.0:
        _become_activation(root, x, name)
        return
    scaled = _new_node("Mul", [x, np.array(beta, dtype=np.float32)], {}, root.name + "/beta", x.shape)
    act = _new_node("Act", [scaled.out], {"activation": name}, root.name + "/act", x.shape)
    root.op, root.inputs, root.attrs = "Div", [act.out, np.array(beta, dtype=np.float32)], {}


def _recognize_layer_norm(root: _Node) -> bool:
    """(x - mean(x)) / sqrt(mean((x - mean(x))^2) + eps) [* gamma] [+ beta]
    as exporters decompose LayerNorm (opsets before 17)."""

    def producer(value: Any, *ops: str) -> _Node | None:
        if isinstance(value, _Dyn) and value.node is not None and value.node.op in ops:
            return value.node
        return None

    def split(node: _Node) -> tuple[Any, Any] | None:
        a, b = node.inputs[:2]
        if isinstance(a, np.ndarray) and isinstance(b, _Dyn):
            a, b = b, a
        if isinstance(a, _Dyn) and isinstance(b, np.ndarray):
            return a, b
        return None

    beta = gamma = None
    value = root.out
    node = root
    if node.op == "Add" and (parts := split(node)) is not None:
        value, beta = parts
        node = producer(value, "Mul", "Div")
    if node is not None and node.op == "Mul" and (parts := split(node)) is not None:
        value, gamma = parts
        node = producer(value, "Div", "Mul")
    if node is None:
        return False
    # normalized = centered / sqrt(variance + eps)  or  centered * reciprocal(sqrt(...))
    if node.op == "Div":
        centered, denominator = node.inputs
        root_node = producer(denominator, "Sqrt")
    elif node.op == "Mul":
        centered, other = node.inputs
        recip = producer(other, "Reciprocal") or producer(centered, "Reciprocal")
        if recip is None:
            return False
        if recip is producer(centered, "Reciprocal"):
            centered, other = other, centered
        root_node = producer(recip.inputs[0], "Sqrt")
    else:
        return False
    sub = producer(centered, "Sub")
    if root_node is None or sub is None:
        return False
    x, mean = sub.inputs
    mean_node = producer(mean, "ReduceMean")
    if not isinstance(x, _Dyn) or mean_node is None or mean_node.inputs[0] is not x:
        return False
    add = producer(root_node.inputs[0], "Add")
    if add is None or (parts := split(add)) is None:
        return False
    variance, eps = parts
    epsilon = _scalar(eps)
    var_node = producer(variance, "ReduceMean")
    if epsilon is None or var_node is None:
        return False
    square = producer(var_node.inputs[0], "Pow", "Mul")
    if square is None:
        return False
    if square.op == "Pow":
        if square.inputs[0] is not centered or _scalar(square.inputs[1]) != 2.0:
            return False
    elif not (square.inputs[0] is centered and square.inputs[1] is centered):
        return False
    n = x.size
    root.op, root.inputs = "LayerNorm", [x]
    root.attrs = {
        "gamma": None if gamma is None else np.broadcast_to(np.asarray(gamma, np.float32), (n,)).copy(),
        "beta": None if beta is None else np.broadcast_to(np.asarray(beta, np.float32), (n,)).copy(),
        "epsilon": _f32(epsilon),
    }
    return True


def _recognize(output: _Dyn, source: str) -> None:
    """Recognize patterns from the output backwards (the largest first)."""
    stack = [output.node] if output.node is not None else []
    seen: set[int] = set()
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        try:
            if node.op in ("Add", "Mul", "Div"):
                _recognize_layer_norm(node)
            if node.op != "LayerNorm":
                _recognize_activation(node)
        except _Refusal as exc:
            raise UnsupportedModelError(f"{source}: node '{node.name}' ({node.op}): {exc}") from None
        for value in node.inputs:
            if isinstance(value, _Dyn) and value.node is not None:
                stack.append(value.node)


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


# --------------------------------------------------------------------------
# Metadata and the entry point


def _metadata(model: onnx.ModelProto, source: str) -> dict[str, str]:
    return {p.key: p.value for p in model.metadata_props}


def _name_list(text: str | None, key: str, source: str) -> list[tuple[str, str]]:
    if text is None:
        return []
    try:
        pairs = json.loads(text)
        if not isinstance(pairs, list) or not all(isinstance(p, list) and len(p) == 2 and all(isinstance(s, str) for s in p)
                                                  for p in pairs):
            raise ValueError("not a list of [name, units] pairs")
    except ValueError as exc:
        raise ConversionError(f"{source}: metadata_props {key}: {_one_line(exc)[:200]}") from None
    return [(name, units) for name, units in pairs]


def _model_name(model: onnx.ModelProto, props: dict[str, str], path: Path | None) -> str | None:
    candidates = [props.get(METADATA_KEYS["name"]), model.graph.name, path.stem if path is not None else None]
    for candidate in candidates:
        if not candidate or candidate in ("main_graph", "torch_jit", "torch-jit-export", "graph"):
            continue
        text = " ".join(str(candidate).split())
        if text and text.isascii() and text.isprintable():
            return text
    return None


def onnx_to_spec(model_or_path: Any) -> ModelSpec:
    """The :class:`~emulators.modelfile.ModelSpec` of an ONNX network (a path
    or an ``onnx.ModelProto``): one input ``(batch, features...)``, one
    output, the operators listed in the module docstring. Raises
    UnsupportedModelError naming the first operator and node it cannot map,
    ConversionError for a file it cannot read; both one line."""
    if isinstance(model_or_path, onnx.ModelProto):
        model, path, source = model_or_path, None, f"model '{model_or_path.graph.name or '?'}'"
    else:
        path = Path(model_or_path)
        source = str(path)
        model = read_onnx_model(path)
    interpreter = _Interpreter(model, source)
    output = interpreter.run()
    n_inputs = int(np.prod(interpreter.values[interpreter.input_name].shape, dtype=np.int64))
    _recognize(output, source)
    lowering = _Lowering(output, source, interpreter.values[interpreter.input_name])
    layers = lowering.run()
    out_layer = lowering.of.get(id(output)) if output.node is not None else None
    specs, input_norm, output_norm = _finish(layers, out_layer, n_inputs, source)
    props = _metadata(model, source)
    spec = ModelSpec(
        n_inputs=n_inputs,
        n_outputs=specs[-1].n_out,
        layers=specs,
        name=_model_name(model, props, path),
        inputs=_name_list(props.get(METADATA_KEYS["inputs"]), METADATA_KEYS["inputs"], source),
        outputs=_name_list(props.get(METADATA_KEYS["outputs"]), METADATA_KEYS["outputs"], source),
        input_normalization=input_norm,
        output_normalization=output_norm,
    )
    statistics = props.get(METADATA_KEYS["input_statistics"])
    if statistics is not None:
        from emulators.input_statistics import statistics_from_json

        try:
            spec.input_statistics = statistics_from_json(json.loads(statistics), n_inputs)
        except ValueError as exc:
            raise ConversionError(f"{source}: metadata_props {METADATA_KEYS['input_statistics']}: "
                                  f"{_one_line(exc)[:200]}") from None
    try:
        validate_spec(spec)
    except ValueError as exc:
        raise UnsupportedModelError(f"{source}: {exc}") from None
    return spec


register_format("ONNX", (".onnx",), read=onnx_to_spec)
