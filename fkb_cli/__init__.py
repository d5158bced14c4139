"""The ``fkb`` command line: a thin layer over the Python API, at the top of
the layers (docs/architecture.md): it may import every package, and none
imports it.

Every command prints ``--help``, exits 0 on success, and on a user mistake
(missing file, corrupt model, wrong shape, bad option) prints one line
``fkb <command>: error: <reason>`` on stderr and exits 1 — never a traceback.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

# Quieten TensorFlow before anything imports it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")


from emulators.progress import add_progress_option  # noqa: E402  (light: no TensorFlow, no xarray)


class UserError(Exception):
    """A mistake in the command's input: reported in one line, exit status 1."""


# Exception types (module, class) that describe bad input rather than a bug.
# Looked up only in modules already imported, so reporting an error never
# imports TensorFlow.
_USER_ERROR_TYPES = [
    ("emulators.fkb", "FKBError"),
    ("emulators.modelfile", "ModelFileError"),
    ("emulators.formats", "ConversionError"),
    ("coupler.sweep", "ClusterError"),
]


def _is_user_error(exc: BaseException) -> bool:
    if isinstance(exc, (UserError, ValueError, OSError)):   # OSError: missing, unreadable or corrupt files
        return True
    return any(isinstance(exc, getattr(sys.modules[module], name))
               for module, name in _USER_ERROR_TYPES if module in sys.modules)


# ----------------------------------------------------------------- convert
def _load_plugins(names: list[str]) -> None:
    """Import the modules that register custom layers (docs/custom-layers.md)."""
    if names:
        from emulators.convert import load_plugin
        for name in names:
            load_plugin(name)


def cmd_convert(args: argparse.Namespace) -> None:
    _load_plugins(args.plugin)
    if args.normalization is not None and args.interface is None:
        raise UserError("--normalization goes with --interface gcm")
    if args.interface == "gcm":
        from emulators.export import convert_for_gcm
        spec = convert_for_gcm(args.src, args.dst, args.normalization)
    else:
        from emulators.formats import convert   # imports Keras only for a Keras file
        spec = convert(args.src, args.dst)
    print(f"wrote {args.dst}")
    if Path(args.dst).suffix.lower() == ".fkb" and getattr(spec, "input_statistics", None) is None:
        print(f"note: {args.src} carries no statistics of its training inputs, so {args.dst} has none: "
              "the runtime's out-of-distribution guard needs them (docs/model-file.md, 'Input statistics')")


# -------------------------------------------------------------------- info
def cmd_info(args: argparse.Namespace) -> None:
    _load_plugins(args.plugin)
    from emulators.formats import load_spec, needs_conversion
    spec = load_spec(args.model)
    print(describe_spec(spec, args.model, converted=needs_conversion(args.model)))


def describe_spec(spec, path, converted: bool = False) -> str:
    """A human-readable summary of a model: layers, shapes, parameters,
    normalization, names and units, hash (for a model of another format
    (`converted`), the hash of the model file it converts to)."""
    lines = [f"model       {path}"]
    if spec.name:
        lines.append(f"name        {spec.name}")
    if converted:
        from emulators.modelfile import encode_model_file
        digest = encode_model_file(spec).split(b"\n", 2)[1].split(b" ")[1].decode("ascii")
        lines.append(f"sha256      {digest} (of the model file it converts to)")
    else:
        lines.append(f"sha256      {spec.sha256 or '(none: original FKB text file)'}")
    lines.append(f"inputs      {spec.n_inputs}")
    lines.append(f"outputs     {spec.n_outputs}")
    n_params = sum(int(p.size) for layer in spec.layers for p in layer.params.values())
    lines.append(f"parameters  {n_params}")
    for label, norm in (("input", spec.input_normalization), ("output", spec.output_normalization)):
        if norm is None:
            lines.append(f"{label} normalization: none")
        else:
            offset, scale = norm
            lines.append(f"{label} normalization: offset in [{offset.min():.4g}, {offset.max():.4g}], "
                         f"scale in [{scale.min():.4g}, {scale.max():.4g}]")
    lines.append("layers")
    lines.append(f"  {'id':>3}  {'type':<20} {'width':>6}  {'inputs':<8} {'params':>8}  attributes")
    for layer in spec.layers:
        attrs = " ".join(f"{k}={v}" for k, v in layer.attributes.items())
        n = sum(int(p.size) for p in layer.params.values())
        inputs = ",".join(str(i) for i in layer.inputs)
        lines.append(f"  {layer.id:>3}  {layer.kind:<20} {layer.n_out:>6}  {inputs:<8} {n:>8}  {attrs}")
    stats = getattr(spec, "input_statistics", None)
    if stats is None:
        lines.append("input statistics: none (the runtime's guard needs them: a model exported with its "
                     "training data, e.g. by fkb train)")
    else:
        lines.append(f"input statistics: {stats.samples} training samples, {stats.rank} principal directions "
                     f"(residual variance {stats.residual_variance:.3g}), 99.9 % distance "
                     f"{stats.distance_q999:.3g}")
    if spec.inputs or stats is not None:
        names, units = spec.input_names, spec.input_units
        lines.append("input variables" + ("  (training minimum, mean, maximum, std)" if stats is not None else ""))
        for i in range(spec.n_inputs):
            row = f"  {i + 1:>4}  {names[i]}  [{units[i]}]"
            if stats is not None:
                row += (f"  {stats.minimum[i]:.5g}  {stats.mean[i]:.5g}  {stats.maximum[i]:.5g}  "
                        f"{stats.std[i]:.4g}")
            lines.append(row)
    if spec.outputs:
        lines.append("output variables")
        lines.extend(f"  {i + 1:>4}  {name}  [{units}]" for i, (name, units) in enumerate(spec.outputs))
    state = getattr(spec, "training", None)
    if state is not None:  # saved by a network trained in Fortran (format version 2)
        settings = " ".join(f"{k}={v}" for k, v in state.optimizer_attributes.items())
        lines.append(f"training state: {state.optimizer} ({settings}), loss {state.attributes.get('loss')}, "
                     f"{state.attributes.get('iterations')} steps, {state.precision}-bit arrays "
                     f"{', '.join(state.tensors) or '(none)'}")
        if state.schedule is not None:
            lines.append(f"  schedule {state.schedule} "
                         + " ".join(f"{k}={v}" for k, v in state.schedule_attributes.items()))
    return "\n".join(lines)


# ----------------------------------------------------------------- predict
def cmd_predict(args: argparse.Namespace) -> None:
    x = _load_array(args.input)
    if x.ndim != 2:
        raise UserError(f"{args.input}: expected a 2-D array (n_samples, n_inputs), got shape {x.shape}")
    from emulators.formats import needs_conversion
    if any(needs_conversion(m) and not Path(m).is_dir() for m in args.models):
        import tempfile
        with tempfile.TemporaryDirectory(prefix="fkb-predict-") as folder:
            args.models = _converted_models(args.models, Path(folder))
            _predict(args, x)
        return
    _predict(args, x)


def _converted_models(models: list[str], folder: Path) -> list[str]:
    """The model files of `models`: ONNX and Keras files converted into
    `folder` (named after their source), model files as they are."""
    from emulators.formats import convert, needs_conversion
    out = []
    for i, model in enumerate(models):
        if needs_conversion(model) and not Path(model).is_dir():
            target = folder / (f"{Path(model).stem}.fkb" if len(models) == 1 else f"{i:02d}_{Path(model).stem}.fkb")
            convert(model, target)
            out.append(str(target))
        else:
            out.append(model)
    return out


def _predict(args: argparse.Namespace, x) -> None:
    ensemble_options = (args.std, args.members, args.noise_std, args.seed)
    if len(args.models) == 1 and not Path(args.models[0]).is_dir() \
            and all(option is None for option in ensemble_options):
        from emulators.fkb import load
        net = load(args.models[0])
        scores = net.guard(x, margin=args.guard_margin, distance_factor=args.guard_factor) \
            if args.guard is not None else None          # before any file is written
        y = net.predict(x)
        _save_array(args.output, y)
        print(f"wrote {args.output}: {y.shape[0]} samples x {y.shape[1]} outputs ({y.dtype})")
        if scores is not None:
            _save_guard(args.guard, scores)
        return
    if args.guard is not None:
        raise UserError("--guard takes one model file, not an ensemble")
    _predict_ensemble(args, x)


def _save_guard(path: str, scores) -> None:
    """The guard's scores as a .npz file: max_abs_z, distance, n_outside, flagged."""
    import numpy as np

    from emulators.atomic_files import replacing
    with replacing(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, max_abs_z=scores.max_abs_z, distance=scores.distance, n_outside=scores.n_outside,
                     flagged=scores.flagged)
    n, flagged = scores.flagged.size, int(scores.flagged.sum())
    print(f"wrote {path}: {flagged} of {n} samples flagged out of distribution ({100 * flagged / max(n, 1):.3g} %), "
          f"largest |z| {float(scores.max_abs_z.max(initial=0)):.3g}, largest distance "
          f"{float(scores.distance.max(initial=0)):.3g}")


def _predict_ensemble(args: argparse.Namespace, x) -> None:
    """Several models (or a folder of them): the members' mean to -o, on
    request their standard deviation and every member's output."""
    from emulators.fkb import load_ensemble
    if len(args.models) > 1 and any(Path(m).is_dir() for m in args.models):
        raise UserError("give either one folder or model files, not both")
    noise_std = 0.0 if args.noise_std is None else args.noise_std
    if not noise_std >= 0.0 or noise_std == float("inf"):
        raise UserError(f"--noise-std must be finite and >= 0, not {args.noise_std}")
    source = args.models[0] if len(args.models) == 1 else args.models
    with load_ensemble(source, precision=64 if x.dtype == "float64" else 32) as ens:
        result = ens.predict(x, members=args.members is not None, noise_std=noise_std,
                             seed=0 if args.seed is None else args.seed)
    mean, std = result[0], result[1]
    _save_array(args.output, mean)
    print(f"wrote {args.output}: mean of {ens.n_members} members, {mean.shape[0]} samples x "
          f"{mean.shape[1]} outputs ({mean.dtype})")
    if args.std is not None:
        _save_array(args.std, std)
        print(f"wrote {args.std}: standard deviation over members (ddof=0)")
    if args.members is not None:
        _save_array(args.members, result[2])
        print(f"wrote {args.members}: {ens.n_members} members x {mean.shape[0]} samples x "
              f"{mean.shape[1]} outputs")


def _load_array(path: str):
    import numpy as np
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{path}: no such file")
    try:
        x = np.load(p, allow_pickle=False)
    except Exception as exc:  # numpy raises several types for a bad file
        raise UserError(f"{path}: not a readable .npy file ({exc})") from None
    if x.dtype.kind not in "fiu":
        raise UserError(f"{path}: array of dtype {x.dtype} is not numeric")
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float64)
    return x


def _save_array(path: str, y) -> None:
    import numpy as np

    from emulators.atomic_files import replacing
    with replacing(path) as tmp:
        np.save(tmp, y)


# -------------------------------------------------------------------- demo
def cmd_demo(args: argparse.Namespace) -> None:
    from experiments.bridge_demo import run_demo
    ok = run_demo(Path(args.out), seed=args.seed)
    if not ok:
        raise UserError("Keras and Fortran predictions disagree (see the table above)")


# ------------------------------------------------------------------- train
def cmd_train(args: argparse.Namespace) -> None:
    from emulators.train import run_train
    run_train(args)


# --------------------------------------------------------------------- gcm
def cmd_gcm_run(args: argparse.Namespace) -> None:
    from gcm_toy import Model, parse_overrides
    from gcm_toy.run import day_label
    overrides = parse_overrides(args.set)
    if args.output_interval_hours is not None:
        overrides["output_interval_hours"] = args.output_interval_hours
    if args.physics is not None:
        overrides["physics"] = args.physics
    if args.emulator:
        overrides["emulator"] = args.emulator
    if args.emulator_precision is not None:
        overrides["emulator_precision"] = args.emulator_precision
    if args.limit_humidity:
        overrides["limit_humidity"] = True
    if args.limit_precipitation:
        overrides["limit_precipitation"] = True
    if args.restart:
        model = Model.from_checkpoint(args.restart, overrides, config=args.preset)
    else:
        model = Model(args.preset or "held-suarez", overrides)
    out = Path(args.out)
    start = model.time_days
    output = out / f"gcm_day{day_label(start)}.nc"
    ds = model.run(args.days, output, overwrite=args.overwrite, checkpoint_every_days=args.checkpoint_every,
                   checkpoint_dir=out, progress=args.progress)
    records = f"{ds.sizes['time']} records"
    if ds.attrs["run_status"] == "crashed":
        message = f"run stopped at day {float(ds.attrs['crash_time_days']):g}: {ds.attrs['crash_reason']}"
        if args.fail_on_crash:
            raise UserError(message)
        print(message)
        last = float(ds.time[-1]) if ds.sizes["time"] else start
        print(f"wrote {output} ({records}, days {start:g}-{last:g}; run_status = crashed, no checkpoint)")
        return
    checkpoint = model.save_checkpoint(out / f"checkpoint_day{day_label(model.time_days)}.bin")
    print(f"wrote {output} ({records}, days {start:g}-{model.time_days:g}) and {checkpoint}")


def cmd_data(args: argparse.Namespace) -> None:
    from gcm_toy.training_data import run_data
    run_data(args)


def cmd_gcm_presets(args: argparse.Namespace) -> None:
    from gcm_toy import list_presets
    presets = list_presets()
    width = max(len(name) for name in presets)
    for name, description in presets.items():
        print(f"{name:<{width}}  {description}")


def cmd_gcm_options(args: argparse.Namespace) -> None:
    from gcm_toy import GCMConfig, load_config
    config = load_config(args.preset)
    docs = GCMConfig.option_docs()
    width = max(len(name) for name in docs)
    for name, doc in docs.items():
        value = getattr(config, name)
        shown = "(default)" if value is None else repr(value)
        print(f"{name:<{width}}  {shown:<22}  {doc}")


def cmd_gcm_twin(args: argparse.Namespace) -> None:
    from gcm_toy import parse_overrides
    from gcm_toy.twin import run_twins, twin_table
    out = Path(args.out)
    target = out / "twin.nc"
    if target.exists() and not args.overwrite:
        raise UserError(f"{target} exists (pass --overwrite to replace it)")
    if args.restart is None and args.preset is None:
        raise UserError("give --restart CHECKPOINT (a spun-up state) or --preset NAME (with --spinup-days)")
    from gcm_toy.run import days_progress_bar
    with days_progress_bar(args.progress, args.days, 0.0, f"control and {args.twins} twins") as bar:
        result = run_twins(args.preset, args.restart, overrides=parse_overrides(args.set),
                           spinup_days=args.spinup_days, days=args.days, amplitude=args.perturb,
                           kind=args.perturbation, n_twins=args.twins, seed=args.seed, sample_hours=args.sample_hours,
                           reseed_physics=args.reseed_physics, progress=lambda day: bar.update(day - bar.n))
    out.mkdir(parents=True, exist_ok=True)
    from emulators.netcdf_files import write_dataset
    write_dataset(result.curves, target)
    print(twin_table(result))
    print(f"wrote {target}")


def cmd_gcm_spin_up(args: argparse.Namespace) -> None:
    from experiments.states import recipes, regenerate
    if args.list or not args.name:
        for name, recipe in recipes().items():
            print(f"{name:<18} {recipe.description}")
        return
    regenerate(args.name, days=args.days, out_dir=args.out, progress=args.progress)


def cmd_gcm_plot_held_suarez(args: argparse.Namespace) -> None:
    from experiments.held_suarez import held_suarez_report
    held_suarez_report(args.run, spinup_days=args.spinup_days, out_dir=args.out)


def cmd_gcm_plot_aquaplanet(args: argparse.Namespace) -> None:
    from experiments.aquaplanet_climate import aquaplanet_report
    aquaplanet_report(args.run, spinup_days=args.spinup_days, out_dir=args.out, plots=not args.no_plots)


# -------------------------------------------------- sweep, score, report
def cmd_sweep(args: argparse.Namespace) -> None:
    import dataclasses
    from coupler.sweep import SweepConfig, resolve_task, run_sweep_from_config
    config = SweepConfig.from_toml(args.config) if args.config else SweepConfig()
    changes = {key: value for key, value in (("n_emulators", args.n_emulators), ("seed", args.seed),
                                             ("task", args.task), ("data", args.data),
                                             ("task_timeout_seconds", args.task_timeout)) if value is not None}
    if args.n_emulators is not None and args.n_emulators < 1:
        raise UserError(f"--n-emulators must be at least 1, got {args.n_emulators}")
    _check_workers(args.workers)
    config = dataclasses.replace(config, **changes)    # checked again: SweepConfig's ranges
    resolve_task(config.task)  # a bad task name is a one-line error before any cluster starts
    summary = run_sweep_from_config(config, args.out, scheduler=args.scheduler, n_workers=args.workers,
                                    progress=args.progress, retry_failed=args.retry_failed,
                                    start_over=args.overwrite)
    print(summary)
    print(f"wrote {Path(args.out) / 'results'}/ and {Path(args.out) / 'results.nc'} (+ .csv)")
    if summary.lost:
        raise UserError(f"{summary.lost} emulators were lost with their workers; re-run the command to retry them")


MAX_WORKERS = 4096
"""More local workers than any machine has cores is a typo."""


def _check_workers(workers: int | None) -> None:
    if workers is not None and not 1 <= workers <= MAX_WORKERS:
        raise UserError(f"--workers must be from 1 to {MAX_WORKERS}, got {workers}")


def cmd_score(args: argparse.Namespace) -> None:
    from coupler.scoring import noise_floor_of_files, score_run
    from gcm_toy import open_output
    for path in [args.run, args.reference] + list(args.perturbed or []):
        if not Path(path).is_file():
            raise UserError(f"{path}: no such run file")
    for name in ("days", "window_days"):
        value = getattr(args, name)
        if value is not None and not (math.isfinite(value) and value > 0):
            raise UserError(f"--{name.replace('_', '-')} must be a positive number of days, got {value:g}")
    planned = _planned_scoring(args.reference, args.run)
    if args.window_days is None:
        args.window_days = planned.get("window_days", 30.0)
    if args.days is None:
        args.days = planned.get("days")
    run, reference = open_output(args.run), open_output(args.reference)
    score = score_run(run, reference, args.days, args.window_days)
    if int(score["n_windows"]) == 0 and score.attrs.get("run_status") == "completed":
        raise UserError(f"{args.run}: a completed run of {float(score['days_survived']):g} days holds no window of "
                        f"{args.window_days:g} days; pass a shorter --window-days")
    print(f"run status     {score.attrs['run_status']}" + (f": {score.attrs['crash_reason']}"
                                                          if score.attrs["crash_reason"] else ""))
    print(f"days survived  {float(score['days_survived']):g}")
    print(f"windows scored {int(score['n_windows'])} of {args.window_days:g} days")
    print(f"online error   T {float(score['online_error_t']):.4g} K, q {float(score['online_error_q']):.4g} g/kg, "
          f"normalised {float(score['online_error_normalized']):.4g}")
    if args.perturbed:
        floor = noise_floor_of_files(reference, args.perturbed, args.window_days)
        print(f"noise floor    T {float(floor['online_error_t']):.4g} K, q {float(floor['online_error_q']):.4g} g/kg, "
              f"normalised {float(floor['online_error_normalized']):.4g} (mean of {len(args.perturbed)} twin(s); "
              f"range {float(floor['online_error_normalized_min']):.4g}-"
              f"{float(floor['online_error_normalized_max']):.4g})")
    if args.output:
        from emulators.netcdf_files import write_dataset
        write_dataset(score, args.output, note="score of a GCM run against a reference run")
        print(f"wrote {args.output}")


def _planned_scoring(*run_files: str) -> dict[str, float]:
    """``days`` and ``window_days`` of the coupled.json (a sweep's or ``fkb
    couple``'s run configuration) beside the first of `run_files` that has
    one; empty without."""
    for path in run_files:
        config = Path(path).parent / "coupled.json"
        if config.is_file():
            try:
                values = json.loads(config.read_text())
            except (OSError, ValueError):
                continue
            return {key: float(values[key]) for key in ("days", "window_days") if values.get(key) is not None}
    return {}


def cmd_couple(args: argparse.Namespace) -> None:
    from coupler.couple import COUPLE_PRODUCTS, claim_couple_folder, couple_config, couple_identity
    from coupler.folder_identity import discard_claim
    from coupler.folder_lock import folder_lock
    from coupler.sweep import load_reference
    if args.reference and args.preset:
        raise UserError("give --reference DIR or --preset NAME, not both")
    for name in ("days", "window_days", "guard_margin", "guard_factor", "network_weight", "ramp_days", "spinup_days"):
        value = getattr(args, name)
        if value is not None and not math.isfinite(value):
            raise UserError(f"--{name.replace('_', '-')} must be a finite number, got {value:g}")
    if args.days is not None and not args.days > 0:
        raise UserError(f"--days must be positive, got {args.days:g}")
    if args.normalization is not None and args.interface is None:
        raise UserError("--normalization goes with --interface gcm")
    for path in args.emulator:
        if not Path(path).is_file():
            raise UserError(f"{path}: no such emulator file")
    options = dict(days=args.days, window_days=args.window_days, limit_humidity=args.limit_humidity,
                   limit_precipitation=args.limit_precipitation, precision=args.emulator_precision,
                   guard=args.guard, guard_margin=args.guard_margin, guard_factor=args.guard_factor)
    if args.reference:
        config, reference = load_reference(args.reference)
        stage = None
    else:  # the case study's reference, made (or reused) in OUT/casestudy once the networks are accepted
        from experiments.casestudy import load_casestudy
        stage = load_casestudy(args.preset or "quick")
        config, reference = stage.sweep("training.nc", "checkpoint.bin").coupled, {}
    config = couple_config(config, **options)
    asked = {name: getattr(args, name) for name in (
        "interface", "days", "window_days", "emulator_precision", "limit_humidity", "limit_precipitation", "guard",
        "guard_margin", "guard_factor", "network_weight", "weight_ramp", "ramp_days", "spinup_days",
        "reference_outputs")}
    asked["normalization"] = os.path.abspath(args.normalization) if args.normalization else None
    identity = couple_identity(args.emulator, args.reference, args.preset or "quick", asked)
    out = Path(args.out)
    with folder_lock(out):                     # one writer; then this run's folder, or a re-run's
        claimed = claim_couple_folder(out, identity, overwrite=args.overwrite)
        if claimed.note:
            print(claimed.note)
        try:
            _couple(args, out, config, reference, stage, options)
        except BaseException:
            if claimed.new:                    # nothing of this attempt stays to block the next one
                discard_claim(out, COUPLE_PRODUCTS)
            raise


def _couple(args: argparse.Namespace, out: Path, config, reference, stage, options) -> None:
    """fkb couple in its claimed and locked folder: convert, check, (make the reference), run and score."""
    from coupler.couple import check_interface, couple_and_score, couple_config, prepare_model_files, summary_lines
    files, converted = prepare_model_files(args.emulator, out, gcm_interface=args.interface == "gcm",
                                           normalization=args.normalization)
    check_interface(config, files)
    if stage is not None:
        from experiments.casestudy import prepare_casestudy_reference
        made = prepare_casestudy_reference(stage, out / "casestudy", progress=args.progress)
        config, reference = couple_config(made.sweep.coupled, **options), made.paths
        print(f"reference: {out / 'casestudy'} (reuse it with --reference {out / 'casestudy'})")
    if any(v is not None for v in (args.network_weight, args.weight_ramp, args.spinup_days, args.reference_outputs)):
        from coupler.couple import with_partial_coupling
        from gcm_toy import open_output
        with open_output(reference["reference"]) as ref:
            start_day = float(ref.attrs["start_time_days"])
        config = with_partial_coupling(config, start_day, network_weight=args.network_weight,
                                       weight_ramp=args.weight_ramp, ramp_days=args.ramp_days,
                                       spinup_days=args.spinup_days,
                                       reference_outputs=args.reference_outputs.split(",")
                                       if args.reference_outputs else None)
        check_interface(config, files)         # and the partial-coupling options, before the run
    if args.finetune:
        from coupler.couple import with_finetuning
        start = None
        if args.finetune_after_days is not None:
            from gcm_toy import open_output
            with open_output(reference["reference"]) as ref:
                start = float(ref.attrs["start_time_days"]) + args.finetune_after_days
        config = with_finetuning(config, {"learning_rate": args.finetune_learning_rate,
                                          "every_steps": args.finetune_every_steps,
                                          "columns": args.finetune_columns, "steps": args.finetune_steps,
                                          "seed": args.finetune_seed}, start_day=start)
        check_interface(config, files)         # the fine-tuning options too, before the run
    elif any(v is not None for v in (args.finetune_learning_rate, args.finetune_every_steps, args.finetune_columns,
                                     args.finetune_steps, args.finetune_seed, args.finetune_after_days)):
        raise UserError("the --finetune-* options go with --finetune")
    if not args.no_check:
        _preflight(files, args.reference or out / "casestudy")
    result = couple_and_score(files, config, reference, out, converted=converted,
                              progress=args.progress)
    print("\n".join(summary_lines(result)))


def _preflight(files, folder) -> None:
    """fkb couple's pre-flight check on the reference's interface data: one line, or a refusal."""
    from coupler.preflight import preflight_check, reference_data_of
    data = reference_data_of(folder)
    if data is None:
        print(f"pre-flight check: skipped, no emulator-interface data beside {folder} "
              "(fkb check EMULATOR --data FILE.nc checks it on any)")
        return
    check = preflight_check(files, data)
    if not check.passed:
        first = check.absurd[0]
        raise UserError(f"pre-flight check failed on {data}: output {first.name} [{first.units}] {first.reason} "
                        f"({check.emulator}); `fkb check` shows every output, --no-check couples it anyway")
    print(f"pre-flight check: passed on {check.samples} columns of {data}")


def cmd_crash_report(args: argparse.Namespace) -> None:
    from coupler.crash_attribution import attribute_run, crash_record_path, format_crash_report
    record_path = crash_record_path(Path(args.run_dir) / f"{args.run}.nc")
    if args.replay or not record_path.is_file():
        print(f"replaying the run's last day into {record_path} ...", flush=True)
    record = attribute_run(args.run_dir, args.run, force=args.replay)
    print(format_crash_report(record))


def cmd_check(args: argparse.Namespace) -> None:
    from coupler.preflight import format_preflight, preflight_check, reference_data_of
    if (args.data is None) == (args.reference is None):
        raise UserError("give --data FILE.nc or --reference DIR (one of them)")
    data = args.data
    if data is None:
        data = reference_data_of(args.reference)
        if data is None:
            raise UserError(f"{args.reference}: no emulator-interface data (data/training.nc) here or beside it")
    for path in [*args.emulator, data]:
        if not Path(path).is_file():
            raise UserError(f"{path}: no such file")
    result = preflight_check(args.emulator, data, max_samples=args.samples)
    lines = format_preflight(result)
    if result.passed:
        print("\n".join(lines))
        return
    print("\n".join(lines[:-len(result.absurd)]))
    first = result.absurd[0]
    raise UserError(f"output {first.name} [{first.units}] {first.reason}"
                    + (f" (and {len(result.absurd) - 1} more)" if len(result.absurd) > 1 else ""))


def cmd_warming(args: argparse.Namespace) -> None:
    from experiments.casestudy import rewrite_report
    from experiments.warming import WarmingConfig, run_warming
    config = WarmingConfig(sst_offset=args.sst_offset, spinup_days=args.spinup_days, best=args.best,
                           n_perturbed=args.twins)
    print(f"wrote {run_warming(args.study, config, progress=args.progress)}")
    print(f"wrote {rewrite_report(args.study, progress=args.progress)}")


def cmd_report(args: argparse.Namespace) -> None:
    from coupler.results import collect_results, read_results, write_results
    from experiments.report import check_reportable, make_report
    from experiments.survival import with_survival
    folder = Path(args.sweep)
    if not folder.is_dir():
        raise UserError(f"{folder}: no such sweep folder")
    if (folder / "casestudy.toml").is_file() and (folder / "timings.json").is_file():
        from experiments.casestudy import rewrite_report
        print(f"wrote {rewrite_report(folder, args.out, progress=args.progress)}")
        return
    if (folder / "results").is_dir():
        results = with_survival(collect_results(folder))
        write_results(results, folder)
    else:
        results = read_results(folder)
    if results.sizes["emulator"] == 0:
        raise UserError(f"{folder}: no emulator results yet")
    check_reportable(results)      # a missing column, or fewer than 2 finished runs: one line
    reference = args.reference or (folder / "reference" / "reference.nc")
    if not Path(reference).is_file():
        reference = None
    path = make_report(results, args.out or folder, reference=reference, progress=args.progress)
    print(f"wrote {path}")


def cmd_casestudy(args: argparse.Namespace) -> None:
    from experiments.casestudy import run_casestudy, summary_lines
    _check_workers(args.workers)
    only = _indices(args.only) if args.only is not None else None
    if not 1 <= args.replicates <= MAX_REPLICATES:
        raise UserError(f"--replicates must be from 1 to {MAX_REPLICATES}, got {args.replicates}")
    if args.task_timeout is not None:
        from coupler.sweep import check_task_timeout
        check_task_timeout(args.task_timeout, "--task-timeout")
    try:
        result = run_casestudy(args.preset, args.out, scheduler=args.scheduler, n_workers=args.workers,
                               progress=args.progress, retry_failed=args.retry_failed,
                               only=only, replicates=args.replicates, task_timeout=args.task_timeout)
    except ValueError as error:
        if str(error).startswith("--only"):
            raise UserError(str(error)) from None
        raise
    print("\n".join(summary_lines(result)))
    if result.sweep.lost:
        raise UserError(f"{result.sweep.lost} emulators were lost with their workers; re-run the command to "
                        "retry them")


MAX_REPLICATES = 1000
"""More replicates of a sweep than any verdict needs is a typo."""


def _indices(text: str) -> list[int]:
    """``--only 3,7,12`` (ranges too: ``0-9,20``) as a list of indices."""
    indices: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        try:
            if "-" in part[1:]:
                first, last = (int(v) for v in part.split("-", 1))
                indices.extend(range(first, last + 1))
            else:
                indices.append(int(part))
        except ValueError:
            raise UserError(f"--only: {part!r} is not an emulator index or range (e.g. 3,7,10-12)") from None
    if not indices or min(indices) < 0:
        raise UserError(f"--only: no emulator indices in {text!r}")
    return indices


def add_casestudy_parsers(sub) -> None:
    """`fkb casestudy`, and its parts `fkb sweep`, `fkb score`, `fkb couple`, `fkb report`."""
    p = sub.add_parser("casestudy", help="the whole offline-versus-online case study from a preset",
                       description="Run the case study: a reference run of the toy GCM (spin-up, then training "
                                   "data and the checkpoint where the coupled runs start), the reference runs and "
                                   "their noise floor, N emulators drawn from the seeded space (one Dask task each: "
                                   "train, export, couple, score), OUT/results.nc/.csv, OUT/report.md and figures; "
                                   "prints a summary. Re-running the same command continues where it stopped. "
                                   "See docs/case-study.md.")
    p.add_argument("--preset", default="quick", metavar="NAME|FILE.toml",
                   help="quick (minutes, 2 cores), standard (96 emulators, 90-day runs, ~2 h on 2 cores), paper "
                        "(>= 100 emulators, a simulated year each) or a TOML file (default: %(default)s)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--scheduler", metavar="ADDRESS", help="address of an existing Dask scheduler (tcp://host:8786)")
    p.add_argument("--workers", type=int, metavar="N",
                   help="workers of the local cluster (default: the preset's, else one per core)")
    p.add_argument("--retry-failed", action="store_true", help="also re-run emulators whose task failed")
    p.add_argument("--only", metavar="I,J,...", help="run only these emulators' tasks (e.g. 3,7,10-12); the "
                   "results and report cover every emulator with a result")
    p.add_argument("--replicates", type=int, default=1, metavar="N",
                   help="run the sweep N times (sweep seeds seed .. seed + N - 1) on one reference stage and write "
                        "OUT/replicates.md, the verdict on the paper's claims (default: 1)")
    p.add_argument("--task-timeout", type=float, default=None, metavar="SECONDS",
                   help="stop an emulator's task after SECONDS and record it as failed (default: the preset's "
                        "[sweep] task_timeout_seconds, else 6 hours)")
    add_progress_option(p)
    p.set_defaults(func=cmd_casestudy)

    p = sub.add_parser("sweep", help="train, couple and score emulators drawn from a hyperparameter space, on Dask",
                       description="Run a sweep: one Dask task per emulator (train, export, couple, score). Results "
                                   "go to OUT/results/emulator_XXXX.json as each finishes; re-running the command "
                                   "skips finished emulators. Without --scheduler a local cluster of one "
                                   "single-threaded worker per core is started. See docs/case-study.md.")
    p.add_argument("--config", metavar="SWEEP.toml", help="sweep configuration ([sweep], [space], [training], [coupled])")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--scheduler", metavar="ADDRESS", help="address of an existing Dask scheduler (tcp://host:8786)")
    p.add_argument("--workers", type=int, metavar="N", help="workers of the local cluster (default: one per core)")
    p.add_argument("--n-emulators", type=int, metavar="N", help="number of emulators (overrides the configuration)")
    p.add_argument("--seed", type=int, help="seed of the hyperparameter draws (overrides the configuration)")
    p.add_argument("--data", metavar="DATA", help="training data, netCDF file or glob (overrides the configuration)")
    p.add_argument("--task", metavar="MODULE:FUNCTION",
                   help="task function (default coupler.sweep:default_task; coupler.sweep:offline_task trains and "
                        "scores offline only)")
    p.add_argument("--retry-failed", action="store_true", help="also re-run emulators whose task failed")
    p.add_argument("--task-timeout", type=float, default=None, metavar="SECONDS",
                   help="stop an emulator's task after SECONDS and record it as failed, 'timed out after N s' "
                        "(overrides [sweep] task_timeout_seconds; default 6 hours)")
    p.add_argument("--overwrite", action="store_true",
                   help="start over in a folder holding a sweep of another configuration (its results, emulators "
                        "and reference runs are removed)")
    add_progress_option(p)
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("score", help="stability and online error of a GCM run against a reference run",
                       description="Score a run: days survived, crash reason, and the pressure- and area-weighted "
                                   "RMSE of zonal-mean T [K] and q [g/kg] against the reference per window.")
    p.add_argument("run", help="netCDF file of the run")
    p.add_argument("--reference", required=True, help="netCDF file of the reference run")
    p.add_argument("--perturbed", nargs="+", metavar="TWIN.nc",
                   help="netCDF file(s) of the reference's perturbed twins (prints the noise floor: their mean and "
                        "range)")
    p.add_argument("--window-days", type=float, default=None,
                   help="scoring window [days] (default: the one in coupled.json beside the reference or the run, "
                        "as a sweep or fkb couple writes it; else 30)")
    p.add_argument("--days", type=float, default=None,
                   help="planned run length [days] (caps days survived; default: coupled.json's, if any)")
    p.add_argument("-o", "--output", metavar="SCORE.nc", help="write the scores as netCDF")
    p.set_defaults(func=cmd_score)

    p = sub.add_parser("couple", help="couple an emulator (or an ensemble) into the toy GCM and score the run",
                       description="Run the toy GCM with a network (several: their ensemble) in place of the "
                                   "reference cloud and radiation physics, from the initial state of a case study's "
                                   "reference run, and score it like the sweep does: days survived, crash reason, "
                                   "pressure- and area-weighted RMSE of zonal-mean T and q against the reference "
                                   "per window, and the noise floor. Keras .keras/.h5 and ONNX .onnx files are "
                                   "converted into "
                                   "OUT/emulators/ first. A network whose interface (names, units, sizes) differs "
                                   "from the GCM's is refused. Writes OUT/coupled.nc, OUT/score.nc, OUT/score.json.")
    p.add_argument("--emulator", required=True, nargs="+", metavar="PATH",
                   help="model file(s) (.fkb, original FKB .txt), Keras file(s) (.keras, .h5) or ONNX file(s) "
                        "(.onnx); several = ensemble")
    _add_interface_arguments(p)
    p.add_argument("--reference", metavar="DIR",
                   help="reference folder: a case-study or sweep output folder (its reference/) or the reference "
                        "folder itself (reference.nc, coupled.json, perturbed_K.nc)")
    p.add_argument("--preset", metavar="NAME|FILE.toml",
                   help="without --reference: make (or reuse) this case study's reference in OUT/casestudy "
                        "(default: quick)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--overwrite", action="store_true", help="replace the coupled run a folder holds already")
    p.add_argument("--days", type=float, default=None, help="run length [days] (default: the reference's)")
    p.add_argument("--window-days", type=float, default=None,
                   help="scoring window [days], a multiple of the output interval (default: the reference's)")
    p.add_argument("--emulator-precision", choices=("float32", "float64"), default=None,
                   help="arithmetic of the networks (default: float32)")
    p.add_argument("--limit-humidity", action="store_true",
                   help="emulator limiter: clip dq/dt at -q/dt (then fill negative humidity)")
    p.add_argument("--limit-precipitation", action="store_true", help="emulator limiter: clip precipitation at 0")
    p.add_argument("--guard", choices=("off", "clip", "fallback"), default=None,
                   help="out-of-distribution guard (needs the model file's input statistics): clip the inputs "
                        "into the widened training range, or run the reference physics on the flagged columns "
                        "(default off)")
    p.add_argument("--guard-margin", type=float, default=None, metavar="M",
                   help="guard: widen each input's training range by M times its width (default 0.1)")
    p.add_argument("--guard-factor", type=float, default=None, metavar="F",
                   help="guard: flag beyond F times the training's 99.9th-percentile distance (default 2)")
    p.add_argument("--network-weight", type=float, default=None, metavar="A",
                   help="partial coupling: outputs A * network + (1 - A) * reference physics (0 <= A <= 1)")
    p.add_argument("--weight-ramp", choices=("constant", "linear", "step"), default=None,
                   help="partial coupling: how the weight reaches A after the spin-up (with --ramp-days)")
    p.add_argument("--ramp-days", type=float, default=None, metavar="D", help="partial coupling: ramp length")
    p.add_argument("--spinup-days", type=float, default=None, metavar="N",
                   help="the reference physics alone for the first N days, then the network")
    p.add_argument("--reference-outputs", default=None, metavar="GROUPS",
                   help="partial coupling: comma-separated output groups taken from the reference physics "
                        "(TPHYSTND, PHQ, FSNT, FSNS, FLNT, FLNS, PRECT)")
    p.add_argument("--finetune", action="store_true",
                   help="online fine-tuning: every N steps the reference physics teaches the network on a seeded "
                        "subset of the columns (Adam, MSE); writes OUT/tuned.fkb (docs/gcm.md)")
    p.add_argument("--finetune-learning-rate", type=float, default=None, metavar="R",
                   help="fine-tuning: Adam's learning rate (default 1e-4)")
    p.add_argument("--finetune-every-steps", type=int, default=None, metavar="N",
                   help="fine-tuning: a round every N model steps (default 1)")
    p.add_argument("--finetune-columns", type=int, default=None, metavar="M",
                   help="fine-tuning: columns per round (default 64)")
    p.add_argument("--finetune-steps", type=int, default=None, metavar="K",
                   help="fine-tuning: optimizer steps per round (default 1)")
    p.add_argument("--finetune-seed", type=int, default=None, metavar="S",
                   help="fine-tuning: seed of the columns' choice (default 1)")
    p.add_argument("--finetune-after-days", type=float, default=None, metavar="D",
                   help="fine-tuning: the first round D days after the run's start (default: at once)")
    p.add_argument("--no-check", action="store_true",
                   help="couple even an emulator the pre-flight check finds absurd (see fkb check)")
    add_progress_option(p)
    p.set_defaults(func=cmd_couple)

    p = sub.add_parser("check", help="pre-flight check of an emulator on reference data, before coupling it",
                       description="Predict with the Fortran runtime on the emulator-interface data of a reference "
                                   "run (fkb data output, a case study's data/training.nc; the last columns) and "
                                   "report per output variable RMSE, bias, R2 and the emulator's range beside the "
                                   "reference physics'. Exit status 1, naming the output, when one is absurd: not "
                                   "finite, or beyond 10 times the reference's extreme. fkb couple runs the same "
                                   "check first.")
    p.add_argument("emulator", nargs="+", metavar="EMULATOR", help="model file(s); several: their mean")
    p.add_argument("--data", default=None, metavar="FILE.nc", help="emulator-interface data (fkb data output)")
    p.add_argument("--reference", default=None, metavar="DIR",
                   help="a case study's or fkb couple's reference folder (its data/training.nc)")
    p.add_argument("--samples", type=int, default=65536, metavar="N", help="columns checked, the last ones")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("crash-report", help="why a coupled run crashed: its last day replayed",
                       description="Tell one coupled run's crash: where and why it broke, whether the emulator's "
                                   "inputs on the crash columns had left its training distribution in the last "
                                   "day (and since when), and its outputs against the reference physics' on the "
                                   "same inputs. Reads the run's crash record (RUN_crash.nc, written by the "
                                   "coupled run) or makes it by replaying the run from its start (bit for bit). "
                                   "RUN_DIR is an fkb couple --out folder or a sweep's emulators/emulator_NNNN.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="folder of the coupled run (coupled.nc)")
    p.add_argument("--run", default="coupled", metavar="NAME",
                   help="the run NAME.nc in the folder (default: coupled; coupled_fallback for the guarded run)")
    p.add_argument("--replay", action="store_true", help="replay even if a crash record is there (and rewrite it)")
    p.set_defaults(func=cmd_crash_report)

    p = sub.add_parser("warming", help="a finished case study's best survivors coupled in a warmer world",
                       description="The uniform-warming experiment on a finished case study (fkb casestudy --out "
                                   "DIR): SST raised everywhere by --sst-offset, the world spun up on the reference "
                                   "physics from the study's control state, a warm reference run and twins, and the "
                                   "--best survivors (trained on the control climate) coupled there and scored. "
                                   "Writes DIR/warming/ and the report's section \"A warmer climate\" (fkb report "
                                   "DIR). Resumable.")
    p.add_argument("study", metavar="DIR", help="a finished case study's folder")
    p.add_argument("--sst-offset", type=float, default=4.0, metavar="K", help="SST offset [K] (default 4)")
    p.add_argument("--spinup-days", type=float, default=30.0, metavar="D",
                   help="spin-up of the warm world on the reference physics [days] (default 30)")
    p.add_argument("--best", type=int, default=5, metavar="N", help="the N best survivors are coupled (default 5)")
    p.add_argument("--twins", type=int, default=2, metavar="N", help="perturbed twins of the warm reference "
                   "(its noise floor; default 2)")
    add_progress_option(p)
    p.set_defaults(func=cmd_warming)

    p = sub.add_parser("report", help="results dataset, report.md and figures of a sweep",
                       description="Collect a sweep's results into results.nc/.csv and write report.md with the "
                                   "rank correlations, the optimizer table and the figures. On a case study's folder "
                                   "(fkb casestudy --out DIR) the report is written again with the current code, "
                                   "setup, stage times and world from the folder's own records; nothing re-runs.")
    p.add_argument("sweep", metavar="DIR", help="sweep output folder")
    p.add_argument("--reference", help="reference run for the bias maps (default: DIR/reference/reference.nc)")
    p.add_argument("--out", help="report folder (default: DIR)")
    add_progress_option(p)
    p.set_defaults(func=cmd_report)


# ------------------------------------------------------------------ parser
def _add_interface_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--interface", choices=("gcm",), default=None,
                   help="attach the toy GCM's input and output names and units to a model of your own "
                        "(docs/emulators.md, 'Bring your own model')")
    p.add_argument("--normalization", metavar="NORMALIZATION.nc", default=None,
                   help="with --interface gcm: the model works in the normalized units of this training set's "
                        "statistics (emulators' normalization.nc); without it, in physical units")


def build_parser() -> argparse.ArgumentParser:
    from emulators.provenance import package_version
    parser = argparse.ArgumentParser(
        prog="fkb", description="Fortran-Keras Bridge: run Keras networks in Fortran, and test them online in a toy GCM.")
    parser.add_argument("--version", action="version", version=f"fkb {package_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("convert", help="convert between Keras (.keras, .h5), ONNX (.onnx) and the model file "
                                       "(.fkb, FKB .txt)",
                       description="Convert a model. Direction from the extensions: .keras/.h5 or .onnx -> .fkb; "
                                   ".fkb or an original FKB .txt file -> .keras or .onnx; .keras/.h5 <-> .onnx. "
                                   "ONNX files come from PyTorch's torch.onnx.export (docs/pytorch.md).")
    p.add_argument("src", help="source model file")
    p.add_argument("dst", help="destination model file")
    _add_interface_arguments(p)
    p.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                   help="import MODULE first (a dotted module name or a .py file), so that the custom layers "
                        "it registers convert (docs/custom-layers.md); repeatable")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("info", help="print a model's layers, shapes, parameters, normalization and hash",
                       description="Describe a model file (.fkb, original FKB .txt), a Keras .keras/.h5 or an "
                                   "ONNX .onnx file (as the model file it converts to).")
    p.add_argument("model")
    p.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                   help="import MODULE first, for models with custom layers (as for convert); repeatable")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("predict", help="run the Fortran runtime on a .npy array (one model or an ensemble)",
                       description="Predict with the Fortran runtime: X.npy has shape (n_samples, n_inputs); "
                                   "Y.npy gets (n_samples, n_outputs) in X's precision. With several models, "
                                   "or a folder whose *.fkb files (in name order) are the members, the models "
                                   "form an ensemble: Y.npy gets the members' mean, --std their standard "
                                   "deviation (ddof=0), --members every member's output (these options, --noise-std and "
                                   "--seed also make one model an ensemble of one).")
    p.add_argument("models", nargs="+", metavar="MODEL",
                   help="model file (.fkb), original FKB text file, or a Keras or ONNX file (converted on the way); "
                        "several files, or one folder of .fkb files, for an ensemble")
    p.add_argument("-i", "--input", required=True, metavar="X.npy")
    p.add_argument("-o", "--output", required=True, metavar="Y.npy",
                   help="the prediction; for an ensemble the members' mean")
    p.add_argument("--std", metavar="STD.npy", help="ensemble: standard deviation over members, (n_samples, n_outputs)")
    p.add_argument("--members", metavar="MEMBERS.npy",
                   help="ensemble: every member's output, (n_members, n_samples, n_outputs)")
    p.add_argument("--noise-std", type=float, metavar="S",
                   help="ensemble: perturb each member's input with Gaussian noise of standard deviation S in "
                        "normalized input units (S times the model file's input scale); default 0")
    p.add_argument("--seed", type=int, metavar="N", help="ensemble: seed of the input noise (default 0)")
    p.add_argument("--guard", metavar="GUARD.npz",
                   help="also score every sample against the training inputs' statistics of the model file "
                        "(docs/model-file.md): largest |z|, distance, inputs outside the widened training range, "
                        "flag, as arrays of a .npz file")
    p.add_argument("--guard-margin", type=float, metavar="M",
                   help="widen each input's training range by M times its width (default 0.1)")
    p.add_argument("--guard-factor", type=float, metavar="F",
                   help="flag beyond F times the training's 99.9th-percentile distance (default 2)")
    p.set_defaults(func=cmd_predict)

    from emulators.train import add_train_arguments
    p = sub.add_parser("train", help="train one Keras emulator on a reference run and export it",
                       description="Train one emulator (hyperparameters from a TOML file and/or --set), "
                                   "score it offline and export the model file with its normalization.")
    add_train_arguments(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("demo", help="end-to-end bridge demo: train in Keras, convert, predict in Fortran, compare",
                       description="Train a small Keras model, convert it to a model file, predict with the Fortran "
                                   "runtime and show that both agree.")
    p.add_argument("--out", default="fkb-demo", help="output folder (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_demo)

    from gcm_toy.training_data import add_data_arguments
    p = sub.add_parser("data", help="emulator training data from a reference run of the toy GCM",
                       description="Run the toy GCM with the moist reference physics (after a spin-up) and write the "
                                   "emulator inputs and outputs of every column every H hours to DIR/training.nc "
                                   "(the names, units and dims of emulators.interface; `fkb train` reads it), and "
                                   "the run's final checkpoint DIR/checkpoint_dayNNNNN.bin for coupled runs.")
    add_data_arguments(p)
    p.set_defaults(func=cmd_data)

    add_gcm_parser(sub)
    add_casestudy_parsers(sub)
    return parser


def add_gcm_parser(sub) -> None:
    """The `fkb gcm` command group: run, presets, options, plot-held-suarez, plot-aquaplanet."""
    p = sub.add_parser("gcm", help="run the toy GCM and look at its output",
                       description="The toy climate model: a spectral dynamical core with column physics.")
    gcm = p.add_subparsers(dest="gcm_command", metavar="GCM_COMMAND")
    gcm.required = True

    p = gcm.add_parser("run", help="run the toy GCM from a preset or a checkpoint, writing netCDF",
                       description="Run the toy GCM. Writes OUT/gcm_dayNNNNN.nc (NNNNN = start day; instantaneous "
                                   "u, v, t, (q), ps and their means over each output interval, CF netCDF4, flushed "
                                   "record by record) and a final checkpoint OUT/checkpoint_dayMMMMM.bin (+ .toml). "
                                   "A run that fails the crash check (NaN/Inf, T outside 150-350 K, wind above "
                                   "250 m/s, ps outside 400-1100 hPa by default) is data: it stops, keeps its output, "
                                   "records why/when/where in the file's attributes, prints 'run stopped at day X: "
                                   "...' and exits 0 (1 with --fail-on-crash).")
    p.add_argument("--preset", default=None,
                   help="preset name (see `fkb gcm presets`) or TOML file (default: held-suarez; with --restart: "
                        "the checkpoint's configuration)")
    p.add_argument("--days", type=float, default=None, help="simulated days (default: the preset's `days`)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a configuration option (repeatable; see `fkb gcm options`)")
    p.add_argument("--output-interval-hours", type=float, default=None, metavar="H",
                   help="interval of the output records [h] (a multiple of the time step)")
    p.add_argument("--physics", default=None,
                   help="column physics: none (dynamics only), held-suarez, or the moist aquaplanet physics with "
                        "its cloud and radiation part from the reference (toy superparameterization), an emulator "
                        "or an ensemble of emulators (default: the preset's)")
    p.add_argument("--emulator", nargs="+", default=None, metavar="PATH",
                   help="model file(s) for --physics emulator (one) or ensemble (several); checked against the "
                        "emulator interface (names, units, sizes) before the first step")
    p.add_argument("--emulator-precision", choices=("float32", "float64"), default=None,
                   help="arithmetic of the networks (default: float32)")
    p.add_argument("--limit-humidity", action="store_true",
                   help="emulator limiter: clip dq/dt at -q/dt (then fill negative humidity)")
    p.add_argument("--limit-precipitation", action="store_true", help="emulator limiter: clip precipitation at 0")
    p.add_argument("--restart", default=None, metavar="CHECKPOINT",
                   help="continue from a checkpoint (bit for bit the uninterrupted run)")
    p.add_argument("--checkpoint-every", type=float, default=None, metavar="DAYS",
                   help="also write a checkpoint into DIR at every multiple of DAYS of model time")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.add_argument("--fail-on-crash", action="store_true", help="exit 1 if the run crashes")
    add_progress_option(p)
    p.set_defaults(func=cmd_gcm_run)

    p = gcm.add_parser("twin", help="twin experiment: growth of a small temperature perturbation",
                       description="Run a control and perturbed twins (seeded temperature noise of RMS --perturb "
                                   "K) from one state and write OUT/twin.nc: every --sample-hours the RMS "
                                   "difference of T, v and ps, and of T by latitude band and by total-wavenumber "
                                   "band; prints the growth table and the doubling time fitted to the exponential "
                                   "phase (docs/gcm-dynamics.md, 'Error growth').")
    p.add_argument("--preset", default=None,
                   help="preset name or TOML file (with --restart: default the checkpoint's configuration)")
    p.add_argument("--restart", default=None, metavar="CHECKPOINT", help="start from this spun-up state")
    p.add_argument("--spinup-days", type=float, default=0.0,
                   help="without --restart: run the preset this long before perturbing (default: %(default)s)")
    p.add_argument("--days", type=float, default=30.0, help="length of the twin runs (default: %(default)s)")
    p.add_argument("--perturb", type=float, default=0.01, metavar="KELVIN",
                   help="RMS amplitude of the temperature perturbation (default: %(default)s)")
    p.add_argument("--perturbation", choices=("grid", "synoptic"), default="grid",
                   help="noise at every grid point, or in total wavenumbers 6-15 only (default: %(default)s)")
    p.add_argument("--twins", type=int, default=3, help="number of perturbed twins (default: %(default)s)")
    p.add_argument("--seed", type=int, default=1, help="seed of the first twin's noise (default: %(default)s)")
    p.add_argument("--sample-hours", type=float, default=6.0,
                   help="interval between measurements (default: %(default)s)")
    p.add_argument("--reseed-physics", action="store_true",
                   help="twin k also draws the reference physics' subgrid random numbers with seed + k (a "
                        "different realization of the unresolved convection)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a configuration option (repeatable)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--overwrite", action="store_true", help="replace an existing OUT/twin.nc")
    add_progress_option(p)
    p.set_defaults(func=cmd_gcm_twin)

    p = gcm.add_parser("spin-up", help="make a shipped spun-up state from its recipe",
                       description="Run the recipe of a spun-up state (experiments/states/states.toml: a preset, "
                                   "its options and a number of days) and write experiments/states/NAME.bin and "
                                   "NAME.bin.toml, the state case studies start from (docs/gcm.md, 'Shipped "
                                   "spun-up states'). Without NAME: list the recipes.")
    p.add_argument("name", nargs="?", metavar="NAME", help="the state to make")
    p.add_argument("--days", type=float, default=None, help="run this long instead of the recipe's days (tests)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="write the state here instead of experiments/states/")
    p.add_argument("--list", action="store_true", help="list the recipes")
    add_progress_option(p)
    p.set_defaults(func=cmd_gcm_spin_up)

    p = gcm.add_parser("presets", help="list the presets", description="List the toy-GCM presets.")
    p.set_defaults(func=cmd_gcm_presets)

    p = gcm.add_parser("options", help="list the configuration options and a preset's values",
                       description="List every configuration option (for --set KEY=VALUE), its value in a "
                                   "preset and its meaning and unit.")
    p.add_argument("--preset", default="held-suarez", help="preset name or TOML file (default: %(default)s)")
    p.set_defaults(func=cmd_gcm_options)

    p = gcm.add_parser("plot-held-suarez", help="Held-Suarez figures and jet numbers from a run folder",
                       description="Latitude-pressure figures of the time- and zonal-mean u and T after a "
                                   "spin-up, and the jet maxima and tropical surface winds.")
    p.add_argument("run", metavar="DIR", help="run folder (gcm_day*.nc) or a netCDF file")
    p.add_argument("--spinup-days", type=float, default=200.0,
                   help="discard records before this model day (default: %(default)s)")
    p.add_argument("--out", default=None, help="figure folder (default: DIR)")
    p.set_defaults(func=cmd_gcm_plot_held_suarez)

    p = gcm.add_parser("plot-aquaplanet", help="aquaplanet climate figures and numbers from a run folder",
                       description="Zonal means after a spin-up: latitude-pressure figures of T, q, u and "
                                   "cloud, precipitation and evaporation and the TOA and surface fluxes against "
                                   "latitude; prints global precipitation and evaporation, the ITCZ, the "
                                   "subtropical minima, the jets and the global fluxes.")
    p.add_argument("run", metavar="DIR", help="run folder (gcm_day*.nc) or a netCDF file")
    p.add_argument("--spinup-days", type=float, default=40.0,
                   help="discard records before this model day (default: %(default)s)")
    p.add_argument("--out", default=None, help="figure folder (default: DIR)")
    p.add_argument("--no-plots", action="store_true", help="only print the numbers")
    p.set_defaults(func=cmd_gcm_plot_aquaplanet)


def _check_output_folder(args: argparse.Namespace) -> None:
    """Every command's ``--out`` names a folder: refuse, before anything is
    written, one that is a file (or anything else), --overwrite or not."""
    out = getattr(args, "out", None)
    if out is not None and os.path.lexists(out) and not os.path.isdir(out):
        raise UserError(f"{out}: exists and is not a folder (--out names an output folder); left as it was")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        _check_output_folder(args)
        args.func(args)
        sys.stdout.flush()   # a closed pipe shows here, not in the interpreter's last flush
    except KeyboardInterrupt:
        print(f"fkb {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:   # `fkb info x.fkb | head`: the reader has gone, quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except Exception as exc:
        if _is_user_error(exc):
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            print(f"fkb {args.command}: error: {message}", file=sys.stderr)
            return 1
        raise
    return 0
