"""Coupled runs and case studies: ``fkb sweep``, ``score``, ``couple``,
``check``, ``crash-report``, ``warming``, ``report`` and ``casestudy``."""
from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path

from emulators.progress import add_progress_option
from fkb_cli.errors import UserError
from fkb_cli.models import _add_interface_arguments

# Each command imports what it runs when it runs, so that `fkb --help` and a user's mistake load no
# TensorFlow, Dask or Fortran extension.


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
