"""Convert Keras models to FKB model files and back.

* :func:`keras_to_spec` reads a Keras 3 ``.keras`` file, a legacy ``.h5`` file
  or an in-memory model. It inspects the saved configuration *before*
  loading anything and refuses (``UnsupportedModelError``) every layer,
  activation or option it cannot reproduce exactly; nothing is skipped or
  replaced.
* :func:`spec_to_keras` builds a functional Keras model with the same
  predictions as a :class:`~emulators.modelfile.ModelSpec`;
  :func:`write_keras` saves it as ``.keras`` together with an
  ``fkb_metadata.json`` entry in the zip that carries what Keras has no place
  for (variable names and units, the model name, which layers are the
  input/output normalization, the exact layer attributes). Model file ->
  ``.keras`` -> model file is therefore byte-identical.
* :func:`convert` picks the direction from the file extensions (it lives in
  :mod:`emulators.formats`, with ``load_spec``, and is re-exported here;
  this module registers the Keras format with it).
* :func:`register_layer` teaches both directions (and the NumPy reference
  evaluator) a custom Keras layer class; :func:`load_plugin` imports a module
  that registers some (``fkb convert --plugin MODULE``). See
  docs/custom-layers.md.

The original-FKB activations ``gaussian`` and ``step`` and the tanh
approximation of GELU (``gelu_tanh``) have no Keras string name. They are
registered here as serializable Keras functions ``fkb>gaussian``,
``fkb>step`` and ``fkb>gelu_tanh``: import :mod:`emulators.convert` before
``keras.saving.load_model`` on a file that uses them.

One module per direction, re-exported here: :mod:`emulators.keras_import`
(Keras -> model file), :mod:`emulators.keras_export` (model file -> Keras) and
:mod:`emulators.keras_format` (what both share: the registered activations,
the custom-layer registry, the metadata entry).
"""
from __future__ import annotations

from emulators.formats import ConversionError, UnsupportedModelError, convert, load_spec, register_format
from emulators.keras_export import spec_to_keras, write_keras
from emulators.keras_format import (
    CustomLayer,
    METADATA_ENTRY,
    gaussian,
    gelu_tanh,
    load_plugin,
    register_layer,
    step,
)
from emulators.keras_import import keras_to_spec
from emulators.modelfile import ModelFileError


__all__ = [
    "ConversionError",
    "METADATA_ENTRY",
    "ModelFileError",
    "UnsupportedModelError",
    "CustomLayer",
    "convert",
    "gaussian",
    "gelu_tanh",
    "keras_to_spec",
    "load_spec",
    "load_plugin",
    "register_layer",
    "spec_to_keras",
    "step",
    "write_keras",
]

# --------------------------------------------------------------------------
# Files: the dispatch by extension is emulators.formats (convert and
# load_spec are re-exported here); this module registers the Keras format.


register_format("Keras", (".keras", ".h5", ".hdf5"), read=keras_to_spec, write=write_keras, write_suffixes=(".keras",))
