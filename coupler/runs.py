"""One coupled run of the toy GCM with an emulator (or, without one, the
reference physics) from the configured initial state, and the reference run
with its perturbed twins and the noise floor.

- :func:`coupled_run` returns the run and its stability record;
- :func:`prepare_reference` makes the reference run, its twins and the noise
  floor once; :func:`load_reference` finds them again.
"""
from __future__ import annotations

# first: the environment is set before NumPy loads OpenBLAS and before TensorFlow
import coupler.worker_environment  # noqa: F401, I001

import dataclasses
import json
import math
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, NamedTuple, Sequence, Union

import numpy as np
import xarray as xr

from coupler.crash_attribution import attribute_crash, rewind_dir
from coupler.scoring import noise_floor_of_files, stability_record
from emulators.atomic_files import replacing, write_text_replacing
from emulators.netcdf_files import write_dataset
from emulators.settings import dataclass_from_table

# The toy GCM (its Fortran extension) is imported inside the functions that use it, so that importing
# this module does not load it (start-up time).


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
        return dataclass_from_table(cls, values, "coupled-run option")

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
