"""Records of an emulator's coupled run: :class:`EmulatorResult`, the one
typed record that the sweep writes (``online`` of ``emulator_XXXX.json``),
``fkb couple`` reports and the results dataset reads back; and
:func:`json_safe` for writing any record as JSON."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from coupler.budgets import BUDGET_COLUMNS

__all__ = ["GUARD_KEYS", "EmulatorResult", "json_safe"]

GUARD_KEYS = ("mean_flagged_fraction", "mean_fallback_fraction")
"""The guard's fractions an emulator's record keeps (:func:`coupler.scoring.guard_summary`)."""


@dataclass
class EmulatorResult:
    """One coupled run of an emulator, scored against the reference.

    ``days_survived`` and ``run_days`` [days], ``crashed``, ``run_status``
    and ``crash_reason`` (:func:`coupler.scoring.stability_record`);
    ``online_error_t`` [K], ``online_error_q`` [g kg-1],
    ``online_error_normalized`` [1] over ``n_windows`` windows
    (:func:`coupler.scoring.online_error`); ``seconds_per_day``: wall time
    per simulated day [s day-1]; ``budgets``: water [mm day-1] and energy
    [W m-2] budget residuals (:func:`coupler.budgets.budget_record`);
    ``guard`` and ``finetune``: :func:`coupler.scoring.guard_summary` and
    :func:`~coupler.scoring.finetune_summary` (None without them);
    ``crash``: the summary of the run's crash record (None without one).
    A value an older record lacks is None."""

    days_survived: float | None
    run_days: float | None
    crashed: bool | None
    run_status: str | None
    crash_reason: str | None
    online_error_t: float | None
    online_error_q: float | None
    online_error_normalized: float | None
    n_windows: int | None
    seconds_per_day: float | None
    budgets: dict[str, float]
    guard: dict[str, Any] | None = None
    finetune: dict[str, Any] | None = None
    crash: dict[str, Any] | None = None

    @classmethod
    def scored(cls, stability: Any, error: Any, wall_seconds: float, *, budgets: Mapping[str, float],
               guard: Mapping[str, Any] | None = None, finetune: Mapping[str, Any] | None = None,
               crash: Mapping[str, Any] | None = None) -> EmulatorResult:
        """The result of a run from its stability record and online error (two
        Datasets, or one holding both: :func:`coupler.scoring.score_run`) and
        the wall time it took [s]."""
        days = float(stability["days_survived"])
        return cls(
            days_survived=days, run_days=float(stability["run_days"]), crashed=bool(stability["crashed"]),
            run_status=stability.attrs["run_status"], crash_reason=stability.attrs["crash_reason"],
            online_error_t=float(error["online_error_t"]), online_error_q=float(error["online_error_q"]),
            online_error_normalized=float(error["online_error_normalized"]), n_windows=int(error["n_windows"]),
            seconds_per_day=wall_seconds / max(days, 1e-9), budgets=dict(budgets),
            guard=dict(guard) if guard else None, finetune=dict(finetune) if finetune else None,
            crash=dict(crash) if crash else None)

    def to_record(self) -> dict[str, Any]:
        """The record as the sweep writes it (flat: ``mean_*_fraction`` of the
        guard, ``finetune_*``, the budget residuals, and ``crash``)."""
        guard, finetune = self.guard or {}, self.finetune or {}
        return {
            "days_survived": self.days_survived, "run_days": self.run_days, "crashed": self.crashed,
            "run_status": self.run_status, "crash_reason": self.crash_reason,
            "online_error_t": self.online_error_t, "online_error_q": self.online_error_q,
            "online_error_normalized": self.online_error_normalized, "n_windows": self.n_windows,
            "seconds_per_day": self.seconds_per_day,
            **{key: guard[key] for key in GUARD_KEYS if key in guard},
            **{f"finetune_{key}": value for key, value in finetune.items()},
            **self.budgets,
            **({"crash": self.crash} if self.crash else {}),
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any] | None) -> EmulatorResult:
        """The result of a written record (:meth:`to_record`; None or {}: a
        result of nothing, every value None)."""
        record = record or {}
        guard = {key: record[key] for key in GUARD_KEYS if key in record}
        finetune = {key[len("finetune_"):]: value for key, value in record.items() if key.startswith("finetune_")}
        return cls(
            days_survived=record.get("days_survived"), run_days=record.get("run_days"),
            crashed=record.get("crashed"), run_status=record.get("run_status"),
            crash_reason=record.get("crash_reason"), online_error_t=record.get("online_error_t"),
            online_error_q=record.get("online_error_q"),
            online_error_normalized=record.get("online_error_normalized"), n_windows=record.get("n_windows"),
            seconds_per_day=record.get("seconds_per_day"),
            budgets={name: record[name] for name in BUDGET_COLUMNS if name in record},
            guard=guard or None, finetune=finetune or None, crash=record.get("crash") or None)


def json_safe(value: Any) -> Any:
    """Non-finite floats as null (JSON has no NaN), numpy scalars as Python."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
