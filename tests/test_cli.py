"""The `fkb` command line: convert, info, predict; one-line errors and exit codes."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from fkb_cli import main
from emulators.modelfile import read_model_file

SAMPLE = Path(__file__).resolve().parent / "data" / "fkb-compat" / "simple_model_with_weights.txt"


def run(argv, capsys):
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture(scope="module")
def keras_file(tmp_path_factory) -> Path:
    keras.utils.set_random_seed(3)
    inputs = keras.Input((6,))
    h = keras.layers.Dense(8, activation="tanh")(inputs)
    h = keras.layers.BatchNormalization()(h)
    outputs = keras.layers.Dense(3, activation="softplus")(h)
    path = tmp_path_factory.mktemp("cli") / "model.keras"
    keras.Model(inputs, outputs).save(path)
    return path


def test_convert_info_predict_round_trip(keras_file, tmp_path, capsys):
    fkb = tmp_path / "model.fkb"
    status, out, _ = run(["convert", keras_file, fkb], capsys)
    assert status == 0 and fkb.exists()

    status, out, _ = run(["info", fkb], capsys)
    spec = read_model_file(fkb)
    assert status == 0
    assert spec.sha256 in out
    assert "batch_normalization" in out and "parameters  115" in out

    x = np.random.default_rng(0).standard_normal((20, 6)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    status, out, _ = run(["predict", fkb, "-i", tmp_path / "x.npy", "-o", tmp_path / "y.npy"], capsys)
    assert status == 0
    y = np.load(tmp_path / "y.npy")
    y_keras = np.asarray(keras.saving.load_model(keras_file)(x))
    assert np.max(np.abs(y - y_keras)) / np.max(np.abs(y_keras)) <= 1e-5

    back = tmp_path / "back.keras"
    status, _, _ = run(["convert", fkb, back], capsys)
    assert status == 0
    np.testing.assert_allclose(np.asarray(keras.saving.load_model(back)(x)), y_keras, rtol=1e-6, atol=1e-7)


def test_predict_reads_original_fkb_text_files(tmp_path, capsys):
    x = np.load(SAMPLE.parent / "simple_model_with_weights.x.npy")
    np.save(tmp_path / "x.npy", x)
    status, _, _ = run(["predict", SAMPLE, "-i", tmp_path / "x.npy", "-o", tmp_path / "y.npy"], capsys)
    assert status == 0
    y_fkb = np.load(SAMPLE.parent / "simple_model_with_weights.y_fkb.npy")
    assert np.max(np.abs(np.load(tmp_path / "y.npy") - y_fkb)) <= 1e-5 * np.max(np.abs(y_fkb))


@pytest.mark.parametrize("problem", ["missing model", "corrupt model", "wrong width", "nan input", "missing input",
                                     "not npy"])
def test_bad_input_gives_one_line_error_and_keeps_existing_output(problem, tmp_path, capsys):
    fkb = tmp_path / "m.fkb"
    main(["convert", str(SAMPLE), str(fkb)])
    x = np.ones((4, 5), np.float32)
    x_path = tmp_path / "x.npy"
    model = fkb
    if problem == "missing model":
        model = tmp_path / "absent.fkb"
    elif problem == "corrupt model":
        model = tmp_path / "corrupt.fkb"
        model.write_bytes(fkb.read_bytes()[:-7])
    elif problem == "wrong width":
        x = np.ones((4, 7), np.float32)
    elif problem == "nan input":
        x[2, 3] = np.nan
    if problem == "missing input":
        x_path = tmp_path / "absent.npy"
    elif problem == "not npy":
        x_path.write_text("1 2 3\n")
    else:
        np.save(x_path, x)
    out_path = tmp_path / "y.npy"
    out_path.write_bytes(b"precious")
    capsys.readouterr()
    status, _, err = run(["predict", model, "-i", x_path, "-o", out_path], capsys)
    assert status == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fkb predict: error:"), err
    assert "Traceback" not in err
    assert out_path.read_bytes() == b"precious"


def test_unsupported_layer_is_refused_by_name(tmp_path, capsys):
    inputs = keras.Input((4,))
    h = keras.layers.Dense(4)(inputs)
    h = keras.layers.UnitNormalization(name="unit_norm")(h)
    path = tmp_path / "unsupported.keras"
    keras.Model(inputs, h).save(path)
    status, _, err = run(["convert", path, tmp_path / "out.fkb"], capsys)
    assert status == 1
    assert "unit_norm" in err and "UnitNormalization" in err
    assert not (tmp_path / "out.fkb").exists()


def test_command_line_entry_point_exit_codes(tmp_path):
    """As a user runs it: a separate process, --help exits 0, a mistake exits non-zero with one line."""
    cmd = [sys.executable, "-m", "fkb_cli"]
    assert subprocess.run(cmd + ["predict", "--help"], capture_output=True).returncode == 0
    result = subprocess.run(cmd + ["info", str(tmp_path / "nothing.fkb")], capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0 and "nothing.fkb" in result.stderr


def test_version_and_a_closed_pipe(capsys, tmp_path):
    import subprocess
    import sys
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0 and capsys.readouterr().out.startswith("fkb ")
    import keras

    from emulators.convert import keras_to_spec
    from emulators.modelfile import write_model_file
    model = keras.Sequential([keras.Input((300,)), keras.layers.Dense(2)])
    write_model_file(keras_to_spec(model), tmp_path / "m.fkb")
    # `fkb info m.fkb | head -1`: the reader leaves early; no traceback, no "Broken pipe"
    info = subprocess.Popen([sys.executable, "-m", "fkb_cli", "info", str(tmp_path / "m.fkb")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    info.stdout.close()
    assert info.wait(timeout=120) == 0 and info.stderr.read() == b""


def test_couple_refuses_to_overwrite_a_run(tiny_casestudy_reference, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "score.json").write_text("{}")          # a run of before the folder identity
    (tmp_path / "net.fkb").write_text("")
    assert main(["couple", "--emulator", str(tmp_path / "net.fkb"), "--reference",
                 str(tiny_casestudy_reference["out"]), "--out", str(out)]) == 1
    assert ("holds results (score.json) of an unknown configuration (no identity.json); choose another --out, or "
            "pass --overwrite") in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == [".fkb.lock", "score.json"]
