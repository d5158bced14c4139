"""Measure what one emulator task of a case study costs on this machine.

    python -m experiments.cost --preset paper --emulator 10 --spinup-days 5 --data-days 10 \\
        --coupled-days 30 --out /tmp/cost

One task of the sweep is: train (the preset's epochs and patience on the
preset's training data), export the model file, couple it for the preset's
run length, score the run. A paper-sized task is too long to time whole on
a laptop, so this times a representative fraction with the real code and
scales it up, saying which numbers are measured and which extrapolated.
Times are CPU seconds of this process (``time.process_time``: the task's
own work, which on a loaded machine is what a free core would take; the
wall time is recorded too):

- reference data: the preset's reference run with a shorter spin-up and data
  period (``--spinup-days``, ``--data-days``): the reference physics' cost
  per simulated day, and training data of the preset's grid and interval;
- training: emulator ``--emulator`` of the preset's sweep (its drawn
  hyperparameters, the preset's epochs and patience) on those data. Time per
  epoch scales with the training samples, so the full-data epoch time is the
  measured one times the ratio of samples (same network, batch size and
  loader), and the full training that times the epochs it ran;
- coupled run: ``--coupled-days`` from the data's end with the exported
  model file; cost per simulated day times the preset's run length (a run
  that crashes costs only the days it lived: the extrapolation is the cost
  of a survivor);
- scoring: the online error of the coupled run against itself (the same
  arithmetic as against the reference run of the same length).

Writes ``OUT/cost.json`` and prints a table.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

from coupler.scoring import online_error
from emulators.atomic_files import write_text_replacing
from emulators.train import train_emulator

# Dask, the toy GCM (its Fortran extension) and TensorFlow are imported inside the functions that use
# them, so that importing this module does not load them (start-up time).

__all__ = ["measure_task_cost", "main"]


def measure_task_cost(preset: str, out_dir: str | os.PathLike, *, emulator: int = 0, spinup_days: float = 5.0,
                      data_days: float = 10.0, coupled_days: float = 30.0, log=print) -> dict[str, Any]:
    """Time the parts of emulator `emulator`'s task of case study `preset`
    at reduced size in `out_dir` and extrapolate to the preset's size.
    Returns (and writes to ``out_dir/cost.json``) the measured seconds, the
    scale factors and the extrapolated seconds of the full task."""
    from coupler.sweep import limit_threads, coupled_run
    from experiments.casestudy import load_casestudy, make_reference_data
    from gcm_toy import open_output

    threads = limit_threads()  # as in a sweep's task: one thread per TensorFlow pool
    config = load_casestudy(preset)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    full = config.reference
    reduced = dataclasses.replace(full, spinup_days=spinup_days, data_days=data_days)
    log(f"reference data: {reduced.preset}, {spinup_days:g}-day spin-up + {data_days:g} days sampled every "
        f"{reduced.interval_hours:g} h (the preset: {full.spinup_days:g} + {full.data_days:g})")
    cpu, wall = time.process_time(), time.perf_counter()
    data = make_reference_data(reduced, out / "data", progress=False)
    reference_cpu, reference_wall = time.process_time() - cpu, time.perf_counter() - wall
    sweep = config.sweep(data["training"], data["checkpoint"])
    hp = sweep.hyperparameters()[emulator]
    log(f"emulator {emulator}: depth {hp.depth}, width {hp.width}, batch {hp.batch_size}, {hp.optimizer}, "
        f"batch normalization {hp.batch_normalization}, dropout {hp.dropout:.3f}; "
        f"<= {hp.epochs} epochs (patience {hp.patience})")
    cpu, wall = time.process_time(), time.perf_counter()
    keras_trainer = hp.trainer == "keras"
    fit_cpu = _FitClock()
    result = train_emulator(None, data["training"], hyperparameters=hp, out_dir=out / "emulator", verbose=0,
                            callbacks=[fit_cpu.callback()] if keras_trainer else [])
    train_total, train_wall = time.process_time() - cpu, time.perf_counter() - wall
    epochs = len(result.history["loss"])
    fit_wall = float(sum(result.history["seconds"]))
    # the Fortran trainer takes no callbacks: the epochs' share of the training's wall time, of its CPU time
    fit_seconds = fit_cpu.seconds if keras_trainer else train_total * min(1.0, fit_wall / max(train_wall, 1e-9))
    n_train = json.loads((out / "emulator" / "training.json").read_text())["n_train_samples"]
    sample_ratio = full.data_days / data_days

    coupled = dataclasses.replace(sweep.coupled, days=coupled_days, window_days=min(sweep.coupled.window_days,
                                                                                     coupled_days))
    log(f"coupled run: {coupled_days:g} days at {coupled.preset} from day {data['coupled_start_day']:g}")
    cpu, wall = time.process_time(), time.perf_counter()
    run = coupled_run(result.files["model_file"], coupled, out / "coupled.nc")
    couple_seconds, couple_wall = time.process_time() - cpu, time.perf_counter() - wall
    days_run = float(run.stability["days_survived"])
    cpu = time.process_time()
    online_error(run.run, open_output(out / "coupled.nc"), coupled.window_days)
    score_seconds = time.process_time() - cpu

    per_day = couple_seconds / days_run if days_run > 0 else math.nan
    measured = {
        "reference_seconds": reference_cpu, "reference_days": spinup_days + data_days,
        "wall_seconds": {"reference": reference_wall, "train": train_wall, "fit": fit_wall, "coupled": couple_wall},
        "train_seconds": train_total, "fit_seconds": fit_seconds, "epochs": epochs, "n_train_samples": n_train,
        "export_and_evaluate_seconds": train_total - fit_seconds,
        "coupled_seconds": couple_seconds, "coupled_days": days_run, "run_status": run.run.attrs["run_status"],
        "score_seconds": score_seconds,
    }
    full_fit = fit_seconds * sample_ratio
    extrapolated = {
        "reference_seconds_per_day": reference_cpu / (spinup_days + data_days),
        "reference_data_seconds": reference_cpu / (spinup_days + data_days) * (full.spinup_days + full.data_days),
        "reference_runs_seconds": (1 + sweep.coupled.n_perturbed) * reference_cpu / (spinup_days + data_days)
        * sweep.coupled.days,
        "train_seconds": full_fit + (train_total - fit_seconds) * sample_ratio,
        "train_seconds_all_epochs": fit_seconds / epochs * hp.epochs * sample_ratio
        + (train_total - fit_seconds) * sample_ratio,
        "coupled_seconds_per_day": per_day,
        "coupled_seconds": per_day * sweep.coupled.days,
        "score_seconds": score_seconds * sweep.coupled.days / coupled_days,
    }
    extrapolated["task_seconds"] = (extrapolated["train_seconds"] + extrapolated["coupled_seconds"]
                                    + extrapolated["score_seconds"])
    extrapolated["task_seconds_all_epochs"] = (extrapolated["train_seconds_all_epochs"]
                                               + extrapolated["coupled_seconds"] + extrapolated["score_seconds"])
    info = {"preset": config.name, "emulator": emulator, "hyperparameters": hp.to_dict(), "threads": threads,
            "load_average": os.getloadavg(), "cpus": os.cpu_count(),
            "reduced": {"spinup_days": spinup_days, "data_days": data_days, "coupled_days": coupled_days},
            "full": {"spinup_days": full.spinup_days, "data_days": full.data_days,
                     "coupled_days": sweep.coupled.days, "n_emulators": sweep.n_emulators,
                     "n_perturbed": sweep.coupled.n_perturbed,
                     "sample_ratio": sample_ratio},
            "measured": measured, "extrapolated": extrapolated}
    write_text_replacing(out / "cost.json", json.dumps(info, indent=2, default=float) + "\n")
    for line in table_lines(info):
        log(line)
    return info


class _FitClock:
    """CPU seconds of this process spent inside Keras's ``fit`` epochs."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def callback(self):
        import keras

        clock = self

        class FitClock(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                self._start = time.process_time()

            def on_epoch_end(self, epoch, logs=None):
                clock.seconds += time.process_time() - self._start

        return FitClock()


def table_lines(info: dict[str, Any]) -> list[str]:
    """The measured and extrapolated costs as a Markdown table, then the
    sweep's wall time on clusters of several sizes."""
    m, e, f = info["measured"], info["extrapolated"], info["full"]
    n = f["n_emulators"]
    lines = ["| part | measured here (CPU s) | extrapolated to the preset |", "|---|---|---|",
             f"| reference physics | {m['reference_seconds']:.0f} s for {m['reference_days']:g} days "
             f"({e['reference_seconds_per_day']:.1f} s/day) | data {e['reference_data_seconds'] / 3600:.2f} h + "
             f"the reference and its {info['full']['n_perturbed']} twins {e['reference_runs_seconds'] / 3600:.2f} h "
             "(once) |",
             f"| training | {m['fit_seconds']:.0f} s, {m['epochs']} epochs of {m['n_train_samples']} samples | "
             f"x{f['sample_ratio']:g} samples: {e['train_seconds'] / 60:.1f} min ({e['train_seconds_all_epochs'] / 60:.1f} "
             "min if all epochs run) |",
             f"| export + offline metrics | {m['export_and_evaluate_seconds']:.1f} s | (in training) |",
             f"| coupled run | {m['coupled_seconds']:.0f} s for {m['coupled_days']:g} days ({m['run_status']}; "
             f"{e['coupled_seconds_per_day']:.2f} s/day) | {f['coupled_days']:g} days: "
             f"{e['coupled_seconds'] / 60:.1f} min |",
             f"| scoring | {m['score_seconds']:.2f} s | {e['score_seconds']:.1f} s |",
             f"| **one task** | | **{e['task_seconds'] / 60:.0f} min** ({e['task_seconds_all_epochs'] / 60:.0f} min "
             "with all epochs) |", "",
             f"| workers | sweep of {n} emulators (tasks x {e['task_seconds'] / 60:.0f} min, ceil({n}/N) rounds) |",
             "|---|---|"]
    for workers in (1, 2, 16, 64, 128):
        rounds = math.ceil(n / workers)
        lines.append(f"| {workers} | {rounds * e['task_seconds'] / 3600:.1f} h |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.cost", description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="paper", help="case-study preset (default: %(default)s)")
    parser.add_argument("--emulator", type=int, default=0, help="index of the emulator drawn (default: 0)")
    parser.add_argument("--spinup-days", type=float, default=5.0)
    parser.add_argument("--data-days", type=float, default=10.0)
    parser.add_argument("--coupled-days", type=float, default=30.0)
    parser.add_argument("--out", required=True, metavar="DIR")
    args = parser.parse_args(argv)
    measure_task_cost(args.preset, args.out, emulator=args.emulator, spinup_days=args.spinup_days,
                      data_days=args.data_days, coupled_days=args.coupled_days)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    sys.exit(main())
