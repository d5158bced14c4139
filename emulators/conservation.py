"""Column water conservation: a custom Keras layer that the bridge converts.

The emulated cloud and radiation physics of the toy GCM conserves water
column by column: what its moisture tendencies take out of the column falls
as precipitation,

    -sum_k PHQ_k ps dsigma_k / g = PRECT          [kg m-2 s-1]

(``gcm_toy/src/physics/README.md``, "Budgets"). A network does not know
that. :class:`ColumnWaterConservation`, put at the end of an emulator, makes
the prediction obey it exactly: it moves the moisture tendencies by a profile
``w_k = exp(log_weights_k)`` (trainable: the network learns where in the
column the correction goes) and keeps every other output,

    A    = g P / ps + sum_k dsigma_k q_k          [kg kg-1 s-1]
    q_k' = q_k - w_k A / sum_j dsigma_j w_j

with ``q``, ``P`` and ``ps`` in physical units. The layer works in the
normalized units the network is trained in: it takes the prediction and the
model input (for ``ps``) and carries the normalization of the three
quantities.

Importing this module registers the layer with Keras (``emulators>ColumnWaterConservation``),
with the converter and with the NumPy reference evaluator (model-file type
``emulators.column_water``); ``fkb convert --plugin emulators.conservation``
does that for the command line. The Fortran side is
``fortran/example/custom_layer/column_water_conservation.inc``. The whole
walk-through is docs/custom-layers.md.
"""
from __future__ import annotations

from typing import Any, Sequence

import keras
import numpy as np

from emulators.convert import register_layer
from emulators.modelfile import LayerSpec

__all__ = ["GRAVITY", "KIND", "ColumnWaterConservation", "column_water_residual"]

KIND = "emulators.column_water"
"""The layer type in the model file."""

GRAVITY = 9.80616
"""g of the toy GCM [m s-2] (``gcm_toy/src/gcm_constants.f90``)."""


@keras.saving.register_keras_serializable(package="emulators")
class ColumnWaterConservation(keras.layers.Layer):
    """Closes the column water budget of a normalized emulator prediction.

    Call it on ``[prediction, model_input]``, both normalized, of shapes
    ``(batch, n_outputs)`` and ``(batch, n_inputs)``; it returns the
    prediction with the moisture tendencies corrected.

    Arguments (positions count from 0):
      dsigma: sigma thickness of each level, top to surface (sums to 1).
      q_start: position of the first moisture tendency (PHQ_1, kg kg-1 s-1)
        in the prediction; the ``len(dsigma)`` tendencies follow it.
      precip_index: position of the precipitation (PRECT, kg m-2 s-1).
      ps_index: position of the surface pressure (PS, Pa) in the input.
      q_offset, q_scale, precip_offset, precip_scale, ps_offset, ps_scale:
        the normalization of those values: physical = normalized * scale + offset.
      gravity: g [m s-2].
    """

    def __init__(self, dsigma: Sequence[float], q_start: int, precip_index: int, ps_index: int,
                 q_offset: Sequence[float], q_scale: Sequence[float], precip_offset: float = 0.0,
                 precip_scale: float = 1.0, ps_offset: float = 0.0, ps_scale: float = 1.0,
                 gravity: float = GRAVITY, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.dsigma = [float(v) for v in dsigma]
        n = len(self.dsigma)
        self.q_offset = [float(v) for v in q_offset]
        self.q_scale = [float(v) for v in q_scale]
        if n < 1 or len(self.q_offset) != n or len(self.q_scale) != n:
            raise ValueError(f"dsigma, q_offset and q_scale need one value per level, got {n}, "
                             f"{len(self.q_offset)} and {len(self.q_scale)}")
        if min(self.dsigma) <= 0 or 0.0 in self.q_scale or precip_scale == 0 or ps_scale == 0 or gravity <= 0:
            raise ValueError("dsigma and gravity must be positive and the scales non-zero")
        if q_start <= precip_index < q_start + n:
            raise ValueError("precip_index lies among the moisture tendencies")
        self.q_start, self.precip_index, self.ps_index = int(q_start), int(precip_index), int(ps_index)
        self.precip_offset, self.precip_scale = float(precip_offset), float(precip_scale)
        self.ps_offset, self.ps_scale = float(ps_offset), float(ps_scale)
        self.gravity = float(gravity)

    @classmethod
    def for_emulator(cls, normalization: Any, dsigma: Sequence[float], gravity: float = GRAVITY,
                     **kwargs: Any) -> "ColumnWaterConservation":
        """The layer for an emulator of the interface (``emulators.interface``)
        normalized with ``normalization`` (an ``emulators.data.NormalizationStats``):
        positions from the names ``PHQ_1 .. PHQ_nlev``, ``PRECT`` and ``PS``,
        offsets and scales from the stats, as the model file stores them (float32)."""
        (in_offset, in_scale), (out_offset, out_scale) = normalization.model_file_arrays()
        outputs, inputs = list(normalization.output_names), list(normalization.input_names)
        n = len(dsigma)
        q_start = outputs.index("PHQ_1")
        if outputs[q_start:q_start + n] != [f"PHQ_{k}" for k in range(1, n + 1)]:
            raise ValueError(f"the outputs do not hold PHQ_1 .. PHQ_{n} in order")
        precip, ps = outputs.index("PRECT"), inputs.index("PS")
        return cls(dsigma, q_start, precip, ps, out_offset[q_start:q_start + n].tolist(),
                   out_scale[q_start:q_start + n].tolist(), float(out_offset[precip]),
                   float(out_scale[precip]), float(in_offset[ps]), float(in_scale[ps]), gravity, **kwargs)

    @property
    def n_levels(self) -> int:
        return len(self.dsigma)

    def build(self, input_shape: Any) -> None:
        prediction_shape, input_shape_ = input_shape
        if self.q_start + self.n_levels > prediction_shape[-1] or self.precip_index >= prediction_shape[-1]:
            raise ValueError(f"the prediction has {prediction_shape[-1]} values; q_start, n_levels "
                             "and precip_index point beyond it")
        if self.ps_index >= input_shape_[-1]:
            raise ValueError(f"the input has {input_shape_[-1]} values; ps_index {self.ps_index} points beyond it")
        self.log_weights = self.add_weight(name="log_weights", shape=(self.n_levels,),
                                           initializer="zeros", trainable=True)

    def call(self, inputs: Any) -> Any:
        ops = keras.ops
        y, x = inputs
        s, n = self.q_start, self.n_levels
        dsigma = ops.convert_to_tensor(np.asarray(self.dsigma, np.float32))
        q_scale = ops.convert_to_tensor(np.asarray(self.q_scale, np.float32))
        q_offset = ops.convert_to_tensor(np.asarray(self.q_offset, np.float32))
        qn = y[:, s:s + n]
        p = y[:, self.precip_index:self.precip_index + 1] * self.precip_scale + self.precip_offset
        ps = x[:, self.ps_index:self.ps_index + 1] * self.ps_scale + self.ps_offset
        a = self.gravity * p / ps + ops.sum((qn * q_scale + q_offset) * dsigma, axis=1, keepdims=True)
        w = ops.exp(self.log_weights)
        c = w / (ops.sum(dsigma * w) * q_scale)
        return ops.concatenate([y[:, :s], qn - c * a, y[:, s + n:]], axis=1)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape[0]

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(dsigma=self.dsigma, q_start=self.q_start, precip_index=self.precip_index,
                      ps_index=self.ps_index, q_offset=self.q_offset, q_scale=self.q_scale,
                      precip_offset=self.precip_offset, precip_scale=self.precip_scale,
                      ps_offset=self.ps_offset, ps_scale=self.ps_scale, gravity=self.gravity)
        return config


def column_water_residual(y: np.ndarray, ps: np.ndarray, dsigma: Sequence[float], q_start: int,
                          precip_index: int, gravity: float = GRAVITY) -> np.ndarray:
    """``PRECT + sum_k PHQ_k ps dsigma_k / g`` per column [kg m-2 s-1] of
    physical outputs ``y`` ``(n, n_outputs)`` and surface pressure ``ps`` ``(n,)`` [Pa]:
    zero for a prediction that conserves water."""
    y = np.asarray(y, np.float64)
    d = np.asarray(dsigma, np.float64)
    q = y[:, q_start:q_start + len(d)]
    return y[:, precip_index] + np.asarray(ps, np.float64) / gravity * (q @ d)


# ---------------------------------------------------------------- the model file
# Attributes count positions from 1, as everything in the model file does.

_ATTRIBUTES = ("q_first", "n_levels", "precip", "ps", "gravity", "precip_offset", "precip_scale",
               "ps_offset", "ps_scale")
_PARAMS = ("dsigma", "q_offset", "q_scale", "log_weights")


def _to_spec(layer: ColumnWaterConservation, widths: list[int]) -> tuple[dict, dict]:
    f32 = lambda v: np.asarray(v, np.float32)  # noqa: E731
    attributes = {"q_first": layer.q_start + 1, "n_levels": layer.n_levels, "precip": layer.precip_index + 1,
                  "ps": layer.ps_index + 1, "gravity": layer.gravity, "precip_offset": layer.precip_offset,
                  "precip_scale": layer.precip_scale, "ps_offset": layer.ps_offset, "ps_scale": layer.ps_scale}
    params = {"dsigma": f32(layer.dsigma), "q_offset": f32(layer.q_offset), "q_scale": f32(layer.q_scale),
              "log_weights": f32(keras.ops.convert_to_numpy(layer.log_weights))}
    return attributes, params


def _from_spec(spec: LayerSpec) -> tuple[ColumnWaterConservation, list[np.ndarray]]:
    a, p = spec.attributes, spec.params
    layer = ColumnWaterConservation(
        p["dsigma"].tolist(), int(a["q_first"]) - 1, int(a["precip"]) - 1, int(a["ps"]) - 1,
        p["q_offset"].tolist(), p["q_scale"].tolist(), float(a["precip_offset"]), float(a["precip_scale"]),
        float(a["ps_offset"]), float(a["ps_scale"]), float(a["gravity"]), name=f"column_water_{spec.id}")
    return layer, [np.asarray(p["log_weights"], np.float32)]


def _check(spec: LayerSpec, widths: list[int]) -> None:
    a, p = spec.attributes, spec.params
    if len(widths) != 2:
        raise ValueError(f"{KIND} takes 2 inputs (the prediction and the model input), got {len(widths)}")
    missing = [k for k in _ATTRIBUTES if k not in a]
    unknown = [k for k in a if k not in _ATTRIBUTES]
    if missing or unknown:
        raise ValueError(f"{KIND}: missing attributes {missing}, unknown attributes {unknown}")
    n = a["n_levels"]
    for key in ("q_first", "n_levels", "precip", "ps"):
        if not isinstance(a[key], int) or a[key] < 1:
            raise ValueError(f"{KIND}: attribute {key}={a[key]} is not a positive integer")
    if spec.n_out != widths[0]:
        raise ValueError(f"{KIND}: output width {spec.n_out} differs from the prediction's {widths[0]}")
    if a["q_first"] + n - 1 > widths[0] or a["precip"] > widths[0] or a["q_first"] <= a["precip"] < a["q_first"] + n:
        raise ValueError(f"{KIND}: q_first, n_levels and precip do not fit a prediction of {widths[0]} values")
    if a["ps"] > widths[1]:
        raise ValueError(f"{KIND}: ps={a['ps']} points beyond the input's {widths[1]} values")
    for key in ("gravity", "precip_offset", "precip_scale", "ps_offset", "ps_scale"):
        if isinstance(a[key], str):
            raise ValueError(f"{KIND}: attribute {key}={a[key]} is not a number")
    if set(p) != set(_PARAMS) or any(p[name].shape != (n,) for name in _PARAMS):
        raise ValueError(f"{KIND}: needs the params {', '.join(_PARAMS)} of shape ({n},)")
    if not (a["gravity"] > 0 and np.all(p["dsigma"] > 0) and np.all(p["q_scale"] != 0)
            and a["precip_scale"] != 0 and a["ps_scale"] != 0):
        raise ValueError(f"{KIND}: gravity and dsigma must be positive and the scales non-zero")


def _numpy_forward(spec: LayerSpec, inputs: list[np.ndarray]) -> np.ndarray:
    a = spec.attributes
    p = {name: np.asarray(value, np.float64) for name, value in spec.params.items()}
    y, x = (np.asarray(v, np.float64) for v in inputs)
    s, n = a["q_first"] - 1, a["n_levels"]
    q = y[:, s:s + n] * p["q_scale"] + p["q_offset"]
    precip = y[:, a["precip"] - 1] * a["precip_scale"] + a["precip_offset"]
    ps = x[:, a["ps"] - 1] * a["ps_scale"] + a["ps_offset"]
    residual = a["gravity"] * precip / ps + q @ p["dsigma"]
    w = np.exp(p["log_weights"])
    out = y.copy()
    out[:, s:s + n] -= np.outer(residual, w / (p["dsigma"] @ w * p["q_scale"]))
    return out


register_layer(ColumnWaterConservation, kind=KIND, to_spec=_to_spec, from_spec=_from_spec,
               numpy_forward=_numpy_forward, check=_check)
