"""The log of a case study's invocations (experiments/invocations.py): every
invocation's wall time is kept, an interrupted one's to within a heartbeat."""
import json
import time

import pytest

from experiments.invocations import InvocationLog, read_invocations, total_seconds


def test_invocations_accumulate_and_an_interrupted_one_is_marked(tmp_path):
    code = {"commit": "abc", "dirty": False}
    with InvocationLog(tmp_path, code) as first:
        first.stage("reference_data", 1.5)
    with pytest.raises(KeyboardInterrupt):
        with InvocationLog(tmp_path, code, heartbeat_seconds=0.05):
            time.sleep(0.3)
            raise KeyboardInterrupt
    records = read_invocations(tmp_path)
    assert [r["finished"] for r in records] == [True, False]
    assert records[0]["stages_seconds"] == {"reference_data": 1.5} and records[0]["code"] == code
    assert records[1]["stages_seconds"] == {} and records[1]["elapsed_seconds"] >= 0.3
    assert total_seconds(records) == pytest.approx(sum(r["elapsed_seconds"] for r in records))


def test_the_heartbeat_keeps_a_killed_invocations_time(tmp_path):
    log = InvocationLog(tmp_path, {}, heartbeat_seconds=0.05)
    log.__enter__()                       # as if the process were killed: no __exit__
    time.sleep(0.4)
    on_disk = json.loads((tmp_path / "invocations.json").read_text())["invocations"]
    log._stop.set()
    assert on_disk[-1]["finished"] is False and on_disk[-1]["elapsed_seconds"] >= 0.2


def test_a_damaged_log_is_one_line(tmp_path):
    (tmp_path / "invocations.json").write_text("{")
    with pytest.raises(ValueError, match="invocations.json: not an invocation log"):
        read_invocations(tmp_path)
    assert read_invocations(tmp_path / "none") == []
