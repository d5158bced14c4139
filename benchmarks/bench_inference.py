"""Inference speed and load time of the Fortran runtime, against BLAS and Keras.

Prints one table per network: time per batch of the Fortran runtime (through
the Python handle, which adds one f2py call), the same dense-layer chain as
NumPy matrix products (the BLAS reference: the floating-point work alone, no
activations' overhead beyond NumPy's), and Keras (TensorFlow CPU) on the same
batch. Then the load time of a model file with over a million parameters.

    .venv/bin/python benchmarks/bench_inference.py
"""
from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np


def best_time(fn, repeat: int = 7, min_seconds: float = 0.2) -> float:
    """Best of `repeat` timings, each averaging enough calls to last min_seconds."""
    fn()
    t0 = time.perf_counter()
    fn()
    once = max(time.perf_counter() - t0, 1e-7)
    number = max(1, int(min_seconds / once / repeat))
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - t0) / number)
    return best


def mlp(n_in: int, widths: list[int], n_out: int, seed: int = 0):
    import keras
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((n_in,))
    h = inputs
    for w in widths:
        h = keras.layers.Dense(w, activation="relu")(h)
    outputs = keras.layers.Dense(n_out)(h)
    return keras.Model(inputs, outputs)


def numpy_chain(model):
    """The network's dense chain as NumPy products: the BLAS reference."""
    layers = [(k.astype(np.float32), b.astype(np.float32))
              for k, b in (l.get_weights() for l in model.layers if l.get_weights())]

    def run(x):
        h = x
        for i, (k, b) in enumerate(layers):
            h = h @ k
            h += b
            if i < len(layers) - 1:
                np.maximum(h, 0.0, out=h)
        return h
    return run


def bench_network(label: str, model, path: Path, columns: list[int]) -> None:
    import tensorflow as tf
    from emulators.convert import keras_to_spec
    from emulators.fkb import load
    from emulators.modelfile import write_model_file

    write_model_file(keras_to_spec(model), path)
    net = load(path)
    chain = numpy_chain(model)
    keras_call = tf.function(lambda x: model(x, training=False))
    flops_per_col = 2 * sum(int(np.prod(w.shape)) for l in model.layers for w in l.get_weights()[:1])
    print(f"\n{label}: {model.count_params():,} parameters, {flops_per_col:,} flop per column")
    print(f"{'columns':>8} | {'Fortran (ms)':>12} {'GFLOP/s':>8} | {'NumPy BLAS (ms)':>15} | {'Keras (ms)':>10} | "
          f"{'Fortran/BLAS':>12} {'Keras/Fortran':>13}")
    rng = np.random.default_rng(0)
    for n in columns:
        x = rng.standard_normal((n, net.n_inputs)).astype(np.float32)
        np.testing.assert_allclose(net.predict(x), chain(x), rtol=1e-4, atol=1e-4)
        t_f = best_time(lambda: net.predict(x))
        t_b = best_time(lambda: chain(x))
        xt = tf.constant(x)
        t_k = best_time(lambda: keras_call(xt).numpy())
        print(f"{n:>8} | {1e3 * t_f:>12.3f} {flops_per_col * n / t_f / 1e9:>8.1f} | {1e3 * t_b:>15.3f} | "
              f"{1e3 * t_k:>10.3f} | {t_f / t_b:>12.2f} {t_k / t_f:>13.2f}")


def build_fortran_bench(tmp: Path) -> Path:
    """Build the library with CMake and the pure-Fortran timing program against it."""
    root = Path(__file__).resolve().parents[1]
    build = tmp / "fortran-build"
    subprocess.run(["cmake", "-S", str(root / "fortran"), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release",
                    "-DFKB_BUILD_TESTS=OFF", "-DFKB_BUILD_EXAMPLE=OFF"], check=True, capture_output=True)
    subprocess.run(["cmake", "--build", str(build), "-j2"], check=True, capture_output=True)
    exe = tmp / "bench_predict"
    subprocess.run(["gfortran", "-O3", "-I", str(build / "modules"),
                    str(root / "benchmarks" / "fortran" / "bench_predict.f90"),
                    str(build / "libfkb.a"), "-lopenblas", "-o", str(exe)], check=True)
    return exe


def bench_fortran_only(exe: Path, path: Path, label: str) -> None:
    out = subprocess.run([str(exe), str(path), "2048"], check=True, capture_output=True, text=True).stdout
    times = dict(line.split() for line in out.splitlines())
    print(f"  pure Fortran, {label}: single-column call {float(times['single']):.1f} us/column, "
          f"batched (2048) {float(times['batch']):.2f} us/column")


def bench_load(model, path: Path) -> None:
    from emulators.convert import keras_to_spec
    from emulators.fkb import load
    from emulators.modelfile import write_model_file
    write_model_file(keras_to_spec(model), path)
    size = path.stat().st_size
    t = best_time(lambda: load(path).close(), repeat=5, min_seconds=0.5)
    print(f"\nload of a {model.count_params():,}-parameter model file ({size / 1e6:.1f} MB): "
          f"{1e3 * t:.1f} ms (Fortran reader, SHA-256 verified; target: well under 1 s)")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        exe = build_fortran_bench(tmp)
        bench_network("FKB-paper emulator 94 -> 5 x 256 (relu) -> 65", mlp(94, [256] * 5, 65),
                      tmp / "paper.fkb", [1, 64, 2048, 8192])
        bench_fortran_only(exe, tmp / "paper.fkb", "94 -> 5 x 256 -> 65")
        bench_network("GCM emulator 24 -> 5 x 128 (relu) -> 25", mlp(24, [128] * 5, 25),
                      tmp / "gcm.fkb", [1, 2048])
        bench_fortran_only(exe, tmp / "gcm.fkb", "24 -> 5 x 128 -> 25")
        bench_load(mlp(94, [1000, 1000], 65), tmp / "big.fkb")


if __name__ == "__main__":
    main()
