"""Ensemble inference in the Fortran runtime against the same members run one by one.

Eight members of the SP-CAM-sized network of the FKB paper, 94 -> 5 x 256
(ReLU) -> 65, float32, random weights. For 2048 and 64 columns it times

* ``8 x Network.predict``: the eight networks called in sequence through
  their Python handles (what a user without ensembles writes), and the same
  plus NumPy's mean and standard deviation over members;
* ``Ensemble.predict``: one call that returns mean and standard deviation
  (members run in an OpenMP ``parallel do``), and the same with seeded
  Gaussian input noise (``noise_std=0.1``).

Each thread setting runs in its own process, because OpenMP reads its
thread count at start-up: ``OMP_NUM_THREADS=1`` (everything on one core) and
``OMP_NUM_THREADS=2`` (the single networks run their column blocks on two
threads, the ensemble its members); the BLAS has one thread in both (the
runtime's setting, docs/fortran-api.md "Threads").

    .venv/bin/python benchmarks/bench_ensemble.py [--repeat N]

Runs in well under a minute on two cores.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

N_IN, WIDTH, DEPTH, N_OUT, N_MEMBERS = 94, 256, 5, 65, 8
COLUMNS = (2048, 64)
SETTINGS = (
    ("1", None),
    ("2", None),
)


def write_members(folder: Path) -> list[Path]:
    """Eight model files of the benchmark network, He-initialized weights."""
    from emulators.modelfile import LayerSpec, ModelSpec, Normalization, write_model_file
    paths = []
    for k in range(N_MEMBERS):
        rng = np.random.default_rng(k)
        layers, n = [], N_IN
        for i in range(DEPTH + 1):
            width, activation = (WIDTH, "relu") if i < DEPTH else (N_OUT, "linear")
            layers.append(LayerSpec(i + 1, "dense", width, [i], {"activation": activation, "use_bias": 1},
                                    {"kernel": (rng.normal(0, np.sqrt(2 / n), (width, n))).astype(np.float32),
                                     "bias": rng.normal(0, 0.01, width).astype(np.float32)}))
            n = width
        spec = ModelSpec(N_IN, N_OUT, layers, name=f"member{k}",
                         input_normalization=Normalization(np.zeros(N_IN, np.float32),
                                                           np.ones(N_IN, np.float32)))
        path = folder / f"member{k}.fkb"
        write_model_file(spec, path)
        paths.append(path)
    return paths


def best_time(fn, repeat: int) -> float:
    """Best of `repeat` calls after one warm-up call, in seconds."""
    fn()
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def child(folder: Path, repeat: int) -> dict:
    """Timings in this process's thread setting, in milliseconds."""
    from emulators.fkb import load, load_ensemble
    paths = sorted(folder.glob("*.fkb"))
    nets = [load(p) for p in paths]
    ens = load_ensemble(folder)
    rng = np.random.default_rng(0)
    out = {}
    for n in COLUMNS:
        x = rng.normal(size=(n, N_IN)).astype(np.float32)

        def singles():
            return [net.predict(x) for net in nets]

        def singles_stats():
            ys = np.stack(singles())
            return ys.mean(axis=0), ys.std(axis=0)

        mean, std = ens.predict(x)
        reference = np.stack(singles())
        assert np.allclose(mean, reference.mean(axis=0), rtol=1e-4, atol=1e-4), "ensemble mean is off"
        out[n] = {
            "singles": best_time(singles, repeat) * 1e3,
            "singles_stats": best_time(singles_stats, repeat) * 1e3,
            "ensemble": best_time(lambda: ens.predict(x), repeat) * 1e3,
            "ensemble_noise": best_time(lambda: ens.predict(x, noise_std=0.1, seed=1), repeat) * 1e3,
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="timed calls per case (best is shown)")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.repeat)))
        return

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_members(folder)
        rows = []
        for omp, blas in SETTINGS:
            env = dict(os.environ, OMP_NUM_THREADS=omp)
            env.pop("OPENBLAS_NUM_THREADS", None)
            if blas is not None:
                env["OPENBLAS_NUM_THREADS"] = blas
            done = subprocess.run([sys.executable, __file__, "--child", str(folder), "--repeat", str(args.repeat)],
                                  env=env, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                sys.exit(f"bench_ensemble: the timing process failed:\n{done.stderr[-3000:]}")
            label = f"OMP={omp}" + (f", OPENBLAS={blas}" if blas else "")
            rows.append((label, json.loads(done.stdout.strip().splitlines()[-1])))

    print(f"Ensemble of {N_MEMBERS} x ({N_IN} -> {DEPTH} x {WIDTH} relu -> {N_OUT}), float32; "
          f"best of {args.repeat} calls, milliseconds")
    header = (f"{'threads':<20} {'columns':>7}  {'8 x predict':>11}  {'+ numpy stats':>13}  "
              f"{'ensemble':>9}  {'+ noise':>8}  {'speed-up':>8}")
    print(header)
    print("-" * len(header))
    for label, timings in rows:
        for n in COLUMNS:
            t = timings[str(n)]
            print(f"{label:<20} {n:>7}  {t['singles']:>11.2f}  {t['singles_stats']:>13.2f}  "
                  f"{t['ensemble']:>9.2f}  {t['ensemble_noise']:>8.2f}  "
                  f"{t['singles_stats'] / t['ensemble']:>7.2f}x")
    print("speed-up: (8 x predict + numpy stats) / ensemble")


if __name__ == "__main__":
    main()
