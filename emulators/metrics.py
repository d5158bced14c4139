"""Offline metrics of an emulator: MSE and R² per output variable and level.

:func:`evaluate_emulator` streams each split from disk (never loading it
whole), predicts with the Keras model, and returns an xarray Dataset:

- ``<V>_mse`` — mean squared error in physical units (squared units of V),
  ``<V>_mse_normalized`` — the same divided by the squared output scale (the
  quantity the training loss averages), ``<V>_r2`` — coefficient of
  determination ``1 - SSE / SST``; on ``(split, lev)`` for level variables
  (TPHYSTND, PHQ) and on ``(split)`` for the others;
- ``r2`` and ``mse_normalized`` on ``(split, variable)``: each variable pooled
  over its levels (``1 - sum SSE / sum SST``);
- ``mse_normalized_total`` on ``(split)``: all outputs together.

R² is NaN where the truth is constant (SST = 0). :func:`plot_r2_by_level`
draws R² against level; :func:`predict_physical` is Keras's prediction in
physical units, the reference the Fortran runtime is checked against.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

import numpy as np
import xarray as xr

from emulators.data import DEFAULT_TIME_BLOCK, NormalizationStats, RunningMoments, iter_blocks
from emulators.interface import COORDINATE_ATTRS, LEVEL_DIM, VARIABLES, Layout
from emulators.netcdf_files import write_dataset

# matplotlib is imported inside the functions that use it, so that importing this module does not load
# it (start-up time).

__all__ = ["predict_physical", "evaluate_emulator", "save_metrics", "plot_r2_by_level", "squared_units"]


def predict_physical(model, normalization: NormalizationStats, x: np.ndarray, batch_size: int = 8192) -> np.ndarray:
    """Keras predictions in physical units for physical inputs ``x`` of shape
    ``(n, n_inputs)`` (interface units); returns ``(n, n_outputs)`` float64."""
    x_norm = normalization.normalize_inputs(x)
    out = []
    for start in range(0, len(x_norm), batch_size):
        out.append(np.asarray(model(x_norm[start:start + batch_size], training=False)))
    y = np.concatenate(out) if out else np.zeros((0, len(normalization.output_names)), np.float32)
    return normalization.denormalize_outputs(y)


def squared_units(units: str) -> str:
    """CF units squared: ``"kg kg-1 s-1"`` -> ``"kg2 kg-2 s-2"``."""
    if units.strip() == "1":
        return "1"
    out = []
    for token in units.split():
        base = token.rstrip("-0123456789")
        power = token[len(base):] or "1"
        out.append(f"{base}{2 * int(power)}")
    return " ".join(out)


class _ErrorAccumulator:
    def __init__(self, width: int):
        self.sse = np.zeros(width)
        self.truth = RunningMoments(width)

    def update(self, y_true: np.ndarray, y_pred: np.ndarray) -> None:
        self.sse += ((y_pred - y_true) ** 2).sum(axis=0)
        self.truth.update(y_true)


def evaluate_emulator(model, splits: Mapping[str, xr.Dataset], layout: Layout,
                      normalization: NormalizationStats, time_block: int = DEFAULT_TIME_BLOCK,
                      batch_size: int = 8192) -> xr.Dataset:
    """Offline metrics of ``model`` on each dataset of ``splits`` (e.g.
    ``{"validation": ..., "test": ...}``), streamed ``time_block`` steps at a time."""
    normalization.check_layout(layout)
    names = [name for name, ds in splits.items() if ds.sizes["time"] > 0]
    if not names:
        raise ValueError("no split with data to evaluate")
    scale2 = normalization.output_scale ** 2
    results = {}
    for name in names:
        acc = _ErrorAccumulator(layout.n_outputs)
        for x, y in iter_blocks(splits[name], layout, time_block):
            acc.update(y, predict_physical(model, normalization, x, batch_size))
        results[name] = acc

    n = np.array([results[s].truth.count for s in names])
    sse = np.stack([results[s].sse for s in names])              # (split, element)
    sst = np.stack([results[s].truth.m2 for s in names])
    mse = sse / n[:, None]
    mse_norm = mse / scale2
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = np.where(sst > 0, 1.0 - sse / np.where(sst > 0, sst, 1.0), np.nan)

    like = next(iter(splits.values()))
    coords = {"split": ("split", np.array(names, dtype=object), {"long_name": "data split evaluated"}),
              "variable": ("variable", np.array(layout.outputs, dtype=object), {"long_name": "output variable"})}
    if LEVEL_DIM in like.coords:
        level_attrs = {k: v for k, v in like[LEVEL_DIM].attrs.items() if k != "bounds"}   # the bounds stay behind
        coords[LEVEL_DIM] = (LEVEL_DIM, like[LEVEL_DIM].values, level_attrs)
    else:
        coords[LEVEL_DIM] = (LEVEL_DIM, np.arange(1, layout.nlev + 1), dict(COORDINATE_ATTRS[LEVEL_DIM]))
    data_vars = {}
    pooled_r2, pooled_mse = [], []
    for var, slc in layout.output_slices().items():
        units = VARIABLES[var].units
        per_level = VARIABLES[var].per_level
        dims = ("split", LEVEL_DIM) if per_level else ("split",)
        pick = (lambda a: a[:, slc]) if per_level else (lambda a: a[:, slc.start])  # noqa: E731
        data_vars[f"{var}_mse"] = (dims, pick(mse), {"units": squared_units(units),
                                                      "long_name": f"mean squared error of {var}"})
        data_vars[f"{var}_mse_normalized"] = (dims, pick(mse_norm), {
            "units": "1", "long_name": f"mean squared error of {var} over its squared normalization scale"})
        data_vars[f"{var}_r2"] = (dims, pick(r2), {"units": "1", "long_name": f"coefficient of determination of {var}"})
        with np.errstate(divide="ignore", invalid="ignore"):
            total_sst = sst[:, slc].sum(axis=1)
            pooled_r2.append(np.where(total_sst > 0, 1.0 - sse[:, slc].sum(axis=1) / np.where(total_sst > 0, total_sst, 1.0), np.nan))
        pooled_mse.append(mse_norm[:, slc].mean(axis=1))
    data_vars["r2"] = (("split", "variable"), np.stack(pooled_r2, axis=1),
                       {"units": "1", "long_name": "coefficient of determination, pooled over levels"})
    data_vars["mse_normalized"] = (("split", "variable"), np.stack(pooled_mse, axis=1),
                                   {"units": "1", "long_name": "normalized mean squared error, mean over levels"})
    data_vars["mse_normalized_total"] = (("split",), mse_norm.mean(axis=1),
                                         {"units": "1", "long_name": "normalized mean squared error of all outputs"})
    data_vars["n_samples"] = (("split",), n, {"long_name": "number of samples (columns) evaluated"})
    return xr.Dataset(data_vars, coords=coords, attrs={
        "title": "offline metrics of an emulator",
        "output_scaling": normalization.output_scaling,
        "r2_definition": "1 - sum((prediction - truth)^2) / sum((truth - mean(truth))^2); NaN where the truth is constant",
    })


def save_metrics(metrics: xr.Dataset, path: str | os.PathLike) -> Path:
    """Write metrics to netCDF (string coordinates as variable-length strings)."""
    path = Path(path)
    write_dataset(metrics, path)
    return path


def plot_r2_by_level(metrics: xr.Dataset, path: str | os.PathLike, title: str | None = None) -> Path:
    """PNG of R² against level for each level variable (one line per split),
    and a panel of R² of the other outputs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variables = [str(v) for v in metrics["variable"].values]
    level_vars = [v for v in variables if LEVEL_DIM in metrics[f"{v}_r2"].dims]
    scalar_vars = [v for v in variables if v not in level_vars]
    n_panels = len(level_vars) + (1 if scalar_vars else 0)
    fig, axes = plt.subplots(1, n_panels, figsize=(4.0 * n_panels, 4.5), squeeze=False)
    axes = axes[0]
    levels = metrics[LEVEL_DIM].values
    splits = [str(s) for s in metrics["split"].values]
    for ax, var in zip(axes, level_vars):
        for split in splits:  # R² below -1 is drawn at -1
            ax.plot(np.clip(metrics[f"{var}_r2"].sel(split=split).values, -1.0, 1.0), levels, marker="o", label=split)
        finite = metrics[f"{var}_r2"].values[np.isfinite(metrics[f"{var}_r2"].values)]
        ax.set_xlim(max(-1.0, float(finite.min())) - 0.05 if finite.size else -1.05, 1.02)
        ax.invert_yaxis()  # model top at the top
        ax.axvline(1.0, color="0.8", lw=0.8)
        ax.set_xlabel("R²")
        ax.set_ylabel(metrics[LEVEL_DIM].attrs.get("long_name", LEVEL_DIM))
        ax.set_title(var)
        ax.legend(loc="best")
    if scalar_vars:
        ax = axes[-1]
        width = 0.8 / len(splits)
        positions = np.arange(len(scalar_vars))
        for i, split in enumerate(splits):
            values = [float(metrics[f"{v}_r2"].sel(split=split)) for v in scalar_vars]
            ax.bar(positions + i * width, values, width, label=split)
        ax.set_xticks(positions + 0.4 - width / 2, scalar_vars)
        finite = metrics["r2"].values[np.isfinite(metrics["r2"].values)]
        ax.set_ylim(min(0.0, max(-1.0, float(finite.min()))) if finite.size else 0.0, 1.0)
        ax.set_ylabel("R²")
        ax.set_title("other outputs")
        ax.legend(loc="best")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
