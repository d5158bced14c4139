"""One writer per result folder: an advisory lock held for a run's duration.

``fkb sweep``, ``fkb couple`` and ``fkb casestudy`` write into their
``--out`` folder for minutes to days. Two of them in one folder at once
would each read the other's half-written state (which emulators are
finished, whether a coupled run exists) and replace each other's files:
both exit 0 and one result is silently gone. So each holds
:func:`folder_lock` on the folder while it works; a second one is refused
at once, in one line naming the folder and the holder::

    with folder_lock("runs/quick"):
        ...                                   # the run
    # FolderBusy: runs/quick is in use by another fkb process (pid 4242,
    # `fkb sweep --out runs/quick`, since 2026-12-07T14:31:02+00:00); ...

The lock is ``fcntl.flock`` on ``OUT/.fkb.lock`` (created on first use and
left in place: an unlocked file is no claim). The kernel releases it when
the holder exits in any way (killed, out of memory), so a stale lock file
never blocks a re-run. It is advisory: it stops fkb processes, not other
programs. On NFS, Linux emulates flock with POSIX byte-range locks, which
the NFS server arbitrates across machines (NFSv4, or NFSv3 with lockd).

Within one process the lock is re-entrant: a case study holds its folder
and the sweep it runs in the same folder takes the lock again without
blocking itself (``flock`` on a second open file would refuse it).

The holder's pid, command and start time are written *into* the lock file
(in place, not through :mod:`emulators.atomic_files`: replacing the file
would give a new file that the lock does not cover); they are only for the
refusal's message.
"""
from __future__ import annotations

import datetime
import fcntl
import os
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

__all__ = ["LOCK_FILE", "FolderBusy", "folder_lock", "holder"]

LOCK_FILE = ".fkb.lock"
"""The lock file in a locked folder."""

_held: dict[str, list] = {}          # real path of the folder -> [file descriptor, depth]
_guard = threading.Lock()


class FolderBusy(OSError):
    """Another process holds the folder's lock (a user error: one line, exit 1)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


def holder(folder: str | os.PathLike) -> str:
    """What the lock file of `folder` says about its last holder ('' if nothing)."""
    try:
        return (Path(folder) / LOCK_FILE).read_text(errors="replace").strip()
    except OSError:
        return ""


def _command() -> str:
    argv = [os.path.basename(sys.argv[0])] + sys.argv[1:] if sys.argv and sys.argv[0] else ["python"]
    if argv[0] in ("__main__.py", "-m"):
        argv[0] = "fkb"
    text = " ".join(argv)
    return text if len(text) <= 200 else text[:197] + "..."


@contextmanager
def folder_lock(folder: str | os.PathLike) -> Iterator[Path]:
    """Hold the lock of `folder` (created if missing) for the block; raise
    :class:`FolderBusy` at once if another process holds it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    key = os.path.realpath(folder)
    with _guard:
        entry = _held.get(key)
        if entry is not None:
            entry[1] += 1
        else:
            fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                said = holder(folder)
                raise FolderBusy(f"{folder} is in use by another fkb process ({said or 'holder unknown'}); "
                                 "wait for it to finish, or choose another --out") from None
            except OSError:
                os.close(fd)
                raise
            started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()}, `{_command()}`, since {started}\n".encode(), 0)
            _held[key] = [fd, 1]
    try:
        yield folder
    finally:
        with _guard:
            entry = _held[key]
            entry[1] -= 1
            if entry[1] == 0:
                del _held[key]
                os.close(entry[0])          # releases the lock
