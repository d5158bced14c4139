"""End-to-end demo of the bridge, the README's main job until the case study lands.

Trains a small Keras network on a synthetic column-physics-like problem,
converts it to a model file with input/output normalization and variable
names, predicts with the Fortran runtime, and prints how well the two agree.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from emulators.modelfile import Normalization, write_model_file

# TensorFlow and the Fortran runtime are imported inside the functions that use them, so that
# importing this module does not load them (start-up time).

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

N_LEVELS = 10
TOLERANCE = 1e-5  # max |keras - fortran| / max |keras|, float32 rounding


def synthetic_columns(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Columns of temperature (K) and humidity (kg/kg) and a smooth, nonlinear
    'heating' response (K/day), so the network has something real to learn."""
    z = np.linspace(0.0, 1.0, N_LEVELS)
    t = 290.0 - 60.0 * z + rng.normal(0.0, 3.0, (n, N_LEVELS))
    q = 0.015 * np.exp(-3.0 * z) * rng.uniform(0.3, 1.1, (n, N_LEVELS))
    rh_proxy = q / (0.015 * np.exp(-3.0 * z))
    heating = 2.0 * np.tanh(4.0 * (rh_proxy - 0.7)) * np.exp(-((z - 0.4) / 0.3) ** 2) + 0.01 * (t - 250.0)
    return np.concatenate([t, q], axis=1).astype(np.float32), heating.astype(np.float32)


def run_demo(out: Path, seed: int = 0) -> bool:
    """Run the demo into ``out``; returns True when Keras and Fortran agree."""
    import keras
    from emulators.convert import keras_to_spec
    from emulators.fkb import load

    out.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    x, y = synthetic_columns(4096, rng)
    x_mean, x_std = x.mean(axis=0), x.std(axis=0)
    y_mean, y_std = y.mean(axis=0), y.std(axis=0)

    n_in, n_out = x.shape[1], y.shape[1]
    inputs = keras.Input((n_in,), name="column_state")
    h = keras.layers.Dense(64, activation="relu")(inputs)
    h = keras.layers.LeakyReLU(negative_slope=0.1)(keras.layers.Dense(64)(h))
    skip = h
    h = keras.layers.Dense(64, activation="swish")(h)
    h = keras.layers.Add()([h, skip])
    outputs = keras.layers.Dense(n_out, name="heating")(h)
    model = keras.Model(inputs, outputs, name="demo_residual_mlp")
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    t0 = time.perf_counter()
    history = model.fit((x - x_mean) / x_std, (y - y_mean) / y_std, epochs=8, batch_size=128,
                        validation_split=0.2, verbose=0)
    train_seconds = time.perf_counter() - t0

    keras_path = out / "demo.keras"
    model.save(keras_path)

    spec = keras_to_spec(keras_path)
    spec.inputs = [(f"T_{k}", "K") for k in range(N_LEVELS)] + [(f"q_{k}", "kg kg-1") for k in range(N_LEVELS)]
    spec.outputs = [(f"dTdt_{k}", "K day-1") for k in range(N_LEVELS)]
    spec.input_normalization = Normalization(x_mean.astype(np.float32), x_std.astype(np.float32))
    spec.output_normalization = Normalization(y_mean.astype(np.float32), y_std.astype(np.float32))
    model_path = out / "demo.fkb"
    sha256 = write_model_file(spec, model_path)

    x_test, y_test = synthetic_columns(1000, np.random.default_rng(seed + 1))
    y_keras = np.asarray(model((x_test - x_mean) / x_std, training=False)) * y_std + y_mean
    net = load(model_path)
    t0 = time.perf_counter()
    y_fortran = net.predict(x_test)
    fortran_seconds = time.perf_counter() - t0

    rel_err = float(np.max(np.abs(y_fortran - y_keras)) / np.max(np.abs(y_keras)))
    skill = 1.0 - float(np.mean((y_fortran - y_test) ** 2) / np.var(y_test))
    agree = rel_err <= TOLERANCE
    print(f"Keras model           {keras_path}  ({model.count_params()} parameters, "
          f"trained {train_seconds:.1f} s, val loss {history.history['val_loss'][-1]:.4f})")
    print(f"model file            {model_path}  (sha256 {sha256})")
    print(f"test columns          {x_test.shape[0]}")
    print(f"Fortran predict       {1e3 * fortran_seconds:.2f} ms for the batch")
    print(f"max |Fortran - Keras| / max |Keras| = {rel_err:.2e}  (tolerance {TOLERANCE:.0e}): "
          f"{'AGREE' if agree else 'DISAGREE'}")
    print(f"R^2 of the emulated heating against the truth: {skill:.3f}")
    return agree
