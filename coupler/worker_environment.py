"""The environment of every process that trains or couples an emulator.

Imported before anything imports TensorFlow or loads the Fortran extensions
(by :mod:`coupler.runs` and :mod:`coupler.sweep`, so in the client and in
every Dask worker, which imports them to unpickle its first task)."""
from __future__ import annotations

import os


# oneDNN's reordered float sums off, quiet logs (same inputs
# and seed, same bits); one OpenBLAS thread per task (a worker is one core:
# with OpenBLAS's own threads on a busy node, a coupled run spent 11 CPU s
# per T21 day spinning instead of 0.9, docs/case-study.md).
WORKER_ENVIRONMENT = {"TF_ENABLE_ONEDNN_OPTS": "0", "TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": "tensorflow",
                      "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
for _name, _value in WORKER_ENVIRONMENT.items():
    os.environ.setdefault(_name, _value)
