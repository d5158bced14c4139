"""Do emulators trained on the control climate generalize to a warmer one?

The uniform-warming experiment of aquaplanet studies (Cess et al. 1990;
Medeiros et al. 2015's aqua4K), applied to a finished case study: the
prescribed SST is raised everywhere by ``sst_offset`` (the toy GCM's
physics option of that name), the reference physics spins the world up to
it from the study's control state, the reference run and its perturbed
twins are made there (the warm noise floor), and the study's best
survivors, trained on the control climate only, are coupled in the warm
world and scored against the warm reference. Their warm online error is
set beside their control error, each also as a multiple of its own
world's noise floor.

Everything goes into ``OUT/warming/``: ``spinup.bin`` (the warm start),
``reference/`` (as a study's), ``emulator_NNNN/coupled.nc`` and its
``record.json``, and ``warming.json``, which the report reads for its
section "A warmer climate". Resumable: what is finished is kept.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from coupler.folder_lock import folder_lock
from coupler.records import json_safe
from coupler.results import read_results
from coupler.runs import load_reference, prepare_reference, start_coupled_model
from emulators.atomic_files import replacing, write_text_replacing

# The toy GCM (its Fortran extension) and Dask are imported inside the functions that use them, so
# that importing this module does not load them (start-up time).

__all__ = ["WarmingConfig", "run_warming", "warming_lines", "WARMING_DIR"]

WARMING_DIR = "warming"
"""The folder of the warm experiment in a case study's output folder."""


@dataclass(frozen=True)
class WarmingConfig:
    """``sst_offset`` [K]; ``spinup_days`` on the reference physics from the
    control state before the warm runs start; ``best``: how many of the best
    survivors (by control online error) are coupled; ``n_perturbed``: twins
    of the warm reference (its noise floor)."""

    sst_offset: float = 4.0
    spinup_days: float = 30.0
    best: int = 5
    n_perturbed: int = 2

    def __post_init__(self) -> None:
        if not (math.isfinite(self.sst_offset) and abs(self.sst_offset) <= 20 and self.sst_offset != 0):
            raise ValueError(f"warming: sst_offset must be non-zero and within [-20, 20] K, got {self.sst_offset}")
        if not (math.isfinite(self.spinup_days) and self.spinup_days > 0):
            raise ValueError(f"warming: spinup_days must be positive, got {self.spinup_days}")
        if self.best < 1:
            raise ValueError(f"warming: best must be at least 1, got {self.best}")
        if self.n_perturbed < 1:
            raise ValueError(f"warming: n_perturbed must be at least 1, got {self.n_perturbed}")


def _best_survivors(results, n: int) -> list[int]:
    ok = (results["status"].values == "ok") & (results["crashed"].values == 0) \
        & np.isfinite(results["online_error_normalized"].values)
    order = np.argsort(results["online_error_normalized"].values[ok], kind="stable")
    return [int(i) for i in results["emulator"].values[ok][order][:n]]


def _global_means(path: Path, window_days: float) -> dict[str, float]:
    """Global means of the lowest level's temperature [K] and of precipitation
    [mm day-1] over the last `window_days` of a run."""
    from gcm_toy import open_output

    with open_output(path) as run:
        times = run["time"].values
        last = run.sel(time=times[times > times[-1] - window_days - 1e-9])
        weight = np.asarray(run["gw"].values)
        weight = weight / weight.sum()
        lowest = last["t_mean"].isel(lev=int(np.argmax(run["lev"].values)))
        out = {"t": float((lowest.mean(("time", "lon")).values * weight).sum())}
        if "PRECT" in last:
            precipitation = last["PRECT"].mean(("time", "lon")).values      # kg m-2 s-1
            out["precipitation"] = float((precipitation * weight).sum()) * 86400.0    # mm day-1
    return out


def run_warming(out_dir: str | os.PathLike, config: WarmingConfig = WarmingConfig(), *, log=print,
                progress: bool | None = None) -> Path:
    """Run (or continue) the warm experiment of the finished case study in
    `out_dir` (see the module); returns the path of ``warming.json``. The
    study's folder is locked meanwhile (:mod:`coupler.folder_lock`).
    `progress`: the runs' progress bars (None: on a terminal)."""
    if not (Path(out_dir) / "results.nc").is_file():
        raise FileNotFoundError(f"{out_dir}: not a finished case study (no results.nc)")
    with folder_lock(out_dir):
        return _run_warming(Path(out_dir), config, log, progress)


def _run_warming(out: Path, config: WarmingConfig, log, progress: bool | None) -> Path:
    from coupler.sweep.tasks import scored_run

    control, control_paths = load_reference(out)
    folder = out / WARMING_DIR
    folder.mkdir(exist_ok=True)
    described = dataclasses.asdict(config)
    saved = folder / "warming.toml.json"
    if saved.is_file() and json.loads(saved.read_text()) != described:
        raise ValueError(f"{folder} holds a warm experiment of another configuration ({saved}: "
                         f"{saved.read_text().strip()}); remove it or choose the same options")
    write_text_replacing(saved, json.dumps(described) + "\n")

    spinup = folder / "spinup.bin"
    warm_overrides = {**dict(control.overrides), "sst_offset": float(config.sst_offset)}
    if not spinup.is_file():
        log(f"warming: spinning up the +{config.sst_offset:g} K world for {config.spinup_days:g} days "
            "on the reference physics")
        spin = dataclasses.replace(control, overrides=warm_overrides)
        with start_coupled_model(None, spin) as model:
            run = model.run(config.spinup_days, None, progress=progress, progress_label="warm spin-up")
            if run.attrs.get("run_status") != "completed":
                raise RuntimeError(f"the warm spin-up did not complete: {run.attrs.get('crash_reason')}")
            with replacing(spinup) as tmp:
                model.save_checkpoint(tmp)
    warm = dataclasses.replace(control, overrides=warm_overrides, initial_checkpoint=os.fspath(spinup.resolve()),
                               initial_relative_humidity=None, n_perturbed=config.n_perturbed, fallback_run=False)
    log(f"warming: the warm reference run and {config.n_perturbed} twins in {folder / 'reference'}")
    paths = prepare_reference(warm, folder / "reference", progress=progress)

    results = read_results(out / "results.nc")
    chosen = _best_survivors(results, config.best)
    records = []
    for index in chosen:
        run_dir = folder / f"emulator_{index:04d}"
        record_path = run_dir / "record.json"
        if not record_path.is_file():
            log(f"warming: coupling emulator {index} in the warm world")
            run_dir.mkdir(exist_ok=True)
            model_file = out / "emulators" / f"emulator_{index:04d}" / "emulator.fkb"
            if not model_file.is_file():
                raise FileNotFoundError(f"{model_file}: the emulator's model file is not there to couple")
            result = scored_run(model_file, warm, run_dir / "coupled.nc", paths["reference"], progress=progress)
            write_text_replacing(record_path, json.dumps(json_safe(result.to_record()), indent=2) + "\n")
        records.append({"emulator": index, **json.loads(record_path.read_text())})

    from xarray import open_dataset
    floors = {}
    for name, path in (("control", control_paths.get("noise_floor")), ("warm", paths["noise_floor"])):
        with open_dataset(path) as floor:
            floors[name] = float(floor["online_error_normalized"])
    by_index = {int(e): i for i, e in enumerate(results["emulator"].values)}
    rows = []
    for record in records:
        i = by_index[record["emulator"]]
        control_error = float(results["online_error_normalized"].values[i])
        rows.append({
            "emulator": record["emulator"], "optimizer": str(results["optimizer"].values[i]),
            "offline_mse": float(results["offline_mse"].values[i]),
            "control_error": control_error, "control_error_t": float(results["online_error_t"].values[i]),
            "warm_error": record["online_error_normalized"], "warm_error_t": record["online_error_t"],
            "warm_crashed": record["crashed"], "warm_days_survived": record["days_survived"],
            "ratio": record["online_error_normalized"] / control_error if control_error > 0 else math.nan,
            "control_over_floor": control_error / floors["control"],
            "warm_over_floor": record["online_error_normalized"] / floors["warm"]})
    summary = {"sst_offset": config.sst_offset, "spinup_days": config.spinup_days, "run_days": warm.days,
               "window_days": warm.window_days, "noise_floor": floors,
               "climate": {"control": _global_means(Path(control_paths["reference"]), warm.window_days),
                           "warm": _global_means(Path(paths["reference"]), warm.window_days)},
               "emulators": rows}
    path = folder / "warming.json"
    write_text_replacing(path, json.dumps(json_safe(summary), indent=2) + "\n")
    return path


def warming_lines(out_dir: str | os.PathLike) -> list[str]:
    """The report's section on the warm experiment (empty without one)."""
    path = Path(out_dir) / WARMING_DIR / "warming.json"
    if not path.is_file():
        return []
    s = json.loads(path.read_text())
    rows = s["emulators"]
    climate = s["climate"]
    dt = climate["warm"]["t"] - climate["control"]["t"]
    change = ""
    if "precipitation" in climate["warm"] and "precipitation" in climate["control"]:
        dp = climate["warm"]["precipitation"] / climate["control"]["precipitation"] - 1
        change = f", global precipitation {100 * dp:+.1f} % ({100 * dp / dt:.1f} % per K)" if dt else ""
    survived = [r for r in rows if not r["warm_crashed"]]
    ratio = np.array([r["ratio"] for r in survived], float)
    lines = [f"## A warmer climate (SST +{s['sst_offset']:g} K)", "",
             f"The prescribed SST was raised by {s['sst_offset']:g} K everywhere, the reference physics spun the "
             f"world up for {s['spinup_days']:g} days from the control state, and the {len(rows)} best survivors "
             f"(trained on the control climate only) were coupled there for {s['run_days']:g} days and scored "
             f"against the warm reference (experiments/warming.py). The warm world's reference run: global-mean "
             f"lowest-level temperature {dt:+.2f} K{change} against the control's. Noise floors (the twins' mean online "
             f"error, normalised): control {s['noise_floor']['control']:.3g}, warm {s['noise_floor']['warm']:.3g}.",
             "",
             "| emulator | optimizer | control error | warm error | warm / control | control / floor "
             "| warm / floor | warm run |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        status = "crashed at day " + f"{r['warm_days_survived']:.3g}" if r["warm_crashed"] else "survived"
        lines.append(f"| {r['emulator']} | {r['optimizer']} | {r['control_error']:.3g} | {r['warm_error']:.3g} "
                     f"| {r['ratio']:.3g} | {r['control_over_floor']:.3g} | {r['warm_over_floor']:.3g} "
                     f"| {status} |")
    lines += ["", f"{len(survived)} of {len(rows)} survived the warm run; the warm error over the control error: "
              + (f"median {np.median(ratio):.3g} (range {ratio.min():.3g}-{ratio.max():.3g})" if ratio.size
                 else "none to compare") + ".", ""]
    return lines
