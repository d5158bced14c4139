"""Training throughput of the Fortran runtime against Keras ``fit``, in one run.

The FKB paper's network, 94 -> 5 x 256 (LeakyReLU 0.3) -> 65, float32, one
epoch of minibatch training with Adam (Keras defaults), batch 1024, mean
squared error, on the same in-memory data and from the same initial weights:

* Fortran: ``emulators.fkb.Network.fit`` (one call into the runtime for the
  epoch: shuffling, forward, backward and the optimizer step all in Fortran);
* Keras: ``model.fit`` (TensorFlow CPU), graph mode, after a warm-up epoch,
  so that tracing is not counted.

Both use the same number of threads (default: all cores). Prints samples per
second and the training loss of each after the timed epoch.

    .venv/bin/python benchmarks/bench_fortran_training.py [--samples 65536] [--threads N]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=65536, help="samples per epoch (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="threads of both engines")
    args = parser.parse_args()

    import keras
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from bench_inference import mlp
    from emulators import blas
    from emulators.convert import keras_to_spec
    from emulators.fkb import load, set_threads
    from emulators.modelfile import write_model_file
    set_threads(args.threads)   # training runs its GEMMs on this many BLAS threads

    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.samples, 94)).astype(np.float32)
    w = rng.standard_normal((94, 65)).astype(np.float32) / np.sqrt(94)
    y = np.tanh(x @ w).astype(np.float32)

    model = mlp(94, [256] * 5, 65, slope=0.3)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "paper.fkb"
        write_model_file(keras_to_spec(model), path)
        net = load(path)
    net.compile("adam", "mse")
    net.fit(x[:args.batch_size], y[:args.batch_size], epochs=1, batch_size=args.batch_size)   # warm-up
    t0 = time.perf_counter()
    fortran_loss = net.fit(x, y, epochs=1, batch_size=args.batch_size, seed=1)[-1]
    t_fortran = time.perf_counter() - t0

    model.compile(optimizer=keras.optimizers.Adam(), loss="mse")
    model.fit(x[:4 * args.batch_size], y[:4 * args.batch_size], epochs=1, batch_size=args.batch_size,
              verbose=0)                                                                    # warm-up, tracing
    t0 = time.perf_counter()
    keras_loss = model.fit(x, y, epochs=1, batch_size=args.batch_size, shuffle=True, verbose=0).history["loss"][-1]
    t_keras = time.perf_counter() - t0

    print(f"runtime threads: {args.threads} (BLAS: {blas.info().rsplit(',', 1)[0]}); "
          f"TensorFlow threads: {args.threads}")
    print(f"94 -> 5 x 256 (LeakyReLU 0.3) -> 65, Adam, MSE, batch {args.batch_size}, one epoch of "
          f"{args.samples:,} samples")
    print(f"{'engine':<22} | {'seconds':>8} | {'samples/s':>10} | {'epoch loss':>10}")
    print(f"{'Fortran (Network.fit)':<22} | {t_fortran:>8.2f} | {args.samples / t_fortran:>10,.0f} | "
          f"{fortran_loss:>10.4g}")
    print(f"{'Keras (model.fit)':<22} | {t_keras:>8.2f} | {args.samples / t_keras:>10,.0f} | {keras_loss:>10.4g}")
    print(f"Fortran / Keras throughput: {t_keras / t_fortran:.2f}")


if __name__ == "__main__":
    main()
