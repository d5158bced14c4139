"""Settings tables (a TOML table, a dict of options) checked against the
names they may hold: one message for an unknown key, in every layer that
reads settings (the GCM's options, a sweep's and a case study's tables,
the shipped states' recipes), and one reader of a settings file."""
from __future__ import annotations

import dataclasses
import os
import tomllib
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, TypeVar

__all__ = ["check_known_keys", "dataclass_from_table", "read_settings_file"]

T = TypeVar("T")


def read_settings_file(path: str | os.PathLike, what: str | None = None) -> dict[str, Any]:
    """The tables of a TOML file. FileNotFoundError ``PATH: no such WHAT``
    (with `what`; else the OS's), ValueError ``PATH: not valid TOML (...)``."""
    path = Path(path)
    if what is not None and not path.is_file():
        raise FileNotFoundError(f"{path}: no such {what}")
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML ({exc})") from None


def check_known_keys(table: Iterable[str], known: Iterable[str], what: str, *,
                     quote: Callable[[str], str] = repr) -> None:
    """ValueError ``unknown WHAT 'key' (known: a, b, ...)`` for the first key
    of `table` (in sorted order) that is not in `known`; `known` is listed
    in its order if it is a list or tuple, sorted otherwise. `quote` shows
    the key (``repr``; a table's name as ``[name]``)."""
    known = list(known) if isinstance(known, (list, tuple)) else sorted(known)
    unknown = sorted(set(table) - set(known))
    if unknown:
        raise ValueError(f"unknown {what} {quote(unknown[0])} (known: {', '.join(known)})")


def dataclass_from_table(cls: type[T], table: Mapping[str, Any], what: str) -> T:
    """``cls(**table)`` after :func:`check_known_keys` against the fields of the dataclass `cls`."""
    check_known_keys(table, {field.name for field in dataclasses.fields(cls)}, what)
    return cls(**table)
