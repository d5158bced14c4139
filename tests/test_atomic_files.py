"""Files are written whole or not at all, through links, and never over what
is not a regular file (emulators/atomic_files.py), from the library and
from the command line."""
from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from fkb_cli import main
from emulators.atomic_files import NotAFileError, replacing, write_text_replacing


def test_a_failed_write_leaves_the_old_file_and_no_litter(tmp_path):
    target = write_text_replacing(tmp_path / "a.json", "old")
    with pytest.raises(RuntimeError):
        with replacing(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("the writer failed")
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~_umask()


def test_a_link_is_followed_and_kept(tmp_path):
    real = write_text_replacing(tmp_path / "real.txt", "old")
    link = tmp_path / "link.txt"
    link.symlink_to(real)
    write_text_replacing(link, "new")
    assert link.is_symlink() and real.read_text() == "new"


@pytest.mark.parametrize("path", ["/dev/null", "/dev/full"])
def test_devices_and_folders_are_refused_not_replaced(path, tmp_path):
    with pytest.raises(NotAFileError, match="not a regular file"):
        write_text_replacing(path, "x")
    assert stat.S_ISCHR(os.stat(path).st_mode)
    with pytest.raises(NotAFileError, match="is a directory"):
        write_text_replacing(tmp_path, "x")


def test_predict_refuses_to_write_over_a_device(tmp_path, capsys, tiny_model_file):
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((2, 3), np.float32))
    assert main(["predict", str(tiny_model_file), "-i", str(x), "-o", "/dev/full"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "/dev/full: is not a regular file" in err
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)


@pytest.fixture
def tiny_model_file(tmp_path):
    import keras

    from emulators.convert import keras_to_spec
    from emulators.modelfile import write_model_file
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    path = tmp_path / "tiny.fkb"
    write_model_file(keras_to_spec(model), path)
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def file_writes_outside_replacing(root) -> list[str]:
    """Writes of a file that do not go through emulators.atomic_files: a
    ``write_text``/``write_bytes``/``to_netcdf`` on, or an ``open(..., "w")``
    of, anything but the temporary path that ``replacing`` yields, and
    ``os.replace``/``os.rename`` outside atomic_files (appending a line to a
    log is no such write)."""
    import ast
    from pathlib import Path

    found = []
    for package in ("emulators", "gcm_toy", "coupler", "experiments", "fkb_cli"):
        for path in sorted((Path(root) / package).rglob("*.py")):
            if path.name == "atomic_files.py" or "tests_fortran" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if not isinstance(node, ast.Call):
                    continue
                func, where = node.func, f"{path.relative_to(root)}:{node.lineno}"
                if isinstance(func, ast.Attribute) and func.attr in ("write_text", "write_bytes", "to_netcdf"):
                    target = func.value if func.attr != "to_netcdf" else (node.args[0] if node.args else None)
                    if not (isinstance(target, ast.Name) and target.id.startswith("tmp")):
                        found.append(f"{where}: {func.attr}")
                elif isinstance(func, ast.Name) and func.id == "open" and len(node.args) > 1:
                    mode = node.args[1]
                    if (isinstance(mode, ast.Constant) and set(str(mode.value)) & set("wx")
                            and not (isinstance(node.args[0], ast.Name) and node.args[0].id.startswith("tmp"))):
                        found.append(f"{where}: open")
                elif (isinstance(func, ast.Attribute) and func.attr in ("replace", "rename")
                      and isinstance(func.value, ast.Name) and func.value.id == "os"):
                    found.append(f"{where}: os.{func.attr}")
    return found


def test_every_file_is_written_through_atomic_files():
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    # a shipped state is a checkpoint and its .toml written by the model beside each other: both are
    # written under a partial name and renamed together (experiments/states.py)
    allowed = {"experiments/states.py"}
    assert [w for w in file_writes_outside_replacing(root) if w.split(":")[0] not in allowed] == []
