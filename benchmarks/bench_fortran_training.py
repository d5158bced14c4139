"""Training throughput of the Fortran runtime against Keras and PyTorch, in one run.

Minibatch training with Adam (Keras's defaults; PyTorch's Adam with Keras's
epsilon 1e-7), mean squared error, float32, on the same in-memory data and
from the same initial weights, one epoch at a time: a warm-up epoch each,
then --repeats rounds of one epoch per engine, the engines in turn (a spell
of a slower machine, common on shared virtual machines, then falls on all
of them); the best epoch counts, and the ratios are also given as the median
over the rounds:

* Fortran: ``emulators.fkb.Network.fit`` (one call into the runtime per
  epoch: shuffling, forward, backward and the optimizer step all in Fortran);
* Keras: ``model.fit`` (TensorFlow CPU), graph mode, shuffled;
* PyTorch: the usual loop (``randperm``, forward, ``loss.backward()``,
  ``optimizer.step()``), ``torch.set_num_threads``.

Networks: the FKB paper's 94 -> 5 x 256 (LeakyReLU 0.3) -> 65 and the toy
GCM's emulator size 24 -> 5 x 128 -> 25, at batch 1024 and 256. GFLOP/s count
three times the multiply-adds of the forward pass (forward, input gradient,
weight gradient), against the machine's multiply-add peak measured by
``fma_peak.c`` (compiled with the system's C compiler) times the threads.

Then the paper network at batch 1024 again with a busy neighbour: another
process spinning on one core (the last), as when a second job shares the
machine. Fortran/Keras throughput with the neighbour, over without, should
stay at least 0.5. Last, the memory the runtime's `fit` adds over an epoch
of --memory-samples samples of the paper network (float32 arrays of 94
inputs and 65 targets held once, by the caller).

    .venv/bin/python benchmarks/bench_fortran_training.py [--samples 65536] [--threads 2]
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
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402

from machine import PeakRSS, busy_neighbour, fma_peak, rss_bytes  # noqa: E402

CASES = [("FKB paper", 94, [256] * 5, 65, 1024), ("FKB paper", 94, [256] * 5, 65, 256),
         ("toy GCM", 24, [128] * 5, 25, 1024), ("toy GCM", 24, [128] * 5, 25, 256)]


def flop_per_sample(n_in: int, widths: list[int], n_out: int) -> int:
    sizes = [n_in, *widths, n_out]
    return 3 * 2 * sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))


class Engines:
    """The three trainers of one network, from the same initial weights."""

    def __init__(self, n_in: int, widths: list[int], n_out: int, threads: int, tmp: Path):
        import keras
        import torch
        from bench_inference import dense_weights, mlp
        from emulators.convert import keras_to_spec
        from emulators.fkb import load
        from emulators.modelfile import write_model_file

        self.model = mlp(n_in, widths, n_out, slope=0.3)
        path = tmp / f"net{n_in}x{widths[0]}.fkb"
        write_model_file(keras_to_spec(self.model), path)
        self.net = load(path)
        self.net.compile("adam", "mse")
        self.model.compile(optimizer=keras.optimizers.Adam(), loss="mse")
        torch.set_num_threads(threads)
        layers: list = []
        for i, (kernel, bias) in enumerate(dense_weights(self.model)):
            linear = torch.nn.Linear(kernel.shape[0], kernel.shape[1])
            with torch.no_grad():
                linear.weight.copy_(torch.from_numpy(kernel.T.copy()))
                linear.bias.copy_(torch.from_numpy(bias))
            layers.append(linear)
            if i < len(widths):
                layers.append(torch.nn.LeakyReLU(0.3))
        self.torch_model = torch.nn.Sequential(*layers)
        self.torch_optimizer = torch.optim.Adam(self.torch_model.parameters(), lr=1e-3, eps=1e-7)

    def fortran_epoch(self, x, y, batch_size: int) -> float:
        return float(self.net.fit(x, y, epochs=1, batch_size=batch_size)[-1])

    def keras_epoch(self, x, y, batch_size: int) -> float:
        return float(self.model.fit(x, y, epochs=1, batch_size=batch_size, shuffle=True,
                                    verbose=0).history["loss"][-1])

    def torch_epoch(self, xt, yt, batch_size: int) -> float:
        import torch
        n = xt.shape[0]
        order = torch.randperm(n)
        total = 0.0
        loss_fn = torch.nn.MSELoss()
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            self.torch_optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(self.torch_model(xt[idx]), yt[idx])
            loss.backward()
            self.torch_optimizer.step()
            total += float(loss.detach()) * len(idx)
        return total / n


def measure(engines: Engines, x, y, batch_size: int, repeats: int) -> dict[str, tuple[list[float], float]]:
    """Seconds of `repeats` epochs per engine (after a warm-up epoch each),
    the engines in turn within each round (the first one rotating), so that
    a spell of a slower machine falls on all of them; with the last loss."""
    import torch
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    epochs = {"Fortran": lambda: engines.fortran_epoch(x, y, batch_size),
              "Keras": lambda: engines.keras_epoch(x, y, batch_size),
              "PyTorch": lambda: engines.torch_epoch(xt, yt, batch_size)}
    seconds: dict[str, list[float]] = {name: [] for name in epochs}
    losses = {name: epoch() for name, epoch in epochs.items()}
    names = list(epochs)
    for round_ in range(repeats):
        for name in names[round_ % len(names):] + names[:round_ % len(names)]:
            t0 = time.perf_counter()
            losses[name] = epochs[name]()
            seconds[name].append(time.perf_counter() - t0)
    return {name: (times, losses[name]) for name, times in seconds.items()}


def best_ratio(results: dict, other: str) -> float:
    """`other`'s best epoch over Fortran's."""
    return min(results[other][0]) / min(results["Fortran"][0])


def ratio_text(results: dict, other: str) -> str:
    """`best_ratio`, and the median over the rounds of the two engines'
    epochs of the same round."""
    best = best_ratio(results, other)
    rounds = np.median(np.array(results[other][0]) / np.array(results["Fortran"][0]))
    return f"Fortran / {other} {best:.2f}x (median of rounds {rounds:.2f}x)"


def memory_row(engines: Engines, samples: int) -> None:
    """Resident memory before and during one `fit` epoch on `samples` samples."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((samples, 94), dtype=np.float32)
    y = rng.standard_normal((samples, 65), dtype=np.float32)
    before = rss_bytes()
    with PeakRSS() as rss:
        engines.fortran_epoch(x, y, 1024)
    mib = 2 ** 20
    print(f"memory: fit on {samples:,} samples ({(x.nbytes + y.nbytes) / mib:.0f} MiB of float32 inputs "
          f"and targets): resident {before / mib:.0f} MiB before, {rss.peak / mib:.0f} MiB at the peak "
          f"of the epoch (+{(rss.peak - before) / mib:.0f} MiB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=65536, help="samples per epoch (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="threads of every engine")
    parser.add_argument("--repeats", type=int, default=5,
                        help="rounds of one timed epoch per engine; the best epoch counts")
    parser.add_argument("--no-neighbour", action="store_true", help="skip the busy-neighbour rows")
    parser.add_argument("--memory-samples", type=int, default=1_000_000,
                        help="samples of the memory row (0: skip it; default: %(default)s)")
    args = parser.parse_args()

    import tensorflow as tf
    import torch
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from emulators.fkb import dense_kernel, set_threads
    set_threads(args.threads)

    peak = fma_peak()
    print(f"threads: {args.threads} (Fortran dense kernels: {dense_kernel()}; TensorFlow {tf.__version__}; "
          f"PyTorch {torch.__version__})")
    if peak is not None:
        print(f"multiply-add peak: {peak:.0f} GFLOP/s per core, {peak * args.threads:.0f} on "
              f"{args.threads} threads (benchmarks/fma_peak.c)")
    print(f"Adam, MSE, float32, one epoch of {args.samples:,} samples; best of {args.repeats} rounds "
          f"(the engines in turn in each round)")
    header = (f"{'network':<30} | {'batch':>5} | {'engine':<8} | {'samples/s':>10} | {'GFLOP/s':>7} | "
              f"{'% peak':>6} | {'loss':>8}")
    print(header)
    print("-" * len(header))
    rng = np.random.default_rng(0)
    quiet_ratio = None
    with tempfile.TemporaryDirectory() as tmp:
        engines_of: dict[tuple, Engines] = {}
        for name, n_in, widths, n_out, batch in CASES:
            key = (n_in, widths[0], n_out)
            if key not in engines_of:
                engines_of[key] = Engines(n_in, widths, n_out, args.threads, Path(tmp))
            x = rng.standard_normal((args.samples, n_in)).astype(np.float32)
            w = rng.standard_normal((n_in, n_out)).astype(np.float32) / np.sqrt(n_in)
            y = np.tanh(x @ w).astype(np.float32)
            flop = flop_per_sample(n_in, widths, n_out)
            results = measure(engines_of[key], x, y, batch, args.repeats)
            label = f"{name} {n_in}->{len(widths)}x{widths[0]}->{n_out}"
            for engine, (times, loss) in results.items():
                rate = args.samples / min(times)
                gflops = rate * flop / 1e9
                share = f"{100 * gflops / (peak * args.threads):>5.0f}%" if peak else "     -"
                print(f"{label:<30} | {batch:>5} | {engine:<8} | {rate:>10,.0f} | {gflops:>7.1f} | "
                      f"{share} | {loss:>8.4f}")
            print(f"{'':<30} | {'':>5} | {ratio_text(results, 'Keras')}, {ratio_text(results, 'PyTorch')}")
            if name == "FKB paper" and batch == 1024:
                quiet_ratio = best_ratio(results, "Keras")
                paper = (engines_of[key], x, y)
        engines, x, y = paper
        if args.memory_samples > 0:
            memory_row(engines, args.memory_samples)
        if args.no_neighbour or args.threads < 2:
            return
        neighbour = busy_neighbour()
        try:
            time.sleep(1.0)
            results = measure(engines, x, y, 1024, args.repeats)
        finally:
            neighbour.kill()
            neighbour.wait()
        print(f"with a busy neighbour on core {os.cpu_count() - 1}:")
        for engine, (times, loss) in results.items():
            print(f"{'FKB paper, busy neighbour':<30} | {1024:>5} | {engine:<8} | "
                  f"{args.samples / min(times):>10,.0f} |")
        busy_ratio = best_ratio(results, "Keras")
        print(f"Fortran / Keras: {quiet_ratio:.2f}x quiet, {busy_ratio:.2f}x with the neighbour "
              f"({busy_ratio / quiet_ratio:.2f} of the quiet ratio; the target is at least 0.5)")


if __name__ == "__main__":
    main()
