"""Crash attribution (coupler/crash_attribution.py): a crashed coupled run's
last day replayed and recorded on its crash columns, with the guard's scores
and the reference physics' outputs on the same inputs; `fkb crash-report`;
the report's section."""
from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

from fkb_cli import main


def run_cli(argv, capsys):
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def test_a_crashed_run_keeps_a_record_of_its_last_day(crashed_run, hot_emulator):
    from gcm_toy import open_output

    with open_output(crashed_run / "coupled.nc") as run:
        attrs = dict(run.attrs)
    assert attrs["run_status"] == "crashed" and attrs["crash_time_days"] > 4.0    # past the first rewind point
    assert not [p.name for p in crashed_run.iterdir() if p.name.endswith(".rewind")]     # rewind points removed
    record = xr.open_dataset(crashed_run / "coupled_crash.nc")
    assert record.attrs["crash_step"] == attrs["crash_step"]
    assert record.attrs["emulator"] == str(hot_emulator)
    # a day of steps, the states the physics saw, up to the crash
    assert record.sizes["step"] == 24 and np.all(np.diff(record["step"].values) == 1)
    assert record.attrs["recorded_hours"] == pytest.approx(25.0)
    # the reported place is the first crash column
    assert record["lat"].values[0] == pytest.approx(attrs["crash_lat"], abs=3.0)
    assert 1 <= record.sizes["column"] <= 64
    # the same inputs went to the emulator and to the reference physics
    assert record.attrs["input_difference_emulator_reference"] == 0.0
    assert np.isfinite(record["y_reference"].values).all() and np.isfinite(record["x"].values).all()
    # 30 times the heating: far from the training data, and far from the reference physics
    assert record.attrs["ood_before_crash"] == 1 and record.attrs["max_distance_ratio"] > 1.0
    assert record["flagged"].values.any() and record.attrs["hours_ood_before_crash"] > 0
    assert record.attrs["mse_crash_columns"] > 1.0
    summary = json.loads((crashed_run / "score.json").read_text())
    assert summary["crash"]["ood_before_crash"] is True
    assert summary["crash"]["ood_whole_record"] == bool(record["flagged"].isel(step=0).any())
    assert json.loads((crashed_run / "coupled.json").read_text())["days"] == 6.0


def test_crash_report_replays_from_the_start_to_the_same_record(crashed_run, capsys, tmp_path):
    import shutil

    first = xr.open_dataset(crashed_run / "coupled_crash.nc").load()
    status, out, err = run_cli(["crash-report", crashed_run], capsys)
    assert status == 0, err
    assert "crash at day" in out and "inputs out of the training distribution on the crash columns: yes" in out
    copy = tmp_path / "run"
    shutil.copytree(crashed_run, copy)
    (copy / "coupled_crash.nc").unlink()
    status, out, err = run_cli(["crash-report", copy], capsys)        # no record: replay from the run's start
    assert status == 0, err
    assert "replaying" in out
    again = xr.open_dataset(copy / "coupled_crash.nc").load()
    for name in first.data_vars:
        np.testing.assert_array_equal(again[name].values, first[name].values)   # bit for bit
    written = ("emulator", "history")      # where the emulator was, when and by which command
    assert {k: v for k, v in again.attrs.items() if k not in written} == \
           {k: v for k, v in first.attrs.items() if k not in written}


def test_crash_report_refuses_what_it_cannot_tell(tiny_casestudy_reference, crashed_run, tmp_path, capsys):
    status, _, err = run_cli(["crash-report", tmp_path], capsys)
    assert status == 1 and "no coupled run coupled.nc here" in err and len(err.strip().splitlines()) == 1
    reference = tiny_casestudy_reference["out"] / "reference"
    (tmp_path / "ref").mkdir()
    import shutil
    shutil.copy(reference / "reference.nc", tmp_path / "ref" / "coupled.nc")
    status, _, err = run_cli(["crash-report", tmp_path / "ref"], capsys)
    assert status == 1 and "did not crash" in err


def test_sweep_results_take_the_crash_records_of_their_runs(crashed_run, tmp_path):
    from coupler.results import collect_results

    (tmp_path / "results").mkdir()
    record = {"index": 0, "status": "ok", "hyperparameters": {}, "offline": {"validation_mse": 0.1},
              "online": {"crashed": True, "days_survived": 3.0, "run_days": 6.0},
              "artifacts": {"run": str(crashed_run / "coupled.nc")}}
    (tmp_path / "results" / "emulator_0000.json").write_text(json.dumps(record))
    results = collect_results(tmp_path)
    assert int(results["crash_ood"][0]) == 1 and float(results["crash_distance_ratio"][0]) > 1.0
    assert results["crash_ood"].attrs["long_name"].startswith("1 if the crash columns")


def _results(**columns):
    n = len(columns["crash_ood"])
    base = {"status": np.array(["ok"] * n, dtype=object), "crashed": np.ones(n, np.int8),
            "offline_mse": np.full(n, 0.1)}
    base.update(columns)
    return xr.Dataset({k: ("emulator", np.asarray(v)) for k, v in base.items()})


def test_the_report_section_counts_out_of_distribution_crashes_against_the_base_rate():
    from experiments.crash_report import crash_lines, crash_statistics

    results = _results(crash_ood=np.array([1, 1, 0, -1], np.int8), crash_hours_ood=[5.0, 1.0, 0.0, np.nan],
                       crash_distance_ratio=[3.0, 2.0, 0.5, np.nan], crash_max_abs_z=[9.0, 7.0, 2.0, np.nan],
                       crash_flagged_fraction_all=[0.01, 0.5, 0.0, np.nan],
                       crash_mse_crash_columns=[1.0, 2.0, 0.2, np.nan], crash_mse_all_columns=[0.2, 0.3, 0.1, np.nan],
                       crash_ood_whole_record=np.array([1, 0, 0, -1], np.int8))
    s = crash_statistics(results)
    assert (s["n_crashed"], s["n_records"], s["n_ood"], s["within_base"], s["whole_record"]) == (4, 3, 2, 1, 1)
    assert 0 < s["fraction_ood_low"] < 2 / 3 < s["fraction_ood_high"] <= 1
    text = "\n".join(crash_lines(results))
    assert "| 2 of 3 (66.7 %" in text and "10" in text          # median MSE ratio 1.0 / 0.1
    assert crash_lines(results.drop_vars("crash_ood")) == []
