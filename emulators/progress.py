"""Progress bars of the long stages, one way for all of them.

Every stage that can take more than a few seconds (reference data, training,
reference and coupled runs, sweeps, reports) shows a tqdm bar on stderr
when stderr is a terminal, and nothing in a log, a pipe or CI. Each stage
takes ``progress: bool | None``: True shows the bar, False hides it (the
command line's ``--no-progress``), None decides by the terminal.

    with progress_bar(n_days, "gcm", unit="day", progress=progress) as bar:
        bar.update(1.0)
"""
from __future__ import annotations

import sys
from typing import Any

__all__ = ["progress_enabled", "progress_bar", "add_progress_option"]


def progress_enabled(progress: bool | None) -> bool:
    """Whether a stage given `progress` shows its bar: as given, or (None)
    when stderr is a terminal."""
    if progress is not None:
        return bool(progress)
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):   # replaced or closed stderr
        return False


def progress_bar(total: float, desc: str, *, unit: str = "it", progress: bool | None = None,
                 initial: float = 0, **options: Any):
    """A tqdm bar on stderr of `total` `unit`s labelled `desc`, shown as
    :func:`progress_enabled` says (a disabled bar takes the same calls and
    prints nothing); `options`: further tqdm options (e.g. bar_format)."""
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit=unit, disable=not progress_enabled(progress),
                file=sys.stderr, dynamic_ncols=True, leave=True, **options)


def add_progress_option(parser) -> None:
    """The command line's ``--no-progress`` (an argparse parser): sets
    ``args.progress`` to False, else None (bars on a terminal only)."""
    parser.add_argument("--no-progress", dest="progress", action="store_const", const=False, default=None,
                        help="no progress bars (they show only when stderr is a terminal)")
