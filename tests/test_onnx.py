"""ONNX import and export: every operator and pattern against onnxruntime,
the model file -> ONNX -> model file round trip, refusals of one line, and
the importer fuzzed with mutated files. PyTorch's own exports are in
tests/test_onnx_torch.py."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import onnx_cases
from emulators.fkb import load
from emulators.formats import ConversionError, UnsupportedModelError, convert, load_spec
from emulators.modelfile import ACTIVATIONS, LayerSpec, ModelSpec, Normalization, encode_model_file, write_model_file
from emulators.onnx_export import spec_to_onnx, write_onnx
from emulators.onnx_import import METADATA_KEYS, onnx_to_spec

TOLERANCE = 1e-6  # max |fortran - onnxruntime| / max(1, max |y|): float32 round-off


def run_ort(model: onnx.ModelProto | str | Path, x: np.ndarray) -> np.ndarray:
    source = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    session = ort.InferenceSession(source, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def run_fortran(spec: ModelSpec, x: np.ndarray, folder: Path) -> np.ndarray:
    path = folder / "model.fkb"
    write_model_file(spec, path)
    return load(path).predict(np.ascontiguousarray(x.reshape(len(x), -1)))


def difference(y: np.ndarray, reference: np.ndarray) -> float:
    reference = reference.reshape(len(reference), -1)
    return float(np.max(np.abs(y - reference)) / max(1.0, float(np.max(np.abs(reference)))))


def layer_labels(spec: ModelSpec) -> list[str]:
    return [layer.kind + (f":{layer.attributes['activation']}"
                          if layer.attributes.get("activation", "linear") != "linear" else "") for layer in spec.layers]


# --------------------------------------------------------------------------
# every operator and pattern, at every opset it exists in


CASES = [(name, opset) for name, (_, opsets, _) in onnx_cases.CASES.items() for opset in opsets]


@pytest.mark.parametrize("name, opset", CASES, ids=[f"{n} opset {o}" for n, o in CASES])
def test_operator_and_pattern_match_onnxruntime(name, opset, tmp_path):
    model = onnx_cases.build(name, opset)
    x = onnx_cases.inputs(model)
    spec = onnx_to_spec(model)
    expected = onnx_cases.CASES[name][2]
    if expected is not None:
        assert layer_labels(spec) == expected
    assert difference(run_fortran(spec, x, tmp_path), run_ort(model, x)) <= TOLERANCE


def test_normalization_at_the_ends_becomes_the_model_files():
    spec = onnx_to_spec(onnx_cases.build("input and output normalization", 17))
    assert spec.input_normalization is not None and spec.output_normalization is not None
    assert float(np.max(spec.output_normalization.scale)) < 1e-5   # tendencies of 1e-8: kept exactly
    spec = onnx_to_spec(onnx_cases.build("constant Sub/Div/Mul/Add/Neg", 17))
    assert spec.input_normalization is None and spec.output_normalization is None


def test_a_graph_of_only_the_input_is_one_linear_layer(tmp_path):
    g = onnx_cases.Graph(17)
    model = g.model(g.op("Identity", ["x"]))
    spec = onnx_to_spec(model)
    assert layer_labels(spec) == ["activation"]
    x = onnx_cases.inputs(model)
    np.testing.assert_array_equal(run_fortran(spec, x, tmp_path), x)


# --------------------------------------------------------------------------
# export: model file -> ONNX, run by onnxruntime


def dense(i, n_out, n_in, inputs, rng, activation="linear", alpha=None, bias=True):
    attributes = {"activation": activation, **({"alpha": alpha} if alpha is not None else {}), "use_bias": int(bias)}
    params = {"kernel": rng.normal(scale=0.6, size=(n_out, n_in)).astype(np.float32)}
    if bias:
        params["bias"] = rng.normal(scale=0.2, size=n_out).astype(np.float32)
    return LayerSpec(i, "dense", n_out, inputs, attributes, params)


def every_layer_spec(seed: int = 3) -> ModelSpec:
    """Every built-in layer type of the format, names, units and normalization."""
    rng = np.random.default_rng(seed)
    f = lambda *shape, lo=-1, hi=1: rng.uniform(lo, hi, size=shape).astype(np.float32)  # noqa: E731
    n = 5
    layers = [
        dense(1, n, 4, [0], rng, "relu"),
        LayerSpec(2, "relu", n, [1], {"max_value": 0.8, "negative_slope": 0.1, "threshold": 0.2}),
        LayerSpec(3, "relu", n, [1], {"negative_slope": 0.0, "threshold": 0.3}),
        LayerSpec(4, "leaky_relu", n, [2], {"negative_slope": 0.2}),
        LayerSpec(5, "elu", n, [3], {"alpha": 0.5}),
        LayerSpec(6, "prelu", n, [4], {}, {"alpha": f(n, lo=0, hi=0.4)}),
        LayerSpec(7, "dropout", n, [5], {"variant": "dropout", "rate": 0.2}),
        LayerSpec(8, "batch_normalization", n, [6], {"epsilon": 0.001, "center": 1, "scale": 0, "momentum": 0.99},
                  {"beta": f(n), "moving_mean": f(n), "moving_variance": f(n, lo=0.5, hi=2)}),
        LayerSpec(9, "layer_normalization", n, [7], {"epsilon": 1e-5, "center": 0, "scale": 1}, {"gamma": f(n, lo=0.5, hi=1.5)}),
        LayerSpec(10, "normalization", n, [8], {"invert": 0}, {"mean": f(n), "variance": f(n, lo=0.5, hi=2)}),
        LayerSpec(11, "normalization", n, [9], {"invert": 1}, {"mean": f(n), "variance": f(n, lo=0.5, hi=2)}),
        LayerSpec(12, "rescaling", n, [10], {}, {"scale": f(n), "offset": f(n)}),
        LayerSpec(13, "add", n, [11, 12, 1], {}),
        LayerSpec(14, "subtract", n, [13, 2], {}),
        LayerSpec(15, "multiply", n, [14, 3, 4], {}),
        LayerSpec(16, "average", n, [15, 5], {}),
        LayerSpec(17, "maximum", n, [16, 6, 7], {}),
        LayerSpec(18, "minimum", n, [17, 8], {}),
        LayerSpec(19, "softmax", n, [18], {}),
        LayerSpec(20, "concatenate", 2 * n, [19, 1], {}),
        dense(21, 3, 2 * n, [20], rng, "linear", bias=False),
    ]
    return ModelSpec(n_inputs=4, n_outputs=3, layers=layers, name="every layer",
                     inputs=[("T", "K"), ("q", "kg kg-1"), ("ps", "Pa"), ("S", "W m-2")],
                     outputs=[("a", "K s-1"), ("b", "1"), ("c", "kg m-2 s-1")],
                     input_normalization=Normalization(f(4, lo=-5, hi=5), f(4, lo=0.5, hi=3)),
                     output_normalization=Normalization(f(3), f(3, lo=1e-8, hi=1e-7)))


def activation_spec(name: str, seed: int = 4) -> ModelSpec:
    rng = np.random.default_rng(seed)
    alpha = {"leaky_relu": 0.15, "elu": 0.8, "celu": 1.2, "squareplus": 3.0}.get(name)
    layers = [dense(1, 6, 4, [0], rng, name, alpha), dense(2, 3, 6, [1], rng)]
    return ModelSpec(n_inputs=4, n_outputs=3, layers=layers, name=f"act {name}")


def check_export(spec: ModelSpec, folder: Path) -> tuple[onnx.ModelProto, np.ndarray]:
    x = np.random.default_rng(9).normal(scale=2.0, size=(33, spec.n_inputs)).astype(np.float32)
    if spec.input_normalization is not None:
        x = x * spec.input_normalization.scale + spec.input_normalization.offset
    model = spec_to_onnx(spec)
    y = run_fortran(spec, x, folder)
    assert difference(y, run_ort(model, x)) <= TOLERANCE
    return model, x


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_every_activation_exports_and_reads_back_to_the_identical_file(name, tmp_path):
    spec = activation_spec(name)
    model, _ = check_export(spec, tmp_path)
    assert encode_model_file(onnx_to_spec(model)) == encode_model_file(spec)


def test_every_layer_type_exports_with_the_runtimes_outputs(tmp_path):
    spec = every_layer_spec()
    model, x = check_export(spec, tmp_path)
    props = {p.key: p.value for p in model.metadata_props}
    assert json.loads(props[METADATA_KEYS["inputs"]])[1] == ["q", "kg kg-1"]
    assert props[METADATA_KEYS["name"]] == "every layer"
    # read back: the same predictions (the layers that have no ONNX operator
    # of their own, such as dropout or normalization, come back as others)
    back = onnx_to_spec(model)
    relu = [layer for layer in back.layers if layer.kind == "relu"]
    assert {"max_value": 0.8, "negative_slope": 0.1, "threshold": 0.2} in [layer.attributes for layer in relu]
    assert back.inputs == spec.inputs and back.outputs == spec.outputs and back.name == spec.name
    (tmp_path / "back").mkdir()
    assert difference(run_fortran(back, x, tmp_path / "back"), run_fortran(spec, x, tmp_path)) <= TOLERANCE


def test_model_file_to_onnx_and_back_is_byte_identical(tmp_path):
    rng = np.random.default_rng(8)
    n = 6
    layers = [
        dense(1, n, 4, [0], rng, "gelu"),
        LayerSpec(2, "layer_normalization", n, [1], {"epsilon": 1e-05, "center": 1, "scale": 1},
                  {"gamma": rng.uniform(0.5, 1.5, n).astype(np.float32), "beta": rng.normal(size=n).astype(np.float32)}),
        dense(3, n, n, [2], rng, "linear"),
        LayerSpec(4, "batch_normalization", n, [3], {"epsilon": 0.001, "center": 1, "scale": 1},
                  {"gamma": rng.uniform(0.5, 1.5, n).astype(np.float32), "beta": rng.normal(size=n).astype(np.float32),
                   "moving_mean": rng.normal(size=n).astype(np.float32),
                   "moving_variance": rng.uniform(0.5, 2, n).astype(np.float32)}),
        LayerSpec(5, "activation", n, [4], {"activation": "silu"}),
        LayerSpec(6, "add", n, [5, 2], {}),
        LayerSpec(7, "prelu", n, [6], {}, {"alpha": rng.uniform(0, 0.3, n).astype(np.float32)}),
        LayerSpec(8, "rescaling", n, [7], {}, {"scale": rng.normal(size=n).astype(np.float32),
                                                "offset": rng.normal(size=n).astype(np.float32)}),
        LayerSpec(9, "concatenate", 2 * n, [8, 1], {}),
        dense(10, 3, 2 * n, [9], rng, "linear"),
    ]
    spec = ModelSpec(4, 3, layers, name="round trip", inputs=[(f"x{i}", "K") for i in range(4)],
                     outputs=[("a", "1"), ("b", "kg m-2 s-1"), ("c", "W m-2")],
                     input_normalization=Normalization(rng.normal(size=4).astype(np.float32),
                                                       rng.uniform(0.5, 2, 4).astype(np.float32)),
                     output_normalization=Normalization(rng.normal(size=3).astype(np.float32),
                                                        rng.uniform(1e-8, 1e-6, 3).astype(np.float32)))
    from emulators.input_statistics import input_statistics
    samples = np.random.default_rng(1).normal(size=(500, 4)) @ rng.normal(size=(4, 4))
    spec.input_statistics = input_statistics(lambda: iter([samples.astype(np.float32)]))   # the guard's
    source = tmp_path / "a.fkb"
    write_model_file(spec, source)
    check_export(spec, tmp_path)
    convert(source, tmp_path / "a.onnx")
    convert(tmp_path / "a.onnx", tmp_path / "b.fkb")
    assert (tmp_path / "b.fkb").read_bytes() == source.read_bytes()


def test_custom_layer_types_are_refused_by_the_exporter(tmp_path):
    from emulators.modelfile import register_layer_kind
    register_layer_kind("test.double_it", evaluate=lambda layer, xs: 2 * xs[0])
    spec = ModelSpec(2, 2, [LayerSpec(1, "test.double_it", 2, [0], {}, {})])
    with pytest.raises(ConversionError, match="custom layer type test.double_it has no ONNX form"):
        write_onnx(spec, tmp_path / "c.onnx")
    assert not (tmp_path / "c.onnx").exists()


# --------------------------------------------------------------------------
# names, units and the GCM interface


def test_metadata_props_carry_names_units_and_name(tmp_path):
    g = onnx_cases.Graph(17, (3,))
    model = g.model(g.dense("x", 3, 2))
    helper.set_model_props(model, {METADATA_KEYS["inputs"]: json.dumps([["T", "K"], ["q", "kg kg-1"], ["ps", "Pa"]]),
                                   METADATA_KEYS["outputs"]: json.dumps([["dT", "K s-1"], ["P", "kg m-2 s-1"]]),
                                   METADATA_KEYS["name"]: "my emulator"})
    spec = onnx_to_spec(model)
    assert spec.inputs[2] == ("ps", "Pa") and spec.outputs[1] == ("P", "kg m-2 s-1") and spec.name == "my emulator"
    helper.set_model_props(model, {METADATA_KEYS["inputs"]: json.dumps([["T", "K"]])})
    with pytest.raises(UnsupportedModelError, match="1 input names for 3 inputs"):
        onnx_to_spec(model)
    helper.set_model_props(model, {METADATA_KEYS["inputs"]: "[not json"})
    with pytest.raises(ConversionError, match="metadata_props fkb.inputs"):
        onnx_to_spec(model)


def gcm_sized_model(nlev: int = 3, normalize: bool = False) -> onnx.ModelProto:
    g = onnx_cases.Graph(17, (2 * nlev + 4,))
    x = "x"
    if normalize:
        x = g.op("Div", [g.op("Sub", [x, g.const(np.full(2 * nlev + 4, 100.0))]), g.const(np.full(2 * nlev + 4, 10.0))])
    return g.model(g.dense(g.op("Tanh", [g.dense(x, 2 * nlev + 4, 8)]), 8, 2 * nlev + 5))


def test_interface_gcm_attaches_the_gcm_names_and_units(tmp_path):
    from emulators.export import convert_for_gcm
    from emulators.interface import input_names, output_units
    onnx.save(gcm_sized_model(), tmp_path / "m.onnx")
    spec = convert_for_gcm(tmp_path / "m.onnx", tmp_path / "m.fkb")
    assert spec.input_names == input_names(3) and spec.output_units == output_units(3)
    assert load_spec(tmp_path / "m.fkb").inputs == spec.inputs
    # and into an ONNX file: the names ride in its metadata_props
    convert_for_gcm(tmp_path / "m.onnx", tmp_path / "named.onnx")
    assert onnx_to_spec(tmp_path / "named.onnx").inputs == spec.inputs
    from emulators.export import with_gcm_interface
    normalized = onnx_to_spec(gcm_sized_model(normalize=True))
    assert normalized.input_normalization is not None
    with pytest.raises(ValueError, match="normalizes its inputs or outputs already"):
        with_gcm_interface(normalized, normalization=object(), source="n.onnx")


def test_couple_converts_onnx_emulators(tmp_path):
    from coupler.couple import prepare_model_files
    onnx.save(gcm_sized_model(), tmp_path / "m.onnx")
    files, converted = prepare_model_files([tmp_path / "m.onnx"], tmp_path / "out", gcm_interface=True)
    assert files == [tmp_path / "out" / "emulators" / "m.fkb"] and str(tmp_path / "m.onnx") in converted
    assert load(files[0]).n_inputs == 10


# --------------------------------------------------------------------------
# refusals: one line naming the problem


def bad_graph(nodes, inits=(), inputs=None, outputs=None, opset=17):
    inputs = inputs or [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])]
    outputs = outputs or [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])]
    return helper.make_model(helper.make_graph(nodes, "bad", inputs, outputs, list(inits)),
                             opset_imports=[helper.make_opsetid("", opset)])


W = numpy_helper.from_array(np.ones((4, 4), np.float32), "w")
REFUSALS = [
    ("Conv", bad_graph([helper.make_node("Conv", ["x", "w"], ["y"], name="/conv/Conv")], [W]),
     r"node '/conv/Conv' \(Conv\): operator Conv is not supported"),
    ("LSTM", bad_graph([helper.make_node("LSTM", ["x", "w", "w"], ["y"], name="rnn", hidden_size=4)], [W]),
     r"node 'rnn' \(LSTM\): operator LSTM is not supported"),
    ("domain", bad_graph([helper.make_node("FusedGemm", ["x", "w"], ["y"], name="f", domain="com.microsoft")], [W]),
     r"\(com.microsoft::FusedGemm\): operators of domain 'com.microsoft' are not supported"),
    ("two inputs", bad_graph([helper.make_node("Add", ["x", "z"], ["y"])],
                             inputs=[helper.make_tensor_value_info(n, TensorProto.FLOAT, ["batch", 4]) for n in "xz"]),
     r"the graph has 2 inputs \(x, z\); only one input"),
    ("two outputs", bad_graph([helper.make_node("Relu", ["x"], ["y"]), helper.make_node("Tanh", ["x"], ["z"])],
                              outputs=[helper.make_tensor_value_info(n, TensorProto.FLOAT, ["batch", 4]) for n in "yz"]),
     r"the graph has 2 outputs \(y, z\); only one is supported"),
    ("dynamic features", bad_graph([helper.make_node("Relu", ["x"], ["y"])],
                                   inputs=[helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "n"])]),
     r"input 'x' axis 1 is dynamic \('n'\); only the batch axis \(0\) may be"),
    ("no batch axis", bad_graph([helper.make_node("Relu", ["x"], ["y"])],
                                inputs=[helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])]),
     r"input 'x' has rank 1; it needs a batch axis"),
    ("double", bad_graph([helper.make_node("Relu", ["x"], ["y"])],
                         inputs=[helper.make_tensor_value_info("x", TensorProto.DOUBLE, ["batch", 4])],
                         outputs=[helper.make_tensor_value_info("y", TensorProto.DOUBLE, ["batch", 4])]),
     r"input 'x' has element type DOUBLE; only float32"),
    ("old opset", bad_graph([helper.make_node("Relu", ["x"], ["y"])], opset=11),
     r"opset 11 is older than 13, the oldest supported"),
    ("lone Erf", bad_graph([helper.make_node("Erf", ["x"], ["y"], name="e")]),
     r"node 'e' \(Erf\): Erf is supported only inside a recognized pattern"),
    ("Div of tensors", bad_graph([helper.make_node("Sigmoid", ["x"], ["s"]), helper.make_node("Div", ["x", "s"], ["y"], name="d")]),
     r"node 'd' \(Div\): Div of two tensors that depend on the input"),
    ("MatMul of tensors", bad_graph([helper.make_node("MatMul", ["x", "x"], ["y"], name="mm")]),
     r"node 'mm' \(MatMul\): only MatMul\(x, constant weight\)"),
    ("reshape batch", bad_graph([helper.make_node("Reshape", ["x", "s"], ["y"], name="r")],
                                [numpy_helper.from_array(np.array([1, -1], np.int64), "s")]),
     r"node 'r' \(Reshape\): reshapes \(batch, \(4,\)\) to \[1, -1\]: it touches the sample axis"),
    ("softplus threshold", bad_graph([helper.make_node("Softplus", ["x"], ["s"]),
                                      helper.make_node("Greater", ["x", "t"], ["g"]),
                                      helper.make_node("Where", ["g", "x", "s"], ["y"], name="w")],
                                     [numpy_helper.from_array(np.array(3.0, np.float32), "t")]),
     r"node 'w' \(Where\): Softplus\(beta=1, threshold=3\): the threshold is too small"),
    ("dropout training", bad_graph([helper.make_node("Dropout", ["x", "r", "t"], ["y"], name="dr")],
                                   [numpy_helper.from_array(np.array(0.5, np.float32), "r"),
                                    numpy_helper.from_array(np.array(True), "t")]),
     r"node 'dr' \(Dropout\): runs in training mode"),
    ("concat batch", bad_graph([helper.make_node("Concat", ["x", "x"], ["y"], name="c", axis=0)]),
     r"node 'c' \(Concat\): concatenates along the batch axis"),
    ("constant output", bad_graph([helper.make_node("Identity", ["w"], ["y"])], [W]),
     r"the graph output 'y' does not depend on the input"),
]


@pytest.mark.parametrize("label, model, message", REFUSALS, ids=[r[0] for r in REFUSALS])
def test_unsupported_graphs_are_refused_in_one_line(label, model, message, tmp_path):
    path = tmp_path / "bad.onnx"
    path.write_bytes(model.SerializeToString())
    with pytest.raises(ConversionError, match=message) as info:
        onnx_to_spec(path)
    assert "\n" not in str(info.value) and str(info.value).startswith(str(path))


def test_unreadable_files_are_refused_in_one_line(tmp_path):
    good = onnx_cases.build("Add skip, Concat", 17).SerializeToString()
    cases = {
        "empty.onnx": (b"", "empty file"),
        "garbage.onnx": (b"\xff\xfe not a protobuf \x00\x01", "not an ONNX model"),
        "truncated.onnx": (good[: len(good) // 3], "(not an ONNX model|invalid ONNX model)"),
        "text.onnx": (b"FKB 1\nsha256 00\n", "not an ONNX model"),
    }
    for name, (data, message) in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ConversionError, match=message) as info:
            onnx_to_spec(tmp_path / name)
        assert "\n" not in str(info.value)
    with pytest.raises(ConversionError, match="missing.onnx: no such file"):
        onnx_to_spec(tmp_path / "missing.onnx")
    with pytest.raises(ConversionError, match="is a directory"):
        onnx_to_spec(tmp_path)


def external_model(folder: Path) -> Path:
    g = onnx_cases.Graph(18, (4,))
    model = g.model(g.dense(g.op("Tanh", [g.dense("x", 4, 32)]), 32, 2))
    path = folder / "ext.onnx"
    onnx.save(model, path, save_as_external_data=True, all_tensors_to_one_file=True, location="ext.onnx.data",
              size_threshold=64)
    return path


def test_external_data_is_read_and_checked(tmp_path):
    path = external_model(tmp_path)
    x = np.random.default_rng(2).normal(size=(9, 4)).astype(np.float32)
    assert difference(run_fortran(onnx_to_spec(path), x, tmp_path), run_ort(path, x)) <= TOLERANCE
    data = (tmp_path / "ext.onnx.data").read_bytes()
    (tmp_path / "ext.onnx.data").write_bytes(data[:-8])
    with pytest.raises(ConversionError, match=r"lies beyond the end of ext.onnx.data .*truncated"):
        onnx_to_spec(path)
    (tmp_path / "ext.onnx.data").unlink()
    with pytest.raises(ConversionError, match=r"in the external file ext.onnx.data, which is missing"):
        onnx_to_spec(path)
    model = onnx.load(path, load_external_data=False)
    for tensor in model.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = "../../etc/passwd"
    (tmp_path / "evil.onnx").write_bytes(model.SerializeToString())
    with pytest.raises(ConversionError, match="is not inside the model's folder"):
        onnx_to_spec(tmp_path / "evil.onnx")


# --------------------------------------------------------------------------
# the command line


def fkb(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fkb_cli", *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_cli_converts_describes_and_predicts_onnx(tmp_path):
    model = onnx_cases.build("input and output normalization", 17)
    onnx.save(model, tmp_path / "m.onnx")
    x = onnx_cases.inputs(model)
    np.save(tmp_path / "x.npy", x)
    result = fkb("predict", "m.onnx", "-i", "x.npy", "-o", "y.npy", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert difference(np.load(tmp_path / "y.npy"), run_ort(model, x)) <= TOLERANCE
    result = fkb("info", "m.onnx", cwd=tmp_path)
    assert result.returncode == 0 and "(of the model file it converts to)" in result.stdout
    assert fkb("convert", "m.onnx", "m.fkb", cwd=tmp_path).returncode == 0
    digest = load_spec(tmp_path / "m.fkb").sha256
    assert digest in result.stdout
    assert fkb("convert", "m.fkb", "back.onnx", cwd=tmp_path).returncode == 0
    assert difference(run_ort(tmp_path / "back.onnx", x), run_ort(model, x)) <= TOLERANCE


def test_cli_refuses_bad_onnx_in_one_line_and_keeps_the_old_file(tmp_path):
    (tmp_path / "bad.onnx").write_bytes(REFUSALS[0][1].SerializeToString())
    (tmp_path / "out.fkb").write_bytes(b"old")
    for command in (["convert", "bad.onnx", "out.fkb"], ["info", "bad.onnx"],
                    ["predict", "bad.onnx", "-i", "x.npy", "-o", "y.npy"]):
        np.save(tmp_path / "x.npy", np.zeros((2, 4), np.float32))
        result = fkb(*command, cwd=tmp_path)
        assert result.returncode == 1
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "operator Conv is not supported" in lines[0], result.stderr
    assert (tmp_path / "out.fkb").read_bytes() == b"old"
    assert not (tmp_path / "y.npy").exists()


# --------------------------------------------------------------------------
# fuzzing: mutated files give a model or one line, never another exception


def mutations(data: bytes, rng: np.random.Generator, n: int):
    for _ in range(n):
        buffer = bytearray(data)
        kind = rng.integers(5)
        if kind == 0:  # flip bytes
            for position in rng.integers(0, len(buffer), size=rng.integers(1, 9)):
                buffer[position] ^= 1 << int(rng.integers(8))
        elif kind == 1:  # truncate
            del buffer[int(rng.integers(0, len(buffer))):]
        elif kind == 2:  # random bytes over a stretch
            start = int(rng.integers(0, len(buffer)))
            length = int(rng.integers(1, 32))
            buffer[start:start + length] = rng.integers(0, 256, size=length, dtype=np.uint8).tobytes()
        elif kind == 3:  # a stretch repeated
            start = int(rng.integers(0, len(buffer)))
            buffer[start:start] = buffer[start:start + int(rng.integers(1, 64))]
        else:  # a byte set to a varint-like extreme
            buffer[int(rng.integers(0, len(buffer)))] = int(rng.choice([0x00, 0x7F, 0x80, 0xFF]))
        yield bytes(buffer)


FUZZ_SOURCES = ["Add skip, Concat", "GELU as Erf (TorchScript)", "LayerNorm decomposed (Pow, Div)",
                "Shape/Gather/Reshape/Flatten/Squeeze", "input and output normalization"]


@pytest.mark.parametrize("source", FUZZ_SOURCES)
def test_fuzzed_files_give_a_model_or_one_line(source, tmp_path):
    data = onnx_cases.build(source, 17).SerializeToString()
    rng = np.random.default_rng(sum(map(ord, source)))
    outcomes = {"model": 0, "refused": 0}
    for i, mutated in enumerate(mutations(data, rng, 120)):
        path = tmp_path / f"m{i}.onnx"
        path.write_bytes(mutated)
        try:
            spec = onnx_to_spec(path)
        except ConversionError as exc:
            assert "\n" not in str(exc) and str(exc).startswith(str(path))
            outcomes["refused"] += 1
        else:
            assert spec.layers and spec.n_inputs >= 1
            outcomes["model"] += 1
        path.unlink()
    assert outcomes["refused"] > 0


def test_fuzzed_external_data_gives_a_model_or_one_line(tmp_path):
    path = external_model(tmp_path)
    data_file = tmp_path / "ext.onnx.data"
    original = data_file.read_bytes()
    header = path.read_bytes()
    rng = np.random.default_rng(77)
    for mutated in mutations(header, rng, 60):
        path.write_bytes(mutated)
        try:
            onnx_to_spec(path)
        except ConversionError as exc:
            assert "\n" not in str(exc)
    path.write_bytes(header)
    for mutated in mutations(original, rng, 20):
        data_file.write_bytes(mutated)
        try:
            onnx_to_spec(path)
        except ConversionError as exc:
            assert "\n" not in str(exc)
