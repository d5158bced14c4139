"""Keras <-> model-file conversion: hundreds of random architectures, exact round trips, refusals."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest

import archgen
from emulators import keras_import
from emulators.convert import (
    ConversionError,
    UnsupportedModelError,
    convert,
    keras_to_spec,
    spec_to_keras,
    write_keras,
)
from emulators.fkb import load
from emulators.modelfile import (
    ACTIVATIONS,
    LayerSpec,
    ModelFileError,
    ModelSpec,
    Normalization,
    encode_model_file,
    evaluate,
    read_model_file,
    write_model_file,
)

FKB_COMPAT = Path(__file__).resolve().parent / "data" / "fkb-compat"
SAMPLE = FKB_COMPAT / "simple_model_with_weights.txt"
SEED = 20240611
N_CASES = 300
BATCH = 25
TOLERANCE = 1e-5  # max|error| / max|y|, float32 Keras against the float64 reference


def relative_error(predicted: np.ndarray, expected: np.ndarray) -> float:
    return float(np.max(np.abs(predicted - expected)) / max(float(np.max(np.abs(expected))), 1e-30))


# --------------------------------------------------------------------------
# random architectures


@pytest.mark.parametrize("batch", range(N_CASES // BATCH))
def test_random_architectures_convert_exactly(batch, tmp_path):
    """Keras -> model file -> the Fortran runtime (32 and 64 bit) and the NumPy
    reference agree with Keras; a share of the
    cases also goes through .keras / .h5 files and the model file -> .keras ->
    model file round trip, which must be byte-identical."""
    keras.backend.clear_session()
    for case in archgen.generate_cases(BATCH, seed=SEED, start=batch * BATCH):
        label = f"case {case.index}: {case.description}"
        y = np.asarray(case.model(case.x))
        spec = keras_to_spec(case.model)
        fkb = tmp_path / f"case{case.index}.fkb"
        write_model_file(spec, fkb)
        data = fkb.read_bytes()
        back = read_model_file(fkb)
        assert relative_error(evaluate(back, case.x), y) <= TOLERANCE, label
        with load(fkb) as net:
            x32 = np.asarray(case.x, np.float32)
            assert relative_error(net.predict(x32), y) <= TOLERANCE, f"Fortran 32-bit, {label}"
            assert relative_error(net.predict(x32.astype(np.float64)), y) <= TOLERANCE, f"Fortran 64-bit, {label}"

        mode = case.index % 6
        if mode in (0, 1):  # Keras file -> model file through the path-based converter
            saved = tmp_path / f"case{case.index}{'.keras' if mode == 0 else '.h5'}"
            case.model.save(saved)
            from_file = tmp_path / f"case{case.index}_from_file.fkb"
            convert(saved, from_file)
            assert from_file.read_bytes() == data, label
        elif mode == 2:  # model file -> .keras -> model file, through files
            keras_path = tmp_path / f"case{case.index}.keras"
            convert(fkb, keras_path)
            again = tmp_path / f"case{case.index}_again.fkb"
            convert(keras_path, again)
            assert again.read_bytes() == data, label
            reloaded = keras.saving.load_model(keras_path, compile=False)
            assert relative_error(evaluate(back, case.x), np.asarray(reloaded(case.x))) <= TOLERANCE, label
        else:  # model file -> Keras model in memory -> model file
            rebuilt = spec_to_keras(back)
            assert encode_model_file(keras_to_spec(rebuilt)) == data, label
            assert relative_error(np.asarray(rebuilt(case.x)), y) <= TOLERANCE, label


def test_generator_covers_every_layer_and_activation():
    keras.backend.clear_session()
    n = max(len(archgen.LAYER_TYPES), len(archgen.ACTIVATIONS))
    kinds, activations, classes = set(), set(), set()
    for case in archgen.generate_cases(n, seed=SEED):
        spec = keras_to_spec(case.model)
        kinds.update(layer.kind for layer in spec.layers)
        activations.update(str(layer.attributes["activation"]) for layer in spec.layers if "activation" in layer.attributes)
        classes.update(type(layer).__name__ for layer in case.model.layers)
        variants = {layer.attributes.get("variant") for layer in spec.layers}
        kinds.update(f"dropout:{v}" for v in variants if v)
    assert activations == set(ACTIVATIONS)
    expected_kinds = {
        "dense", "activation", "relu", "leaky_relu", "elu", "prelu", "softmax", "batch_normalization",
        "layer_normalization", "normalization", "rescaling", "add", "subtract", "multiply", "average",
        "maximum", "minimum", "concatenate", "dropout:dropout", "dropout:gaussian_noise",
        "dropout:gaussian_dropout", "dropout:alpha_dropout",
    }  # fmt: skip
    assert expected_kinds <= kinds
    supported = keras_import._SUPPORTED_CLASSES - {"InputLayer", "SpatialDropout1D"}  # the latter needs 3-D input
    assert supported <= classes


def test_generator_is_deterministic():
    keras.backend.clear_session()
    a = archgen.make_case(3, 17)
    b = archgen.make_case(3, 17)
    assert a.description == b.description
    assert np.array_equal(a.x, b.x)
    assert encode_model_file(keras_to_spec(a.model)) == encode_model_file(keras_to_spec(b.model))


# --------------------------------------------------------------------------
# metadata and exact round trips


def rich_spec() -> ModelSpec:
    """A model file using what Keras has no direct place for."""
    rng = np.random.default_rng(11)

    def f32(*shape, low=-1.0, high=1.0):
        return rng.uniform(low, high, shape).astype(np.float32)

    n = 4
    layers = [
        LayerSpec(1, "dense", 6, [0], {"activation": "leaky_relu", "alpha": 0.35, "use_bias": 1}, {"kernel": f32(6, n), "bias": f32(6)}),
        LayerSpec(2, "dense", 6, [0], {"activation": "elu", "alpha": 0.5, "use_bias": 0}, {"kernel": f32(6, n)}),
        LayerSpec(3, "subtract", 6, [1, 2]),
        LayerSpec(4, "activation", 6, [3], {"activation": "gelu_tanh"}),
        LayerSpec(5, "activation", 6, [4], {"activation": "leaky_relu", "alpha": 0.05}),
        LayerSpec(6, "batch_normalization", 6, [5], {"epsilon": 0.001, "center": 1, "scale": 1},
                  {"gamma": f32(6, low=0.5, high=1.5), "beta": f32(6), "moving_mean": f32(6), "moving_variance": f32(6, low=0.5, high=2)}),
        LayerSpec(7, "dense", 5, [6], {"activation": "gaussian", "use_bias": 1}, {"kernel": f32(5, 6), "bias": f32(5)}),
        LayerSpec(8, "dense", 5, [6], {"activation": "step", "use_bias": 1}, {"kernel": f32(5, 6), "bias": f32(5)}),
        LayerSpec(9, "concatenate", 10, [7, 8]),
        LayerSpec(10, "relu", 10, [9], {"max_value": 6, "negative_slope": 0.1, "threshold": 0.2}),
        LayerSpec(11, "dropout", 10, [10], {"variant": "gaussian_noise", "stddev": 0.1}),
        LayerSpec(12, "dropout", 10, [11], {"variant": "alpha_dropout", "rate": 0.2}),
        LayerSpec(13, "prelu", 10, [12], {}, {"alpha": f32(10)}),
        LayerSpec(14, "layer_normalization", 10, [13], {"epsilon": 1e-05, "center": 0, "scale": 1}, {"gamma": f32(10, low=0.5, high=1.5)}),
        LayerSpec(15, "normalization", 10, [14], {"invert": 1}, {"mean": f32(10), "variance": f32(10, low=0.1, high=3)}),
        LayerSpec(16, "rescaling", 10, [15], {}, {"scale": f32(10), "offset": f32(10)}),
        LayerSpec(17, "elu", 10, [16], {"alpha": 1.5}),
        LayerSpec(18, "dense", 3, [17], {"activation": "celu", "alpha": 1.0, "use_bias": 1}, {"kernel": f32(3, 10), "bias": f32(3)}),
        LayerSpec(19, "softmax", 3, [18]),
    ]  # fmt: skip
    return ModelSpec(
        n_inputs=n,
        n_outputs=3,
        layers=layers,
        name="rich model / with metadata",
        inputs=[("T", "K"), ("q", "kg kg-1"), ("ps", "Pa"), ("SOLIN", "W m-2")],
        outputs=[("a", "1"), ("b", "1"), ("c", "kg m-2 s-1")],
        input_normalization=Normalization(f32(n, low=-5, high=5), f32(n, low=0.5, high=3)),
        output_normalization=Normalization(f32(3), f32(3, low=0.1, high=2)),
    )


def test_model_file_to_keras_and_back_is_byte_identical(tmp_path):
    spec = rich_spec()
    fkb = tmp_path / "rich.fkb"
    write_model_file(spec, fkb)
    keras_path = tmp_path / "rich.keras"
    convert(fkb, keras_path)
    with zipfile.ZipFile(keras_path) as archive:
        assert {"config.json", "model.weights.h5", "fkb_metadata.json"} <= set(archive.namelist())
    convert(keras_path, tmp_path / "again.fkb")
    assert (tmp_path / "again.fkb").read_bytes() == fkb.read_bytes()
    again = read_model_file(tmp_path / "again.fkb")
    assert again.name == "rich model / with metadata"
    assert again.output_units[2] == "kg m-2 s-1"
    # Keras itself loads the archive with the extra entry and predicts like the model file
    model = keras.saving.load_model(keras_path, safe_mode=True, compile=False)
    x = np.random.default_rng(0).normal(size=(40, 4)).astype(np.float32) * 3
    assert relative_error(np.asarray(model(x)), evaluate(spec, x)) <= TOLERANCE


def test_original_fkb_file_converts_to_keras(tmp_path):
    keras_path = tmp_path / "sample.keras"
    convert(SAMPLE, keras_path)
    model = keras.saving.load_model(keras_path, compile=False)
    x = np.load(FKB_COMPAT / "simple_model_with_weights.x.npy")
    y = np.load(FKB_COMPAT / "simple_model_with_weights.y_fkb.npy")
    assert np.max(np.abs(np.asarray(model(x)) - y)) <= 4 * np.finfo(np.float32).eps * np.max(np.abs(y))
    assert [type(layer).__name__ for layer in model.layers[1:3]] == ["Dense", "LeakyReLU"]
    convert(keras_path, tmp_path / "via_keras.fkb")
    convert(SAMPLE, tmp_path / "direct.fkb")
    assert (tmp_path / "via_keras.fkb").read_bytes() == (tmp_path / "direct.fkb").read_bytes()


def test_keras_file_without_metadata_keeps_plain_conversion(tmp_path):
    spec = rich_spec()
    model = spec_to_keras(spec)
    plain = tmp_path / "plain.keras"
    model.save(plain)  # Keras's own save: no fkb_metadata.json
    converted = keras_to_spec(plain)
    assert converted.inputs == [] and converted.input_normalization is None
    assert converted.layers[0].kind == "normalization"  # the input normalization as a plain layer
    x = np.random.default_rng(1).normal(size=(16, 4)).astype(np.float32)
    assert relative_error(evaluate(converted, x), evaluate(spec, x)) <= TOLERANCE


def test_metadata_that_does_not_match_the_model_is_refused(tmp_path):
    keras_path = tmp_path / "rich.keras"
    write_keras(rich_spec(), keras_path)
    with zipfile.ZipFile(keras_path) as archive:
        entries = {name: archive.read(name) for name in archive.namelist()}
    metadata = json.loads(entries["fkb_metadata.json"])
    metadata["layers"][0]["attributes"]["alpha"] = 0.4  # the Keras layer has 0.35
    entries["fkb_metadata.json"] = json.dumps(metadata).encode()
    tampered = tmp_path / "tampered.keras"
    with zipfile.ZipFile(tampered, "w") as archive:
        for name, content in entries.items():
            archive.writestr(name, content)
    with pytest.raises(ConversionError, match="fkb_metadata.json does not describe this model: layer 1 .dense. differs"):
        keras_to_spec(tampered)


@pytest.mark.parametrize(
    "layer, message",
    [
        (LayerSpec(1, "activation", 2, [0], {"activation": "celu", "alpha": 2.0}), "celu with alpha=2.0 has no Keras equivalent"),
        (LayerSpec(1, "activation", 2, [0], {"activation": "squareplus", "alpha": 1.0}), "squareplus with alpha=1.0"),
        (LayerSpec(1, "dropout", 2, [0], {"variant": "spatial_dropout1d", "rate": 0.1}), "SpatialDropout1D needs 3-D inputs"),
        (LayerSpec(1, "leaky_relu", 2, [0], {"negative_slope": -0.5}), r"layer 1 \(leaky_relu\): Keras refuses it: .*negative"),
    ],
)
def test_specs_keras_cannot_express_are_refused(layer, message):
    with pytest.raises(ConversionError, match=message):
        spec_to_keras(ModelSpec(2, 2, [layer]))


def test_input_scales_below_keras_floor_round_trip_exactly(tmp_path):
    """An input that hardly varies in the training data (the top levels'
    humidity) has a scale below the 1e-7 floor of Keras's Normalization layer:
    it is divided by a power-of-two multiple and rescaled, bit for bit the
    runtime's (x - offset) / scale, and comes back to the same model file."""
    rng = np.random.default_rng(7)
    scale = np.array([1.0, 1e-9, 3.7e-12, 2.5e-7, 1e-30], np.float32)
    offset = np.array([0.5, 2e-9, 0.0, -1e-6, 0.0], np.float32)
    spec = ModelSpec(5, 2, [LayerSpec(1, "dense", 2, [0], {"activation": "linear", "use_bias": 1},
                                      {"kernel": rng.normal(size=(2, 5)).astype(np.float32),
                                       "bias": rng.normal(size=2).astype(np.float32)})],
                     input_normalization=Normalization(offset, scale))
    write_model_file(spec, tmp_path / "tiny_scale.fkb")
    convert(tmp_path / "tiny_scale.fkb", tmp_path / "tiny_scale.keras")
    convert(tmp_path / "tiny_scale.keras", tmp_path / "back.fkb")
    back = read_model_file(tmp_path / "back.fkb")
    np.testing.assert_array_equal(back.input_normalization.scale, scale)
    np.testing.assert_array_equal(back.input_normalization.offset, offset)
    x = (offset + scale * rng.normal(size=(64, 5))).astype(np.float32)
    normalized = keras.Model(*(lambda m: (m.input, m.get_layer("input_normalization_rescaling").output))(
        keras.saving.load_model(tmp_path / "tiny_scale.keras")))
    np.testing.assert_array_equal(np.asarray(normalized(x)), (x - offset) / scale)
    np.testing.assert_array_equal(load(tmp_path / "back.fkb").predict(x), load(tmp_path / "tiny_scale.fkb").predict(x))


def test_an_input_rescaling_that_is_not_by_powers_of_two_is_refused(tmp_path):
    spec = ModelSpec(2, 2, [LayerSpec(1, "softmax", 2, [0])],
                     input_normalization=Normalization(np.zeros(2, np.float32), np.array([1.0, 1e-9], np.float32)))
    write_keras(spec, tmp_path / "even.keras")
    with zipfile.ZipFile(tmp_path / "even.keras") as archive:
        metadata = archive.read(keras_import.METADATA_ENTRY)
    model = keras.saving.load_model(tmp_path / "even.keras")
    model.get_layer("input_normalization_rescaling").scale = [1.0, 3.0]
    model.save(tmp_path / "odd.keras")
    with zipfile.ZipFile(tmp_path / "odd.keras", "a") as archive:
        archive.writestr(keras_import.METADATA_ENTRY, metadata)
    with pytest.raises(ConversionError, match=r"odd\.keras: .*not a rescaling of input_normalization by powers of two"):
        convert(tmp_path / "odd.keras", tmp_path / "odd.fkb")


def test_output_scales_below_keras_floor_round_trip_exactly(tmp_path):
    """Tendencies in kg/kg/s have output scales of ~1e-8, below the 1e-7 floor
    of Keras's Normalization layer: they go to a Rescaling layer, and back."""
    rng = np.random.default_rng(5)
    scale = np.array([1.3649302e-08, 2.5, 4e-9], np.float32)
    offset = np.array([1e-9, -3.0, 0.0], np.float32)
    spec = ModelSpec(4, 3, [LayerSpec(1, "dense", 3, [0], {"activation": "tanh", "use_bias": 1},
                                      {"kernel": rng.normal(size=(3, 4)).astype(np.float32),
                                       "bias": rng.normal(size=3).astype(np.float32)})],
                     output_normalization=Normalization(offset, scale))
    write_model_file(spec, tmp_path / "small.fkb")
    convert(tmp_path / "small.fkb", tmp_path / "small.keras")
    convert(tmp_path / "small.keras", tmp_path / "back.fkb")
    back = read_model_file(tmp_path / "back.fkb")
    np.testing.assert_array_equal(back.output_normalization.scale, scale)
    np.testing.assert_array_equal(back.output_normalization.offset, offset)
    x = rng.normal(size=(16, 4)).astype(np.float32)
    expected = load(tmp_path / "small.fkb").predict(x)
    np.testing.assert_array_equal(load(tmp_path / "back.fkb").predict(x), expected)
    # Keras's tanh and sums round differently in the last bit; the rescaling itself is the runtime's
    np.testing.assert_allclose(np.asarray(keras.saving.load_model(tmp_path / "small.keras")(x)), expected, rtol=2e-6)


# --------------------------------------------------------------------------
# refusals of Keras models


def dense_model(activation) -> keras.Model:
    inputs = keras.Input((4,))
    return keras.Model(inputs, keras.layers.Dense(3, activation=activation, name="hidden")(inputs))


@keras.saving.register_keras_serializable(package="tests")
class Doubler(keras.layers.Layer):
    def call(self, x):
        return 2 * x


@keras.saving.register_keras_serializable(package="tests", name="Dense")
class Dense(keras.layers.Dense):  # a custom layer that calls itself Dense
    pass


@keras.saving.register_keras_serializable(package="tests")
def my_activation(x):
    return x * 2


class Subclassed(keras.Model):
    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(2)

    def call(self, x):
        return self.dense(x)


def unsupported_models():
    def functional(build, shape=(4,)):
        inputs = keras.Input(shape)
        return keras.Model(inputs, build(inputs))

    def two_inputs():
        a, b = keras.Input((4,)), keras.Input((4,))
        return keras.Model([a, b], keras.layers.Add()([a, b]))

    def shared():
        layer = keras.layers.Dense(4, name="shared")
        return functional(lambda x: layer(layer(x)))

    def nested():
        inner = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)], name="inner")
        return functional(inner)

    return [
        ("lambda", functional(lambda x: keras.layers.Lambda(lambda t: t * 2, name="times_two")(keras.layers.Dense(3)(x))), "layer 'times_two' (Lambda): layer class not supported"),
        ("conv1d", functional(lambda x: keras.layers.Dense(1)(keras.layers.Flatten()(keras.layers.Conv1D(2, 3, name="conv")(x))), (8, 1)), "layer 'conv' (Conv1D): layer class not supported"),
        ("sparsemax", dense_model("sparsemax"), "layer 'hidden' (Dense): activation sparsemax is not supported"),
        ("hard_shrink", dense_model("hard_shrink"), "activation hard_shrink is not supported"),
        ("soft_shrink", dense_model("soft_shrink"), "activation soft_shrink is not supported"),
        ("sparse_plus", dense_model("sparse_plus"), "activation sparse_plus is not supported"),
        ("glu", dense_model("glu"), "activation glu is not supported"),
        ("custom activation", dense_model(my_activation), "activation tests>my_activation is not supported"),
        ("rms scaling", functional(lambda x: keras.layers.LayerNormalization(rms_scaling=True, name="ln")(x)), "layer 'ln' (LayerNormalization): rms_scaling=True is not supported"),
        ("softmax axis", functional(lambda x: keras.layers.Softmax(axis=0, name="sm")(x)), "layer 'sm' (Softmax): axis=0 is not the feature axis"),
        ("custom layer", functional(lambda x: Doubler(name="doubler")(x)), "layer 'doubler' (Doubler): layer class not supported"),
        ("custom Dense", functional(lambda x: Dense(2, name="fake")(x)), "layer 'fake' (Dense): custom"),
        ("two inputs", two_inputs(), "2 inputs and 1 outputs"),
        ("training", functional(lambda x: keras.layers.Dropout(0.5, name="drop")(x, training=True)), "layer 'drop' (Dropout): called with training=True"),
        ("shared", shared(), "layer 'shared' (Dense): the layer is called more than once"),
        ("broadcast", functional(lambda x: keras.layers.Add(name="plus")([keras.layers.Dense(1)(x), x])), "layer 'plus' (Add): broadcasting inputs of widths"),
        ("mixed precision", functional(lambda x: keras.layers.Dense(2, dtype="mixed_float16", name="half")(x)), "layer 'half' (Dense): dtype policy mixed_float16 is not supported"),
        ("nested", nested(), "layer 'inner' (Sequential): nested models are not supported"),
        ("3-d input", functional(lambda x: keras.layers.Dense(2)(x), (3, 4)), "input shape"),
    ]


@pytest.mark.parametrize("index", range(19))
def test_unsupported_keras_models_are_refused_naming_the_layer(index):
    name, model, message = unsupported_models()[index]
    with pytest.raises(UnsupportedModelError) as info:
        keras_to_spec(model)
    assert message in str(info.value), name
    assert "\n" not in str(info.value)


def test_subclassed_models_are_refused():
    model = Subclassed()
    model(np.zeros((1, 3), np.float32))
    with pytest.raises(UnsupportedModelError, match="model class Subclassed is not supported"):
        keras_to_spec(model)


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_saved_unsupported_models_are_refused_before_loading(tmp_path, monkeypatch, suffix):
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Lambda(lambda t: t + 1, name="plus_one")(inputs))
    path = tmp_path / f"lambda{suffix}"
    model.save(path)

    def must_not_load(*args, **kwargs):
        raise AssertionError("the model was loaded before its configuration was checked")

    monkeypatch.setattr(keras.saving, "load_model", must_not_load)
    with pytest.raises(UnsupportedModelError, match=r"lambda\S*: layer 'plus_one' \(Lambda\): layer class not supported"):
        convert(path, tmp_path / "out.fkb")
    assert not (tmp_path / "out.fkb").exists()


def test_saved_custom_layer_is_refused(tmp_path):
    inputs = keras.Input((4,))
    path = tmp_path / "custom.keras"
    keras.Model(inputs, Dense(2, name="impostor")(inputs)).save(path)
    with pytest.raises(UnsupportedModelError, match=r"layer 'impostor' \(Dense\): custom"):
        keras_to_spec(path)


def test_unreadable_keras_files(tmp_path):
    (tmp_path / "junk.keras").write_bytes(b"not a zip")
    with pytest.raises(ConversionError, match="junk.keras: cannot read the saved model"):
        keras_to_spec(tmp_path / "junk.keras")
    model = dense_model("relu")
    model.save_weights(tmp_path / "only.weights.h5")
    with pytest.raises(ConversionError, match="holds no model configuration"):
        convert(tmp_path / "only.weights.h5", tmp_path / "out.fkb")
    with pytest.raises(ConversionError, match="missing.keras"):
        convert(tmp_path / "missing.keras", tmp_path / "out.fkb")


@pytest.mark.parametrize(
    "src, dst",
    [("a.fkb", "b.fkb"), ("a.keras", "b.keras"), ("a.h5", "b.keras"), ("a.fkb", "b.h5"), ("a.keras", "b.txt"),
     ("a.onnx", "b.onnx"), ("a.onnx", "b.txt"), ("a.pt", "b.fkb")],
)
def test_unsupported_conversion_directions_are_refused(tmp_path, src, dst):
    with pytest.raises(ConversionError, match=r"cannot convert .* supported are \.keras/\.h5 -> \.fkb"):
        convert(tmp_path / src, tmp_path / dst)


def test_model_file_errors_pass_through_convert(tmp_path):
    (tmp_path / "bad.fkb").write_bytes(b"FKB 9\n")
    with pytest.raises(ModelFileError, match="unknown format version 9"):
        convert(tmp_path / "bad.fkb", tmp_path / "out.keras")
    assert not (tmp_path / "out.keras").exists()


def test_dense_with_lora_converts_the_merged_kernel():
    inputs = keras.Input((5,))
    dense = keras.layers.Dense(3, activation="tanh")
    model = keras.Model(inputs, dense(inputs))
    dense.enable_lora(2)
    rng = np.random.default_rng(2)
    dense.lora_kernel_a.assign(rng.normal(size=(5, 2)).astype(np.float32))
    dense.lora_kernel_b.assign(rng.normal(size=(2, 3)).astype(np.float32))
    x = rng.normal(size=(8, 5)).astype(np.float32)
    spec = keras_to_spec(model)
    assert relative_error(evaluate(spec, x), np.asarray(model(x))) <= TOLERANCE
    plain = np.asarray(dense._kernel.numpy()).T
    assert not np.allclose(spec.layers[0].params["kernel"], plain)  # the LoRA update is in


def test_dead_branches_cannot_go_to_keras():
    spec = ModelSpec(2, 2, [LayerSpec(1, "softmax", 2, [0]), LayerSpec(2, "elu", 2, [0], {"alpha": 1.0})])
    with pytest.raises(ConversionError, match=r"layers \[1\] do not feed the output"):
        spec_to_keras(spec)


def test_legacy_tf_keras_configs_are_checked():
    """tf.keras 2 h5 files spell things differently (batch_input_shape, alpha, no module)."""

    def legacy(*layers):
        return {"class_name": "Sequential", "config": {"name": "old", "layers": list(layers)}}

    ok = legacy(
        {"class_name": "InputLayer", "config": {"batch_input_shape": [None, 3], "dtype": "float32", "name": "in"}},
        {"class_name": "Dense", "config": {"name": "d", "units": 4, "activation": "swish", "dtype": "float32"}},
        {"class_name": "LeakyReLU", "config": {"name": "lr", "alpha": 0.3, "dtype": "float32"}},
        {"class_name": "Dense", "config": {"name": "out", "units": 1, "activation": "linear", "dtype": "float32"}},
    )
    keras_import._check_config(ok, "old.h5")
    bad = legacy(
        {"class_name": "InputLayer", "config": {"batch_input_shape": [None, 3], "dtype": "float32", "name": "in"}},
        {"class_name": "Dense", "config": {"name": "d", "units": 4, "activation": "swish", "dtype": "float32"}},
        {"class_name": "TFOpLambda", "config": {"name": "tf.math.multiply", "dtype": "float32"}},
    )
    with pytest.raises(UnsupportedModelError, match=r"old.h5: layer 'tf.math.multiply' \(TFOpLambda\): layer class not supported"):
        keras_import._check_config(bad, "old.h5")
    wide = legacy({"class_name": "InputLayer", "config": {"batch_input_shape": [None, 3, 2], "dtype": "float32", "name": "in"}})
    with pytest.raises(UnsupportedModelError, match="is not .batch, features."):
        keras_import._check_config(wide, "old.h5")
