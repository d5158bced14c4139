"""What the out-of-distribution guard costs beside a plain predict.

The guard (``network%guard``, fortran/src/fkb_guard.inc) scores every column
against the training inputs' statistics of the model file; its target is at
most 5 % over a plain ``predict`` at 2048 columns. On three networks with
statistics of 20,000 synthetic correlated training inputs (rank as the
exporter chooses it, at most 16), float32, one process, the calls in turn,
each time the best of ``--rounds`` rounds of 20 calls:

* the toy GCM's emulator, 24 -> 5 x 128 -> 25 (ReLU);
* the FKB paper's network, 94 -> 5 x 256 -> 65;
* a small emulator, 24 -> 3 x 64 -> 25 (the quick preset's smaller draws).

    .venv/bin/python benchmarks/bench_guard.py [--threads N] [--rounds R]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from emulators.fkb import load, set_threads
from emulators.input_statistics import input_statistics
from emulators.modelfile import LayerSpec, ModelSpec, write_model_file

NETWORKS = (("toy GCM 24 -> 5x128 -> 25", 24, [128] * 5, 25),
            ("FKB paper 94 -> 5x256 -> 65", 94, [256] * 5, 65),
            ("small 24 -> 3x64 -> 25", 24, [64] * 3, 25))
COLUMNS = 2048


def dense_spec(n_in: int, widths: list[int], n_out: int, seed: int = 0) -> ModelSpec:
    rng = np.random.default_rng(seed)
    layers, previous = [], n_in
    for i, width in enumerate(widths + [n_out], start=1):
        activation = "relu" if i <= len(widths) else "linear"
        layers.append(LayerSpec(i, "dense", width, [i - 1], {"activation": activation, "use_bias": 1},
                                {"kernel": (rng.standard_normal((width, previous)) / np.sqrt(previous)).astype(np.float32),
                                 "bias": np.zeros(width, np.float32)}))
        previous = width
    return ModelSpec(n_in, n_out, layers, name="bench")


def training_inputs(n_in: int, n: int = 20000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mixing = rng.standard_normal((n_in, n_in)) * np.r_[np.ones(6), 0.05 * np.ones(n_in - 6)]
    return (rng.standard_normal((n, n_in)) @ mixing.T) * np.linspace(1, 50, n_in) + np.linspace(-3, 280, n_in)


def best(call, rounds: int, calls: int = 20) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(calls):
            call()
        times.append((time.perf_counter() - start) / calls)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    set_threads(args.threads)
    print(f"{COLUMNS} columns, float32, {args.threads} thread(s), best of {args.rounds} rounds of 20 calls\n")
    print("| network | rank | predict [us] | guard [us] | guard / predict |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for label, n_in, widths, n_out in NETWORKS:
            spec = dense_spec(n_in, widths, n_out)
            x = training_inputs(n_in)
            spec.input_statistics = input_statistics(lambda: (x[i:i + 4096] for i in range(0, len(x), 4096)))
            path = Path(tmp) / "net.fkb"
            write_model_file(spec, path)
            net = load(path)
            columns = np.ascontiguousarray(x[:COLUMNS], np.float32)
            net.predict(columns), net.guard(columns)         # workspaces sized
            predict = guard = float("inf")
            for _ in range(3):                               # in turn, so that both see the same machine
                predict = min(predict, best(lambda: net.predict(columns), args.rounds))
                guard = min(guard, best(lambda: net.guard(columns), args.rounds))
            print(f"| {label} | {spec.input_statistics.rank} | {predict * 1e6:.0f} | {guard * 1e6:.0f} | "
                  f"{100 * guard / predict:.1f} % |")


if __name__ == "__main__":
    main()
