"""Cost of the toy GCM through its Python API: seconds per simulated day.

    python benchmarks/bench_gcm.py [--days 10] [--repeat 3]

T21 64x32 L10, dt = 30 min, dry, one core. The flow is spun up for 20 days
with Held-Suarez forcing first (a developed, not a resting, state); each case
then continues from that checkpoint:

- dynamics only (physics 'none') and with Held-Suarez forcing: `Model.advance`,
  the bare Fortran time step called once per case, with the core's own
  timers splitting it into transforms (Legendre + Fourier) and the rest;
- the same with `Model.run` writing 6-hourly output (snapshots and interval
  means accumulated every step) to a netCDF file: what a user's run costs.

Reference: SPEEDY (Molteni 2003; Kucharski et al. 2013) at T30 96x48 L8
costs ~0.28 s per simulated day, 0.12 us per grid point, level and step;
the target for T21 L10 dynamics at that rate is 0.12 s/day.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from gcm_toy import Model  # noqa: E402

SPEEDY_US_PER_POINT_STEP = 0.12
"""SPEEDY at T30 96x48 L8 (dt 40 min): 0.28 s/day / (96*48*8 points * 36 steps)."""

CONFIG = {"truncation": 21, "nlev": 10, "dt": 1800.0, "humidity": False, "output_interval_hours": 6.0}


def spun_up_checkpoint(directory: Path, days: float) -> Path:
    model = Model("held-suarez", CONFIG)
    model.advance(round(days * 86400 / CONFIG["dt"]))
    return model.save_checkpoint(directory / "spinup.bin")


def time_advance(checkpoint: Path, physics: str, days: float, repeat: int) -> dict[str, float]:
    """Best of `repeat`: wall and CPU seconds per simulated day of bare stepping, and the timer split."""
    best: dict[str, float] = {}
    n_steps = round(days * 86400 / CONFIG["dt"])
    for _ in range(repeat):
        model = Model.from_checkpoint(checkpoint, {"physics": physics})
        model.reset_timers()
        wall, cpu = time.perf_counter(), time.process_time()
        failure = model.advance(n_steps)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        assert failure is None, failure
        timers = model.timers()
        if not best or wall < best["wall"] * days:
            best = {"wall": wall / days, "cpu": cpu / days, **{k: timers[k] / days for k in
                                                             ("transforms", "grid", "physics", "spectral")}}
        model.close()
    return best


def time_run(checkpoint: Path, physics: str, days: float, repeat: int, directory: Path) -> float:
    """Best of `repeat`: wall seconds per simulated day of `Model.run` with 6-hourly netCDF output."""
    best = float("inf")
    for i in range(repeat):
        model = Model.from_checkpoint(checkpoint, {"physics": physics})
        wall = time.perf_counter()
        ds = model.run(days, out=directory / f"{physics}-{i}.nc", progress=False)
        best = min(best, (time.perf_counter() - wall) / days)
        assert ds.attrs["run_status"] == "completed"
        ds.close()
        model.close()
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=float, default=10.0, help="simulated days per measurement")
    parser.add_argument("--spinup-days", type=float, default=20.0)
    parser.add_argument("--repeat", type=int, default=3, help="measurements per case (best is shown)")
    args = parser.parse_args()

    points = 64 * 32 * 10
    steps_per_day = 86400 / CONFIG["dt"]
    print(f"toy GCM T21 64x32 L10, dt {CONFIG['dt'] / 60:g} min, dry, one core; best of {args.repeat} x "
          f"{args.days:g} days after a {args.spinup_days:g}-day Held-Suarez spin-up\n")
    header = (f"| {'case':<36} | {'s/day':>6} | {'CPU s/day':>9} | {'ms/step':>7} | {'us/pt/step':>10} | "
              f"{'transforms':>10} | {'rest':>6} |")
    print(header)
    print("|" + "|".join("-" * (len(cell)) for cell in header.split("|")[1:-1]) + "|")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        checkpoint = spun_up_checkpoint(tmp, args.spinup_days)
        for physics, label in (("none", "dynamics only"), ("held-suarez", "Held-Suarez forcing")):
            r = time_advance(checkpoint, physics, args.days, args.repeat)
            rest = r["grid"] + r["physics"] + r["spectral"]
            print(f"| {label + ', Model.advance':<36} | {r['wall']:6.3f} | {r['cpu']:9.3f} | "
                  f"{1e3 * r['wall'] / steps_per_day:7.2f} | {1e6 * r['wall'] / steps_per_day / points:10.3f} | "
                  f"{r['transforms']:6.3f} {100 * r['transforms'] / r['wall']:2.0f}% | {rest:6.3f} |")
            wall = time_run(checkpoint, physics, args.days, args.repeat, tmp)
            print(f"| {label + ', Model.run + output':<36} | {wall:6.3f} | {'':>9} | "
                  f"{1e3 * wall / steps_per_day:7.2f} | {1e6 * wall / steps_per_day / points:10.3f} | "
                  f"{'':>10} | {'':>6} |")
    speedy = SPEEDY_US_PER_POINT_STEP * 1e-6 * points * steps_per_day
    print("\nModel.advance: the bare time step; Model.run + output: 6-hourly netCDF records, means of every step.")
    print(f"reference: SPEEDY T30 96x48 L8 ~0.28 s/day = {SPEEDY_US_PER_POINT_STEP} us per point-level-step; "
          f"at that rate T21 L10 costs {speedy:.3f} s/day (the target for the dynamics).")
    print("transforms/rest: the core's wall-clock timers per simulated day [s] (rest = grid-point dynamics, "
          "fixers and crash check, physics, spectral solve/diffusion/filter).")


if __name__ == "__main__":
    main()
