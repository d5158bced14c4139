"""Online fine-tuning of an emulator inside the running toy GCM (options
finetune*, gcm_toy/src/coupling/gcm_finetune.f90): off changes nothing, a
round is the runtime's Keras-exact Adam step on the reference physics'
outputs, restarts continue bit for bit, a diverging learning rate stops
tuning and keeps the last good weights, the tuned network converts to
Keras (T10, the tiny case study's data and state)."""
from __future__ import annotations

import filecmp

import numpy as np
import pytest

from conftest import climatology_model_file
from gcm_toy import Model
from gcm_toy.model import finetune_state_path

T10 = "aquaplanet-t10"


@pytest.fixture(scope="module")
def setup(tiny_casestudy_reference, tmp_path_factory):
    """The tiny study's reference checkpoint and a climatology network with
    the data's normalization (a zero kernel: it learns what tuning teaches)."""
    data = tiny_casestudy_reference["stage"].data
    root = tmp_path_factory.mktemp("finetune")
    emulator = climatology_model_file(data["training"], root / "climatology.fkb", normalized=True)
    return {"checkpoint": data["checkpoint"], "emulator": str(emulator), "training": data["training"]}


def _model(setup, keep_training_batch=False, **options):
    model = Model(T10, {"physics": "emulator", "emulator": setup["emulator"], **options}, initial_state=False,
                  keep_training_batch=keep_training_batch)
    model.load_checkpoint(setup["checkpoint"])
    return model


def test_off_by_default_changes_nothing(setup, tmp_path):
    """Default and explicit off: the same checkpoints byte for byte, the same
    records, no fine-tuning variable or attribute, and a configuration
    written as before the option existed; fine-tuning that has not started
    predicts with the same bits as the untuned emulator."""
    runs = {}
    for name, options in (("default", {}), ("off", {"finetune": False, "finetune_learning_rate": 0.5}),
                          ("later", {"finetune": True, "finetune_start_day": 100.0})):
        model = _model(setup, **options)
        runs[name] = model.run(0.5, progress=False)
        model.save_checkpoint(tmp_path / f"{name}.bin")
        if name != "later":
            assert model.finetune_status() is None
        if name == "default":
            assert not [line for line in model.config.to_toml().splitlines() if line.startswith("finetune")]
    assert filecmp.cmp(tmp_path / "default.bin", tmp_path / "off.bin", shallow=False)
    assert filecmp.cmp(tmp_path / "default.bin", tmp_path / "later.bin", shallow=False)
    assert not finetune_state_path(tmp_path / "off.bin").exists()
    for name in ("default", "off"):
        assert "FINETUNE_LOSS" not in runs[name] and "finetune_status" not in runs[name].attrs
    for var in ("t", "q", "ps", "PRECT", "FLNT"):
        np.testing.assert_array_equal(runs["off"][var].values, runs["default"][var].values)
        np.testing.assert_array_equal(runs["later"][var].values, runs["default"][var].values)
    assert np.isnan(runs["later"]["FINETUNE_LOSS"].values).all()        # no round yet


def test_a_round_is_the_runtimes_adam_step_on_the_reference_physics(setup, tmp_path):
    """With every column in the round, the tuned network after one step is
    bitwise the Python runtime's network after one train_step (Adam, MSE)
    on the columns' inputs and the reference physics' outputs, and the step
    is predicted with the tuned weights."""
    from emulators.fkb import load

    reference = Model(T10, {"physics": "reference"}, initial_state=False, keep_training_batch=True)
    reference.load_checkpoint(setup["checkpoint"])
    assert reference.advance(1) is None
    x, y_reference, _ = reference.training_batch()
    tuned = _model(setup, keep_training_batch=True, finetune=True, finetune_columns=10 ** 6,
                   finetune_learning_rate=1e-3)
    assert tuned.advance(1, accumulate=True) is None
    x_tuned, y_tuned, _ = tuned.training_batch()
    np.testing.assert_array_equal(x_tuned, x)
    status = tuned.finetune_status()
    assert status.rounds == 1 and status.iterations == 1 and not status.stopped
    tuned.save_finetuned(tmp_path / "tuned.fkb")

    net = load(setup["emulator"])
    net.compile("adam", "mse", learning_rate=1e-3)
    loss = net.train_step(x.astype(np.float32), y_reference.astype(np.float32))
    assert status.interval_loss == pytest.approx(float(loss), rel=1e-6)
    again = load(tmp_path / "tuned.fkb")
    for mine, theirs in zip(again.weights(), net.weights()):
        np.testing.assert_array_equal(mine, theirs)
    np.testing.assert_array_equal(y_tuned.astype(np.float32), net.predict(x.astype(np.float32)))


def test_restart_continues_the_tuning_bit_for_bit(setup, tmp_path):
    """Two days straight equal one day, a checkpoint (with the tuned network
    and its optimizer state beside it) and a restart for the second."""
    options = dict(finetune=True, finetune_every_steps=2, finetune_columns=40, finetune_steps=2,
                   finetune_learning_rate=1e-3, finetune_seed=7)
    straight = _model(setup, **options)
    whole = straight.run(2, progress=False)
    straight.save_checkpoint(tmp_path / "straight.bin")

    first = _model(setup, **options)
    first.run(1, progress=False)
    first.save_checkpoint(tmp_path / "half.bin")
    assert finetune_state_path(tmp_path / "half.bin").is_file()
    second = Model.from_checkpoint(tmp_path / "half.bin")
    rest = second.run(1, progress=False)
    second.save_checkpoint(tmp_path / "restarted.bin")

    assert filecmp.cmp(tmp_path / "straight.bin", tmp_path / "restarted.bin", shallow=False)
    assert filecmp.cmp(finetune_state_path(tmp_path / "straight.bin"),
                       finetune_state_path(tmp_path / "restarted.bin"), shallow=False)
    n = rest.sizes["time"]
    for var in ("t", "q", "PRECT", "FINETUNE_LOSS"):
        np.testing.assert_array_equal(rest[var].values, whole[var].values[-n:])
    assert np.isfinite(whole["FINETUNE_LOSS"].values).all()
    assert second.finetune_status().iterations == straight.finetune_status().iterations == 2 * 48 // 2

    # a checkpoint of a fine-tuning run needs its state, and the same emulator
    finetune_state_path(tmp_path / "half.bin").unlink()
    with pytest.raises(FileNotFoundError, match="fine-tuning state of checkpoint"):
        Model.from_checkpoint(tmp_path / "half.bin")
    other = climatology_model_file(setup["training"], tmp_path / "other.fkb", normalized=True)
    with pytest.raises(ValueError, match="restart with the same emulator"):
        Model.from_checkpoint(tmp_path / "straight.bin", {"emulator": str(other)})


def test_a_diverging_learning_rate_stops_tuning_and_keeps_the_last_good_weights(setup, tmp_path):
    """Adam at 1e30 makes the loss infinite after the first round: tuning
    stops there, the round is undone (the emulator's own weights, so the run
    is the untuned one) and the run's record says so."""
    plain = _model(setup).run(0.5, progress=False)
    model = _model(setup, finetune=True, finetune_learning_rate=1e30)
    ds = model.run(0.5, out=tmp_path / "run.nc", progress=False)
    status = model.finetune_status()
    assert status.stopped and status.rounds == 0
    assert ds.attrs["run_status"] == "completed"
    assert ds.attrs["finetune_status"] == (f"fine-tuning stopped at step {status.stopped_step} (day "
                                           f"{status.stopped_step * model.config.dt / 86400:g}): loss not finite "
                                           "after the round; last good weights kept")
    assert ds.attrs["finetune_stopped_step"] == status.stopped_step
    for var in ("t", "q", "PRECT"):
        np.testing.assert_array_equal(ds[var].values, plain[var].values)
    assert np.isnan(ds["FINETUNE_LOSS"].values).all()


def test_the_tuned_network_converts_to_keras_and_back(setup, tmp_path, capsys):
    from emulators.fkb import load
    from fkb_cli import main

    model = _model(setup, finetune=True, finetune_learning_rate=1e-3)
    assert model.advance(4) is None
    tuned = model.save_finetuned(tmp_path / "tuned.fkb")
    assert main(["convert", str(tuned), str(tmp_path / "tuned.keras")]) == 0
    assert main(["convert", str(tmp_path / "tuned.keras"), str(tmp_path / "back.fkb")]) == 0
    capsys.readouterr()
    original, mine, back = load(setup["emulator"]), load(tuned), load(tmp_path / "back.fkb")
    x = np.random.default_rng(0).normal(size=(5, mine.n_inputs)).astype(np.float32) * 0.1 + 1
    assert not np.array_equal(mine.predict(x), original.predict(x))      # it learned something
    np.testing.assert_array_equal(back.predict(x), mine.predict(x))


@pytest.mark.parametrize("overrides, message", [
    ({"finetune_learning_rate": 0.0}, "option 'finetune_learning_rate': must be positive and finite"),
    ({"finetune_learning_rate": float("nan")}, "option 'finetune_learning_rate': must be positive and finite"),
    ({"finetune_columns": 0}, "option 'finetune_columns': must be at least 1"),
    ({"finetune_every_steps": 0}, "option 'finetune_every_steps': must be at least 1"),
    ({"emulator_precision": "float64"}, "option 'finetune': the network trains in float32"),
    ({"physics": "reference"}, "option 'finetune': physics 'reference' has no single network to tune"),
    ({"physics": "ensemble"}, "option 'finetune': physics 'ensemble' has no single network to tune"),
])
def test_bad_finetune_options_are_refused(setup, overrides, message):
    options = {"physics": "emulator", "emulator": setup["emulator"], "finetune": True, **overrides}
    if options["physics"] == "reference":
        del options["emulator"]
    if options["physics"] == "ensemble":
        options["emulator"] = [setup["emulator"]] * 2
    with pytest.raises(ValueError, match=message):
        Model(T10, options, initial_state=False)
