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
from emulators.metrics import predict_physical

__all__ = ["emulator_spec", "export_emulator", "runtime_relative_error"]


def emulator_spec(model, normalization: NormalizationStats, name: str | None = None):
    """The :class:`emulators.modelfile.ModelSpec` of a trained emulator: the
    Keras network with normalization, names and units of the interface."""
    from emulators.convert import keras_to_spec
    from emulators.modelfile import Normalization

    spec = keras_to_spec(model)
    n_in, n_out = len(normalization.input_names), len(normalization.output_names)
    if (spec.n_inputs, spec.n_outputs) != (n_in, n_out):
        raise ValueError(f"model maps {spec.n_inputs} -> {spec.n_outputs} values but its normalization "
                         f"covers {n_in} inputs and {n_out} outputs")
    (in_offset, in_scale), (out_offset, out_scale) = normalization.model_file_arrays()
    spec.inputs = list(zip(normalization.input_names, normalization.input_units))
    spec.outputs = list(zip(normalization.output_names, normalization.output_units))
    spec.input_normalization = Normalization(in_offset, in_scale)
    spec.output_normalization = Normalization(out_offset, out_scale)
    spec.name = name or getattr(model, "name", None) or "emulator"
    return spec


def export_emulator(model, normalization: NormalizationStats, path: str | os.PathLike,
                    name: str | None = None) -> Path:
    """Write the model file of a trained emulator to ``path``; returns the path."""
    from emulators.modelfile import write_model_file

    path = Path(path)
    write_model_file(emulator_spec(model, normalization, name), path)
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
