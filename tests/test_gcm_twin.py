"""Twin experiments (gcm_toy.twin, `fkb gcm twin`): perturbations, the
difference measures, the doubling-time fit, determinism, one-line errors."""
from __future__ import annotations

import math

import numpy as np
import pytest
import xarray as xr

from fkb_cli import main
from gcm_toy.model import Model
from gcm_toy.twin import (_Analysis, fit_doubling_time, harmonic_basis, perturbation, run_twins)


@pytest.fixture(scope="module")
def grid():
    return Model("held-suarez-t10", initial_state=False).grid


def test_harmonics_are_orthonormal_under_the_gaussian_quadrature(grid):
    basis, degree = harmonic_basis(grid, 0, 10)
    assert basis.shape[1] == 11 * 11 and degree.max() == 10
    area = np.repeat(grid.weight[:, None], len(grid.lon), axis=1).ravel()
    gram = basis.T @ (basis * (area / area.sum())[:, None])
    np.testing.assert_allclose(gram, np.eye(basis.shape[1]), atol=1e-12)


@pytest.mark.parametrize("kind", ["grid", "synoptic"])
def test_a_perturbation_has_the_asked_rms_and_the_synoptic_one_only_wavenumbers_6_to_15(grid, kind):
    analysis = _Analysis(grid, 10)
    noise = perturbation(grid, kind, 0.01, seed=3, truncation=10)
    assert noise.shape == grid.shape
    assert analysis.rms(noise) == pytest.approx(0.01, rel=1e-12)
    bands = analysis.by_wavenumber(noise)
    if kind == "synoptic":      # all of it in n = 6..10 at T10; nothing planetary
        assert bands["synoptic"] == pytest.approx(0.01, rel=1e-9)
        assert bands["planetary"] < 1e-12
    else:                       # grid noise is mostly beyond the truncation
        assert bands["planetary"] + bands["synoptic"] < 0.01
    np.testing.assert_array_equal(noise, perturbation(grid, kind, 0.01, seed=3, truncation=10))
    assert not np.array_equal(noise, perturbation(grid, kind, 0.01, seed=4, truncation=10))


def test_the_fit_finds_the_doubling_time_of_an_exponential_phase():
    days = np.arange(0, 30.25, 0.25)
    growth = 0.001 * 2.0 ** (days / 2.5)
    saturated = np.minimum(growth, 3.0)
    adjusting = saturated + 0.004 * np.exp(-days / 0.5)   # initial adjustment, then exponential
    fit = fit_doubling_time(days, adjusting, saturation=3.0)
    assert fit.doubling_days == pytest.approx(2.5, rel=0.03)
    level = float(np.median(adjusting[(days >= 1) & (days <= 3)]))
    assert adjusting[days == fit.start_day][0] >= 3 * level                  # from 3x the adjusted level
    assert adjusting[days == fit.end_day][0] <= 0.3 < adjusting[days == fit.end_day + 0.25][0]  # to S/10
    assert fit_doubling_time(days, np.full_like(days, 0.01), 3.0).doubling_days == math.inf
    slow = 0.01 * 2.0 ** (days / 40.0)                     # never triples: no exponential phase seen
    assert fit_doubling_time(days, slow, 3.0).doubling_days == math.inf


def test_twins_of_held_suarez_are_deterministic_and_start_at_the_perturbation(tmp_path):
    model = Model("held-suarez-t10")
    model.advance(24 * 20)
    checkpoint = model.save_checkpoint(tmp_path / "day20.bin")
    result = run_twins(None, checkpoint, days=2.0, n_twins=2, sample_hours=12.0, kind="synoptic")
    curves = result.curves
    assert curves.sizes == {"time": 5, "twin": 2}
    np.testing.assert_allclose(curves.rms_t.isel(time=0), 0.01, rtol=1e-6)   # band-limited: kept whole
    assert float(curves.rms_v.isel(time=0).max()) < 1e-10                   # only T is perturbed
    assert np.all(curves.rms_v.isel(time=slice(1, None)) > 0)              # ...and it spreads to the wind
    assert curves.attrs["start_day"] == 20.0 and result.fits["rms_t"].saturation > 0
    again = run_twins(None, checkpoint, days=2.0, n_twins=2, sample_hours=12.0, kind="synoptic")
    xr.testing.assert_identical(curves, again.curves)
    # without a perturbation's difference there is nothing to grow: the twin of seed 1 is the first twin
    one = run_twins(None, checkpoint, days=2.0, n_twins=1, sample_hours=12.0, kind="synoptic")
    np.testing.assert_array_equal(one.curves.rms_t.sel(twin=1), curves.rms_t.sel(twin=1))


def test_fkb_gcm_twin_writes_the_curves_and_refuses_bad_input(tmp_path, capsys):
    out = tmp_path / "twin"
    status = main(["gcm", "twin", "--preset", "held-suarez-t10", "--spinup-days", "2", "--days", "1",
                   "--twins", "1", "--sample-hours", "12", "--out", str(out)])
    printed, err = capsys.readouterr()
    assert status == 0, err
    assert "doubling time of T" in printed and f"wrote {out / 'twin.nc'}" in printed
    with xr.open_dataset(out / "twin.nc") as ds:
        for name in ("rms_t", "rms_v", "rms_ps", "rms_t_tropics", "rms_t_midlatitudes", "rms_t_polar",
                     "rms_t_n_planetary", "rms_t_n_synoptic"):
            assert name in ds
        assert ds.attrs["start_day"] == 2.0 and ds.rms_ps.attrs["units"] == "hPa"
    for argv, fragment in (([], "--overwrite"),
                           (["--overwrite", "--days", "-1"], "days must be positive"),
                           (["--overwrite", "--perturb", "0"], "amplitude must be positive"),
                           (["--overwrite", "--set", "dt=77"], "dt")):
        status = main(["gcm", "twin", "--preset", "held-suarez-t10", "--days", "1", "--out", str(out)] + argv)
        err = capsys.readouterr().err
        assert status == 1 and fragment in err and len(err.strip().splitlines()) == 1
    status = main(["gcm", "twin", "--out", str(tmp_path / "none")])
    assert status == 1 and "--restart" in capsys.readouterr().err
