"""The run loop of the toy GCM: step, write records, handle a crash.

:func:`run_model` is what :meth:`gcm_toy.Model.run` does. Output records fall
on multiples of ``output_interval_hours`` of model time (counted from step
0, so a restarted run writes at the same times as the uninterrupted one);
a run that ends between two of them writes a last, shorter record. The
means average the state after every step of the interval.

A state that fails the core's crash check (or a physics error) ends the run
as data: no record for the unfinished interval, ``run_status = "crashed"``
and the ``crash_*`` attributes (reason, time, place, variable, value) in the
dataset and the file, and the function returns normally.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from emulators.progress import progress_bar
from emulators.provenance import with_history
from gcm_toy.config import checkpoint_config_path, finetune_state_path, steps_for_days, steps_per_output
from gcm_toy.output import DIAGNOSTIC_ORDER, GUARD_DIAGNOSTICS, MemoryWriter, NetCDFWriter, Record

# tqdm is imported inside the functions that use it, so that importing this module does not load it
# (start-up time).

if TYPE_CHECKING:
    from gcm_toy.model import Failure, Model

__all__ = ["run_model", "day_label", "days_progress_bar", "finetune_attrs"]


def day_label(days: float) -> str:
    """Model time for file names: '00600' for day 600, '00600.250' for 600.25."""
    return f"{int(round(days)):05d}" if abs(days - round(days)) < 1e-9 else f"{days:09.3f}"


def days_progress_bar(progress: bool | None, total_days: float, start_day: float, desc: str = "gcm"):
    """The progress bar of a GCM run of `total_days` from `start_day`, in
    model days (emulators.progress)."""
    return progress_bar(round(total_days, 6), f"{desc} from day {start_day:g}", unit="day", progress=progress,
                        bar_format="{l_bar}{bar}| {n:.2f}/{total:g} days [{elapsed}<{remaining}, {rate_fmt}]")


def finetune_attrs(model: "Model") -> dict[str, Any]:
    """The run record of online fine-tuning (empty without it):
    ``finetune_status`` (``tuning`` or the stop message, e.g. 'fine-tuning
    stopped at step S (day D): loss not finite ...; last good weights
    kept'), ``finetune_stopped_step`` (-1: none) and
    ``finetune_optimizer_steps`` (since the network was compiled, earlier
    runs of a restart included)."""
    status = model.finetune_status()
    if status is None:
        return {}
    return {"finetune_status": model.finetune_stop_message() or "tuning",
            "finetune_stopped_step": status.stopped_step, "finetune_optimizer_steps": status.iterations}


def run_model(model: "Model", days: float | None, out: str | os.PathLike | None, *,
              restart: str | os.PathLike | None = None, progress: bool | None = None, overwrite: bool = False,
              checkpoint_every_days: float | None = None,
              checkpoint_dir: str | os.PathLike | None = None,
              keep_checkpoints: int | None = None, progress_label: str = "gcm") -> xr.Dataset:
    """Run `model` for `days` [days] (default: its config's) writing records
    to `out` (netCDF4, incremental) or to memory; returns the Dataset.
    `keep_checkpoints`: keep only the newest this many of the checkpoints
    this run writes (a rolling rewind point), else all. `progress_label`:
    what the progress bar calls the run."""
    config = model.config
    if restart is not None:
        model.load_checkpoint(restart)
    restart_from, model.restarted_from = model.restarted_from, None   # this run's, not the next one's
    days = config.days if days is None else float(days)
    dt = config.dt
    n_steps = steps_for_days(days, dt)
    per_output = steps_per_output(config)
    per_checkpoint = None
    if checkpoint_every_days is not None:
        per_checkpoint = steps_for_days(checkpoint_every_days, dt, "checkpoint_every_days")
        if per_checkpoint == 0:
            raise ValueError("option 'checkpoint_every_days': must be positive")
        if checkpoint_dir is None:
            checkpoint_dir = Path(out).parent if out is not None else Path.cwd()
    if keep_checkpoints is not None and keep_checkpoints < 1:
        raise ValueError(f"keep_checkpoints: must be at least 1, got {keep_checkpoints}")
    written: list[Path] = []

    start = model.step_count
    end = start + n_steps
    names = ["u", "v", "t"] + (["q"] if model.humidity else []) + ["ps"]
    names = names + [f"{name}_mean" for name in names]
    if model.has_diagnostics:
        names += list(DIAGNOSTIC_ORDER) + (["CLOUD", "PRECC"] if model.physics_mode == "reference" else [])
    if model.humidity:
        names.append("QFILL")
    if config.guard != "off":
        names += list(GUARD_DIAGNOSTICS) + [f"{name}_GLOBAL" for name in GUARD_DIAGNOSTICS]
    if config.finetune:
        names.append("FINETUNE_LOSS")
    attrs: dict[str, Any] = with_history({
        "title": f"toy GCM {config.short_name()}, physics '{config.physics}'"
                 + (f": {config.description}" if config.description else ""),
        "source": "gcm_toy: spectral primitive-equation dynamical core (sigma levels, semi-implicit leapfrog)",
        "physics": config.physics,
        "emulator": "\n".join(config.emulator) if config.physics in ("emulator", "ensemble") else None,
        "configuration": config.to_toml(),
        "output_interval_hours": config.output_interval_hours,
        "start_time_days": start * dt / 86400.0,
        "restart_from": os.fspath(restart_from) if restart_from is not None else None,
        "run_status": "running",
    }, note=f"gcm_toy run of {days:g} days from day {start * dt / 86400.0:g}")
    if out is not None:
        writer: NetCDFWriter | MemoryWriter = NetCDFWriter(out, model.grid, names, dt, config.output_precision,
                                                           attrs, overwrite=overwrite)
    else:
        writer = MemoryWriter(model.grid, names, dt, config.output_precision, attrs)

    model.reset_means()
    interval_start = start
    failure: Failure | None = None
    bar = days_progress_bar(progress, n_steps * dt / 86400.0, start * dt / 86400.0, progress_label)
    try:
        step = start
        while step < end:
            boundaries = [end, (step // per_output + 1) * per_output]
            if per_checkpoint:
                boundaries.append((step // per_checkpoint + 1) * per_checkpoint)
            target = min(boundaries)
            failure = model.advance(target - step, accumulate=True)
            if failure is not None:
                bar.update((model.step_count - step) * dt / 86400.0)
                bar.set_postfix_str(f"crashed at day {failure.time_days:g}")
                break
            bar.update((target - step) * dt / 86400.0)
            step = target
            if step % per_output == 0 or step == end:
                means, count = model.means()
                diagnostics = model.diagnostic_means()[0] if model.has_diagnostics else {}
                if model.humidity:
                    diagnostics["QFILL"] = np.float64(model.humidity_filled_mean())
                for name in GUARD_DIAGNOSTICS:
                    if name in diagnostics:
                        diagnostics[f"{name}_GLOBAL"] = np.float64(model.grid.global_mean(diagnostics[name]))
                tuning = model.finetune_status()
                if tuning is not None:
                    diagnostics["FINETUNE_LOSS"] = np.float64(tuning.interval_loss)
                writer.write(Record(time=step * dt / 86400.0, start=interval_start * dt / 86400.0,
                                    instant=model.fields(), mean=means, diagnostics=diagnostics))
                model.reset_means()
                interval_start = step
            if per_checkpoint and step % per_checkpoint == 0:
                written.append(model.save_checkpoint(
                    Path(checkpoint_dir) / f"checkpoint_day{day_label(step * dt / 86400.0)}.bin"))
                if keep_checkpoints is not None:
                    for old in written[:-keep_checkpoints]:
                        old.unlink(missing_ok=True)
                        checkpoint_config_path(old).unlink(missing_ok=True)
                        tuned = finetune_state_path(old)
                        tuned.unlink(missing_ok=True)
                        tuned.with_name(tuned.name + ".state").unlink(missing_ok=True)
                    del written[:-keep_checkpoints]
    except BaseException as exc:  # keep what was written, say why it ends here
        status = "interrupted" if isinstance(exc, KeyboardInterrupt) else f"error: {type(exc).__name__}: {exc}"
        writer.set_attrs({"run_status": status, "end_time_days": model.time_days})
        writer.close()
        raise
    finally:
        bar.close()

    final = {"end_time_days": model.time_days, "run_status": "crashed" if failure else "completed"}
    final.update(finetune_attrs(model))
    if failure is not None:
        final.update(failure.attrs())
    writer.set_attrs(final)
    return writer.dataset()
