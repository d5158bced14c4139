"""Sweeps on a real Dask cluster: a `dask scheduler` and two `dask worker`
processes on 127.0.0.1, each task training a tiny emulator for one epoch on a
tiny synthetic dataset and scoring it offline."""
import dataclasses
import json
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from coupler.results import collect_results
from coupler.sweep import (CoupledRunConfig, SearchSpace, SweepConfig, finished_indices, result_path, run_sweep)
from emulators.architectures import OPTIMIZERS, Hyperparameters

ROOT = Path(__file__).resolve().parent.parent
DASK = str(Path(sys.executable).with_name("dask"))
START_TIMEOUT = 60.0  # s for the scheduler and workers to come up


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DaskProcesses:
    """A scheduler and worker processes (no nanny: killing one kills the worker)."""

    def __init__(self, tmp: Path, n_workers: int = 2):
        self.env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", TF_NUM_INTRAOP_THREADS="1",
                        TF_NUM_INTEROP_THREADS="1", OMP_NUM_THREADS="1",
                        PYTHONPATH=os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
        self.logs = tmp / "dask-logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.address = f"tcp://127.0.0.1:{free_port()}"
        self.scheduler = self._start("scheduler", [DASK, "scheduler", "--host", "127.0.0.1", "--port",
                                                   self.address.rsplit(":", 1)[1], "--no-dashboard"])
        self.workers: dict[str, subprocess.Popen] = {}
        for i in range(n_workers):
            port = free_port()
            self.workers[f"tcp://127.0.0.1:{port}"] = self._start(
                f"worker{i}", [DASK, "worker", self.address, "--host", "127.0.0.1", "--worker-port", str(port),
                               "--nthreads", "1", "--no-nanny", "--no-dashboard", "--memory-limit", "0",
                               "--name", f"worker{i}"])
        from distributed import Client
        with Client(self.address, timeout=f"{START_TIMEOUT}s") as client:
            client.wait_for_workers(n_workers, timeout=START_TIMEOUT)

    def _start(self, name: str, command: list[str]) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "w")
        return subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)

    def kill_worker(self, address: str) -> None:
        os.kill(self.workers[address].pid, signal.SIGKILL)

    def close(self) -> None:
        for process in self.workers.values():  # they hold nothing worth a graceful exit
            if process.poll() is None:
                process.kill()
        if self.scheduler.poll() is None:
            self.scheduler.terminate()
        for process in [*self.workers.values(), self.scheduler]:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture(scope="module")
def training_data(tmp_path_factory):
    from emulators.synthetic import write_synthetic_dataset
    return write_synthetic_dataset(tmp_path_factory.mktemp("data") / "tiny.nc", n_time=12, nlev=4, nlat=4, nlon=8)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    processes = DaskProcesses(tmp_path_factory.mktemp("cluster"))
    yield processes
    processes.close()


def tiny_sweep(data, n: int, seed: int = 0) -> SweepConfig:
    return SweepConfig(n_emulators=n, seed=seed, data=os.fspath(data), task="coupler.sweep:offline_task",
                       space=SearchSpace(depth=(1, 2), width=(4, 8), batch_size=(32, 64)),
                       training={"epochs": 1, "patience": 0})


def read(out: Path, index: int) -> dict:
    return json.loads(result_path(out / "results", index).read_text())


def attempts(out: Path, index: int) -> list[str]:
    log = out / "emulators" / f"emulator_{index:04d}" / "attempts.log"
    return log.read_text().splitlines() if log.is_file() else []


# ------------------------------------------------------------ search space
def test_search_space_is_seeded_and_extends():
    space = SearchSpace()
    ten = space.sample(10, seed=3)
    assert space.sample(4, seed=3) == ten[:4]
    assert space.sample(6, seed=3, start=4) == ten[4:]
    assert space.sample(10, seed=4) != ten
    assert len({hp.seed for hp in ten}) == 10


def test_search_space_draws_within_the_papers_ranges():
    space = SearchSpace()
    draws = space.sample(400, seed=0, base=Hyperparameters(epochs=7))
    assert all(4 <= h.depth <= 8 and 100 <= h.width <= 300 for h in draws)
    assert all(0 <= h.leaky_relu_slope <= 0.4 and 0 <= h.dropout <= 0.25 for h in draws)
    assert all(1e-5 <= h.learning_rate <= 1e-1 and h.batch_size in (256, 512, 1024, 2048) for h in draws)
    assert all(h.epochs == 7 and h.activation == "leaky_relu" for h in draws)
    assert {h.optimizer for h in draws} == set(OPTIMIZERS)
    assert {h.batch_normalization for h in draws} == {False, True}
    # log-uniform: each decade of 1e-5..1e-1 holds about a quarter of the draws
    decades = np.histogram(np.log10([h.learning_rate for h in draws]), bins=[-5, -4, -3, -2, -1])[0]
    assert decades.min() > 60 and decades.max() < 140


def test_water_conservation_is_off_by_default_and_shifts_no_other_draw():
    # draws 0 and 1 of seed 0 as the space drew them before the hyperparameter existed
    before = [{"depth": 8, "width": 228, "leaky_relu_slope": 0.10791468550554813, "dropout": 0.010243380984048672,
               "batch_normalization": False, "optimizer": "adam", "learning_rate": 0.017909396718478326,
               "batch_size": 1024, "seed": 1960127675},
              {"depth": 6, "width": 278, "leaky_relu_slope": 0.22285522008249053, "dropout": 0.20022702172299303,
               "batch_normalization": False, "optimizer": "nesterov", "learning_rate": 1.7157762050674928e-05,
               "batch_size": 256, "seed": 507666627}]
    default = SearchSpace().sample(200, seed=0)
    assert [{k: h.to_dict()[k] for k in before[0]} for h in default[:2]] == before
    assert not any(h.water_conservation for h in default)
    # with both choices: the same networks, some of them with the layer
    both = SearchSpace(water_conservation=(False, True)).sample(200, seed=0)
    assert [dataclasses.replace(h, water_conservation=False) for h in both] == default
    assert 60 < sum(h.water_conservation for h in both) < 140
    assert all(h.water_conservation for h in SearchSpace(water_conservation=(True,)).sample(5, seed=0))
    with pytest.raises(ValueError, match="water_conservation: choices are true or false"):
        SearchSpace.from_dict({"water_conservation": ["yes"]})


def test_a_sweep_folder_of_before_the_hyperparameter_is_the_same_sweep(tmp_path):
    from coupler.folder_identity import IDENTITY_FILE
    from coupler.sweep import SWEEP_IDENTITY, claim_sweep_folder

    config = SweepConfig(n_emulators=3, seed=1, data="data.nc")
    claim_sweep_folder(config, tmp_path)
    identity = json.loads((tmp_path / IDENTITY_FILE).read_text())["configuration"]
    del identity["space"]["water_conservation"]            # as written before it existed, in the older file
    (tmp_path / IDENTITY_FILE).unlink()
    (tmp_path / SWEEP_IDENTITY).write_text(json.dumps(identity))
    assert not claim_sweep_folder(config, tmp_path).new     # the same sweep, and now with an identity
    assert (tmp_path / IDENTITY_FILE).is_file()
    with pytest.raises(ValueError, match=r"space\.water_conservation"):
        claim_sweep_folder(dataclasses.replace(config, space=SearchSpace(water_conservation=(False, True))), tmp_path)


def test_search_space_refuses_an_unknown_optimizer():
    with pytest.raises(ValueError, match="unknown 'lbfgs'"):
        SearchSpace(optimizer=("adam", "lbfgs"))


def test_sweep_configuration_from_toml(tmp_path):
    (tmp_path / "sweep.toml").write_text(
        '[sweep]\nn_emulators = 3\nseed = 9\ndata = "data.nc"\n[space]\ndepth = [2, 3]\noptimizer = ["sgd"]\n'
        '[training]\nepochs = 2\n[coupled]\ndays = 60\nwindow_days = 30\n')
    config = SweepConfig.from_toml(tmp_path / "sweep.toml")
    assert config.data == os.fspath(tmp_path / "data.nc")
    assert config.coupled == CoupledRunConfig(days=60.0, window_days=30.0)
    hps = config.hyperparameters()
    assert [h.optimizer for h in hps] == ["sgd"] * 3 and all(2 <= h.depth <= 3 and h.epochs == 2 for h in hps)
    tasks = config.tasks(tmp_path / "out")
    assert [t.index for t in tasks] == [0, 1, 2]
    assert tasks[1].work_dir == os.fspath((tmp_path / "out" / "emulators" / "emulator_0001").resolve())


# ------------------------------------------------------- on a Dask cluster
def test_sweep_runs_one_task_per_emulator_on_the_cluster(cluster, training_data, tmp_path):
    config = tiny_sweep(training_data, 3)
    summary = run_sweep(config.tasks(tmp_path), tmp_path, config.task, scheduler=cluster.address, progress=False)
    assert (summary.done, summary.failed, summary.lost, summary.skipped) == (3, 0, 0, 0)
    records = [read(tmp_path, i) for i in range(3)]
    assert [r["status"] for r in records] == ["ok"] * 3
    assert {r["worker"] for r in records} <= set(cluster.workers)
    assert len({r["worker"] for r in records}) == 2  # both workers took tasks
    for r, hp in zip(records, config.hyperparameters()):
        assert r["hyperparameters"] == hp.to_dict()
        assert r["offline"]["epochs"] == 1
        assert Path(r["artifacts"]["model_file"]).is_file()
    results = collect_results(tmp_path)
    assert results["emulator"].values.tolist() == [0, 1, 2]
    for r in records:
        value = r["offline"]["validation_mse"]
        stored = float(results["offline_mse"].sel(emulator=r["index"]))
        assert (math.isnan(stored) if value is None else stored == pytest.approx(value))
    assert not [p.name for p in (tmp_path / "results").iterdir() if ".tmp" in p.name]


def test_failing_task_is_recorded_not_fatal(cluster, training_data, tmp_path):
    config = tiny_sweep(tmp_path / "missing.nc", 2)
    summary = run_sweep(config.tasks(tmp_path), tmp_path, config.task, scheduler=cluster.address, progress=False)
    assert (summary.done, summary.failed) == (0, 2)
    record = read(tmp_path, 0)
    assert record["status"] == "failed"
    assert "missing.nc" in record["error"] and "Traceback" in record["traceback"]
    assert finished_indices(tmp_path / "results") == {0, 1}
    assert finished_indices(tmp_path / "results", retry_failed=True) == set()


def test_rerun_computes_only_the_missing_result(cluster, training_data, tmp_path):
    config = tiny_sweep(training_data, 2, seed=1)
    run_sweep(config.tasks(tmp_path), tmp_path, config.task, scheduler=cluster.address, progress=False)
    stamps = {i: result_path(tmp_path / "results", i).stat().st_mtime_ns for i in range(2)}
    result_path(tmp_path / "results", 1).unlink()
    summary = run_sweep(config.tasks(tmp_path), tmp_path, config.task, scheduler=cluster.address, progress=False)
    assert (summary.skipped, summary.done) == (1, 1)
    assert [len(attempts(tmp_path, i)) for i in range(2)] == [1, 2]
    assert result_path(tmp_path / "results", 0).stat().st_mtime_ns == stamps[0]
    assert result_path(tmp_path / "results", 1).stat().st_mtime_ns > stamps[1]
    assert read(tmp_path, 1)["status"] == "ok"


def test_a_draw_trains_to_the_same_bits_in_any_worker_and_in_process(cluster, training_data, tmp_path):
    """Same inputs and seed, same bits: one draw trained twice in each of two
    worker processes (the second while the worker's event loop sizes the
    first's result, which draws from Python's global random generator) and
    once in this process gives byte-identical model files. Before the fix
    (Keras's unseeded initializers drew their seeds from that shared
    generator) about one worker run in three differed."""
    from distributed import Client

    from coupler.sweep import EmulatorTask, execute_task, offline_task

    hp = Hyperparameters(depth=2, width=16, dropout=0.1, epochs=3, patience=3, batch_size=32, seed=7,
                         learning_rate=1e-3)

    def task(name: str) -> EmulatorTask:
        return EmulatorTask(index=0, hyperparameters=hp, work_dir=os.fspath(tmp_path / name),
                            data=os.fspath(training_data))

    addresses = sorted(cluster.workers)
    with Client(cluster.address, timeout="30s") as client:
        futures = [client.submit(execute_task, offline_task, task(f"w{i}"), workers=[addresses[i % 2]],
                                 allow_other_workers=False, pure=False) for i in range(4)]
        records = client.gather(futures)
    local = offline_task(task("local"))
    assert [r["status"] for r in records] == ["ok"] * 4, [r.get("error") for r in records]
    assert [r["worker"] for r in records] == [addresses[i % 2] for i in range(4)]
    assert all(r["threads"]["tf_intra_op_threads"] == 1 for r in records)
    expected = Path(local["artifacts"]["model_file"]).read_bytes()
    for r in records:
        assert Path(r["artifacts"]["model_file"]).read_bytes() == expected, r["worker"]
        assert r["offline"]["validation_mse"] == local["offline"]["validation_mse"]
        assert r["offline"]["best_val_loss"] == local["offline"]["best_val_loss"]


def test_task_of_a_killed_worker_is_rerun_and_counted_once(cluster, training_data, tmp_path):
    """Runs last: it kills one of the module's two workers."""
    n = 4
    config = tiny_sweep(training_data, n, seed=2)
    outcome = {}
    thread = threading.Thread(target=lambda: outcome.update(summary=run_sweep(
        config.tasks(tmp_path), tmp_path, config.task, scheduler=cluster.address, progress=False)))
    thread.start()
    killed = None
    deadline = time.monotonic() + 60
    while killed is None and time.monotonic() < deadline and thread.is_alive():
        for i in range(n):  # a task started (logged) but without a result yet
            lines = attempts(tmp_path, i)
            if lines and not result_path(tmp_path / "results", i).exists():
                address = lines[0].split()[1]
                cluster.kill_worker(address)
                killed = (i, address)
                break
        time.sleep(0.02)
    thread.join(timeout=120)
    assert killed is not None and not thread.is_alive()
    summary = outcome["summary"]
    assert (summary.done, summary.failed, summary.lost) == (n, 0, 0)
    files = sorted(p.name for p in (tmp_path / "results").iterdir())
    assert files == [f"emulator_{i:04d}.json" for i in range(n)]  # each once, no temporary files
    assert [read(tmp_path, i)["index"] for i in range(n)] == list(range(n))
    index, address = killed
    assert len(attempts(tmp_path, index)) == 2              # started on the killed worker, then again
    assert read(tmp_path, index)["worker"] != address       # finished on the other one


def _fails_after_offline(task):
    from coupler.sweep import TaskFailed
    raise TaskFailed("coupling: ValueError: no emulator mode", {"offline": {"validation_mse": 0.25}})


def test_failed_record_keeps_the_part_done_before_the_failure(tmp_path):
    from coupler.sweep import EmulatorTask, execute_task
    task = EmulatorTask(index=7, hyperparameters=Hyperparameters(), work_dir=os.fspath(tmp_path / "e7"))
    record = execute_task(_fails_after_offline, task)
    assert (record["status"], record["error"]) == ("failed", "coupling: ValueError: no emulator mode")
    assert record["offline"] == {"validation_mse": 0.25} and record["worker"] == "local"
    assert (tmp_path / "e7" / "attempts.log").read_text().count("\n") == 1


def _kill_the_worker_for_good(task):
    """Marks the cluster's workers to die at start-up, then kills its own."""
    Path(task.work_dir).with_name("workers-die").touch()
    os._exit(1)


def test_local_cluster_whose_workers_die_at_start_up_stops_the_sweep(tmp_path, monkeypatch):
    """Dask's nanny restarts a dead worker for ever; when every restart dies
    at start-up the sweep must fail with a message, not wait for ever."""
    import coupler.sweep.runner as runner
    from distributed import LocalCluster
    from coupler.sweep import ClusterError, EmulatorTask
    preload = tmp_path / "die_if_marked.py"
    preload.write_text(f"import os\nif os.path.exists({str(tmp_path / 'workers-die')!r}):\n    os._exit(3)\n")
    monkeypatch.setattr(runner, "_local_cluster", lambda n: LocalCluster(
        n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None, preload=[str(preload)]))
    task = EmulatorTask(index=0, hyperparameters=Hyperparameters(), work_dir=os.fspath(tmp_path / "e0"))
    started = time.monotonic()
    with pytest.raises(ClusterError, match="no live worker for 5 s"):
        run_sweep([task], tmp_path / "out", _kill_the_worker_for_good, progress=False, worker_timeout=5)
    assert time.monotonic() - started < 90


def test_a_sweep_folder_refuses_another_configuration(training_data, tmp_path):
    """Results of another space, training or coupled run are never mixed in;
    more emulators extend the sweep."""
    import dataclasses

    from coupler.sweep import claim_sweep_folder
    config = tiny_sweep(training_data, 2)
    claim_sweep_folder(config, tmp_path)
    claim_sweep_folder(config, tmp_path)
    claim_sweep_folder(dataclasses.replace(config, n_emulators=5), tmp_path)
    other = dataclasses.replace(config, training={**config.training, "epochs": 3})
    with pytest.raises(ValueError, match=r"holds a sweep of another configuration \(training\.epochs: 1 there, 3 here\)"):
        claim_sweep_folder(other, tmp_path)
    with pytest.raises(ValueError, match=r"space\.width"):
        claim_sweep_folder(dataclasses.replace(config, space=SearchSpace(width=(4, 9))), tmp_path)
