"""Shared pytest setup: quiet, deterministic, single-threaded TensorFlow and an importable repo."""

import os
import sys
from pathlib import Path

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


def pytest_configure(config):
    # Keras 3 saving calls np.array on variables whose __array__ predates NumPy 2's copy keyword
    config.addinivalue_line("filterwarnings", "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")
    # the rms_scaling refusal test builds the deprecated layer on purpose
    config.addinivalue_line("filterwarnings", "ignore:You passed `rms_scaling=True`:UserWarning")
    # generated architectures may end in a softmax over one feature; that is a valid model
    config.addinivalue_line("filterwarnings", "ignore:You are using a softmax over axis -1:UserWarning")
