"""Configuration of the toy GCM: a dataclass filled from a TOML preset plus overrides.

A configuration is data: ``gcm_toy/presets/NAME.toml`` (or any TOML file)
holds flat ``key = value`` pairs, overrides come as a dict or as
``"key=value"`` strings (the command line's ``--set``), and
:func:`load_config` merges them into a checked :class:`GCMConfig`.

The keys of the dynamical core are the components of the Fortran
``model_config`` (gcm_toy/src/gcm_config.f90), with the same names, units and
defaults (the defaults are read from the compiled core). Value ranges are
checked by the core when a model is created; this module checks names and
types, and the options that only the Python side uses (physics and initial
state by name, run length, output).
"""
from __future__ import annotations

import json
import math
import os
import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable, Mapping, Union

from emulators.blas import preload as _preload_blas
from emulators.machine_memory import MEMORY_FRACTION, usable_memory
from emulators.settings import dataclass_from_table, read_settings_file

_preload_blas()  # the BLAS the extension links, before the extension loads
from gcm_toy import _gcm_core  # noqa: E402

__all__ = ["GCMConfig", "ConfigLike", "Overrides", "load_config", "parse_overrides", "list_presets",
           "checkpoint_config_path", "checkpoint_config_text", "verified_checkpoint_config",
           "checkpoint_content_hash", "finetune_state_path",
           "preset_path", "PRESET_DIR", "PHYSICS_NAMES", "INITIAL_STATE_NAMES", "MOIST_PHYSICS",
           "EMULATOR_PHYSICS", "PHYSICS_KEYS"]

PRESET_DIR = Path(__file__).resolve().parent / "presets"


def _names(raw) -> tuple[str, ...]:
    text = raw.tobytes() if hasattr(raw, "tobytes") else raw
    text = text.decode() if isinstance(text, bytes) else str(text)
    return tuple(name.strip() for name in text.split(",") if name.strip())


_physics, _initial_states = _gcm_core.gcm_names()
PHYSICS_NAMES: tuple[str, ...] = _names(_physics)
"""Physics schemes the compiled core knows (``select_physics`` of gcm_toy/src/coupling/gcm_physics_choice.f90)."""
INITIAL_STATE_NAMES: tuple[str, ...] = _names(_initial_states)
"""Named initial states the compiled core can set."""
MOIST_PHYSICS = ("reference", "emulator", "ensemble")
"""The moist aquaplanet physics: its cloud and radiation part is the toy
superparameterization ('reference'), one network ('emulator') or the mean of
several ('ensemble')."""
EMULATOR_PHYSICS = ("emulator", "ensemble")
GUARD_POLICIES = ("off", "clip", "fallback")
WEIGHT_RAMPS = ("constant", "linear", "step")
"""Ramps of the network's weight in partial coupling (positions: the Fortran side's numbers)."""
OUTPUT_GROUPS = ("TPHYSTND", "PHQ", "FSNT", "FSNS", "FLNT", "FLNS", "PRECT")
"""The emulator's output groups, in the order of the interface."""
"""Policies of the emulator guard: the numbers the Fortran side knows them by are their positions."""

_CORE_KEYS = ("truncation", "nlon", "nlat", "nlev", "dt", "t_ref", "diffusion_order", "diffusion_time",
              "diffuse_humidity", "robert_coefficient", "williams_alpha", "humidity", "mass_fixer",
              "humidity_fixer", "t_min", "t_max", "wind_max", "ps_min", "ps_max")
_CORE = dict(zip(_CORE_KEYS, _gcm_core.gcm_default_config()))


def _physics_defaults() -> dict[str, str]:
    """The column physics' defaults as text, read from the compiled core
    (its physics_config written as a Fortran namelist)."""
    text, stat = _gcm_core.gcm_physics_defaults()
    text = text.decode() if isinstance(text, bytes) else str(text)
    if stat != 0:
        raise RuntimeError("the compiled core could not write the physics defaults")
    return {m.group(1).lower(): m.group(2).strip()
            for m in re.finditer(r"PHYSICS%(\w+)=\s*([^,\n]*)", text, flags=re.IGNORECASE)}


_PHYSICS_DEFAULTS = _physics_defaults()
PHYSICS_KEYS: tuple[str, ...] = tuple(_PHYSICS_DEFAULTS)
"""Settings of the moist column physics (components of the Fortran
``physics_config``, gcm_toy/src/physics/physics_configuration.f90), in its order."""


def _phys(key: str, doc: str, kind: type = float):
    raw = _PHYSICS_DEFAULTS[key]
    if kind is bool:
        value = raw.upper().lstrip(".").startswith("T")
    elif kind is int:
        value = int(raw)
    else:
        value = float(raw)
    return field(default=value, metadata={"doc": "physics: " + doc, "core": False, "physics": True})


def _core(key: str, doc: str):
    value = _CORE[key]
    if key in ("diffuse_humidity", "humidity", "mass_fixer", "humidity_fixer"):
        value = bool(value)
    return field(default=value, metadata={"doc": doc, "core": True})


def _opt(default, doc: str, quiet: bool = False):
    """A Python-side option; `quiet`: left out of :meth:`GCMConfig.to_toml`
    at its default (an option group added later, so that a configuration
    that does not use it is written as before)."""
    return field(default=default, metadata={"doc": doc, "core": False, "quiet": quiet})


@dataclass
class GCMConfig:
    """Everything that defines a toy-GCM run (units in each field's doc)."""

    description: str = _opt("", "one line saying what the configuration is for")
    # ---- dynamical core (gcm_config's model_config) ----
    truncation: int = _core("truncation", "triangular truncation T_M")
    nlon: int = _core("nlon", "Gaussian-grid longitudes; 0 = alias-free default (T21 -> 64)")
    nlat: int = _core("nlat", "Gaussian latitudes; 0 = the default of the truncation (T21 -> 32)")
    nlev: int = _core("nlev", "number of sigma levels")
    sigma_half: list[float] | None = _opt(
        None, "nlev+1 half-level sigma values from 0 (top) to 1 (surface); unset = equally spaced")
    dt: float = _core("dt", "time step [s]")
    t_ref: float = _core("t_ref", "reference temperature of the semi-implicit scheme [K]")
    diffusion_order: int = _core("diffusion_order", "hyperdiffusion del^order (even, 2..16)")
    diffusion_time: float = _core("diffusion_time", "e-folding time of the hyperdiffusion at n = M [s]; 0 = automatic, "
                                   "pi a / (M x 15 m/s) (T21: 0.74 day)")
    diffuse_humidity: bool = _core("diffuse_humidity", "apply the hyperdiffusion to humidity too")
    robert_coefficient: float = _core("robert_coefficient", "Robert-Asselin filter strength nu")
    williams_alpha: float = _core("williams_alpha", "Williams (2009) filter alpha (0.5 = plain Robert-Asselin)")
    humidity: bool = _core("humidity", "carry specific humidity (false: dry model, q not written)")
    mass_fixer: bool = _core("mass_fixer", "restore the global dry-air mass every step")
    humidity_fixer: bool = _core("humidity_fixer", "fill negative humidity conservatively every step")
    t_min: float = _core("t_min", "crash bound: lowest temperature [K]")
    t_max: float = _core("t_max", "crash bound: highest temperature [K]")
    wind_max: float = _core("wind_max", "crash bound: highest wind speed [m s-1]")
    ps_min: float = _core("ps_min", "crash bound: lowest surface pressure [Pa]")
    ps_max: float = _core("ps_max", "crash bound: highest surface pressure [Pa]")
    # ---- physics and initial state ----
    physics: str = _opt("held-suarez", "column physics by name: " + ", ".join(PHYSICS_NAMES))
    initial_state: str = _opt("held-suarez", "initial state by name: " + ", ".join(INITIAL_STATE_NAMES))
    initial_temperature: float = _opt(288.0, "temperature of the 'rest' and 'rossby-haurwitz' states [K]")
    seed: int = _opt(1, "seed of the initial temperature noise ('held-suarez', 'aquaplanet') and of the "
                        "reference physics' random numbers")
    # ---- emulators (physics = emulator | ensemble) ----
    emulator: list[str] | None = _opt(
        None, "model file(s) of the emulator: one for physics = emulator, several for ensemble "
              "(relative paths are resolved when the configuration is loaded)")
    emulator_precision: str = _opt("float32", "arithmetic of the networks: float32 or float64")
    limit_humidity: bool = _opt(False, "emulator limiter: clip dq/dt at -q/dt (then fill negative q)")
    limit_precipitation: bool = _opt(False, "emulator limiter: clip precipitation at 0")
    guard: str = _opt("off", "emulator out-of-distribution guard: off, clip (inputs into the widened training "
                             "range) or fallback (the reference physics on the flagged columns); needs the "
                             "model file's input statistics")
    guard_margin: float = _opt(0.1, "guard: widening of each input's training range, a fraction of its width")
    guard_factor: float = _opt(2.0, "guard: flag beyond this multiple of the training's 99.9 % distance")
    network_weight: float = _opt(1.0, "partial coupling: outputs a * network + (1 - a) * reference physics "
                                      "with this a in [0, 1] once ramped (below 1: the reference runs too)")
    weight_ramp: str = _opt("constant", "how the network's weight reaches network_weight: constant, linear "
                                        "(from 0 over ramp_days from ramp_start_day) or step (0 until then)")
    ramp_start_day: float = _opt(0.0, "partial coupling: model day the ramp starts")
    ramp_days: float = _opt(0.0, "partial coupling: length of the ramp [days]")
    network_start_day: float | None = _opt(None, "the reference physics alone before this model day (a "
                                                 "spin-up), the network after it")
    reference_outputs: tuple[str, ...] | None = _opt(None, "partial coupling: output groups taken from the reference "
                                                     "physics: " + ", ".join(OUTPUT_GROUPS))
    finetune: bool = _opt(False, "online fine-tuning: the reference physics teaches the emulator on a seeded subset of "
                                 "the columns (physics = emulator, float32; docs/gcm.md)", quiet=True)
    finetune_every_steps: int = _opt(1, "fine-tuning: a round every this many model steps", quiet=True)
    finetune_columns: int = _opt(64, "fine-tuning: columns per round (the teacher runs on them)", quiet=True)
    finetune_steps: int = _opt(1, "fine-tuning: optimizer steps per round on its columns", quiet=True)
    finetune_learning_rate: float = _opt(1e-4, "fine-tuning: learning rate of Adam (Keras's defaults otherwise; "
                                               "MSE of the normalized outputs, as offline)", quiet=True)
    finetune_seed: int = _opt(1, "fine-tuning: seed of the columns' choice", quiet=True)
    finetune_start_day: float | None = _opt(None, "fine-tuning: first model day of a round (unset: from the start)",
                                            quiet=True)
    # ---- moist column physics (reference, emulator, ensemble): physics_config ----
    n_subcolumns: int = _phys("n_subcolumns", "subcolumns per GCM column of the toy superparameterization", int)
    n_substeps: int = _phys("n_substeps", "sub-steps of each subcolumn per physics step", int)
    radiation_interval: int = _phys("radiation_interval", "radiation every this many sub-steps", int)
    pert_sigma_top: float = _phys("pert_sigma_top", "subcolumn T/q perturbations act below this sigma")
    pert_excess_coef: float = _phys("pert_excess_coef", "b of the thermal excess b F / w_m setting the "
                                                        "perturbation amplitude (Holtslag & Boville 1993)")
    pert_velocity_scale: float = _phys("pert_velocity_scale", "w_m of the thermal excess [m s-1]")
    pert_t_min: float = _phys("pert_t_min", "smallest standard deviation of the T perturbation [K]")
    pert_q_min_rel: float = _phys("pert_q_min_rel", "smallest standard deviation of the q perturbation / q")
    pert_truncation: float = _phys("pert_truncation", "perturbation draws truncated at this many std devs")
    sbm_tau: float = _phys("sbm_tau", "Betts-Miller relaxation time [s]")
    sbm_rh: float = _phys("sbm_rh", "Betts-Miller mean reference relative humidity")
    sbm_rh_spread: float = _phys("sbm_rh_spread", "full width of the subcolumn spread of that RH")
    sbm_cape_min: float = _phys("sbm_cape_min", "convection triggers above this CAPE [J kg-1]")
    sbm_deep_min_depth: float = _phys("sbm_deep_min_depth", "convection rains only if its cloud (LCL to top) "
                                                            "is this deep, else it only redistributes [Pa]")
    sbm_deep_rh_min: float = _phys("sbm_deep_rh_min", "deep convection also needs this saturation fraction "
                                                      "of its cloud layer, LCL to top (0: off)")
    sbm_deep_entrainment: float = _phys("sbm_deep_entrainment", "deep convection also needs a parcel entraining "
                                        "at this rate above its LCL to reach sbm_deep_min_depth [m-1] (0: off)")
    cond_rh_max: float = _phys("cond_rh_max", "largest large-scale condensation threshold (RH)")
    cond_rh_spread: float = _phys("cond_rh_spread", "subcolumn thresholds uniform in [max - spread, max]")
    reevap_coef: float = _phys("reevap_coef", "rain re-evaporation k_e [(kg m-2 s-1)^-1/2 s-1]")
    conv_reevap_coef: float = _phys("conv_reevap_coef", "convective rain evaporation k_e below the levels "
                                                        "where it forms [(kg m-2 s-1)^-1/2 s-1]")
    cloud_rh_width: float = _phys("cloud_rh_width", "stratiform cloud starts this far in RH below the threshold")
    cloud_water_ratio: float = _phys("cloud_water_ratio", "in-cloud condensate / q_sat(T)")
    cloud_water_max: float = _phys("cloud_water_max", "largest in-cloud condensate [kg kg-1]")
    conv_cloud_a: float = _phys("conv_cloud_a", "convective cover a + b ln(P [mm/day]): a")
    conv_cloud_b: float = _phys("conv_cloud_b", "convective cover: b")
    conv_cloud_max: float = _phys("conv_cloud_max", "largest convective cover")
    solar_constant: float = _phys("solar_constant", "S0 [W m-2]")
    lw_tau_dry: float = _phys("lw_tau_dry", "longwave optical depth per dp/p0 of dry air (Byrne & O'Gorman a)")
    lw_tau_vapour: float = _phys("lw_tau_vapour", "longwave optical depth per dp/p0 per unit q (b)")
    lw_window: float = _phys("lw_window", "fraction of the longwave in the window band (0 = gray)")
    lw_window_tau_vapour: float = _phys("lw_window_tau_vapour",
                                        "window-band optical depth per dp/p0 per unit q (continuum)")
    lw_cloud_absorption: float = _phys("lw_cloud_absorption", "cloud longwave mass absorption [m2 kg-1]")
    sw_tau_dry: float = _phys("sw_tau_dry", "dry shortwave absorption optical depth per dp/p0")
    sw_tau_vapour: float = _phys("sw_tau_vapour", "vapour shortwave optical depth per sqrt(slant path "
                                                  "[kg m-2])")
    cloud_effective_radius: float = _phys("cloud_effective_radius", "cloud droplet effective radius [m]")
    cloud_backscatter: float = _phys("cloud_backscatter", "beta of the cloud reflectance (Lacis & Hansen)")
    surface_albedo: float = _phys("surface_albedo", "ocean shortwave albedo")
    skin_wind_speed: float = _phys("skin_wind_speed", "wind for the skin-air difference from SHFLX [m s-1]")
    sst_offset: float = _phys("sst_offset", "uniform offset of the prescribed QOBS SST [K] (+4: a uniformly warmer "
                              "climate, Cess et al. 1990)")
    drag_coefficient: float = _phys("drag_coefficient", "bulk momentum exchange coefficient C_D")
    heat_exchange_coefficient: float = _phys("heat_exchange_coefficient", "bulk heat/moisture coefficient C_H")
    min_wind_speed: float = _phys("min_wind_speed", "smallest |V| in the bulk formulas [m s-1]")
    pbl_sigma_top: float = _phys("pbl_sigma_top", "boundary-layer diffusion below this sigma")
    pbl_diffusivity: float = _phys("pbl_diffusivity", "eddy diffusivity at the surface [m2 s-1]")
    pbl_entrain_surface: float = _phys("pbl_entrain_surface", "boundary-layer-top entrainment heat flux per "
                                                              "unit surface virtual heat flux (A_s)")
    pbl_entrain_cloud: float = _phys("pbl_entrain_cloud", "entrainment heat flux per unit cloud-top cooling "
                                                          "(A_r, Lock et al. 2000)")
    pbl_cloud_top_cooling: float = _phys("pbl_cloud_top_cooling", "longwave cooling of an overcast "
                                                                  "boundary-layer top [W m-2]")
    pbl_entrain_min_jump: float = _phys("pbl_entrain_min_jump", "smallest inversion jump of theta_v in the "
                                                                "entrainment velocity [K]")
    diurnal_cycle: bool = _phys("diurnal_cycle", "diurnal cycle of insolation (false: daily mean)", bool)
    seasons: bool = _phys("seasons", "seasonal cycle (false: perpetual equinox)", bool)
    obliquity_deg: float = _phys("obliquity_deg", "obliquity [degrees]")
    year_length_days: float = _phys("year_length_days", "length of the year [days]")
    day_length: float = _phys("day_length", "length of the solar day [s]")
    # ---- run and output ----
    days: float = _opt(30.0, "default run length [days]")
    output_interval_hours: float = _opt(
        6.0, "interval of the output records (snapshots and means) [h]; a multiple of dt")
    output_precision: str = _opt("float32", "precision of the fields written: float32 or float64")

    def __post_init__(self) -> None:
        for f in fields(self):
            setattr(self, f.name, _coerce(f.name, getattr(self, f.name), f.type))
        self._check()

    def _check(self) -> None:
        for key, most in PHYSICS_COUNT_LIMITS.items():
            if not 1 <= getattr(self, key) <= most:
                raise ValueError(f"option {key!r}: must be from 1 to {most}, got {getattr(self, key)}")
        self._check_memory()
        if self.physics not in PHYSICS_NAMES:
            raise ValueError(f"option 'physics': unknown scheme {self.physics!r} "
                             f"(known: {', '.join(PHYSICS_NAMES)})")
        if self.initial_state not in INITIAL_STATE_NAMES:
            raise ValueError(f"option 'initial_state': unknown state {self.initial_state!r} "
                             f"(known: {', '.join(INITIAL_STATE_NAMES)})")
        if self.physics in MOIST_PHYSICS and not self.humidity:
            raise ValueError(f"option 'humidity': physics {self.physics!r} needs a moist model (humidity = true)")
        if self.physics in EMULATOR_PHYSICS:
            paths = self.emulator or []
            if not paths:
                raise ValueError(f"option 'emulator': physics {self.physics!r} needs the model file(s) of the "
                                 "emulator (emulator = PATH, or --emulator PATH)")
            if self.physics == "emulator" and len(paths) != 1:
                raise ValueError(f"option 'emulator': physics 'emulator' takes one model file, got {len(paths)} "
                                 "(physics = 'ensemble' for several)")
            if self.physics == "ensemble" and len(paths) < 2:
                raise ValueError("option 'emulator': physics 'ensemble' takes at least two model files, "
                                 f"got {len(paths)} (physics = 'emulator' for one)")
            for path in paths:
                if len(path) >= 4096:
                    raise ValueError(f"option 'emulator': path longer than 4095 characters: {path[:60]}...")
                if not Path(path).is_file():
                    raise FileNotFoundError(f"option 'emulator': {path}: no such model file")
        if self.emulator and self.physics not in EMULATOR_PHYSICS:
            raise ValueError(f"option 'emulator': physics {self.physics!r} runs no network; set physics = "
                             "'emulator' (or 'ensemble') to run it, or leave the model file out")
        if self.guard not in GUARD_POLICIES:
            raise ValueError(f"option 'guard': must be one of {', '.join(GUARD_POLICIES)}, got {self.guard!r}")
        if self.guard != "off" and self.physics not in EMULATOR_PHYSICS:
            raise ValueError(f"option 'guard': physics {self.physics!r} runs no network to guard; set physics = "
                             "'emulator' or 'ensemble'")
        if not (math.isfinite(self.guard_margin) and self.guard_margin >= 0):
            raise ValueError(f"option 'guard_margin': must be finite and >= 0, got {self.guard_margin}")
        if not (math.isfinite(self.guard_factor) and self.guard_factor > 0):
            raise ValueError(f"option 'guard_factor': must be finite and > 0, got {self.guard_factor}")
        self._check_partial_coupling()
        self._check_finetune()
        if self.emulator_precision not in ("float32", "float64"):
            raise ValueError(f"option 'emulator_precision': must be 'float32' or 'float64', "
                             f"got {self.emulator_precision!r}")
        if self.output_precision not in ("float32", "float64"):
            raise ValueError(f"option 'output_precision': must be 'float32' or 'float64', "
                             f"got {self.output_precision!r}")
        if not (math.isfinite(self.days) and self.days >= 0):
            raise ValueError(f"option 'days': must be >= 0, got {self.days}")
        if not (self.dt > 0):
            raise ValueError(f"option 'dt': must be positive, got {self.dt}")
        steps_per_output(self)  # raises if the interval is not a multiple of dt

    # ------------------------------------------------------------ helpers
    def memory_estimate(self) -> int:
        """Bytes the core allocates for this configuration, roughly
        (:data:`MEMORY_PER_POINT` per 3-D grid point and spectral
        coefficient per level, and the Legendre tables)."""
        if not (self.truncation >= 0 and self.nlon >= 0 and self.nlat >= 0 and self.nlev >= 1):
            return 0                       # the core refuses these itself, without allocating
        m = self.truncation
        nlon = self.nlon or 4 * ((3 * m + 4) // 4)          # the core's default_grid_size, in Python's integers
        nlat = self.nlat or nlon // 2
        nspec = (m + 1) * (m + 2) // 2
        return int(MEMORY_PER_POINT["grid"] * nlon * nlat * (self.nlev + 1)
                   + MEMORY_PER_POINT["spectral"] * nspec * (self.nlev + 1)
                   + MEMORY_PER_POINT["legendre"] * nspec * nlat)

    def _check_memory(self) -> None:
        """Refuse a grid whose state would not fit in a fraction of the
        machine's memory, before the core tries to allocate it (an
        allocation that fails aborts the process)."""
        need, have = self.memory_estimate(), usable_memory()
        if have and need > MEMORY_FRACTION * have:
            nlon = self.nlon or 4 * ((3 * self.truncation + 4) // 4)
            nlat = self.nlat or nlon // 2
            raise ValueError(f"grid T{self.truncation} {nlon} x {nlat} x {self.nlev} levels needs about "
                             f"{need / 2 ** 30:.3g} GiB of memory (estimate), more than "
                             f"{MEMORY_FRACTION:.0%} of the {have / 2 ** 30:.3g} GiB this process may use: "
                             "check truncation, nlon, nlat and nlev")

    def _check_partial_coupling(self) -> None:
        asked = (self.network_weight != 1.0 or self.weight_ramp != "constant" or self.network_start_day is not None
                 or bool(self.reference_outputs))
        if asked and self.physics not in EMULATOR_PHYSICS:
            raise ValueError(f"partial coupling (network_weight, weight_ramp, network_start_day, reference_outputs): "
                             f"physics {self.physics!r} runs no network; set physics = 'emulator' or 'ensemble'")
        if not (math.isfinite(self.network_weight) and 0.0 <= self.network_weight <= 1.0):
            raise ValueError(f"option 'network_weight': must be in [0, 1], got {self.network_weight}")
        if self.weight_ramp not in WEIGHT_RAMPS:
            raise ValueError(f"option 'weight_ramp': must be one of {', '.join(WEIGHT_RAMPS)}, got {self.weight_ramp!r}")
        for key in ("ramp_start_day", "ramp_days"):
            if not math.isfinite(getattr(self, key)):
                raise ValueError(f"option {key!r}: must be finite, got {getattr(self, key)}")
        if self.ramp_days < 0 or (self.weight_ramp != "constant" and not self.ramp_days > 0):
            raise ValueError(f"option 'ramp_days': must be positive for weight_ramp = {self.weight_ramp!r}, "
                             f"got {self.ramp_days}")
        if self.network_start_day is not None and not math.isfinite(self.network_start_day):
            raise ValueError(f"option 'network_start_day': must be finite, got {self.network_start_day}")
        unknown = [g for g in self.reference_outputs or [] if g not in OUTPUT_GROUPS]
        if unknown:
            raise ValueError(f"option 'reference_outputs': unknown output group {unknown[0]!r} "
                             f"(known: {', '.join(OUTPUT_GROUPS)})")

    def _check_finetune(self) -> None:
        for key in ("finetune_every_steps", "finetune_columns", "finetune_steps"):
            if getattr(self, key) < 1:
                raise ValueError(f"option {key!r}: must be at least 1, got {getattr(self, key)}")
        rate = self.finetune_learning_rate
        if not (math.isfinite(rate) and rate > 0):
            raise ValueError(f"option 'finetune_learning_rate': must be positive and finite, got {rate}")
        if self.finetune_start_day is not None and not math.isfinite(self.finetune_start_day):
            raise ValueError(f"option 'finetune_start_day': must be finite, got {self.finetune_start_day}")
        if not self.finetune:
            return
        if self.physics != "emulator":
            raise ValueError(f"option 'finetune': physics {self.physics!r} has no single network to tune; set "
                             "physics = 'emulator'")
        if self.emulator_precision != "float32":
            raise ValueError("option 'finetune': the network trains in float32; set emulator_precision = 'float32'")

    def replace(self, **changes: Any) -> "GCMConfig":
        """A copy with some options changed (checked like overrides)."""
        return load_config(self, changes)

    def to_dict(self) -> dict[str, Any]:
        """All options as plain Python values (None for an unset sigma_half)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def to_toml(self, header: str = "") -> str:
        """The configuration as a TOML file that :func:`load_config` reads back
        to an equal configuration (floats written with full precision)."""
        lines = [f"# {line}" for line in header.splitlines()]
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None and not (f.metadata.get("quiet") and value == f.default):
                lines.append(f"{f.name} = {_toml_value(value)}")
        return "\n".join(lines) + "\n"

    def short_name(self) -> str:
        """e.g. 'T21 64x32 L10'."""
        nlon, nlat = self.grid_size()
        return f"T{self.truncation} {nlon}x{nlat} L{self.nlev}"

    def grid_size(self) -> tuple[int, int]:
        """(nlon, nlat) with the core's defaults for 0 filled in."""
        nlon, nlat = _gcm_core.gcm_grid_size(self.truncation)
        return self.nlon or int(nlon), self.nlat or int(nlat)

    def physics_settings(self) -> str:
        """The moist physics' settings as the Fortran namelist text the core reads."""
        items = []
        for key in PHYSICS_KEYS:
            value = getattr(self, key)
            if isinstance(value, bool):
                text = ".true." if value else ".false."
            elif isinstance(value, int):
                text = str(value)
            else:
                text = repr(float(value))
            items.append(f"physics%{key}={text}")
        return "&physics_settings " + ", ".join(items) + " /"

    @staticmethod
    def option_docs() -> dict[str, str]:
        """One line per option: what it means and its unit."""
        return {f.name: f.metadata["doc"] for f in fields(GCMConfig)}


_missing = set(PHYSICS_KEYS) - {f.name for f in fields(GCMConfig) if f.metadata.get("physics")}
if _missing:  # the compiled core and this file disagree: a build problem, not a user error
    raise RuntimeError(f"gcm_toy.config lacks the physics settings {sorted(_missing)} of the compiled core")

PHYSICS_COUNT_LIMITS = {"n_subcolumns": 1024, "n_substeps": 1024, "radiation_interval": 1024}
"""Largest subcolumns and sub-steps of the toy superparameterization: its
cost grows with their product in every column and step (the defaults are
12, 4 and 2); more is a typo, not a study."""

MEMORY_PER_POINT = {"grid": 400, "spectral": 800, "legendre": 24}
"""Bytes the core allocates per grid point and level ("grid", ~50 real64
fields with the physics and the running means), per spectral coefficient
and level ("spectral", complex time levels and tendencies) and per Legendre
table entry ("legendre", P and its derivative over nspec x nlat): an upper
estimate (a model built at T21 and T85 grew the process by 3 and 37 MiB,
against 11 and 180 MiB estimated), so that a refusal is never wrong by much."""

ConfigLike = Union[str, os.PathLike, Mapping[str, Any], GCMConfig]
Overrides = Union[Mapping[str, Any], Iterable[str], None]


def steps_per_output(config: GCMConfig) -> int:
    """Time steps per output interval; raises ValueError naming the option if
    the interval is not a positive multiple of dt."""
    return _steps(config.output_interval_hours * 3600.0, config.dt, "output_interval_hours",
                  f"{config.output_interval_hours:g} h")


def steps_for_days(days: float, dt: float, option: str = "days") -> int:
    """Number of time steps in `days` [days]; raises ValueError if it is not a
    whole number of steps of dt [s]."""
    if not (math.isfinite(days) and days >= 0):
        raise ValueError(f"option '{option}': must be >= 0, got {days}")
    if days == 0:
        return 0
    return _steps(days * 86400.0, dt, option, f"{days:g} days")


def _steps(seconds: float, dt: float, option: str, shown: str) -> int:
    n = round(seconds / dt) if math.isfinite(seconds) else 0
    if n < 1 or abs(n * dt - seconds) > 1e-6 * dt:
        raise ValueError(f"option '{option}': {shown} is not a positive multiple of the time step dt = {dt:g} s")
    return n


# ------------------------------------------------------------------ loading
def checkpoint_config_path(path: str | os.PathLike) -> Path:
    """The configuration written next to a checkpoint: PATH.toml."""
    path = Path(path)
    return path.with_name(path.name + ".toml")


_CHECKPOINT_MAGIC = b"GCMTOYCK"
_CONFIG_HASH_LINE = re.compile(r"# sha256 ([0-9a-f]{64}) ")


def checkpoint_content_hash(path: str | os.PathLike) -> str:
    """The SHA-256 a checkpoint of format version 2 carries in its header
    (gcm_checkpoint.f90); ValueError for other files."""
    with open(path, "rb") as fh:
        head = fh.read(12 + 64)
    if head[:8] != _CHECKPOINT_MAGIC or len(head) < 12 + 64 or head[8:12] != (2).to_bytes(4, "little"):
        raise ValueError(f"{path}: not a toy-GCM checkpoint of format version 2")
    return head[12:].decode("ascii", "replace")


def _config_digest(checkpoint_hash: str, body: str) -> str:
    import hashlib

    return hashlib.sha256(f"{checkpoint_hash}\n{body}".encode()).hexdigest()


def checkpoint_config_text(body: str, checkpoint: str | os.PathLike) -> str:
    """The text of PATH.toml for the (already written) checkpoint PATH: the
    configuration's TOML `body`, under a first line holding the SHA-256 of the
    checkpoint's own hash and the body, so that a changed or swapped
    configuration is found on restart (:func:`verified_checkpoint_config`)."""
    digest = _config_digest(checkpoint_content_hash(checkpoint), body)
    return f"# sha256 {digest} (of checkpoint {Path(checkpoint).name}'s hash and the lines below)\n" + body


def verified_checkpoint_config(checkpoint: str | os.PathLike) -> Path:
    """PATH.toml of checkpoint PATH after checking that it is the one written
    with it, unchanged; FileNotFoundError or ValueError in one line."""
    sidecar = checkpoint_config_path(checkpoint)
    if not sidecar.is_file():
        raise FileNotFoundError(f"{sidecar}: the checkpoint's configuration is missing "
                                "(pass the configuration explicitly)")
    text = sidecar.read_text(encoding="utf-8", errors="replace")
    first, _, body = text.partition("\n")
    match = _CONFIG_HASH_LINE.match(first)
    if match is None:
        raise ValueError(f"{sidecar}: carries no hash (written before configurations were hashed): "
                         "gcm_toy.upgrade_checkpoint adds it")
    if match.group(1) != _config_digest(checkpoint_content_hash(checkpoint), body):
        raise ValueError(f"{sidecar}: does not match checkpoint {Path(checkpoint).name} (edited, corrupt, or "
                         "another checkpoint's): pass changes as overrides, or to accept the file as it is "
                         "delete its first line and run gcm_toy.upgrade_checkpoint")
    return sidecar


def finetune_state_path(path: str | os.PathLike) -> Path:
    """The fine-tuned network (weights and optimizer state) written next to
    a checkpoint of a fine-tuning run: PATH.finetune.fkb (and its
    PATH.finetune.fkb.state, whether tuning stopped)."""
    path = Path(path)
    return path.with_name(path.name + ".finetune.fkb")


def list_presets() -> dict[str, str]:
    """Preset names and their one-line descriptions."""
    out = {}
    for path in sorted(PRESET_DIR.glob("*.toml")):
        with open(path, "rb") as fh:
            out[path.stem] = str(tomllib.load(fh).get("description", ""))
    return out


def preset_path(name: str | os.PathLike) -> Path:
    """The TOML file of a preset name, or `name` itself if it is a file."""
    path = Path(name)
    if path.suffix == ".toml" or path.is_file():
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such configuration file")
        return path
    candidate = PRESET_DIR / f"{name}.toml"
    if not candidate.is_file():
        raise ValueError(f"unknown preset {str(name)!r} (known: {', '.join(list_presets())})")
    return candidate


def load_config(source: ConfigLike = "held-suarez", overrides: Overrides = None) -> GCMConfig:
    """A checked configuration from a preset name, a TOML file, a dict or a
    GCMConfig, with `overrides` (dict, or "key=value" strings) applied on top.

    Unknown options and values of the wrong type raise ValueError naming the
    option."""
    if isinstance(source, GCMConfig):
        values = source.to_dict()
    elif isinstance(source, Mapping):
        values = dict(source)
    else:
        values = read_settings_file(preset_path(source))
    values.update(parse_overrides(overrides))
    return dataclass_from_table(GCMConfig, values, "option")


def parse_overrides(overrides: Overrides) -> dict[str, Any]:
    """Overrides as a dict. Strings are "key=value" with a TOML value
    (``t_max=300``, ``physics=none``, ``sigma_half=[0, 0.5, 1]``); a value
    that is not valid TOML is taken as a plain string."""
    if overrides is None:
        return {}
    if isinstance(overrides, Mapping):
        return dict(overrides)
    if isinstance(overrides, str):
        overrides = [overrides]
    out: dict[str, Any] = {}
    for item in overrides:
        key, sep, text = str(item).partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"override {item!r} is not of the form key=value")
        text = text.strip()
        try:
            out[key] = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            out[key] = text
    return out


# ------------------------------------------------------------- type checks
def _coerce(name: str, value: Any, annotation: str) -> Any:
    kind = str(annotation)
    if kind == "tuple[str, ...] | None":  # names: one or a list
        if value is None:
            return None
        if isinstance(value, str):
            value = [value]
        if not hasattr(value, "__iter__") or not all(isinstance(v, str) for v in value):
            raise ValueError(f"option {name!r}: expected a name or a list of names, got {value!r}")
        return list(value) or None
    if "list[str]" in kind:  # model files: one path or a list, made absolute
        if value is None:
            return None
        if isinstance(value, (str, os.PathLike)):
            value = [value]
        if not hasattr(value, "__iter__") or not all(isinstance(v, (str, os.PathLike)) for v in value):
            raise ValueError(f"option {name!r}: expected a path or a list of paths, got {value!r}")
        return [os.path.abspath(os.fspath(v)) for v in value] or None
    if "list[float]" in kind:
        if value is None:
            return None
        if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
            raise ValueError(f"option {name!r}: expected a list of numbers, got {value!r}")
        return [_coerce(name, v, "float") for v in value]
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise ValueError(f"option {name!r}: expected true or false, got {value!r}")
    if kind == "int":
        if isinstance(value, bool) or not _is_integral(value):
            raise ValueError(f"option {name!r}: expected an integer, got {value!r}")
        if not -2 ** 31 <= int(value) < 2 ** 31:
            raise ValueError(f"option {name!r}: {int(value)} is out of range (the model's integers hold "
                             f"{-2 ** 31} to {2 ** 31 - 1})")
        return int(value)
    if kind == "float | None":
        return None if value is None else _coerce(name, value, "float")
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)) and not _is_number(value):
            raise ValueError(f"option {name!r}: expected a number, got {value!r}")
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if not math.isfinite(number):
            raise ValueError(f"option {name!r}: expected a finite number, got {value!r}")
        return number
    if kind == "str":
        if not isinstance(value, str):
            raise ValueError(f"option {name!r}: expected a string, got {value!r}")
        return value
    raise TypeError(f"option {name!r}: unhandled type {annotation}")  # a bug, not a user error


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return not isinstance(value, str)


def _is_integral(value: Any) -> bool:
    if isinstance(value, int):
        return True
    return hasattr(value, "dtype") and value.dtype.kind in "iu"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        text = repr(value)
        return text if any(c in text for c in ".en") else text + ".0"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")
