"""Training throughput and memory of the default emulator, streamed from disk.

Writes a synthetic dataset (the GCM's layout) several times larger than the
loader's memory budget, trains the default emulator
(:class:`emulators.architectures.Hyperparameters`) on it for a few epochs,
and prints samples per second, wall time per epoch, and the process's
resident memory before and during training, against the dataset's size: the
loader holds at most its budget whatever the dataset size.

    python benchmarks/bench_training.py                 # 245 MiB of data, 16 MiB budget
    python benchmarks/bench_training.py --time-steps 1200 --budget-mb 64 --epochs 3
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
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import PeakRSS, rss_bytes  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time-steps", type=int, default=640, help="time steps of 6 h (default: %(default)s)")
    parser.add_argument("--nlat", type=int, default=32)
    parser.add_argument("--nlon", type=int, default=64)
    parser.add_argument("--nlev", type=int, default=10)
    parser.add_argument("--budget-mb", type=float, default=16.0, help="loader memory budget, MiB (default: %(default)s)")
    parser.add_argument("--time-block", type=int, default=8, help="time steps per read (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--workdir", help="where to write the dataset (default: a temporary folder)")
    args = parser.parse_args(argv)

    import numpy as np

    from emulators.architectures import Hyperparameters
    from emulators.data import open_dataset, split_by_time
    from emulators.interface import Layout
    from emulators.synthetic import write_synthetic_dataset
    from emulators.train import LoaderOptions, train_emulator

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(args.workdir or tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        path = workdir / f"bench_{args.time_steps}x{args.nlat}x{args.nlon}x{args.nlev}.nc"
        t0 = time.perf_counter()
        if not path.exists():
            write_synthetic_dataset(path, n_time=args.time_steps, nlev=args.nlev, nlat=args.nlat, nlon=args.nlon)
        write_seconds = time.perf_counter() - t0

        ds = open_dataset(path, time_chunk=None)
        layout = Layout.for_dataset(ds)
        columns = args.nlat * args.nlon
        sample_bytes = 4 * (layout.n_inputs + layout.n_outputs)
        dataset_bytes = args.time_steps * columns * sample_bytes
        n_train = split_by_time(ds)["train"].sizes["time"] * columns
        budget = int(args.budget_mb * 2 ** 20)
        hp = Hyperparameters(epochs=args.epochs, patience=args.epochs)

        import keras  # noqa: F401  (TensorFlow's own memory is not the loader's)

        rss_before = rss_bytes()
        t0 = time.perf_counter()
        with PeakRSS() as rss:
            result = train_emulator(None, ds, hyperparameters=hp,
                                    loader=LoaderOptions(args.time_block, budget),
                                    evaluate=False, export=False, verbose=0)
        total = time.perf_counter() - t0

    seconds = np.array(result.history["seconds"])
    mib = 2 ** 20
    print(f"default emulator: depth {hp.depth}, width {hp.width}, {hp.activation} "
          f"(slope {hp.leaky_relu_slope}), batch {hp.batch_size}, {hp.optimizer}; "
          f"{result.model.count_params()} parameters")
    print(f"dataset: {args.time_steps} steps x {columns} columns = {args.time_steps * columns} samples, "
          f"{dataset_bytes / mib:.1f} MiB as float32 ({dataset_bytes / budget:.1f} x the loader budget "
          f"of {budget / mib:.1f} MiB); written in {write_seconds:.1f} s")
    print()
    print(f"{'epoch':>5} {'seconds':>9} {'samples/s':>11} {'loss':>9} {'val_loss':>9}")
    for i, s in enumerate(seconds):
        print(f"{i + 1:>5} {s:>9.2f} {n_train / s:>11.0f} {result.history['loss'][i]:>9.4f} "
              f"{result.history['val_loss'][i]:>9.4f}")
    steady = seconds[1:] if len(seconds) > 1 else seconds
    print()
    print(f"training samples per epoch   {n_train}")
    print(f"wall time per epoch          {steady.mean():.2f} s (after the first, which traces the graph)")
    print(f"throughput                   {n_train / steady.mean():.0f} samples/s")
    print(f"total (normalization pass + fit) {total:.1f} s")
    print(f"resident memory before       {rss_before / mib:.0f} MiB")
    print(f"peak resident memory         {rss.peak / mib:.0f} MiB "
          f"(+{(rss.peak - rss_before) / mib:.0f} MiB during training; dataset {dataset_bytes / mib:.0f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
