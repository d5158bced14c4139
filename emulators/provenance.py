"""Where a file came from: the package version and the command that wrote it.

Every netCDF file the project writes carries the global attributes of the
NetCDF User Guide and the CF conventions (CF-1.8, section 2.6.2) that make a
file self-describing:

- ``Conventions = "CF-1.8"``;
- ``history``: one line per command that wrote or modified the file, oldest
  first, each ``<UTC time> <command line> (fkb <version>)``, optionally
  followed by ``: <what it did>``. A command that rewrites a file keeps the
  file's earlier lines and appends its own.

    attrs = with_history(attrs, note="gcm_toy run of 30 days")
    dataset.attrs = with_history(dataset.attrs, previous=old_history)
"""
from __future__ import annotations

import datetime as _dt
import os
import shlex
import sys
from collections.abc import Mapping
from typing import Any

__all__ = ["CONVENTIONS", "package_version", "command_line", "history_line", "with_history"]

CONVENTIONS = "CF-1.8"


def package_version() -> str:
    """The installed version of the ``fkb`` package ('unknown' outside an
    installation)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("fkb")
    except PackageNotFoundError:
        return "unknown"


def command_line(argv: list[str] | None = None) -> str:
    """The command this process runs, as a shell would take it back: the
    program's file name (``fkb``, ``pytest``; ``python -m fkb_cli`` for a
    module) and its arguments. Dask's local worker processes inherit the
    command of the process that started them."""
    argv = list(sys.argv if argv is None else argv)
    if not argv or not argv[0]:
        return "python"
    program = os.path.basename(argv[0])
    if program == "__main__.py":
        program = "python -m " + os.path.basename(os.path.dirname(argv[0]))
    elif program in ("-c", ""):
        program = "python -c"
    return " ".join([program, *(shlex.quote(a) for a in argv[1:])])


def history_line(note: str | None = None, *, now: _dt.datetime | None = None) -> str:
    """One line of a ``history`` attribute for the running command (see the
    module docstring)."""
    now = now or _dt.datetime.now(_dt.timezone.utc)
    line = f"{now:%Y-%m-%dT%H:%M:%SZ} {command_line()} (fkb {package_version()})"
    return f"{line}: {note}" if note else line


def with_history(attrs: Mapping[str, Any], note: str | None = None, previous: str | None = None) -> dict[str, Any]:
    """`attrs` with ``Conventions`` (kept if set) and ``history`` ending in
    this command's line; `previous`: the history of the file being modified
    or replaced (default: the ``history`` already in `attrs`), kept before it."""
    out = dict(attrs)
    out.setdefault("Conventions", CONVENTIONS)
    earlier = previous if previous is not None else out.get("history")
    line = history_line(note)
    out["history"] = f"{str(earlier).rstrip()}\n{line}" if earlier else line
    return out
