"""Files written whole or not at all, and never over what is not a file.

Every file the project writes for others to read (model files, Keras files,
predictions, results, reports, checkpoints' companions, run records) goes
through :func:`replacing`: the content is written to a temporary file in the
target's folder, which then replaces the target in one step (``os.replace``),
so that a reader sees the old file or the new one, never part of one, and a
failure leaves the old file as it was. What is at the path is respected:

- a symbolic link is followed: its target is replaced and the link kept;
- a path that exists and is not a regular file (a directory, a device such as
  /dev/null or /dev/full, a FIFO) is refused with one line before anything is
  written, instead of being replaced by a regular file.

    with replacing("model.fkb") as tmp:
        convert(source, tmp)
    write_text_replacing("report.md", text)

(netCDF files go through emulators.netcdf_files.write_dataset, which uses it.)
"""
from __future__ import annotations

import os
import stat
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

__all__ = ["replacing", "write_text_replacing", "NotAFileError"]


class NotAFileError(OSError):
    """The path to write names something that is not a regular file."""


def _target(path: str | os.PathLike) -> Path:
    """The file to replace: `path`, or the file its symbolic links lead to;
    refused when it exists and is not a regular file."""
    path = Path(path)
    target = Path(os.path.realpath(path)) if path.is_symlink() else path
    try:
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        return target
    if stat.S_ISDIR(mode):
        raise NotAFileError(f"{path}: is a directory, not a file to write")
    if not stat.S_ISREG(mode):
        raise NotAFileError(f"{path}: is not a regular file (a device, FIFO or socket); refusing to replace it")
    return target


@contextmanager
def replacing(path: str | os.PathLike, fsync: bool = False) -> Iterator[Path]:
    """A temporary path (same folder, same suffix) to write the new content
    of `path` to; when the block ends without error it replaces `path` (see
    the module docstring), on error it is removed. `fsync`: flush the new
    file to the disk before the rename (for files a crash must not leave
    empty)."""
    target = _target(path)
    # a name of our own, not a file made by mkstemp: the writer creates it
    # with the usual permissions (mkstemp's are 0600)
    tmp = target.with_name(f".{target.stem}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp{target.suffix}")
    try:
        yield tmp
        if fsync:
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text_replacing(path: str | os.PathLike, text: str) -> Path:
    """Write `text` to `path` through :func:`replacing`; returns `path`."""
    with replacing(path) as tmp:
        tmp.write_text(text)
    return Path(path)
