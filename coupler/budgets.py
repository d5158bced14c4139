"""Column water and energy budgets of a toy-GCM run: what the coupled model fails to conserve.

The moist physics of the toy GCM closes both budgets column by column
(``gcm_toy/src/physics/README.md``, "Budgets"): the host's surface fluxes
and boundary layer change the column by exactly the surface fluxes, and the
emulated cloud and radiation physics by exactly

    water:  -sum_k PHQ_k dp_k / g = PRECT
    energy:  sum_k c_p TPHYSTND_k dp_k / g = L_v PRECT + FSNT - FSNS - FLNT + FLNS

An emulator knows neither. Its tendencies may take more water out of a
column than it lets fall as rain, or heat it more than its radiative fluxes
and rain allow, and the coupled model then gains or loses water and energy
that came from nowhere. This module measures that on a run's output
(:mod:`gcm_toy.output`), globally, from what the output holds:

- column water ``W = sum_k q_k dsigma_k ps / g`` [kg m-2];
- column total energy ``E = sum_k (c_p T_k + L_v q_k + (u_k^2 + v_k^2) / 2)
  dsigma_k ps / g`` [J m-2] (moist enthalpy plus kinetic energy; with
  ``p_top = 0`` and a flat surface, the column's internal plus potential
  energy is ``sum c_p T dp / g``; the liquid water that rains out has zero
  enthalpy, so the latent heat of the rain needs no term of its own: it is
  the ``L_v q`` it leaves behind);
- the net flux into the column: water ``E - P`` = ``QFLX - PRECT``, energy
  ``F = FSNT - FLNT - FSNS + FLNS + SHFLX + LHFLX`` (radiation at the top
  minus radiation at the surface, plus the surface turbulent fluxes);
- the residuals, global means (Gaussian weights) over the run, below.
  A positive residual is water (energy) the atmosphere gained beyond what
  its boundaries gave it. ``energy_budget_residual`` includes
  ``L_v`` times the water residual (1 mm/day = 28.9 W m-2): the heating
  part alone is the difference.

What closes exactly in the toy model is the budget of the global means
*per kilogram of air*. Its physics changes q and T at fixed surface
pressure (evaporation and rain change q only), and the dynamical core's
mass fixer then scales ps by a global factor to keep the dry-air mass:
the net water flux becomes mass, and that mass carries the atmosphere's
mean water and energy per kilogram (its ``c_p T`` above all, ~2.6e5 J kg-1:
a net evaporation of 2.8 mm/day that no rain removes adds ~7 W m-2 of
energy this way, a flux no boundary diagnoses). So with ``M`` the global
mean column mass ``ps / g`` and ``<x> = X / M`` the mass-weighted mean
specific content, the residuals are

    water_budget_residual  = M d<w>/dt - (E - P)      [mm day-1]  (1 kg m-2 = 1 mm)
    energy_budget_residual = M d<e>/dt - F            [W m-2]

(``= dX/dt - F_X - X dln(M)/dt``: the change beyond the fluxes and beyond
what the change of mass brings). For the reference physics, whose rain
balances evaporation over the globe, the mass term is small (dln M/dt of a
few 1e-5 per day, 0.1 W m-2); for an emulator whose rain does not balance
evaporation it is not (3e-4 per day for the 2.8 mm/day above).

The output holds snapshots at the end of every record and interval means
of the fluxes; the state at the start of the run is not in it. So the
tendency is taken from the first to the last record's snapshot, summing
``M_mid (<x>_i - <x>_(i-1))`` over the intervals between consecutive
records (``M_mid`` the mean of their two masses), and the fluxes are the
length-weighted means of the records after the first: the run from its
first record to its last (to the crash, for a run that crashed), which
needs at least two records. Per interval the same residuals are returned
too; their length-weighted mean is the run's.

What the reference physics leaves (docs/case-study.md, "Scores"): the
dynamical core is not exactly conservative (spectral transforms, the time
filter, the hyperdiffusion, and the kinetic energy that friction and
hyperdiffusion remove without heating), and the output's physics means lag
its snapshots by a time step; so the reference's residuals are small but
not zero, and an emulator is judged beside them.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import xarray as xr

__all__ = ["CP", "LATENT_HEAT", "GRAVITY", "BUDGET_COLUMNS", "column_water", "column_energy", "has_budgets",
           "budget_residuals", "budget_record"]

CP = 1004.64
"""c_p of dry air [J kg-1 K-1] (``gcm_toy/src/gcm_constants.f90``)."""
LATENT_HEAT = 2.5e6
"""L_v [J kg-1], constant in the toy GCM."""
GRAVITY = 9.80616
"""g [m s-2]."""
SECONDS_PER_DAY = 86400.0

BUDGET_COLUMNS: dict[str, dict[str, str]] = {
    "water_budget_residual": {
        "long_name": "global-mean column water budget residual of the coupled run, M d<q>/dt - (E - P) "
                     "(M column mass, <q> its mean specific water)",
        "units": "mm day-1"},
    "energy_budget_residual": {
        "long_name": "global-mean column energy budget residual of the coupled run, M d<c_p T + L_v q + "
                     "kinetic>/dt - (net downward radiation at the top - at the surface + SHFLX + LHFLX)",
        "units": "W m-2"},
    "budget_days": {"long_name": "length of the period the budget residuals are taken over (first to last record)",
                    "units": "days"},
}
"""The budget numbers of a run (:func:`budget_record`), as the results dataset holds them."""

_STATE = ("t", "q", "u", "v", "ps")
_FLUXES = ("PRECT", "QFLX", "SHFLX", "LHFLX", "FSNT", "FSNS", "FLNT", "FLNS")


def has_budgets(run: xr.Dataset) -> bool:
    """Whether the run's output holds what the budgets need: the moist
    state (``q``) and the moist physics' fluxes."""
    return all(name in run for name in _STATE + _FLUXES + ("lev_bnds", "gw", "time_bnds"))


def _dsigma(run: xr.Dataset) -> xr.DataArray:
    bounds = run["lev_bnds"].astype(np.float64)
    return (bounds.isel(nv=1) - bounds.isel(nv=0)).drop_vars("nv", errors="ignore")


def _mass(run: xr.Dataset) -> xr.DataArray:
    """Air mass per level and column, dsigma ps / g [kg m-2]."""
    return _dsigma(run) * run["ps"].astype(np.float64) / GRAVITY


def column_water(run: xr.Dataset) -> xr.DataArray:
    """Column water vapour of the snapshots, sum_k q_k dsigma_k ps / g [kg m-2]."""
    return (run["q"].astype(np.float64) * _mass(run)).sum("lev").assign_attrs(
        long_name="column water vapour", units="kg m-2")


def column_energy(run: xr.Dataset) -> xr.DataArray:
    """Column total energy of the snapshots, sum_k (c_p T + L_v q + (u^2 + v^2) / 2)
    dsigma_k ps / g [J m-2]."""
    t, q, u, v = (run[name].astype(np.float64) for name in ("t", "q", "u", "v"))
    density = CP * t + LATENT_HEAT * q + 0.5 * (u * u + v * v)
    return (density * _mass(run)).sum("lev").assign_attrs(
        long_name="column total energy (c_p T + L_v q + kinetic)", units="J m-2")


def _global_mean(field: xr.DataArray, gw: xr.DataArray) -> xr.DataArray:
    """Area mean over (lat, lon) with the Gaussian weights."""
    weights = gw.astype(np.float64) / float(gw.sum())
    return (field.mean("lon") * weights).sum("lat")


def budget_residuals(run: xr.Dataset) -> xr.Dataset:
    """The global water and energy budgets of a run (see the module
    docstring): per interval between consecutive records (dimension
    ``interval``) the tendencies, the boundary fluxes and the residuals, and
    over the run (first to last record) ``water_budget_residual`` [mm day-1],
    ``energy_budget_residual`` [W m-2] and ``budget_days``. Raises
    ValueError for a run without the moist output, or with fewer than two
    records (no period to take a tendency over)."""
    missing = [name for name in _STATE + _FLUXES + ("lev_bnds", "gw", "time_bnds") if name not in run]
    if missing:
        raise ValueError(f"the run has no {', '.join(missing)}: budgets need the moist physics' output")
    n = run.sizes.get("time", 0)
    if n < 2:
        raise ValueError(f"the run has {n} output record{'s' if n != 1 else ''}; budgets need two "
                         "(a tendency between the first and the last)")
    gw = run["gw"]
    mass = _global_mean(run["ps"].astype(np.float64), gw).values / GRAVITY        # kg m-2, per record
    water = _global_mean(column_water(run), gw).values / mass                     # kg kg-1, per record
    energy = _global_mean(column_energy(run), gw).values / mass                   # J kg-1
    flux = {name: _global_mean(run[name].astype(np.float64), gw).values for name in _FLUXES}
    bounds = np.asarray(run["time_bnds"].values, np.float64).reshape(-1, 2)
    times = np.asarray(run["time"].values, np.float64)
    seconds = np.diff(times) * SECONDS_PER_DAY                                  # between snapshots
    lengths = (bounds[1:, 1] - bounds[1:, 0]) * SECONDS_PER_DAY                 # of the flux records
    if np.any(seconds <= 0):
        raise ValueError("the run's records are not in increasing time")
    mass_mid = 0.5 * (mass[1:] + mass[:-1])
    e_minus_p = (flux["QFLX"] - flux["PRECT"])[1:]                              # kg m-2 s-1
    boundary = (flux["FSNT"] - flux["FLNT"] - flux["FSNS"] + flux["FLNS"] + flux["SHFLX"] + flux["LHFLX"])[1:]
    water_change = mass_mid * np.diff(water)                                    # kg m-2 per interval
    energy_change = mass_mid * np.diff(energy)                                  # J m-2
    per_day = SECONDS_PER_DAY

    def series(values: np.ndarray, units: str, long_name: str) -> xr.DataArray:
        return xr.DataArray(values, dims="interval", attrs={"units": units, "long_name": long_name})

    def over_run(values: np.ndarray) -> float:
        return float(np.sum(values * lengths) / np.sum(lengths))

    total = float(np.sum(seconds))
    water_residual = np.sum(water_change) / total - over_run(e_minus_p)
    energy_residual = np.sum(energy_change) / total - over_run(boundary)
    ds = xr.Dataset(
        {"water_tendency": series(water_change / seconds * per_day, "mm day-1",
                                  "global-mean column mass times d(specific column water)/dt"),
         "evaporation_minus_precipitation": series(e_minus_p * per_day, "mm day-1", "global-mean E - P"),
         "water_residual": series((water_change / seconds - e_minus_p) * per_day, "mm day-1",
                                  "global-mean water budget residual in the interval"),
         "energy_tendency": series(energy_change / seconds, "W m-2",
                                   "global-mean column mass times d(specific total energy)/dt"),
         "boundary_energy_flux": series(boundary, "W m-2", "global-mean net energy flux into the column "
                                        "(FSNT - FLNT - FSNS + FLNS + SHFLX + LHFLX)"),
         "energy_residual": series(energy_change / seconds - boundary, "W m-2",
                                   "global-mean energy budget residual in the interval"),
         "mass_tendency": series(np.diff(mass) / seconds * per_day, "kg m-2 day-1",
                                 "global-mean d(column mass ps/g)/dt"),
         "water_budget_residual": xr.DataArray(water_residual * per_day, attrs=BUDGET_COLUMNS["water_budget_residual"]),
         "energy_budget_residual": xr.DataArray(energy_residual, attrs=BUDGET_COLUMNS["energy_budget_residual"]),
         "budget_days": xr.DataArray(total / SECONDS_PER_DAY, attrs=BUDGET_COLUMNS["budget_days"])},
        coords={"interval_start": ("interval", times[:-1], {"units": "days", "long_name": "snapshot at the start"}),
                "interval_end": ("interval", times[1:], {"units": "days", "long_name": "snapshot at the end"})})
    ds.attrs = {"budget_start_days": float(times[0]), "budget_end_days": float(times[-1]),
                "definition": "global means: column mass times the change of the mass-weighted specific content, "
                              "minus the interval means of the fluxes of the records after the first "
                              "(coupler/budgets.py)"}
    return ds


def budget_record(run: xr.Dataset) -> dict[str, Any]:
    """A run's budget numbers as JSON-able data (the keys of
    :data:`BUDGET_COLUMNS`): NaN for a run without the moist output or with
    fewer than two records (one that crashed in its first output interval)."""
    if not has_budgets(run) or run.sizes.get("time", 0) < 2:
        return {name: math.nan for name in BUDGET_COLUMNS}
    ds = budget_residuals(run)
    return {name: float(ds[name]) for name in BUDGET_COLUMNS}
