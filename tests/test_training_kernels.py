"""Training on the runtime's own kernels, in batches wide enough to be shared
among threads (docs/fortran-api.md, "Training speed").

Batches of 96 columns or more run the dense layers' forward and backward
passes on the packed AVX-512 kernels, in blocks of columns on the OpenMP
threads, with the weight gradients summed over the batch in a fixed order:
the gradients must match ``tf.GradientTape``, the trained weights must not
depend on the thread count by a single bit, and the portable path (the BLAS,
``FKB_DENSE_KERNEL=blas``) must train to the same weights up to round-off.
"""
from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from emulators.convert import keras_to_spec
from emulators.fkb import dense_kernel, load, set_threads
from emulators.modelfile import write_model_file

N_IN, N_OUT = 23, 19
BATCH = 250          # not a multiple of the kernels' 12-column tile


def wide_model(seed: int) -> keras.Model:
    """Widths that are not multiples of the kernels' 16- or 32-row panels; a
    dense layer with its own activation (its pre-activation recomputed in the
    backward pass), one without a bias, and separate leaky ReLU layers."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((N_IN,))
    h = keras.layers.Dense(70, activation="tanh",
                           bias_initializer=keras.initializers.RandomNormal(stddev=0.1))(inputs)
    h = keras.layers.Dense(37, use_bias=False)(h)
    h = keras.layers.LeakyReLU(negative_slope=0.3)(h)
    h = keras.layers.Dense(45, bias_initializer=keras.initializers.RandomNormal(stddev=0.1))(h)
    h = keras.layers.ReLU()(h)
    outputs = keras.layers.Dense(N_OUT)(h)
    return keras.Model(inputs, outputs)


def data(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, N_IN)).astype(np.float32)
    w = rng.normal(size=(N_IN, N_OUT)).astype(np.float32) / np.sqrt(N_IN)
    return x, np.tanh(x @ w).astype(np.float32)


def fortran_copy(model: keras.Model, path):
    write_model_file(keras_to_spec(model), path)
    return load(path)


@pytest.fixture
def two_threads():
    set_threads(2)
    yield
    set_threads(2)


@pytest.mark.parametrize("precision", [32, 64])
def test_wide_batch_gradients_match_gradient_tape(precision, tmp_path, two_threads):
    keras.backend.clear_session()
    x, y = data(5, BATCH)
    assert_gradients_match(wide_model(seed=3), x, y, tmp_path / "wide.fkb", precision)


def branching_model(seed: int) -> keras.Model:
    """Where training's fused passes (docs/fortran-api.md, "Training speed")
    must not apply, or only in part: a relu feeding two dense layers (its
    gradient is the sum of theirs), a leaky relu feeding an Add, and a dense
    layer with an activation of its own before a LeakyReLU."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((N_IN,))
    h = keras.layers.Dense(40)(inputs)
    h = keras.layers.Activation("relu")(h)
    a = keras.layers.Dense(33)(h)
    b = keras.layers.Dense(33)(h)
    a = keras.layers.LeakyReLU(negative_slope=0.2)(a)
    h = keras.layers.Add()([a, b])
    h = keras.layers.Dense(29, activation="tanh")(h)
    h = keras.layers.LeakyReLU(negative_slope=0.1)(h)
    outputs = keras.layers.Dense(N_OUT)(h)
    return keras.Model(inputs, outputs)


def zero_preactivation_model(activation: keras.layers.Layer) -> keras.Model:
    """Pre-activations exactly 0 everywhere: where relu's and leaky relu's
    derivatives are chosen by convention (Keras: ReLU(negative_slope) takes
    0 there, LeakyReLU its slope)."""
    keras.utils.set_random_seed(1)
    inputs = keras.Input((N_IN,))
    h = keras.layers.Dense(40, kernel_initializer="zeros")(inputs)
    h = activation(h)
    outputs = keras.layers.Dense(N_OUT)(h)
    return keras.Model(inputs, outputs)


def assert_gradients_match(model: keras.Model, x, y, path, precision: int = 32) -> None:
    with tf.GradientTape() as tape:
        value = keras.losses.MeanSquaredError()(y, model(x, training=True))
    expected = np.concatenate([np.asarray(g).ravel()
                               for g in tape.gradient(value, model.trainable_weights)])
    dtype = np.float32 if precision == 32 else np.float64
    with fortran_copy(model, path) as net:
        net.compile("sgd", "mse", precision=precision)
        got_value, got = net.gradient(x.astype(dtype), y.astype(dtype))
    assert got_value == pytest.approx(float(value), rel=1e-5)
    scale = np.max(np.abs(expected))
    np.testing.assert_allclose(got, expected, rtol=2e-3, atol=1e-5 * scale)


@pytest.mark.parametrize("precision", [32, 64])
def test_branching_gradients_match_gradient_tape(precision, tmp_path, two_threads):
    keras.backend.clear_session()
    x, y = data(6, BATCH)
    assert_gradients_match(branching_model(seed=4), x, y, tmp_path / "branching.fkb", precision)


@pytest.mark.parametrize("activation", [lambda: keras.layers.ReLU(negative_slope=0.2),
                                        lambda: keras.layers.LeakyReLU(negative_slope=0.2),
                                        lambda: keras.layers.ReLU()],
                         ids=["relu-with-slope", "leaky-relu", "relu"])
def test_derivative_at_zero_is_keras_s(activation, tmp_path, two_threads):
    keras.backend.clear_session()
    x, y = data(8, BATCH)
    assert_gradients_match(zero_preactivation_model(activation()), x, y, tmp_path / "zero.fkb")


@pytest.mark.parametrize("precision", [32, 64])
def test_training_bits_do_not_depend_on_the_thread_count(precision, tmp_path, two_threads):
    keras.backend.clear_session()
    model = wide_model(seed=7)
    x, y = data(11, 4 * BATCH + 17)
    write_model_file(keras_to_spec(model), tmp_path / "net.fkb")
    weights, histories = [], []
    for threads in (1, 2, 3):
        set_threads(threads)
        with load(tmp_path / "net.fkb") as net:
            net.compile("adam", "mse", precision=precision, learning_rate=0.003)
            histories.append(net.fit(x, y, epochs=3, batch_size=BATCH, seed=4))
            weights.append(net.weights())
    assert histories[0][-1] < histories[0][0]
    for other in (1, 2):
        np.testing.assert_array_equal(weights[other], weights[0])
        np.testing.assert_array_equal(histories[other], histories[0])


def test_portable_path_trains_to_the_same_weights(tmp_path, monkeypatch, two_threads):
    if dense_kernel() != "avx512":
        pytest.skip("no AVX-512 here: the portable path is the only one")
    keras.backend.clear_session()
    model = wide_model(seed=13)
    x, y = data(17, 2 * BATCH)
    write_model_file(keras_to_spec(model), tmp_path / "net.fkb")
    weights = {}
    for path in ("avx512", "blas"):
        if path == "blas":
            monkeypatch.setenv("FKB_DENSE_KERNEL", "blas")
        with load(tmp_path / "net.fkb") as net:
            assert dense_kernel() == path
            net.compile("adam", "mse", learning_rate=0.003)
            net.fit(x, y, epochs=2, batch_size=BATCH, seed=2)
            weights[path] = net.weights()
    moved = np.max(np.abs(weights["avx512"] - np.concatenate(
        [np.asarray(w).ravel() for w in model.trainable_weights])))
    assert moved > 1e-3
    np.testing.assert_allclose(weights["blas"], weights["avx512"], rtol=0, atol=1e-5 * max(moved, 1.0))
