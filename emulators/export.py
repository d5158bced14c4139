"""Export a trained emulator to a model file the Fortran runtime runs.

The model file carries, besides the network (converted by
:func:`emulators.convert.keras_to_spec`), the normalization the emulator
was trained with and the interface's element names and units
(``T_1 ... T_nlev``, ``PS``, ... in the units of :mod:`emulators.interface`),
so the Fortran side takes physical inputs and returns physical outputs and
the GCM can check the emulator's interface before plugging it in.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from emulators.data import NormalizationStats
from emulators.formats import ConversionError, format_of, load_spec
from emulators.interface import input_names, input_units, output_names, output_units
from emulators.metrics import predict_physical
from emulators.modelfile import Normalization, write_model_file

# TensorFlow and the Fortran runtime are imported inside the functions that use them, so that
# importing this module does not load them (start-up time).

__all__ = ["emulator_spec", "emulator_spec_of", "export_emulator", "with_gcm_interface", "convert_for_gcm",
           "runtime_relative_error"]


def emulator_spec(model, normalization: NormalizationStats, name: str | None = None, statistics=None):
    """The :class:`emulators.modelfile.ModelSpec` of a trained emulator: the
    Keras network with normalization, names and units of the interface,
    and `statistics` (:class:`emulators.modelfile.InputStatistics` of its
    training inputs, for the runtime's guard) when given."""
    from emulators.convert import keras_to_spec

    spec = emulator_spec_of(keras_to_spec(model), normalization)
    spec.name = name or getattr(model, "name", None) or "emulator"
    spec.input_statistics = statistics
    return spec


def with_gcm_interface(spec, normalization: NormalizationStats | None = None, source: str = "model"):
    """`spec` (a model of your own, e.g. ``keras_to_spec("my.keras")``) with
    the toy GCM's interface attached, so that the GCM runs it: the names and
    units of its inputs and outputs (:mod:`emulators.interface`, ``T_1 ..
    T_nlev, Q_1 .., PS, SOLIN, SHFLX, LHFLX`` in, ``TPHYSTND_1 .., PHQ_1 ..,
    FSNT, FSNS, FLNT, FLNS, PRECT`` out) and, with `normalization` (a
    training set's ``normalization.nc``), its normalization: the network
    then works in normalized units, as the case study's ``model.keras``.
    Without it the network takes and returns physical units, and the level
    count comes from its widths (``2 nlev + 4`` inputs, ``2 nlev + 5``
    outputs). ValueError of one line, naming `source`, when the widths do not
    fit or the model normalizes already."""
    if normalization is not None:
        if spec.input_normalization is not None or spec.output_normalization is not None:
            raise ValueError(f"{source}: normalizes its inputs or outputs already; give no --normalization")
        return emulator_spec_of(spec, normalization, source)
    nlev, odd = divmod(spec.n_inputs - 4, 2)
    if odd or nlev < 1 or spec.n_outputs != 2 * nlev + 5:
        raise ValueError(f"{source}: {spec.n_inputs} inputs and {spec.n_outputs} outputs do not fit the GCM's "
                         "interface (2 nlev + 4 inputs, 2 nlev + 5 outputs)")
    spec.inputs = list(zip(input_names(nlev), input_units(nlev)))
    spec.outputs = list(zip(output_names(nlev), output_units(nlev)))
    return spec


def convert_for_gcm(src: str | os.PathLike, dst: str | os.PathLike,
                    normalization: str | os.PathLike | None = None):
    """Convert a model of your own (``.keras``, ``.h5``, ``.onnx`` or a model
    file without names) to `dst` (``.fkb``, ``.keras`` with the FKB metadata,
    or ``.onnx`` with the names in its metadata_props)
    with the GCM's interface attached (:func:`with_gcm_interface`; with
    `normalization`, the ``normalization.nc`` of its training set). Returns
    the spec written."""
    target = format_of(dst)
    if target is None or target.write is None or Path(dst).suffix.lower() not in target.write_suffixes:
        raise ConversionError(f"{dst}: cannot write this format (write .fkb, .keras or .onnx)")
    stats = NormalizationStats.load(normalization) if normalization is not None else None
    spec = with_gcm_interface(load_spec(src), stats, source=os.fspath(src))
    target.write(spec, Path(dst))
    return spec


def emulator_spec_of(spec, normalization: NormalizationStats, source: str = "model"):
    """`spec` in normalized units with `normalization`'s names, units, offsets
    and scales attached (what :func:`emulator_spec` does for a Keras model)."""
    n_in, n_out = len(normalization.input_names), len(normalization.output_names)
    if (spec.n_inputs, spec.n_outputs) != (n_in, n_out):
        raise ValueError(f"{source}: maps {spec.n_inputs} -> {spec.n_outputs} values but its normalization "
                         f"covers {n_in} inputs and {n_out} outputs")
    (in_offset, in_scale), (out_offset, out_scale) = normalization.model_file_arrays()
    spec.inputs = list(zip(normalization.input_names, normalization.input_units))
    spec.outputs = list(zip(normalization.output_names, normalization.output_units))
    spec.input_normalization = Normalization(in_offset, in_scale)
    spec.output_normalization = Normalization(out_offset, out_scale)
    return spec


def export_emulator(model, normalization: NormalizationStats, path: str | os.PathLike,
                    name: str | None = None, statistics=None) -> Path:
    """Write the model file of a trained emulator to ``path`` (with the
    training inputs' `statistics` when given); returns the path."""
    path = Path(path)
    write_model_file(emulator_spec(model, normalization, name, statistics), path)
    return path


def runtime_relative_error(path: str | os.PathLike, model, normalization: NormalizationStats,
                           x: np.ndarray) -> float:
    """``max |fortran - keras| / max |keras|`` on physical inputs ``x``
    ``(n, n_inputs)``: the Fortran runtime (:func:`emulators.fkb.load`) on
    the model file against Keras with the same normalization, both in float32."""
    from emulators.fkb import load

    x = np.asarray(x, np.float32)
    y_keras = predict_physical(model, normalization, x)
    y_fortran = load(path).predict(x)
    return float(np.max(np.abs(y_fortran - y_keras)) / np.max(np.abs(y_keras)))
