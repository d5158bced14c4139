"""The toy GCM from Python: a :class:`Model` is one model in the Fortran core.

    >>> model = Model("held-suarez-t10", {"t_max": 320})
    >>> ds = model.run(10, out="run.nc")          # xarray Dataset, written as it runs
    >>> model.save_checkpoint("day10.bin")
    >>> again = Model.from_checkpoint("day10.bin")

The state lives in the handle table of the f2py extension
``gcm_toy._gcm_core`` (gcm_toy/bindings/); this class forwards to it and
turns statuses into exceptions or, for a state that fails the core's crash
check, into a :class:`Failure` report (a crashed run is data, not an error).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import xarray as xr

from emulators.atomic_files import replacing, write_text_replacing
from emulators.fortran_object import FortranObject
from gcm_toy import _gcm_core as _core
from gcm_toy.config import (EMULATOR_PHYSICS, GUARD_POLICIES, OUTPUT_GROUPS, WEIGHT_RAMPS, ConfigLike, GCMConfig,
                             Overrides, checkpoint_config_path, checkpoint_config_text, finetune_state_path,
                             load_config, verified_checkpoint_config, _CHECKPOINT_MAGIC)
from gcm_toy.output import DIAGNOSTIC_ORDER, GUARD_DIAGNOSTICS, Grid, state_dataset

# gcm_toy.run imports this module, so this module imports it inside Model.run.

GRAVITY = 9.80616
"""g [m s-2], as in the core's gcm_constants."""

__all__ = ["Model", "Failure", "FinetuneStatus", "GCMError", "STATUS_NAMES", "CRASH_STATUSES", "finetune_state_path",
           "upgrade_checkpoint"]

STATUS_NAMES = {
    0: "ok",
    1: "invalid configuration",
    2: "invalid model state or shape",
    3: "io error",
    4: "checkpoint format error",
    5: "physics error",
    6: "unphysical state",
    7: "non-finite value",
}
"""The codes of gcm_toy/src/gcm_status.f90."""

CRASH_STATUSES = (5, 6, 7)
"""Statuses that end a run as data (physics error, unphysical, non-finite)."""


class GCMError(ValueError):
    """An error reported by the Fortran core; ``status`` is its code."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


def _text(raw) -> str:
    if isinstance(raw, np.ndarray):
        raw = raw.tobytes()
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    return str(raw).replace("\x00", "").strip()


def _check(stat, msg, context: str = "") -> None:
    if int(stat) != 0:
        text = _text(msg) or STATUS_NAMES.get(int(stat), f"status {int(stat)}")
        raise GCMError(f"{context}{text}", int(stat))


@dataclass(frozen=True)
class Failure:
    """Why, when and where a run stopped. For a physics error the place is
    unknown (lat, lon, sigma NaN, level -1)."""

    status: int
    reason: str
    step: int
    time_days: float
    lat: float
    lon: float
    level: int
    sigma: float
    variable: str
    value: float

    def attrs(self) -> dict[str, Any]:
        """Dataset attributes: crash_reason, crash_time_days, crash_lat, ..."""
        return {"crash_reason": self.reason, "crash_status": STATUS_NAMES.get(self.status, str(self.status)),
                "crash_step": self.step, "crash_time_days": self.time_days, "crash_lat": self.lat,
                "crash_lon": self.lon, "crash_level": self.level, "crash_sigma": self.sigma,
                "crash_variable": self.variable, "crash_value": self.value}


def upgrade_checkpoint(path: str | os.PathLike) -> Path:
    """Give a checkpoint of format version 1 (written before checkpoints
    carried a hash) the content hash of version 2 (gcm_checkpoint.f90), in
    place and atomically, and its PATH.toml the hash that binds it to the
    checkpoint (if it has none); the state is unchanged, and a run from it is
    bit for bit what it was. The hashes vouch for the files from now on, not
    for what happened to them before."""
    import hashlib

    path = Path(path)
    data = path.read_bytes()
    if data[:8] != _CHECKPOINT_MAGIC or len(data) < 12:
        raise ValueError(f"{path}: not a toy-GCM checkpoint")
    version = int(np.frombuffer(data[8:12], dtype=np.int32)[0])
    if version not in (1, 2):
        raise ValueError(f"{path}: unsupported checkpoint version {version}")
    if version == 1:
        body = data[12:]
        with replacing(path) as tmp:
            tmp.write_bytes(_CHECKPOINT_MAGIC + np.int32(2).tobytes() + hashlib.sha256(body).hexdigest().encode()
                            + body)
    sidecar = checkpoint_config_path(path)
    if sidecar.is_file():
        text = sidecar.read_text(encoding="utf-8")
        if not text.startswith("# sha256 "):
            load_config(sidecar)   # a configuration, not any file
            write_text_replacing(sidecar, checkpoint_config_text(text, path))
    return path


@dataclass(frozen=True)
class FinetuneStatus:
    """Where the emulator's online fine-tuning stands (gcm_finetune.f90)."""

    loss_sum: float
    """sum of the rounds' losses since the last reset of the means"""
    loss_count: int
    """rounds since the last reset of the means"""
    rounds: int
    """rounds this model took (a restart counts from 0 again)"""
    iterations: int
    """optimizer steps of the tuned network since it was compiled (restarts included)"""
    stopped_step: int
    """model step whose round failed and stopped tuning; -1: none"""
    stop_reason: str

    @property
    def interval_loss(self) -> float:
        """Mean loss of the rounds since the last reset (NaN: no round)."""
        return self.loss_sum / self.loss_count if self.loss_count else float("nan")

    @property
    def stopped(self) -> bool:
        return self.stopped_step >= 0


def _step_of_day(day: float, dt: float) -> int:
    """The model step at `day` days (rounded to the nearest step)."""
    return int(round(day * 86400.0 / dt))

def check_configuration(config: ConfigLike = "held-suarez", overrides: Overrides = None) -> GCMConfig:
    """Check a configuration as a run would, without running it: the
    options (names, types, finite numbers, integer ranges, the memory
    estimate: :class:`GCMConfig`) and the core's own checks (ranges, the
    time step's stability, the physics settings), by building the model
    without its initial state. ValueError (GCMError) naming the first
    problem; returns the configuration. Milliseconds at the presets' sizes,
    so that a study checks its runs before hours of work."""
    with Model(config, overrides, initial_state=False) as model:
        return model.config


class Model(FortranObject):
    """A toy-GCM model in the Fortran core.

    `config` is a preset name (``gcm_toy/presets/*.toml``), a TOML file, a
    dict or a :class:`GCMConfig`; `overrides` a dict or ``"key=value"``
    strings. Unknown or invalid options raise ValueError naming the option.
    The model starts from ``config.initial_state`` unless `initial_state` is
    False (then at rest, isothermal 288 K).
    """

    def __init__(self, config: ConfigLike = "held-suarez", overrides: Overrides = None, *,
                 initial_state: bool = True, keep_training_batch: bool = False):
        self._handle = 0
        self.restarted_from: Path | None = None
        """The checkpoint the state was last read from (None once set
        otherwise); the next run's output names it (``restart_from``)."""
        self.config: GCMConfig = load_config(config, overrides)
        c = self.config
        sigma_half = np.asarray(c.sigma_half if c.sigma_half is not None else [], dtype=np.float64)
        emulator_paths = "\n".join(c.emulator or []) if c.physics in EMULATOR_PHYSICS else ""
        handle, stat, msg = _core.gcm_create(
            truncation=c.truncation, nlon=c.nlon, nlat=c.nlat, nlev=c.nlev, sigma_half=sigma_half, dt=c.dt,
            t_ref=c.t_ref, diffusion_order=c.diffusion_order, diffusion_time=c.diffusion_time,
            diffuse_humidity=int(c.diffuse_humidity), robert_coefficient=c.robert_coefficient,
            williams_alpha=c.williams_alpha, humidity=int(c.humidity), mass_fixer=int(c.mass_fixer),
            humidity_fixer=int(c.humidity_fixer), t_min=c.t_min, t_max=c.t_max, wind_max=c.wind_max,
            ps_min=c.ps_min, ps_max=c.ps_max, physics=c.physics, physics_seed=c.seed,
            emulator_paths=emulator_paths or " ", use_real64=int(c.emulator_precision == "float64"),
            limit_humidity=int(c.limit_humidity), limit_precipitation=int(c.limit_precipitation),
            guard=GUARD_POLICIES.index(c.guard), guard_margin=c.guard_margin, guard_factor=c.guard_factor,
            network_weight=c.network_weight, ramp=WEIGHT_RAMPS.index(c.weight_ramp),
            ramp_start_step=_step_of_day(c.ramp_start_day, c.dt), ramp_steps=_step_of_day(c.ramp_days, c.dt),
            network_start_step=(_step_of_day(c.network_start_day, c.dt) if c.network_start_day is not None
                                else -2 ** 62),
            reference_outputs=[int(group in (c.reference_outputs or [])) for group in OUTPUT_GROUPS],
            finetune=int(c.finetune), finetune_every_steps=c.finetune_every_steps,
            finetune_columns=c.finetune_columns, finetune_steps=c.finetune_steps,
            finetune_learning_rate=c.finetune_learning_rate, finetune_seed=c.finetune_seed,
            finetune_start_step=(_step_of_day(c.finetune_start_day, c.dt) if c.finetune_start_day is not None
                                 else -2 ** 62),
            keep_training_batch=int(keep_training_batch), physics_settings=c.physics_settings())
        _check(stat, msg)
        self._handle = int(handle)
        truncation, nlon, nlat, nlev, humidity, stat = _core.gcm_sizes(self._handle)
        self.nlon, self.nlat, self.nlev = int(nlon), int(nlat), int(nlev)
        self.humidity = bool(humidity)
        lat, lon, weight, sigma, sigma_half, stat, msg = _core.gcm_grid(self._handle, self.nlat, self.nlon,
                                                                        self.nlev)
        _check(stat, msg)
        self.grid = Grid(lat=np.degrees(lat), lon=np.degrees(lon), weight=weight, sigma=sigma,
                         sigma_half=sigma_half)
        if initial_state:
            self.set_initial_state()

    # ----------------------------------------------------------- creation
    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, overrides: Overrides = None,
                        config: ConfigLike | None = None) -> "Model":
        """A model continuing from a checkpoint. Its configuration is read
        from PATH.toml (written by :meth:`save_checkpoint`) unless `config`
        is given; `overrides` apply on top (resolution, levels and dt must
        stay those of the checkpoint)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such checkpoint")
        if config is None:
            config = verified_checkpoint_config(path)
        model = cls(config, overrides, initial_state=False)
        model.load_checkpoint(path)
        return model

    def set_initial_state(self, name: str | None = None) -> None:
        """Start a new run (step 0) from a named initial state (default
        ``config.initial_state``; see INITIAL_STATE_NAMES)."""
        c = self.config
        stat, msg = _core.gcm_set_initial_state(self._handle, name or c.initial_state, c.seed,
                                                c.initial_temperature)
        _check(stat, msg)
        self.restarted_from = None

    # -------------------------------------------------------------- time
    @property
    def step_count(self) -> int:
        """Time steps taken since the start of the run (time level n)."""
        return int(_core.gcm_time(self._handle)[0])

    @property
    def time_days(self) -> float:
        """Model time [days]: step_count * dt / 86400."""
        return self.step_count * self.config.dt / 86400.0

    # ----------------------------------------------------------- stepping
    def advance(self, nsteps: int, accumulate: bool = False) -> Failure | None:
        """Take `nsteps` time steps. Returns None, or the :class:`Failure` of
        a state that failed the crash check (or of a physics error); the model
        then stays at the failing time level. `accumulate` adds the state
        after every step to the running means (see :meth:`means`)."""
        if nsteps < 0:
            raise ValueError(f"nsteps must be >= 0, got {nsteps}")
        if nsteps == 0:
            return None
        done, stat, msg = _core.gcm_step(self._handle, int(nsteps), int(accumulate))
        stat = int(stat)
        if stat == 0:
            return None
        if stat not in CRASH_STATUSES:
            _check(stat, msg)
        return self.failure(stat, _text(msg))

    def failure(self, status: int | None = None, reason: str = "") -> Failure | None:
        """The core's report of the last failed crash check (None if the
        state passed); a physics error (status 5) has no place."""
        f_stat, step, time_days, lat, lon, level, sigma, variable, value, msg, stat = _core.gcm_failure(
            self._handle)
        if int(f_stat) != 0:
            return Failure(int(f_stat), " ".join(_text(msg).split()), int(step), float(time_days), float(lat), float(lon),
                           int(level), float(sigma), _text(variable), float(value))
        if status is None:
            return None
        return Failure(int(status), reason, self.step_count, self.time_days, float("nan"), float("nan"), -1,
                       float("nan"), "", float("nan"))

    def check(self) -> Failure | None:
        """The core's crash check of the current state, without stepping."""
        stat, msg = _core.gcm_check(self._handle)
        if int(stat) in CRASH_STATUSES:
            return self.failure()
        _check(stat, msg)
        return None

    # ------------------------------------------------------------- state
    def fields(self) -> dict[str, np.ndarray]:
        """Current grid state: u, v [m s-1], t [K], q [kg kg-1] as (lev, lat,
        lon) and ps [Pa] as (lat, lon), float64."""
        u, v, t, q, ps, stat, msg = _core.gcm_get_grid(self._handle, self.nlev, self.nlon, self.nlat)
        _check(stat, msg)
        return _from_fortran(u, v, t, q, ps)

    def means(self) -> tuple[dict[str, np.ndarray], int]:
        """Means of the states summed by ``advance(..., accumulate=True)``
        since the last :meth:`reset_means`, and how many states that is."""
        u, v, t, q, ps, count, stat, msg = _core.gcm_get_mean(self._handle, self.nlev, self.nlon, self.nlat)
        _check(stat, msg)
        return _from_fortran(u, v, t, q, ps), int(count)

    def humidity_filled_mean(self) -> float:
        """Water the dynamical core's negative-humidity filler (option
        ``humidity_fixer``) moved, as a global-mean rate [kg m-2 s-1], over
        the steps summed since the last :meth:`reset_means` (0 if none). It
        fills the holes of spectral advection, and also any negative humidity
        an emulator's tendencies leave (``QFILL`` in the output records it)."""
        filled, count, stat = _core.gcm_get_filled_mean(self._handle)
        if stat != 0 or count == 0:
            return 0.0
        return float(filled) / GRAVITY / self.config.dt

    def reset_means(self) -> None:
        _core.gcm_reset_mean(self._handle)

    # ------------------------------------------------------ fine-tuning
    def finetune_status(self) -> FinetuneStatus | None:
        """The emulator's online fine-tuning (option ``finetune``): the
        losses of the rounds since the last :meth:`reset_means`, the rounds
        and optimizer steps taken, and whether (and why) tuning stopped;
        None without fine-tuning."""
        enabled, loss_sum, loss_count, rounds, iterations, stopped_step, reason, stat = _core.gcm_finetune_status(
            self._handle)
        if not int(enabled):
            return None
        return FinetuneStatus(float(loss_sum), int(loss_count), int(rounds), int(iterations), int(stopped_step),
                              _text(reason))

    def finetune_stop_message(self) -> str | None:
        """'fine-tuning stopped at step S (day D): REASON; last good weights
        kept', or None while tuning goes on (or without fine-tuning)."""
        status = self.finetune_status()
        if status is None or not status.stopped:
            return None
        day = status.stopped_step * self.config.dt / 86400.0
        return (f"fine-tuning stopped at step {status.stopped_step} (day {day:g}): {status.stop_reason}; "
                "last good weights kept")

    def save_finetuned(self, path: str | os.PathLike) -> Path:
        """Write the fine-tuned network as a model file (the library's
        writer: weights, normalization, names and units, input statistics,
        and its training state), e.g. ``tuned.fkb``; ``fkb convert tuned.fkb
        tuned.keras`` converts it. ValueError without fine-tuning."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        stat, msg = _core.gcm_finetune_save(self._handle, os.fspath(path), 0)
        _check(stat, msg)
        return path

    @property
    def physics_mode(self) -> str:
        """The cloud and radiation physics of the moist aquaplanet physics:
        'reference', 'emulator' or 'ensemble'; '' for other physics."""
        mode, stat = _core.gcm_physics_mode(self._handle)
        return _text(mode)

    @property
    def has_diagnostics(self) -> bool:
        """Whether the physics provides diagnostics (the moist physics)."""
        return self.config.physics in ("reference", "emulator", "ensemble")

    def diagnostic_means(self) -> tuple[dict[str, np.ndarray], int]:
        """Means of the moist physics' diagnostics over the steps summed by
        ``advance(..., accumulate=True)`` since the last :meth:`reset_means`,
        as (lat, lon) arrays named as in gcm_toy.output.DIAGNOSTICS (PRECT,
        QFLX [kg m-2 s-1], SHFLX, LHFLX, SOLIN, FSNT, FSNS, FLNT, FLNS
        [W m-2], SST [K]) plus CLOUD (lev, lat, lon) [1] and PRECC, the
        convective part of PRECT [kg m-2 s-1], with the reference
        physics; GUARD_FLAGGED and PHYS_FALLBACK, the fractions of steps the
        emulator guard flagged a column and sent it to the reference
        physics, with a guard; and the number of steps summed (0: none,
        fields zero)."""
        n = len(DIAGNOSTIC_ORDER) + len(GUARD_DIAGNOSTICS)
        diag, cloud, precc, count, cloud_count, stat, msg = _core.gcm_get_diag_mean(self._handle, self.nlon, self.nlat,
                                                                             self.nlev, n)
        _check(stat, msg)
        out = {name: np.ascontiguousarray(diag[:, :, k].T) for k, name in enumerate(DIAGNOSTIC_ORDER)}
        if self.config.guard != "off":
            for k, name in enumerate(GUARD_DIAGNOSTICS, start=len(DIAGNOSTIC_ORDER)):
                out[name] = np.ascontiguousarray(diag[:, :, k].T)
        if int(cloud_count) > 0:
            out["CLOUD"] = np.ascontiguousarray(np.transpose(cloud, (0, 2, 1)))
            out["PRECC"] = np.ascontiguousarray(precc.T)
        return out, int(count)

    def training_batch(self) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
        """The emulator inputs x (ncol, 2 nlev + 4) and outputs y (ncol,
        2 nlev + 5) of every column in the last step, in the order and units
        of emulators.interface, rows in C order of (lat, lon); and labels:
        ``step`` and ``time_days`` of the state the physics saw, ``dt`` [s]
        the time its tendencies act over. Needs the moist physics and a model
        created with ``keep_training_batch=True``."""
        ncol = self.nlon * self.nlat
        x, y, step, time_seconds, dt, stat, msg = _core.gcm_get_training_batch(
            self._handle, 2 * self.nlev + 4, 2 * self.nlev + 5, ncol)
        _check(stat, msg)
        return (np.ascontiguousarray(x.T), np.ascontiguousarray(y.T),
                {"step": int(step), "time_days": float(time_seconds) / 86400.0, "dt": float(dt)})

    def state(self) -> xr.Dataset:
        """The current state as a Dataset with CF attributes (q is zero in a
        dry model)."""
        return state_dataset(self.grid, self.fields(), self.time_days,
                             {"model": self.config.short_name(), "physics": self.config.physics})

    def set_state(self, state: xr.Dataset | Mapping[str, np.ndarray]) -> None:
        """Replace the state by grid fields u, v, t, q (lev, lat, lon) and ps
        (lat, lon) (q may be missing: zero); they are projected onto the
        truncation and the next step is a forward step."""
        def get(name: str) -> np.ndarray:
            if name == "q" and name not in state:
                return np.zeros(self.grid.shape)
            value = state[name]
            if isinstance(value, xr.DataArray):
                value = value.transpose(*(("lat", "lon") if name == "ps" else ("lev", "lat", "lon"))).values
            return np.asarray(value, dtype=np.float64)

        arrays = {name: get(name) for name in ("u", "v", "t", "q", "ps")}
        for name, value in arrays.items():
            expected = self.grid.shape[1:] if name == "ps" else self.grid.shape
            if value.shape != expected:
                raise ValueError(f"set_state: {name} has shape {value.shape}, expected {expected}")
        # (lev, lat, lon) -> Fortran (nlev, nlon, nlat); (lat, lon) -> (nlon, nlat)
        to_fortran = {name: np.asfortranarray(a.transpose(0, 2, 1) if a.ndim == 3 else a.T)
                      for name, a in arrays.items()}
        stat, msg = _core.gcm_set_grid(self._handle, to_fortran["u"], to_fortran["v"], to_fortran["t"],
                                       to_fortran["q"], to_fortran["ps"])
        _check(stat, msg)

    def global_means(self) -> dict[str, float]:
        """Global means [Pa]: surface pressure, dry-air surface pressure, and
        water vapour ps * sum(q dsigma) (divide by g for kg m-2)."""
        ps, dry, water, stat, msg = _core.gcm_global_means(self._handle)
        _check(stat, msg)
        return {"ps": float(ps), "dry_air_ps": float(dry), "water_ps": float(water)}

    # ------------------------------------------------------- checkpoints
    def save_checkpoint(self, path: str | os.PathLike) -> Path:
        """Write the full state to `path` (raw binary with its SHA-256, see
        gcm_checkpoint.f90) and the configuration to PATH.toml, each whole or
        not at all (emulators.atomic_files: a failure leaves the previous
        checkpoint); a run continued from it is bit for bit the uninterrupted
        run."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with replacing(path) as tmp:
            stat, msg = _core.gcm_write_checkpoint(self._handle, os.fspath(tmp))
            _check(stat, msg)
        if self.config.finetune:   # the tuned network and its optimizer state: a restart continues them
            stat, msg = _core.gcm_finetune_save(self._handle, os.fspath(finetune_state_path(path)), 1)
            _check(stat, msg)
        header = (f"toy-GCM configuration of checkpoint {path.name}: day {self.time_days:g} "
                  f"(step {self.step_count})")
        write_text_replacing(checkpoint_config_path(path), checkpoint_config_text(self.config.to_toml(header), path))
        return path

    def load_checkpoint(self, path: str | os.PathLike) -> None:
        """Replace the state by a checkpoint's (same resolution, levels, dt)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such checkpoint")
        stat, msg = _core.gcm_read_checkpoint(self._handle, os.fspath(path))
        _check(stat, msg)
        self.restarted_from = path
        if self.config.finetune:
            self._continue_finetuning(path)

    def _continue_finetuning(self, path: Path) -> None:
        """After loading checkpoint `path`: a checkpoint of a fine-tuning run
        of the same emulator continues its tuned network and optimizer state
        (PATH.finetune.fkb); one of a run without fine-tuning (e.g. the
        reference's) starts tuning from the emulator's model file."""
        if not checkpoint_config_path(path).is_file():
            return
        written = load_config(verified_checkpoint_config(path))
        if not written.finetune:
            return
        if [os.path.abspath(p) for p in written.emulator or []] != [os.path.abspath(p) for p in self.config.emulator]:
            raise ValueError(f"checkpoint {path} fine-tuned the emulator {written.emulator[0]}, this run asks for "
                             f"{self.config.emulator[0]}: restart with the same emulator (or without fine-tuning)")
        state = finetune_state_path(path)
        if not state.is_file():
            raise FileNotFoundError(f"{state}: the fine-tuning state of checkpoint {path} is missing (written with "
                                    "the checkpoint by a fine-tuning run)")
        stat, msg = _core.gcm_finetune_load(self._handle, os.fspath(state))
        _check(stat, msg)

    # --------------------------------------------------------------- run
    def run(self, days: float | None = None, out: str | os.PathLike | None = None, *,
            restart: str | os.PathLike | None = None, progress: bool | None = None, overwrite: bool = False,
            checkpoint_every_days: float | None = None, checkpoint_dir: str | os.PathLike | None = None,
            keep_checkpoints: int | None = None, progress_label: str = "gcm") -> xr.Dataset:
        """Run for `days` (default ``config.days``) and return the output
        records as a Dataset (see gcm_toy.output); with `out`, written to that
        netCDF file as the run goes and returned opened lazily from it.

        `restart`: continue from this checkpoint first. A run that fails the
        crash check stops there, keeps its output, and returns normally with
        ``run_status = "crashed"`` and ``crash_*`` attributes. `progress`:
        a progress bar on stderr (default: when stderr is a terminal), labelled
        `progress_label`. `checkpoint_every_days`: also write checkpoints at multiples of this
        model time into `checkpoint_dir` (default: next to `out`), only the
        newest `keep_checkpoints` of them if given."""
        from gcm_toy.run import run_model

        return run_model(self, days, out, restart=restart, progress=progress, overwrite=overwrite,
                         checkpoint_every_days=checkpoint_every_days, checkpoint_dir=checkpoint_dir,
                         keep_checkpoints=keep_checkpoints, progress_label=progress_label)

    # ------------------------------------------------------------ timers
    def timers(self) -> dict[str, float]:
        """Wall-clock seconds in the parts of the time step since the last
        reset, and the number of steps timed."""
        transforms, grid, physics, spectral, steps, stat = _core.gcm_timers(self._handle)
        return {"transforms": float(transforms), "grid": float(grid), "physics": float(physics),
                "spectral": float(spectral), "steps": int(steps)}

    def reset_timers(self) -> None:
        _core.gcm_reset_timers(self._handle)

    # ---------------------------------------------------------- lifetime
    def _release(self) -> None:
        if self._handle:
            _core.gcm_free(self._handle)
            self._handle = 0

    def __repr__(self) -> str:
        return (f"Model({self.config.short_name()}, physics={self.config.physics!r}, "
                f"day {self.time_days:g})")


def _from_fortran(u, v, t, q, ps) -> dict[str, np.ndarray]:
    """Fortran (nlev, nlon, nlat) / (nlon, nlat) -> (lev, lat, lon) / (lat, lon)."""
    def level_lat_lon(a: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(np.transpose(a, (0, 2, 1)))

    return {"u": level_lat_lon(u), "v": level_lat_lon(v), "t": level_lat_lon(t), "q": level_lat_lon(q),
            "ps": np.ascontiguousarray(ps.T)}
