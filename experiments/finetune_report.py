"""What online fine-tuning buys: the report's section on a sweep whose
emulators were also coupled with fine-tuning (``[coupled] finetune_run``,
docs/gcm.md, docs/case-study.md).

Paired by emulator (experiments.paired): crashes without and with
fine-tuning (McNemar's exact test), the online error of the emulators that
survive both ways and the cost per simulated day; and what tuning did: the
fraction of the columns and steps the reference physics ran on as the
teacher, the online loss of the first and last output intervals, and the
runs whose tuning stopped on a non-finite loss.
"""
from __future__ import annotations

import numpy as np
import xarray as xr

from experiments.paired import paired_runs, percent_text
from experiments.report import format_median

__all__ = ["finetune_lines"]


def finetune_lines(results: xr.Dataset) -> list[str]:
    """The report's lines on the runs with online fine-tuning (empty when
    the sweep made none)."""
    pairs = paired_runs(results, "finetune_")
    if pairs is None:
        return []
    lines = ["## Online fine-tuning", ""]
    n = pairs.n
    if n < 2:
        return lines + [f"Fewer than 2 emulators have runs with and without fine-tuning ({n}): nothing to "
                        "compare.", ""]
    ok = pairs.ok
    teacher = results["finetune_teacher_fraction"].values[ok]
    first, last = (results[name].values[ok] for name in ("finetune_loss_first", "finetune_loss_last"))
    stopped = results["finetune_stopped"].values[ok] == 1
    rate, columns, every = (results[name].values[ok][0] for name in
                            ("finetune_learning_rate", "finetune_columns", "finetune_every_steps"))
    lines += [
        f"Every emulator was coupled twice, as it is and fine-tuned online (the reference physics teaches the "
        f"network on {columns:.0f} seeded columns every {every:.0f} model step(s), one Adam step at learning rate "
        f"{rate:g} per round and more if asked, docs/gcm.md): {n} pairs.", "",
        *pairs.table_lines(results, "as trained", "fine-tuned online"),
        f"{pairs.mcnemar_text()} Columns and steps on the reference physics as the teacher: mean "
        f"{percent_text(float(np.nanmean(teacher)))}. Online loss (the MSE of the normalised outputs on a "
        f"round's columns before its update): median {format_median(first)} in the first output interval, "
        f"{format_median(last)} in the last; lower in the last for {int(np.sum(last < first))} of "
        f"{int(np.sum(np.isfinite(first) & np.isfinite(last)))}. Tuning stopped on a non-finite loss in "
        f"{int(stopped.sum())} of {n} runs (the last good weights kept).", ""]
    return lines
