"""Out of memory, the Fortran runtime returns a status, never stops: every
``allocate`` in the library has ``stat=`` (scanned here, so that a new one
without it fails the suite), and a training batch too large for memory
raises a one-line FKBError from Python while the network trains on."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from emulators.fkb import STATUS_NAMES, FKBError, Network
from emulators.modelfile import LayerSpec, ModelSpec, write_model_file

ROOT = Path(__file__).resolve().parents[1]
LIBRARY_SOURCES = sorted([*ROOT.glob("fortran/src/*.f90"), *ROOT.glob("fortran/src/*.F90"),
                          *ROOT.glob("fortran/src/*.inc"), *ROOT.glob("fortran/bindings/*.f90")])
ALLOCATE = re.compile(r"(?<![\w%])allocate\s*\(", re.IGNORECASE)


def fortran_statements(text: str) -> list[tuple[int, str]]:
    """Free-form statements with their first line number: comments dropped,
    the text of character constants blanked, continuation lines joined,
    `;`-separated statements split."""
    statements: list[tuple[int, str]] = []
    pending, start = "", 0
    for number, line in enumerate(text.splitlines(), 1):
        code, quote = [], None
        for ch in line:
            if quote:
                if ch == quote:
                    quote = None
                else:
                    ch = "_"  # a character constant's text is no code
            elif ch in "'\"":
                quote = ch
            elif ch == "!":
                break
            code.append(ch)
        code_line = "".join(code).strip()
        if pending and code_line.startswith("&"):
            code_line = code_line[1:]
        if not pending:
            start = number
        if code_line.endswith("&"):
            pending += code_line[:-1] + " "
            continue
        statement = pending + code_line
        pending = ""
        for part in statement.split(";"):
            if part.strip():
                statements.append((start, part.strip()))
    return statements


def unchecked_allocations(paths: list[Path]) -> list[tuple[Path, int, str]]:
    """Every allocate statement without ``stat=``: file, line, statement."""
    found = []
    for path in paths:
        for number, statement in fortran_statements(path.read_text()):
            for match in ALLOCATE.finditer(statement):
                # the allocate statement runs to its closing parenthesis
                depth, end = 0, len(statement)
                for i in range(match.end() - 1, len(statement)):
                    depth += {"(": 1, ")": -1}.get(statement[i], 0)
                    if depth == 0:
                        end = i
                        break
                if not re.search(r"\bstat\s*=", statement[match.end():end], re.IGNORECASE):
                    found.append((path, number, statement))
    return found


def test_the_scan_finds_each_allocate_without_stat_and_nothing_else(tmp_path):
    source = tmp_path / "example.f90"
    source.write_text("  deallocate (a)\n"
                      "  allocate (a(n), &\n            b(n))\n"
                      "  if (.not. allocated(c)) allocate (c(4), stat=s)\n"
                      "  allocate (g(n), &\n            stat=s)\n"
                      "  x = 1; allocate (d(2))  ! allocate (e(1)) in a comment\n"
                      "  msg = 'allocate (f(1)) in a string'\n"
                      "  allocate (character(len=n) :: h, stat=s)\n")
    assert [(line, statement) for _, line, statement in unchecked_allocations([source])] == [
        (2, "allocate (a(n),  b(n))"), (7, "allocate (d(2))")]


def test_every_allocate_of_the_library_has_stat():
    assert LIBRARY_SOURCES, "no Fortran sources found"
    unchecked = unchecked_allocations(LIBRARY_SOURCES)
    assert not unchecked, "allocate without stat= (return fkb_err_memory instead of stopping):\n" + \
        "\n".join(f"{path.relative_to(ROOT)}:{line}: {statement}" for path, line, statement in unchecked)


def test_out_of_memory_has_a_status_name():
    assert STATUS_NAMES[9] == "out of memory"


def _overcommits() -> bool:
    """Whether the system hands out any amount of address space (Linux
    overcommit_memory=1), so that no allocation fails."""
    setting = Path("/proc/sys/vm/overcommit_memory")
    return setting.exists() and setting.read_text().strip() == "1"


@pytest.mark.skipif(_overcommits(), reason="every allocation succeeds here (overcommit_memory=1)")
def test_a_batch_beyond_memory_raises_one_line_and_training_goes_on(tmp_path):
    # 1 -> dense 500,000 relu -> dense 1: 2**18 columns need a workspace of
    # 500,002 x 262,144 float32 values, half a terabyte
    wide = 500_000
    rng = np.random.default_rng(0)
    spec = ModelSpec(1, 1, [
        LayerSpec(1, "dense", wide, [0], {"activation": "relu", "use_bias": 1},
                  {"kernel": rng.uniform(0, 1e-3, (wide, 1)).astype(np.float32),
                   "bias": np.zeros((wide,), np.float32)}),
        LayerSpec(2, "dense", 1, [1], {"activation": "linear", "use_bias": 1},
                  {"kernel": rng.uniform(0, 1e-3, (1, wide)).astype(np.float32),
                   "bias": np.zeros((1,), np.float32)})])
    path = tmp_path / "wide.fkb"
    write_model_file(spec, path)
    net = Network(path)
    net.compile("sgd", "mse")
    n = 2**18
    x = np.full((n, 1), 0.5, np.float32)
    y = np.ones((n, 1), np.float32)
    with pytest.raises(FKBError) as failure:
        net.fit(x, y, epochs=1, batch_size=n, shuffle=False)
    message = str(failure.value)
    assert failure.value.status == 9
    assert "\n" not in message
    assert "out of memory: cannot allocate the workspace (500002 x 262144)" in message
    assert f"{500002 * n * 4} bytes" in message
    history = net.fit(x[:64], y[:64], epochs=1, batch_size=32, shuffle=False)
    assert np.isfinite(history).all() and net.iterations == 2
