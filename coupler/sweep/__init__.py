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

One module per concept, all re-exported here: :mod:`.space` (the search
space), :mod:`.tasks` (task functions and their running on a worker),
:mod:`.result_files`, :mod:`.runner` (Dask) and :mod:`.config` (the sweep as
TOML data); a coupled run and the reference are :mod:`coupler.runs`.
"""
from __future__ import annotations

# first: the environment of a worker, before anything loads OpenBLAS or TensorFlow
from coupler.worker_environment import WORKER_ENVIRONMENT  # noqa: F401, I001

from coupler.runs import (
    FINETUNE_KEYS,
    REFERENCE_CONFIG,
    CoupledRun,
    CoupledRunConfig,
    coupled_run,
    load_reference,
    prepare_reference,
    start_coupled_model,
    with_finetuning,
)
from coupler.sweep.config import SWEEP_IDENTITY, SweepConfig, claim_sweep_folder, run_sweep_from_config
from coupler.sweep.result_files import finished_indices, result_path
from coupler.sweep.runner import ClusterError, SweepSummary, run_sweep
from coupler.sweep.space import SearchSpace
from coupler.sweep.tasks import (
    TIMEOUT_MARKER,
    EmulatorTask,
    TaskFailed,
    check_task_timeout,
    default_task,
    execute_task,
    limit_threads,
    offline_task,
    resolve_task,
)

__all__ = ["SearchSpace", "CoupledRunConfig", "CoupledRun", "EmulatorTask", "SweepConfig", "SweepSummary", "TaskFailed",
           "coupled_run", "start_coupled_model", "prepare_reference", "load_reference", "REFERENCE_CONFIG", "offline_task", "default_task", "execute_task", "run_sweep",
           "run_sweep_from_config", "result_path", "finished_indices", "resolve_task", "ClusterError", "FINETUNE_KEYS",
           "SWEEP_IDENTITY", "TIMEOUT_MARKER", "check_task_timeout", "claim_sweep_folder", "limit_threads",
           "with_finetuning"]
