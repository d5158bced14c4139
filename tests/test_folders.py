"""Nothing lost, nothing stale (issue 20 B): result folders carry an identity
(coupler/folder_identity.py) and a lock (coupler/folder_lock.py), every
value is checked before the first stage, and a sweep's task has a timeout.
Each attack of the issue is one case here; docs/case-study.md ("Result
folders") has the table of what was tried and how it is handled."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from coupler.folder_identity import IDENTITY_FILE, FolderConflict, claim_folder
from coupler.folder_lock import LOCK_FILE, FolderBusy, folder_lock
from fkb_cli import main

from conftest import ROOT, TINY_CASESTUDY as TINY


def run_cli(argv, capsys):
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def one_line_error(status, err, command, message):
    assert status == 1, err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"fkb {command}: error: ") and message in err, err


# ---------------------------------------------------------------- identity
def test_a_folder_is_claimed_once_and_refuses_another_configuration(tmp_path):
    first = claim_folder(tmp_path, "sweep", {"space": {"width": [4, 8]}, "seed": 0}, products=("results",))
    identity = json.loads((tmp_path / IDENTITY_FILE).read_text())
    assert first.new and identity["kind"] == "sweep" and identity["sha256"] == first.sha256
    assert identity["code"][0]["package"] and "first_used" in identity["code"][0]
    again = claim_folder(tmp_path, "sweep", {"seed": 0, "space": {"width": [4, 8]}}, products=("results",))
    assert not again.new and again.sha256 == first.sha256 and again.note == ""      # key order is no difference
    with pytest.raises(FolderConflict, match=r"holds a sweep of another configuration \(space\.width: \[4, 8\] "
                                             r"there, \[4, 9\] here\); choose another --out, or pass --overwrite"):
        claim_folder(tmp_path, "sweep", {"space": {"width": [4, 9]}, "seed": 0}, products=("results",))


def test_starting_over_removes_the_old_results_only(tmp_path):
    claim_folder(tmp_path, "sweep", {"seed": 0}, products=("results", "results.nc"))
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "emulator_0000.json").write_text("{}")
    (tmp_path / "results.nc").write_text("x")
    (tmp_path / "notes.txt").write_text("mine")
    claimed = claim_folder(tmp_path, "sweep", {"seed": 1}, products=("results", "results.nc"), start_over=True)
    assert claimed.new and not (tmp_path / "results").exists() and not (tmp_path / "results.nc").exists()
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert json.loads((tmp_path / IDENTITY_FILE).read_text())["configuration"] == {"seed": 1}


@pytest.mark.parametrize("marker, kind", [("casestudy.toml", "casestudy"), ("score.json", "couple"),
                                          ("sweep.json", "sweep")])
def test_a_folder_of_another_kind_is_refused_even_when_starting_over(tmp_path, marker, kind):
    (tmp_path / marker).write_text("")                 # a folder made before identity.json
    other = "sweep" if kind != "sweep" else "couple"
    names = {"sweep": "sweep", "couple": "coupled run", "casestudy": "case study"}
    for start_over in (False, True):
        with pytest.raises(FolderConflict, match=f"holds a {names[kind]}, not a {names[other]}; choose another --out$"):
            claim_folder(tmp_path, other, {"a": 1}, start_over=start_over)
    assert (tmp_path / marker).exists() and not (tmp_path / IDENTITY_FILE).exists()


def test_results_of_an_unknown_configuration_are_not_taken_over(tmp_path):
    (tmp_path / "coupled.nc").write_text("a run of another network, interrupted")
    with pytest.raises(FolderConflict, match=r"holds results \(coupled.nc\) of an unknown configuration \(no identity.json\); choose"):
        claim_folder(tmp_path, "couple", {"a": 1}, products=("coupled.nc", "score.json"))


def test_a_new_code_version_is_recorded_and_noted_not_refused(tmp_path, monkeypatch):
    """A study resumed after a commit goes on (the configuration decides);
    both code versions are kept and the re-run says so."""
    import coupler.folder_identity as identity

    monkeypatch.setattr(identity, "code_version", lambda: {"package": "0.1.0", "commit": "a" * 40, "dirty": False})
    claim_folder(tmp_path, "sweep", {"seed": 0})
    monkeypatch.setattr(identity, "code_version", lambda: {"package": "0.1.0", "commit": "b" * 40, "dirty": True})
    claimed = claim_folder(tmp_path, "sweep", {"seed": 0})
    assert "was started by fkb 0.1.0 at commit aaaaaaaaaaaa; continuing with fkb 0.1.0 at commit bbbbbbbbbbbb " \
           "with changes not committed" in claimed.note
    assert [c["commit"][0] for c in json.loads((tmp_path / IDENTITY_FILE).read_text())["code"]] == ["a", "b"]
    assert claim_folder(tmp_path, "sweep", {"seed": 0}).note == ""          # the same code again: nothing new


def test_the_sweep_and_the_case_study_share_the_identity(tmp_path):
    """One mechanism: a sweep's folder identity, and a case study's folder of
    before identity.json (casestudy.toml only) is recognised as one."""
    from coupler.sweep import SearchSpace, SweepConfig, claim_sweep_folder
    from experiments.casestudy import _claim_folder, load_casestudy

    config = SweepConfig(n_emulators=2, data="x.nc", task="coupler.sweep:offline_task")
    assert claim_sweep_folder(config, tmp_path / "sw").new
    assert not claim_sweep_folder(SweepConfig(n_emulators=9, data="x.nc", task="coupler.sweep:offline_task",
                                              task_timeout_seconds=5.0), tmp_path / "sw").new   # extension, timeout
    with pytest.raises(FolderConflict, match=r"space\.width: \[100, 300\] there, \[4, 9\] here"):
        claim_sweep_folder(SweepConfig(n_emulators=2, data="x.nc", task="coupler.sweep:offline_task",
                                       space=SearchSpace(width=(4, 9))), tmp_path / "sw")
    preset = tmp_path / "tiny.toml"
    preset.write_text(TINY)
    study = load_casestudy(preset)
    _claim_folder(study, tmp_path / "cs", log=lambda line: None)
    (tmp_path / "cs" / IDENTITY_FILE).unlink()                   # as made before identity.json
    _claim_folder(study, tmp_path / "cs", log=lambda line: None)
    other = tmp_path / "other.toml"
    other.write_text(TINY.replace("epochs = 1", "epochs = 2"))
    with pytest.raises(FolderConflict, match=r"training\.epochs: 1 there, 2 here\); choose another --out$"):
        _claim_folder(load_casestudy(other), tmp_path / "cs", log=lambda line: None)
    (tmp_path / "longer").mkdir()
    timeout = tmp_path / "longer" / "tiny.toml"                  # waiting longer is the same study
    timeout.write_text(TINY.replace("seed = 4", "seed = 4\ntask_timeout_seconds = 60.0"))
    _claim_folder(load_casestudy(timeout), tmp_path / "cs", log=lambda line: None)


# -------------------------------------------------------------------- lock
HOLD = """
import sys, time
sys.path.insert(0, {root!r})
from coupler.folder_lock import folder_lock
with folder_lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(120)
"""


@pytest.fixture
def held(tmp_path):
    """A folder whose lock another process holds."""
    folder = tmp_path / "busy"
    process = subprocess.Popen([sys.executable, "-c", HOLD.format(root=str(ROOT)), str(folder)],
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "held"
    yield folder, process
    process.kill()
    process.wait()


def test_a_second_writer_is_refused_in_one_line_naming_the_holder(held):
    folder, process = held
    with pytest.raises(FolderBusy) as info:
        with folder_lock(folder):
            pass
    message = str(info.value)
    assert message.startswith(f"{folder} is in use by another fkb process (pid {process.pid}, ")
    assert len(message.splitlines()) == 1
    process.kill()
    process.wait()
    with folder_lock(folder):          # the kernel released it with the holder: no stale lock
        with folder_lock(folder):      # and it is re-entrant within a process
            pass
    assert (folder / LOCK_FILE).read_text().startswith(f"pid {os.getpid()}, ")


def test_two_couples_into_one_folder_the_second_is_refused(held, tiny_casestudy_reference, tmp_path, capsys):
    folder, process = held
    network = tmp_path / "net.fkb"
    network.write_text("not read: the folder is refused first")
    status, out, err = run_cli(["couple", "--emulator", network, "--reference", tiny_casestudy_reference["out"],
                                "--out", folder], capsys)
    one_line_error(status, err, "couple", f"{folder} is in use by another fkb process (pid {process.pid}")
    assert sorted(p.name for p in folder.iterdir()) == [LOCK_FILE]


def test_a_sweep_and_a_case_study_in_one_folder_the_second_is_refused(held, tmp_path, capsys):
    folder, process = held
    data = tmp_path / "data.nc"
    data.write_text("")
    status, out, err = run_cli(["sweep", "--out", folder, "--task", "coupler.sweep:offline_task", "--data", data,
                                "--n-emulators", "1", "--no-progress"], capsys)
    one_line_error(status, err, "sweep", f"(pid {process.pid}")
    preset = tmp_path / "tiny.toml"
    preset.write_text(TINY)
    status, out, err = run_cli(["casestudy", "--preset", preset, "--out", folder, "--no-progress"], capsys)
    one_line_error(status, err, "casestudy", f"(pid {process.pid}")


# ------------------------------------------------- couple and sweep folders
def test_couple_refuses_the_folder_of_a_case_study_or_an_interrupted_other_run(tiny_casestudy_reference, tmp_path,
                                                                               capsys):
    network = tmp_path / "net.fkb"
    network.write_text("x")
    reference = tiny_casestudy_reference["out"]
    before = sorted(p.name for p in reference.iterdir())
    status, out, err = run_cli(["couple", "--emulator", network, "--reference", reference, "--out", reference,
                                "--overwrite"], capsys)
    one_line_error(status, err, "couple", f"{reference} holds a case study, not a coupled run; choose another --out")
    assert sorted(p.name for p in reference.iterdir()) == before
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "coupled.nc").write_text("an interrupted run of another network")
    status, out, err = run_cli(["couple", "--emulator", network, "--reference", reference, "--out", partial], capsys)
    one_line_error(status, err, "couple", "holds results (coupled.nc) of an unknown configuration (no "
                                          "identity.json); choose another --out, or pass --overwrite")


def test_a_refused_couple_leaves_a_new_folder_as_it_was(tiny_casestudy_reference, tmp_path, capsys):
    """The claim of a new folder is undone when the run is refused later (here
    the network file is not a model file): the next attempt, with another
    network, is not refused as 'another configuration'."""
    network = tmp_path / "net.fkb"
    network.write_text("not a model file")
    out = tmp_path / "out"
    status, _, err = run_cli(["couple", "--emulator", network, "--reference", tiny_casestudy_reference["out"],
                              "--out", out, "--no-check"], capsys)
    assert status == 1 and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in out.iterdir()) == [LOCK_FILE]


def test_a_sweep_refuses_a_case_studys_folder(tiny_casestudy_reference, tmp_path, capsys):
    data = tmp_path / "data.nc"
    data.write_text("")
    out = tiny_casestudy_reference["out"]
    status, _, err = run_cli(["sweep", "--out", out, "--task", "coupler.sweep:offline_task", "--data", data,
                              "--n-emulators", "1", "--no-progress", "--overwrite"], capsys)
    one_line_error(status, err, "sweep", f"{out} holds a case study, not a sweep; choose another --out")


# ------------------------------------------------ validation before work
@pytest.mark.parametrize("old, new, message", [
    ("\ndays = 2.0", "\ndays = 1.7", "[coupled] days': 1.7 days is not a positive multiple of the time step"),
    ("\ndays = 2.0", "\ndays = inf", "coupled run: days must be a finite number, got inf"),
    ("window_days = 1.0", "window_days = 0.5", "window_days (0.5) is not a multiple of the output interval (24 h)"),
    ("data_days = 2.0", "data_days = 1.01", "[reference] data_days': 1.01 days is not a positive multiple"),
    ("spinup_days = 1.0", "spinup_days = 0.01", "[reference] spinup_days': 0.01 days is not a positive multiple"),
    ("interval_hours = 6.0", "interval_hours = 0.1", "[reference] interval_hours'"),
    ("interval_hours = 6.0", "interval_hours = inf", "[reference] interval_hours must be a finite number"),
    ("interval_hours = 6.0", "interval_hours = 6.0\noverrides = {sbm_tau = nan}",
     "option 'sbm_tau': expected a finite number, got nan"),
    ("interval_hours = 6.0", "interval_hours = 6.0\noverrides = {sbm_tau = -5.0}", "sbm_tau must be > 0"),
    ("interval_hours = 6.0", "interval_hours = 6.0\noverrides = {seed = 12345678901234567890}",
     "option 'seed': 12345678901234567890 is out of range"),
    ("interval_hours = 6.0", "interval_hours = 6.0\noverrides = {nlon = 1000000000}",
     "GiB of memory (estimate), more than 50% of the"),
    ("interval_hours = 6.0", "interval_hours = 6.0\noverrides = {n_subcolumns = 10000000}",
     "option 'n_subcolumns': must be from 1 to 1024, got 10000000"),
    ("fallback_run = true", "fallback_run = true\noverrides = {wind_max = inf}",
     "option 'wind_max': expected a finite number, got inf"),
    ("fallback_run = true", "fallback_run = true\noverrides = {sbm_tau = -5.0}", "sbm_tau must be > 0"),
    ("fallback_run = true", "fallback_run = true\nperturbation_kelvin = nan",
     "perturbation_kelvin must be a finite number, got nan"),
    ("n_perturbed = 2", "n_perturbed = 100000000", "n_perturbed must be an integer from 0 to 1000"),
    ("n_emulators = 3", "n_emulators = 100000000000", "n_emulators must be an integer from 1 to 1000000"),
    ("n_emulators = 3", "n_emulators = -2", "n_emulators must be an integer from 1 to 1000000, got -2"),
    ("n_emulators = 3", "n_emulators = 2.5", "n_emulators must be an integer from 1 to 1000000, got 2.5"),
    ("seed = 4", "seed = 12345678901234567890", "[sweep] seed must be an integer from 0 to"),
    ("seed = 4", "seed = 4\ntask_timeout_seconds = 0", "[sweep] task_timeout_seconds must be a positive, finite"),
    ("seed = 4", "seed = 4\ntask_timeout_seconds = nan", "[sweep] task_timeout_seconds must be a positive, finite"),
    ("learning_rate = [1e-4, 1e-2]", "learning_rate = [nan, 1e-2]", "search space learning_rate"),
    ("epochs = 1", "epochs = -1", "hyperparameter epochs=-1 must be at least 1"),
    ("epochs = 1", "epochs = 1\nbatch_size = 0", "hyperparameter batch_size=0 must be at least 1"),
    ("epochs = 1", "epochs = 1\nwidth = 0", "hyperparameter width=0 must be at least 1"),
    ("workers = 2", "workers = 100000", "[casestudy] workers must be a positive integer (at most 4096)"),
])
def test_every_preset_value_is_checked_before_the_first_stage(old, new, message, tmp_path, capsys):
    preset = tmp_path / "bad.toml"
    text = TINY.replace(old, new, 1)
    assert text != TINY
    preset.write_text(text)
    started = time.perf_counter()
    status, _, err = run_cli(["casestudy", "--preset", preset, "--out", tmp_path / "out", "--no-progress"], capsys)
    one_line_error(status, err, "casestudy", message)
    assert not (tmp_path / "out").exists()            # refused before the folder is touched
    assert time.perf_counter() - started < 60


@pytest.mark.parametrize("argv, message", [
    (["gcm", "run", "--preset", "held-suarez-t10", "--set", "nlon=1000000000"], "GiB of memory (estimate)"),
    (["gcm", "run", "--preset", "held-suarez-t10", "--set", "nlev=100000"], "GiB of memory (estimate)"),
    (["gcm", "run", "--preset", "held-suarez-t10", "--set", "truncation=5000"], "GiB of memory (estimate)"),
    (["gcm", "run", "--preset", "aquaplanet-t10", "--set", "n_subcolumns=10000000"], "must be from 1 to 1024"),
    (["gcm", "run", "--preset", "aquaplanet-t10", "--set", "sbm_tau=nan"], "expected a finite number, got nan"),
    (["gcm", "run", "--preset", "held-suarez-t10", "--set", "wind_max=inf"], "expected a finite number, got inf"),
    (["gcm", "run", "--preset", "held-suarez-t10", "--set", "nlon=2147483648"], "2147483648 is out of range"),
    (["gcm", "run", "--preset", "held-suarez-t10", "--set", "seed=12345678901234567890"], "is out of range"),
    (["gcm", "twin", "--preset", "held-suarez-t10", "--seed", "123456789012345678901"],
     "seed must be an integer from 0 to 2147483644"),
    (["gcm", "twin", "--preset", "held-suarez-t10", "--twins", "100000"], "from 1 to 1000 twins"),
    (["data", "--preset", "aquaplanet-t10", "--days", "1", "--set", "n_subcolumns=10000000"], "from 1 to 1024"),
    (["sweep", "--seed", "123456789012345678901234", "--n-emulators", "1"], "[sweep] seed must be an integer"),
    (["sweep", "--task-timeout", "0", "--n-emulators", "1"], "task_timeout_seconds must be a positive, finite"),
    (["sweep", "--task-timeout", "inf", "--n-emulators", "1"], "task_timeout_seconds must be a positive, finite"),
    (["sweep", "--workers", "100000"], "--workers must be from 1 to 4096"),
    (["casestudy", "--task-timeout", "-1"], "--task-timeout must be a positive, finite number"),
    (["casestudy", "--replicates", "100000"], "--replicates must be from 1 to 1000"),
])
def test_every_option_is_checked_before_any_work(argv, message, tmp_path, capsys):
    started = time.perf_counter()
    status, _, err = run_cli(argv + ["--out", tmp_path / "out"], capsys)
    one_line_error(status, err, argv[0], message)
    assert not (tmp_path / "out" / "results").exists() and not list(tmp_path.rglob("*.nc"))
    assert time.perf_counter() - started < 60


def test_an_emulator_the_physics_would_ignore_is_refused(tmp_path, capsys):
    network = tmp_path / "good.fkb"
    network.write_text("")
    status, _, err = run_cli(["gcm", "run", "--preset", "aquaplanet-t10", "--physics", "reference", "--emulator",
                              network, "--days", "1", "--out", tmp_path / "out"], capsys)
    one_line_error(status, err, "gcm", "physics 'reference' runs no network")


def test_score_refuses_a_negative_length(tmp_path, capsys):
    for name in ("run.nc", "ref.nc"):
        (tmp_path / name).write_text("")
    status, _, err = run_cli(["score", tmp_path / "run.nc", "--reference", tmp_path / "ref.nc", "--days", "-3"], capsys)
    one_line_error(status, err, "score", "--days must be a positive number of days, got -3")


# ------------------------------------------------------- sweep task timeout
def _hangs(task):
    time.sleep(600)


def _quick(task):
    return {"offline": {"validation_mse": 0.5}}


def _hangs_first(task):
    return _hangs(task) if task.index == 0 else _quick(task)


def test_a_task_over_its_timeout_is_recorded_as_failed_and_the_sweep_goes_on(tmp_path):
    """Emulator 0 hangs (in a sleep the task cannot leave by itself); after
    its timeout it is a failed result, "timed out after N s", its worker is
    replaced, and emulator 1 runs on."""
    from coupler.sweep import EmulatorTask, TIMEOUT_MARKER, finished_indices, result_path, run_sweep
    from emulators.architectures import Hyperparameters

    tasks = [EmulatorTask(index=i, hyperparameters=Hyperparameters(), work_dir=os.fspath(tmp_path / f"e{i}"))
             for i in range(2)]
    started = time.monotonic()
    summary = run_sweep(tasks, tmp_path / "out", _hangs_first, n_workers=1, progress=False, task_timeout=3)
    assert time.monotonic() - started < 180
    assert (summary.done, summary.failed, summary.lost) == (1, 1, 0)
    hung = json.loads(result_path(tmp_path / "out" / "results", 0).read_text())
    assert hung["status"] == "failed" and hung["error"] == "timed out after 3 s" and hung["timed_out"]
    assert json.loads(result_path(tmp_path / "out" / "results", 1).read_text())["status"] == "ok"
    assert "timed out after 3 s" in (tmp_path / "e0" / "attempts.log").read_text()
    assert finished_indices(tmp_path / "out" / "results", retry_failed=True) == {1}
    marker = json.loads((tmp_path / "e0" / TIMEOUT_MARKER).read_text())
    assert marker["seconds"] == 3


def test_a_timeout_marker_of_an_earlier_sweep_does_not_fail_a_retry(tmp_path):
    """--retry-failed runs a timed-out task again (with the new sweep's own timeout)."""
    from coupler.sweep import TIMEOUT_MARKER, EmulatorTask, execute_task
    from emulators.architectures import Hyperparameters

    task = EmulatorTask(index=0, hyperparameters=Hyperparameters(), work_dir=os.fspath(tmp_path / "e0"))
    Path(task.work_dir).mkdir()
    (Path(task.work_dir) / TIMEOUT_MARKER).write_text(json.dumps({"token": "old", "seconds": 3}))
    assert execute_task(_quick, task, 60, "old")["error"] == "timed out after 3 s"
    assert execute_task(_quick, task, 60, "new")["status"] == "ok"
    assert not (Path(task.work_dir) / TIMEOUT_MARKER).exists()
