"""Progress bars of the long stages (emulators/progress.py): shown on a
terminal, quiet in logs and with --no-progress, one helper for all; every
command that runs a long stage takes --no-progress."""
from __future__ import annotations

import io

import pytest

from emulators.progress import progress_bar, progress_enabled
from fkb_cli import build_parser


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("stream, given, shown", [
    (_Terminal(), None, True), (io.StringIO(), None, False),
    (_Terminal(), False, False), (io.StringIO(), True, True),
])
def test_a_bar_shows_on_a_terminal_unless_told(monkeypatch, stream, given, shown):
    monkeypatch.setattr("sys.stderr", stream)
    assert progress_enabled(given) is shown
    with progress_bar(4, "stage", unit="step", progress=given) as bar:
        bar.update(4)
    assert ("stage" in stream.getvalue() and "4/4" in stream.getvalue()) is shown


def test_a_closed_stderr_means_no_bar(monkeypatch):
    closed = io.StringIO()
    closed.close()
    monkeypatch.setattr("sys.stderr", closed)
    assert progress_enabled(None) is False


LONG_COMMANDS = [["data"], ["train"], ["gcm", "run"], ["gcm", "twin"], ["gcm", "spin-up"], ["couple"], ["sweep"],
                 ["casestudy"], ["warming"], ["report"]]


def _subparser(parser, path: list[str]):
    for name in path:
        action = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
        parser = action.choices[name]
    return parser


@pytest.mark.parametrize("command", LONG_COMMANDS, ids=" ".join)
def test_every_long_command_takes_no_progress(command):
    parser = _subparser(build_parser(), command)
    option = next((a for a in parser._actions if "--no-progress" in a.option_strings), None)
    assert option is not None, f"fkb {' '.join(command)} has no --no-progress"
    assert option.dest == "progress" and option.const is False and option.default is None


def test_a_gcm_run_shows_its_days_on_a_terminal(monkeypatch):
    from gcm_toy import Model

    terminal = _Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    with Model("held-suarez-t10") as model:
        model.run(0.5, None, progress_label="spin-up test")
    assert "spin-up test from day 0" in terminal.getvalue() and "0.50/0.5 days" in terminal.getvalue()
