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


# ------------------------------------------------------------------------
# Sizes a file declares: refused before anything of that size is allocated


def declared_size_attacks(tmp_path: Path) -> dict[str, tuple[Path, str | None]]:
    """Small files that declare huge things, each with the end of the line
    both readers give (None where their wording differs; both must still
    refuse)."""
    import numpy as np

    from emulators.modelfile import LayerSpec, ModelSpec, encode_model_file
    named = encode_model_file(ModelSpec(2, 2, [LayerSpec(1, "softmax", 2, [0])], inputs=[("a", "K"), ("b", "1")]))
    plain = encode_model_file(ModelSpec(2, 2, [LayerSpec(1, "softmax", 2, [0])]))
    wide = plain.replace(b"n_inputs 2\n", b"n_inputs 3000000\n").replace(b"n_outputs 2\n", b"n_outputs 3000000\n")
    files = {
        # one input line for two billion inputs: the Fortran reader allocated them all (and aborted)
        "io_names": (_rehashed(named.replace(b"n_inputs 2\n", b"n_inputs 2000000000\n")),
                     "input lines given for 2 of the 2000000000 inputs (all or none)"),
        # a layer without weights costs nothing in the file, however wide
        "width": (_rehashed(wide.replace(b"softmax 2 ", b"softmax 3000000 ")),
                  "n_inputs and the layers' widths add up to 6000000, more than the 4194304 a model may have"),
        "integer": (_rehashed(plain.replace(b"n_inputs 2\n", b"n_inputs 99999999999\n")), None),
        # original FKB text files: a 40000 x 40000 kernel in 40 bytes, one whose size overflows
        # 32-bit integers, and a repeat count of two billion
        "legacy_kernel": (b"3\ninput 40000\ndense 40000\nlinear 0\n0.1\n",
                          "the layers declare 1600040000 weights, more than the 536870912 (2 GiB of float32) "
                          "a model may have"),
        "legacy_overflow": (b"3\ninput 100000\ndense 100000\nlinear 0\n0.1\n",
                            "the layers declare 10000100000 weights, more than the 536870912 (2 GiB of float32) "
                            "a model may have"),
        "legacy_repeat": (b"3\ninput 2\ndense 2\nlinear 0\n0.1\n2000000000*0\n", None),
    }
    out = {}
    for name, (data, reason) in files.items():
        path = tmp_path / (f"{name}.txt" if name.startswith("legacy") else f"{name}.fkb")
        path.write_bytes(data)
        out[name] = (path, reason)
    return out


@pytest.mark.parametrize("case", ["io_names", "width", "integer", "legacy_kernel", "legacy_overflow",
                                  "legacy_repeat"])
def test_both_readers_refuse_what_a_file_declares_beyond_the_limits(case, tmp_path, capsys):
    path, reason = declared_size_attacks(tmp_path)[case]
    messages = []
    for reader, error in ((read_model_file, ModelFileError), (load, FKBError)):
        with pytest.raises(error) as info:
            reader(path)
        message = str(info.value)
        assert "\n" not in message and message.startswith(f"{path}: "), message
        messages.append(message)
    if reason is not None:
        assert all(message.endswith(f": {reason}") for message in messages), messages
    assert main(["info", str(path)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(path) in err, err


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    import zipfile
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def _huge_h5(path: Path) -> Path:
    """An HDF5 file of a few kilobytes declaring a dataset of 2 GiB + 4 bytes
    (chunked and compressed: nothing of it is written)."""
    import h5py
    with h5py.File(path, "w") as handle:
        handle.create_dataset("layers/dense/vars/0", shape=(2 ** 29 + 1,), dtype="f4", chunks=(2 ** 16,),
                              compression="gzip")
    return path


@pytest.mark.parametrize("case", ["config_bomb", "members", "weights", "h5"])
def test_keras_files_that_inflate_beyond_the_limits_are_refused_before_keras_reads_them(case, tmp_path):
    if case == "config_bomb":     # 65 MiB of JSON in a 65 kB archive
        path = _zip(tmp_path / "bomb.keras", {"config.json": b"{" + b" " * (65 * 2 ** 20 - 2) + b"}"})
        reason = "archive member config.json inflates to 65 MiB, more than the 64 MiB it may have"
    elif case == "members":
        path = _zip(tmp_path / "many.keras", {f"assets/{i}": b"" for i in range(65)})
        reason = "65 archive members, more than the 64 a Keras model file may have"
    elif case == "weights":
        weights = _huge_h5(tmp_path / "w.h5").read_bytes()
        path = _zip(tmp_path / "weights.keras", {"config.json": b"{}", "model.weights.h5": weights})
        reason = "model.weights.h5: datasets of 2049 MiB, more than the 2048 MiB a model may have"
    else:
        path = _huge_h5(tmp_path / "legacy.h5")
        reason = "datasets of 2049 MiB, more than the 2048 MiB a model may have"
    assert path.stat().st_size < 200_000
    with pytest.raises(ConversionError) as info:
        keras_to_spec(path)
    assert str(info.value) == f"{path}: {reason}"


def test_onnx_external_data_is_held_to_a_model_s_size(tmp_path, monkeypatch):
    """Tensors of an ONNX file that all point at the same external bytes
    would copy them once each: the total given to tensors is held to the
    limit (here lowered to 1 MiB, so that the test reads little)."""
    from onnx import TensorProto, helper

    from emulators import onnx_import
    monkeypatch.setattr(onnx_import, "MAX_MODEL_FILE_BYTES", 2 ** 20)
    n = 2 ** 20 // 4 * 3 // 4                      # 768 KiB of float32: one tensor fits, two do not
    (tmp_path / "w.bin").write_bytes(bytes(4 * n))
    tensors = []
    for name in ("a", "b"):
        tensor = TensorProto(name=name, data_type=TensorProto.FLOAT, dims=[n],
                             data_location=TensorProto.EXTERNAL)
        for key, value in (("location", "w.bin"), ("offset", "0"), ("length", str(4 * n))):
            entry = tensor.external_data.add()
            entry.key, entry.value = key, value
        tensors.append(tensor)
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])], initializer=tensors)
    path = tmp_path / "shared.onnx"
    path.write_bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    with pytest.raises(ConversionError) as info:
        onnx_import.read_onnx_model(path)
    assert str(info.value) == f"{path}: its tensors' external data add up to more than the 1 MiB a model may have"


def test_predict_refuses_an_input_array_that_is_no_file_or_cannot_fit(tmp_path, capsys, monkeypatch, no_hang):
    import numpy as np

    from emulators import machine_memory
    from emulators.modelfile import LayerSpec, ModelSpec, write_model_file

    model = tmp_path / "m.fkb"
    write_model_file(ModelSpec(2, 2, [LayerSpec(1, "softmax", 2, [0])]), model)
    fifo = tmp_path / "x.npy"
    os.mkfifo(fifo)
    header_only = tmp_path / "short.npy"       # a header declaring 10^12 samples, and no data
    with open(header_only, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, {"descr": "<f4", "fortran_order": False,
                                                  "shape": (10 ** 12, 2)})
    good = tmp_path / "good.npy"
    np.save(good, np.ones((1000, 2), np.float32))
    cases = [(fifo, "x.npy: is not a regular file (a FIFO, device or socket)"),
             (Path("/dev/zero"), "/dev/zero: is not a regular file"),
             (tmp_path, "is a directory"),
             (header_only, "short.npy: not a readable .npy file")]
    for path, reason in cases:
        assert main(["predict", str(model), "-i", str(path), "-o", str(tmp_path / "y.npy")]) == 1
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and reason in err, err
    monkeypatch.setattr(machine_memory, "usable_memory", lambda: 8000)   # a process allowed 8 kB
    assert main(["predict", str(model), "-i", str(good), "-o", str(tmp_path / "y.npy")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "good.npy: a 1000 x 2 array of float32 needs" in err \
        and "more than 50% of the" in err and "this process may use" in err, err
    assert not (tmp_path / "y.npy").exists()


def test_usable_memory_takes_the_control_groups_limit_when_smaller(tmp_path):
    from emulators.machine_memory import cgroup_memory_limit, physical_memory, usable_memory

    v2, v1 = tmp_path / "memory.max", tmp_path / "memory.limit_in_bytes"
    v2.write_text("max\n")
    assert cgroup_memory_limit((v2, v1)) == 0
    v2.write_text("1073741824\n")
    assert cgroup_memory_limit((v2, v1)) == 2 ** 30
    v1.write_text("9223372036854771712\n")                          # cgroup v1's "unlimited"
    assert cgroup_memory_limit((tmp_path / "none", v1)) == 0
    assert cgroup_memory_limit((tmp_path / "none",)) == 0
    assert 0 < usable_memory() <= physical_memory()
