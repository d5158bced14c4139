"""`fkb casestudy`: the whole case study from a preset, end to end at toy size
(T10, 3 emulators, a few days), its re-run, and the presets."""
from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

from fkb_cli import main
from experiments.casestudy import list_presets, load_casestudy

from conftest import TINY_CASESTUDY as TINY


def run_cli(argv, capsys):
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture(scope="module")
def tiny_study(tiny_casestudy_reference):
    """The whole tiny case study, on the reference data and runs of the
    shared fixture (same preset, same folder: the command reuses them)."""
    preset, out = tiny_casestudy_reference["preset"], tiny_casestudy_reference["out"]
    status = main(["casestudy", "--preset", str(preset), "--out", str(out), "--no-progress"])
    return {"status": status, "preset": preset, "out": out}


def test_casestudy_runs_every_stage_and_writes_the_results(tiny_study):
    assert tiny_study["status"] == 0
    out = tiny_study["out"]
    data = json.loads((out / "data" / "data.json").read_text())
    assert data["samples"] == 8 and data["columns"] == 512          # 2 days every 6 h, T10 32 x 16
    assert data["coupled_start_day"] == pytest.approx(3.0)          # spin-up + data period
    assert (out / "data" / "checkpoint_day00003.bin").is_file()

    reference = xr.open_dataset(out / "reference" / "reference.nc", decode_times=False)
    assert reference.attrs["run_status"] == "completed" and reference.attrs["physics"] == "reference"
    assert float(reference.attrs["start_time_days"]) == pytest.approx(3.0)
    assert reference.sizes["time"] == 2                              # daily records of a 2-day run

    results = xr.open_dataset(out / "results.nc")
    assert results.sizes["emulator"] == 3 and list(results["emulator"].values) == [0, 1, 2]
    assert (results["status"].values == "ok").all()
    assert (results["depth"].values >= 1).all() and (results["depth"].values <= 2).all()
    assert np.isfinite(results["offline_mse"].values).all() and (results["offline_mse"].values > 0).all()
    days = results["days_survived"].values
    assert ((days >= 0) & (days <= 2.0)).all()
    # a run crashed exactly when it stopped before the end; survivors have an online error
    assert ((results["crashed"].values == 1) == (days < 2.0)).all()
    survivors = results["crashed"].values == 0
    assert np.isfinite(results["online_error_t"].values[survivors]).all()
    assert (results["online_error_t"].values[survivors] >= 0).all()
    assert results.attrs["noise_floor_t"] >= 0 and np.isfinite(results.attrs["noise_floor_normalized"])
    assert results.attrs["noise_floor_twins"] == 2                  # the tiny preset's twins
    assert results.attrs["noise_floor_t_min"] <= results.attrs["noise_floor_t"] <= results.attrs["noise_floor_t_max"]
    ratio = results["online_error_over_noise_floor"].values[survivors]
    np.testing.assert_allclose(ratio, results["online_error_normalized"].values[survivors]
                               / results.attrs["noise_floor_normalized"])
    # every emulator also coupled with the guard on fallback ([coupled] fallback_run)
    fraction = results["fallback_fraction"].values
    assert ((fraction >= 0) & (fraction <= 1)).all() and (results["fallback_crashed"].values >= 0).all()
    assert (results["fallback_flagged_fraction"].values >= fraction - 1e-12).all()
    assert (results["seconds_per_day"].values > 0).all() and results["fallback_fraction"].attrs["units"] == "1"
    # budgets: every coupled run's that has two records, and the reference's beside them
    assert results.attrs["budget_records"] == 3 and results.attrs["reference_budget_days"] == pytest.approx(1.0)
    assert abs(results.attrs["reference_water_budget_residual"]) < 0.02
    two_records = days >= 2.0
    for name in ("water_budget_residual", "energy_budget_residual"):
        assert np.isfinite(results[name].values[two_records]).all()
    assert (results["water_conservation"].values == 0).all()
    assert "## Conservation: column water and energy budgets" in (out / "report.md").read_text()
    world = json.loads((out / "reference" / "world.json").read_text())
    assert world["start_day"] == pytest.approx(3.0) and len(world["twin_rms_t"]) == 2
    assert "credible world, days 3-5" in (out / "report.md").read_text()
    csv = (out / "results.csv").read_text().splitlines()
    assert len(csv) == 4 and csv[0].startswith("emulator,")

    report = (out / "report.md").read_text()
    assert "## Headline" in report and "## Setup" in report
    assert "## The out-of-distribution guard on fallback" in report and "McNemar's exact test" in report
    assert "8 samples of 512 columns" in report and "3 emulators drawn with seed 4" in report
    assert (out / "offline_vs_online.png").is_file()
    timings = json.loads((out / "timings.json").read_text())
    assert len(timings["emulators"]) == 3 and timings["stages_seconds"]["total"] > 0
    assert load_casestudy(out / "casestudy.toml").sweep_tables == load_casestudy(tiny_study["preset"]).sweep_tables


def test_casestudy_rerun_continues_and_reuses_everything(tiny_study, capsys):
    out = tiny_study["out"]
    before = xr.open_dataset(out / "results.nc").load()
    training_mtime = (out / "data" / "training.nc").stat().st_mtime_ns
    (out / "results" / "emulator_0001.json").unlink()               # as if stopped before its result
    status, stdout, err = run_cli(["casestudy", "--preset", tiny_study["preset"], "--out", out, "--no-progress"],
                                  capsys)
    assert status == 0, err
    assert "3 emulators: 2 finished before, 1 done, 0 failed" in stdout
    assert "reference data 0 s, reference runs 0 s" in stdout
    assert f"report: {out / 'report.md'}" in stdout.splitlines()[-1]
    budgets = [line for line in stdout.splitlines() if "budget residuals of the coupled runs" in line]
    with xr.open_dataset(out / "results.nc") as written:      # a line when some run has a budget
        expected = int(np.isfinite(written["water_budget_residual"].values).any())
    assert len(budgets) == expected and all("the reference's" in line for line in budgets)
    assert (out / "data" / "training.nc").stat().st_mtime_ns == training_mtime
    after = xr.open_dataset(out / "results.nc").load()
    kept = [0, 2]                                                   # not recomputed: the same numbers
    for name in ("offline_mse", "days_survived", "online_error_t"):
        np.testing.assert_array_equal(after[name].values[kept], before[name].values[kept])
    # the redone emulator: the same draw, a new result (training in a Dask worker is not always bit for bit
    # reproducible; see docs/case-study.md)
    for name in ("depth", "width", "optimizer", "learning_rate", "seed"):
        assert after[name].values[1] == before[name].values[1]
    assert after["status"].values[1] == "ok" and np.isfinite(after["offline_mse"].values[1])
    assert 0 <= after["days_survived"].values[1] <= 2.0
    # both invocations' wall times are kept, and the report adds them up
    invocations = json.loads((out / "invocations.json").read_text())["invocations"]
    assert len(invocations) >= 2 and all(r["finished"] for r in invocations[-2:])
    assert invocations[-2]["stages_seconds"]["sweep"] > 0 and invocations[-1]["stages_seconds"]["reference_runs"] == 0
    report = (out / "report.md").read_text()
    assert f"The study took {len(invocations)} invocations on this folder" in report


def test_casestudy_only_runs_the_named_emulators(tiny_study, capsys):
    out = tiny_study["out"]
    (out / "results" / "emulator_0002.json").unlink()
    status, stdout, err = run_cli(["casestudy", "--preset", tiny_study["preset"], "--out", out, "--no-progress",
                                   "--only", "2"], capsys)
    assert status == 0, err
    assert "1 emulators: 0 finished before, 1 done, 0 failed" in stdout
    assert xr.open_dataset(out / "results.nc").sizes["emulator"] == 3
    status, stdout, err = run_cli(["casestudy", "--preset", tiny_study["preset"], "--out", out, "--no-progress",
                                   "--only", "1,7"], capsys)
    assert status == 1 and len(err.strip().splitlines()) == 1
    assert err.strip().endswith("--only: no emulator 7 in this sweep (0-2)")
    status, stdout, err = run_cli(["casestudy", "--preset", tiny_study["preset"], "--out", out, "--only", "x"],
                                  capsys)
    assert status == 1 and "--only: 'x' is not an emulator index" in err


def test_casestudy_refuses_a_folder_of_another_configuration(tiny_study, tmp_path, capsys):
    other = tmp_path / "other.toml"
    other.write_text(TINY.replace("n_emulators = 3", "n_emulators = 4"))
    status, out, err = run_cli(["casestudy", "--preset", other, "--out", tiny_study["out"]], capsys)
    assert status == 1 and len(err.strip().splitlines()) == 1
    assert "holds a case study of another configuration" in err


def test_shipped_presets():
    presets = list_presets()
    assert {"quick", "paper"} <= set(presets)
    quick, paper = load_casestudy("quick"), load_casestudy("paper")
    q = quick.sweep("training.nc", "checkpoint.bin")
    assert quick.reference.preset == "aquaplanet-t15" and q.n_emulators >= 12
    assert quick.reference.initial_state == "aquaplanet-t15" and quick.reference.spinup_days == 0
    assert q.coupled.preset == "aquaplanet-t15" and q.coupled.reference_physics == "reference"
    assert q.coupled.n_perturbed >= 5 and q.coupled.reseed_physics
    p = paper.sweep("training.nc", "checkpoint.bin")
    assert p.n_emulators >= 100 and p.coupled.days == 360 and paper.reference.preset == "aquaplanet"
    assert paper.reference.initial_state == "aquaplanet-t21" and p.coupled.n_perturbed >= 5
    assert p.space.depth == (4, 8) and p.space.learning_rate == (1e-5, 1e-1)     # the paper's space
    standard = load_casestudy("standard")
    s = standard.sweep("training.nc", "checkpoint.bin")
    assert s.n_emulators >= 96 and s.coupled.days >= 90 and standard.reference.preset == "aquaplanet"
    assert standard.reference.initial_state == "aquaplanet-t21" and s.space == p.space
    assert s.training["trainer"] == "fortran"


@pytest.mark.parametrize("tables, message", [
    ({"sweep": {"data": "x.nc"}}, "[sweep] data is made by the case study"),
    ({"coupled": {"initial_checkpoint": "c.bin"}}, "[coupled] initial_checkpoint is made"),
    ({"referenc": {}}, "unknown case-study table [referenc]"),
    ({"reference": {"spinup": 3}}, "unknown [reference] option 'spinup'"),
    ({"reference": {"data_days": 0}}, "data_days must be positive"),
    ({"coupled": {"days": 5, "window_days": 10}}, "longer than the run"),
    ({"casestudy": {"workers": 0}}, "workers must be a positive integer"),
])
def test_bad_presets_are_refused_naming_the_problem(tables, message):
    with pytest.raises(ValueError, match=None) as info:
        load_casestudy(tables)
    assert message in str(info.value)


def test_unknown_preset_name_is_one_line(tmp_path, capsys):
    status, out, err = run_cli(["casestudy", "--preset", "huge", "--out", tmp_path / "x"], capsys)
    assert status == 1 and "unknown case-study preset 'huge' (known: " in err and "quick" in err


def test_a_finished_study_is_published_with_its_provenance(tiny_study, tmp_path):
    from experiments.publish import main as publish_main
    out = tiny_study["out"]
    timings = json.loads((out / "timings.json").read_text())
    assert len(timings["code"]["commit"]) == 40 and isinstance(timings["code"]["dirty"], bool)
    dest = tmp_path / "results" / "tiny"
    assert publish_main([str(out), str(dest), "--command", "fkb casestudy --preset tiny.toml --out OUT"]) == 0
    for name in ("results.nc", "results.csv", "report.md", "timings.json", "casestudy.toml", "world.json",
                 "survival.png", "PROVENANCE.md"):
        assert (dest / name).is_file(), name
    assert not (dest / "emulators").exists()
    provenance = (dest / "PROVENANCE.md").read_text()
    assert timings["code"]["commit"] in provenance and "fkb casestudy --preset tiny.toml" in provenance
    assert publish_main([str(tmp_path), str(dest), "--command", "x"]) == 1      # not a case study


def test_report_of_a_study_is_written_again_with_its_setup(tiny_study, tmp_path, capsys):
    out = tiny_study["out"]
    timings = (out / "timings.json").read_text()
    status, printed, _ = run_cli(["report", str(out), "--out", str(tmp_path)], capsys)
    assert status == 0 and str(tmp_path / "report.md") in printed
    report = (tmp_path / "report.md").read_text()
    assert "## Headline" in report and "## Setup" in report and "credible world" in report
    commit = json.loads(timings)["code"]["commit"]
    assert f"the study ran at commit `{commit}`" in report and "written again at commit" in report
    assert (out / "timings.json").read_text() == timings          # the measured times stay


@pytest.mark.parametrize("old, new, message", [
    ("n_emulators = 3", "n_emulators = 0", r"\[sweep\] n_emulators must be an integer >= 1, got 0"),
    ("n_emulators = 3", 'n_emulators = "four"', r"n_emulators must be an integer >= 1, got 'four'"),
    ("width = [8, 16]", "width = [0, 16]", "search space width: hyperparameter width=0 must be at least 1"),
    ("batch_size = [256]", "batch_size = [0]", "search space batch_size: hyperparameter batch_size=0"),
    ("seed = 4", "seed = -1", r"\[sweep\] seed must be an integer >= 0"),
])
def test_bad_sweep_values_are_refused_before_any_work(old, new, message, tmp_path):
    preset = tmp_path / "bad.toml"
    preset.write_text(TINY.replace(old, new, 1))
    with pytest.raises(ValueError, match=message):
        load_casestudy(preset)
    assert not (tmp_path / "out").exists()


def test_the_warm_experiment_couples_the_best_survivors_in_a_warmer_world(tiny_study, capsys):
    """fkb warming: the +K world spun up from the control state, its
    reference and twin, the best survivor coupled there, the report's
    section (experiments/warming.py)."""
    import json

    from coupler.results import read_results
    out = tiny_study["out"]
    results = read_results(out / "results.nc")
    survivors = int(((results["status"].values == "ok") & (results["crashed"].values == 0)).sum())
    status, stdout, err = run_cli(["warming", out, "--sst-offset", "4", "--spinup-days", "1", "--best", "1",
                                   "--twins", "1"], capsys)
    assert status == 0, err
    summary = json.loads((out / "warming" / "warming.json").read_text())
    assert len(summary["emulators"]) == min(1, survivors)
    climate = summary["climate"]
    assert climate["warm"]["t"] > climate["control"]["t"] + 0.5        # the lowest level follows the SST
    assert climate["warm"]["precipitation"] > 0 and summary["noise_floor"]["warm"] > 0
    warm = json.loads((out / "warming" / "reference" / "coupled.json").read_text())
    assert warm["overrides"]["sst_offset"] == 4.0 and warm["initial_checkpoint"].endswith("spinup.bin")
    report = (out / "report.md").read_text()
    assert "## A warmer climate (SST +4 K)" in report
    for row in summary["emulators"]:
        assert row["warm_error"] > 0 and row["control_error"] > 0
    # resumable, and another configuration in the same folder is refused
    status, _, err = run_cli(["warming", out, "--sst-offset", "4", "--spinup-days", "1", "--best", "1",
                              "--twins", "1"], capsys)
    assert status == 0, err
    status, _, err = run_cli(["warming", out, "--sst-offset", "2", "--spinup-days", "1"], capsys)
    assert status == 1 and "another configuration" in err
    status, _, err = run_cli(["warming", out, "--sst-offset", "nan"], capsys)
    assert status == 1 and "sst_offset" in err
