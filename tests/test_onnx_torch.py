"""Networks exported by PyTorch (tests/data/onnx/make_torch_models.py, run
once with torch 2.13; PyTorch is not needed here): both exporters, opsets
13 to 20, weights in external .onnx.data files. The Fortran runtime's
predictions equal onnxruntime's and PyTorch's recorded outputs to float32
round-off."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from emulators.fkb import load
from emulators.modelfile import write_model_file
from emulators.onnx_import import onnx_to_spec

DATA = Path(__file__).resolve().parent / "data" / "onnx"
FILES = sorted(DATA.glob("*.onnx"))
TOLERANCE = 1e-6  # max |difference| / max |y|

STRUCTURE = {
    "emulator": ["dense:gelu", "layer_normalization", "dense:silu", "dense"],
    "residual": None,  # TorchScript keeps BatchNorm1d a layer, dynamo folds it into the Linear
    "activations": None,
}


def relative(y: np.ndarray, reference: np.ndarray) -> float:
    return float(np.max(np.abs(y - reference)) / np.max(np.abs(reference)))


def test_the_exports_are_there():
    assert len(FILES) == 12
    external = [f for f in FILES if f.with_name(f.name + ".data").is_file()]
    assert len(external) >= 4                                   # dynamo=True: weights in NAME.onnx.data
    verbatim = onnx.load(DATA / "emulator_dynamo_opset18.onnx", load_external_data=False)
    assert any(node.metadata_props for node in verbatim.graph.node)   # as the exporter wrote it
    assert any(t.data_location == onnx.TensorProto.EXTERNAL for t in verbatim.graph.initializer)


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_pytorch_exports_run_in_fortran_as_in_onnxruntime_and_pytorch(path, tmp_path):
    reference = np.load(path.with_suffix(".npz"))
    x = reference["x"]
    spec = onnx_to_spec(path)
    expected = STRUCTURE[path.stem.split("_")[0]]
    if expected is not None:
        labels = [l.kind + (f":{l.attributes['activation']}" if l.attributes.get("activation", "linear") != "linear"
                            else "") for l in spec.layers]
        assert labels == expected
        assert spec.input_normalization is not None and spec.output_normalization is not None
    write_model_file(spec, tmp_path / "m.fkb")
    net = load(tmp_path / "m.fkb")
    y = net.predict(x)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    y_ort = session.run(None, {session.get_inputs()[0].name: x})[0]
    np.testing.assert_array_equal(y_ort, reference["onnxruntime"])
    assert relative(y, y_ort) <= TOLERANCE
    assert relative(y, reference["torch"]) <= TOLERANCE
    assert relative(net.predict(x.astype(np.float64)), reference["torch"]) <= TOLERANCE


def test_external_data_is_found_beside_the_model_not_in_the_working_folder(tmp_path):
    for name in ("emulator_dynamo_opset18.onnx", "emulator_dynamo_opset18.onnx.data"):
        shutil.copy(DATA / name, tmp_path / name)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = subprocess.run([sys.executable, "-m", "fkb_cli", "convert", str(tmp_path / "emulator_dynamo_opset18.onnx"),
                             "m.fkb"], cwd=elsewhere, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    (tmp_path / "emulator_dynamo_opset18.onnx.data").unlink()
    result = subprocess.run([sys.executable, "-m", "fkb_cli", "convert", str(tmp_path / "emulator_dynamo_opset18.onnx"),
                             "n.fkb"], cwd=elsewhere, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1
    assert "emulator_dynamo_opset18.onnx.data, which is missing" in result.stderr
    assert not (elsewhere / "n.fkb").exists()
