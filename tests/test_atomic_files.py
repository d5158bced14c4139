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
