"""Emulators trained by the Fortran runtime (hyperparameter ``trainer =
"fortran"``) against the same emulators trained by Keras: the same network,
initial weights and rules, so that full-batch training (one step per epoch,
no shuffling to tell them apart) agrees to float32 round-off and minibatch
training ends at a validation loss within a few percent; early stopping as
Keras's callback; a diverging loss stops with the epoch named."""
from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from emulators.synthetic import write_synthetic_dataset
from emulators.train import LoaderOptions, add_train_arguments, run_train, train_emulator
from emulators.train_fortran import EarlyStopping, ReduceOnPlateau

LOADER = LoaderOptions(time_block=4, memory_budget=4 * 2 ** 20)
BASE = dict(depth=2, width=32, learning_rate=3e-3, patience=3, dropout=0.0)


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    return write_synthetic_dataset(tmp_path_factory.mktemp("train") / "ref.nc", n_time=40, nlev=10, nlat=8,
                                   nlon=16, seed=1)


def both_trainers(data_file, **settings):
    return {trainer: train_emulator(None, data_file, hyperparameters=dict(BASE, trainer=trainer, **settings),
                                    loader=LOADER, evaluate=False, export=False)
            for trainer in ("keras", "fortran")}


@pytest.mark.parametrize("optimizer, schedule", [("adam", "constant"), ("nesterov", "step"),
                                                 ("rmsprop", "exponential"), ("sgd", "plateau")])
def test_full_batch_training_matches_keras_step_for_step(data_file, optimizer, schedule):
    """One minibatch of the whole training split per epoch, with batch
    normalization: the two trainers take the same steps."""
    runs = both_trainers(data_file, optimizer=optimizer, lr_schedule=schedule, lr_decay_epochs=1,
                         batch_size=100_000, epochs=4, batch_normalization=True)
    keras_run, fortran_run = runs["keras"], runs["fortran"]
    assert fortran_run.history["loss"] == pytest.approx(keras_run.history["loss"], rel=1e-4)
    assert fortran_run.history["val_loss"] == pytest.approx(keras_run.history["val_loss"], rel=1e-4)
    x = np.random.default_rng(0).standard_normal((64, 24)).astype(np.float32)
    # Adam and RMSprop scale each weight's step by its own gradient's size,
    # so round-off in a near-zero gradient moves that weight by up to the
    # learning rate either way: the outputs agree to a few 1e-4
    np.testing.assert_allclose(np.asarray(fortran_run.model(x)), np.asarray(keras_run.model(x)),
                               rtol=0, atol=2e-3)


def test_minibatch_training_ends_within_a_few_percent_of_keras(data_file):
    runs = both_trainers(data_file, batch_size=128, epochs=6, dropout=0.05)
    keras_val, fortran_val = runs["keras"].best_val_loss, runs["fortran"].best_val_loss
    assert runs["fortran"].history["val_loss"][-1] < 0.6 * runs["fortran"].history["val_loss"][0]
    assert fortran_val == pytest.approx(keras_val, rel=0.05)


@pytest.mark.parametrize("patience", [0, 1, 2])
def test_early_stopping_is_keras_early_stopping(patience):
    sequences = [[1.0, 0.9, 0.95, 0.97, 0.8, 0.85, 0.86, 0.87, 0.88],
                 [1.0, 1.0, 1.0, 1.0, 1.0], [2.0, 1.0, 0.5, 0.25],
                 [float("nan"), 1.0, 1.1, 1.2, 1.3], [1.0, float("nan"), float("nan"), 0.5]]
    for values in sequences:
        model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
        callback = keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience,
                                                 restore_best_weights=True)
        callback.set_model(model)
        callback.on_train_begin()
        ours = EarlyStopping(patience)
        keras_epochs = ours_epochs = None
        kept = None
        for epoch, value in enumerate(values):
            model.stop_training = False
            callback.on_epoch_end(epoch, {"val_loss": value})
            keep, stop = ours.update(epoch, value)
            if keep:
                kept = epoch
            if model.stop_training and keras_epochs is None:
                keras_epochs = epoch + 1
            if stop and ours_epochs is None:
                ours_epochs = epoch + 1
            if keras_epochs is not None or ours_epochs is not None:
                break
        assert ours_epochs == keras_epochs, values
        assert kept == callback.best_epoch == ours.best_epoch, values


@pytest.mark.parametrize("patience", [1, 2])
def test_plateau_schedule_is_keras_reduce_lr_on_plateau(patience):
    values = [1.0, 0.99995, 0.9, 0.95, 0.97, 0.93, 0.89995, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95]
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    callback = keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=patience,
                                                 min_delta=1e-4)
    callback.set_model(model)
    callback.on_train_begin()
    ours, rate, keras_rates, our_rates = ReduceOnPlateau(0.5, patience), 0.1, [], []
    for epoch, value in enumerate(values):
        callback.on_epoch_end(epoch, {"val_loss": value})
        keras_rates.append(float(np.asarray(model.optimizer.learning_rate)))
        rate = ours.update(value, rate)
        our_rates.append(rate)
    assert our_rates == pytest.approx(keras_rates, rel=1e-6)
    assert min(our_rates) < 0.1


def test_the_runtime_learning_rate_can_be_set(data_file, tmp_path):
    from emulators.convert import keras_to_spec
    from emulators.fkb import FKBError, load
    from emulators.modelfile import write_model_file
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    write_model_file(keras_to_spec(model), tmp_path / "m.fkb")
    with load(tmp_path / "m.fkb") as net:
        with pytest.raises(FKBError, match="compile"):
            net.learning_rate = 0.1
        net.compile("sgd", "mse", learning_rate=0.1)
        assert net.learning_rate == pytest.approx(0.1)
        net.learning_rate = 0.025
        x = np.ones((4, 3), np.float32)
        w0 = net.weights()
        _, grad = net.gradient(x, np.zeros((4, 2), np.float32))
        net.train_step(x, np.zeros((4, 2), np.float32))
        np.testing.assert_allclose(net.weights(), w0 - 0.025 * grad, rtol=1e-5, atol=1e-7)
        net.save(tmp_path / "state.fkb")
        with pytest.raises(FKBError, match="positive"):
            net.learning_rate = -1.0
        net.compile("sgd", "mse", schedule={"kind": "exponential", "initial_learning_rate": 0.1,
                                            "decay_steps": 10, "decay_rate": 0.5})
        with pytest.raises(FKBError, match="schedule"):
            net.learning_rate = 0.01
    with load(tmp_path / "state.fkb") as net:
        assert net.learning_rate == pytest.approx(0.025)


def test_a_diverging_loss_stops_with_the_epoch_named(data_file):
    with pytest.raises(ValueError, match=r"training stopped in epoch \d+: .*(NaN|Inf|infinite|nonfinite)"):
        train_emulator(None, data_file, loader=LOADER, evaluate=False, export=False,
                       hyperparameters=dict(BASE, trainer="fortran", optimizer="sgd", learning_rate=1e6,
                                            epochs=5, batch_size=64))


def test_command_line_trains_in_fortran_and_records_it(data_file, tmp_path, capsys):
    import argparse
    args = add_train_arguments(argparse.ArgumentParser()).parse_args(
        ["--data", str(data_file), "--out", str(tmp_path / "run"), "--trainer", "fortran",
         "--set", "epochs=2", "--set", "depth=1", "--set", "width=16"])
    result = run_train(args)
    assert "trained 2 epochs" in capsys.readouterr().out
    record = json.loads((tmp_path / "run" / "training.json").read_text())
    assert record["hyperparameters"]["trainer"] == "fortran"
    assert (tmp_path / "run" / "emulator.fkb").is_file() and (tmp_path / "run" / "model.keras").is_file()
    assert len(record["history"]["val_loss"]) == 2 == len(result.history["seconds"])
