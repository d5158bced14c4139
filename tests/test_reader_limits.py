"""The model readers (Fortran and Python) refuse what is not a model file
before they read or allocate anything: a FIFO (whose open would wait for a
writer for ever), a device (/dev/zero never ends), a directory, a file
larger than the 2 GiB limit (sparse here: nothing is written), each with
one line naming the path, and the same line from both readers."""
from __future__ import annotations

import dataclasses
import os
import signal
from pathlib import Path

import pytest

from fkb_cli import main
from emulators.convert import ConversionError, keras_to_spec
from emulators.fkb import FKBError, load
from emulators.modelfile import MAX_MODEL_FILE_BYTES, ModelFileError, read_model_file


@pytest.fixture
def no_hang():
    """Fail instead of blocking for ever."""
    def alarm(signum, frame):
        raise TimeoutError("a reader blocked")
    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def bad_paths(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    fifo = tmp_path / "fifo.fkb"
    os.mkfifo(fifo)
    big = tmp_path / "big.fkb"
    with open(big, "wb") as fh:
        fh.truncate(MAX_MODEL_FILE_BYTES + 1)                       # sparse
    folder = tmp_path / "folder.fkb"
    folder.mkdir()
    return {"fifo": (fifo, "is not a regular file (a FIFO, device or socket)"),
            "device": (Path("/dev/zero"), "is not a regular file (a FIFO, device or socket)"),
            "folder": (folder, "is a directory"),
            "big": (big, "2048 MiB, more than the 2048 MiB a model file may have"),
            "missing": (tmp_path / "none.fkb", "no such file")}


def test_both_readers_refuse_the_same_non_files_with_the_same_line(tmp_path, no_hang):
    for name, (path, reason) in bad_paths(tmp_path).items():
        expected = f"{path}: {reason}"
        with pytest.raises(ModelFileError) as python_error:
            read_model_file(path)
        assert str(python_error.value) == expected, name
        with pytest.raises(FKBError) as fortran_error:
            load(path)
        assert str(fortran_error.value) == expected, name


def test_the_command_line_refuses_them_in_one_line(tmp_path, capsys, no_hang):
    fifo_keras = tmp_path / "fifo.keras"
    os.mkfifo(fifo_keras)
    for name, (path, reason) in bad_paths(tmp_path).items():
        commands = [["info", path]]
        if path.suffix == ".fkb":   # convert goes by the suffix (/dev/zero has none)
            commands.append(["convert", path, tmp_path / "out.keras"])
        for argv in commands:
            assert main([str(a) for a in argv]) == 1, (name, argv[0])
            err = capsys.readouterr().err.strip()
            assert len(err.splitlines()) == 1 and err.endswith(f"{path}: {reason}"), (name, argv[0], err)
    with pytest.raises(ConversionError, match="is not a regular file"):
        keras_to_spec(fifo_keras)
    assert main(["convert", str(fifo_keras), str(tmp_path / "out.fkb")]) == 1
    assert "fifo.keras: is not a regular file" in capsys.readouterr().err


def _rehashed(data: bytes) -> bytes:
    """A model file's bytes with its hash line made valid again."""
    import hashlib
    first, _, body = data.split(b"\n", 2)
    return first + b"\nsha256 " + hashlib.sha256(body).hexdigest().encode() + b"\n" + body


def test_both_readers_agree_on_non_ascii_units_and_zero_scales(tmp_path):
    import numpy as np

    from emulators.modelfile import LayerSpec, ModelSpec, Normalization, write_model_file
    spec = ModelSpec(2, 2, [LayerSpec(1, "softmax", 2, [0])], inputs=[("a", "K"), ("b", "kg")],
                     input_normalization=Normalization(np.zeros(2, np.float32), np.ones(2, np.float32)))
    write_model_file(spec, tmp_path / "good.fkb")
    data = (tmp_path / "good.fkb").read_bytes()
    degrees = tmp_path / "degrees.fkb"
    degrees.write_bytes(_rehashed(data.replace(b"input 1 a K", b"input 1 a \xc2\xb0C")))
    for reader, error in ((read_model_file, ModelFileError), (load, FKBError)):
        with pytest.raises(error, match=r"degrees\.fkb: line \d+: header line is not ASCII"):
            reader(degrees)
    spec = dataclasses.replace(spec, input_normalization=Normalization(np.zeros(2, np.float32),
                                                                       np.array([1, 0], np.float32)))
    zero = tmp_path / "zero.fkb"
    zero.write_bytes(_rehashed(_encode_unchecked(spec)))
    for reader, error in ((read_model_file, ModelFileError), (load, FKBError)):
        with pytest.raises(error, match="input_normalization scale is zero for feature 2"):
            reader(zero)


def _encode_unchecked(spec) -> bytes:
    """The bytes of `spec` without the writer's checks (it refuses a zero scale)."""
    from emulators import modelfile
    original = modelfile.validate_spec
    modelfile.validate_spec = lambda spec: None
    try:
        return modelfile.encode_model_file(spec)
    finally:
        modelfile.validate_spec = original
