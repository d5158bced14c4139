"""The reference physics on 1 and 2 OpenMP threads: speed and identical bits.

    python benchmarks/bench_reference_threads.py [--days 2] [--rounds 3]

The toy superparameterization runs its columns on OpenMP threads
(``emulated_physics.f90``). For the worlds of the case studies (T21
``aquaplanet`` and T15 ``aquaplanet-t15``, from their shipped spun-up
states) each measurement runs ``--days`` of the model with the reference
physics (``Model.advance``: what the reference stage's runs and the data run
spend their time in) in a process of its own with OMP_NUM_THREADS = 1 or 2,
the two in turn for ``--rounds`` rounds; the table gives the best seconds per
simulated day of each, the speed-up, and whether the final states of the two
thread counts are the same bits (checkpoints compared byte for byte).
"""
from __future__ import annotations

import argparse
import filecmp
import os
import subprocess
import sys
import tempfile
from pathlib import Path

WORLDS = (("aquaplanet", "aquaplanet-t21"), ("aquaplanet-t15", "aquaplanet-t15"))
"""(GCM preset, shipped state) pairs."""

_CHILD = """
import sys, time
from gcm_toy import Model
from experiments.states import check_state
preset, state, days, out = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
model = Model.from_checkpoint(check_state(state, preset))
steps = round(days * 86400 / model.config.dt)
clock = time.perf_counter()
failure = model.advance(steps)
seconds = time.perf_counter() - clock
model.save_checkpoint(out)
print(seconds / days, "" if failure is None else failure.reason)
"""


def measure(preset: str, state: str, days: float, threads: int, out: Path) -> float:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS="1", OMP_DYNAMIC="false")
    result = subprocess.run([sys.executable, "-c", _CHILD, preset, state, str(days), str(out)], env=env,
                            check=True, capture_output=True, text=True)
    value, _, failure = result.stdout.strip().partition(" ")
    if failure:
        raise RuntimeError(f"{preset}: the run crashed: {failure}")
    return float(value)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=float, default=2.0, help="simulated days per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the two thread counts in turn")
    args = parser.parse_args(argv)
    print(f"reference physics from the shipped states, {args.days:g} days per measurement, best of "
          f"{args.rounds} rounds (1 and 2 threads in turn, each in a process of its own)")
    print(f"{'world':<28} {'1 thread s/day':>15} {'2 threads s/day':>16} {'speed-up':>9}  same bits")
    with tempfile.TemporaryDirectory() as tmp:
        for preset, state in WORLDS:
            best = {1: float("inf"), 2: float("inf")}
            for _ in range(args.rounds):
                for threads in (1, 2):
                    seconds = measure(preset, state, args.days, threads, Path(tmp) / f"{threads}.bin")
                    best[threads] = min(best[threads], seconds)
            same = filecmp.cmp(Path(tmp) / "1.bin", Path(tmp) / "2.bin", shallow=False)
            print(f"{preset + ' (' + state + ')':<28} {best[1]:>15.3f} {best[2]:>16.3f} "
                  f"{best[1] / best[2]:>8.2f}x  {'yes' if same else 'NO'}")


if __name__ == "__main__":
    main()
