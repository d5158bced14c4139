"""FKB model files: read, write and evaluate them in pure NumPy.

Two formats are read (told apart by the first line):

* version 1 of the FKB model file (``docs/model-file.md``): an ASCII header,
  then every weight as little-endian float32, protected by a SHA-256 hash;
* the text format of the original Fortran-Keras Bridge
  (``KerasWeightsProcessing/convert_weights.py``), read the way its Fortran
  ``network_type % load`` reads it.

Only version 1 is written. :func:`evaluate` is a float64 reference
implementation of every layer and activation of the format; it cross-checks
Keras and the Fortran runtime. Nothing here imports Keras.

One module per concept, all re-exported here: :mod:`.spec` (the records and
the vocabulary of the format), :mod:`.validation`, :mod:`.codec` (versions
1-3, written and read), :mod:`.fkb_text` (the original FKB text format) and
:mod:`.evaluate` (the NumPy reference).
"""
from __future__ import annotations

from emulators.modelfile.codec import check_readable_file, encode_model_file, read_model_file, write_model_file
from emulators.modelfile.evaluate import apply_activation, evaluate
from emulators.modelfile.spec import (
    _CUSTOM_KINDS,  # noqa: F401 - the registry of custom layer kinds, one dict (tests remove a kind from it)
    ACTIVATIONS,
    FORMAT_VERSION,
    LAYER_KINDS,
    MAX_MODEL_FILE_BYTES,
    CustomLayerKind,
    InputStatistics,
    LayerSpec,
    ModelFileError,
    ModelSpec,
    Normalization,
    TrainingState,
    activation_alpha,
    register_layer_kind,
)
from emulators.modelfile.validation import validate_spec

__all__ = [
    "ACTIVATIONS",
    "CustomLayerKind",
    "FORMAT_VERSION",
    "InputStatistics",
    "LAYER_KINDS",
    "LayerSpec",
    "ModelFileError",
    "MAX_MODEL_FILE_BYTES",
    "ModelSpec",
    "TrainingState",
    "Normalization",
    "activation_alpha",
    "apply_activation",
    "check_readable_file",
    "encode_model_file",
    "evaluate",
    "read_model_file",
    "register_layer_kind",
    "validate_spec",
    "write_model_file",
]
