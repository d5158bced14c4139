"""The formats a network can be converted from and to, and the dispatch by
file extension that ``fkb convert``, ``fkb info``, ``fkb predict`` and
``fkb couple`` share.

A format is a family of extensions with a reader (path -> ModelSpec) and/or
a writer (spec, path); :func:`convert` reads the source with the reader of
its extension and writes the destination with the writer of its, between
two different families:

==========================  =========================  ===============================
family                      read                       written
==========================  =========================  ===============================
model file                  ``.fkb``                   ``.fkb``
original FKB text file      ``.txt``                   (never)
Keras                       ``.keras``, ``.h5``        ``.keras`` (emulators.convert)
ONNX                        ``.onnx``                  ``.onnx`` (emulators.onnx_import,
                                                       emulators.onnx_export)
==========================  =========================  ===============================

The modules of the Keras and ONNX formats register themselves
(:func:`register_format`) when imported, and are imported only when a file
of theirs is met: converting an ONNX file does not import TensorFlow. This
module imports nothing heavy.
"""
from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Union

from emulators.modelfile import ModelFileError, ModelSpec, read_model_file, write_model_file

__all__ = ["ConversionError", "UnsupportedModelError", "ModelFormat", "convert", "format_of", "load_spec",
           "needs_conversion", "register_format"]

PathLike = Union[str, "os.PathLike[str]"]


class ConversionError(Exception):
    """A conversion failed; the message is one line naming the problem."""


class UnsupportedModelError(ConversionError):
    """The model holds a layer, operator, activation or option that cannot be converted."""


@dataclass
class ModelFormat:
    """A family of file extensions: ``read(path) -> ModelSpec`` for the
    extensions it reads, ``write(spec, path)`` for those it writes."""

    name: str
    suffixes: tuple[str, ...]
    read: Callable[[Path], ModelSpec] | None = None
    write: Callable[[ModelSpec, Path], object] | None = None
    write_suffixes: tuple[str, ...] = ()


_FORMATS: dict[str, ModelFormat] = {}  # by name

# extension -> the modules that register its reader and writer, imported when first needed
_LAZY: dict[str, tuple[str, ...]] = {
    ".keras": ("emulators.convert",),
    ".h5": ("emulators.convert",),
    ".hdf5": ("emulators.convert",),
    ".onnx": ("emulators.onnx_import", "emulators.onnx_export"),
}


def register_format(name: str, suffixes: tuple[str, ...], *, read: Callable[[Path], ModelSpec] | None = None,
                    write: Callable[[ModelSpec, Path], object] | None = None,
                    write_suffixes: tuple[str, ...] | None = None) -> ModelFormat:
    """Register (or complete) the format ``name``: its extensions (lowercase,
    with the dot), a reader and a writer. A format's reader and writer may be
    registered by two modules (ONNX's are); registering one again replaces it.
    ``write_suffixes`` are the extensions written (default: all of them)."""
    entry = _FORMATS.get(name)
    if entry is None:
        entry = _FORMATS[name] = ModelFormat(name, tuple(s.lower() for s in suffixes))
    if read is not None:
        entry.read = read
    if write is not None:
        entry.write = write
        entry.write_suffixes = tuple(s.lower() for s in (write_suffixes or suffixes))
    return entry


def _write_fkb(spec: ModelSpec, path: Path) -> None:
    write_model_file(spec, path)


register_format("model file", (".fkb",), read=read_model_file, write=_write_fkb)
register_format("original FKB text file", (".txt",), read=read_model_file)


def format_of(path: PathLike) -> ModelFormat | None:
    """The format of `path`'s extension (its modules imported), None for an unknown one."""
    suffix = Path(path).suffix.lower()
    for module in _LAZY.get(suffix, ()):
        importlib.import_module(module)
    for entry in _FORMATS.values():
        if suffix in entry.suffixes:
            return entry
    return None


def needs_conversion(path: PathLike) -> bool:
    """Whether the Fortran runtime needs `path` converted first: a file of a
    registered format other than the model file and the original FKB text."""
    suffix = Path(path).suffix.lower()
    if suffix in (".fkb", ".txt"):
        return False
    return suffix in _LAZY or any(suffix in f.suffixes for f in _FORMATS.values())


_DIRECTIONS = (".keras/.h5 -> .fkb, .fkb/.txt (original FKB) -> .keras and .txt -> .fkb, and .onnx to and "
               "from each of .fkb, .keras/.h5 (.txt: from)")


def convert(src: PathLike, dst: PathLike) -> ModelSpec:
    """Convert ``src`` to ``dst``, the formats given by the extensions.

    ``.keras``/``.h5``/``.onnx`` -> ``.fkb`` (model file); ``.fkb`` or an
    original FKB ``.txt`` file -> ``.keras`` or ``.onnx``; ``.txt`` ->
    ``.fkb`` upgrades an original FKB text file; ``.keras``/``.h5`` <->
    ``.onnx``. Returns the converted model. Raises ConversionError (or its
    subclass UnsupportedModelError) or ModelFileError with a one-line
    message; the destination is written whole or not at all.
    """
    src, dst = Path(src), Path(dst)
    source, target = format_of(src), format_of(dst)
    if (source is None or source.read is None or target is None or target.write is None
            or dst.suffix.lower() not in target.write_suffixes or source is target):
        raise ConversionError(f"cannot convert {src.name} to {dst.name}: supported are {_DIRECTIONS}")
    spec = source.read(src)
    try:
        target.write(spec, dst)
    except ConversionError as exc:
        raise type(exc)(f"{src}: {exc}") from None
    return spec


def load_spec(path: PathLike) -> ModelSpec:
    """Read any model this package understands into a ModelSpec: a model file
    (``.fkb``), an original FKB text file, a Keras ``.keras``/``.h5`` file or
    an ONNX file (converted in memory, with the same refusals as
    ``convert``). Raises ConversionError with a one-line message."""
    path = Path(path)
    entry = format_of(path)
    if entry is not None and entry.read is not None and entry.name not in ("model file", "original FKB text file"):
        return entry.read(path)
    try:
        return read_model_file(path)
    except ModelFileError as exc:
        raise ConversionError(str(exc)) from None
