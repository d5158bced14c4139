"""`fkb gcm`: run, restart, crash semantics, one-line errors; the Held-Suarez report."""
from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from fkb_cli import main
from experiments.held_suarez import jet_maxima, plot_climate, tropical_surface_wind
from gcm_toy.output import open_output


def run(argv, capsys):
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def test_gcm_run_help_lists_the_options(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["gcm", "run", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for option in ("--preset", "--days", "--out", "--set", "--output-interval-hours", "--restart",
                   "--physics", "--fail-on-crash", "--emulator", "--emulator-precision", "--limit-humidity",
                   "--limit-precipitation"):
        assert option in out


def test_data_help_lists_the_options(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["data", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for option in ("--preset", "--days", "--spinup-days", "--interval-hours", "--out", "--restart", "--set"):
        assert option in out


def test_gcm_run_writes_output_and_a_checkpoint_and_restarts(tmp_path, capsys):
    status, out, err = run(["gcm", "run", "--preset", "held-suarez-t10", "--days", "1", "--out", tmp_path,
                            "--set", "nlev=5", "--output-interval-hours", "12"], capsys)
    assert status == 0 and err == ""
    ds = open_output(tmp_path / "gcm_day00000.nc")
    np.testing.assert_array_equal(ds.time, [0.5, 1.0])
    assert ds.sizes["lev"] == 5 and ds.attrs["run_status"] == "completed"
    checkpoint = tmp_path / "checkpoint_day00001.bin"
    assert checkpoint.is_file() and (tmp_path / "checkpoint_day00001.bin.toml").is_file()
    assert f"wrote {tmp_path / 'gcm_day00000.nc'}" in out

    # the restart takes its configuration (5 levels, 12-hourly output) from the checkpoint
    status, out, err = run(["gcm", "run", "--restart", checkpoint, "--days", "1", "--out", tmp_path], capsys)
    assert status == 0
    continued = open_output(tmp_path / "gcm_day00001.nc")
    np.testing.assert_array_equal(continued.time, [1.5, 2.0])
    assert continued.sizes["lev"] == 5 and (tmp_path / "checkpoint_day00002.bin").is_file()
    assert continued.attrs["restart_from"] == str(checkpoint)

    # the same output again is refused rather than overwritten
    status, _, err = run(["gcm", "run", "--preset", "held-suarez-t10", "--days", "1", "--out", tmp_path], capsys)
    assert status == 1 and "--overwrite" in err and len(err.strip().splitlines()) == 1


def test_crashed_run_exits_0_with_the_reason_unless_asked_to_fail(tmp_path, capsys):
    argv = ["gcm", "run", "--preset", "held-suarez-t10", "--days", "3", "--set", "t_max=290"]
    status, out, err = run(argv + ["--out", tmp_path / "a"], capsys)
    assert status == 0
    assert out.startswith("run stopped at day 1.08") and "temperature above bound" in out
    assert open_output(tmp_path / "a" / "gcm_day00000.nc").attrs["run_status"] == "crashed"
    assert not list((tmp_path / "a").glob("checkpoint*"))

    status, out, err = run(argv + ["--out", tmp_path / "b", "--fail-on-crash"], capsys)
    assert status == 1
    assert err.startswith("fkb gcm: error: run stopped at day 1.08") and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("extra, named", [
    (["--set", "bogus=1"], "bogus"),
    (["--set", "dt=abc"], "dt"),
    (["--set", "dt=21600"], "too long for T10"),                 # an unstable host is refused
    (["--days", "-3"], "days"),
    (["--preset", "no-such-preset"], "no-such-preset"),
    (["--physics", "magic"], "physics"),
    (["--output-interval-hours", "0.5"], "output_interval_hours"),
    (["--restart", "absent.bin"], "absent.bin"),
])
def test_bad_gcm_input_gives_a_one_line_error(extra, named, tmp_path, capsys):
    argv = ["gcm", "run", "--days", "1", "--out", tmp_path] + extra
    if "--preset" not in extra and "--restart" not in extra:
        argv += ["--preset", "held-suarez-t10"]
    status, out, err = run(argv, capsys)
    assert status == 1
    assert err.startswith("fkb gcm: error:") and named in err and len(err.strip().splitlines()) == 1


def test_plot_held_suarez_reports_a_run_folder(tmp_path, capsys):
    status, _, _ = run(["gcm", "run", "--preset", "held-suarez-t10", "--days", "2", "--out", tmp_path,
                        "--output-interval-hours", "24"], capsys)
    assert status == 0
    status, out, err = run(["gcm", "plot-held-suarez", tmp_path, "--spinup-days", "1"], capsys)
    assert status == 0, err
    assert "time mean over days 1-2 (1 output records" in out and "jet maxima" in out
    assert (tmp_path / "held_suarez_u.png").stat().st_size > 10_000
    assert (tmp_path / "held_suarez_t.png").stat().st_size > 10_000
    status, _, err = run(["gcm", "plot-held-suarez", tmp_path], capsys)   # 200-day spin-up > run
    assert status == 1 and "spin-up" in err


def _synthetic_climate() -> xr.Dataset:
    lat = np.linspace(-87.5, 87.5, 36)
    sigma = np.linspace(0.05, 0.95, 10)
    p = np.outer(sigma, np.full(lat.size, 1000.0))
    jet = lambda lat0, amp: amp * np.exp(-((lat[None, :] - lat0) / 10.0) ** 2 - ((p - 250.0) / 150.0) ** 2)
    u = jet(-42.5, 28.0) + jet(47.5, 31.0) - 5.0 * np.exp(-(lat[None, :] / 15.0) ** 2) * (sigma[:, None] > 0.9)
    return xr.Dataset({"u": (("lev", "lat"), u), "t": (("lev", "lat"), 250.0 + 0 * u),
                       "p": (("lev", "lat"), p), "ps": (("lat",), np.full(lat.size, 1e5))},
                      coords={"lev": sigma, "lat": lat}, attrs={"first_day": 200.0, "last_day": 1200.0})


def test_jet_maxima_and_tropical_surface_wind_of_a_known_field(tmp_path):
    clim = _synthetic_climate()
    south, north = jet_maxima(clim)
    assert (south.lat, north.lat) == (-42.5, 47.5)
    assert south.pressure == pytest.approx(250.0) and north.pressure == pytest.approx(250.0)
    assert south.speed == pytest.approx(28.0, rel=1e-3) and north.speed == pytest.approx(31.0, rel=1e-3)
    surface = tropical_surface_wind(clim)
    assert float(np.abs(surface.lat).max()) <= 30.0
    assert float(surface.min()) == pytest.approx(-5.0 * np.exp(-(2.5 / 15.0) ** 2), rel=1e-6)
    paths = plot_climate(clim, tmp_path)
    assert [p.name for p in paths] == ["held_suarez_u.png", "held_suarez_t.png"]


@pytest.mark.parametrize("setting, message", [
    ("sbm_tau=nan", "option 'sbm_tau': expected a finite number, got nan"),
    ("wind_max=inf", "option 'wind_max': expected a finite number, got inf"),
    ("nlon=2147483648", "option 'nlon': 2147483648 is out of range"),
    ("seed=123456789012345678901", "option 'seed': 123456789012345678901 is out of range"),
])
def test_options_out_of_range_are_refused_in_one_line(setting, message, tmp_path, capsys):
    assert main(["gcm", "run", "--preset", "held-suarez", "--days", "0.1", "--out", str(tmp_path / "run"),
                "--set", setting]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
    assert not (tmp_path / "run").exists()


def test_a_model_file_the_physics_would_ignore_is_refused(tmp_path, capsys):
    import keras

    from emulators.convert import keras_to_spec
    from emulators.modelfile import write_model_file
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    write_model_file(keras_to_spec(model), tmp_path / "m.fkb")
    assert main(["gcm", "run", "--preset", "aquaplanet-t10", "--days", "0.1", "--out", str(tmp_path / "run"),
                "--emulator", str(tmp_path / "m.fkb")]) == 1
    assert "physics 'reference' runs no network" in capsys.readouterr().err


def test_files_that_are_not_netcdf_are_named_in_one_line(tmp_path):
    from gcm_toy.output import open_output
    (tmp_path / "text.nc").write_text("hello")
    (tmp_path / "empty.nc").write_bytes(b"")
    (tmp_path / "truncated.nc").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(200))
    for name, message in (("text.nc", "not a netCDF file"), ("empty.nc", r"not a netCDF file \(empty\)"),
                          ("truncated.nc", "a corrupt or truncated netCDF file"), ("none.nc", "no such file")):
        with pytest.raises((ValueError, FileNotFoundError), match=f"{name}: {message}"):
            open_output(tmp_path / name)
