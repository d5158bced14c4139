"""A researcher's own Keras model in the toy GCM (docs/emulators.md, "A model
trained elsewhere"): ``--interface gcm`` attaches the GCM's names and units,
with or without a training set's normalization; the case study's own
``model.keras`` and ``emulator.keras`` couple; models that do not fit are
refused in one line naming the file."""
from __future__ import annotations

import keras
import numpy as np
import pytest

from fkb_cli import main
from emulators.fkb import load
from emulators.interface import input_names, output_units
from emulators.modelfile import read_model_file


def physical_model(path, n_in: int = 24, n_out: int = 25):
    """A Keras model in physical units: outputs a small multiple of nothing
    much (zero weights, tiny biases), so the GCM runs with it."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((n_in,))
    outputs = keras.layers.Dense(n_out, kernel_initializer="zeros", bias_initializer="zeros")(inputs)
    model = keras.Model(inputs, outputs)
    model.save(path)
    return path


def test_own_model_in_physical_units_gets_the_interface(tmp_path, capsys):
    own = physical_model(tmp_path / "my_model.keras")
    assert main(["convert", str(own), str(tmp_path / "my_model.fkb"), "--interface", "gcm"]) == 0
    spec = read_model_file(tmp_path / "my_model.fkb")
    assert [name for name, _ in spec.inputs] == input_names(10)
    assert [units for _, units in spec.outputs] == output_units(10)
    assert spec.input_normalization is None
    assert main(["info", str(tmp_path / "my_model.fkb")]) == 0
    assert "T_1" in capsys.readouterr().out


def test_bad_fits_are_refused_in_one_line(tmp_path, capsys):
    wrong = physical_model(tmp_path / "wrong.keras", n_in=23)
    assert main(["convert", str(wrong), str(tmp_path / "wrong.fkb"), "--interface", "gcm"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "wrong.keras: 23 inputs and 25 outputs do not fit the GCM's interface" in err
    assert not (tmp_path / "wrong.fkb").exists()
    assert main(["convert", str(wrong), str(tmp_path / "w.fkb"), "--normalization", "n.nc"]) == 1
    assert "--normalization goes with --interface gcm" in capsys.readouterr().err


def test_the_case_studys_models_couple(tiny_casestudy_reference, tmp_path, capsys):
    """The tiny case study's reference (T10, nlev 10) and one emulator trained
    on its data: model.keras with --interface gcm --normalization, and
    emulator.keras as it is, give the model file's predictions and couple."""
    from emulators.train import train_emulator
    out = tiny_casestudy_reference["out"]
    trained = train_emulator(None, out / "data" / "training.nc", hyperparameters={"depth": 1, "width": 8, "epochs": 1},
                             out_dir=tmp_path / "e0", evaluate=False)
    folder = trained.out_dir
    assert main(["convert", str(folder / "model.keras"), str(tmp_path / "own.fkb"), "--interface", "gcm",
                 "--normalization", str(folder / "normalization.nc")]) == 0
    reference = read_model_file(folder / "emulator.fkb")
    x = (np.random.default_rng(1).normal(size=(16, 24)) * reference.input_normalization.scale
         + reference.input_normalization.offset).astype(np.float32)
    expected = load(folder / "emulator.fkb").predict(x)
    np.testing.assert_array_equal(load(tmp_path / "own.fkb").predict(x), expected)
    np.testing.assert_allclose(np.asarray(keras.saving.load_model(folder / "emulator.keras")(x)), expected,
                               rtol=1e-5, atol=1e-6 * np.abs(expected).max())
    for name, extra in (("model.keras", ["--interface", "gcm", "--normalization", str(folder / "normalization.nc")]),
                        ("emulator.keras", [])):
        run = tmp_path / f"run_{name}"
        assert main(["couple", "--emulator", str(folder / name), *extra, "--reference", str(out), "--out", str(run),
                     "--no-progress"]) == 0, capsys.readouterr().err
        assert (run / "score.json").is_file()
    # a model that normalizes already does not take another normalization
    assert main(["couple", "--emulator", str(folder / "emulator.keras"), "--interface", "gcm", "--normalization",
                 str(folder / "normalization.nc"), "--reference", str(out), "--out", str(tmp_path / "x")]) == 1
    assert "normalizes its inputs or outputs already" in capsys.readouterr().err
