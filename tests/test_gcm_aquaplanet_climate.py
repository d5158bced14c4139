"""The aquaplanet's physics settings as GCM options, and the climate
diagnostics of `fkb gcm plot-aquaplanet` (experiments/aquaplanet_climate.py)
on a known field and on a tiny T10 run."""
from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from fkb_cli import main
from experiments.aquaplanet_climate import aquaplanet_climate, headline_numbers
from gcm_toy import Model, load_config
from gcm_toy.config import PHYSICS_KEYS

T10 = "aquaplanet-t10"


def run_cli(argv, capsys):
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def test_physics_settings_are_options_with_the_core_defaults(capsys):
    config = load_config(T10)
    for key in ("n_subcolumns", "n_substeps", "radiation_interval", "pert_excess_coef", "pert_t_min", "sbm_tau",
                "lw_window", "sw_tau_vapour", "diurnal_cycle"):
        assert key in PHYSICS_KEYS
    assert isinstance(config.n_subcolumns, int) and config.n_subcolumns >= 1
    assert isinstance(config.diurnal_cycle, bool)
    text = config.replace(n_subcolumns=3, sbm_tau=3600.0, seasons=True).physics_settings()
    assert text.startswith("&physics_settings ") and text.endswith(" /")
    assert "physics%n_subcolumns=3," in text and "physics%sbm_tau=3600.0," in text
    assert "physics%seasons=.true." in text
    status, out, _ = run_cli(["gcm", "options", "--preset", T10], capsys)
    assert status == 0
    lines = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    assert repr(config.n_subcolumns) in lines["n_subcolumns"] and "physics:" in lines["n_subcolumns"]
    assert "sbm_tau" in lines and "[s]" in lines["sbm_tau"]


def test_physics_settings_reach_the_fortran_physics_and_bad_ones_are_refused():
    # One subcolumn without perturbation spread differs from the default ensemble;
    # the same settings give the same bits.
    a = Model(T10, {"n_subcolumns": 2, "n_substeps": 1})
    b = Model(T10, {"n_subcolumns": 2, "n_substeps": 1})
    c = Model(T10, {"n_subcolumns": 2, "n_substeps": 1, "sbm_tau": 600.0})
    for m in (a, b, c):
        assert m.advance(4) is None
    ta, tb, tc = (m.state()["t"].values for m in (a, b, c))
    assert np.array_equal(ta, tb)
    assert np.abs(ta - tc).max() > 1e-6
    with pytest.raises(ValueError, match="n_subcolumns"):
        Model(T10, {"n_subcolumns": 0})
    with pytest.raises(ValueError, match="lw_window"):
        Model(T10, {"lw_window": 1.5})
    with pytest.raises(ValueError, match="sbm_tau"):
        Model(T10, {"sbm_tau": -1.0})


def test_boundary_layer_entrainment_is_an_option_that_changes_the_run():
    # The host boundary layer's top entrainment (on by default) reaches Fortran:
    # switching it off changes the state; a zero inversion-jump floor is refused.
    config = load_config(T10)
    assert config.pbl_entrain_surface > 0 and config.pbl_entrain_cloud > 0
    assert config.pbl_cloud_top_cooling > 0 and config.pbl_entrain_min_jump > 0
    base = {"n_subcolumns": 2, "n_substeps": 1}
    on = Model(T10, base)
    off = Model(T10, {**base, "pbl_entrain_surface": 0.0, "pbl_entrain_cloud": 0.0})
    for m in (on, off):
        assert m.advance(4) is None
    q_on, q_off = (m.state()["q"].values for m in (on, off))
    assert np.abs(q_on - q_off).max() > 1e-9
    with pytest.raises(ValueError, match="pbl_entrain_min_jump"):
        Model(T10, {"pbl_entrain_min_jump": 0.0})
    with pytest.raises(ValueError, match="pbl_entrain_cloud"):
        Model(T10, {"pbl_entrain_cloud": -1.0})


def test_deep_convection_criteria_are_options_off_by_default():
    # The optional Betts-Miller deep-convection criteria (entraining parcel,
    # cloud-layer humidity) are off by default, reach Fortran and are validated.
    config = load_config(T10)
    assert config.sbm_deep_entrainment == 0.0 and config.sbm_deep_rh_min == 0.0
    base = {"n_subcolumns": 2, "n_substeps": 1}
    off = Model(T10, base)
    on = Model(T10, {**base, "sbm_deep_entrainment": 1e-2})
    for m in (on, off):
        assert m.advance(24) is None   # deep convection starts after ~15 steps (1 h) from rest
    q_on, q_off = (m.state()["q"].values for m in (on, off))
    assert np.abs(q_on - q_off).max() > 1e-9
    with pytest.raises(ValueError, match="sbm_deep_entrainment"):
        Model(T10, {"sbm_deep_entrainment": -1e-4})
    with pytest.raises(ValueError, match="sbm_deep_rh_min"):
        Model(T10, {"sbm_deep_rh_min": 1.5})


def _synthetic_run(nlat: int = 16, nlon: int = 8, nlev: int = 4, ntime: int = 6) -> xr.Dataset:
    """A fake output with known zonal means: precipitation peaking at the
    equator (8 mm/day, 5 at the rows +-5.6 deg) and falling to 0.5 at 25 deg;
    a 30 m/s jet at +-35 deg (10 % stronger in the north)."""
    lat = np.linspace(-84.0, 84.0, nlat)
    lon = np.linspace(0.0, 360.0, nlon, endpoint=False)
    lev = np.linspace(0.1, 0.9, nlev)
    time = np.arange(1.0, ntime + 1.0)
    bnds = np.stack([time - 1.0, time], axis=1)
    gw = np.cos(np.deg2rad(lat))
    gw = 2.0 * gw / gw.sum()
    precip = 0.5 + 7.5 * np.exp(-(lat / 8.0) ** 2) + 2.0 * np.exp(-((np.abs(lat) - 45.0) / 8.0) ** 2)
    u = np.zeros((nlev, nlat))
    u[0] = 30.0 * np.exp(-((np.abs(lat) - 35.0) / 10.0) ** 2)
    u[0, lat > 0] *= 1.1

    def grid2(values):  # (lat,) -> (time, lat, lon)
        return np.broadcast_to(values[None, :, None], (ntime, nlat, nlon)).astype(np.float32)

    def grid3(values):  # (lev, lat) -> (time, lev, lat, lon)
        return np.broadcast_to(values[None, :, :, None], (ntime, nlev, nlat, nlon)).astype(np.float32)

    d2, d3 = ("time", "lat", "lon"), ("time", "lev", "lat", "lon")
    flat = np.ones(nlat)
    ds = xr.Dataset({
        "t_mean": (d3, grid3(np.full((nlev, nlat), 250.0))),
        "q_mean": (d3, grid3(np.full((nlev, nlat), 0.005))),
        "u_mean": (d3, grid3(u)),
        "v_mean": (d3, grid3(np.zeros((nlev, nlat)))),
        "CLOUD": (d3, grid3(np.full((nlev, nlat), 0.2))),
        "ps_mean": (d2, grid2(1.0e5 * flat)),
        "PRECT": (d2, grid2(precip / 86400.0)),
        "QFLX": (d2, grid2(1.01 * precip / 86400.0)),
        "SHFLX": (d2, grid2(10.0 * flat)), "LHFLX": (d2, grid2(80.0 * flat)),
        "SOLIN": (d2, grid2(340.0 * flat)), "FSNT": (d2, grid2(240.0 * flat)), "FLNT": (d2, grid2(235.0 * flat)),
        "FSNS": (d2, grid2(170.0 * flat)), "FLNS": (d2, grid2(60.0 * flat)),
        "time_bnds": (("time", "nv"), bnds), "gw": (("lat",), gw),
    }, coords={"time": time, "lat": lat, "lon": lon, "lev": lev})
    ds.attrs["run_status"] = "completed"
    return ds


def test_headline_numbers_of_a_known_field():
    ds = _synthetic_run()
    clim = aquaplanet_climate(ds, spinup_days=2.0)
    assert clim.attrs["first_day"] == 2.0 and clim.attrs["n_records"] == 4
    h = headline_numbers(clim)
    w = ds.gw.values / ds.gw.values.sum()
    expected = float((ds.PRECT.isel(time=0, lon=0).values * 86400.0 * w).sum())
    assert h.precip == pytest.approx(expected, rel=1e-5)
    assert h.e_minus_p_percent == pytest.approx(1.0, abs=1e-3)
    row = ds.PRECT.isel(time=0, lon=0).values * 86400.0
    assert abs(h.itcz_lat) < 6.0 and h.itcz_precip == pytest.approx(row.max(), rel=1e-5) and h.itcz_precip > 5.0
    for lat, value in (h.subtropical_min_south, h.subtropical_min_north):
        assert 10.0 <= abs(lat) <= 40.0 and value < 1.0
    assert h.subtropical_min_south[0] < 0 < h.subtropical_min_north[0]
    assert h.jet_north[0] > h.jet_south[0] > 25.0
    assert h.jet_south[1] < 0 < h.jet_north[1] and abs(abs(h.jet_north[1]) - 35.0) < 6.0
    assert h.toa_net == pytest.approx(5.0, abs=1e-4)
    assert h.atmosphere_radiative_cooling == pytest.approx(235.0 - 60.0 - 70.0, abs=1e-4)
    assert h.cloud_cover_max == pytest.approx(0.2, abs=1e-6)
    with pytest.raises(ValueError, match="spin-up"):
        aquaplanet_climate(ds, spinup_days=50.0)
    with pytest.raises(ValueError, match="PRECT"):
        aquaplanet_climate(ds.drop_vars("PRECT"))


def test_plot_aquaplanet_reports_a_tiny_run(tmp_path, capsys):
    status, _, err = run_cli(["gcm", "run", "--preset", T10, "--days", "1", "--output-interval-hours", "12",
                              "--set", "n_subcolumns=2", "--set", "n_substeps=1", "--out", tmp_path / "run"], capsys)
    assert status == 0, err
    status, out, err = run_cli(["gcm", "plot-aquaplanet", tmp_path / "run", "--spinup-days", "0.5",
                                "--out", tmp_path / "fig"], capsys)
    assert status == 0, err
    assert "global precipitation" in out and "ITCZ" in out and "jets" in out
    for name in ("t", "q", "u", "cloud", "precip", "fluxes"):
        assert (tmp_path / "fig" / f"aquaplanet_{name}.png").stat().st_size > 5000
    # The printed global precipitation is the area mean of the output's PRECT after day 0.5.
    ds = xr.open_dataset(next((tmp_path / "run").glob("gcm_day*.nc")), decode_times=False)
    last = ds.PRECT.isel(time=-1).mean("lon") * 86400.0
    expected = float((last * ds.gw).sum() / ds.gw.sum())
    printed = float(out.split("global precipitation")[1].split()[0])
    assert printed == pytest.approx(expected, abs=0.006)
    status, _, err = run_cli(["gcm", "plot-aquaplanet", tmp_path / "run", "--spinup-days", "5"], capsys)
    assert status == 1 and "spin-up" in err and len(err.strip().splitlines()) == 1
    # an unreadable output file (e.g. one a running model holds open, or a truncated copy) is named, one line
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "gcm_day00000.nc").write_bytes(b"CDF\x01 truncated")
    (tmp_path / "bad" / "gcm_day00001.nc").write_bytes(b"\x89HDF\r\n\x1a\n garbage")
    status, _, err = run_cli(["gcm", "plot-aquaplanet", tmp_path / "bad", "--spinup-days", "0"], capsys)
    assert status == 1 and "gcm_day0000" in err and len(err.strip().splitlines()) == 1
