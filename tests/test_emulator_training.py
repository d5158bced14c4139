"""Emulators from hyperparameters and their training: validation of the
settings, the networks and optimizers they make, deterministic seeded
training that learns, early stopping, the saved loss curve and metrics,
plugging in one's own Keras model, and the ``fkb train`` functions."""
from __future__ import annotations

import argparse
import csv
import json

import keras
import numpy as np
import pytest
import xarray as xr

from emulators.architectures import (ALLOWED_LAYERS, Hyperparameters, build_emulator, build_learning_rate, build_loss,
                                     build_optimizer)
from emulators.data import ColumnStream, split_by_time
from emulators.interface import Layout
from emulators.synthetic import write_synthetic_dataset
from emulators.train import LoaderOptions, add_train_arguments, keras_batches, run_train, train_emulator

TINY = dict(depth=2, width=32, epochs=3, batch_size=128, learning_rate=3e-3, patience=3, dropout=0.05,
            batch_normalization=True)
LOADER = LoaderOptions(time_block=4, memory_budget=4 * 2 ** 20)


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    return write_synthetic_dataset(tmp_path_factory.mktemp("train") / "ref.nc", n_time=40, nlev=10, nlat=8,
                                   nlon=16, seed=1)


@pytest.fixture(scope="module")
def trained(data_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    return train_emulator(None, data_file, hyperparameters=TINY, out_dir=out, loader=LOADER, export=False)


# ------------------------------------------------------------ hyperparameters
def test_hyperparameter_defaults_are_valid_and_round_trip_through_toml(tmp_path):
    hp = Hyperparameters()
    path = tmp_path / "h.toml"
    path.write_text(hp.to_toml())
    assert Hyperparameters.from_toml(path) == hp
    path.write_text('depth = 3\ntitle = "x"\n')
    with pytest.raises(ValueError, match="unknown hyperparameter 'title'"):
        Hyperparameters.from_toml(path)
    # a preset file keeps them in a table of its own
    path.write_text('title = "x"\n[hyperparameters]\ndepth = 3\noptimizer = "nesterov"\n')
    assert Hyperparameters.from_toml(path) == Hyperparameters(depth=3, optimizer="nesterov")
    path.write_text('depth = 3\noptimizer = \n')
    with pytest.raises(ValueError, match="not valid TOML"):
        Hyperparameters.from_toml(path)


@pytest.mark.parametrize("values, message", [
    (dict(activation="swishy"), "activation='swishy' is not one of"),
    (dict(dropout=1.0), r"dropout=1.0 is not in \[0, 1\)"),
    (dict(depth=-1), "depth=-1 must be at least 0"),
    (dict(width=2.5), "width=2.5 is not a int"),
    (dict(batch_normalization="yes"), "is not a bool"),
    (dict(learning_rate=0.0), "learning_rate=0.0 must be positive"),
    (dict(optimizer="adagrad"), "optimizer='adagrad' is not one of"),
    (dict(lr_schedule="cosine"), "lr_schedule='cosine'"),
    (dict(loss="hinge"), "loss='hinge'"),
    (dict(lr_decay_rate=0.0), r"lr_decay_rate=0.0 is not in \(0, 1\]"),
    (dict(widht=3), "unknown hyperparameter 'widht'"),
])
def test_bad_hyperparameters_are_refused_with_the_reason(values, message):
    with pytest.raises(ValueError, match=message):
        Hyperparameters.from_dict(values)


def test_settings_are_parsed_by_type():
    hp = Hyperparameters().with_settings(["depth=7", "batch_normalization=true", "dropout=0.1",
                                          "optimizer=sgd_momentum", "learning_rate=1e-4"])
    assert (hp.depth, hp.batch_normalization, hp.dropout, hp.optimizer, hp.learning_rate) == \
        (7, True, 0.1, "sgd_momentum", 1e-4)
    with pytest.raises(ValueError, match="depth='seven' is not a int"):
        Hyperparameters().with_settings(["depth=seven"])
    with pytest.raises(ValueError, match="not key=value"):
        Hyperparameters().with_settings(["depth"])


# ---------------------------------------------------------------- networks
def test_network_has_the_requested_layers_only_of_bridge_types():
    hp = Hyperparameters(depth=3, width=17, leaky_relu_slope=0.15, dropout=0.2, batch_normalization=True)
    model = build_emulator(hp, 24, 25)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert set(kinds) <= set(ALLOWED_LAYERS)
    assert kinds.count("Dense") == 4 and kinds.count("BatchNormalization") == 3
    assert kinds.count("Dropout") == 3 and kinds.count("LeakyReLU") == 3
    assert [layer.negative_slope for layer in model.layers if type(layer).__name__ == "LeakyReLU"] == \
        pytest.approx([0.15] * 3)
    assert model.output_shape == (None, 25) and model.layers[1].units == 17
    tanh = build_emulator(Hyperparameters(depth=2, activation="tanh"), 5, 3)
    assert [layer.activation.__name__ for layer in tanh.layers[1:]] == ["tanh", "tanh", "linear"]


def test_optimizers_and_schedules():
    sgd = build_optimizer(Hyperparameters(optimizer="nesterov", momentum=0.8), 10)
    assert isinstance(sgd, keras.optimizers.SGD) and sgd.nesterov and sgd.momentum == pytest.approx(0.8)
    plain = build_optimizer(Hyperparameters(optimizer="sgd"), 10)
    assert not plain.nesterov and plain.momentum == 0.0
    assert isinstance(build_optimizer(Hyperparameters(optimizer="rmsprop"), 10), keras.optimizers.RMSprop)
    assert build_learning_rate(Hyperparameters(learning_rate=0.02), 10) == 0.02
    step = build_learning_rate(Hyperparameters(learning_rate=0.1, lr_schedule="step", lr_decay_rate=0.5,
                                               lr_decay_epochs=2), steps_per_epoch=10)
    assert [float(step(s)) for s in (0, 19, 20, 45)] == pytest.approx([0.1, 0.1, 0.05, 0.025])
    smooth = build_learning_rate(Hyperparameters(learning_rate=0.1, lr_schedule="exponential", lr_decay_rate=0.5,
                                                 lr_decay_epochs=2), steps_per_epoch=10)
    assert float(smooth(10)) == pytest.approx(0.1 * 0.5 ** 0.5)
    scheduled = build_optimizer(Hyperparameters(lr_schedule="step"), 10)
    assert scheduled.get_config()["learning_rate"]["config"]["staircase"] is True
    huber = build_loss(Hyperparameters(loss="huber", huber_delta=0.5))
    assert float(huber(np.zeros((1, 1)), np.full((1, 1), 2.0))) == pytest.approx(0.5 * (2.0 - 0.25))


# ---------------------------------------------------------------- training
def test_training_learns_the_synthetic_physics(trained):
    val = trained.history["val_loss"]
    assert len(val) == 3 and val[-1] < 0.6 * val[0]
    assert trained.best_val_loss < 0.6  # predicting the mean scores about 1
    r2 = trained.metrics["r2"]
    assert float(r2.sel(split="test", variable="FLNT")) > 0.5
    assert float(r2.sel(split="validation", variable="TPHYSTND")) > 0.3


def test_same_seed_gives_identical_weights_and_another_seed_does_not(data_file, trained):
    """Dropout, batch normalization, shuffling and initialization all seeded."""
    again = train_emulator(None, data_file, hyperparameters=TINY, loader=LOADER, evaluate=False)
    first, second = trained.model.get_weights(), again.model.get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(first, second))
    assert again.history["loss"] == trained.history["loss"]
    hp = Hyperparameters.from_dict(TINY)
    same = build_emulator(hp, 24, 25).get_weights()
    keras.utils.set_random_seed(123)      # Keras's global generator plays no part
    assert all(np.array_equal(a, b) for a, b in zip(same, build_emulator(hp, 24, 25).get_weights()))
    other = build_emulator(hp, 24, 25, seed=hp.seed + 1).get_weights()
    assert not np.array_equal(other[0], same[0])


def test_early_stopping_restores_the_best_weights(data_file):
    class SpoilFromSecondEpoch(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_end(self, batch, logs=None):  # the last batch, just before validation
            if self.epoch >= 1 and batch == self.params["steps"] - 1:
                self.model.set_weights([w + 0.5 for w in self.model.get_weights()])

    result = train_emulator(None, data_file, hyperparameters=dict(TINY, epochs=6, patience=2, trainer="keras"),
                            loader=LOADER, evaluate=False, callbacks=[SpoilFromSecondEpoch()])
    val = result.history["val_loss"]
    assert len(val) == 3 and result.best_epoch == 1 and val[1] > val[0]
    splits = split_by_time(xr.open_dataset(data_file))
    stream = ColumnStream(splits["validation"], result.layout, result.normalization, 4096, shuffle=False)
    x, y = (np.concatenate(a) for a in zip(*stream))
    restored = float(np.mean((np.asarray(result.model(x)) - y) ** 2))
    assert restored == pytest.approx(val[0], rel=1e-4)


def test_loss_curve_and_results_are_saved_with_the_model(trained):
    out = trained.out_dir
    with open(out / "history.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]
    assert [float(r["val_loss"]) for r in rows] == pytest.approx(trained.history["val_loss"])
    record = json.loads((out / "training.json").read_text())
    assert record["history"]["loss"] == pytest.approx(trained.history["loss"])
    assert record["best_epoch"] == trained.best_epoch and record["layout"]["nlev"] == 10
    assert Hyperparameters.from_toml(out / "hyperparameters.toml") == Hyperparameters.from_dict(TINY)
    reloaded = keras.saving.load_model(out / "model.keras")
    x = np.random.default_rng(0).standard_normal((5, 24)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(reloaded(x)), np.asarray(trained.model(x)))
    assert (out / "r2_by_level.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_metrics_match_a_direct_computation(trained, data_file):
    from emulators.metrics import predict_physical

    metrics = xr.open_dataset(trained.out_dir / "metrics.nc")
    assert list(metrics["split"].values) == ["validation", "test"]
    assert metrics["TPHYSTND_r2"].dims == ("split", "lev") and metrics["FSNS_r2"].dims == ("split",)
    assert metrics["PHQ_mse"].attrs["units"] == "kg2 kg-2 s-2"
    test = split_by_time(xr.open_dataset(data_file))["test"]
    layout = trained.layout
    x, y = layout.stack_inputs(test), layout.stack_outputs(test).astype(np.float64)
    pred = predict_physical(trained.model, trained.normalization, x)
    sse = ((pred - y) ** 2).sum(axis=0)
    sst = ((y - y.mean(axis=0)) ** 2).sum(axis=0)
    np.testing.assert_allclose(metrics["TPHYSTND_r2"].sel(split="test").values, 1 - sse[:10] / sst[:10], rtol=1e-6)
    np.testing.assert_allclose(float(metrics["PRECT_mse"].sel(split="test")), sse[24] / len(y), rtol=1e-6)
    pooled = 1 - sse[10:20].sum() / sst[10:20].sum()
    assert float(metrics["r2"].sel(split="test", variable="PHQ")) == pytest.approx(pooled, rel=1e-6)
    scale = trained.normalization.output_scale
    np.testing.assert_allclose(float(metrics["mse_normalized_total"].sel(split="test")),
                               np.mean(sse / len(y) / scale ** 2), rtol=1e-6)


# ------------------------------------------------------------ own models
def test_a_model_defined_here_trains_through_the_same_pipeline(data_file):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((24,))
    h = keras.layers.Dense(48, activation="tanh")(inputs)
    h = keras.layers.Add()([h, keras.layers.Dense(48, activation="relu")(h)])
    model = keras.Model(inputs, keras.layers.Dense(25)(h), name="my_residual_net")
    result = train_emulator(model, data_file, hyperparameters=dict(TINY, epochs=2), loader=LOADER, evaluate=False)
    assert result.model is model
    assert result.history["val_loss"][-1] < 0.8


def test_a_model_of_other_variables_trains_with_a_mapping(data_file, tmp_path):
    subset = tmp_path / "subset.nc"  # a file holding only the variables used
    xr.open_dataset(data_file)[["T", "Q", "TPHYSTND"]].to_netcdf(subset)
    model = keras.Sequential([keras.Input((20,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(10)])
    result = train_emulator(model, subset, inputs=["T", "Q"], outputs=["TPHYSTND"],
                            hyperparameters=dict(TINY, epochs=1), loader=LOADER)
    assert result.normalization.input_names[-1] == "Q_10"
    assert result.normalization.output_names == [f"TPHYSTND_{k}" for k in range(1, 11)]
    assert list(result.metrics["variable"].values) == ["TPHYSTND"]


def test_a_model_of_the_wrong_width_is_refused(data_file):
    model = keras.Sequential([keras.Input((20,)), keras.layers.Dense(25)])
    with pytest.raises(ValueError, match="maps 20 -> 25 values but the layout maps 24"):
        train_emulator(model, data_file, hyperparameters=TINY, loader=LOADER)


# ------------------------------------------------------------ water conservation
@pytest.mark.parametrize("trainer", ["fortran", "keras"])
def test_water_conservation_ends_the_network_in_the_layer_that_closes_every_column(data_file, tmp_path, trainer):
    from emulators.conservation import column_water_residual
    from emulators.data import level_thickness
    from emulators.fkb import load

    hp = dict(TINY, epochs=2, water_conservation=True, trainer=trainer)
    result = train_emulator(None, data_file, hyperparameters=hp, out_dir=tmp_path, loader=LOADER)
    assert [layer.name for layer in result.model.layers][-1] == "column_water"
    assert np.ptp(result.model.get_layer("column_water").log_weights.numpy()) > 0     # it trained
    # the exported model file in the Fortran runtime: every column's water budget closes
    stats = result.normalization
    (in_offset, in_scale), _ = stats.model_file_arrays()
    x = (np.random.default_rng(0).normal(size=(256, 24)) * in_scale + in_offset).astype(np.float32)
    y = load(result.files["model_file"]).predict(x)
    outputs = list(stats.output_names)
    q_start, precip, ps = outputs.index("PHQ_1"), outputs.index("PRECT"), list(stats.input_names).index("PS")
    residual = column_water_residual(y, x[:, ps], level_thickness(xr.open_dataset(data_file)), q_start, precip)
    assert np.max(np.abs(residual)) < 1e-5 * np.max(np.abs(y[:, precip]))
    y_keras = result.model.predict((x - in_offset) / in_scale, verbose=0) * stats.model_file_arrays()[1][1] \
        + stats.model_file_arrays()[1][0]
    assert np.max(np.abs(y - y_keras)) <= 1e-4 * np.max(np.abs(y_keras))


def test_water_conservation_needs_the_half_levels_of_the_data(data_file, tmp_path):
    old = tmp_path / "old.nc"        # training data written before fkb data wrote lev_bnds
    xr.open_dataset(data_file).drop_vars("lev_bnds").to_netcdf(old)
    with pytest.raises(ValueError, match="no lev_bnds .* remake them with fkb data"):
        train_emulator(None, old, hyperparameters=dict(TINY, water_conservation=True), loader=LOADER)
    model = keras.Sequential([keras.Input((24,)), keras.layers.Dense(25)])
    with pytest.raises(ValueError, match="end a model of your own in emulators.conservation"):
        train_emulator(model, data_file, hyperparameters=dict(TINY, water_conservation=True), loader=LOADER)


def test_keras_batches_advance_the_shuffle_each_epoch(data_file):
    ds = xr.open_dataset(data_file)
    from emulators.data import compute_normalization
    layout = Layout.for_dataset(ds)
    stream = ColumnStream(ds, layout, compute_normalization(ds, layout), 256, seed=0, time_block=4)
    batches = keras_batches(stream)
    first = batches[0][0].copy()
    batches.on_epoch_end()
    assert stream.epoch == 1 and not np.array_equal(batches[0][0], first)


# ---------------------------------------------------------- command line
def _parse(argv):
    return add_train_arguments(argparse.ArgumentParser(prog="fkb train")).parse_args(argv)


def test_command_line_trains_and_writes_the_run(data_file, tmp_path, capsys):
    hp_file = tmp_path / "h.toml"
    hp_file.write_text("depth = 2\nwidth = 16\nbatch_size = 256\n")
    out = tmp_path / "run"
    args = _parse(["--data", str(data_file), "--hyperparameters", str(hp_file), "--set", "epochs=1",
                   "--set", "optimizer=rmsprop", "--out", str(out), "--split", "0.6,0.2,0.2", "--time-block", "4",
                   "--no-export"])
    result = run_train(args)
    assert result.hyperparameters == Hyperparameters(depth=2, width=16, batch_size=256, epochs=1,
                                                     optimizer="rmsprop")
    printed = capsys.readouterr().out
    assert "trained 1 epochs" in printed and "R² test:" in printed
    assert "Epoch 1/1" not in printed  # no progress bar when stdout is not a terminal
    for name in ("model.keras", "history.csv", "training.json", "metrics.nc", "normalization.nc"):
        assert (out / name).is_file(), name
    assert json.loads((out / "training.json").read_text())["split"]["train"] == 0.6


@pytest.mark.parametrize("argv, error, message", [
    (["--set", "nope=1"], ValueError, "unknown hyperparameter 'nope'"),
    (["--split", "0.9,0.2,0.1"], ValueError, "sum to"),
    (["--hyperparameters", "missing.toml"], FileNotFoundError, "missing.toml"),
    (["--inputs", "T,U"], ValueError, "unknown interface variable 'U'"),
])
def test_command_line_reports_bad_input_in_one_line(data_file, tmp_path, argv, error, message):
    args = _parse(["--data", str(data_file), "--out", str(tmp_path / "o"), *argv])
    with pytest.raises(error, match=message) as info:
        run_train(args)
    assert "\n" not in str(info.value)


def test_command_line_reports_missing_data(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.nc"):
        run_train(_parse(["--data", str(tmp_path / "absent.nc"), "--out", str(tmp_path / "o")]))
