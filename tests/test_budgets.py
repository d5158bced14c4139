"""Column water and energy budgets of a run (coupler/budgets.py): exact on
synthetic output with known residuals (unequal records, fields that vary in
space), small for the reference physics on a real run, and large for an
emulator that makes water and energy from nothing, which the
column-water-conservation layer repairs for water (and whose Keras file
fkb couple converts without a plugin)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import xarray as xr

from coupler.budgets import CP, GRAVITY, LATENT_HEAT, budget_record, budget_residuals, has_budgets

NLEV, NLAT, NLON = 3, 4, 8
PS = 1.0e5
DAY = 86400.0


def synthetic_run(water_residual: float, energy_residual: float, seed: int = 0) -> xr.Dataset:
    """Toy-GCM-like output whose global budgets leave exactly the given
    residuals [mm day-1, W m-2]: per record random global fluxes, a column
    mass that grows (as the toy GCM's mass fixer makes it when evaporation
    exceeds rain), and a state integrated from them (uniform in the global
    mean; the spatial patterns average to zero over longitude); the last
    record is shorter."""
    rng = np.random.default_rng(seed)
    ends = np.array([1.0, 2.0, 3.0, 4.0, 4.5])                   # days; records of 1, 1, 1, 1 and 0.5 days
    starts = np.r_[0.0, ends[:-1]]
    n = ends.size
    ps = PS * (1.0 + 3e-4 * ends)                                # Pa, the same everywhere
    mass = ps / GRAVITY                                          # kg m-2 of the whole column
    evap, precip = rng.uniform(2e-5, 4e-5, n), rng.uniform(2e-5, 4e-5, n)   # kg m-2 s-1
    shf, lhf = rng.uniform(5, 20, n), rng.uniform(60, 120, n)
    fsnt, flnt, fsns, flns = (rng.uniform(lo, hi, n) for lo, hi in ((220, 260), (230, 260), (150, 180), (50, 70)))
    boundary = fsnt - flnt - fsns + flns + shf + lhf               # W m-2 into the column
    seconds = (ends - starts) * DAY
    mass_mid = np.r_[mass[0], 0.5 * (mass[1:] + mass[:-1])]
    # the specific contents: M_mid d<x> = (flux + residual) dt in every interval
    q = 3e-3 + np.cumsum((evap - precip + water_residual / DAY) * seconds / mass_mid)          # kg kg-1
    energy = 2.6e5 + np.cumsum((boundary + energy_residual) * seconds / mass_mid)             # J kg-1
    kinetic = 0.5 * 10.0 ** 2                                      # u = 10 m/s
    t = (energy - LATENT_HEAT * q - kinetic) / CP
    lon = np.arange(NLON) * 360.0 / NLON
    wave = np.cos(np.deg2rad(lon) * 2)                             # zero mean along every latitude circle
    shape4 = (n, NLEV, NLAT, NLON)

    def field(base, amp):     # (time, lev, lat, lon)
        return (base[:, None, None, None] + amp * wave[None, None, None, :]) * np.ones(shape4)

    def flux(base, amp):      # (time, lat, lon)
        return (base[:, None, None] + amp * wave[None, None, :]) * np.ones((n, NLAT, NLON))

    half = np.array([0.0, 0.2, 0.6, 1.0])
    gw = np.array([0.3, 0.7, 0.7, 0.3])
    dims4, dims3 = ("time", "lev", "lat", "lon"), ("time", "lat", "lon")
    data = {
        "t": (dims4, field(t, 3.0)), "q": (dims4, field(q, 1e-4)),
        "u": (dims4, np.full(shape4, 10.0)), "v": (dims4, np.zeros(shape4)),
        "ps": (dims3, ps[:, None, None] * np.ones((n, NLAT, NLON))),
        "PRECT": (dims3, flux(precip, 1e-5)), "QFLX": (dims3, flux(evap, 2e-5)), "SHFLX": (dims3, flux(shf, 4.0)),
        "LHFLX": (dims3, flux(lhf, 30.0)), "FSNT": (dims3, flux(fsnt, 50.0)), "FLNT": (dims3, flux(flnt, 10.0)),
        "FSNS": (dims3, flux(fsns, 40.0)), "FLNS": (dims3, flux(flns, 5.0)),
        "time_bnds": (("time", "nv"), np.stack([starts, ends], axis=1)),
        "lev_bnds": (("lev", "nv"), np.stack([half[:-1], half[1:]], axis=1)), "gw": (("lat",), gw),
    }
    coords = {"time": ends, "lev": 0.5 * (half[:-1] + half[1:]), "lat": np.linspace(-60, 60, NLAT), "lon": lon}
    return xr.Dataset(data, coords=coords)


@pytest.mark.parametrize("water, energy", [(0.0, 0.0), (0.8, -3.5), (-2.0, 40.0)])
def test_known_residuals_are_measured_exactly(water, energy):
    ds = budget_residuals(synthetic_run(water, energy))
    assert float(ds["water_budget_residual"]) == pytest.approx(water, abs=1e-9)
    assert float(ds["energy_budget_residual"]) == pytest.approx(energy, abs=1e-6)
    assert float(ds["budget_days"]) == pytest.approx(3.5)          # first record (day 1) to the last (4.5)
    assert ds["water_budget_residual"].attrs["units"] == "mm day-1"
    assert ds["energy_budget_residual"].attrs["units"] == "W m-2"
    # per interval too, and their length-weighted mean is the run's
    np.testing.assert_allclose(ds["water_residual"].values, water, atol=1e-9)
    np.testing.assert_allclose(ds["energy_residual"].values, energy, atol=1e-6)
    assert ds.sizes["interval"] == 4


def test_a_run_without_the_moist_output_or_with_one_record_has_no_budget():
    run = synthetic_run(0.0, 0.0)
    dry = run.drop_vars(["q", "PRECT"])
    assert not has_budgets(dry)
    with pytest.raises(ValueError, match="no q, PRECT: budgets need the moist physics' output"):
        budget_residuals(dry)
    with pytest.raises(ValueError, match="the run has 1 output record; budgets need two"):
        budget_residuals(run.isel(time=[0]))
    assert all(math.isnan(v) for v in budget_record(dry).values())
    assert all(math.isnan(v) for v in budget_record(run.isel(time=[0])).values())
    assert budget_record(run)["water_budget_residual"] == pytest.approx(0.0, abs=1e-9)


# ------------------------------------------------------------- real runs
def test_the_reference_run_closes_its_budgets(tiny_casestudy_reference):
    """The tiny case study's reference (T10 aquaplanet, reference physics, 2
    days of daily records): what the dynamical core leaves is small."""
    from gcm_toy import open_output

    with open_output(tiny_casestudy_reference["stage"].paths["reference"]) as run:
        record = budget_record(run)
        precipitation = float(run["PRECT"].mean()) * DAY
    assert record["budget_days"] == pytest.approx(1.0)
    assert abs(record["water_budget_residual"]) < 2e-3 * precipitation
    assert abs(record["energy_budget_residual"]) < 3.0


HEATING = 1.0 / DAY          # K s-1: the fake emulator's uniform heating, 1 K/day
RAIN = 2.0e-6                # kg m-2 s-1: its precipitation, 0.17 mm/day


def constant_emulator(path, nlev: int, dsigma, conserve: bool, heating: float = HEATING, rain: float = RAIN):
    """A model file whose network ignores its inputs: every column heats by
    `heating` [K s-1], rains `rain` [kg m-2 s-1] and radiates nothing, and
    (unless `conserve`, the column-water-conservation layer) loses no water
    for its rain."""
    import keras

    from emulators.conservation import ColumnWaterConservation
    from emulators.data import NormalizationStats
    from emulators.export import emulator_spec
    from emulators.interface import input_names, input_units, output_names, output_units
    from emulators.modelfile import write_model_file

    n_in, n_out = 2 * nlev + 4, 2 * nlev + 5
    offset = np.zeros(n_out)
    offset[:nlev], offset[-1] = heating, rain
    stats = NormalizationStats(input_names(nlev), input_units(nlev), np.zeros(n_in), np.ones(n_in),
                               output_names(nlev), output_units(nlev), offset, np.ones(n_out))
    inputs = keras.Input((n_in,))
    y = keras.layers.Dense(n_out, kernel_initializer="zeros", bias_initializer="zeros")(inputs)
    if conserve:
        layer = ColumnWaterConservation.for_emulator(stats, dsigma)
        y = layer([y, inputs])
        sigma = np.cumsum(dsigma) - 0.5 * np.asarray(dsigma)
        layer.log_weights.assign(4.0 * np.log(sigma))           # dry the moist lower levels, not the top
    write_model_file(emulator_spec(keras.Model(inputs, y), stats), path)
    return path


@pytest.mark.parametrize("heating, rain, conserve", [(0.0, 0.0, False), (HEATING, RAIN, False),
                                                     (HEATING, RAIN, True)])
def test_an_emulator_that_makes_water_and_energy_shows_in_its_residuals(tiny_casestudy_reference, tmp_path,
                                                                         heating, rain, conserve):
    """Coupled in the tiny case study's world, the fake emulator leaves its
    rain (0.17 mm/day) as a water residual and its heating (1 K/day of the
    whole column, ~119 W/m2) as an energy residual; with the conservation
    layer (run by the GCM's Fortran runtime) its water budget closes like
    the reference's, and only the latent heat of the rain it now removes
    (5 W/m2) leaves the energy residual. An emulator that does nothing
    leaves nothing, although the evaporation it never rains out (~2.8
    mm/day) adds mass, and with it ~7 W/m2 of energy, to the atmosphere:
    the budgets per kilogram of air account for that."""
    from coupler.sweep import coupled_run

    stage = tiny_casestudy_reference["stage"]
    config = stage.sweep.coupled
    nlev = 10
    model = constant_emulator(tmp_path / "fake.fkb", nlev, np.full(nlev, 0.1), conserve, heating, rain)
    run = coupled_run(model, config, tmp_path / "coupled.nc").run
    assert run.attrs["run_status"] == "completed"
    record = budget_record(run)
    column_heating = CP * heating * float(run["ps"].mean()) / GRAVITY     # W m-2 of the uniform heating
    water = 0.0 if conserve else rain * DAY
    energy = column_heating - (LATENT_HEAT * rain if conserve else 0.0)
    assert record["water_budget_residual"] == pytest.approx(water, abs=0.02)
    assert record["energy_budget_residual"] == pytest.approx(energy, abs=2.0)
    run.close()


def test_fkb_couple_converts_a_keras_emulator_with_the_layer_without_a_plugin(tmp_path):
    """The case study's emulators may end in the column-water layer: their
    Keras files convert for coupling in a process that never imported it."""
    import subprocess
    import sys

    from emulators.convert import keras_to_spec, write_keras
    from emulators.modelfile import read_model_file

    fkb = constant_emulator(tmp_path / "fake.fkb", 10, np.full(10, 0.1), True)
    write_keras(read_model_file(fkb), tmp_path / "fake.keras")
    code = ("import sys; from coupler.couple import prepare_model_files; "
            "files, _ = prepare_model_files([sys.argv[1]], sys.argv[2]); print(files[0])")
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path / "fake.keras"), str(tmp_path / "out")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    converted = read_model_file(result.stdout.strip().splitlines()[-1])
    assert converted.layers[-1].kind == "emulators.column_water"
    assert keras_to_spec(tmp_path / "fake.keras").layers[-1].kind == "emulators.column_water"
