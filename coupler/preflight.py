"""The pre-flight check of an emulator: its outputs on reference data, before any coupled run.

A network that returns a moistening rate a thousand times the reference
physics' extreme runs in the GCM until the state breaks, and the crash then
blames whatever variable broke first (``surface_pressure = NaN``). This
check predicts, with the Fortran runtime that the GCM will use, on the
emulator-interface data of a reference run (``fkb data`` output, a case
study's ``data/training.nc``), and reports per output variable the offline
error (RMSE), bias and R² against the reference physics, and the range of
the emulator's outputs beside the reference's. An output is **absurd** when
it is not finite, or when its largest magnitude exceeds
:data:`ABSURD_FACTOR` times the reference's largest magnitude of that
variable (with a floor for variables the reference keeps near zero);
``fkb check`` exits 1 naming it, and ``fkb couple`` refuses such an
emulator unless given ``--no-check``.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from emulators.data import open_dataset
from emulators.interface import Layout

# The Fortran runtime is imported inside the functions that use it, so that importing this module does
# not load it (start-up time).

__all__ = ["ABSURD_FACTOR", "MAX_SAMPLES", "VariableCheck", "PreflightResult", "preflight_check",
           "reference_data_of", "format_preflight"]

ABSURD_FACTOR = 10.0
"""An output beyond this multiple of the reference's largest magnitude is absurd."""
MAX_SAMPLES = 65536
"""Columns checked at most: the last ones of the data (the period just before the coupled runs)."""


@dataclass(frozen=True)
class VariableCheck:
    """One output variable: RMSE, bias (emulator minus reference), R², the
    reference's and the emulator's range, whether it is absurd and why."""

    name: str
    units: str
    rmse: float
    bias: float
    r2: float
    reference_min: float
    reference_max: float
    emulator_min: float
    emulator_max: float
    absurd: bool
    reason: str = ""


@dataclass(frozen=True)
class PreflightResult:
    emulator: str
    data: str
    samples: int
    variables: tuple[VariableCheck, ...]

    @property
    def passed(self) -> bool:
        return not any(v.absurd for v in self.variables)

    @property
    def absurd(self) -> list[VariableCheck]:
        return [v for v in self.variables if v.absurd]


def reference_data_of(folder: str | os.PathLike) -> Path | None:
    """The emulator-interface data of a reference or case-study folder
    (``data/training.nc`` beside or above its ``reference/``), or None."""
    folder = Path(folder)
    for candidate in (folder / "data" / "training.nc", folder.parent / "data" / "training.nc",
                      folder / "training.nc"):
        if candidate.is_file():
            return candidate
    return None


def preflight_check(model_files: Sequence[str | os.PathLike], data: str | os.PathLike,
                    max_samples: int = MAX_SAMPLES) -> PreflightResult:
    """The check of the networks `model_files` (one, or an ensemble: their
    mean, as the GCM uses it) on the interface data `data` (the last
    `max_samples` columns). ValueError for data that do not fit the
    networks' interface."""
    from emulators.fkb import load, load_ensemble

    files = [os.fspath(f) for f in model_files]
    with open_dataset(data, time_chunk=None) as ds:
        layout = Layout.for_dataset(ds)
        per_step = layout.stack_inputs(ds.isel(time=[0])).shape[0]          # columns per time step
        steps = max(1, min(int(ds.sizes["time"]), math.ceil(max_samples / max(per_step, 1))))
        tail = ds.isel(time=slice(int(ds.sizes["time"]) - steps, None))
        x = layout.stack_inputs(tail).astype(np.float32)
        y_reference = layout.stack_outputs(tail).astype(np.float64)
    if len(files) == 1:
        net = load(files[0])
        if net.n_inputs != x.shape[1] or net.n_outputs != y_reference.shape[1]:
            raise ValueError(f"{files[0]}: maps {net.n_inputs} -> {net.n_outputs} values, the data "
                             f"{x.shape[1]} -> {y_reference.shape[1]}")
        y = net.predict(x).astype(np.float64)
    else:
        with load_ensemble(files) as ensemble:
            y = ensemble.predict(x)[0].astype(np.float64)
    units = layout.output_units()
    checks = []
    for name, part in layout.output_slices().items():
        ref, emu = y_reference[:, part], y[:, part]
        error = emu - ref
        finite = np.isfinite(emu)
        scale = float(np.max(np.abs(ref))) if ref.size else 0.0
        floor = float(np.std(ref)) if ref.size else 0.0
        limit = ABSURD_FACTOR * max(scale, floor, np.finfo(np.float32).tiny)
        reason = ""
        if not finite.all():
            reason = f"{int((~finite).sum())} non-finite values"
        elif float(np.max(np.abs(emu))) > limit:
            reason = (f"reaches {float(np.max(np.abs(emu))):.3g} {units[part.start]}, "
                      f"{float(np.max(np.abs(emu))) / max(scale, 1e-300):.3g} times the reference's extreme "
                      f"{scale:.3g}")
        with np.errstate(invalid="ignore", over="ignore"):
            sst = float(np.sum((ref - ref.mean()) ** 2))
            sse = float(np.sum(error ** 2)) if finite.all() else math.inf
        checks.append(VariableCheck(
            name=name, units=units[part.start],
            rmse=math.sqrt(sse / error.size) if finite.all() else math.nan,
            bias=float(error.mean()) if finite.all() else math.nan,
            r2=1.0 - sse / sst if sst > 0 and finite.all() else math.nan,
            reference_min=float(ref.min()), reference_max=float(ref.max()),
            emulator_min=float(np.nanmin(emu)) if finite.any() else math.nan,
            emulator_max=float(np.nanmax(emu)) if finite.any() else math.nan,
            absurd=bool(reason), reason=reason))
    return PreflightResult(", ".join(files), os.fspath(data), int(x.shape[0]), tuple(checks))


def format_preflight(result: PreflightResult) -> list[str]:
    """The check as the lines ``fkb check`` prints."""
    lines = [f"pre-flight check of {result.emulator} on {result.samples} columns of {result.data}",
             f"  {'output':<10} {'units':<14} {'RMSE':>10} {'bias':>10} {'R2':>7}  "
             f"{'reference range':>23}  {'emulator range':>23}"]
    for v in result.variables:
        lines.append(f"  {v.name:<10} {v.units:<14} {v.rmse:>10.3g} {v.bias:>10.3g} {v.r2:>7.3f}  "
                     f"[{v.reference_min:>10.3g}, {v.reference_max:>10.3g}]  "
                     f"[{v.emulator_min:>10.3g}, {v.emulator_max:>10.3g}]" + ("  ABSURD" if v.absurd else ""))
    if result.passed:
        lines.append("passed: no output is absurd (non-finite, or beyond "
                     f"{ABSURD_FACTOR:g} times the reference's extreme)")
    else:
        lines += [f"failed: output {v.name} [{v.units}] {v.reason}" for v in result.absurd]
    return lines
