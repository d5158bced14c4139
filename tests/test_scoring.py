"""Online scoring of coupled runs, on real toy-GCM runs (Held-Suarez T10, moist start, 6 days)."""
import math

import numpy as np
import pytest
import xarray as xr

from coupler.scoring import (noise_floor, online_error, pressure_area_weights, score_run, stability_record,
                             window_means)
from coupler.sweep import CoupledRunConfig, coupled_run, prepare_reference

DAYS, WINDOW = 6.0, 3.0


def config(**overrides):
    gcm = {"humidity": True, **overrides}
    return CoupledRunConfig(preset="held-suarez-t10", overrides=gcm, initial_relative_humidity=0.7, days=DAYS,
                            window_days=WINDOW, output_interval_hours=24.0, perturbation_kelvin=0.01, n_perturbed=3)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("scoring")
    paths = prepare_reference(config(), folder / "reference")
    from gcm_toy import open_output
    # t_max = 300 K: the tropics warm past it on day 4.67, after the first 3-day window
    crashed = coupled_run(None, config(t_max=300.0), folder / "crashed.nc")
    return {"reference": open_output(paths["reference"]).load(), "paths": paths,
            "perturbed": [open_output(p).load() for p in paths["perturbed"]],
            "noise_floor": xr.load_dataset(paths["noise_floor"]), "crashed": crashed}


def test_reference_is_moist_and_completes(runs):
    ref = runs["reference"]
    assert ref.attrs["run_status"] == "completed"
    assert ref.sizes["time"] == DAYS
    assert float(ref["q_mean"].max()) > 1e-3  # kg/kg: the moist start is carried
    assert float(ref["q_mean"].min()) >= 0.0


def test_run_scored_against_itself_has_zero_error(runs):
    error = online_error(runs["reference"], runs["reference"], WINDOW)
    assert int(error["n_windows"]) == 2
    assert float(error["online_error_t"]) == 0.0
    assert float(error["online_error_q"]) == 0.0


def test_weights_are_pressure_thickness_times_gaussian_weight(runs):
    means = window_means(runs["reference"], WINDOW)
    weights = pressure_area_weights(means)
    np.testing.assert_allclose(weights.sum(("lev", "lat")).values, 1.0, rtol=1e-12)
    dsigma = np.diff(runs["reference"]["lev_bnds"].values, axis=1)[:, 0]
    expected = dsigma[:, None] * means["ps"].isel(window=0).values[None, :] * runs["reference"]["gw"].values[None, :]
    np.testing.assert_allclose(weights.isel(window=0).values, expected / expected.sum(), rtol=1e-12)


def test_uniform_offsets_give_their_size_as_rmse(runs):
    """Weights sum to 1, so +1 K everywhere is an RMSE of 1 K and +0.5 g/kg one of 0.5 g/kg."""
    ref = runs["reference"]
    shifted = ref.copy()
    shifted["t_mean"] = ref["t_mean"] + 1.0
    shifted["q_mean"] = ref["q_mean"] + 0.5e-3
    error = online_error(shifted, ref, WINDOW)
    np.testing.assert_allclose(error["rmse_t"].values, 1.0, rtol=1e-5)
    np.testing.assert_allclose(error["rmse_q"].values, 0.5, rtol=1e-4)
    expected = 0.5 * (1.0 / error["spread_t"] + 0.5 / error["spread_q"])
    np.testing.assert_allclose(error["rmse_normalized"].values, expected.values, rtol=1e-4)
    assert float(error["online_error_t"]) == pytest.approx(1.0, rel=1e-5)


def test_rmse_matches_a_direct_weighted_sum(runs):
    ref, pert = runs["reference"], runs["perturbed"][0]
    error = online_error(pert, ref, WINDOW)
    # window 1 = records for days 4, 5, 6 (all one day long)
    def mean(ds, name):
        return ds[name].isel(time=slice(3, 6)).astype(float).mean(("time", "lon")).values

    t_run, t_ref, ps = mean(pert, "t_mean"), mean(ref, "t_mean"), mean(ref, "ps_mean")
    w = np.diff(ref["lev_bnds"].values, axis=1) * ps[None, :] * ref["gw"].values[None, :]
    w /= w.sum()
    assert float(error["rmse_t"].isel(window=1)) == pytest.approx(math.sqrt((w * (t_run - t_ref) ** 2).sum()),
                                                                  rel=1e-9)


def test_noise_floor_is_small_and_positive(runs):
    floor = runs["noise_floor"]
    assert 0.0 < float(floor["online_error_t"]) < 0.1   # K: 0.01 K at the start
    assert 0.0 < float(floor["online_error_q"]) < 0.01  # g/kg
    again = noise_floor(runs["reference"], runs["perturbed"], WINDOW)
    assert float(again["online_error_t"]) == pytest.approx(float(floor["online_error_t"]))


def test_noise_floor_is_the_mean_and_range_of_the_twins(runs):
    paths, floor = runs["paths"], runs["noise_floor"]
    assert [p.name for p in paths["perturbed"]] == ["perturbed_1.nc", "perturbed_2.nc", "perturbed_3.nc"]
    assert floor.attrs["n_twins"] == 3 and floor.sizes["twin"] == 3
    each = [float(online_error(twin, runs["reference"], WINDOW)["online_error_t"]) for twin in runs["perturbed"]]
    assert len(set(each)) == 3                               # each twin its own seed
    assert float(floor["online_error_t"]) == pytest.approx(np.mean(each), rel=1e-12)
    assert float(floor["online_error_t_min"]) == min(each) and float(floor["online_error_t_max"]) == max(each)
    window = floor["floor_t_mean"].isel(window=0)
    assert float(floor["floor_t_min"].isel(window=0)) <= float(window) <= float(floor["floor_t_max"].isel(window=0))
    # a second call reuses every run; another configuration in the folder is refused
    stamp = [p.stat().st_mtime_ns for p in paths["perturbed"]]
    folder = paths["reference"].parent
    assert prepare_reference(config(), folder)["noise_floor"] == paths["noise_floor"]
    assert [p.stat().st_mtime_ns for p in paths["perturbed"]] == stamp
    with pytest.raises(ValueError, match="another coupled-run configuration"):
        prepare_reference(config(t_max=320.0), folder)


def test_completed_run_survives_its_whole_length(runs):
    record = stability_record(runs["reference"], DAYS)
    assert float(record["days_survived"]) == DAYS
    assert int(record["crashed"]) == 0 and int(record["completed"]) == 1
    assert record.attrs["crash_reason"] == ""
    assert float(stability_record(runs["reference"], 4.0)["days_survived"]) == 4.0  # capped


def test_crashed_run_records_when_and_why(runs):
    crashed = runs["crashed"]
    record = crashed.stability
    assert crashed.run.attrs["run_status"] == "crashed"
    assert int(record["crashed"]) == 1
    assert float(record["days_survived"]) == pytest.approx(crashed.run.attrs["crash_time_days"])
    assert WINDOW < float(record["days_survived"]) < DAYS
    assert "temperature above bound" in record.attrs["crash_reason"]


def test_crashed_run_is_scored_over_the_windows_it_survived(runs):
    score = score_run(runs["crashed"].run, runs["reference"], DAYS, WINDOW)
    assert int(score["n_windows"]) == 1
    assert score["window"].values.tolist() == [0]
    assert float(score["online_error_t"]) == pytest.approx(float(score["rmse_t"].isel(window=0)))
    assert score.attrs["run_status"] == "crashed"


def test_window_that_splits_a_record_is_refused(runs):
    with pytest.raises(ValueError, match="straddles"):
        window_means(runs["reference"], 1.5)


def test_run_too_short_for_a_window_has_no_online_error(runs):
    error = online_error(runs["reference"], runs["reference"], 30.0)
    assert int(error["n_windows"]) == 0
    assert math.isnan(float(error["online_error_t"]))
