"""What both directions between Keras and the model file share: the
activations without a Keras string name (registered as ``fkb>gaussian``,
``fkb>step``, ``fkb>gelu_tanh``; import this module before
``keras.saving.load_model`` on a file that uses them), the Keras activation
names, the registry of custom layers and plugins (docs/custom-layers.md), and
the ``fkb_metadata.json`` entry of a ``.keras`` file."""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Union

import keras
import numpy as np

from emulators.formats import ConversionError
from emulators.input_statistics import statistics_from_json, statistics_to_json
from emulators.modelfile import ACTIVATIONS, LayerSpec, register_layer_kind


PathLike = Union[str, "os.PathLike[str]"]

METADATA_ENTRY = "fkb_metadata.json"
"""Name of the zip entry of a ``.keras`` file that holds the FKB metadata."""

_METADATA_FORMAT = "fkb-metadata"
_METADATA_VERSION = 1
_INPUT_NORMALIZATION = "input_normalization"
_INPUT_RESCALING = "input_normalization_rescaling"   # after it, for input scales below 1e-7
_OUTPUT_NORMALIZATION = "output_normalization"


# --------------------------------------------------------------------------
# Activations without a Keras string name, registered so .keras files keep them


@keras.saving.register_keras_serializable(package="fkb", name="gelu_tanh")
def gelu_tanh(x):
    """GELU, tanh approximation: ``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))``."""
    return keras.activations.gelu(x, approximate=True)


@keras.saving.register_keras_serializable(package="fkb", name="gaussian")
def gaussian(x):
    """Gaussian activation of the original FKB: ``exp(-x^2)``."""
    return keras.ops.exp(-keras.ops.square(x))


@keras.saving.register_keras_serializable(package="fkb", name="step")
def step(x):
    """Step activation of the original FKB: 1 where ``x > 0``, else 0."""
    return keras.ops.cast(keras.ops.greater(x, 0), x.dtype)


_REGISTERED_ACTIVATIONS = {"fkb>gelu_tanh": gelu_tanh, "fkb>gaussian": gaussian, "fkb>step": step}

# Keras activation names (as they appear in configs) -> activation of the format
_KERAS_ACTIVATION_NAMES = {
    name: name
    for name in (
        "linear relu relu6 leaky_relu elu selu gelu sigmoid hard_sigmoid hard_silu tanh softplus "
        "softsign silu mish exponential softmax log_softmax celu hard_tanh log_sigmoid tanh_shrink "
        "squareplus"
    ).split()
}
_KERAS_ACTIVATION_NAMES.update({"swish": "silu", "hard_swish": "hard_silu"})

# the parameter each Keras activation function has by default (see keras.activations)
_KERAS_DEFAULT_ALPHA = {"leaky_relu": 0.2, "elu": 1.0, "celu": 1.0, "squareplus": 4.0}


def _activation_functions() -> dict[Any, str]:
    functions: dict[Any, str] = {}
    for keras_name, ours in _KERAS_ACTIVATION_NAMES.items():
        functions[getattr(keras.activations, keras_name)] = ours
    for registered, function in _REGISTERED_ACTIVATIONS.items():
        functions[function] = registered.split(">", 1)[1]
    return functions


_ACTIVATION_FUNCTIONS = _activation_functions()
for _name, _default in _KERAS_DEFAULT_ALPHA.items():
    assert ACTIVATIONS[_name] == _default, _name  # the format's defaults are Keras's


# --------------------------------------------------------------------------
# Custom layers (docs/custom-layers.md)


@dataclass(frozen=True)
class CustomLayer:
    """How a custom Keras layer class maps onto a custom layer type of the model file.

    ``to_spec(keras_layer, input_widths) -> (attributes, params)`` gives the
    model-file entry of a built layer (params as arrays in their Fortran
    shape); ``from_spec(layer_spec) -> (keras_layer, weights)`` gives a new
    Keras layer and the list its ``set_weights`` takes once it is built.
    """

    keras_class: type
    kind: str
    to_spec: Callable[[Any, list[int]], tuple[dict[str, Any], dict[str, np.ndarray]]]
    from_spec: Callable[[LayerSpec], tuple[Any, list[np.ndarray]]]

    @property
    def registered_name(self) -> str:
        """The class's name in Keras's serialization registry, ``package>Name``."""
        return keras.saving.get_registered_name(self.keras_class)


_CUSTOM_LAYERS: dict[str, CustomLayer] = {}  # by Keras registered name
_CUSTOM_KINDS: dict[str, CustomLayer] = {}  # by model-file layer type


def register_layer(
    keras_class: type,
    *,
    kind: str,
    to_spec: Callable[[Any, list[int]], tuple[dict[str, Any], dict[str, np.ndarray]]],
    from_spec: Callable[[LayerSpec], tuple[Any, list[np.ndarray]]],
    numpy_forward: Callable[[LayerSpec, list[np.ndarray]], np.ndarray],
    check: Callable[[LayerSpec, list[int]], None] | None = None,
) -> CustomLayer:
    """Teach the converter a custom Keras layer class.

    ``keras_class`` must be registered with
    ``keras.saving.register_keras_serializable`` (so that a ``.keras`` file
    names it); ``kind`` is its layer type in the model file,
    ``<namespace>.<name>``. ``numpy_forward`` and ``check`` go to
    :func:`emulators.modelfile.register_layer_kind`: the float64 reference
    evaluation of an entry and its validation. Registering a class or kind
    again replaces the earlier entry.
    """
    if not (isinstance(keras_class, type) and issubclass(keras_class, keras.layers.Layer)):
        raise TypeError(f"{keras_class!r} is not a Keras layer class")
    registered = keras.saving.get_registered_name(keras_class)
    if ">" not in registered:
        raise ValueError(f"{keras_class.__name__}: register the class with keras.saving.register_keras_serializable first")
    register_layer_kind(kind, evaluate=numpy_forward, check=check)
    entry = CustomLayer(keras_class, kind, to_spec, from_spec)
    for old in [k for k, v in _CUSTOM_KINDS.items() if v.registered_name == registered]:
        del _CUSTOM_KINDS[old]
    for old in [k for k, v in _CUSTOM_LAYERS.items() if v.kind == kind]:
        del _CUSTOM_LAYERS[old]
    _CUSTOM_LAYERS[registered] = entry
    _CUSTOM_KINDS[kind] = entry
    return entry


def _custom_layer(layer: Any) -> CustomLayer | None:
    """The registration of a live Keras layer's class, None if it has none."""
    entry = _CUSTOM_LAYERS.get(keras.saving.get_registered_name(type(layer)))
    return entry if entry is not None and type(layer) is entry.keras_class else None


def load_plugin(name: str) -> None:
    """Import a module that registers custom layers: a dotted module name
    (importable from the current folder too) or the path of a ``.py`` file.
    Raises ConversionError with a one-line reason."""
    try:
        if name.endswith(".py"):
            path = Path(name)
            if not path.is_file():
                raise ConversionError(f"plugin {name}: no such file")
            module_name = f"fkb_plugin_{path.stem}"
            spec = importlib.util.spec_from_file_location(module_name, path)
            if spec is None or spec.loader is None:
                raise ConversionError(f"plugin {name}: cannot load it as a Python module")
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module
            spec.loader.exec_module(module)
        else:
            if "" not in sys.path and os.getcwd() not in sys.path:
                sys.path.append(os.getcwd())
            importlib.import_module(name)
    except ConversionError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure of a user module is reported in one line
        raise ConversionError(f"plugin {name}: cannot import it: {type(exc).__name__}: {' '.join(str(exc).split())}") from None


_statistics_metadata = statistics_to_json        # emulators/input_statistics.py, shared with ONNX's metadata
_statistics_from_metadata = statistics_from_json
