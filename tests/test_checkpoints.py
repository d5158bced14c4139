"""Checkpoints of the toy GCM and the files of restarted runs: a checkpoint
carries the SHA-256 of its content and a damaged one is refused in one line
before the state is touched; it is written whole or not at all; a run's
output names the checkpoint it restarted from; and the files of a killed
run and of its restart open as the one uninterrupted series, no record
twice (docs/gcm.md, "Restarts")."""
from __future__ import annotations

import numpy as np
import pytest

from fkb_cli import main
from gcm_toy import GCMError, Model, upgrade_checkpoint
from gcm_toy import _gcm_core
from gcm_toy.output import open_output

T10 = "held-suarez-t10"


def test_a_damaged_checkpoint_is_refused_in_one_line_and_the_state_kept(tmp_path, capsys):
    model = Model(T10)
    model.advance(3)
    path = model.save_checkpoint(tmp_path / "c.bin")
    data = path.read_bytes()
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x04
    cases = {"flipped.bin": (bytes(flipped), "content hash mismatch (corrupt or altered)"),
             "truncated.bin": (data[:-8], "bytes where this model's checkpoint has"),
             "longer.bin": (data + b"\0", "bytes where this model's checkpoint has")}
    fresh = Model(T10)
    before = fresh.fields()["t"].copy()
    for name, (content, problem) in cases.items():
        (tmp_path / name).write_bytes(content)
        (tmp_path / f"{name}.toml").write_bytes((tmp_path / "c.bin.toml").read_bytes())
        with pytest.raises(GCMError) as info:
            fresh.load_checkpoint(tmp_path / name)
        message = str(info.value)
        assert "\n" not in message and str(tmp_path / name) in message and problem in message, message
        assert np.array_equal(fresh.fields()["t"], before) and fresh.step_count == 0
        assert main(["gcm", "run", "--restart", str(tmp_path / name), "--days", "1", "--out",
                     str(tmp_path / "out")]) == 1
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and problem in err, err
    fresh.load_checkpoint(path)                                  # the intact one
    assert fresh.step_count == 3 and np.array_equal(fresh.fields()["t"], model.fields()["t"])


def test_a_checkpoint_is_written_whole_or_not_at_all(tmp_path):
    model = Model(T10)
    path = model.save_checkpoint(tmp_path / "c.bin")
    before = path.read_bytes()
    model.advance(2)
    (tmp_path / "c.bin.partial").mkdir()         # the Fortran writer's temporary cannot be made
    status, message = _gcm_core.gcm_write_checkpoint(model._handle, str(path))
    assert status != 0 and b"c.bin.partial" in bytes(message)
    assert path.read_bytes() == before
    (tmp_path / "c.bin.partial").rmdir()
    model.save_checkpoint(path)                  # through emulators.atomic_files: no temporary left
    assert path.read_bytes() != before and sorted(p.name for p in tmp_path.iterdir()) == ["c.bin", "c.bin.toml"]


def test_a_version_1_checkpoint_is_refused_until_upgraded(tmp_path):
    model = Model(T10)
    model.advance(2)
    version2 = model.save_checkpoint(tmp_path / "c.bin").read_bytes()
    old = tmp_path / "old.bin"                   # what the writer wrote before the hash: no hash
    old.write_bytes(version2[:8] + np.int32(1).tobytes() + version2[76:])
    with pytest.raises(GCMError, match="format version 1, which has no content hash"):
        Model(T10).load_checkpoint(old)
    upgrade_checkpoint(old)
    assert old.read_bytes() == version2
    again = Model(T10)
    again.load_checkpoint(old)
    assert np.array_equal(again.fields()["t"], model.fields()["t"])


def test_a_checkpoint_configuration_changed_or_swapped_is_refused_in_one_line(tmp_path, capsys):
    model = Model(T10)
    model.advance(2)
    path = model.save_checkpoint(tmp_path / "c.bin")
    model.advance(1)
    other = model.save_checkpoint(tmp_path / "other.bin")
    sidecar = tmp_path / "c.bin.toml"
    text = sidecar.read_text()
    assert text.startswith("# sha256 ")
    assert Model.from_checkpoint(path).step_count == 2
    edited = text.replace("seed = ", "seed = 1", 1)              # one changed option
    cases = {"edited": (edited, "does not match checkpoint c.bin (edited, corrupt, or another checkpoint's)"),
             "swapped": ((tmp_path / "other.bin.toml").read_text(), "does not match checkpoint c.bin"),
             "unhashed": (text.split("\n", 1)[1], "carries no hash (written before configurations were hashed)")}
    for name, (content, problem) in cases.items():
        sidecar.write_text(content)
        with pytest.raises(ValueError, match=problem.replace("(", r"\(").replace(")", r"\)")):
            Model.from_checkpoint(path)
        assert main(["gcm", "run", "--restart", str(path), "--days", "1", "--out", str(tmp_path / name)]) == 1
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and problem in err and "c.bin.toml" in err, err
        assert not (tmp_path / name).exists()
    upgrade_checkpoint(path)                                       # the unhashed file, accepted as it is
    assert sidecar.read_text() == text and Model.from_checkpoint(path).step_count == 2
    assert Model.from_checkpoint(other).step_count == 3


def test_a_killed_run_and_its_restart_open_as_the_uninterrupted_run(tmp_path, capsys):
    whole = Model(T10).run(4, out=tmp_path / "whole.nc", progress=False)
    # killed after day 3, its last checkpoint from day 2: its records of days 2-3 are done again
    Model(T10).run(3, out=tmp_path / "killed.nc", checkpoint_every_days=2, progress=False)
    restart = tmp_path / "checkpoint_day00002.bin"
    assert main(["gcm", "run", "--restart", str(restart), "--days", "2", "--out", str(tmp_path)]) == 0
    restarted = tmp_path / "gcm_day00002.nc"
    with open_output(restarted) as ds:
        assert ds.attrs["restart_from"] == str(restart)
    with open_output([restarted, tmp_path / "killed.nc"]) as ds:   # in either order
        assert np.array_equal(ds.time.values, whole.time.values)
        for name in ("time_bnds", "u", "t", "ps", "t_mean", "ps_mean"):
            assert np.array_equal(ds[name].values, whole[name].values), name
        assert float(ds.t_mean.mean()) == float(whole.t_mean.mean())
    with pytest.raises(ValueError, match="both start at day 0"):
        open_output([tmp_path / "killed.nc", tmp_path / "whole.nc"])
