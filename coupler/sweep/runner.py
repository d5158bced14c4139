"""Run a sweep's tasks on Dask: one task per emulator on a LocalCluster sized
to the machine or on an existing cluster; each result written by the client
when its task finishes, finished emulators skipped on a re-run."""
from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from coupler.folder_lock import folder_lock
from coupler.sweep.result_files import finished_indices, write_result
from coupler.sweep.tasks import (
    DEFAULT_TASK_TIMEOUT,
    EmulatorTask,
    _timed_out_record,
    _timeout_marker,
    check_task_timeout,
    default_task,
    execute_task,
    resolve_task,
)
from coupler.worker_environment import WORKER_ENVIRONMENT
from emulators.progress import progress_bar

# Dask and tqdm are imported inside the functions that use them, so that importing this module does
# not load them (start-up time).


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
