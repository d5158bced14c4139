"""Write the model files the coupling tests load (and the benchmark's MLP).

    python make_test_networks.py OUT_DIR NLEV

Every network is named per :mod:`emulators.interface` unless its purpose is
to break that interface. The linear ones compute known affine functions of
the physical inputs (``y = A x + b``, see :func:`linear_coefficients`); the
Fortran tests evaluate the same functions and compare. Also writes
``interface_L{nlev}.txt``: the interface's element names and units, one
``in|out index name|units`` line each, for the Fortran side to compare its
own copy of the interface with.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from emulators.interface import Layout
from emulators.modelfile import LayerSpec, ModelSpec, Normalization, write_model_file


def labels(layout: Layout) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(name, units) of every input and output element of ``layout``."""
    return (list(zip(layout.input_names(), layout.input_units())),
            list(zip(layout.output_names(), layout.output_units())))


def normalizations(nlev: int) -> tuple[Normalization, Normalization]:
    """Input and output normalization of the linear test networks (powers of
    two, so float32 holds them exactly): typical offsets and spreads."""
    in_off = np.concatenate([np.full(nlev, 256.0), np.zeros(nlev), [1.0e5, 0.0, 0.0, 0.0]])
    in_scale = np.concatenate([np.full(nlev, 32.0), np.full(nlev, 2.0**-7), [1024.0, 512.0, 32.0, 128.0]])
    out_off = np.zeros(2 * nlev + 5)
    out_scale = np.concatenate([np.full(nlev, 2.0**-17), np.full(nlev, 2.0**-27), [64.0] * 4, [2.0**-15]])
    return (Normalization(in_off.astype(np.float32), in_scale.astype(np.float32)),
            Normalization(out_off.astype(np.float32), out_scale.astype(np.float32)))


def linear_coefficients(nlev: int) -> tuple[np.ndarray, np.ndarray]:
    """A (n_out, n_in) and b (n_out) of the physical map y = A x + b:

    TPHYSTND_k = 1e-6 (T_k - 250) + 1e-8 k          [K s-1]
    PHQ_k      = -1e-5 Q_k + 1e-12 LHFLX              [kg kg-1 s-1]
    FSNT       = 0.75 SOLIN                           [W m-2]
    FSNS       = 0.625 SOLIN - 0.125 SHFLX
    FLNT       = 200 + 0.25 (T_nlev - 250) + 1e-3 (PS - 1e5)
    FLNS       = 50 + 0.5 SHFLX
    PRECT      = 2e-3 Q_nlev - 1e-5                  [kg m-2 s-1]

    (the Fortran tests hold the same formulas).
    """
    n_in, n_out = 2 * nlev + 4, 2 * nlev + 5
    a = np.zeros((n_out, n_in))
    b = np.zeros(n_out)
    ps, solin, shflx, lhflx = 2 * nlev, 2 * nlev + 1, 2 * nlev + 2, 2 * nlev + 3
    for k in range(nlev):
        a[k, k] = 1e-6
        b[k] = -250e-6 + 1e-8 * (k + 1)
        a[nlev + k, nlev + k] = -1e-5
        a[nlev + k, lhflx] = 1e-12
    fsnt, fsns, flnt, flns, prect = range(2 * nlev, 2 * nlev + 5)
    a[fsnt, solin] = 0.75
    a[fsns, solin] = 0.625
    a[fsns, shflx] = -0.125
    a[flnt, nlev - 1] = 0.25
    a[flnt, ps] = 1e-3
    b[flnt] = 200.0 - 0.25 * 250.0 - 1e-3 * 1e5
    a[flns, shflx] = 0.5
    b[flns] = 50.0
    a[prect, 2 * nlev - 1] = 2e-3
    b[prect] = -1e-5
    return a, b


def dense(layer_id: int, kernel: np.ndarray, bias: np.ndarray | None, activation: str = "linear",
          alpha: float | None = None) -> LayerSpec:
    attributes: dict = {"activation": activation, "use_bias": int(bias is not None)}
    if alpha is not None:
        attributes["alpha"] = alpha
    params = {"kernel": kernel.astype(np.float32)}
    if bias is not None:
        params["bias"] = bias.astype(np.float32)
    return LayerSpec(layer_id, "dense", kernel.shape[0], [layer_id - 1], attributes, params)


def linear_network(nlev: int, factor: float = 1.0, name: str = "linear") -> ModelSpec:
    """One linear dense layer computing ``factor * (A x + b)`` in physical units
    through the file's normalization: the network sees (x - o_in) / s_in and
    returns W xn + c, de-normalized as y = s_out (W xn + c) + o_out."""
    a, b = linear_coefficients(nlev)
    a, b = factor * a, factor * b
    norm_in, norm_out = normalizations(nlev)
    o_in, s_in = norm_in.offset.astype(np.float64), norm_in.scale.astype(np.float64)
    o_out, s_out = norm_out.offset.astype(np.float64), norm_out.scale.astype(np.float64)
    kernel = a * s_in[None, :] / s_out[:, None]
    bias = (a @ o_in + b - o_out) / s_out
    inputs, outputs = labels(Layout(nlev=nlev))
    return ModelSpec(2 * nlev + 4, 2 * nlev + 5, [dense(1, kernel, bias)], name=name, inputs=inputs,
                     outputs=outputs, input_normalization=norm_in, output_normalization=norm_out)


def raw_network(nlev: int, kernel: np.ndarray, bias: np.ndarray, name: str) -> ModelSpec:
    """One linear layer on the physical inputs, no normalization."""
    inputs, outputs = labels(Layout(nlev=nlev))
    return ModelSpec(2 * nlev + 4, 2 * nlev + 5, [dense(1, kernel, bias)], name=name,
                     inputs=inputs, outputs=outputs)


def limiter_network(nlev: int) -> ModelSpec:
    """PHQ_k = -1e-3 Q_k (empties a level in 1000 s, so q + dt dq/dt < 0 for
    dt = 3600 s) and PRECT = -1e-5 kg m-2 s-1; everything else zero."""
    kernel = np.zeros((2 * nlev + 5, 2 * nlev + 4))
    bias = np.zeros(2 * nlev + 5)
    for k in range(nlev):
        kernel[nlev + k, nlev + k] = -1e-3
    bias[2 * nlev + 4] = -1e-5
    return raw_network(nlev, kernel, bias, "limiter")


def overflow_network(nlev: int) -> ModelSpec:
    """TPHYSTND_3 = 1e38 T_1: +Inf in float32 (about 2e40 K s-1 in float64)."""
    kernel = np.zeros((2 * nlev + 5, 2 * nlev + 4))
    kernel[2, 0] = 1e38
    return raw_network(nlev, kernel, np.zeros(2 * nlev + 5), "overflow")


def mlp(nlev: int, depth: int, width: int, seed: int) -> ModelSpec:
    """A depth x width leaky-ReLU MLP with random (Glorot-uniform) weights, the
    interface's names and units and realistic normalization; outputs are
    random but small (timing only)."""
    rng = np.random.default_rng(seed)
    n_in, n_out = 2 * nlev + 4, 2 * nlev + 5
    sizes = [n_in] + [width] * depth + [n_out]
    layers = []
    for i in range(len(sizes) - 1):
        limit = np.sqrt(6.0 / (sizes[i] + sizes[i + 1]))
        kernel = rng.uniform(-limit, limit, (sizes[i + 1], sizes[i]))
        last = i == len(sizes) - 2
        layers.append(dense(i + 1, kernel, np.zeros(sizes[i + 1]), "linear" if last else "leaky_relu",
                            None if last else 0.1))
    in_off = np.concatenate([np.full(nlev, 250.0), np.full(nlev, 5e-3), [1e5, 300.0, 10.0, 80.0]])
    in_scale = np.concatenate([np.full(nlev, 30.0), np.full(nlev, 5e-3), [1e3, 400.0, 10.0, 60.0]])
    out_off = np.concatenate([np.zeros(2 * nlev), [300.0, 250.0, 240.0, 60.0, 3e-5]])
    out_scale = np.concatenate([np.full(nlev, 1e-6), np.full(nlev, 1e-10), [10.0] * 4, [1e-6]])
    inputs, outputs = labels(Layout(nlev=nlev))
    return ModelSpec(n_in, n_out, layers, name=f"mlp_{depth}x{width}", inputs=inputs, outputs=outputs,
                     input_normalization=Normalization(in_off.astype(np.float32), in_scale.astype(np.float32)),
                     output_normalization=Normalization(out_off.astype(np.float32),
                                                        out_scale.astype(np.float32)))


def write_interface_table(path: Path, nlev: int) -> None:
    inputs, outputs = labels(Layout(nlev=nlev))
    with open(path, "w") as f:
        for kind, items in (("in", inputs), ("out", outputs)):
            for i, (name, units) in enumerate(items, start=1):
                f.write(f"{kind} {i} {name}|{units}\n")


def main(out_dir: str, nlev: int) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_model_file(linear_network(nlev), out / f"linear_L{nlev}.fkb")
    write_model_file(linear_network(nlev, 3.0, "linear_times_3"), out / f"linear3_L{nlev}.fkb")
    write_model_file(limiter_network(nlev), out / f"limiter_L{nlev}.fkb")
    write_model_file(overflow_network(nlev), out / f"overflow_L{nlev}.fkb")
    write_model_file(mlp(nlev, 5, 128, seed=1), out / f"mlp_5x128_L{nlev}.fkb")

    # interface mismatches
    spec = linear_network(nlev)
    spec.inputs[nlev], spec.inputs[nlev + 1] = spec.inputs[nlev + 1], spec.inputs[nlev]
    write_model_file(spec, out / f"swapped_L{nlev}.fkb")
    spec = linear_network(nlev)
    spec.inputs[2 * nlev] = ("PS", "hPa")
    write_model_file(spec, out / f"hpa_L{nlev}.fkb")
    spec = linear_network(nlev)
    spec.outputs[2 * nlev + 4] = ("PRECT", "mm day-1")
    write_model_file(spec, out / f"mmday_L{nlev}.fkb")
    spec = linear_network(nlev)
    spec.inputs, spec.outputs = [], []
    write_model_file(spec, out / f"unnamed_L{nlev}.fkb")
    spec = linear_network(2 * nlev)
    write_model_file(spec, out / f"linear_L{2 * nlev}.fkb")
    spec = linear_network(nlev)    # drop PRECT: 2 nlev + 4 outputs
    layer = spec.layers[0]
    layer.params = {k: v[:-1] for k, v in layer.params.items()}
    layer.n_out -= 1
    spec.n_outputs -= 1
    spec.outputs = spec.outputs[:-1]
    spec.output_normalization = Normalization(*(v[:-1] for v in spec.output_normalization))
    write_model_file(spec, out / f"noprect_L{nlev}.fkb")

    for n in (nlev, 3):
        write_interface_table(out / f"interface_L{n}.txt", n)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: make_test_networks.py OUT_DIR NLEV")
    main(sys.argv[1], int(sys.argv[2]))
