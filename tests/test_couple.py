"""`fkb couple`: one emulator (or an ensemble) coupled into the toy GCM from a
case study's reference state and scored (T10, 2-day runs on the tiny case
study's reference)."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import xarray as xr

from fkb_cli import main


def run_cli(argv, capsys):
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture(scope="module")
def emulator(tiny_casestudy_reference, tmp_path_factory):
    """A network with fixed weights on the emulator interface: a zero kernel
    and, as bias, the mean of each output over the tiny case study's
    training data (the climatological tendencies, in physical units); its
    model file, and the same network as a Keras file (with names and units,
    as `fkb convert` writes it)."""
    from emulators.convert import convert
    from conftest import climatology_model_file

    root = tmp_path_factory.mktemp("couple-emulator")
    fkb = climatology_model_file(tiny_casestudy_reference["stage"].data["training"], root / "climatology.fkb")
    keras_file = root / "climatology.keras"
    convert(fkb, keras_file)
    return {"fkb": fkb, "keras": keras_file, "root": root}


def test_couple_converts_a_keras_emulator_runs_and_scores_it(tiny_casestudy_reference, emulator, tmp_path,
                                                              capsys):
    from coupler.scoring import score_run
    from gcm_toy import open_output

    reference = tiny_casestudy_reference["out"]
    out = tmp_path / "couple"
    status, stdout, err = run_cli(["couple", "--emulator", emulator["keras"], "--reference", reference,
                                   "--out", out], capsys)
    assert status == 0, err
    converted = out / "emulators" / "climatology.fkb"
    assert converted.is_file()
    assert converted.read_bytes() == emulator["fkb"].read_bytes()      # .fkb -> .keras -> .fkb is exact
    assert f"converted {emulator['keras']} -> {converted}" in stdout
    assert "days survived" in stdout and "noise floor" in stdout

    summary = json.loads((out / "score.json").read_text())
    assert summary["emulators"] == [str(converted)] and summary["physics"] == "emulator"
    assert summary["start_day"] == pytest.approx(3.0) and summary["run_days"] == 2.0
    assert summary["window_days"] == 1.0
    assert summary["run_status"] in ("completed", "crashed")
    assert 0 <= summary["days_survived"] <= 2.0
    if summary["run_status"] == "completed":
        assert summary["days_survived"] == 2.0 and summary["n_windows"] == 2 and summary["crash_reason"] == ""
        for name in ("online_error_t", "online_error_q", "online_error_normalized"):
            assert np.isfinite(summary[name]) and summary[name] > 0
    else:
        assert summary["crash_reason"] and 3.0 <= summary["crash_time_days"] <= 5.0
        assert summary["n_windows"] == int(summary["days_survived"])
    floor = summary["noise_floor"]
    assert all(np.isfinite(floor[k]) and floor[k] >= 0 for k in ("t", "q", "normalized"))
    assert floor["t"] < 0.5                                            # 0.01 K of noise, 2 days of weather

    # the files: the run that was scored, and its scores per window
    run = open_output(out / "coupled.nc")
    assert run.attrs["physics"] == "emulator" and run.attrs["run_status"] == summary["run_status"]
    again = score_run(run, open_output(reference / "reference" / "reference.nc"), 2.0, 1.0)
    for name in ("days_survived", "online_error_t", "online_error_q", "online_error_normalized"):
        np.testing.assert_array_equal(float(again[name]), summary[name] if summary[name] is not None else np.nan)
    score = xr.open_dataset(out / "score.nc")
    assert score.sizes["window"] == summary["n_windows"]
    if summary["n_windows"]:
        assert float(score["rmse_t"].mean()) == pytest.approx(summary["online_error_t"])
    assert float(score["noise_floor_t"]) == pytest.approx(floor["t"])
    assert not [p.name for p in out.iterdir() if ".tmp" in p.name]
    # the budget residuals of the run beside the reference's (coupler.budgets)
    from coupler.budgets import budget_record
    assert summary["budgets"] == pytest.approx(budget_record(run), nan_ok=True)
    assert summary["reference_budgets"]["budget_days"] == pytest.approx(1.0)
    assert abs(summary["reference_budgets"]["water_budget_residual"]) < 0.02
    assert float(score["reference_energy_budget_residual"]) == pytest.approx(
        summary["reference_budgets"]["energy_budget_residual"])
    assert score["water_budget_residual"].attrs["units"] == "mm day-1"
    assert "budgets        water " in stdout and "(reference " in stdout


def test_an_ensemble_of_one_network_twice_scores_like_the_network(tiny_casestudy_reference, emulator, tmp_path,
                                                                   capsys):
    reference = tiny_casestudy_reference["out"] / "reference"
    scores = {}
    for name, files in (("single", [emulator["fkb"]]), ("ensemble", [emulator["fkb"], emulator["fkb"]])):
        status, stdout, err = run_cli(["couple", "--emulator", *files, "--reference", reference, "--days", "1",
                                       "--limit-precipitation", "--out", tmp_path / name], capsys)
        assert status == 0, err
        scores[name] = json.loads((tmp_path / name / "score.json").read_text())
        run = xr.open_dataset(tmp_path / name / "coupled.nc", decode_times=False)
        assert run.attrs["physics"] == ("ensemble" if name == "ensemble" else "emulator")
        assert "limit_precipitation = true" in run.attrs["configuration"]
    assert "ensemble of 2 networks" in stdout
    single, ensemble = scores["single"], scores["ensemble"]
    assert ensemble["run_days"] == 1.0 and ensemble["days_survived"] == single["days_survived"]
    if single["n_windows"]:
        assert ensemble["online_error_t"] == pytest.approx(single["online_error_t"], rel=1e-3)


def test_couple_with_a_preset_makes_or_reuses_the_case_studys_reference(tiny_casestudy_reference, emulator,
                                                                         tmp_path, capsys):
    out = tmp_path / "couple"
    shutil.copytree(tiny_casestudy_reference["out"], out / "casestudy")   # as if made by an earlier call
    stamp = (out / "casestudy" / "reference" / "reference.nc").stat().st_mtime_ns
    status, stdout, err = run_cli(["couple", "--emulator", emulator["fkb"], "--preset",
                                   tiny_casestudy_reference["preset"], "--days", "1", "--out", out], capsys)
    assert status == 0, err
    assert f"--reference {out / 'casestudy'}" in stdout
    assert (out / "casestudy" / "reference" / "reference.nc").stat().st_mtime_ns == stamp
    assert json.loads((out / "score.json").read_text())["start_day"] == pytest.approx(3.0)


def _mismatched_keras(path):
    import keras
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3)], name="wrong")
    model.save(path)
    return path


@pytest.mark.parametrize("case, message", [
    ("mismatch", "emulator has 5 inputs, the GCM needs 24"),
    ("missing", "no-such.fkb: no such emulator file"),
    ("window", "window_days (1) is longer than the run (0.5 days)"),
    ("both", "give --reference DIR or --preset NAME, not both"),
    ("no-reference", "no reference run (reference.nc)"),
    ("guard", "has no statistics of its training inputs, which the guard needs"),
])
def test_bad_input_is_one_line_and_exit_1(case, message, tiny_casestudy_reference, emulator, tmp_path, capsys):
    reference = tiny_casestudy_reference["out"]
    argv = ["couple", "--emulator", emulator["fkb"], "--reference", reference, "--out", tmp_path / "out"]
    if case == "mismatch":
        argv[2] = _mismatched_keras(tmp_path / "wrong.keras")
    elif case == "missing":
        argv[2] = tmp_path / "no-such.fkb"
    elif case == "window":
        argv += ["--days", "0.5"]
    elif case == "both":
        argv += ["--preset", "quick"]
    elif case == "no-reference":
        argv[4] = tmp_path
    elif case == "guard":
        argv += ["--guard", "fallback"]
    status, out, err = run_cli(argv, capsys)
    assert status == 1 and len(err.strip().splitlines()) == 1, err
    assert err.startswith("fkb couple: error: ") and message in err
    assert not (tmp_path / "out" / "coupled.nc").exists()


def test_the_guard_falls_back_on_the_reference_physics(tiny_casestudy_reference, emulator, tmp_path, capsys):
    """With the training inputs' statistics in the model file and a distance
    limit no column meets, every column falls back on the reference physics
    in every step: the coupled run is the reference run, bit for bit (its
    random numbers are keyed by column), so its online error is zero; with
    the default limit only some columns do, and the output says which."""
    import dataclasses

    from emulators.data import compute_normalization, open_dataset
    from emulators.interface import Layout
    from emulators.modelfile import read_model_file, write_model_file
    from emulators.train import training_input_statistics

    ds = open_dataset(tiny_casestudy_reference["stage"].data["training"], time_chunk=None)
    layout = Layout.for_dataset(ds)
    stats = training_input_statistics(ds, layout, compute_normalization(ds, layout))
    guarded = tmp_path / "guarded.fkb"
    write_model_file(dataclasses.replace(read_model_file(emulator["fkb"]), sha256=None, input_statistics=stats),
                     guarded)
    reference = tiny_casestudy_reference["out"]
    status, out, err = run_cli(["couple", "--emulator", guarded, "--reference", reference, "--out",
                                tmp_path / "all", "--guard", "fallback", "--guard-factor", "1e-9", "--no-progress"],
                               capsys)
    assert status == 0, err
    summary = json.loads((tmp_path / "all" / "score.json").read_text())
    assert summary["guard"] == {"policy": "fallback", "mean_flagged_fraction": 1.0, "mean_fallback_fraction": 1.0}
    assert summary["online_error_t"] == 0.0 and summary["online_error_q"] == 0.0
    assert "guard          fallback: 100 % of the columns flagged, 100 % on the reference physics" in out
    assert summary["seconds_per_simulated_day"] > 0
    status, out, err = run_cli(["couple", "--emulator", guarded, "--reference", reference, "--out",
                                tmp_path / "some", "--guard", "fallback", "--no-progress"], capsys)
    assert status == 0, err
    run = xr.open_dataset(tmp_path / "some" / "coupled.nc")
    assert run["PHYS_FALLBACK"].dims == ("time", "lat", "lon") and run["PHYS_FALLBACK"].attrs["units"] == "1"
    fallback = json.loads((tmp_path / "some" / "score.json").read_text())["guard"]["mean_fallback_fraction"]
    assert 0.0 < fallback < 1.0
    np.testing.assert_allclose(float(run["PHYS_FALLBACK_GLOBAL"].mean()), fallback)
    # no guard asked for: no guard variables, and the same run as before the guard existed
    status, out, err = run_cli(["couple", "--emulator", guarded, "--reference", reference, "--out",
                                tmp_path / "off", "--no-progress"], capsys)
    plain = xr.open_dataset(tmp_path / "off" / "coupled.nc")
    assert status == 0 and "GUARD_FLAGGED" not in plain and "PHYS_FALLBACK_GLOBAL" not in plain
    assert json.loads((tmp_path / "off" / "score.json").read_text())["guard"] is None
    status, out, err = run_cli(["couple", "--emulator", emulator["fkb"], "--reference", reference, "--out",
                                tmp_path / "unguarded", "--no-progress"], capsys)
    unguarded = xr.open_dataset(tmp_path / "unguarded" / "coupled.nc")
    assert status == 0 and sorted(unguarded.data_vars) == sorted(plain.data_vars)
    for name in plain.data_vars:
        np.testing.assert_array_equal(plain[name].values, unguarded[name].values)


def test_a_spinup_as_long_as_the_run_is_the_reference_run(tiny_casestudy_reference, emulator, tmp_path, capsys):
    reference = tiny_casestudy_reference["out"]
    status, out, err = run_cli(["couple", "--emulator", emulator["fkb"], "--reference", reference, "--out",
                                tmp_path / "spin", "--spinup-days", "5", "--no-progress"], capsys)
    assert status == 0, err
    summary = json.loads((tmp_path / "spin" / "score.json").read_text())
    assert summary["online_error_t"] == 0.0 and summary["run_status"] == "completed"
    status, out, err = run_cli(["couple", "--emulator", emulator["fkb"], "--reference", reference, "--out",
                                tmp_path / "bad", "--reference-outputs", "PRECT,RAIN", "--no-progress"], capsys)
    assert status == 1 and "unknown output group 'RAIN'" in err and len(err.strip().splitlines()) == 1


def _absurd(emulator, path):
    """The climatology network with its moistening rates a thousand times the reference's."""
    import dataclasses

    from emulators.modelfile import read_model_file, write_model_file

    spec = read_model_file(emulator["fkb"])
    layer = spec.layers[0]
    names = [name for name, _ in spec.outputs]
    bias = layer.params["bias"].copy()
    phq = [i for i, name in enumerate(names) if name.startswith("PHQ_")]
    bias[phq] = 1e-3 * np.sign(bias[phq] + 1e-30) + bias[phq] * 1e3
    write_model_file(dataclasses.replace(spec, sha256=None, layers=[
        dataclasses.replace(layer, params={**layer.params, "bias": bias})]), path)
    return path


def test_preflight_check_reports_every_output_and_refuses_an_absurd_one(tiny_casestudy_reference, emulator,
                                                                         tmp_path, capsys):
    reference = tiny_casestudy_reference["out"]
    status, out, err = run_cli(["check", emulator["fkb"], "--reference", reference], capsys)
    assert status == 0, err
    assert "passed: no output is absurd" in out and "PRECT" in out and "TPHYSTND" in out
    absurd = _absurd(emulator, tmp_path / "absurd.fkb")
    status, out, err = run_cli(["check", absurd, "--reference", reference], capsys)
    assert status == 1 and err.startswith("fkb check: error: output PHQ [kg kg-1 s-1] reaches")
    assert "times the reference's extreme" in err and "ABSURD" in out
    status, out, err = run_cli(["couple", "--emulator", absurd, "--reference", reference, "--out",
                                tmp_path / "refused", "--no-progress"], capsys)
    assert status == 1 and "pre-flight check failed" in err and "output PHQ" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "refused" / "coupled.nc").exists()
    status, out, err = run_cli(["couple", "--emulator", absurd, "--reference", reference, "--out",
                                tmp_path / "anyway", "--no-check", "--days", "1", "--window-days", "1",
                                "--no-progress"], capsys)
    assert status == 0 and (tmp_path / "anyway" / "score.json").is_file()
    status, out, err = run_cli(["check", emulator["fkb"]], capsys)
    assert status == 1 and "give --data FILE.nc or --reference DIR" in err
