"""The unit of work of a sweep, one emulator: :class:`EmulatorTask`, the task
functions :func:`offline_task` (train + offline metrics) and
:func:`default_task` (that, then couple and score), and
:func:`execute_task`, which runs one on a worker with its time limit and
records an exception as ``status = "failed"``."""
from __future__ import annotations

import dataclasses
import datetime as _dt
import importlib
import json
import math
import os
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import dask
import numpy as np

from coupler.budgets import budget_record
from coupler.crash_attribution import crash_record_path, read_crash_summary
from coupler.records import EmulatorResult
from coupler.runs import CoupledRunConfig, coupled_run, with_finetuning
from coupler.scoring import finetune_summary, guard_summary, online_error
from coupler.sweep.result_files import read_result
from emulators.architectures import Hyperparameters
from emulators.atomic_files import write_text_replacing
from emulators.train import train_emulator

# The toy GCM (its Fortran extension), TensorFlow and Dask are imported inside the functions that use
# them, so that importing this module does not load them (start-up time).


DEFAULT_TASK_TIMEOUT = 6 * 3600.0
"""Seconds one emulator's task may run (train, export, couple, score) before
it is stopped and recorded as failed: generous, so that no preset's task
comes near it (the paper preset's take ~30 min on a busy core)."""


def check_task_timeout(value: Any, name: str = "task timeout") -> float:
    """A per-task timeout: a finite number of seconds > 0 (ValueError naming `name`)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive, finite number of seconds, got {value!r}")
    return float(value)


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
    record["online"] = scored_run(model_file, task.coupled, run_path, task.reference).to_record()
    record["artifacts"]["run"] = os.fspath(run_path)
    if task.coupled.fallback_run:
        guarded = dataclasses.replace(task.coupled, overrides={**dict(task.coupled.overrides), "guard": "fallback"})
        path = Path(task.work_dir) / "coupled_fallback.nc"
        record["online_fallback"] = scored_run(model_file, guarded, path, task.reference).to_record()
        record["artifacts"]["run_fallback"] = os.fspath(path)
    if task.coupled.finetune_run:
        tuned = with_finetuning(task.coupled, task.coupled.finetune_options)
        path, tuned_path = Path(task.work_dir) / "coupled_finetune.nc", Path(task.work_dir) / "tuned.fkb"
        record["online_finetune"] = scored_run(model_file, tuned, path, task.reference,
                                               tuned=tuned_path).to_record()
        record["artifacts"]["run_finetune"] = os.fspath(path)
        record["artifacts"]["tuned_model"] = os.fspath(tuned_path)
    return record


def scored_run(model_file, config: CoupledRunConfig, run_path: Path, reference,
               tuned: Path | None = None, progress: bool | None = False) -> EmulatorResult:
    """Couple `model_file` with `config` into `run_path` and score it
    against `reference`: stability, online errors, cost, the guard's
    fractions when it has one, and what fine-tuning did when it runs
    (the tuned network written to `tuned`). `progress`: the run's progress
    bar (a sweep's tasks show none)."""
    from gcm_toy import open_output

    clock = time.perf_counter()
    coupled = coupled_run(model_file, config, run_path, crash_record=crash_record_path(run_path), tuned=tuned,
                          progress=progress)
    seconds = time.perf_counter() - clock
    with open_output(reference) as ref:
        error = online_error(coupled.run, ref, config.window_days)
    guard = guard_summary(coupled.run)
    tuning = finetune_summary(coupled.run)
    budgets = budget_record(coupled.run)
    coupled.run.close()
    return EmulatorResult.scored(coupled.stability, error, seconds, budgets=budgets, guard=guard, finetune=tuning,
                                 crash=read_crash_summary(crash_record_path(run_path)))


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
