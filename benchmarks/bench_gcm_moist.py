"""Cost of the moist toy GCM: reference physics against an emulator.

    python benchmarks/bench_gcm_moist.py [--days 2] [--repeat 2]

T21 64x32 L10 aquaplanet (preset ``aquaplanet``: dt 30 min, 2048 columns),
one core (one OpenMP and one BLAS thread), through the Python API
(``Model.advance``), from a state after a short spin-up with the reference
physics. For each physics the wall and CPU seconds per simulated day and the
physics step alone (the core's timer, milliseconds per step):

- ``reference``: the toy superparameterization (subcolumns x sub-steps of
  convection, condensation, clouds and radiation);
- ``emulator``: a 5 x 128 leaky-ReLU network (random Glorot weights with the
  interface's names, units and a realistic normalization: its physics is
  meaningless, its cost is an emulator's), float32, one library call per step;
- ``ensemble``: four such networks.

The issue's target: the emulator at least 5x cheaper than the reference
physics, as the SP-CAM emulators were against their embedded cloud model.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "gcm_toy" / "tests_fortran" / "coupling"))

from emulators.modelfile import write_model_file  # noqa: E402
from gcm_toy import Model  # noqa: E402
from make_test_networks import mlp  # noqa: E402

NLEV = 10


def time_physics(checkpoint: Path, overrides: dict, days: float, repeat: int) -> dict[str, float]:
    """Best of `repeat`: wall and CPU s per simulated day, physics ms per step, days run."""
    best: dict[str, float] = {}
    for _ in range(repeat):
        model = Model.from_checkpoint(checkpoint, overrides)
        n_steps = round(days * 86400 / model.config.dt)
        model.reset_timers()
        wall, cpu = time.perf_counter(), time.process_time()
        failure = model.advance(n_steps)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        timers = model.timers()
        ran = timers["steps"] * model.config.dt / 86400
        if ran > 0 and (not best or wall / ran < best["wall"]):
            best = {"wall": wall / ran, "cpu": cpu / ran, "physics_ms": 1e3 * timers["physics"] / timers["steps"],
                    "days": ran, "failure": "" if failure is None else failure.reason}
        model.close()
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=float, default=2.0, help="simulated days per measurement")
    parser.add_argument("--spinup-days", type=float, default=3.0)
    parser.add_argument("--repeat", type=int, default=2, help="measurements per case (best is shown)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = Model("aquaplanet", {"physics": "reference"})
        model.advance(round(args.spinup_days * 86400 / model.config.dt))
        checkpoint = model.save_checkpoint(tmp / "spinup.bin")
        model.close()
        members = []
        for seed in range(4):
            members.append(tmp / f"mlp_5x128_{seed}.fkb")
            write_model_file(mlp(NLEV, 5, 128, seed), members[-1])
        cases = [("reference (superparameterized)", {"physics": "reference"}),
                 ("emulator 5x128, float32", {"physics": "emulator", "emulator": [str(members[0])]}),
                 ("ensemble 4 x 5x128, float32", {"physics": "ensemble", "emulator": [str(m) for m in members]})]
        print(f"toy GCM aquaplanet T21 64x32 L10 (2048 columns), dt 30 min, one core; best of {args.repeat} x "
              f"{args.days:g} days after a {args.spinup_days:g}-day spin-up\n")
        header = (f"| {'physics':<32} | {'s/day':>6} | {'CPU s/day':>9} | {'physics ms/step':>15} | "
                  f"{'reference/this: model':>21} | {'physics':>7} |")
        print(header)
        print("|" + "|".join("-" * len(cell) for cell in header.split("|")[1:-1]) + "|")
        reference = None
        for label, overrides in cases:
            r = time_physics(checkpoint, overrides, args.days, args.repeat)
            reference = reference or r
            note = f" (crashed after {r['days']:.2f} days: {r['failure']})" if r["failure"] else ""
            print(f"| {label:<32} | {r['wall']:6.3f} | {r['cpu']:9.3f} | {r['physics_ms']:15.2f} | "
                  f"{reference['cpu'] / r['cpu']:21.1f} | {reference['physics_ms'] / r['physics_ms']:7.1f} |{note}")
    print("\nphysics ms/step: the core's timer around the column physics (host surface fluxes and boundary "
          "layer included); the emulator replaces convection, condensation, clouds and radiation.")


if __name__ == "__main__":
    main()
