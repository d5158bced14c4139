"""The FKB model file: exact round trips, the original text format, clear errors, reference evaluation."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest

from emulators.modelfile import (
    ACTIVATIONS,
    LayerSpec,
    ModelFileError,
    ModelSpec,
    Normalization,
    apply_activation,
    encode_model_file,
    evaluate,
    read_model_file,
    write_model_file,
)

FKB_COMPAT = Path(__file__).resolve().parent / "data" / "fkb-compat"
SAMPLE = FKB_COMPAT / "simple_model_with_weights.txt"


# --------------------------------------------------------------------------
# helpers


def residual_spec(seed: int = 0) -> ModelSpec:
    """The example network of docs/model-file.md with random weights."""
    rng = np.random.default_rng(seed)

    def f32(*shape):
        return rng.normal(size=shape).astype(np.float32)

    return ModelSpec(
        n_inputs=3,
        n_outputs=2,
        name="tiny_residual_mlp",
        inputs=[("T_850", "K"), ("q_850", "kg kg-1"), ("ps", "Pa")],
        outputs=[("dTdt", "K s-1"), ("precip", "kg m-2 s-1")],
        input_normalization=Normalization(f32(3), np.abs(f32(3)) + 0.5),
        output_normalization=Normalization(f32(2), np.abs(f32(2)) + 0.5),
        layers=[
            LayerSpec(1, "dense", 4, [0], {"activation": "relu", "use_bias": 1}, {"kernel": f32(4, 3), "bias": f32(4)}),
            LayerSpec(2, "dense", 4, [1], {"activation": "linear", "use_bias": 1}, {"kernel": f32(4, 4), "bias": f32(4)}),
            LayerSpec(3, "add", 4, [1, 2]),
            LayerSpec(4, "dense", 2, [3], {"activation": "linear", "use_bias": 1}, {"kernel": f32(2, 4), "bias": f32(2)}),
        ],
    )


def with_hash(header_and_payload: bytes, version: int = 1) -> bytes:
    """A file whose hash line matches ``header_and_payload`` (to reach later checks)."""
    digest = hashlib.sha256(header_and_payload).hexdigest()
    return f"FKB {version}\nsha256 {digest}\n".encode() + header_and_payload


def body_of(data: bytes) -> bytes:
    return data.split(b"\n", 2)[2]


def read_error(tmp_path: Path, data: bytes, name: str = "model.fkb") -> str:
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(ModelFileError) as info:
        read_model_file(path)
    message = str(info.value)
    assert "\n" not in message
    assert str(path) in message
    return message


# --------------------------------------------------------------------------
# writing and reading version 1


def test_round_trip_is_byte_exact_and_keeps_every_field(tmp_path):
    spec = residual_spec()
    path = tmp_path / "m.fkb"
    digest = write_model_file(spec, path)
    data = path.read_bytes()
    assert hashlib.sha256(body_of(data)).hexdigest() == digest
    back = read_model_file(path)
    assert back.sha256 == digest
    assert back.name == "tiny_residual_mlp"
    assert back.inputs == spec.inputs and back.outputs == spec.outputs
    assert back.output_units == ["K s-1", "kg m-2 s-1"]
    for a, b in zip(back.layers, spec.layers):
        assert (a.id, a.kind, a.n_out, a.inputs, a.attributes) == (b.id, b.kind, b.n_out, b.inputs, b.attributes)
        assert list(a.params) == list(b.params)
        for name in a.params:
            assert a.params[name].dtype == np.float32
            assert a.params[name].tobytes() == b.params[name].tobytes()
    for a, b in zip(back.input_normalization, spec.input_normalization):
        assert a.tobytes() == b.tobytes()
    assert encode_model_file(back) == data


def test_header_matches_the_documented_layout():
    text = encode_model_file(residual_spec()).split(b"end_header\n")[0].decode()
    lines = text.splitlines()
    assert lines[0] == "FKB 1"
    assert lines[1].startswith("sha256 ") and len(lines[1]) == 7 + 64
    assert lines[2:] == [
        "name tiny_residual_mlp",
        "n_inputs 3",
        "n_outputs 2",
        "input 1 T_850 K",
        "input 2 q_850 kg kg-1",
        "input 3 ps Pa",
        "output 1 dTdt K s-1",
        "output 2 precip kg m-2 s-1",
        "input_normalization",
        "param offset 3",
        "param scale 3",
        "output_normalization",
        "param offset 2",
        "param scale 2",
        "layer 1 dense 4 inputs=0 activation=relu use_bias=1",
        "param kernel 4 3",
        "param bias 4",
        "layer 2 dense 4 inputs=1 activation=linear use_bias=1",
        "param kernel 4 4",
        "param bias 4",
        "layer 3 add 4 inputs=1,2",
        "layer 4 dense 2 inputs=3 activation=linear use_bias=1",
        "param kernel 2 4",
        "param bias 2",
    ]


def test_dense_kernel_bytes_are_the_keras_kernel_in_c_order():
    keras_kernel = np.arange(12, dtype=np.float32).reshape(3, 4)  # (n_in, units)
    spec = ModelSpec(
        n_inputs=3,
        n_outputs=4,
        layers=[LayerSpec(1, "dense", 4, [0], {"activation": "linear", "use_bias": 0}, {"kernel": keras_kernel.T})],
    )
    data = encode_model_file(spec)
    payload = data[data.index(b"end_header\n") + len(b"end_header\n") :]
    assert payload == keras_kernel.astype("<f4").tobytes()
    x = np.array([[1.0, 2.0, 3.0]])
    assert np.array_equal(evaluate(spec, x), x @ keras_kernel)


def test_special_float32_values_survive_bit_for_bit(tmp_path):
    values = np.array([-0.0, 1e-45, -1e-45, 1.1754942e-38, 3.4028235e38, -3.4028235e38, 1 / 3], dtype=np.float32)
    spec = ModelSpec(
        n_inputs=7,
        n_outputs=7,
        layers=[LayerSpec(1, "rescaling", 7, [0], {}, {"scale": values, "offset": values[::-1].copy()})],
    )
    write_model_file(spec, tmp_path / "s.fkb")
    back = read_model_file(tmp_path / "s.fkb")
    assert back.layers[0].params["scale"].tobytes() == values.tobytes()
    assert back.layers[0].params["offset"].tobytes() == values[::-1].tobytes()


def test_float64_params_are_written_only_when_float32_holds_them(tmp_path):
    exact = residual_spec()
    exact.layers[0].params["bias"] = np.array([0.5, -1.0, 2.0, 0.25])  # float64, exactly representable
    write_model_file(exact, tmp_path / "ok.fkb")
    assert read_model_file(tmp_path / "ok.fkb").layers[0].params["bias"].tolist() == [0.5, -1.0, 2.0, 0.25]
    inexact = residual_spec()
    inexact.layers[0].params["bias"] = np.array([0.1, 0.2, 0.3, 0.4])
    with pytest.raises(ModelFileError, match="float32 cannot hold exactly"):
        write_model_file(inexact, tmp_path / "bad.fkb")
    assert not (tmp_path / "bad.fkb").exists()


def test_attribute_values_parse_as_int_float_or_identifier(tmp_path):
    spec = ModelSpec(
        n_inputs=2,
        n_outputs=2,
        layers=[
            LayerSpec(1, "relu", 2, [0], {"max_value": 6, "negative_slope": 0.1, "threshold": 1e-05}),
            LayerSpec(2, "dropout", 2, [1], {"variant": "gaussian_noise", "stddev": 0.30000001192092896}),
        ],
    )
    write_model_file(spec, tmp_path / "a.fkb")
    back = read_model_file(tmp_path / "a.fkb")
    attrs = back.layers[0].attributes
    assert attrs == {"max_value": 6, "negative_slope": 0.1, "threshold": 1e-05}
    assert isinstance(attrs["max_value"], int) and isinstance(attrs["threshold"], float)
    assert back.layers[1].attributes == {"variant": "gaussian_noise", "stddev": 0.30000001192092896}
    assert b"layer 1 relu 2 inputs=0 max_value=6 negative_slope=0.1 threshold=1e-05\n" in (tmp_path / "a.fkb").read_bytes()


def test_write_is_atomic_and_replaces(tmp_path):
    path = tmp_path / "m.fkb"
    path.write_bytes(b"old content")
    write_model_file(residual_spec(1), path)
    assert read_model_file(path).sha256 is not None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.fkb"]
    with pytest.raises(ModelFileError, match="cannot write"):
        write_model_file(residual_spec(), tmp_path / "missing_dir" / "m.fkb")


def test_optional_sections_may_be_absent(tmp_path):
    spec = residual_spec()
    spec.name = None
    spec.inputs, spec.outputs = [], []
    spec.input_normalization = spec.output_normalization = None
    write_model_file(spec, tmp_path / "m.fkb")
    back = read_model_file(tmp_path / "m.fkb")
    assert back.name is None and back.inputs == [] and back.input_normalization is None
    assert back.input_names == ["x1", "x2", "x3"] and back.output_names == ["y1", "y2"]
    assert back.input_units == ["1", "1", "1"]


def test_reader_accepts_repeated_spaces_and_units_with_spaces(tmp_path):
    payload = np.arange(6, dtype="<f4").tobytes()
    header = (
        b"n_inputs  3\nn_outputs 2\ninput 1 a K\ninput 2 b  kg m-2 s-1\ninput 3 c W m-2\n"
        b"layer 1 dense 2 inputs=0  activation=tanh use_bias=0\nparam  kernel 2  3\nend_header\n"
    )
    path = tmp_path / "m.fkb"
    path.write_bytes(with_hash(header + payload))
    spec = read_model_file(path)
    assert spec.input_units == ["K", "kg m-2 s-1", "W m-2"]
    kernel = np.arange(6, dtype=np.float32).reshape((2, 3), order="F")
    assert np.array_equal(spec.layers[0].params["kernel"], kernel)


# --------------------------------------------------------------------------
# errors


def test_missing_file(tmp_path):
    with pytest.raises(ModelFileError, match=r"nothing\.fkb: no such file"):
        read_model_file(tmp_path / "nothing.fkb")


def test_empty_file_and_bad_magic(tmp_path):
    assert "empty file" in read_error(tmp_path, b"")
    assert "bad magic" in read_error(tmp_path, b"PK\x03\x04 zip data")
    assert "bad magic" in read_error(tmp_path, b"FKBX 1\n")


def test_unknown_version_is_refused(tmp_path):
    data = encode_model_file(residual_spec())
    message = read_error(tmp_path, with_hash(body_of(data), version=4))
    assert "unknown format version 4" in message
    # version 2 adds the training section, which version 1 does not allow
    message = read_error(tmp_path, with_hash(body_of(data).replace(
        b"end_header\n", b"training precision=32 iterations=0 loss=mse\noptimizer sgd\nend_header\n")))
    assert "needs format version 2" in message


def test_corrupt_and_truncated_files_fail_the_hash(tmp_path):
    data = bytearray(encode_model_file(residual_spec()))
    data[-5] ^= 0x01
    assert "hash mismatch" in read_error(tmp_path, bytes(data))
    good = encode_model_file(residual_spec())
    assert "hash mismatch" in read_error(tmp_path, good[:-4])
    assert "hash mismatch" in read_error(tmp_path, good[: good.index(b"end_header")])
    assert "sha256" in read_error(tmp_path, b"FKB 1\nsha256 nothex\nn_inputs 1\n")


def test_payload_size_mismatch(tmp_path):
    body = body_of(encode_model_file(residual_spec()))
    assert "payload size mismatch" in read_error(tmp_path, with_hash(body + b"\0\0\0\0"))
    assert "payload size mismatch" in read_error(tmp_path, with_hash(body[:-4]))


def test_non_finite_weights_are_refused(tmp_path):
    header = b"n_inputs 1\nn_outputs 1\nlayer 1 dense 1 inputs=0 activation=linear use_bias=1\nparam kernel 1 1\nparam bias 1\nend_header\n"
    for bad in (np.nan, np.inf, -np.inf):
        payload = np.array([1.0, bad], dtype="<f4").tobytes()
        message = read_error(tmp_path, with_hash(header + payload))
        assert "param bias holds a non-finite value" in message


HEADER_CASES = [
    ("layer 1 dense 2 inputs=0 activation=relu use_bias=1\nparam kernel 2 2\nparam bias 2\nwhatever 3\n", "unknown keyword 'whatever'"),
    ("layer 1 conv1d 2 inputs=0\n", "unknown layer type 'conv1d'"),
    ("layer 1 dense 2 inputs=0 activation=sparsemax use_bias=1\nparam kernel 2 2\nparam bias 2\n", "unknown activation sparsemax"),
    ("layer 1 dense 2 inputs=1 activation=relu use_bias=1\nparam kernel 2 2\nparam bias 2\n", "input 1 is not an earlier layer"),
    ("layer 1 dense 2 inputs=0 activation=relu use_bias=1\nparam kernel 2 3\nparam bias 2\n", "param kernel has shape (2, 3), expected (2, 2)"),
    ("layer 1 dense 2 inputs=0 activation=relu use_bias=1\nparam kernel 2 2\n", "missing param bias"),
    ("layer 1 dense 2 inputs=0 activation=relu use_bias=0\nparam kernel 2 2\nparam bias 2\n", "unexpected param bias"),
    ("layer 1 dense 2 inputs=0 activation=leaky_relu use_bias=0\nparam kernel 2 2\n", "activation leaky_relu needs attribute alpha"),
    ("layer 1 dense 2 inputs=0 activation=tanh alpha=0.1 use_bias=0\nparam kernel 2 2\n", "activation tanh takes no alpha"),
    ("layer 1 dense 2 inputs=0 activation=tanh use_bias=0 colour=blue\nparam kernel 2 2\n", "unknown attribute colour"),
    ("layer 1 dense 2 inputs=0 activation=tanh use_bias=2\nparam kernel 2 2\n", "use_bias=2 is not 0 or 1"),
    ("layer 1 dense 2 inputs=0 activation tanh use_bias=0\nparam kernel 2 2\n", "malformed attribute 'activation'"),
    ("layer 1 dense 2 activation=tanh use_bias=0\nparam kernel 2 2\n", "layer line has no inputs="),
    ("param kernel 2 2\nlayer 1 dense 2 inputs=0 activation=tanh use_bias=0\n", "param line outside a layer"),
    ("layer 1 dense 2 inputs=0 activation=tanh use_bias=0\nparam kernel 2 2\nparam kernel 2 2\n", "param kernel declared twice"),
    ("layer 2 dense 2 inputs=0 activation=tanh use_bias=0\nparam kernel 2 2\n", "layer id 2 out of order"),
    ("layer 1 dense 3 inputs=0 activation=tanh use_bias=0\nparam kernel 3 2\n", "last layer has width 3 but n_outputs is 2"),
    ("layer 1 dense 3 inputs=0 activation=tanh use_bias=0\nparam kernel 3 2\nlayer 2 add 2 inputs=0,1\n", "add of inputs with different widths [2, 3]"),
    ("layer 1 subtract 2 inputs=0,0,0\n", "subtract needs exactly 2 inputs"),
    ("layer 1 relu 2 inputs=0,0 negative_slope=0.0 threshold=0.0\n", "relu takes 1 input, got 2"),
    ("layer 1 relu 3 inputs=0 negative_slope=0.0 threshold=0.0\n", "output width 3 inconsistent"),
    ("layer 1 dropout 2 inputs=0 variant=gaussian_noise rate=0.1\n", "variant gaussian_noise needs attribute stddev"),
    ("input 1 a K\ninput 3 c K\nlayer 1 softmax 2 inputs=0\n", "input index '3' is not in 1..2"),
    ("input 1 a K\nlayer 1 softmax 2 inputs=0\n", "input lines given for 1 of the 2 inputs (all or none)"),
    ("input 1 a K\ninput 1 b K\nlayer 1 softmax 2 inputs=0\n", "input 1 given twice"),
    ("input 1 a\nlayer 1 softmax 2 inputs=0\n", "input line needs an index, a name and units"),
    ("input_normalization\nparam offset 2\nlayer 1 softmax 2 inputs=0\n", "input_normalization needs exactly the params offset and scale"),
    ("layer 1 normalization 2 inputs=0 invert=0\nparam mean 2\nparam variance 3\n", "param variance has shape (3,), expected (2,)"),
    ("layer 1 softmax 2 inputs=0\n", None),
]


@pytest.mark.parametrize("layers, expected", HEADER_CASES)
def test_malformed_headers_are_refused_with_the_problem(tmp_path, layers, expected):
    header = ("n_inputs 2\nn_outputs 2\n" + layers + "end_header\n").encode()
    sizes = {"kernel 2 2": 4, "kernel 2 3": 6, "kernel 3 2": 6, "bias 2": 2, "offset 2": 2, "mean 2": 2, "variance 3": 3}
    n_values = sum(n * layers.count("param " + key + "\n") for key, n in sizes.items())
    payload = np.linspace(0.5, 1.5, n_values).astype("<f4").tobytes()
    data = with_hash(header + payload)
    if expected is None:  # the control case reads fine
        path = tmp_path / "ok.fkb"
        path.write_bytes(data)
        assert read_model_file(path).layers[0].kind == "softmax"
        return
    assert expected in read_error(tmp_path, data)


def test_header_without_end_and_non_ascii(tmp_path):
    assert "no end_header" in read_error(tmp_path, with_hash(b"n_inputs 1\nn_outputs 1\n"))
    assert "not ASCII" in read_error(tmp_path, with_hash("name caf\u00e9\nend_header\n".encode()))
    assert "no n_outputs" in read_error(tmp_path, with_hash(b"n_inputs 1\nend_header\n"))


def test_negative_normalization_variance_is_refused(tmp_path):
    header = b"n_inputs 1\nn_outputs 1\nlayer 1 normalization 1 inputs=0 invert=0\nparam mean 1\nparam variance 1\nend_header\n"
    data = with_hash(header + np.array([0.0, -1.0], "<f4").tobytes())
    assert "variance has negative values" in read_error(tmp_path, data)


def test_writer_refuses_invalid_specs(tmp_path):
    bad = residual_spec()
    bad.layers[1].kind = "conv1d"
    with pytest.raises(ModelFileError, match="unknown layer type conv1d"):
        write_model_file(bad, tmp_path / "x.fkb")
    bad = residual_spec()
    bad.inputs[1] = ("q 850", "kg")
    with pytest.raises(ModelFileError, match="input 2 name"):
        encode_model_file(bad)
    bad = residual_spec()
    bad.layers[0].params["bias"] = np.array([1, np.nan, 0, 0], np.float32)
    with pytest.raises(ModelFileError, match="non-finite"):
        encode_model_file(bad)
    bad = residual_spec()
    bad.layers[0].attributes["activation"] = "two words"
    with pytest.raises(ModelFileError):
        encode_model_file(bad)
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------
# reference evaluation


def test_activations_take_their_documented_values():
    x = np.array([[-3.0, -1.0, 0.0, 1.0, 3.0]])

    def act(name, alpha=None):
        return apply_activation(name, x, alpha)[0]

    assert np.allclose(act("hard_sigmoid"), [0, 1 / 3, 0.5, 2 / 3, 1])
    assert np.allclose(act("hard_silu"), x[0] * np.array([0, 1 / 3, 0.5, 2 / 3, 1]))
    assert np.allclose(act("leaky_relu"), [-0.6, -0.2, 0, 1, 3])
    assert np.allclose(act("leaky_relu", 0.5), [-1.5, -0.5, 0, 1, 3])
    assert np.allclose(act("elu", 2.0), [2 * np.expm1(-3), 2 * np.expm1(-1), 0, 1, 3])
    assert np.allclose(act("celu", 2.0), [2 * np.expm1(-1.5), 2 * np.expm1(-0.5), 0, 1, 3])
    assert np.allclose(act("squareplus"), (x[0] + np.sqrt(x[0] ** 2 + 4)) / 2)
    assert np.allclose(act("gelu")[3], 0.8413447460685429)
    assert np.allclose(act("gelu_tanh")[3], 0.8411919906082768)
    assert np.allclose(act("selu")[3], 1.0507009873554805)
    assert np.allclose(act("gaussian"), np.exp(-x[0] ** 2))
    assert act("step").tolist() == [0, 0, 0, 1, 1]
    assert np.allclose(act("relu6"), [0, 0, 0, 1, 3])
    assert np.allclose(act("hard_tanh"), [-1, -1, 0, 1, 1])
    assert np.allclose(act("log_sigmoid"), -np.log1p(np.exp(-x[0])))
    assert np.allclose(act("tanh_shrink"), x[0] - np.tanh(x[0]))
    assert np.allclose(np.exp(act("log_softmax")), act("softmax"))
    assert np.isclose(act("softmax").sum(), 1.0)
    assert np.allclose(act("mish"), x[0] * np.tanh(np.log1p(np.exp(x[0]))))
    assert np.allclose(act("silu"), x[0] / (1 + np.exp(-x[0])))
    big = apply_activation("sigmoid", np.array([[-1000.0, 1000.0]]))
    assert big.tolist() == [[0.0, 1.0]]
    assert set(ACTIVATIONS) >= {"gaussian", "step", "gelu_tanh"}


def test_relu_layer_follows_keras_formula():
    x = np.array([[-10.0, -5.0, 0.0, 5.0, 10.0]])
    spec = ModelSpec(5, 5, [LayerSpec(1, "relu", 5, [0], {"max_value": 10.0, "negative_slope": 0.5, "threshold": 0.0})])
    assert evaluate(spec, x).tolist() == [[-5.0, -2.5, 0.0, 5.0, 10.0]]  # the example of keras.layers.ReLU
    spec.layers[0].attributes = {"max_value": 4.0, "negative_slope": 0.5, "threshold": 1.0}
    assert evaluate(spec, np.array([[0.0, 1.0, 2.0, 5.0, -1.0]])).tolist() == [[-0.5, 0.0, 2.0, 4.0, -1.0]]


def test_normalizations_and_layers_evaluate_as_documented():
    x = np.array([[1.0, 2.0, 4.0], [0.0, -1.0, 1.0]])
    mean = np.array([1.0, 0.0, -1.0], np.float32)
    variance = np.array([4.0, 0.0, 1.0], np.float32)
    norm = ModelSpec(3, 3, [LayerSpec(1, "normalization", 3, [0], {"invert": 0}, {"mean": mean, "variance": variance})])
    assert np.allclose(evaluate(norm, x), (x - mean) / np.array([2.0, 1e-7, 1.0]))
    norm.layers[0].attributes["invert"] = 1
    assert np.allclose(evaluate(norm, x), mean + x * np.array([2.0, 1e-7, 1.0]))
    ln = ModelSpec(3, 3, [LayerSpec(1, "layer_normalization", 3, [0], {"epsilon": 0.0, "center": 0, "scale": 0})])
    out = evaluate(ln, x)
    assert np.allclose(out.mean(axis=1), 0) and np.allclose(out.std(axis=1), 1)
    cat = ModelSpec(3, 6, [LayerSpec(1, "prelu", 3, [0], {}, {"alpha": np.array([0.5, -1, 2], np.float32)}), LayerSpec(2, "concatenate", 6, [0, 1])])
    assert evaluate(cat, np.array([[-2.0, -2.0, 3.0]])).tolist() == [[-2, -2, 3, -1, 2, 3]]


def test_evaluate_applies_normalization_sections():
    spec = residual_spec(3)
    x = np.random.default_rng(0).normal(size=(5, 3))
    (i_off, i_scale), (o_off, o_scale) = spec.input_normalization, spec.output_normalization
    k = {layer.id: layer.params for layer in spec.layers}
    h1 = np.maximum((x - i_off) / i_scale @ k[1]["kernel"].T + k[1]["bias"], 0)
    h2 = h1 @ k[2]["kernel"].T + k[2]["bias"]
    y = (h1 + h2) @ k[4]["kernel"].T + k[4]["bias"]
    assert np.allclose(evaluate(spec, x), y * o_scale + o_off, rtol=1e-12)


# --------------------------------------------------------------------------
# the original FKB text format


def test_original_fkb_sample_reproduces_the_original_library():
    spec = read_model_file(SAMPLE)
    x = np.load(FKB_COMPAT / "simple_model_with_weights.x.npy")
    y = np.load(FKB_COMPAT / "simple_model_with_weights.y_fkb.npy")
    assert spec.sha256 is None and spec.n_inputs == 5 and spec.n_outputs == 2
    assert [layer.attributes["activation"] for layer in spec.layers] == ["leaky_relu"] * 3 + ["linear"]
    assert spec.layers[0].attributes["alpha"] == 0.3
    predicted = evaluate(spec, x)
    assert np.max(np.abs(predicted - y)) <= 4 * np.finfo(np.float32).eps * np.max(np.abs(y))


def fkb_text(layer_lines, biases, weights, batchnorm=(), lr="0.001"):
    """A file written the way KerasWeightsProcessing/convert_weights.py writes them (tabs, 7 digits)."""
    lines = [str(len(layer_lines))] + [f"{n}\t{v}" for n, v in layer_lines] + [lr]
    for record in [*biases, *weights, *batchnorm]:
        lines.append("\t".join(f"{v:0.7e}" for v in record))
    return "\n".join(lines) + "\n"


def test_original_format_with_batchnorm_dropout_and_every_activation(tmp_path):
    rng = np.random.default_rng(5)
    sizes = [4, 5, 3, 3, 2, 2, 3, 3, 3, 2, 2]
    acts = ["relu", "tanh", "sigmoid", "elu", "softplus", "exponential", "gaussian", "step", "linear", "leakyrelu"]
    kernels = [rng.normal(scale=0.5, size=(a, b)).astype(np.float32) for a, b in zip(sizes[:-1], sizes[1:])]  # Keras (n_in, n_out)
    biases = [rng.normal(scale=0.1, size=k.shape[1]).astype(np.float32) for k in kernels]
    bn = [rng.normal(size=5).astype(np.float32) for _ in range(3)] + [rng.uniform(0.5, 2, 5).astype(np.float32)]
    layer_lines = [("input", 4)]
    for i, (kernel, act) in enumerate(zip(kernels, acts)):
        layer_lines += [("dense", kernel.shape[1]), (act, 0.7 if act in ("elu", "leakyrelu") else 0)]
        if i == 0:
            layer_lines += [("batchnormalization", 0), ("dropout", 0.25)]
    path = tmp_path / "orig.txt"
    # kernels are written as w.T.flatten() of the Keras kernel, as convert_weights does
    path.write_text(fkb_text(layer_lines, biases, [k.T.flatten() for k in kernels], bn))
    spec = read_model_file(path)
    assert [layer.kind for layer in spec.layers[:4]] == ["dense", "batch_normalization", "dropout", "dense"]
    assert spec.layers[1].attributes == {"epsilon": 0.001, "center": 1, "scale": 1}
    assert spec.layers[2].attributes == {"variant": "dropout", "rate": 0.25}
    x = rng.normal(size=(7, 4))

    def round7(a):
        return np.array([float(f"{v:0.7e}") for v in a.ravel()], np.float32).reshape(a.shape).astype(np.float64)

    h = x
    for i, (kernel, bias, act) in enumerate(zip(kernels, biases, acts)):
        z = h @ round7(kernel) + round7(bias)
        h = {
            "relu": np.maximum(z, 0),
            "tanh": np.tanh(z),
            "sigmoid": 1 / (1 + np.exp(-z)),
            "elu": np.where(z > 0, z, 0.7 * np.expm1(np.minimum(z, 0))),
            "softplus": np.log1p(np.exp(z)),
            "exponential": np.exp(z),
            "gaussian": np.exp(-(z**2)),
            "step": (z > 0).astype(float),
            "linear": z,
            "leakyrelu": np.maximum(0.7 * z, z),
        }[act]
        if i == 0:
            beta, gamma, mean, var = (round7(v) for v in bn)
            h = (h - mean) / np.sqrt(var + 0.001) * gamma + beta
    assert np.allclose(evaluate(spec, x), h, rtol=1e-6, atol=1e-6)
    # and the upgrade to version 1 keeps it
    write_model_file(spec, tmp_path / "orig.fkb")
    assert np.array_equal(evaluate(read_model_file(tmp_path / "orig.fkb"), x), evaluate(spec, x))


def test_original_format_list_directed_records(tmp_path):
    # a record may span lines, use commas, repeat counts and Fortran D exponents
    text = "3\ninput 2\ndense 2\nlinear 0\n1d-3\n0.5, 2*0.0\n"  # bias record: 0.5 0 ... and a 3rd value: too many
    path = tmp_path / "a.txt"
    path.write_text(text + "1 0\n0 1\n")
    assert "3 values where 2 were expected" in str(pytest.raises(ModelFileError, read_model_file, path).value)
    path.write_text("3\ninput 2\ndense 2\nlinear 0\n1d-3\n0.5,\n -1.5D0\n1 2 3 4\n")
    spec = read_model_file(path)
    assert spec.layers[0].params["bias"].tolist() == [0.5, -1.5]
    assert np.array_equal(spec.layers[0].params["kernel"], [[1, 2], [3, 4]])  # w(n_in, n_out) column-major


ORIGINAL_ERRORS = [
    ("3\ninput 2\ndense 1\nsoftmax 0\n0.1\n0\n1 1\n", "not an activation the original library knows"),
    ("3\ninput 2\ndense 1\nleakyrelu 1.5\n0.1\n0\n1 1\n", "leakyrelu slope 1.5 > 1"),
    ("2\ninput 2\nrelu 0\n0.1\n", "activation line 'relu' does not follow a dense line"),
    ("2\ninput 2\ndense 1\n0.1\n0\n1 1\n", "dense line without a following activation line"),
    ("3\ndense 1\nlinear 0\ninput 2\n0.1\n0\n1 1\n", "the first layer line must be 'input <n>'"),
    ("3\ninput 2\ndense 1\nlinear 0\n0.1\n0\n1\n", "file ends while reading weights of layer 1"),
    ("3\ninput 2\ndense 1\nlinear 0\n0.1\n0\n1 1\n7\n", "unexpected data after the last tensor"),
    ("3\ninput 2\nconv2d 1\nlinear 0\n0.1\n", "unknown layer 'conv2d'"),
    ("3\ninput 2\ndense 1.5\nlinear 0\n0.1\n", "layer size 1.5 is not a positive integer"),
    ("3\ninput 2\ndense 1\nlinear 0\n0.1\nzero\n1 1\n", "'zero' is not a number"),
    ("3\ninput 2\ndense 1\nlinear 0\n0.1\nNaN\n1 1\n", "not a number"),
    ("5\ninput 2\ndense 1\nlinear 0\n", "file ends before the 5 layer lines"),
    ("1\ninput 2\n0.1\n", "no layers after its input line"),
    ("2\ninput 2\ndropout\n0.1\n", "layer line needs a name and a value"),
]


@pytest.mark.parametrize("text, expected", ORIGINAL_ERRORS)
def test_original_format_errors(tmp_path, text, expected):
    assert expected in read_error(tmp_path, text.encode(), name="orig.txt")


def test_original_sample_upgrades_to_version_1_with_the_same_predictions(tmp_path):
    spec = read_model_file(SAMPLE)
    write_model_file(spec, tmp_path / "sample.fkb")
    x = np.load(FKB_COMPAT / "simple_model_with_weights.x.npy")
    assert np.array_equal(evaluate(read_model_file(tmp_path / "sample.fkb"), x), evaluate(spec, x))
    assert os.path.getsize(tmp_path / "sample.fkb") > 4 * spec.n_params
