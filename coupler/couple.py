"""Couple one emulator (or an ensemble) into the toy GCM and score the run.

What ``fkb couple`` does with a trained network, step by step:

1. :func:`prepare_model_files`: model files as they are; a Keras ``.keras``
   or legacy ``.h5`` file, or an ONNX ``.onnx`` file, is converted on the way
   (:func:`emulators.formats.convert`) into ``OUT/emulators/NAME.fkb``;
2. :func:`check_interface`: the GCM builds itself with the networks and
   checks their interface (names, units, sizes) before anything is run, so
   a mismatch is refused with the GCM's one-line message;
3. :func:`couple_and_score`: the run from the reference's initial state for
   ``config.days`` (:func:`coupler.sweep.coupled_run`), scored like every
   emulator of a sweep (:func:`coupler.scoring.score_run`: days survived,
   crash reason, RMSE of zonal-mean T and q per window) and, if the
   reference folder holds the perturbed twins, the noise floor (their mean
   and range) in the same windows; and the run's water and energy budget
   residuals beside the reference's (:mod:`coupler.budgets`). Written to ``OUT/coupled.nc``, ``OUT/score.nc`` and
   ``OUT/score.json``, each through a temporary file and ``os.replace``.

The reference (initial state, reference run, coupled-run configuration) is
a folder made by :func:`coupler.sweep.prepare_reference`
(:func:`coupler.sweep.load_reference` reads it), e.g. ``DIR/reference`` of
``fkb casestudy --out DIR``.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import xarray as xr

from coupler.budgets import BUDGET_COLUMNS, budget_record
from coupler.crash_attribution import CRASH_FILE, crash_record_path, read_crash_summary
from coupler.folder_identity import FolderConflict, claim_folder
from coupler.records import EmulatorResult, json_safe
from coupler.runs import FINETUNE_KEYS, REFERENCE_CONFIG, CoupledRunConfig, coupled_run, with_finetuning
from coupler.scoring import _start_day, finetune_summary, guard_summary, noise_floor_of_files, score_run
from emulators.atomic_files import replacing, write_text_replacing
from emulators.formats import needs_conversion
from emulators.netcdf_files import write_dataset

# TensorFlow and the toy GCM (its Fortran extension) are imported inside the functions that use them,
# so that importing this module does not load them (start-up time).

__all__ = ["KERAS_SUFFIXES", "COUPLE_PRODUCTS", "CoupleResult", "claim_couple_folder", "couple_identity",
           "prepare_model_files", "check_interface", "couple_config", "couple_and_score", "summary_lines",
           "with_finetuning", "FINETUNE_KEYS"]

KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
"""Extensions of Keras files, converted to model files before coupling."""


@dataclass
class CoupleResult:
    """What :func:`couple_and_score` made: the files, the score Dataset
    (:func:`coupler.scoring.score_run` plus ``noise_floor_*``), the
    configuration of the run and the reference it was scored against; the
    scored run as the sweep records it (``result``)."""

    run_path: Path
    score_path: Path
    json_path: Path
    score: xr.Dataset
    summary: dict[str, Any]
    config: CoupledRunConfig
    model_files: list[Path]
    converted: dict[str, Path]
    result: EmulatorResult | None = None


def prepare_model_files(emulators: Sequence[str | os.PathLike], out_dir: str | os.PathLike, *,
                        gcm_interface: bool = False, normalization: str | os.PathLike | None = None
                        ) -> tuple[list[Path], dict[str, Path]]:
    """The model files to couple: paths of model files unchanged, Keras and
    ONNX files converted to ``out_dir/emulators/STEM.fkb`` (numbered if two have the
    same name); with `gcm_interface`, every file converted there with the
    GCM's interface attached (and `normalization`, see
    :func:`emulators.export.with_gcm_interface`). Returns the model files and
    ``{source file: model file}``. The column-water-conservation layer
    (:mod:`emulators.conservation`, which the case study's emulators may end
    in) converts without a plugin. FileNotFoundError for a missing file; the
    converter's errors (one line) for a model it cannot convert."""
    if not emulators:
        raise ValueError("no emulator given")
    files: list[Path] = []
    converted: dict[str, Path] = {}
    for path in (Path(p) for p in emulators):
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such emulator file")
    for i, path in enumerate(Path(p) for p in emulators):
        if not needs_conversion(path) and not gcm_interface:
            files.append(path)
            continue
        if path.suffix.lower() in (".keras", ".h5", ".hdf5"):   # Keras (and TensorFlow) only for Keras files
            from emulators.conservation import ColumnWaterConservation  # noqa: F401 (registers the case study's layer)
        from emulators.export import convert_for_gcm
        from emulators.formats import convert

        folder = Path(out_dir) / "emulators"
        folder.mkdir(parents=True, exist_ok=True)
        stems = [Path(p).stem for p in emulators]
        name = path.stem if stems.count(path.stem) == 1 else f"{i:02d}_{path.stem}"
        target = folder / f"{name}.fkb"
        with replacing(target) as tmp:
            if gcm_interface:
                convert_for_gcm(path, tmp, normalization)
            else:
                convert(path, tmp)
        files.append(target)
        converted[os.fspath(path)] = target
    return files, converted


COUPLE_PRODUCTS = ("coupled.nc", "score.nc", "score.json", "emulators")
"""What ``fkb couple`` writes in its folder (``casestudy/``, the reference a
``--preset`` makes, is a case study of its own and stays)."""


def _sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def couple_identity(emulators: Sequence[str | os.PathLike], reference: str | os.PathLike | None,
                    preset: str | None, options: Mapping[str, Any]) -> dict[str, Any]:
    """What makes a coupled run: the networks (each file's path and SHA-256:
    the same path with other weights is another run), the reference folder
    (or the preset that makes it) and the options given (`options`: name ->
    value, None for an option not given)."""
    return {"emulators": [{"file": os.path.abspath(p), "sha256": _sha256(p)} for p in emulators],
            "reference": os.path.abspath(reference) if reference is not None else None,
            "preset": preset if reference is None else None,
            "options": {key: value for key, value in sorted(options.items()) if value not in (None, False)}}


def claim_couple_folder(out_dir: str | os.PathLike, identity: Mapping[str, Any], *, overwrite: bool = False):
    """Claim ``OUT`` for this coupled run (:func:`coupler.folder_identity.claim_folder`):
    a new folder, or an interrupted attempt of the same run, is taken; a
    folder of another run is refused naming the differences, and one holding
    this run finished (``score.json``) is refused too, unless `overwrite`
    (which removes the old run's files first). Call it with the folder
    locked (:func:`coupler.folder_lock.folder_lock`)."""
    out = Path(out_dir)
    claimed = claim_folder(out, "couple", identity, products=COUPLE_PRODUCTS, start_over=overwrite)
    if (out / "score.json").is_file() and not overwrite:
        raise FolderConflict(f"{out} holds this coupled run already (score.json); give another --out, "
                             "or --overwrite to run it again")
    return claimed


def check_interface(config: CoupledRunConfig, model_files: Sequence[str | os.PathLike]) -> None:
    """Build the GCM of `config` with the networks (without running it): its
    interface check refuses a network whose inputs or outputs (names, units,
    sizes) differ from the GCM's, raising ValueError with one line naming
    the first difference."""
    from gcm_toy import Model

    with Model(config.preset, config.gcm_overrides(list(model_files)), initial_state=False):
        pass


def couple_config(config: CoupledRunConfig, *, days: float | None = None, window_days: float | None = None,
                  limit_humidity: bool = False, limit_precipitation: bool = False,
                  precision: str | None = None, guard: str | None = None, guard_margin: float | None = None,
                  guard_factor: float | None = None) -> CoupledRunConfig:
    """`config` (the reference's) with another run length [days], scoring
    window [days], the emulator limiters, the networks' precision and the
    out-of-distribution guard (policy ``off``, ``clip`` or ``fallback``,
    its margin and distance factor: gcm_toy's options of those names)."""
    overrides = dict(config.overrides)
    for key, value in (("guard", guard), ("guard_margin", guard_margin), ("guard_factor", guard_factor)):
        if value is not None:
            overrides[key] = value
    if limit_humidity:
        overrides["limit_humidity"] = True
    if limit_precipitation:
        overrides["limit_precipitation"] = True
    if precision is not None:
        overrides["emulator_precision"] = precision
    changes: dict[str, Any] = {"overrides": overrides}
    if days is not None:
        changes["days"] = float(days)
    if window_days is not None:
        changes["window_days"] = float(window_days)
    try:
        return dataclasses.replace(config, **changes)
    except ValueError as exc:
        hint = "; pass --window-days" if "window_days" in str(exc) and window_days is None else ""
        raise ValueError(f"{exc}{hint}") from None


def couple_and_score(model_files: Sequence[str | os.PathLike], config: CoupledRunConfig,
                     reference: Mapping[str, str | os.PathLike], out_dir: str | os.PathLike, *,
                     converted: Mapping[str, Path] | None = None, progress: bool | None = None) -> CoupleResult:
    """Run the GCM with the networks (one: ``physics = emulator``; several:
    their ensemble) from the initial state of `config` for ``config.days``
    and score the run against ``reference["reference"]`` in windows of
    ``config.window_days`` (and the noise floor from
    the twins ``reference["perturbed"]``, a list of runs, if given). Writes ``out_dir/coupled.nc``,
    ``score.nc`` and ``score.json``; a crashed run is a result. `progress`: the
    coupled run's progress bar (None: when stderr is a terminal)."""
    from gcm_toy import open_output

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = [Path(f) for f in model_files]
    run_path, score_path, json_path = out / "coupled.nc", out / "score.nc", out / "score.json"
    with replacing(run_path) as tmp_run:
        clock = time.perf_counter()
        tuned_path = out / "tuned.fkb"
        coupled = coupled_run(files, config, tmp_run, progress=progress, crash_record=crash_record_path(run_path),
                              tuned=tuned_path)
        wall_seconds = time.perf_counter() - clock
        guard = guard_summary(coupled.run)
        finetune = finetune_summary(coupled.run)
        if finetune is not None:
            finetune["tuned_model"] = os.fspath(tuned_path)
        with open_output(reference["reference"]) as ref:
            score = score_run(coupled.run, ref, config.days, config.window_days).load()
            budgets, reference_budgets = budget_record(coupled.run), budget_record(ref)
            floor = None
            if reference.get("perturbed"):
                floor = noise_floor_of_files(ref, reference["perturbed"], config.window_days)
            ref_days = float(ref.attrs.get("end_time_days", math.nan)) - float(ref.attrs.get("start_time_days",
                                                                                               math.nan))
        start_day = _start_day(coupled.run)
        coupled.run.close()

    for name, units in (("t", "K"), ("q", "g kg-1"), ("normalized", "1")):
        value = float(floor[f"online_error_{name}"]) if floor is not None else math.nan
        score[f"noise_floor_{name}"] = xr.DataArray(value, attrs={
            "units": units, "long_name": f"online_error_{name} of the perturbed twins, their mean (noise floor)"})
    for name, attrs in BUDGET_COLUMNS.items():
        score[name] = xr.DataArray(budgets[name], attrs=dict(attrs))
        score[f"reference_{name}"] = xr.DataArray(reference_budgets[name], attrs={
            **attrs, "long_name": f"{name} of the reference run"})
    score.attrs.update({
        "title": "stability and online error of a coupled emulator run",
        "emulators": "\n".join(os.fspath(f) for f in files),
        "physics": "ensemble" if len(files) > 1 else config.emulator_physics,
        "reference": os.fspath(reference["reference"]), "run": os.fspath(run_path),
        "run_days_requested": float(config.days)})
    score.attrs["crash_time_days"] = float(score.attrs.get("crash_time_days", math.nan))
    write_dataset(score, score_path, note="score of a coupled emulator run")

    result = EmulatorResult.scored(score, score, wall_seconds, budgets=budgets, guard=guard, finetune=finetune,
                                   crash=read_crash_summary(crash_record_path(run_path)))
    summary = {
        "emulators": [os.fspath(f) for f in files],
        "converted": {k: os.fspath(v) for k, v in (converted or {}).items()},
        "physics": score.attrs["physics"],
        "reference": os.fspath(reference["reference"]),
        "reference_days": ref_days,
        "start_day": start_day,
        "run_days": float(config.days), "window_days": float(config.window_days),
        "run_status": result.run_status, "crash_reason": result.crash_reason,
        "crash_time_days": score.attrs["crash_time_days"],
        "days_survived": result.days_survived, "n_windows": result.n_windows,
        "online_error_t": result.online_error_t, "online_error_q": result.online_error_q,
        "online_error_normalized": result.online_error_normalized,
        "noise_floor": None if floor is None else {
            name: float(score[f"noise_floor_{name}"]) for name in ("t", "q", "normalized")},
        "guard": result.guard,
        "finetune": result.finetune,
        "wall_seconds": wall_seconds,
        "seconds_per_simulated_day": result.seconds_per_day,
        "budgets": result.budgets, "reference_budgets": reference_budgets,
        "run": os.fspath(run_path), "score": os.fspath(score_path),
    }
    if result.crash:
        summary["crash"] = result.crash
    write_text_replacing(json_path, json.dumps(json_safe(summary), indent=2) + "\n")
    write_text_replacing(out / REFERENCE_CONFIG, json.dumps(config.to_dict(), indent=2) + "\n")
    return CoupleResult(run_path, score_path, json_path, score, summary, config, files, dict(converted or {}),
                        result)


def _number(value: float, digits: int = 4) -> str:
    return f"{value:.{digits}g}" if value is not None and math.isfinite(value) else "nan"


def with_partial_coupling(config: CoupledRunConfig, start_day: float, *, network_weight: float | None = None,
                          weight_ramp: str | None = None, ramp_days: float | None = None,
                          spinup_days: float | None = None,
                          reference_outputs: Sequence[str] | None = None) -> CoupledRunConfig:
    """`config` with partial coupling (docs/gcm.md): the reference physics
    alone for `spinup_days` after `start_day` (the run's first day), then
    ``a * network + (1 - a) * reference`` with ``a`` = `network_weight`
    reached by `weight_ramp` over `ramp_days` from the end of the spin-up,
    and the output groups `reference_outputs` from the reference physics.
    The GCM takes the days as model days, so that a restart keeps them."""
    overrides = dict(config.overrides)
    begin = float(start_day) + float(spinup_days or 0.0)
    if spinup_days:
        overrides["network_start_day"] = begin
    if network_weight is not None:
        overrides["network_weight"] = float(network_weight)
    if weight_ramp is not None:
        overrides.update(weight_ramp=weight_ramp, ramp_start_day=begin, ramp_days=float(ramp_days or 0.0))
    if reference_outputs:
        overrides["reference_outputs"] = list(reference_outputs)
    return dataclasses.replace(config, overrides=overrides)


def summary_lines(result: CoupleResult) -> list[str]:
    """What ``fkb couple`` prints."""
    s = result.summary
    what = (f"ensemble of {len(s['emulators'])} networks" if len(s["emulators"]) > 1
            else os.fspath(s["emulators"][0]))
    lines = [f"coupled {what} from day {s['start_day']:g} for {s['run_days']:g} days "
             f"(reference {s['reference']})"]
    lines += [f"converted {src} -> {dst}" for src, dst in s["converted"].items()]
    status = s["run_status"]
    if status == "crashed":
        status += f" at day {s['crash_time_days']:g}: {s['crash_reason']}"
    lines.append(f"run status     {status}")
    lines.append(f"days survived  {s['days_survived']:g} of {s['run_days']:g}")
    covered = (f"; the reference covers {s['reference_days']:g} days"
               if math.isfinite(s["reference_days"]) and s["reference_days"] + 1e-9 < s["run_days"] else "")
    lines.append(f"windows scored {s['n_windows']} of {s['window_days']:g} days{covered}")
    lines.append(f"online error   T {_number(s['online_error_t'])} K, q {_number(s['online_error_q'])} g/kg, "
                 f"normalised {_number(s['online_error_normalized'])}")
    floor = s["noise_floor"]
    if floor is not None:
        lines.append(f"noise floor    T {_number(floor['t'])} K, q {_number(floor['q'])} g/kg, "
                     f"normalised {_number(floor['normalized'])}")
    budgets, reference = s.get("budgets"), s.get("reference_budgets")
    if budgets is not None:
        lines.append(f"budgets        water {_number(budgets['water_budget_residual'])} mm/day, energy "
                     f"{_number(budgets['energy_budget_residual'])} W/m2 over {_number(budgets['budget_days'])} days "
                     f"(reference {_number(reference['water_budget_residual'])} mm/day, "
                     f"{_number(reference['energy_budget_residual'])} W/m2)")
    guard = s.get("guard")
    if guard is not None:
        lines.append(f"guard          {guard['policy']}: {100 * guard['mean_flagged_fraction']:.3g} % of the columns "
                     f"flagged, {100 * guard['mean_fallback_fraction']:.3g} % on the reference physics (mean over "
                     "the run)")
    tuning = s.get("finetune")
    if tuning is not None:
        lines.append(f"fine-tuning    {tuning['status']}: loss {_number(tuning['loss_first'])} in the first output "
                     f"interval, {_number(tuning['loss_last'])} in the last; {tuning['optimizer_steps']} optimizer "
                     f"steps; {100 * tuning['teacher_fraction']:.3g} % of the columns on the reference physics as "
                     f"the teacher; tuned network {tuning['tuned_model']}")
    crash = s.get("crash")
    if crash is not None:
        ood = (f"inputs flagged out of distribution {crash['hours_ood_before_crash']:.3g} h before it"
               if crash.get("ood_before_crash") else "inputs within the training distribution"
               if crash.get("has_input_statistics") else "no input statistics in the model file")
        lines.append(f"crash record   {CRASH_FILE} in {result.run_path.parent}: {ood}; `fkb crash-report "
                     f"{result.run_path.parent}` tells it")
    lines.append(f"cost           {s['seconds_per_simulated_day']:.3g} s per simulated day")
    lines.append(f"wrote {result.run_path}, {result.score_path} and {result.json_path}")
    return lines
