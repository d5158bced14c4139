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

This module loads and checks (step 1) and ties the steps together; steps 2-4
are :mod:`emulators.onnx_interpreter`, :mod:`emulators.onnx_patterns` and
:mod:`emulators.onnx_lowering`.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Iterable, Union

import numpy as np
import onnx

from emulators.formats import ConversionError, UnsupportedModelError, register_format
from emulators.modelfile import (
    MAX_MODEL_FILE_BYTES,
    ModelFileError,
    ModelSpec,
    check_readable_file,
    validate_spec,
)
from emulators.onnx_interpreter import MIN_OPSET, _Interpreter, _check_operators, _one_line, max_opset
from emulators.onnx_lowering import _Lowering, _finish
from emulators.onnx_patterns import _recognize

# onnx is imported inside the functions that use it, so that importing this module does not load it
# (start-up time).


__all__ = ["METADATA_KEYS", "MIN_OPSET", "max_opset", "onnx_to_spec", "read_onnx_model"]

PathLike = Union[str, "os.PathLike[str]"]

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

# --------------------------------------------------------------------------
# Loading


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
