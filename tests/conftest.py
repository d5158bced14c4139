"""Shared pytest setup: quiet, deterministic, single-threaded TensorFlow and an importable repo."""

import os
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("TF_DETERMINISTIC_OPS", "1")

ROOT = Path(__file__).resolve().parent.parent
try:
    import emulators  # noqa: F401
except ImportError:
    sys.path.insert(0, str(ROOT))
if str(ROOT / "tests") not in sys.path:
    sys.path.insert(0, str(ROOT / "tests"))

try:  # single-threaded TensorFlow: reproducible sums, no oversubscription of 2 cores
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
except (ImportError, RuntimeError):
    pass


@pytest.fixture(scope="session")
def fortran_cmake(tmp_path_factory) -> Callable[..., Path]:
    """The standalone CMake project of ``fortran/``, configured once per session
    (Release). Call it with target names to build those (everything when none);
    it returns the build folder."""
    build = tmp_path_factory.mktemp("fortran-build")
    subprocess.run(["cmake", "-S", str(ROOT / "fortran"), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release"],
                   check=True, capture_output=True, text=True)

    def build_targets(*targets: str) -> Path:
        command = ["cmake", "--build", str(build), "-j2"] + (["--target", *targets] if targets else [])
        result = subprocess.run(command, capture_output=True, text=True)
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
        return build

    return build_targets


def pytest_configure(config):
    # Keras 3 saving calls np.array on variables whose __array__ predates NumPy 2's copy keyword
    config.addinivalue_line("filterwarnings", "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")
    # the rms_scaling refusal test builds the deprecated layer on purpose
    config.addinivalue_line("filterwarnings", "ignore:You passed `rms_scaling=True`:UserWarning")
    # generated architectures may end in a softmax over one feature; that is a valid model
    config.addinivalue_line("filterwarnings", "ignore:You are using a softmax over axis -1:UserWarning")


# ------------------------------------------------- a tiny case study, shared
# A case study at toy size (T10, 3 emulators, 2-day coupled runs) for tests.
TINY_CASESTUDY = """
[casestudy]
description = "tiny: for tests"
workers = 2

[reference]
preset = "aquaplanet-t10"
spinup_days = 1.0
data_days = 2.0
interval_hours = 6.0

[sweep]
n_emulators = 3
seed = 4

[space]
depth = [1, 2]
width = [8, 16]
batch_size = [256]
learning_rate = [1e-4, 1e-2]

[training]
epochs = 1
patience = 1

[coupled]
days = 2.0
window_days = 1.0
output_interval_hours = 24.0
n_perturbed = 2
reseed_physics = true
fallback_run = true        # every emulator also coupled with the guard on fallback
"""


def climatology_model_file(training, path, normalized: bool = False):
    """A network with fixed weights on the emulator interface of the
    training data `training` (fkb data output): a zero kernel and, as bias,
    the mean of each output (the climatological tendencies), with the data's
    names and units; written to `path`, which is returned. Coupled, it
    survives the tiny study's runs. Without `normalized` the bias is in
    physical units and the file has no normalization; with it the file
    carries the data's input and output normalization (as a trained
    emulator's) and the bias is 0 in the normalized space."""
    import numpy as np

    from emulators.data import compute_normalization, open_dataset
    from emulators.interface import Layout
    from emulators.modelfile import LayerSpec, ModelSpec, Normalization, write_model_file

    ds = open_dataset(training, time_chunk=None)
    layout = Layout.for_dataset(ds)
    norm = compute_normalization(ds, layout)
    (in_offset, in_scale), (out_offset, out_scale) = norm.model_file_arrays()
    bias = np.zeros_like(out_offset) if normalized else out_offset
    dense = LayerSpec(1, "dense", layout.n_outputs, [0], {"activation": "linear", "use_bias": 1},
                      {"kernel": np.zeros((layout.n_outputs, layout.n_inputs), np.float32),
                       "bias": np.asarray(bias, np.float32)})
    extra = dict(input_normalization=Normalization(in_offset, in_scale),
                 output_normalization=Normalization(out_offset, out_scale)) if normalized else {}
    spec = ModelSpec(n_inputs=layout.n_inputs, n_outputs=layout.n_outputs, layers=[dense], name="climatology",
                     inputs=list(zip(norm.input_names, norm.input_units)),
                     outputs=list(zip(norm.output_names, norm.output_units)), **extra)
    write_model_file(spec, path)
    return path


@pytest.fixture(scope="session")
def tiny_casestudy_reference(tmp_path_factory):
    """The first two stages of the TINY_CASESTUDY case study (reference data,
    reference runs and noise floor; ~15 s at T10) in ``out``; the case-study
    tests run the whole study on top of them in the same folder."""
    from experiments.casestudy import load_casestudy, prepare_casestudy_reference

    root = tmp_path_factory.mktemp("casestudy")
    preset = root / "tiny.toml"
    preset.write_text(TINY_CASESTUDY)
    out = root / "out"
    stage = prepare_casestudy_reference(load_casestudy(preset), out, progress=False, log=lambda line: None)
    return {"preset": preset, "out": out, "stage": stage}


@pytest.fixture(scope="session")
def hot_emulator(tiny_casestudy_reference, tmp_path_factory):
    """The climatology network (zero kernel, the mean outputs as bias) with
    its heating and moistening 30 times too strong, carrying the training
    inputs' statistics: it crashes about three days into a coupled run."""
    import numpy as np

    from emulators.data import compute_normalization, open_dataset
    from emulators.input_statistics import input_statistics
    from emulators.interface import Layout, stack_inputs
    from emulators.modelfile import LayerSpec, ModelSpec, write_model_file

    ds = open_dataset(tiny_casestudy_reference["stage"].data["training"], time_chunk=None)
    layout = Layout.for_dataset(ds)
    norm = compute_normalization(ds, layout)
    _, (out_offset, _) = norm.model_file_arrays()
    x = stack_inputs(ds)
    bias = np.asarray(out_offset, np.float32).copy()
    tendencies = [i for i, name in enumerate(norm.output_names) if name.startswith(("PHQ_", "TPHYSTND_"))]
    bias[tendencies] *= 30.0
    dense = LayerSpec(1, "dense", layout.n_outputs, [0], {"activation": "linear", "use_bias": 1},
                      {"kernel": np.zeros((layout.n_outputs, layout.n_inputs), np.float32), "bias": bias})
    spec = ModelSpec(n_inputs=layout.n_inputs, n_outputs=layout.n_outputs, layers=[dense], name="hot",
                     inputs=list(zip(norm.input_names, norm.input_units)),
                     outputs=list(zip(norm.output_names, norm.output_units)),
                     input_statistics=input_statistics(lambda: [x]))
    path = tmp_path_factory.mktemp("crash") / "hot.fkb"
    write_model_file(spec, path)
    return path


@pytest.fixture(scope="session")
def crashed_run(tiny_casestudy_reference, hot_emulator, tmp_path_factory):
    """`fkb couple` of the hot emulator for 6 days: the folder of a crashed
    run (coupled.nc, its crash record coupled_crash.nc, score.nc)."""
    from fkb_cli import main

    out = tmp_path_factory.mktemp("crashed") / "run"
    status = main(["couple", "--emulator", str(hot_emulator), "--reference", str(tiny_casestudy_reference["out"]),
                   "--out", str(out), "--days", "6", "--no-check", "--no-progress"])
    assert status == 0
    return out
