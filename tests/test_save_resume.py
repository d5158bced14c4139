"""Saving a network trained in Fortran with its training state, and resuming.

Train N steps in the Fortran runtime, ``save``, ``load`` into a fresh
network, train M more: bit for bit the network that trained N + M steps
straight, for every optimizer, with dropout, batch normalization and a
shuffled ``fit``, at 32 and 64 bit. The saved file converts to a ``.keras``
model with the Fortran predictions; old (version-1) files still load; a
corrupt or inconsistent training section is refused with one line.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from emulators.fkb import FKBError, load
from emulators.modelfile import (LayerSpec, ModelFileError, ModelSpec, Normalization,
                                 read_model_file, write_model_file)

N_IN, N_OUT = 3, 2

OPTIMIZERS = {
    "sgd": ("sgd", dict(learning_rate=0.05)),
    "sgd_momentum": ("sgd", dict(learning_rate=0.05, momentum=0.9)),
    "sgd_nesterov": ("sgd", dict(learning_rate=0.05, momentum=0.9, nesterov=True)),
    "rmsprop": ("rmsprop", dict(learning_rate=0.005)),
    "rmsprop_centered_momentum": ("rmsprop", dict(learning_rate=0.005, momentum=0.5, centered=True)),
    "adam": ("adam", dict(learning_rate=0.01)),
    "adam_amsgrad": ("adam", dict(learning_rate=0.01, amsgrad=True)),
    "adamw": ("adamw", dict(learning_rate=0.01, weight_decay=0.1)),
    "adagrad": ("adagrad", dict(learning_rate=0.05)),
}


def demo_spec(seed: int = 0) -> ModelSpec:
    """Dense(8, tanh) -> BatchNormalization -> Dropout(0.25) -> Dense(2),
    with names, units and input/output normalization."""
    rng = np.random.default_rng(seed)

    def normal(*shape: int, scale: float = 0.5) -> np.ndarray:
        return (scale * rng.normal(size=shape)).astype(np.float32)

    layers = [
        LayerSpec(1, "dense", 8, [0], {"activation": "tanh", "use_bias": 1},
                  {"kernel": normal(8, N_IN), "bias": normal(8, scale=0.1)}),
        LayerSpec(2, "batch_normalization", 8, [1],
                  {"epsilon": 0.001, "center": 1, "scale": 1, "momentum": 0.9},
                  {"gamma": 1 + normal(8, scale=0.1), "beta": normal(8, scale=0.1),
                   "moving_mean": normal(8, scale=0.1),
                   "moving_variance": (1 + np.abs(normal(8, scale=0.3))).astype(np.float32)}),
        LayerSpec(3, "dropout", 8, [2], {"variant": "dropout", "rate": 0.25}, {}),
        LayerSpec(4, "dense", N_OUT, [3], {"activation": "linear", "use_bias": 1},
                  {"kernel": normal(N_OUT, 8), "bias": normal(N_OUT, scale=0.1)}),
    ]
    return ModelSpec(
        n_inputs=N_IN, n_outputs=N_OUT, layers=layers, name="resume_demo",
        inputs=[("T", "K"), ("q", "kg kg-1"), ("ps", "Pa")],
        outputs=[("dTdt", "K s-1"), ("precip", "kg m-2 s-1")],
        input_normalization=Normalization(np.array([280.0, 0.01, 1.0e5], np.float32),
                                          np.array([10.0, 0.005, 1.0e3], np.float32)),
        output_normalization=Normalization(np.array([0.0, 1.0e-5], np.float32),
                                           np.array([1.0e-4, 1.0e-5], np.float32)))


def demo_data(n: int = 45, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, N_IN))
    x = np.array([280.0, 0.01, 1.0e5]) + z * np.array([10.0, 0.005, 1.0e3])
    y = np.stack([1.0e-4 * np.tanh(z[:, 0] - z[:, 1]), 1.0e-5 * (1 + 0.5 * z[:, 2] * z[:, 0])], axis=1)
    return x, y


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("resume") / "demo.fkb"
    write_model_file(demo_spec(), path)
    return path


def train(net, x, y, epochs: int) -> None:
    net.fit(x, y, epochs=epochs, batch_size=8)
    net.train_step(x[:10], y[:10])


@pytest.mark.parametrize("precision", [32, 64])
@pytest.mark.parametrize("case", sorted(OPTIMIZERS))
def test_resume_is_bitwise_the_straight_run(case, precision, model_file, tmp_path):
    optimizer, settings = OPTIMIZERS[case]
    dtype = np.float32 if precision == 32 else np.float64
    x, y = (a.astype(dtype) for a in demo_data())
    saved = tmp_path / "trained.fkb"
    with load(model_file) as straight:
        straight.compile(optimizer, "mse", precision=precision, seed=3, **settings)
        train(straight, x, y, epochs=2)
        straight.save(saved)
        with load(saved) as resumed:
            assert resumed.iterations == straight.iterations > 0
            train(straight, x, y, epochs=3)
            train(resumed, x, y, epochs=3)  # no compile: the state came with the file
            assert resumed.iterations == straight.iterations
            np.testing.assert_array_equal(resumed.weights(), straight.weights())
            np.testing.assert_array_equal(resumed.predict(x), straight.predict(x))
        trained = straight.weights()
    # and the saved run differs from a fresh start (the state matters)
    with load(model_file) as fresh:
        fresh.compile(optimizer, "mse", precision=precision, seed=3, **settings)
        train(fresh, x, y, epochs=3)
        assert np.any(fresh.weights() != trained)


def test_fit_continues_its_shuffling_across_save_and_load(model_file, tmp_path):
    """fit(2), save, load, fit(3) == fit(5): the shuffling generator is saved."""
    x, y = (a.astype(np.float32) for a in demo_data())
    with load(model_file) as a, load(model_file) as b:
        for net in (a, b):
            net.compile("adam", "mse", seed=11, learning_rate=0.01)
        history_a = a.fit(x, y, epochs=5, batch_size=8)
        b.fit(x, y, epochs=2, batch_size=8)
        b.save(tmp_path / "two_epochs.fkb")
        with load(tmp_path / "two_epochs.fkb") as c:
            history_c = c.fit(x, y, epochs=3, batch_size=8)
            np.testing.assert_array_equal(c.weights(), a.weights())
        np.testing.assert_array_equal(history_c, history_a[2:])
        # an explicit seed restarts the shuffling: another run
        b.fit(x, y, epochs=3, batch_size=8, seed=12)
        assert np.any(b.weights() != a.weights())


def test_training_section_is_documented_and_round_trips_in_python(model_file, tmp_path):
    x, y = (a.astype(np.float64) for a in demo_data())
    saved = tmp_path / "adam64.fkb"
    with load(model_file) as net:
        net.compile("adam", "huber", precision=64, huber_delta=0.5, seed=3, learning_rate=0.01,
                    amsgrad=True, schedule=dict(kind="exponential", initial_learning_rate=0.02,
                                                decay_steps=4, decay_rate=0.5))
        train(net, x, y, epochs=1)
        weights = net.weights()
        net.save(saved)
    data = saved.read_bytes()
    assert data.startswith(b"FKB 2\n")
    spec = read_model_file(saved)
    state = spec.training
    assert state is not None and state.precision == 64
    assert state.attributes == {"iterations": 7, "loss": "huber", "huber_delta": 0.5}
    assert state.optimizer == "adam"
    assert state.optimizer_attributes == {"learning_rate": 0.01, "beta_1": 0.9, "beta_2": 0.999,
                                          "epsilon": 1e-07, "amsgrad": 1, "weight_decay": 0.0}
    assert state.schedule == "exponential"
    assert state.schedule_attributes == {"initial_learning_rate": 0.02, "decay_steps": 4,
                                         "decay_rate": 0.5, "staircase": 0}
    assert sorted(state.generators) == [0, 3]  # fit's shuffling and the dropout layer
    assert list(state.tensors) == ["momentum", "velocity", "velocity_hat", "weights",
                                   "moving_statistics"]
    assert all(t.dtype == np.float64 for t in state.tensors.values())
    # 64-bit training keeps its exact weights; the model's are their float32 rounding
    np.testing.assert_array_equal(state.tensors["weights"], weights)
    kernel = spec.layers[0].params["kernel"]
    np.testing.assert_array_equal(kernel.ravel(order="F"), weights[:kernel.size].astype(np.float32))
    assert np.any(weights[:kernel.size] != kernel.ravel(order="F").astype(np.float64))
    # the names, units and normalization of the original file are kept
    original = demo_spec()
    assert (spec.name, spec.inputs, spec.outputs) == (original.name, original.inputs, original.outputs)
    np.testing.assert_array_equal(spec.input_normalization.scale, original.input_normalization.scale)
    from fkb_cli import describe_spec  # fkb info
    assert "training state: adam (learning_rate=0.01 " in describe_spec(spec, saved)
    assert "7 steps, 64-bit arrays momentum, velocity, velocity_hat, weights" in describe_spec(spec, saved)
    # Python reads and rewrites the file byte for byte; the hash covers the section
    copy = tmp_path / "copy.fkb"
    assert write_model_file(spec, copy) == spec.sha256
    assert copy.read_bytes() == data
    with load(copy) as net:
        assert net.iterations == 7
        np.testing.assert_array_equal(net.weights(), weights)
        # a trained file serves float32 inference (fkb predict, the GCM) too
        assert net.predict(x.astype(np.float32)).dtype == np.float32


@pytest.mark.parametrize("precision", [32, 64])
def test_trained_file_converts_to_keras_with_the_fortran_predictions(precision, model_file, tmp_path):
    import keras

    from fkb_cli import main
    from emulators.convert import convert

    dtype = np.float32 if precision == 32 else np.float64
    x, y = (a.astype(dtype) for a in demo_data())
    trained = tmp_path / "trained.fkb"
    with load(model_file) as net:
        net.compile("rmsprop", "mse", precision=precision, learning_rate=0.01, momentum=0.5)
        train(net, x, y, epochs=3)
        net.save(trained)
    target = tmp_path / "model.keras"
    assert main(["convert", str(trained), str(target)]) == 0  # fkb convert trained.fkb model.keras
    model = keras.saving.load_model(target)
    x32 = x.astype(np.float32)
    with load(trained) as fortran:
        # the file's float32 weights in the 32-bit runtime
        expected = fortran.predict(x32) if precision == 32 else None
    if expected is None:  # the 32-bit runtime on the file's float32 weights
        plain = tmp_path / "plain.fkb"
        write_model_file(dataclasses.replace(read_model_file(trained), training=None), plain)
        with load(plain) as fortran:
            expected = fortran.predict(x32)
    got = np.asarray(model.predict(x32, verbose=0))
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6 * np.abs(expected).max())
    # and back: a plain model file, the same model without the training section
    back = tmp_path / "back.fkb"
    convert(target, back)
    assert back.read_bytes().startswith(b"FKB 1\n")
    expected_spec = dataclasses.replace(read_model_file(trained), training=None, sha256=None)
    plain_again = tmp_path / "expected.fkb"
    write_model_file(expected_spec, plain_again)
    assert back.read_bytes() == plain_again.read_bytes()


def test_old_format_files_load_and_are_not_compiled(model_file, tmp_path):
    assert model_file.read_bytes().startswith(b"FKB 1\n")
    x, y = (a.astype(np.float32) for a in demo_data())
    with load(model_file) as net:
        assert net.iterations == 0
        with pytest.raises(FKBError, match="compile"):
            net.train_step(x, y)
        plain = tmp_path / "plain.fkb"
        net.save(plain)  # an uncompiled network: version 1, the same model
    assert plain.read_bytes() == model_file.read_bytes()


def saved_adam_state(model_file, tmp_path) -> ModelSpec:
    x, y = (a.astype(np.float32) for a in demo_data())
    with load(model_file) as net:
        net.compile("adam", "mse")
        train(net, x, y, epochs=1)
        net.save(tmp_path / "adam.fkb")
    return read_model_file(tmp_path / "adam.fkb")


def one_line_error(path) -> str:
    with pytest.raises(FKBError) as info:
        load(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    return message


def test_corrupt_training_section_gives_a_one_line_error(model_file, tmp_path):
    spec = saved_adam_state(model_file, tmp_path)
    path = tmp_path / "adam.fkb"
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x10  # in the last slot array
    path.write_bytes(bytes(data))
    assert "hash mismatch" in one_line_error(path)
    with pytest.raises(ModelFileError, match="hash mismatch"):
        read_model_file(path)

    bad = tmp_path / "bad.fkb"
    cases = [
        (dict(optimizer="lion"), "unknown optimizer lion"),
        (dict(optimizer_attributes={k: v for k, v in spec.training.optimizer_attributes.items()
                                    if k != "beta_2"}), "no beta_2="),
        (dict(attributes={**spec.training.attributes, "loss": "hinge"}), "unknown loss hinge"),
        (dict(tensors={k: v for k, v in spec.training.tensors.items() if k != "velocity"}),
         "needs param velocity"),
        (dict(tensors={**spec.training.tensors, "momentum": spec.training.tensors["momentum"][:5]}),
         "momentum has 5 values"),
        (dict(generators={0: 7}), "no generator line for layer 3 (dropout)"),
    ]
    for change, text in cases:
        write_model_file(dataclasses.replace(spec, training=dataclasses.replace(spec.training, **change)), bad)
        message = one_line_error(bad)
        assert "training state:" in message and text in message, message


def test_edited_weights_with_a_stale_64_bit_state_are_refused(model_file, tmp_path):
    x, y = (a.astype(np.float64) for a in demo_data())
    with load(model_file) as net:
        net.compile("sgd", "mse", precision=64, learning_rate=0.05)
        train(net, x, y, epochs=1)
        net.save(tmp_path / "sgd64.fkb")
    spec = read_model_file(tmp_path / "sgd64.fkb")
    spec.layers[0].params["kernel"][0, 0] += 0.5
    write_model_file(spec, tmp_path / "edited.fkb")
    assert "does not round to the model's float32 weight" in one_line_error(tmp_path / "edited.fkb")


def test_python_writer_checks_the_training_section(model_file, tmp_path):
    spec = saved_adam_state(model_file, tmp_path)
    with pytest.raises(ModelFileError, match="float32 cannot hold exactly"):
        write_model_file(dataclasses.replace(spec, training=dataclasses.replace(
            spec.training, tensors={"momentum": np.full(3, 0.1, np.float64)}, precision=32)),
            tmp_path / "x.fkb")
    with pytest.raises(ModelFileError, match="generator id 9"):
        write_model_file(dataclasses.replace(spec, training=dataclasses.replace(
            spec.training, generators={9: 1})), tmp_path / "x.fkb")
