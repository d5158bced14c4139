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


def test_one_and_two_threads_tune_to_the_same_bits(setup, tmp_path):
    """The teacher runs its columns on OpenMP threads and training shares
    its passes among them; neither may change a bit (checkpoints and tuned
    networks compared byte for byte, each thread count a process of its own)."""
    import os
    import subprocess
    import sys

    script = ("import sys; from gcm_toy import Model; "
              f"m = Model({T10!r}, {{'physics': 'emulator', 'emulator': {setup['emulator']!r}, 'finetune': True, "
              "'finetune_columns': 200, 'finetune_steps': 2, 'finetune_learning_rate': 1e-3}, initial_state=False); "
              f"m.load_checkpoint({str(setup['checkpoint'])!r}); assert m.advance(6) is None; "
              "m.save_checkpoint(sys.argv[1])")
    paths = []
    for threads in (1, 2):
        path = tmp_path / f"threads{threads}.bin"
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), OMP_DYNAMIC="false")
        subprocess.run([sys.executable, "-c", script, str(path)], check=True, env=env)
        paths.append(path)
    assert filecmp.cmp(paths[0], paths[1], shallow=False)
    assert filecmp.cmp(finetune_state_path(paths[0]), finetune_state_path(paths[1]), shallow=False)


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
    ({"finetune_learning_rate": float("nan")}, "option 'finetune_learning_rate': expected a finite number"),
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


def test_couple_finetune_writes_the_tuned_network_and_its_record(setup, tiny_casestudy_reference, tmp_path,
                                                                  capsys):
    """`fkb couple --finetune`: score.json's fine-tuning record, the summary
    line, OUT/tuned.fkb; the --finetune-* options need --finetune."""
    from fkb_cli import main

    reference, out = tiny_casestudy_reference["out"], tmp_path / "couple"
    argv = ["couple", "--emulator", setup["emulator"], "--reference", str(reference), "--out", str(out),
            "--days", "1", "--no-check", "--finetune", "--finetune-columns", "32", "--finetune-every-steps", "2",
            "--finetune-learning-rate", "1e-3"]
    assert main(argv) == 0
    stdout = capsys.readouterr().out
    summary = __import__("json").loads((out / "score.json").read_text())
    tuning = summary["finetune"]
    assert tuning["columns"] == 32 and tuning["every_steps"] == 2 and tuning["learning_rate"] == 1e-3
    assert tuning["status"] == "tuning" and not tuning["stopped"] and tuning["optimizer_steps"] == 12
    assert tuning["teacher_fraction"] == pytest.approx(32 / 512 / 2)
    assert np.isfinite(tuning["loss_first"]) and tuning["tuned_model"] == str(out / "tuned.fkb")
    assert (out / "tuned.fkb").is_file() and "fine-tuning    tuning: loss" in stdout
    assert main(["couple", "--emulator", setup["emulator"], "--reference", str(reference), "--out",
                 str(tmp_path / "other"), "--finetune-columns", "32"]) == 1
    assert "the --finetune-* options go with --finetune" in capsys.readouterr().err


def test_the_case_study_pairs_runs_with_and_without_finetuning(setup, tiny_casestudy_reference, tmp_path):
    """[coupled] finetune_run: the task couples the emulator a second time
    with fine-tuning (its finetune_options), keeps the tuned network, and the
    results and the report's section compare the pairs."""
    import dataclasses
    from types import SimpleNamespace

    from coupler.results import results_dataset
    from coupler.sweep import CoupledRunConfig, load_reference
    from coupler.sweep.tasks import _couple_and_score
    from experiments.finetune_report import finetune_lines

    config, reference = load_reference(tiny_casestudy_reference["out"])
    with pytest.raises(ValueError, match="unknown finetune_options key 'rate'"):
        CoupledRunConfig.from_dict({**config.to_dict(), "finetune_options": {"rate": 1.0}})
    assert "finetune_run" not in config.to_dict()             # a reference folder's coupled.json as before
    config = dataclasses.replace(config, days=1.0, window_days=1.0, fallback_run=False, finetune_run=True,
                                 finetune_options={"columns": 32, "learning_rate": 1e-3})
    records = []
    for index in range(2):
        work = tmp_path / f"e{index}"
        work.mkdir()
        task = SimpleNamespace(work_dir=str(work), coupled=config, reference=reference["reference"])
        record = _couple_and_score(task, {"index": index, "status": "ok",
                                          "artifacts": {"model_file": setup["emulator"]}})
        records.append(record)
    tuned = records[0]["online_finetune"]
    assert tuned["finetune_columns"] == 32 and tuned["finetune_teacher_fraction"] == pytest.approx(32 / 512)
    assert (tmp_path / "e0" / "tuned.fkb").is_file() and records[0]["artifacts"]["run_finetune"]
    results = results_dataset(records)
    assert results["finetune_learning_rate"].values.tolist() == [1e-3, 1e-3]
    text = "\n".join(finetune_lines(results))
    assert "## Online fine-tuning" in text and "McNemar's exact test" in text and "2 pairs" in text
    assert "32 seeded columns every 1 model step(s)" in text
