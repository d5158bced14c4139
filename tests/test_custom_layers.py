"""Custom layers end to end (docs/custom-layers.md), with the example
``emulators.conservation.ColumnWaterConservation``: a Keras model that holds
it converts through ``fkb convert --plugin``, the NumPy reference and the
Fortran example program (``fortran/example/custom_layer``) reproduce Keras,
Fortran training follows Keras's ``train_on_batch``, its gradient matches
finite differences, the Python runtime runs it (at 32 bit), and a layer
nobody registered is refused by name."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from fkb_cli import main
from emulators.conservation import GRAVITY, KIND, ColumnWaterConservation, column_water_residual
from emulators.convert import UnsupportedModelError, convert, keras_to_spec, load_plugin
from emulators.data import NormalizationStats
from emulators.fkb import FKBError, load
from emulators import modelfile
from emulators.interface import input_names, input_units, output_names, output_units
from emulators.modelfile import evaluate, read_model_file, write_model_file

ROOT = Path(__file__).resolve().parents[1]
NLEV = 4
N_IN, N_OUT = 2 * NLEV + 4, 2 * NLEV + 5  # the emulator interface on NLEV levels
Q_START, PRECIP, PS = NLEV, 2 * NLEV + 4, 2 * NLEV  # PHQ_1, PRECT, PS (from 0)
DSIGMA = [0.1, 0.2, 0.3, 0.4]
Q_OFFSET, Q_SCALE = [-1e-9, -2e-9, -5e-9, -1e-8], [1e-8, 2e-8, 3e-8, 4e-8]  # kg kg-1 s-1
PRECIP_OFFSET, PRECIP_SCALE = 3e-5, 3e-5  # kg m-2 s-1
PS_OFFSET, PS_SCALE = 1.0e5, 1.0e3  # Pa
LOG_WEIGHTS = np.array([0.3, -0.2, 0.1, 0.0], np.float32)


def emulator(seed: int, ps_from_network: bool = False) -> keras.Model:
    """Dense layers predicting normalized outputs, closed by the conservation
    layer. With ``ps_from_network`` the surface pressure the layer reads comes
    from a trainable layer, so that every gradient path of the layer reaches a
    weight (for the finite-difference check)."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((N_IN,))
    h = keras.layers.Dense(16, activation="tanh", bias_initializer=keras.initializers.RandomNormal(stddev=0.1))(inputs)
    y = keras.layers.Dense(N_OUT, bias_initializer=keras.initializers.RandomNormal(stddev=0.1))(h)
    source, ps_index = inputs, PS
    if ps_from_network:
        source, ps_index = keras.layers.Dense(3, activation="softplus")(inputs), 1
    layer = ColumnWaterConservation(DSIGMA, Q_START, PRECIP, ps_index, Q_OFFSET, Q_SCALE, PRECIP_OFFSET,
                                    PRECIP_SCALE, PS_OFFSET, PS_SCALE, name="conservation")
    model = keras.Model(inputs, layer([y, source]))
    layer.log_weights.assign(LOG_WEIGHTS)
    return model


def samples(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, N_IN)).astype(np.float32)
    y = np.tanh(x[:, :2].sum(axis=1, keepdims=True)) + 0.3 * rng.normal(size=(n, N_OUT))
    return x, y.astype(np.float32)


@pytest.fixture(scope="module")
def example_program(fortran_cmake) -> Path:
    build = fortran_cmake("custom_layer_example")
    return build / "custom_layer_example"


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> Path:
    """The example emulator saved as .keras and converted by the command line
    in a fresh process, which learns the layer from the plugin only."""
    folder = tmp_path_factory.mktemp("custom")
    emulator(seed=5).save(folder / "emulator.keras")
    result = subprocess.run([sys.executable, "-m", "fkb_cli", "convert", str(folder / "emulator.keras"),
                             str(folder / "emulator.fkb"), "--plugin", "emulators.conservation"],
                            capture_output=True, text=True, cwd=folder)
    assert result.returncode == 0, result.stderr
    return folder / "emulator.fkb"


def run_example(program: Path, *args) -> dict[str, list]:
    """Run the example program; its output by tag: losses, weights, predictions."""
    result = subprocess.run([str(program), *map(str, args)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    out: dict[str, list] = {"loss": [], "weight": [], "y": []}
    for line in result.stdout.splitlines():
        words = line.split()
        if words[0] == "loss":
            out["loss"].append(float(words[2]))
        elif words[0] == "weight":
            out["weight"].append(float(words[1]))
        else:
            out["y"].append([float(w) for w in words])
    return {key: np.array(value) for key, value in out.items()}


def save_samples(folder: Path, x: np.ndarray, y: np.ndarray | None = None) -> tuple[Path, Path]:
    np.savetxt(folder / "x.txt", x, fmt="%.9g")
    if y is not None:
        np.savetxt(folder / "y.txt", y, fmt="%.9g")
    return folder / "x.txt", folder / "y.txt"


def physical(y: np.ndarray) -> np.ndarray:
    """Physical PHQ and PRECT from a normalized prediction, with the constants
    of the model file (params float32, attributes float64)."""
    f32 = lambda v: np.asarray(v, np.float32).astype(np.float64)  # noqa: E731
    out = np.asarray(y, np.float64).copy()
    out[:, Q_START:Q_START + NLEV] = out[:, Q_START:Q_START + NLEV] * f32(Q_SCALE) + f32(Q_OFFSET)
    out[:, PRECIP] = out[:, PRECIP] * PRECIP_SCALE + PRECIP_OFFSET
    return out


def test_converted_file_holds_the_custom_layer_and_the_numpy_reference_matches_keras(converted):
    spec = read_model_file(converted)
    layer = spec.layers[-1]
    assert layer.kind == KIND and layer.inputs == [2, 0]
    assert layer.attributes["q_first"] == Q_START + 1 and layer.attributes["ps"] == PS + 1
    np.testing.assert_array_equal(layer.params["log_weights"], LOG_WEIGHTS)
    x, _ = samples(1, 64)
    y_keras = np.asarray(emulator(seed=5)(x))
    y_numpy = evaluate(spec, x)
    assert np.max(np.abs(y_numpy - y_keras)) <= 1e-6 * np.max(np.abs(y_keras))
    # the point of the layer: water is conserved column by column
    ps = x[:, PS].astype(np.float64) * PS_SCALE + PS_OFFSET
    residual = column_water_residual(physical(y_numpy), ps, np.float32(DSIGMA), Q_START, PRECIP, GRAVITY)
    assert np.max(np.abs(residual)) <= 1e-12 * PRECIP_SCALE


def test_model_file_to_keras_and_back_is_identical(converted, tmp_path):
    convert(converted, tmp_path / "back.keras")
    convert(tmp_path / "back.keras", tmp_path / "again.fkb")
    assert (tmp_path / "again.fkb").read_bytes() == converted.read_bytes()


def test_fortran_example_predicts_as_keras(converted, example_program, tmp_path):
    x, _ = samples(2, 40)
    x_path, _ = save_samples(tmp_path, x)
    y_fortran = run_example(example_program, converted, x_path)["y"]
    y_keras = np.asarray(emulator(seed=5)(x))
    assert y_fortran.shape == y_keras.shape
    assert np.max(np.abs(y_fortran - y_keras)) <= 1e-5 * np.max(np.abs(y_keras))


OPTIMIZERS = {"sgd": (lambda: keras.optimizers.SGD(learning_rate=0.05), 0.05),
              "adam": (lambda: keras.optimizers.Adam(learning_rate=0.01), 0.01)}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_fortran_training_follows_keras_train_on_batch(name, converted, example_program, tmp_path):
    keras.backend.clear_session()
    factory, learning_rate = OPTIMIZERS[name]
    batch, n_steps = 16, 4
    x, y = samples(3, batch * n_steps)
    x_path, y_path = save_samples(tmp_path, x, y)
    fortran = run_example(example_program, converted, x_path, y_path, batch, name, learning_rate)

    model = emulator(seed=5)
    model.compile(optimizer=factory(), loss="mse")
    w0 = np.concatenate([np.asarray(w).ravel() for w in model.trainable_weights])
    losses = [float(np.asarray(model.train_on_batch(x[i:i + batch], y[i:i + batch])))
              for i in range(0, len(x), batch)]
    w_keras = np.concatenate([np.asarray(w).ravel() for w in model.trainable_weights])

    np.testing.assert_allclose(fortran["loss"], losses, rtol=2e-5, atol=1e-6)
    moved = np.max(np.abs(w_keras - w0))
    assert np.max(np.abs(fortran["weight"] - w_keras)) <= 1e-5 * max(moved, 1.0)
    log_weights_moved = np.abs(fortran["weight"][-NLEV:] - LOG_WEIGHTS)
    assert np.max(log_weights_moved) > 1e-3, "the custom layer's weights did not train"
    y_keras = np.asarray(model(x))
    assert np.max(np.abs(fortran["y"] - y_keras)) <= 1e-4 * np.max(np.abs(y_keras))


def test_fortran_gradient_matches_finite_differences(example_program, tmp_path):
    spec = keras_to_spec(emulator(seed=6, ps_from_network=True))
    path = tmp_path / "grad.fkb"
    write_model_file(spec, path)
    x, y = samples(4, 12)
    x_path, y_path = save_samples(tmp_path, x, y)
    fortran = run_example(example_program, path, x_path, y_path, "gradient")

    # the trainable weights in the order of the Fortran network: layer by
    # layer in file order, a dense kernel (n_out, n_in) column-major, then bias
    slots = []
    for layer in spec.layers:
        layer.params = {k: v.astype(np.float64) for k, v in layer.params.items()}
        names = {"dense": ("kernel", "bias"), KIND: ("log_weights",)}[layer.kind]
        for name in names:
            for index in np.ndindex(*layer.params[name].shape[::-1]):
                slots.append((layer.params, name, index[::-1]))

    def loss() -> float:
        return float(np.mean((evaluate(spec, x) - y) ** 2))

    assert fortran["loss"][0] == pytest.approx(loss(), rel=1e-5)
    finite = np.empty(len(slots))
    for i, (params, name, index) in enumerate(slots):
        value = params[name][index]
        step = 1e-5 * max(1.0, abs(value))
        params[name][index] = value + step
        up = loss()
        params[name][index] = value - step
        down = loss()
        params[name][index] = value
        finite[i] = (up - down) / (2 * step)
    assert fortran["weight"].shape == finite.shape
    np.testing.assert_allclose(fortran["weight"], finite, rtol=2e-3, atol=2e-4 * np.max(np.abs(finite)))
    assert np.max(np.abs(finite[-NLEV:])) > 1e-3  # the layer's own weights have a gradient


@keras.saving.register_keras_serializable(package="tests")
class Unregistered(keras.layers.Layer):
    """A custom layer that nobody taught the converter."""

    def call(self, x):
        return x * 2.0


def test_an_unregistered_custom_layer_is_refused_by_name(tmp_path):
    inputs = keras.Input((3,))
    model = keras.Model(inputs, Unregistered(name="odd")(keras.layers.Dense(2)(inputs)))
    expected = r"layer 'odd' \(Unregistered\): layer class not supported \(a custom layer: register it with emulators.convert.register_layer"
    with pytest.raises(UnsupportedModelError, match=expected):
        keras_to_spec(model)
    model.save(tmp_path / "odd.keras")
    with pytest.raises(UnsupportedModelError, match=expected):
        keras_to_spec(tmp_path / "odd.keras")


def test_the_python_runtime_runs_the_layer_at_32_and_64_bit(converted):
    # the binding registers the column-water layer, written once for both
    # kinds (column_water_conservation.inc), for its 32- and 64-bit networks
    net = load(converted)
    x, _ = samples(2, 40)
    y_keras = np.asarray(emulator(seed=5)(x))
    assert np.max(np.abs(net.predict(x) - y_keras)) <= 1e-5 * np.max(np.abs(y_keras))
    y64 = net.predict(x.astype(np.float64))
    assert y64.dtype == np.float64
    assert np.max(np.abs(y64 - y_keras)) <= 1e-5 * np.max(np.abs(y_keras))


def test_readers_without_the_layer_name_it_and_say_how_to_register_it(converted, monkeypatch, capsys):
    # the Python reader, as in a process that did not import the plugin
    monkeypatch.delitem(modelfile._CUSTOM_KINDS, KIND)
    assert main(["info", str(converted)]) == 1
    err = capsys.readouterr().err
    assert f"unknown layer type '{KIND}' (a custom layer: import the module that registers it" in err
    assert "--plugin" in err and len(err.strip().splitlines()) == 1


def test_fortran_self_test_passes(example_program, tmp_path):
    result = subprocess.run([str(example_program), "--self-test"], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "self-test passed" in result.stdout


def test_layer_for_an_emulator_takes_positions_and_normalization_from_the_stats():
    rng = np.random.default_rng(0)
    stats = NormalizationStats(input_names(NLEV), input_units(NLEV), rng.normal(size=N_IN), rng.uniform(1, 2, N_IN),
                               output_names(NLEV), output_units(NLEV), rng.normal(size=N_OUT),
                               rng.uniform(1, 2, N_OUT))
    layer = ColumnWaterConservation.for_emulator(stats, DSIGMA)
    assert (layer.q_start, layer.precip_index, layer.ps_index) == (Q_START, PRECIP, PS)
    (in_offset, in_scale), (out_offset, out_scale) = stats.model_file_arrays()
    assert layer.q_scale == out_scale[Q_START:Q_START + NLEV].tolist()
    assert (layer.precip_offset, layer.ps_scale) == (float(out_offset[PRECIP]), float(in_scale[PS]))
    with pytest.raises(ValueError, match="PHQ_1 .. PHQ_5"):
        ColumnWaterConservation.for_emulator(stats, DSIGMA + [0.1])


PLUGIN = """
import keras
import numpy as np
from emulators.convert import register_layer


@keras.saving.register_keras_serializable(package="tests_plugin")
class Scale(keras.layers.Layer):
    def __init__(self, factor, **kwargs):
        super().__init__(**kwargs)
        self.factor = float(factor)

    def call(self, x):
        return x * self.factor

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


register_layer(Scale, kind="tests.scale",
               to_spec=lambda layer, widths: ({"factor": layer.factor}, {}),
               from_spec=lambda spec: (Scale(spec.attributes["factor"]), []),
               numpy_forward=lambda spec, xs: xs[0] * spec.attributes["factor"])
"""


def test_a_plugin_file_teaches_fkb_convert_a_single_input_layer(tmp_path, capsys):
    plugin = tmp_path / "my_layers.py"
    plugin.write_text(PLUGIN)
    load_plugin(str(plugin))
    scale = sys.modules["fkb_plugin_my_layers"].Scale
    inputs = keras.Input((3,))
    model = keras.Model(inputs, scale(2.5, name="scale")(keras.layers.Dense(2)(inputs)))
    model.save(tmp_path / "scaled.keras")

    status = main(["convert", str(tmp_path / "scaled.keras"), str(tmp_path / "scaled.fkb"), "--plugin", str(plugin)])
    assert status == 0, capsys.readouterr().err
    spec = read_model_file(tmp_path / "scaled.fkb")
    assert [layer.kind for layer in spec.layers] == ["dense", "tests.scale"]
    assert spec.layers[1].attributes == {"factor": 2.5}
    x = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    np.testing.assert_allclose(evaluate(spec, x), np.asarray(model(x)), rtol=1e-6, atol=1e-7)

    status = main(["convert", str(tmp_path / "scaled.keras"), str(tmp_path / "other.fkb"), "--plugin",
                   str(tmp_path / "nope.py")])
    err = capsys.readouterr().err
    assert status == 1 and err.strip().endswith("nope.py: no such file") and len(err.strip().splitlines()) == 1
