"""One JSON file per emulator, ``OUT/results/emulator_XXXX.json``, written
atomically; a written result (ok or failed) counts as finished."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

from coupler.records import json_safe
from emulators.atomic_files import replacing


RESULT_STATUSES = ("ok", "failed")
"""Statuses of a written result; either counts as finished."""

# ----------------------------------------------------------- result files
def result_path(results_dir: str | os.PathLike, index: int) -> Path:
    return Path(results_dir) / f"emulator_{index:04d}.json"


def write_result(results_dir: str | os.PathLike, record: Mapping[str, Any]) -> Path:
    """Write a result record atomically (temporary file + os.replace)."""
    path = result_path(results_dir, int(record["index"]))
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path, fsync=True) as tmp:
        tmp.write_text(json.dumps(json_safe(dict(record)), indent=2) + "\n")
    return path


def read_result(path: str | os.PathLike) -> dict[str, Any] | None:
    """A result record, or None if the file is missing or unreadable."""
    try:
        with open(path) as fh:
            return json.load(fh)
    except (OSError, json.JSONDecodeError):
        return None


def finished_indices(results_dir: str | os.PathLike, retry_failed: bool = False) -> set[int]:
    """Emulators with a written result (status ok, or failed unless `retry_failed`)."""
    done = set()
    for path in Path(results_dir).glob("emulator_*.json"):
        record = read_result(path)
        if record is None or record.get("status") not in RESULT_STATUSES:
            continue
        if retry_failed and record["status"] == "failed":
            continue
        done.add(int(record["index"]))
    return done
