"""What every invocation of a case study on its folder cost: ``OUT/invocations.json``.

A study at the paper's scale outlives a session: it is interrupted (a
killed process, a machine going down) and continued by running the same
command again. ``timings.json`` holds the stage times of the invocation that
finished the study; this log keeps all of them, so that the study's whole
cost can be told. Each invocation appends a record when it starts, updates
it after every stage and, from a background thread, every
:data:`HEARTBEAT_SECONDS` (so a killed invocation's time is known to within
that), and marks it finished at the end::

    {"invocations": [{"started": "2026-12-07T12:00:00+00:00", "code": {...},
                      "stages_seconds": {"reference_data": 70.1, ...},
                      "elapsed_seconds": 812.3, "finished": false}, ...]}

A killed invocation's time beyond its completed stages is work of the stage
it was in; :func:`total_seconds` counts it.
"""
from __future__ import annotations

import datetime
import json
import os
import threading
import time
from pathlib import Path
from typing import Any, Mapping

from emulators.atomic_files import write_text_replacing

__all__ = ["HEARTBEAT_SECONDS", "InvocationLog", "read_invocations", "total_seconds"]

HEARTBEAT_SECONDS = 30.0
FILE = "invocations.json"


def read_invocations(out_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The invocation records of the study in `out_dir` (empty before the
    first one, or for a folder of an older version that kept none)."""
    path = Path(out_dir) / FILE
    if not path.is_file():
        return []
    try:
        return list(json.loads(path.read_text())["invocations"])
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: not an invocation log ({exc})") from None


def total_seconds(invocations: list[Mapping[str, Any]]) -> float:
    """Wall time of all the invocations [s]."""
    return float(sum(record.get("elapsed_seconds", 0.0) for record in invocations))


class InvocationLog:
    """This invocation's record in ``OUT/invocations.json``: use as a context
    manager around the study; :meth:`stage` records a completed stage."""

    def __init__(self, out_dir: str | os.PathLike, code: Mapping[str, Any],
                 heartbeat_seconds: float = HEARTBEAT_SECONDS) -> None:
        self.path = Path(out_dir) / FILE
        self._records = read_invocations(out_dir)
        self._record: dict[str, Any] = {
            "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "code": dict(code), "stages_seconds": {}, "elapsed_seconds": 0.0, "finished": False}
        self._records.append(self._record)
        self._start = time.perf_counter()
        self._heartbeat = heartbeat_seconds
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="invocation-log", daemon=True)

    def __enter__(self) -> "InvocationLog":
        self._write()
        self._thread.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._stop.set()
        self._thread.join()
        self._record["finished"] = exc_type is None
        self._write()

    def stage(self, name: str, seconds: float) -> None:
        """Record the completed stage `name` that took `seconds`."""
        self._record["stages_seconds"][name] = float(seconds)
        self._write()

    @property
    def invocations(self) -> list[dict[str, Any]]:
        """Every invocation's record, this one last (a copy)."""
        with self._lock:
            return json.loads(json.dumps(self._records))

    def _beat(self) -> None:
        while not self._stop.wait(self._heartbeat):
            self._write()

    def _write(self) -> None:
        with self._lock:
            self._record["elapsed_seconds"] = time.perf_counter() - self._start
            text = json.dumps({"invocations": self._records}, indent=2) + "\n"
            write_text_replacing(self.path, text)
