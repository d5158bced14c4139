"""Write `keras_reference.f90`: what Keras 3 computes, for the Fortran tests.

For every activation of docs/model-file.md and for small networks using every
layer type, this script evaluates Keras 3 (TensorFlow backend, float64) on
fixed inputs and writes the inputs, the weights and the outputs as a Fortran
module. The Fortran tests build the same networks as `model_spec` values and
must reproduce the outputs. Weights, inputs and real attributes are
float32-representable, so the 32- and 64-bit networks see exactly the values
Keras saw (TensorFlow rounds some attributes, e.g. leaky ReLU slopes, to
float32 even in float64 mode). TensorFlow's float64 kernels are not all
correctly rounded either (its gelu is off by ~1e-8), so the 64-bit tests
compare to 1e-7; `test_activation_values.f90` pins the formulas to 1e-14.

Run from the repository root, after changing a case:

    .venv/bin/python fortran/test/make_keras_reference.py

The generated file is committed; the Fortran tests do not need Python.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import keras  # noqa: E402
import numpy as np  # noqa: E402

keras.config.set_floatx("float64")
OUT = Path(__file__).with_name("keras_reference.f90")
RNG = np.random.default_rng(20240611)


def f32(a) -> np.ndarray:
    """Round to float32 and return as float64 (exactly representable values)."""
    return np.asarray(a, dtype=np.float32).astype(np.float64)


# --------------------------------------------------------------- activations

ACT_X = f32(
    [
        [-5.0, -2.5, -1.0, -0.25, 0.0, 0.25, 1.0, 3.0],
        [-20.0, -7.5, -3.0, -0.001, 0.001, 2.9, 7.5, 20.0],
        RNG.uniform(-4.0, 4.0, 8),
    ]
)  # (columns, features), Keras layout


def _act(name: str, alpha: float | None) -> Callable[[np.ndarray], np.ndarray]:
    a = keras.activations
    if name == "gelu":
        return lambda x: a.gelu(x, approximate=False)
    if name == "gelu_tanh":
        return lambda x: a.gelu(x, approximate=True)
    if name == "leaky_relu":
        return lambda x: a.leaky_relu(x, negative_slope=0.2 if alpha is None else alpha)
    if name in ("elu", "celu"):
        f = getattr(a, name)
        return lambda x: f(x, alpha=1.0 if alpha is None else alpha)
    if name == "squareplus":
        return lambda x: a.squareplus(x, b=4 if alpha is None else alpha)
    # The two activations of the original FKB, which Keras lacks.
    if name == "gaussian":
        return lambda x: np.exp(-(np.asarray(x) ** 2))
    if name == "step":
        return lambda x: (np.asarray(x) > 0).astype(np.float64)
    return getattr(a, name)


# (name, alpha): alpha is given exactly for the activations that take one.
ACT_CASES: list[tuple[str, float | None]] = [
    ("linear", None), ("relu", None), ("relu6", None), ("leaky_relu", 0.2),
    ("leaky_relu", 0.125), ("elu", 1.0), ("elu", 0.5), ("selu", None), ("gelu", None),
    ("gelu_tanh", None), ("sigmoid", None), ("hard_sigmoid", None), ("hard_silu", None),
    ("tanh", None), ("softplus", None), ("softsign", None), ("silu", None), ("mish", None),
    ("exponential", None), ("softmax", None), ("log_softmax", None), ("celu", 1.0),
    ("celu", 2.0), ("hard_tanh", None), ("log_sigmoid", None), ("tanh_shrink", None),
    ("squareplus", 4.0), ("squareplus", 1.5), ("gaussian", None), ("step", None),
]


# -------------------------------------------------------------------- layers


@dataclass
class Layer:
    kind: str
    n_out: int
    inputs: list[int]
    attrs: dict[str, str] = field(default_factory=dict)
    params: dict[str, np.ndarray] = field(default_factory=dict)  # Fortran shapes
    keras: Callable[[], keras.layers.Layer] | None = None
    weights: list[np.ndarray] = field(default_factory=list)  # Keras order


@dataclass
class Case:
    name: str
    n_in: int
    layers: list[Layer]


def dense(n_in: int, n_out: int, inputs: list[int], activation: str,
          alpha: float | None = None, use_bias: bool = True) -> Layer:
    kernel = f32(RNG.normal(0.0, 0.6, (n_in, n_out)))  # Keras (n_in, n_out)
    bias = f32(RNG.normal(0.0, 0.3, n_out))
    attrs = {"activation": activation, "use_bias": "1" if use_bias else "0"}
    if alpha is not None:
        attrs["alpha"] = repr(alpha)
    params = {"kernel": kernel.T}
    weights = [kernel]
    if use_bias:
        params["bias"] = bias
        weights.append(bias)
    return Layer("dense", n_out, inputs, attrs, params,
                 lambda: keras.layers.Dense(n_out, activation=_act(activation, alpha),
                                            use_bias=use_bias), weights)


def vec(n: int, lo: float, hi: float) -> np.ndarray:
    return f32(RNG.uniform(lo, hi, n))


def cases() -> list[Case]:
    n = 4
    L = keras.layers
    out: list[Case] = []
    out.append(Case("dense tanh", 3, [dense(3, 5, [0], "tanh")]))
    out.append(Case("dense no bias leaky_relu", 3, [dense(3, 4, [0], "leaky_relu", 0.125, False)]))
    out.append(Case("dense softmax", 3, [dense(3, 4, [0], "softmax")]))
    out.append(Case("activation selu", n, [Layer("activation", n, [0], {"activation": "selu"},
                                                keras=lambda: L.Activation("selu"))]))
    for kw in [
        {},
        {"max_value": 2.5},
        {"max_value": 6},
        {"negative_slope": 0.25},
        {"threshold": 0.5},
        {"max_value": 2.0, "negative_slope": 0.125, "threshold": 0.5},
        {"negative_slope": 0.3, "threshold": 1.5},
    ]:
        kw = {"negative_slope": 0.0, "threshold": 0.0, **kw}
        attrs = {k: repr(v) for k, v in kw.items()}
        out.append(Case(" ".join(["relu"] + [f"{k}={v}" for k, v in attrs.items()]), n,
                        [Layer("relu", n, [0], attrs, keras=lambda kw=kw: L.ReLU(**kw))]))
    out.append(Case("leaky_relu", n, [Layer("leaky_relu", n, [0], {"negative_slope": "0.375"},
                                            keras=lambda: L.LeakyReLU(negative_slope=0.375))]))
    out.append(Case("leaky_relu Keras default", n,
                    [Layer("leaky_relu", n, [0], {"negative_slope": "0.3"},
                           keras=lambda: L.LeakyReLU())]))
    out.append(Case("elu", n, [Layer("elu", n, [0], {"alpha": "0.75"},
                                     keras=lambda: L.ELU(alpha=0.75))]))
    a = vec(n, 0.05, 0.5)
    out.append(Case("prelu", n, [Layer("prelu", n, [0], {}, {"alpha": a}, L.PReLU, [a])]))
    out.append(Case("softmax", n, [Layer("softmax", n, [0], keras=L.Softmax)]))
    out.append(Case("dropout", n, [Layer("dropout", n, [0], {"variant": "dropout", "rate": "0.25"},
                                         keras=lambda: L.Dropout(0.25))]))
    out.append(Case("gaussian_noise", n, [Layer("dropout", n, [0],
                                                {"variant": "gaussian_noise", "stddev": "0.1"},
                                                keras=lambda: L.GaussianNoise(0.1))]))
    g, b, m, v = vec(n, 0.5, 1.5), vec(n, -0.5, 0.5), vec(n, -1, 1), vec(n, 0.2, 2.0)
    out.append(Case("batch_normalization", n, [Layer(
        "batch_normalization", n, [0], {"epsilon": "0.001", "center": "1", "scale": "1",
                                        "momentum": "0.99"},
        {"gamma": g, "beta": b, "moving_mean": m, "moving_variance": v},
        lambda: L.BatchNormalization(epsilon=0.001), [g, b, m, v])]))
    out.append(Case("batch_normalization no center", n, [Layer(
        "batch_normalization", n, [0], {"epsilon": "0.01", "center": "0", "scale": "1"},
        {"gamma": g, "moving_mean": m, "moving_variance": v},
        lambda: L.BatchNormalization(epsilon=0.01, center=False), [g, m, v])]))
    out.append(Case("layer_normalization", n, [Layer(
        "layer_normalization", n, [0], {"epsilon": "0.001", "center": "1", "scale": "1"},
        {"gamma": g, "beta": b}, lambda: L.LayerNormalization(epsilon=0.001), [g, b])]))
    out.append(Case("layer_normalization no scale", n, [Layer(
        "layer_normalization", n, [0], {"epsilon": "0.1", "center": "1", "scale": "0"},
        {"beta": b}, lambda: L.LayerNormalization(epsilon=0.1, scale=False), [b])]))
    vz = v.copy()
    vz[1] = 0.0  # max(sqrt(variance), 1e-7)
    for invert in (False, True):
        out.append(Case(f"normalization invert={int(invert)}", n, [Layer(
            "normalization", n, [0], {"invert": str(int(invert))}, {"mean": m, "variance": vz},
            lambda invert=invert: L.Normalization(mean=m, variance=vz, invert=invert))]))
    s, o = vec(n, -2, 2), vec(n, -1, 1)
    out.append(Case("rescaling", n, [Layer("rescaling", n, [0], {}, {"scale": s, "offset": o},
                                           lambda: L.Rescaling(scale=s, offset=o))]))
    # Merges: the model input and two activations of it.
    branches = [Layer("activation", n, [0], {"activation": "tanh"},
                      keras=lambda: L.Activation("tanh")),
                Layer("activation", n, [0], {"activation": "sigmoid"},
                      keras=lambda: L.Activation("sigmoid"))]
    for kind, cls, inputs in [("add", L.Add, [0, 1, 2]), ("subtract", L.Subtract, [1, 0]),
                              ("multiply", L.Multiply, [0, 1, 2]),
                              ("average", L.Average, [0, 1, 2]),
                              ("maximum", L.Maximum, [0, 1, 2]),
                              ("minimum", L.Minimum, [2, 0, 1])]:
        out.append(Case(kind, n, branches + [Layer(kind, n, inputs, keras=cls)]))
    out.append(Case("concatenate", n, [
        dense(n, 2, [0], "relu"),
        Layer("activation", n, [0], {"activation": "sigmoid"},
              keras=lambda: L.Activation("sigmoid")),
        Layer("concatenate", 2 + n + n, [1, 0, 2], keras=L.Concatenate)]))
    # A deeper graph: residual MLP with batch norm, dropout and a dense head.
    bn = {"gamma": vec(6, .5, 1.5), "beta": vec(6, -.2, .2),
          "moving_mean": vec(6, -.5, .5), "moving_variance": vec(6, .5, 1.5)}
    out.append(Case("residual mlp", 5, [
        dense(5, 6, [0], "relu"),
        Layer("batch_normalization", 6, [1], {"epsilon": "0.001", "center": "1", "scale": "1"}, bn,
              lambda: L.BatchNormalization(epsilon=0.001), list(bn.values())),
        Layer("dropout", 6, [2], {"variant": "dropout", "rate": "0.1"},
              keras=lambda: L.Dropout(0.1)),
        dense(6, 6, [3], "gelu"),
        Layer("add", 6, [2, 4], keras=L.Add),
        dense(6, 3, [5], "linear"),
    ]))
    return out


def run_case(case: Case, x: np.ndarray) -> np.ndarray:
    inp = keras.Input((case.n_in,), dtype="float64")
    nodes = [inp]
    for layer in case.layers:
        k = layer.keras()
        args = [nodes[i] for i in layer.inputs]
        y = k(args if layer.kind in ("add", "subtract", "multiply", "average", "maximum",
                                     "minimum", "concatenate") else args[0])
        if layer.weights:
            k.set_weights(layer.weights)
        nodes.append(y)
    model = keras.Model(inp, nodes[-1])
    return np.asarray(model(x, training=False), dtype=np.float64)


# ------------------------------------------------------------------- writing


def fnum(v: float) -> str:
    return f"{float(v):.17e}".replace("e", "d")


def farray(values: np.ndarray, indent: str = "      ") -> str:
    items = [fnum(v) for v in np.asarray(values, dtype=np.float64).ravel(order="F")]
    lines, line = [], []
    for it in items:
        line.append(it)
        if len(line) == 4:
            lines.append(", ".join(line))
            line = []
    if line:
        lines.append(", ".join(line))
    return "[ &\n" + ", &\n".join(indent + ln for ln in lines) + "]"


def wrap(items: list[str], per_line: int, indent: str = "    ") -> str:
    """Comma-separated items, `per_line` to a continued line."""
    rows = [", ".join(items[i:i + per_line]) for i in range(0, len(items), per_line)]
    return ", &\n".join(indent + r for r in rows)


def fstr(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def main() -> None:
    acts = []
    for name, alpha in ACT_CASES:
        y = np.asarray(_act(name, alpha)(ACT_X), dtype=np.float64)
        acts.append((name, alpha, y))
    ncol_act, nfeat_act = ACT_X.shape

    xs = {}
    body = []
    all_cases = cases()
    for i, case in enumerate(all_cases, start=1):
        x = f32(RNG.uniform(-3.0, 3.0, (3, case.n_in)))
        if case.name.startswith("relu"):
            x[0, :] = [-1.0, 0.5, 2.0, 7.0][: case.n_in]  # thresholds and clip edges
        y = run_case(case, x)
        xs[i] = (x, y)
        layer_lines = []
        for lay in case.layers:
            attrs = ", ".join(f"attr({fstr(k)}, {fstr(v)})" for k, v in lay.attrs.items())
            attrs = f"[attribute_spec :: {attrs}]"
            params = []
            for pname, arr in lay.params.items():
                arr = np.asarray(arr, dtype=np.float64)
                shape = list(arr.shape) + ([1] if arr.ndim == 1 else [])
                params.append(f"param({fstr(pname)}, [{shape[0]}, {shape[1]}], {farray(arr, ' ' * 10)})")
            ptxt = "[tensor_spec :: " + ", &\n        ".join(params) + "]"
            ins = ", ".join(str(j) for j in lay.inputs)
            layer_lines.append(
                f"    spec%layers({len(layer_lines) + 1}) = layer({fstr(lay.kind)}, {lay.n_out}, [{ins}], &\n"
                f"      {attrs}, &\n      {ptxt})")
        n_out = y.shape[1]
        body.append(
            f"  case ({i})\n"
            f"    name = {fstr(case.name)}\n"
            f"    spec%n_inputs = {case.n_in}\n    spec%n_outputs = {n_out}\n"
            f"    allocate (spec%layers({len(case.layers)}))\n"
            + "\n".join(layer_lines) + "\n"
            f"    x = reshape({farray(x.T)}, [{case.n_in}, {x.shape[0]}])\n"
            f"    y = reshape({farray(y.T)}, [{n_out}, {y.shape[0]}])\n")

    act_names = wrap([fstr(n) for n, _, _ in acts], 6)
    act_alpha = wrap([fnum(0.0 if a is None else a) for _, a, _ in acts], 4)
    act_has = wrap([".false." if a is None else ".true." for _, a, _ in acts], 10)
    act_y = np.stack([y.T for _, _, y in acts], axis=-1)  # (features, columns, cases)

    text = f"""! Generated by fortran/test/make_keras_reference.py from Keras {keras.__version__}
! (TensorFlow backend, float64). Do not edit: change the script and rerun it.
module keras_reference
  !! What Keras 3 computes for every activation and for small networks of
  !! every layer type; the tests build the same networks and compare.
  use iso_fortran_env, only: real64
  use fkb_spec, only: model_spec, attribute_spec, tensor_spec
  use fkb_test_specs, only: layer, attr, param
  implicit none
  private
  public :: n_act_cases, n_act_features, n_act_columns, act_names, act_alpha, act_has_alpha, &
            act_x, act_y, n_layer_cases, layer_case

  integer, parameter :: n_act_cases = {len(acts)}, n_act_features = {nfeat_act}, n_act_columns = {ncol_act}
  character(len=16), parameter :: act_names(n_act_cases) = [character(len=16) :: &
{act_names}]
    !! activation of each case
  real(real64), parameter :: act_alpha(n_act_cases) = [ &
{act_alpha}]
  logical, parameter :: act_has_alpha(n_act_cases) = [ &
{act_has}]
    !! whether the case sets `alpha` (else Keras's default applies)
  real(real64), parameter :: act_x(n_act_features, n_act_columns) = reshape({farray(ACT_X.T)}, &
    [n_act_features, n_act_columns])
  real(real64), parameter :: act_y(n_act_features, n_act_columns, n_act_cases) = reshape({farray(act_y)}, &
    [n_act_features, n_act_columns, n_act_cases])
    !! Keras's output for each case

  integer, parameter :: n_layer_cases = {len(all_cases)}

contains

  subroutine layer_case(i, name, spec, x, y)
    !! Case `i`: a model and Keras's outputs `y` for inputs `x`.
    integer, intent(in) :: i
    character(len=:), allocatable, intent(out) :: name
    type(model_spec), intent(out) :: spec
    real(real64), allocatable, intent(out) :: x(:, :), y(:, :)
    select case (i)
{''.join(body)}  end select
  end subroutine layer_case

end module keras_reference
"""
    OUT.write_text(text)
    print(f"wrote {OUT} ({len(acts)} activation cases, {len(all_cases)} layer cases)")


if __name__ == "__main__":
    main()
