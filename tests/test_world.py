"""The measures of a credible world (experiments/world.py) on synthetic runs
whose answers are known, and the case study's use of them."""
from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

from experiments.world import CRITERIA, eddy_v_std, format_world, twin_rms_t, world_metrics

LAT = np.array([-60.0, -45.0, -15.0, 0.0, 15.0, 45.0, 60.0])
SIGMA_HALF = np.linspace(0.0, 1.0, 5)


def synthetic_run(days: int = 10, eddy: float = 5.0, precip=None, evap=None, t_offset: float = 0.0) -> xr.Dataset:
    """Daily records: v near 500 hPa is +-eddy alternating in longitude and
    day at 30-60 degrees (so its std about the time-zonal mean is eddy), zero
    elsewhere; PRECT/QFLX given per day (kg m-2 s-1) and rain at 0 degrees."""
    nlon = 4
    lev = 0.5 * (SIGMA_HALF[1:] + SIGMA_HALF[:-1])            # 0.125 0.375 0.625 0.875
    sign = np.array([[(-1.0) ** (d + i) for i in range(nlon)] for d in range(days)])
    band = ((np.abs(LAT) >= 30) & (np.abs(LAT) <= 60)).astype(float)
    v = np.zeros((days, lev.size, LAT.size, nlon))
    v[:, 1:3] = eddy * sign[:, None, None, :] * band[None, None, :, None]
    rain = np.where(LAT == 0.0, 2.0, 1.0)[None, :, None]
    precip = np.ones(days) if precip is None else np.asarray(precip, float)
    evap = precip if evap is None else np.asarray(evap, float)
    t = 250.0 + t_offset + np.zeros((days, lev.size, LAT.size, nlon))
    time = np.arange(1, days + 1, dtype=float)
    return xr.Dataset(
        {"v_mean": (("time", "lev", "lat", "lon"), v),
         "t": (("time", "lev", "lat", "lon"), t),
         "PRECT": (("time", "lat", "lon"), precip[:, None, None] * rain * np.ones((1, 1, nlon)) / 86400.0),
         "QFLX": (("time", "lat", "lon"), evap[:, None, None] * rain * np.ones((1, 1, nlon)) / 86400.0),
         "time_bnds": (("time", "nv"), np.stack([time - 1, time], axis=1)),
         "lev_bnds": (("lev", "nv"), np.stack([SIGMA_HALF[:-1], SIGMA_HALF[1:]], axis=1)),
         "gw": ("lat", np.cos(np.radians(LAT)))},
        coords={"time": time, "lev": lev, "lat": LAT, "lon": np.arange(nlon) * 90.0})


def test_eddy_v_std_is_the_standard_deviation_of_daily_v_at_30_to_60_degrees():
    assert eddy_v_std(synthetic_run(eddy=5.0), 0, 10) == pytest.approx(5.0)
    assert eddy_v_std(synthetic_run(eddy=0.2), 0, 10) == pytest.approx(0.2)


def test_equilibrium_rain_maximum_and_twins_are_measured_and_judged():
    drift = np.r_[np.full(5, 3.0), np.full(5, 2.4)]             # -20 % from the first half to the second
    run = synthetic_run(precip=drift, evap=drift * 1.01)
    twin = synthetic_run(precip=drift, t_offset=0.7)
    metrics = world_metrics(run, 0, 10, [twin, synthetic_run(t_offset=0.2)])
    assert metrics.precip_halves_change == pytest.approx(-0.2)
    assert metrics.evap_minus_precip == pytest.approx(0.01)
    assert metrics.rain_max_lat == 0.0
    assert metrics.twin_rms_t == pytest.approx([0.7, 0.2])
    passes = metrics.passes()
    assert passes == {"eddy_v_std": True, "twin_rms_t": False, "precip_halves_change": False,
                      "evap_minus_precip": True, "rain_max_lat": True}
    text = format_world(metrics)
    assert "NOT MET" in text and "eddy v near 500 hPa" in text and set(passes) == set(CRITERIA)
    json.dumps(metrics.as_dict())                                # world.json is plain JSON
    assert twin_rms_t(run, twin, 10.0) == pytest.approx(0.7)
    with pytest.raises(ValueError, match="no record at day 10.5"):
        twin_rms_t(run, twin, 10.5)
    with pytest.raises(ValueError, match="no output records"):
        world_metrics(run, 20, 30)
