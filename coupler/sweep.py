"""Hyperparameter sweeps of emulators on Dask, and the coupled run they end in.

The case study's unit of work is one emulator: train it, export it, couple
it to the GCM, score the run. Here:

- :class:`SearchSpace` draws seeded :class:`~emulators.architectures.Hyperparameters`
  like Ott et al. (2020): depth, width, leaky-ReLU slope, dropout, batch
  normalization, optimizer, learning rate (log-uniform), batch size; and
  whether the emulator ends in the column-water-conservation layer (only
  off, unless the space says otherwise). Draw i depends only on (seed, i),
  so a longer sweep extends a shorter one. A sweep with a ``[design]``
  table is a factorial grid instead (:mod:`coupler.design`).
- :func:`coupled_run` runs the toy GCM with an emulator (or, without one,
  the reference physics) from the configured initial state and returns the
  run and its stability record; :func:`prepare_reference` makes the
  reference run, its perturbed twins and the noise floor once.
- :func:`offline_task` (train + offline metrics) and :func:`default_task`
  (that, then couple and score) are task functions; any function taking an
  :class:`EmulatorTask` and returning a JSON-able dict can be used.
- :func:`run_sweep` runs one Dask task per emulator on a LocalCluster sized
  to the machine or on an existing cluster (``scheduler`` address). Each
  result is written atomically to ``OUT/results/emulator_XXXX.json`` by the
  client when its task finishes, so a result exists exactly once; a re-run
  skips finished emulators; a task lost with a killed worker is re-run by
  Dask; an exception inside a task is recorded as ``status = "failed"`` with
  its message.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import importlib
import json
import math
import os
import shutil
import sys
import threading
import time
import tomllib
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, NamedTuple, Sequence, Union

# Before anything imports TensorFlow or loads the Fortran extensions, in the
# client and in every Dask worker (a worker imports this module to unpickle
# its first task): oneDNN's reordered float sums off, quiet logs (same inputs
# and seed, same bits); one OpenBLAS thread per task (a worker is one core:
# with OpenBLAS's own threads on a busy node, a coupled run spent 11 CPU s
# per T21 day spinning instead of 0.9, docs/case-study.md).
WORKER_ENVIRONMENT = {"TF_ENABLE_ONEDNN_OPTS": "0", "TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": "tensorflow",
                      "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
for _name, _value in WORKER_ENVIRONMENT.items():
    os.environ.setdefault(_name, _value)

import dask  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402

from coupler.design import Design  # noqa: E402
from emulators.architectures import OPTIMIZERS, Hyperparameters  # noqa: E402
from emulators.atomic_files import replacing, write_text_replacing  # noqa: E402
from emulators.netcdf_files import write_dataset  # noqa: E402
from emulators.progress import progress_bar  # noqa: E402

__all__ = ["SearchSpace", "CoupledRunConfig", "CoupledRun", "EmulatorTask", "SweepConfig", "SweepSummary", "TaskFailed",
           "coupled_run", "start_coupled_model", "prepare_reference", "load_reference", "REFERENCE_CONFIG", "offline_task", "default_task", "execute_task", "run_sweep",
           "run_sweep_from_config", "result_path", "finished_indices", "resolve_task"]

RESULT_STATUSES = ("ok", "failed")
"""Statuses of a written result; either counts as finished."""

DEFAULT_TASK_TIMEOUT = 6 * 3600.0
"""Seconds one emulator's task may run (train, export, couple, score) before
it is stopped and recorded as failed: generous, so that no preset's task
comes near it (the paper preset's take ~30 min on a busy core)."""

MAX_EMULATORS = 1_000_000
"""More emulators than any sweep needs; a larger number is a typo."""


def check_task_timeout(value: Any, name: str = "task timeout") -> float:
    """A per-task timeout: a finite number of seconds > 0 (ValueError naming `name`)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive, finite number of seconds, got {value!r}")
    return float(value)


# ------------------------------------------------------------- search space
@dataclass(frozen=True)
class SearchSpace:
    """Where hyperparameters are drawn from: integer and float ranges are
    inclusive ``(low, high)``; ``learning_rate`` is drawn log-uniformly;
    tuples of choices uniformly. Defaults follow Ott et al. (2020).

    ``water_conservation`` (choices of the hyperparameter, default only
    off) is drawn last, after the training seed: the other hyperparameters
    of draw i are the same whatever its choices (a single choice draws no
    random number at all), so a space that adds ``(false, true)`` to a
    sweep draws the same networks and gives some of them the layer."""

    depth: tuple[int, int] = (4, 8)
    width: tuple[int, int] = (100, 300)
    leaky_relu_slope: tuple[float, float] = (0.0, 0.4)
    dropout: tuple[float, float] = (0.0, 0.25)
    batch_normalization: tuple[bool, ...] = (False, True)
    optimizer: tuple[str, ...] = OPTIMIZERS
    learning_rate: tuple[float, float] = (1e-5, 1e-1)
    batch_size: tuple[int, ...] = (256, 512, 1024, 2048)
    water_conservation: tuple[bool, ...] = (False,)

    def __post_init__(self) -> None:
        for name in ("depth", "width", "leaky_relu_slope", "dropout", "learning_rate"):
            low, high = getattr(self, name)
            if not low <= high:
                raise ValueError(f"search space {name}: low {low} is above high {high}")
        if self.learning_rate[0] <= 0:
            raise ValueError(f"search space learning_rate: must be positive, got {self.learning_rate}")
        for name in ("batch_normalization", "optimizer", "batch_size", "water_conservation"):
            if len(getattr(self, name)) == 0:
                raise ValueError(f"search space {name}: no choices")
        for name in ("batch_normalization", "water_conservation"):
            odd = [v for v in getattr(self, name) if not isinstance(v, bool)]
            if odd:
                raise ValueError(f"search space {name}: choices are true or false, got {odd[0]!r}")
        unknown = [o for o in self.optimizer if o not in OPTIMIZERS]
        if unknown:
            raise ValueError(f"search space optimizer: unknown {unknown[0]!r} (known: {', '.join(OPTIMIZERS)})")
        # every value the space can draw is a valid hyperparameter: its ends and choices
        for name in ("depth", "width", "leaky_relu_slope", "dropout", "learning_rate", "batch_size"):
            for value in getattr(self, name):
                try:
                    Hyperparameters(**{name: value})
                except ValueError as exc:
                    raise ValueError(f"search space {name}: {exc}") from None

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "SearchSpace":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"unknown search-space option {unknown[0]!r} (known: {', '.join(sorted(names))})")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})

    def fixed_values(self, exclude: Sequence[str] = ()) -> dict[str, Any]:
        """The space's hyperparameters as fixed values, for a designed sweep
        (coupler/design.py), but those in `exclude` (the design's factors):
        each must be fixed, a range with ``low == high`` or a single choice,
        else ValueError naming the first that is not. The activation is
        leaky ReLU, as in every draw."""
        values: dict[str, Any] = {"activation": "leaky_relu"}
        for f in dataclasses.fields(self):
            if f.name in exclude:
                continue
            value = getattr(self, f.name)
            ranged = f.name in ("depth", "width", "leaky_relu_slope", "dropout", "learning_rate")
            fixed = value[0] == value[1] if ranged else len(value) == 1
            if not fixed:
                toml = json.dumps                       # TOML spells these values as JSON does
                shown = toml(list(value))
                default = " (the default)" if value == f.default else ""
                how = f"{f.name} = {toml([value[0]] * (2 if ranged else 1))}"
                raise ValueError(f"[design] varies only its factors, but [space] {f.name} = {shown}{default} is "
                                 f"not fixed: fix it in [space] (e.g. {how}) or make it a factor")
            values[f.name] = value[0]
        return values

    def sample(self, n: int, seed: int, base: Hyperparameters = Hyperparameters(),
               start: int = 0) -> list[Hyperparameters]:
        """Hyperparameters of emulators ``start .. start + n - 1``: `base` with
        the searched fields drawn from ``numpy.random.default_rng([seed, i])``
        and a training seed of its own."""
        if n < 0:
            raise ValueError(f"number of emulators must be >= 0, got {n}")
        return [self._draw(np.random.default_rng([seed, i]), base) for i in range(start, start + n)]

    def _draw(self, rng: np.random.Generator, base: Hyperparameters) -> Hyperparameters:
        def choice(options):
            return options[int(rng.integers(len(options)))]

        log_lo, log_hi = (math.log10(v) for v in self.learning_rate)
        return dataclasses.replace(
            base,
            depth=int(rng.integers(self.depth[0], self.depth[1] + 1)),
            width=int(rng.integers(self.width[0], self.width[1] + 1)),
            activation="leaky_relu",
            leaky_relu_slope=float(rng.uniform(*self.leaky_relu_slope)),
            dropout=float(rng.uniform(*self.dropout)),
            batch_normalization=bool(choice(self.batch_normalization)),
            optimizer=str(choice(self.optimizer)),
            learning_rate=float(10.0 ** rng.uniform(log_lo, log_hi)),
            batch_size=int(choice(self.batch_size)),
            seed=int(rng.integers(2 ** 31 - 1)),
            # last, so that the draws above never depend on its choices
            water_conservation=bool(choice(self.water_conservation)),
        )


# -------------------------------------------------------------- coupled run
EmulatorPaths = Union[str, os.PathLike, Sequence[Union[str, os.PathLike]], None]
"""A model file, several (an ensemble), or None (the reference physics)."""


MAX_TWINS_SEED = {"perturbation_seed": 2 ** 31 - 1 - 1000, "n_perturbed": 1000}
"""Bounds of the twins' settings: seeds stay the GCM's 32-bit integers; more twins than any noise floor needs is a typo."""


@dataclass(frozen=True)
class CoupledRunConfig:
    """A coupled run of the toy GCM (all emulators and the reference alike).

    ``preset`` and ``overrides``: the GCM configuration (gcm_toy presets and
    options). ``reference_physics``: the physics of the reference run;
    ``emulator_physics`` and ``emulator_option``: the physics mode and the
    configuration key that take the emulator's model file (the GCM's
    ``--physics emulator --emulator PATH``). ``initial_checkpoint``: start
    from this (spun-up) state, else the preset's initial state.
    ``initial_relative_humidity``: if set, the start is moistened to
    ``q = RH * sigma^2 * q_sat(T, sigma ps)`` (for a model whose own initial
    state is dry). ``perturbation_kelvin``: standard deviation of the seeded
    white noise added to the initial temperature of the noise-floor runs
    (twins); ``n_perturbed`` of them, twin k with noise seed
    ``perturbation_seed + k``; with ``reseed_physics`` twin k also draws the
    reference physics' subgrid random numbers with that seed (another
    realization of the unresolved convection).
    ``days``: run length [days]; ``window_days``: scoring window [days];
    ``output_interval_hours``: record interval [h] (a divisor of the window).
    ``fallback_run``: the case study's task also couples every emulator
    with the GCM's out-of-distribution guard on fallback (the reference
    physics on the flagged columns, docs/gcm.md) and scores that run too.
    ``finetune_run``: it also couples every emulator with online
    fine-tuning (docs/gcm.md) with the options ``finetune_options`` (keys
    of :data:`FINETUNE_KEYS`, e.g. ``{learning_rate = 1e-4}``; the GCM's
    defaults otherwise), scores that run and keeps the tuned network.
    """

    preset: str = "held-suarez-t10"
    overrides: Mapping[str, Any] = field(default_factory=dict)
    reference_physics: str = "held-suarez"
    emulator_physics: str = "emulator"
    emulator_option: str = "emulator"
    initial_checkpoint: str | None = None
    initial_relative_humidity: float | None = None
    perturbation_kelvin: float = 0.01
    perturbation_seed: int = 12345
    n_perturbed: int = 5
    reseed_physics: bool = False
    days: float = 30.0
    window_days: float = 30.0
    output_interval_hours: float = 24.0
    fallback_run: bool = False
    finetune_run: bool = False
    finetune_options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.days > 0:
            raise ValueError(f"coupled run: days must be positive, got {self.days}")
        if not self.window_days > 0:
            raise ValueError(f"coupled run: window_days must be positive, got {self.window_days}")
        if self.window_days > self.days:
            raise ValueError(f"coupled run: window_days ({self.window_days:g}) is longer than the run "
                             f"({self.days:g} days): nothing would be scored")
        if self.n_perturbed < 1:
            raise ValueError(f"coupled run: n_perturbed must be at least 1, got {self.n_perturbed}")
        unknown = sorted(set(self.finetune_options) - set(FINETUNE_KEYS))
        if unknown:
            raise ValueError(f"coupled run: unknown finetune_options key {unknown[0]!r} (known: "
                             f"{', '.join(FINETUNE_KEYS)})")
        if self.initial_relative_humidity is not None and not 0 <= self.initial_relative_humidity <= 1:
            raise ValueError(f"coupled run: initial_relative_humidity must be in [0, 1], "
                             f"got {self.initial_relative_humidity}")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "CoupledRunConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"unknown coupled-run option {unknown[0]!r} (known: {', '.join(sorted(names))})")
        return cls(**values)

    def gcm_overrides(self, emulator_path: EmulatorPaths) -> dict[str, Any]:
        """The GCM options of the run: the reference physics without an
        emulator, else the emulator mode with the model file; several model
        files (a list of two or more) are an ensemble (``physics = "ensemble"``,
        the mean of their outputs)."""
        overrides = dict(self.overrides)
        overrides["output_interval_hours"] = self.output_interval_hours
        paths = _emulator_paths(emulator_path)
        if not paths:
            overrides["physics"] = self.reference_physics
        elif len(paths) == 1:
            overrides["physics"] = self.emulator_physics
            overrides[self.emulator_option] = paths[0]
        else:
            overrides["physics"] = "ensemble"
            overrides[self.emulator_option] = paths
        return overrides

    def check_gcm(self, *, checkpoint: bool = True) -> None:
        """Check the runs before any is made: the GCM options of the
        reference run (:func:`gcm_toy.check_configuration`: types, finite
        numbers, ranges, memory, the core's own checks), the run length and
        the scoring window as whole numbers of time steps and the window a
        multiple of the output interval, and (`checkpoint`) that the initial
        checkpoint exists. ValueError naming the first problem."""
        from gcm_toy import check_configuration
        from gcm_toy.config import steps_for_days

        for name in ("perturbation_kelvin", "days", "window_days", "output_interval_hours"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"coupled run: {name} must be a finite number, got {value!r}")
        if self.perturbation_kelvin < 0:
            raise ValueError(f"coupled run: perturbation_kelvin must be >= 0, got {self.perturbation_kelvin}")
        for name in ("perturbation_seed", "n_perturbed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_TWINS_SEED[name]:
                raise ValueError(f"coupled run: {name} must be an integer from 0 to {MAX_TWINS_SEED[name]}, "
                                 f"got {value!r}")
        gcm = check_configuration(self.preset, self.gcm_overrides(None))
        steps_for_days(self.days, gcm.dt, "[coupled] days")
        steps_for_days(self.window_days, gcm.dt, "[coupled] window_days")
        records = self.window_days * 24.0 / self.output_interval_hours
        if abs(records - round(records)) > 1e-9 * max(records, 1.0):
            raise ValueError(f"coupled run: window_days ({self.window_days:g}) is not a multiple of the output "
                             f"interval ({self.output_interval_hours:g} h)")
        if checkpoint and self.initial_checkpoint is not None and not Path(self.initial_checkpoint).is_file():
            raise FileNotFoundError(f"coupled run: {self.initial_checkpoint}: no such initial checkpoint")

    def to_dict(self) -> dict[str, Any]:
        """The configuration as JSON-able data (:meth:`from_dict` reads it back)."""
        values = dataclasses.asdict(self)
        values["overrides"] = dict(self.overrides)
        values["finetune_options"] = dict(self.finetune_options)
        if not self.finetune_run and not self.finetune_options:   # as before the options existed: a reference
            del values["finetune_run"], values["finetune_options"]  # folder's coupled.json still matches
        return values


FINETUNE_KEYS = ("every_steps", "columns", "steps", "learning_rate", "seed")
"""The fine-tuning options ``fkb couple --finetune-*`` and ``[coupled]
finetune_options`` set: the GCM options ``finetune_KEY``."""


def with_finetuning(config: "CoupledRunConfig", options: Mapping[str, Any] | None = None, *,
                    start_day: float | None = None) -> "CoupledRunConfig":
    """`config` with online fine-tuning on (docs/gcm.md): the GCM options
    ``finetune = true`` and ``finetune_KEY`` for the `options` given (keys of
    :data:`FINETUNE_KEYS`); `start_day`: the model day of the first round.
    ValueError naming an unknown option."""
    overrides = {**dict(config.overrides), "finetune": True}
    for key, value in (options or {}).items():
        if key not in FINETUNE_KEYS:
            raise ValueError(f"unknown fine-tuning option {key!r} (known: {', '.join(FINETUNE_KEYS)})")
        if value is not None:
            overrides[f"finetune_{key}"] = value
    if start_day is not None:
        overrides["finetune_start_day"] = float(start_day)
    return dataclasses.replace(config, overrides=overrides)


def _emulator_paths(value) -> list[str]:
    """Model-file paths as a list of strings (empty: no emulator)."""
    if value is None:
        return []
    if isinstance(value, (str, os.PathLike)):
        return [os.fspath(value)]
    return [os.fspath(v) for v in value]


class CoupledRun(NamedTuple):
    """A coupled run's output (toy-GCM Dataset) and its stability record
    (:func:`coupler.scoring.stability_record`)."""

    run: xr.Dataset
    stability: xr.Dataset


_EPSILON = 0.622  # gas constant of dry air over that of water vapour


def _saturation_specific_humidity(t: np.ndarray, p: np.ndarray) -> np.ndarray:
    """kg kg-1 from T [K] and p [Pa] (Clausius-Clapeyron with constant L_v, as the toy GCM:
    docs/gcm-dynamics.md, "Physical constants")."""
    es = 610.78 * np.exp(2.5e6 / 461.5 * (1.0 / 273.16 - 1.0 / t))
    return _EPSILON * es / np.maximum(p - 0.378 * es, 0.5 * p)


def _prepare_initial_state(model, config: CoupledRunConfig, perturbation_kelvin: float,
                           perturbation_seed: int) -> None:
    if config.initial_relative_humidity is None and perturbation_kelvin == 0:
        return
    fields = model.fields()
    if config.initial_relative_humidity is not None:
        if not model.humidity:
            raise ValueError("coupled run: initial_relative_humidity needs a moist model (option humidity = true)")
        sigma = model.grid.sigma[:, None, None]
        p = sigma * fields["ps"][None]
        fields["q"] = config.initial_relative_humidity * sigma ** 2 * _saturation_specific_humidity(fields["t"], p)
    if perturbation_kelvin:
        rng = np.random.default_rng(perturbation_seed)
        fields["t"] = fields["t"] + perturbation_kelvin * rng.standard_normal(fields["t"].shape)
    model.set_state(fields)


def coupled_run(emulator_path: EmulatorPaths, config: CoupledRunConfig,
                out: str | os.PathLike | None = None, *, twin: int = 0,
                progress: bool | None = False, crash_record: str | os.PathLike | None = None,
                tuned: str | os.PathLike | None = None, progress_label: str = "coupled run") -> CoupledRun:
    """Run the GCM for ``config.days`` with the emulator at `emulator_path`
    (None: the reference physics; a list of several: their ensemble) from
    the configured initial state; `twin` k > 0: the reference's k-th
    perturbed twin (``config.perturbation_kelvin`` of seeded noise on T, seed
    ``perturbation_seed + k``, and that physics seed with
    ``config.reseed_physics``). With `out` the run is written there
    (replacing a file of an earlier attempt). A run that crashes is a
    result: its stability record says when and why. `progress`: a progress
    bar (None: when stderr is a terminal; a sweep's tasks show none).
    `crash_record`: if an emulator's run crashes, its last day is replayed
    and recorded there (:mod:`coupler.crash_attribution`; the run keeps a
    rolling checkpoint a day apart for it, removed at the end); a replay that
    fails is told on stderr and leaves no record. `tuned`: where a run with
    online fine-tuning (GCM option ``finetune``) writes its tuned network at
    the end (a model file, even after a crash)."""
    from coupler.crash_attribution import attribute_crash, rewind_dir
    from coupler.scoring import stability_record

    rewind = None
    if crash_record is not None:
        Path(crash_record).unlink(missing_ok=True)       # the record of a run this one replaces
    if crash_record is not None and _emulator_paths(emulator_path) and config.days > 1:
        rewind = rewind_dir(crash_record)
        shutil.rmtree(rewind, ignore_errors=True)
    try:
        with start_coupled_model(emulator_path, config, twin=twin) as model:
            run = model.run(config.days, out, overwrite=True, progress=progress, progress_label=progress_label,
                            checkpoint_every_days=1.0 if rewind else None, checkpoint_dir=rewind,
                            keep_checkpoints=2 if rewind else None)
            if tuned is not None and model.config.finetune:
                model.save_finetuned(tuned)          # the library's writer replaces a file whole
        if crash_record is not None and _emulator_paths(emulator_path) and run.attrs.get("run_status") == "crashed":
            try:
                attribute_crash(emulator_path, config, int(run.attrs["crash_step"]), crash_record, rewind=rewind)
            except Exception as exc:          # the run is the result; its crash record is a bonus
                print(f"crash record not written ({crash_record}): {type(exc).__name__}: {exc}", file=sys.stderr)
    finally:
        if rewind is not None:
            shutil.rmtree(rewind, ignore_errors=True)
    return CoupledRun(run, stability_record(run, config.days))


def start_coupled_model(emulator_path: EmulatorPaths, config: CoupledRunConfig, *, twin: int = 0,
                        keep_training_batch: bool = False):
    """The toy-GCM model of a coupled run (see :func:`coupled_run`) at its
    first step, to be used in a ``with`` block."""
    from gcm_toy import Model

    overrides = config.gcm_overrides(emulator_path)
    seed = config.perturbation_seed + twin
    if twin and config.reseed_physics:
        overrides["seed"] = seed
    model = Model(config.preset, overrides, keep_training_batch=keep_training_batch)
    try:
        if config.initial_checkpoint is not None:
            model.load_checkpoint(config.initial_checkpoint)
        _prepare_initial_state(model, config, config.perturbation_kelvin if twin else 0.0, seed)
    except BaseException:
        model.close()
        raise
    return model


def perturbed_paths(folder: Path, n: int) -> list[Path]:
    """The twins' files of a reference folder: perturbed_1.nc ... perturbed_n.nc."""
    return [folder / f"perturbed_{k}.nc" for k in range(1, n + 1)]


def prepare_reference(config: CoupledRunConfig, out_dir: str | os.PathLike,
                      progress: bool | None = None) -> dict[str, Any]:
    """The reference run, its ``config.n_perturbed`` perturbed twins and
    their noise floor in ``out_dir`` (``reference.nc``, ``perturbed_K.nc``,
    ``noise_floor.nc``), and the configuration they were run with
    (``coupled.json``, read by :func:`load_reference`); runs of an earlier
    call with the same configuration are kept (an interrupted call continues
    with the missing ones), a folder of another configuration is refused
    (ValueError). Returns the paths: ``reference``, ``perturbed`` (a list),
    ``noise_floor``. `progress`: each run's progress bar (None: on a
    terminal)."""
    from coupler.scoring import noise_floor_of_files
    from gcm_toy import open_output

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Any] = {"reference": out / "reference.nc",
                             "perturbed": perturbed_paths(out, config.n_perturbed),
                             "noise_floor": out / "noise_floor.nc"}
    described = json.loads(json.dumps(config.to_dict()))
    config_path = out / REFERENCE_CONFIG
    if config_path.is_file():
        from coupler.folder_identity import differences, summarize

        found = differences(json.loads(config_path.read_text()), described)
        if found:
            raise ValueError(f"{out} holds reference runs of another coupled-run configuration "
                             f"({summarize(found)}); choose another folder")
    _write_json(config_path, described)
    if paths["noise_floor"].is_file():
        return paths
    for twin, path in enumerate([paths["reference"]] + paths["perturbed"]):
        if path.is_file():          # finished: runs are written under another name and moved in when done
            continue
        with replacing(path) as tmp:
            label = f"perturbed twin {twin}" if twin else "reference run"
            run = coupled_run(None, config, tmp, twin=twin, progress=progress, progress_label=label).run
            status, reason = run.attrs.get("run_status"), run.attrs.get("crash_reason", "")
            run.close()
            if status != "completed":
                raise RuntimeError(f"the reference run {path.name} did not complete: {reason}")
    with open_output(paths["reference"]) as reference:
        floor = noise_floor_of_files(reference, paths["perturbed"], config.window_days)
    write_dataset(floor, paths["noise_floor"], note="noise floor of the perturbed reference runs")
    return paths


REFERENCE_CONFIG = "coupled.json"
"""File in a reference folder holding the :class:`CoupledRunConfig` of its runs."""


def _write_json(path: Path, value: Any) -> None:
    write_text_replacing(path, json.dumps(value, indent=2) + "\n")


def load_reference(folder: str | os.PathLike) -> tuple[CoupledRunConfig, dict[str, Any]]:
    """The coupled-run configuration and the reference files of a folder made
    by :func:`prepare_reference` (``reference.nc``, ``coupled.json``, and
    the twins ``perturbed_K.nc`` (a list) / ``noise_floor.nc`` when present). `folder` may also be
    a sweep or case-study output folder holding it as ``reference/``.
    FileNotFoundError names what is missing."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such reference folder")
    if not (folder / "reference.nc").is_file() and (folder / "reference" / "reference.nc").is_file():
        folder = folder / "reference"
    reference = folder / "reference.nc"
    if not reference.is_file():
        raise FileNotFoundError(f"{folder}: no reference run (reference.nc) here or in {folder / 'reference'}")
    config_path = folder / REFERENCE_CONFIG
    if not config_path.is_file():
        raise FileNotFoundError(f"{folder}: no {REFERENCE_CONFIG} saying how the reference was run "
                                "(made by prepare_reference; re-run the case study or sweep to write it)")
    try:
        config = CoupledRunConfig.from_dict(json.loads(config_path.read_text()))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{config_path}: not valid JSON ({exc})") from None
    paths: dict[str, Any] = {name: folder / f"{name}.nc" for name in ("reference", "noise_floor")
                             if (folder / f"{name}.nc").is_file()}
    twins = [p for p in perturbed_paths(folder, config.n_perturbed) if p.is_file()]
    if not twins and (folder / "perturbed.nc").is_file():      # a folder of one twin (before the twins)
        twins = [folder / "perturbed.nc"]
    if twins:
        paths["perturbed"] = twins
    return config, paths


# -------------------------------------------------------------------- tasks
@dataclass(frozen=True)
class EmulatorTask:
    """Everything one emulator's task needs (sent to a Dask worker; paths
    must be visible there). ``work_dir``: the emulator's own folder;
    ``data``: training data (netCDF file or glob); ``reference``: the
    reference run to score against (default task)."""

    index: int
    hyperparameters: Hyperparameters
    work_dir: str
    data: str | None = None
    coupled: CoupledRunConfig | None = None
    reference: str | None = None
    export: bool = True
    design: Mapping[str, Any] | None = None
    """A designed sweep's cell of this emulator (:meth:`coupler.design.DesignCell.to_dict`), kept in its result."""


def offline_task(task: EmulatorTask) -> dict[str, Any]:
    """Train the emulator on ``task.data`` into ``task.work_dir`` (model,
    model file, metrics) and return its offline metrics: normalized MSE of
    all outputs and R² (mean of the per-variable pooled R²) on the
    validation and test splits, and R² per variable on validation."""
    from emulators.train import train_emulator

    if not task.data:
        raise ValueError("the sweep has no training data (option data)")
    result = train_emulator(None, task.data, hyperparameters=task.hyperparameters, out_dir=task.work_dir,
                            export=task.export, verbose=0)
    metrics = result.metrics
    offline: dict[str, Any] = {"best_epoch": result.best_epoch, "epochs": len(result.history["loss"]),
                               "best_val_loss": result.best_val_loss}
    for split in [str(s) for s in metrics["split"].values]:
        m = metrics.sel(split=split)
        offline[f"{split}_mse"] = float(m["mse_normalized_total"])
        r2 = m["r2"].values
        offline[f"{split}_r2"] = float(np.nanmean(r2)) if np.isfinite(r2).any() else math.nan
    offline["validation_r2_by_variable"] = {str(v): float(metrics["r2"].sel(split="validation", variable=v))
                                            for v in metrics["variable"].values}
    artifacts = {name: os.fspath(path) for name, path in result.files.items()
                 if name in ("model", "model_file", "metrics")}
    return {"offline": offline, "artifacts": artifacts}


class TaskFailed(Exception):
    """A task that failed after producing part of its result (kept in the
    failed record, e.g. the offline metrics of an emulator that could not be
    coupled)."""

    def __init__(self, message: str, partial: Mapping[str, Any]):
        super().__init__(message)
        self.partial = dict(partial)


def default_task(task: EmulatorTask) -> dict[str, Any]:
    """The case study's task: :func:`offline_task`, then :func:`coupled_run`
    with the exported model file, scored against ``task.reference``. If the
    coupling fails the task fails, keeping the offline part."""
    if task.coupled is None or task.reference is None:
        raise ValueError("the default task needs a coupled-run configuration and a reference run")
    record = offline_task(task)
    try:
        return _couple_and_score(task, record)
    except Exception as exc:
        raise TaskFailed(f"coupling: {type(exc).__name__}: {exc}", record) from exc


def _couple_and_score(task: EmulatorTask, record: dict[str, Any]) -> dict[str, Any]:
    model_file = record["artifacts"].get("model_file")
    if model_file is None:
        raise ValueError("the default task needs the exported model file (export = true)")
    run_path = Path(task.work_dir) / "coupled.nc"
    record["online"] = _scored_run(model_file, task.coupled, run_path, task.reference)
    record["artifacts"]["run"] = os.fspath(run_path)
    if task.coupled.fallback_run:
        guarded = dataclasses.replace(task.coupled, overrides={**dict(task.coupled.overrides), "guard": "fallback"})
        path = Path(task.work_dir) / "coupled_fallback.nc"
        record["online_fallback"] = _scored_run(model_file, guarded, path, task.reference)
        record["artifacts"]["run_fallback"] = os.fspath(path)
    if task.coupled.finetune_run:
        tuned = with_finetuning(task.coupled, task.coupled.finetune_options)
        path, tuned_path = Path(task.work_dir) / "coupled_finetune.nc", Path(task.work_dir) / "tuned.fkb"
        record["online_finetune"] = _scored_run(model_file, tuned, path, task.reference, tuned=tuned_path)
        record["artifacts"]["run_finetune"] = os.fspath(path)
        record["artifacts"]["tuned_model"] = os.fspath(tuned_path)
    return record


def _scored_run(model_file, config: CoupledRunConfig, run_path: Path, reference,
                tuned: Path | None = None, progress: bool | None = False) -> dict[str, Any]:
    """Couple `model_file` with `config` into `run_path` and score it
    against `reference`: stability, online errors, cost, the guard's
    fractions when it has one, and what fine-tuning did when it runs
    (``finetune_*``; the tuned network written to `tuned`). `progress`: the
    run's progress bar (a sweep's tasks show none)."""
    from coupler.budgets import budget_record
    from coupler.crash_attribution import crash_record_path, read_crash_summary
    from coupler.scoring import finetune_summary, guard_summary, online_error
    from gcm_toy import open_output

    clock = time.perf_counter()
    coupled = coupled_run(model_file, config, run_path, crash_record=crash_record_path(run_path), tuned=tuned,
                          progress=progress)
    seconds = time.perf_counter() - clock
    with open_output(reference) as ref:
        error = online_error(coupled.run, ref, config.window_days)
    stability = coupled.stability
    guard = guard_summary(coupled.run) or {}
    tuning = finetune_summary(coupled.run) or {}
    budgets = budget_record(coupled.run)
    coupled.run.close()
    crash = read_crash_summary(crash_record_path(run_path))
    return {
        "days_survived": float(stability["days_survived"]), "run_days": float(stability["run_days"]),
        "crashed": bool(stability["crashed"]), "run_status": stability.attrs["run_status"],
        "crash_reason": stability.attrs["crash_reason"],
        "online_error_t": float(error["online_error_t"]), "online_error_q": float(error["online_error_q"]),
        "online_error_normalized": float(error["online_error_normalized"]),
        "n_windows": int(error["n_windows"]),
        "seconds_per_day": seconds / max(float(stability["days_survived"]), 1e-9),
        **{key: guard[key] for key in ("mean_flagged_fraction", "mean_fallback_fraction") if key in guard},
        **{f"finetune_{key}": value for key, value in tuning.items()},
        # water [mm day-1] and energy [W m-2] budget residuals, first record to last (coupler.budgets)
        **budgets,
        **({"crash": crash} if crash else {}),
    }


def resolve_task(name: str | Callable) -> Callable[[EmulatorTask], dict]:
    """A task function from ``"module:function"`` (or the function itself)."""
    if callable(name):
        return name
    module, sep, attr = str(name).partition(":")
    if not sep:
        raise ValueError(f"task {name!r} is not of the form module:function")
    try:
        function = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"task {name!r} cannot be imported ({exc})") from None
    if not callable(function):
        raise ValueError(f"task {name!r} is not a function")
    return function


def limit_threads() -> dict[str, Any]:
    """One thread per TensorFlow op pool: a Dask worker thread is one
    emulator. Returns the settings in force (recorded with each result), as
    TensorFlow keeps the first ones if it was initialised before."""
    import tensorflow as tf

    try:
        if tf.config.threading.get_intra_op_parallelism_threads() != 1:
            tf.config.threading.set_intra_op_parallelism_threads(1)
            tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # already initialised: keep its setting
        pass
    return {"tf_intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
            "tf_inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
            "tf_enable_onednn_opts": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "")}


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


def _worker_address() -> str:
    try:
        from distributed import get_worker
        return get_worker().address
    except (ImportError, ValueError):
        return "local"


def _check_single_threaded_worker() -> None:
    """Refuse a Dask worker that runs several tasks at once: two emulators
    training in threads of one process would share the process-wide random
    state and TensorFlow's thread pools, and their results would depend on
    timing (see docs/case-study.md, "Reproducibility")."""
    try:
        from distributed import get_worker
        worker = get_worker()
    except (ImportError, ValueError):
        return
    n = worker.state.nthreads
    if n != 1:
        raise RuntimeError(f"worker {worker.address} runs {n} threads; emulator tasks need single-threaded "
                           "workers (dask worker --nthreads 1, LocalCluster(threads_per_worker=1))")


TIMEOUT_MARKER = "timed_out.json"
"""Left in an emulator's folder by the task that its timeout stopped (read by the sweep that ran it)."""

TIMEOUT_EXIT_STATUS = 75
"""Exit status of a worker process that stopped a task at its timeout."""


def _timeout_marker(work_dir: Path, sweep_token: str | None) -> dict[str, Any] | None:
    """The marker of a task this sweep (`sweep_token`) stopped at its
    timeout, or None; a marker of an earlier sweep is removed (a re-run with
    --retry-failed runs the task again)."""
    path = work_dir / TIMEOUT_MARKER
    marker = read_result(path)
    if marker is None:
        return None
    if sweep_token is not None and marker.get("token") == sweep_token:
        return marker
    path.unlink(missing_ok=True)
    return None


def timed_out_message(seconds: float) -> str:
    return f"timed out after {seconds:g} s"


def _arm_timeout(seconds: float, work_dir: Path, sweep_token: str | None) -> threading.Event:
    """In a Dask worker: unless the returned event is set within `seconds`,
    leave the timeout marker in `work_dir` and end the worker process (a
    task hung in Fortran or C cannot be interrupted otherwise; the nanny
    starts a new worker, and the task's re-run finds the marker and returns
    its failed record at once)."""
    done = threading.Event()

    def expire() -> None:
        if done.wait(seconds):
            return
        write_text_replacing(work_dir / TIMEOUT_MARKER, json.dumps(
            {"token": sweep_token, "seconds": seconds, "stopped": _now(), "worker": _worker_address(),
             "pid": os.getpid()}) + "\n")
        with open(work_dir / "attempts.log", "a") as log:
            log.write(f"{_now()} {timed_out_message(seconds)}: worker process {os.getpid()} ends\n")
        os._exit(TIMEOUT_EXIT_STATUS)

    threading.Thread(target=expire, name="task-timeout", daemon=True).start()
    return done


def execute_task(task_function: Callable[[EmulatorTask], dict], task: EmulatorTask,
                 timeout_seconds: float | None = None, sweep_token: str | None = None) -> dict[str, Any]:
    """Run one task on a worker and return its result record: index,
    hyperparameters, status "ok" (and what the task returned) or "failed"
    (and the exception's message), worker, start and end times. Each attempt
    is logged to ``work_dir/attempts.log`` (one line per start).

    `timeout_seconds` (in a Dask worker): a task still running then is
    stopped with its worker process (:func:`_arm_timeout`); the re-run of the
    task that Dask schedules for the lost worker finds the marker of this
    sweep (`sweep_token`) and returns the failed record, "timed out after N
    s", without running it again."""
    threads = limit_threads()
    work_dir = Path(task.work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    worker = _worker_address()
    started = _now()
    record: dict[str, Any] = {"index": task.index, "hyperparameters": task.hyperparameters.to_dict(),
                              "work_dir": task.work_dir}
    if task.design is not None:
        record["design"] = dict(task.design)
    marker = _timeout_marker(work_dir, sweep_token)
    if marker is not None:
        return _timed_out_record(record, marker, threads)
    with open(work_dir / "attempts.log", "a") as log:
        log.write(f"{started} {worker} pid {os.getpid()}\n")
    clock = time.perf_counter()
    done = None
    if timeout_seconds is not None and worker != "local":
        done = _arm_timeout(timeout_seconds, work_dir, sweep_token)
    try:
        # Dask collections inside the task (lazily opened runs) are computed in
        # this thread: on a worker they would go to the cluster and queue behind
        # the other emulators, while this worker starts another one.
        _check_single_threaded_worker()
        with dask.config.set(scheduler="synchronous"):
            record.update(task_function(task))
        record["status"] = "ok"
        record["error"] = None
    except Exception as exc:  # a failing emulator is a result, not the end of the sweep
        if isinstance(exc, TaskFailed):
            record.update(exc.partial)
            message = str(exc)
        else:
            message = f"{type(exc).__name__}: {exc}"
        record["status"] = "failed"
        record["error"] = message.strip().splitlines()[0]
        record["traceback"] = traceback.format_exc()
    finally:
        if done is not None:
            done.set()
    record.update({"worker": worker, "started": started, "finished": _now(),
                   "seconds": time.perf_counter() - clock, "threads": threads})
    return record


def _timed_out_record(record: dict[str, Any], marker: Mapping[str, Any], threads=None) -> dict[str, Any]:
    """The failed record of a task stopped at its timeout (`marker`)."""
    seconds = float(marker.get("seconds", math.nan))
    return {**record, "status": "failed", "error": timed_out_message(seconds), "timed_out": True,
            "worker": marker.get("worker"), "started": None, "finished": marker.get("stopped"),
            "seconds": seconds, "threads": threads}


# ----------------------------------------------------------- result files
def result_path(results_dir: str | os.PathLike, index: int) -> Path:
    return Path(results_dir) / f"emulator_{index:04d}.json"


def _json_safe(value: Any) -> Any:
    """Non-finite floats as null (JSON has no NaN), numpy scalars as Python."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_result(results_dir: str | os.PathLike, record: Mapping[str, Any]) -> Path:
    """Write a result record atomically (temporary file + os.replace)."""
    path = result_path(results_dir, int(record["index"]))
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path, fsync=True) as tmp:
        tmp.write_text(json.dumps(_json_safe(dict(record)), indent=2) + "\n")
    return path


def read_result(path: str | os.PathLike) -> dict[str, Any] | None:
    """A result record, or None if the file is missing or unreadable."""
    try:
        with open(path) as fh:
            return json.load(fh)
    except (OSError, json.JSONDecodeError):
        return None


def finished_indices(results_dir: str | os.PathLike, retry_failed: bool = False) -> set[int]:
    """Emulators with a written result (status ok, or failed unless `retry_failed`)."""
    done = set()
    for path in Path(results_dir).glob("emulator_*.json"):
        record = read_result(path)
        if record is None or record.get("status") not in RESULT_STATUSES:
            continue
        if retry_failed and record["status"] == "failed":
            continue
        done.add(int(record["index"]))
    return done


# -------------------------------------------------------------------- sweep
@dataclass
class SweepSummary:
    """What a call of :func:`run_sweep` did: emulators skipped (finished
    before), done, failed inside the task, and lost (their workers died more
    often than Dask retries; a re-run retries them)."""

    results_dir: Path
    total: int
    skipped: int = 0
    done: int = 0
    failed: int = 0
    lost: int = 0
    lost_messages: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        text = (f"{self.total} emulators: {self.skipped} finished before, {self.done} done, "
                f"{self.failed} failed")
        if self.lost:
            text += f", {self.lost} lost with their workers (re-run the command to retry them)"
        return text


class ClusterError(RuntimeError):
    """The Dask cluster cannot run the sweep (e.g. its workers die at start-up)."""


def _local_cluster(n_workers: int | None):
    from distributed import LocalCluster

    if n_workers is None:
        n_workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    env = {name: os.environ.get(name, value) for name, value in WORKER_ENVIRONMENT.items()}
    return LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None, env=env)


def run_sweep(tasks: Sequence[EmulatorTask], out_dir: str | os.PathLike,
              task_function: str | Callable[[EmulatorTask], dict] = default_task, *,
              scheduler: str | None = None, n_workers: int | None = None, progress: bool | None = None,
              retries: int = 2, retry_failed: bool = False, poll_seconds: float = 0.5,
              worker_timeout: float = 120.0, task_timeout: float | None = DEFAULT_TASK_TIMEOUT) -> SweepSummary:
    """Run `task_function` on every task not finished in ``out_dir/results``,
    one Dask task each, on the cluster at `scheduler` (an address such as
    ``tcp://host:8786``) or on a LocalCluster of `n_workers` single-threaded
    worker processes (default: one per core). Results are written as their
    tasks finish; the progress bar (stderr, on a terminal by default) shows
    done, running and failed.

    A LocalCluster that has had no live worker for `worker_timeout` seconds
    while tasks wait (its worker processes die at start-up, and Dask would
    restart them for ever) stops the sweep with a ClusterError; results
    written so far stay. On an external cluster the sweep waits for workers
    as long as it takes (batch jobs may sit in a queue).

    A task running longer than `task_timeout` seconds (None: no limit) is
    stopped with its worker process and recorded as failed, "timed out
    after N s"; the sweep goes on (a LocalCluster's nanny, or an external
    worker's, starts a new worker; a worker started with ``--no-nanny`` is
    gone). The folder is locked for the call (:mod:`coupler.folder_lock`)."""
    from coupler.folder_lock import folder_lock

    function = resolve_task(task_function)
    if task_timeout is not None:
        task_timeout = check_task_timeout(task_timeout)
    indices = [t.index for t in tasks]
    if len(set(indices)) != len(indices):
        raise ValueError("two tasks have the same index")
    with folder_lock(out_dir):
        return _run_sweep_locked(tasks, Path(out_dir), function, scheduler, n_workers, progress, retries,
                                 retry_failed, poll_seconds, worker_timeout, task_timeout)


def _run_sweep_locked(tasks, out_dir: Path, function, scheduler, n_workers, progress, retries, retry_failed,
                      poll_seconds, worker_timeout, task_timeout) -> SweepSummary:
    from distributed import Client, wait

    results_dir = out_dir / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    finished = finished_indices(results_dir, retry_failed)
    todo = [t for t in tasks if t.index not in finished]
    summary = SweepSummary(results_dir, len(tasks), skipped=len(tasks) - len(todo))
    if not todo:
        return summary

    cluster = None if scheduler else _local_cluster(n_workers)
    client = Client(scheduler if scheduler else cluster, timeout="30s")
    bar = progress_bar(len(tasks), "sweep", unit="emulator", initial=summary.skipped, progress=progress)
    token = uuid.uuid4().hex[:8]
    try:
        futures = {}
        for task in todo:
            future = client.submit(execute_task, function, task, task_timeout, token,
                                   key=f"emulator-{task.index:04d}-{token}", retries=retries, pure=False)
            futures[future] = task
        keys = {f.key for f in futures}
        pending = set(futures)
        last_worker_seen = time.monotonic()
        while pending:
            try:
                done, pending = wait(pending, timeout=poll_seconds, return_when="FIRST_COMPLETED")
            except TimeoutError:
                done = set()
            for future in done:
                try:
                    record = future.result()
                except Exception as exc:  # the task never returned: its workers died
                    task = futures[future]
                    marker = _timeout_marker(Path(task.work_dir), token)
                    if marker is None:
                        summary.lost += 1
                        summary.lost_messages.append(f"emulator {task.index}: {type(exc).__name__}: {exc}")
                        future.release()
                        continue
                    record = _timed_out_record({"index": task.index, "work_dir": task.work_dir,
                                                "hyperparameters": task.hyperparameters.to_dict()}, marker)
                write_result(results_dir, record)
                if record["status"] == "ok":
                    summary.done += 1
                else:
                    summary.failed += 1
                bar.update(1)
                future.release()
            try:
                running = sum(1 for ks in client.processing().values() for k in ks if k in keys)
                workers = len(client.scheduler_info()["workers"])
            except Exception:  # the scheduler is busy or gone; the next wait says which
                running, workers = 0, 1
            if workers:
                last_worker_seen = time.monotonic()
            elif cluster is not None and pending and time.monotonic() - last_worker_seen > worker_timeout:
                raise ClusterError(
                    f"the local Dask cluster has had no live worker for {worker_timeout:.0f} s: its worker "
                    f"processes die at start-up (run `python -c 'import emulators.fkb, gcm_toy'` to see why); "
                    f"{summary.done + summary.failed} results written to {results_dir}")
            bar.set_postfix_str(f"done {summary.done + summary.skipped}, running {running}, "
                                f"failed {summary.failed}" + (f", lost {summary.lost}" if summary.lost else ""),
                                refresh=True)
    finally:
        bar.close()
        client.close()
        if cluster is not None:
            cluster.close()
    return summary


# ------------------------------------------------------------ configuration
@dataclass(frozen=True)
class SweepConfig:
    """A sweep as data (TOML tables ``[sweep]``, ``[space]``, ``[training]``,
    ``[coupled]``, and optionally ``[design]``): ``n_emulators`` drawn from
    ``space`` with ``seed``, ``training`` the fixed hyperparameters (epochs,
    patience, ...), ``data`` the training data, ``task`` the task function
    (``module:function``), ``coupled`` the coupled runs of the default task.
    With a ``design`` (:class:`coupler.design.Design`) the emulators are its
    grid instead of draws: its factors' levels, the space's other fields
    (each fixed) and the training table; ``n_emulators`` is its cells times
    repeats (computed when the table leaves it out, refused if it differs).
    ``task_timeout_seconds``: a task running longer is stopped and recorded
    as failed, "timed out after N s" (:func:`run_sweep`)."""

    n_emulators: int = 8
    seed: int = 0
    data: str | None = None
    task: str = "coupler.sweep:default_task"
    space: SearchSpace = SearchSpace()
    training: Mapping[str, Any] = field(default_factory=dict)
    coupled: CoupledRunConfig = CoupledRunConfig()
    design: Design | None = None
    task_timeout_seconds: float = DEFAULT_TASK_TIMEOUT

    def __post_init__(self) -> None:
        for name, least, most in (("n_emulators", 1, MAX_EMULATORS), ("seed", 0, 2 ** 63 - 1)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not least <= value <= most:
                raise ValueError(f"[sweep] {name} must be an integer from {least} to {most}, got {value!r}")
        check_task_timeout(self.task_timeout_seconds, "[sweep] task_timeout_seconds")
        if self.design is not None:
            if self.n_emulators != self.design.n_emulators:
                raise ValueError(f"[sweep] n_emulators = {self.n_emulators} does not match the design's "
                                 f"{self.design.describe()} (leave it out: a design computes it)")
            self._design_base()      # every hyperparameter but the factors fixed, and none set twice

    @classmethod
    def from_toml(cls, path: str | os.PathLike) -> "SweepConfig":
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such sweep configuration")
        try:
            data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{path}: not valid TOML ({exc})") from None
        return cls.from_dict(data, base_dir=path.parent)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], base_dir: str | os.PathLike = ".") -> "SweepConfig":
        unknown = sorted(set(data) - {"sweep", "space", "training", "coupled", "design"})
        if unknown:
            raise ValueError(f"unknown table [{unknown[0]}] (known: sweep, space, training, coupled, design)")
        sweep = dict(data.get("sweep", {}))
        design = None
        if "design" in data:
            design = Design.from_dict(data["design"])
            for factor in design.names:
                for table in ("space", "training"):
                    if factor in data.get(table, {}):
                        raise ValueError(f"[design] factor {factor!r} is also set in [{table}]; a factor's "
                                         "values are its levels: remove it there")
            sweep.setdefault("n_emulators", design.n_emulators)
        known = {"n_emulators", "seed", "data", "task", "task_timeout_seconds"}
        if set(sweep) - known:
            raise ValueError(f"unknown sweep option {sorted(set(sweep) - known)[0]!r} (known: {', '.join(sorted(known))})")
        if sweep.get("data"):
            sweep["data"] = os.fspath(Path(base_dir) / sweep["data"])
        training = dict(data.get("training", {}))
        Hyperparameters.from_dict(training)  # refuses unknown or invalid values now
        coupled = dict(data.get("coupled", {}))
        if coupled.get("initial_checkpoint"):
            coupled["initial_checkpoint"] = os.fspath(Path(base_dir) / coupled["initial_checkpoint"])
        return cls(space=SearchSpace.from_dict(data.get("space", {})), training=training,
                   coupled=CoupledRunConfig.from_dict(coupled), design=design, **sweep)

    def _design_base(self) -> Hyperparameters:
        """A designed sweep's fixed hyperparameters: [training], then the
        space's values (each fixed) but the factors'."""
        training = dict(self.training)
        for factor in self.design.names:
            if factor in training:
                raise ValueError(f"[design] factor {factor!r} is also set in [training]; a factor's values are "
                                 "its levels: remove it there")
        return dataclasses.replace(Hyperparameters.from_dict(training), **self.space.fixed_values(self.design.names))

    def hyperparameters(self) -> list[Hyperparameters]:
        """The emulators' hyperparameters: drawn from the space, or the
        design's cells (coupler/design.py)."""
        if self.design is not None:
            return self.design.hyperparameters(self._design_base(), self.seed)
        return self.space.sample(self.n_emulators, self.seed, Hyperparameters.from_dict(self.training))

    def tasks(self, out_dir: str | os.PathLike, reference: str | os.PathLike | None = None) -> list[EmulatorTask]:
        out = Path(out_dir).resolve()
        return [EmulatorTask(index=i, hyperparameters=hp, work_dir=os.fspath(out / "emulators" / f"emulator_{i:04d}"),
                             data=os.fspath(Path(self.data).resolve()) if self.data else None, coupled=self.coupled,
                             reference=os.fspath(reference) if reference is not None else None,
                             design=self.design.cell(i).to_dict() if self.design is not None else None)
                for i, hp in enumerate(self.hyperparameters())]


SWEEP_IDENTITY = "sweep.json"
"""File in which sweep folders made before ``identity.json`` kept their configuration."""

SWEEP_PRODUCTS = ("results", "emulators", "reference", "results.nc", "results.csv", SWEEP_IDENTITY)
"""What a sweep writes in its folder and starting over removes (the report and figures are rewritten)."""

ADDED_SETTINGS = {"space.water_conservation": [False]}
"""Settings added to the configuration after sweep folders were made, with
the value those folders had without saying it: a folder whose identity
lacks one is the same sweep as a configuration with that value."""


def sweep_identity(config: SweepConfig) -> dict[str, Any]:
    """The configuration that makes a sweep folder's results comparable:
    everything but the number of emulators (a re-run may raise it to extend
    the sweep; a design's repeats likewise) and the per-task timeout (how
    long to wait, not what is computed)."""
    mine = _json_safe({**dataclasses.asdict(config), "n_emulators": None})
    mine.pop("task_timeout_seconds", None)
    if config.design is not None:
        mine["design"]["repeats"] = None
    return json.loads(json.dumps(mine))


def _legacy_sweep(folder: Path) -> dict[str, Any] | None:
    path = folder / SWEEP_IDENTITY
    return json.loads(path.read_text()) if path.is_file() else None


def claim_sweep_folder(config: SweepConfig, out_dir: str | os.PathLike, *, start_over: bool = False):
    """Claim ``OUT`` for this sweep (:func:`coupler.folder_identity.claim_folder`):
    a new folder, or a re-run of the same configuration; a folder of another
    space, training, coupled run, seed or data is refused naming the
    differences (FolderConflict, a ValueError), unless `start_over`, which
    removes the old sweep's results first. Returns the FolderIdentity."""
    from coupler.folder_identity import claim_folder

    return claim_folder(out_dir, "sweep", sweep_identity(config), products=SWEEP_PRODUCTS, legacy=_legacy_sweep,
                        added=ADDED_SETTINGS, start_over=start_over)


def check_sweep(config: SweepConfig) -> None:
    """What a sweep needs before it starts, checked at once (ValueError or
    FileNotFoundError naming the problem): training data that exist, and for
    the default task the coupled runs (:meth:`CoupledRunConfig.check_gcm`)."""
    import glob

    if config.data and not glob.glob(config.data):
        raise FileNotFoundError(f"[sweep] data: no training data at {config.data}")
    if resolve_task(config.task) is default_task:
        config.coupled.check_gcm()


def run_sweep_from_config(config: SweepConfig, out_dir: str | os.PathLike, *, scheduler: str | None = None,
                          n_workers: int | None = None, progress: bool | None = None,
                          retry_failed: bool = False, start_over: bool = False, log=print) -> SweepSummary:
    """A whole sweep: the reference runs (for the default task), the tasks,
    and the results dataset ``OUT/results.nc`` / ``results.csv``. Checked
    first (:func:`check_sweep`), then, with the folder locked, the folder
    claimed (:func:`claim_sweep_folder`; `start_over` removes the results of
    another configuration); `log` gets the note of a changed code version."""
    from coupler.folder_lock import folder_lock
    from coupler.results import collect_results, write_results

    out = Path(out_dir)
    check_sweep(config)
    with folder_lock(out):
        identity = claim_sweep_folder(config, out, start_over=start_over)
        if identity.note:
            log(identity.note)
        reference = None
        if resolve_task(config.task) is default_task:
            reference = prepare_reference(config.coupled, out / "reference", progress=progress)["reference"]
        summary = run_sweep(config.tasks(out, reference), out, config.task, scheduler=scheduler,
                            n_workers=n_workers, progress=progress, retry_failed=retry_failed,
                            task_timeout=config.task_timeout_seconds)
        write_results(collect_results(out), out)
    return summary
