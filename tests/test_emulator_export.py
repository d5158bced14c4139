"""Exporting a trained emulator: the model file carries the normalization and
the interface's names and units, and the Fortran runtime reproduces Keras's
predictions in physical units."""
from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from emulators.data import split_by_time
from emulators.export import emulator_spec, export_emulator, runtime_relative_error
from emulators.interface import VARIABLES, input_names, input_units, output_names, output_units
from emulators.metrics import predict_physical
from emulators.modelfile import evaluate, read_model_file
from emulators.synthetic import write_synthetic_dataset
from emulators.train import LoaderOptions, train_emulator

HP = dict(depth=3, width=24, epochs=2, batch_size=128, learning_rate=3e-3, leaky_relu_slope=0.2,
          dropout=0.1, batch_normalization=True)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    data = write_synthetic_dataset(root / "ref.nc", n_time=24, nlev=10, nlat=8, nlon=16, seed=2)
    result = train_emulator(None, data, hyperparameters=HP, out_dir=root / "run",
                            loader=LoaderOptions(time_block=4), evaluate=False)
    validation = split_by_time(xr.open_dataset(data))["validation"]
    return result, result.layout.stack_inputs(validation)


def test_model_file_carries_normalization_names_and_units(run):
    result, _ = run
    spec = read_model_file(result.files["model_file"])
    assert spec.input_names == input_names(10) and spec.input_units == input_units(10)
    assert spec.output_names == output_names(10) and spec.output_units == output_units(10)
    (in_offset, in_scale), (out_offset, out_scale) = result.normalization.model_file_arrays()
    np.testing.assert_array_equal(spec.input_normalization.offset, in_offset)
    np.testing.assert_array_equal(spec.input_normalization.scale, in_scale)
    np.testing.assert_array_equal(spec.output_normalization.offset, out_offset)
    np.testing.assert_array_equal(spec.output_normalization.scale, out_scale)
    kinds = {layer.kind for layer in spec.layers}
    assert kinds == {"dense", "batch_normalization", "leaky_relu", "dropout"}
    assert spec.sha256 is not None and spec.name == "emulator"


def test_model_file_carries_the_training_inputs_statistics(run):
    """The exported emulator (and its .keras twin) carry the distribution of
    the training split's inputs in physical units, for the runtime's guard."""
    from emulators.convert import load_spec

    result, x = run
    stats = read_model_file(result.files["model_file"]).input_statistics
    assert stats is not None and stats.samples > 0 and 1 <= stats.rank <= 16
    assert np.all(stats.minimum <= stats.mean) and np.all(stats.mean <= stats.maximum)
    offset, scale = result.normalization.model_file_arrays()[0]
    np.testing.assert_allclose(stats.mean, offset, rtol=0.05, atol=1e-3 * np.abs(offset).max())
    twin = load_spec(result.files["keras_emulator"]).input_statistics
    np.testing.assert_array_equal(twin.basis, stats.basis)
    assert twin.distance_q999 == stats.distance_q999


def _relative_errors(y, reference, slices):
    errors = {"all": float(np.max(np.abs(y - reference)) / np.max(np.abs(reference)))}
    for name, slc in slices.items():
        errors[name] = float(np.max(np.abs(y[:, slc] - reference[:, slc])) / np.max(np.abs(reference[:, slc])))
    return errors


def test_model_file_predicts_what_keras_predicts_in_physical_units(run):
    """The NumPy reference evaluator of the model file against Keras: the
    normalization is wired the same way on both sides, for every variable."""
    result, x = run
    spec = read_model_file(result.files["model_file"])
    y_keras = predict_physical(result.model, result.normalization, x)
    errors = _relative_errors(evaluate(spec, x.astype(np.float32)), y_keras, result.layout.output_slices())
    assert max(errors.values()) <= 1e-5, errors


def test_fortran_runtime_reproduces_keras_on_validation_samples(run):
    pytest.importorskip("emulators._fkb_runtime")
    from emulators.fkb import load

    result, x = run
    path = result.files["model_file"]
    assert runtime_relative_error(path, result.model, result.normalization, x) <= 1e-5
    y_keras = predict_physical(result.model, result.normalization, x)
    errors = _relative_errors(load(path).predict(x.astype(np.float32)), y_keras, result.layout.output_slices())
    assert max(errors.values()) <= 1e-5, errors
    assert set(errors) == {"all", *[v for v in VARIABLES if v in result.layout.outputs]}


def test_export_refuses_normalization_of_another_width(run, tmp_path):
    result, _ = run
    import keras

    narrow = keras.Sequential([keras.Input((20,)), keras.layers.Dense(25)])
    with pytest.raises(ValueError, match="20 -> 25 values but its normalization covers 24 inputs"):
        export_emulator(narrow, result.normalization, tmp_path / "bad.fkb")
    assert not (tmp_path / "bad.fkb").exists()
    assert emulator_spec(result.model, result.normalization, name="my_emulator").name == "my_emulator"
