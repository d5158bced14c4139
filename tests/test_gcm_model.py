"""The toy GCM's Python API: configuration, outputs, restarts, determinism, crashes (T10, a few days)."""
from __future__ import annotations

import filecmp

import netCDF4
import numpy as np
import pytest
import xarray as xr

from gcm_toy import GCMError, Model, list_presets, load_config
from gcm_toy.output import open_output

T10 = "held-suarez-t10"


def test_presets_define_the_documented_models():
    assert {"held-suarez", "held-suarez-t10", "dynamics-only"} <= set(list_presets())
    hs = load_config("held-suarez")
    assert (hs.truncation, hs.grid_size(), hs.nlev, hs.dt) == (21, (64, 32), 10, 1800.0)
    assert (hs.physics, hs.humidity) == ("held-suarez", False)
    assert load_config("dynamics-only").physics == "none"
    assert load_config(T10).truncation == 10


def test_model_is_built_from_a_preset_plus_overrides():
    model = Model(T10, ["nlev=5", "t_max=330", "output_interval_hours=12"])
    assert model.grid.shape == (5, 16, 32)
    assert model.config.t_max == 330.0 and model.config.output_interval_hours == 12.0
    assert model.grid.lat[0] < 0 < model.grid.lat[-1]               # south to north
    assert np.isclose(model.grid.weight.sum(), 2.0)
    assert np.all(np.diff(model.grid.sigma) > 0)                        # level 1 at the top
    state = model.state()
    assert float(np.abs(state.t - 285.0).max()) < 0.2                  # Held-Suarez start: 285 K + noise
    assert 0.01 < float(state.t.std()) < 0.1
    assert float(np.abs(state.u).max()) == 0.0
    same = Model(T10, {"nlev": 5, "t_max": 330})
    assert same.config.nlev == 5 and same.config.t_max == 330.0


@pytest.mark.parametrize("overrides, named", [
    ({"no_such_option": 1}, "no_such_option"),
    (["truncation=abc"], "truncation"),
    (["t_max=hot"], "t_max"),
    ({"nlev": 1}, "nlev"),                       # refused by the Fortran core
    ({"nlon": 30}, "nlon"),                      # not a multiple of 4
    ({"physics": "magic"}, "physics"),
    ({"initial_state": "chaos"}, "initial_state"),
    ({"output_interval_hours": 1.5}, "output_interval_hours"),   # dt is 1 h
    (["humidity"], "key=value"),
])
def test_bad_option_raises_a_value_error_naming_it(overrides, named):
    with pytest.raises(ValueError, match=named):
        Model(T10, overrides)


def test_output_is_cf_netcdf_with_snapshots_and_interval_means(tmp_path):
    path = tmp_path / "run.nc"
    ds = Model(T10).run(1, out=path, progress=False)
    assert ds.sizes == {"time": 4, "lev": 10, "lat": 16, "lon": 32, "nv": 2}
    np.testing.assert_array_equal(ds.time, [0.25, 0.5, 0.75, 1.0])
    np.testing.assert_array_equal(ds.time_bnds, [[0, 0.25], [0.25, 0.5], [0.5, 0.75], [0.75, 1.0]])
    assert ds.attrs["run_status"] == "completed" and ds.attrs["Conventions"].startswith("CF-")

    with netCDF4.Dataset(path) as nc:                # the file itself, not xarray's view of it
        expected = {"u": "eastward_wind", "v": "northward_wind", "t": "air_temperature",
                    "ps": "surface_air_pressure"}
        for name, standard_name in expected.items():
            for var in (nc[name], nc[f"{name}_mean"]):
                assert var.standard_name == standard_name
            assert nc[name].cell_methods == "time: point"
            assert nc[f"{name}_mean"].cell_methods.startswith("time: mean")
        assert (nc["u"].units, nc["t"].units, nc["ps"].units) == ("m s-1", "K", "Pa")
        assert nc["t"].dimensions == ("time", "lev", "lat", "lon")
        assert nc["ps"].dimensions == ("time", "lat", "lon")
        assert "q" not in nc.variables                # dry model
        assert nc["lat"].units == "degrees_north" and nc["lon"].units == "degrees_east"
        assert nc["lev"].standard_name == "atmosphere_sigma_coordinate" and nc["lev"].positive == "down"
        assert nc["lev"][0] < nc["lev"][-1]
        assert nc["time"].units == "days since 0001-01-01 00:00:00" and nc["time"].calendar == "360_day"
        assert nc.dimensions["time"].isunlimited()

    decoded = xr.open_dataset(path)                   # CF time decoding: 6 h after the start of year 1
    first = decoded.time.values[0]
    assert (first.year, first.month, first.day, first.hour) == (1, 1, 1, 6)
    decoded.close()

    in_memory = Model(T10).run(1, progress=False)     # out=None: the same dataset, built in memory
    for name in ("u", "t_mean", "ps", "time_bnds", "lat", "lev"):
        np.testing.assert_array_equal(in_memory[name], ds[name])
        assert in_memory[name].attrs == ds[name].attrs


def test_interval_means_average_the_state_after_every_step():
    hourly = Model(T10, {"output_interval_hours": 1}).run(1, progress=False)
    six_hourly = Model(T10, {"output_interval_hours": 6}).run(1, progress=False)
    np.testing.assert_array_equal(hourly.t_mean, hourly.t)          # a one-step mean is the state itself
    mean_of_hours = hourly.t.astype(np.float64).coarsen(time=6).mean()
    np.testing.assert_allclose(six_hourly.t_mean, mean_of_hours, rtol=1e-6)
    assert float(np.abs(six_hourly.t_mean - six_hourly.t).max()) > 1e-3   # a mean, not a snapshot


def test_moist_model_writes_specific_humidity(tmp_path):
    ds = Model(T10, {"humidity": True}).run(0.25, out=tmp_path / "moist.nc", progress=False)
    assert ds.q.attrs["standard_name"] == "specific_humidity" and ds.q.attrs["units"] == "kg kg-1"
    assert ds.q_mean.dims == ("time", "lev", "lat", "lon")
    assert float(np.abs(ds.q).max()) == 0.0          # a dry start with no moisture source stays dry


def test_restart_continues_bit_for_bit(tmp_path):
    whole = Model(T10)
    whole_ds = whole.run(4, out=tmp_path / "whole.nc", progress=False)
    whole.save_checkpoint(tmp_path / "whole_end.bin")

    first = Model(T10)
    first.run(2, out=tmp_path / "first.nc", progress=False)
    first.save_checkpoint(tmp_path / "day2.bin")
    second = Model.from_checkpoint(tmp_path / "day2.bin")
    assert second.time_days == 2.0 and second.config == first.config
    second_ds = second.run(2, out=tmp_path / "second.nc", progress=False)
    second.save_checkpoint(tmp_path / "second_end.bin")

    final_whole, final_restarted = whole.fields(), second.fields()
    for name in final_whole:
        assert np.array_equal(final_whole[name], final_restarted[name]), name
    assert filecmp.cmp(tmp_path / "whole_end.bin", tmp_path / "second_end.bin", shallow=False)
    second_half = whole_ds.isel(time=slice(8, None))
    for name in ("time", "time_bnds", "u", "v", "t", "ps", "u_mean", "v_mean", "t_mean", "ps_mean"):
        assert np.array_equal(second_half[name].values, second_ds[name].values), name

    via_run = Model(T10, initial_state=False).run(2, restart=tmp_path / "day2.bin", progress=False)
    assert np.array_equal(via_run.t.values, second_ds.t.values)
    assert via_run.attrs["restart_from"].endswith("day2.bin")


def test_periodic_checkpoints_restart_the_run_they_come_from(tmp_path):
    model = Model(T10)
    model.run(2, out=tmp_path / "run.nc", checkpoint_every_days=1, progress=False)
    assert sorted(p.name for p in tmp_path.glob("checkpoint_day*.bin")) == [
        "checkpoint_day00001.bin", "checkpoint_day00002.bin"]
    restarted = Model.from_checkpoint(tmp_path / "checkpoint_day00001.bin")
    restarted.run(1, progress=False)
    assert np.array_equal(restarted.fields()["t"], model.fields()["t"])


def test_checkpoint_of_another_resolution_is_refused(tmp_path):
    Model(T10).save_checkpoint(tmp_path / "t10.bin")
    with pytest.raises(GCMError, match="resolution"):
        Model(T10, {"truncation": 15}).load_checkpoint(tmp_path / "t10.bin")
    with pytest.raises(FileNotFoundError):
        Model.from_checkpoint(tmp_path / "absent.bin")


def test_same_configuration_gives_the_same_bits():
    a, b = Model(T10), Model(T10)
    a.run(2, progress=False)
    b.run(2, progress=False)
    fa, fb = a.fields(), b.fields()
    assert all(np.array_equal(fa[name], fb[name]) for name in fa)
    other_seed = Model(T10, {"seed": 2})
    other_seed.run(2, progress=False)
    assert not np.array_equal(other_seed.fields()["t"], fa["t"])


def test_crash_stops_the_run_and_keeps_the_output(tmp_path):
    # Held-Suarez heats the tropical surface air from 285 K towards 315 K: a
    # 290 K bound is crossed after about a day in the lowest tropical level.
    path = tmp_path / "crash.nc"
    model = Model(T10, {"t_max": 290.0})
    ds = model.run(5, out=path, progress=False)      # returns normally
    attrs = ds.attrs
    assert attrs["run_status"] == "crashed"
    assert attrs["crash_status"] == "unphysical state" and attrs["crash_variable"] == "temperature"
    assert "temperature above bound" in attrs["crash_reason"]
    assert 0.5 < attrs["crash_time_days"] < 2.0 and attrs["crash_time_days"] == model.time_days
    assert attrs["crash_level"] == 10 and attrs["crash_sigma"] > 0.9
    assert abs(attrs["crash_lat"]) < 30.0 and 0.0 <= attrs["crash_lon"] < 360.0
    assert 290.0 < attrs["crash_value"] < 291.0
    # the records before the crash are kept, on disk too; the unfinished interval is not written
    assert ds.sizes["time"] == int(attrs["crash_time_days"] / 0.25) >= 2
    assert float(ds.time[-1]) <= attrs["crash_time_days"]
    assert float(ds.t.max()) <= 290.0
    with netCDF4.Dataset(path) as nc:
        assert nc.run_status == "crashed" and len(nc.dimensions["time"]) == ds.sizes["time"]
        assert nc.crash_level == 10


def test_non_finite_state_is_reported_at_the_first_step(tmp_path):
    model = Model(T10)
    state = model.state()
    state["t"][3, 5, 7] = np.nan
    model.set_state(state)
    assert model.check().variable == "temperature"                 # the check without stepping
    ds = model.run(1, out=tmp_path / "nan.nc", progress=False)
    assert ds.attrs["run_status"] == "crashed" and ds.attrs["crash_status"] == "non-finite value"
    assert ds.attrs["crash_time_days"] == 0.0 and ds.sizes["time"] == 0
    reopened = open_output(tmp_path / "nan.nc")
    assert reopened.attrs["run_status"] == "crashed" and reopened.sizes["time"] == 0


def test_set_state_round_trips_a_model_state():
    model = Model(T10)
    model.run(1, progress=False)
    before = model.state()
    model.set_state(before)
    after = model.state()
    for name in ("u", "v", "t", "ps"):
        np.testing.assert_allclose(after[name], before[name], rtol=1e-10, atol=1e-9)


def test_progress_bar_only_when_asked_or_on_a_terminal(capsys):
    Model(T10).run(0.25, progress=None)               # pytest's stderr is not a terminal
    assert capsys.readouterr().err == ""
    Model(T10).run(0.25, progress=True)
    assert "day" in capsys.readouterr().err


def test_dynamics_only_keeps_the_steady_jet():
    model = Model("dynamics-only")                                     # T21, one day: 48 steps
    u0 = model.fields()["u"]
    ds = model.run(1, progress=False)
    assert model.config.physics == "none" and ds.attrs["run_status"] == "completed"
    assert 30.0 < float(np.abs(u0).max()) < 36.0                     # Jablonowski-Williamson u0 = 35 m/s
    assert float(np.abs(model.fields()["u"] - u0).max()) < 0.5                # 0.32 m/s after one day
