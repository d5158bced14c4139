"""Figures of the offline-versus-online case study (PNG, matplotlib Agg).

Each function takes the results Dataset of :mod:`coupler.results` (or toy-GCM
runs) and a path, draws one figure with labelled axes and units, and returns
the path.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import xarray as xr

from experiments.designed import cell_table, design_frame
from experiments.survival import kaplan_meier

# matplotlib is imported inside the functions that use it, so that importing this module does not load
# it (start-up time).

__all__ = ["plot_offline_vs_online", "plot_days_survived", "plot_survival_curve", "plot_optimizer_boxes",
           "plot_design_grid", "plot_zonal_bias", "plot_latitude_pressure", "optimizer_colors"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def optimizer_colors(results: xr.Dataset) -> dict[str, str]:
    """A fixed colour per optimizer present in the results."""
    names = sorted({str(o) for o in results["optimizer"].values if str(o)})
    palette = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink"]
    return {name: palette[i % len(palette)] for i, name in enumerate(names)}


def _finished(results: xr.Dataset) -> xr.Dataset:
    ok = results["status"].values == "ok"
    return results.isel(emulator=np.flatnonzero(ok))


def _log_axes(ax, x: bool = False, y: bool = False) -> None:
    """Log scales on the axes that have positive data (an empty sweep stays linear)."""
    if x:
        ax.set_xscale("log")
    if y:
        ax.set_yscale("log")


def _save(fig, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)
    return path


def plot_latitude_pressure(lat: np.ndarray, p: np.ndarray, values: np.ndarray, levels: np.ndarray,
                           cmap: str, label: str, title: str, path: str | os.PathLike,
                           line_width: float = 0.5, dpi: int = 110) -> Path:
    """A zonal-mean latitude-pressure section: filled contours at `levels`
    with labelled contour lines, the colour bar labelled `label` (with
    units), pressure [hPa] decreasing upwards. `lat` [degrees north] has the
    shape of `p` and `values` or broadcasts to it."""
    plt = _pyplot()
    lat2d = np.broadcast_to(lat, p.shape)
    fig, ax = plt.subplots(figsize=(7.0, 4.5), constrained_layout=True)
    filled = ax.contourf(lat2d, p, values, levels=levels, cmap=cmap, extend="both")
    lines = ax.contour(lat2d, p, values, levels=levels, colors="k", linewidths=line_width)
    ax.clabel(lines, fmt="%g", fontsize=7)
    fig.colorbar(filled, ax=ax, label=label)
    ax.set_ylim(float(np.max(p)), 0.0)
    ax.set_xlim(-90.0, 90.0)
    ax.set_xticks(np.arange(-90, 91, 30))
    ax.set_xlabel("latitude [degrees north]")
    ax.set_ylabel("pressure [hPa]")
    ax.set_title(title, fontsize=10)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def plot_offline_vs_online(results: xr.Dataset, path: str | os.PathLike,
                           online: str = "online_error_normalized") -> Path:
    """Online error against offline validation MSE (log-log), coloured by
    optimizer; crashed runs as crosses (at their error over the windows they
    survived, or on the top edge if they survived none); the noise floor as
    a dashed line (the twins' mean) in a band (their range)."""
    plt = _pyplot()
    r = _finished(results)
    colors = optimizer_colors(results)
    fig, ax = plt.subplots(figsize=(6.0, 4.8))
    x = r["offline_mse"].values
    y = r[online].values
    crashed = r["crashed"].values == 1
    finite_y = y[np.isfinite(y) & (y > 0)]
    top = finite_y.max() * 3.0 if finite_y.size else 1.0
    for name, color in colors.items():
        pick = r["optimizer"].values == name
        alive = pick & ~crashed & np.isfinite(y) & (x > 0)
        ax.scatter(x[alive], y[alive], c=color, marker="o", label=name, edgecolors="k", linewidths=0.4)
        dead = pick & crashed & (x > 0)
        ax.scatter(x[dead], np.where(np.isfinite(y[dead]) & (y[dead] > 0), y[dead], top), c=color, marker="x", s=50)
    if crashed.any():
        ax.scatter([], [], c="0.3", marker="x", label="crashed")
    name = online.removeprefix("online_error_")
    floor = results.attrs.get(f"noise_floor_{name}")
    if floor is not None and np.isfinite(floor) and floor > 0:
        ax.axhline(floor, color="0.4", ls="--", lw=1, label="noise floor (twins' mean)")
        low, high = (results.attrs.get(f"noise_floor_{name}_{end}") for end in ("min", "max"))
        if low is not None and high is not None and np.isfinite([low, high]).all() and high > low > 0:
            ax.axhspan(low, high, color="0.6", alpha=0.25, lw=0, label="twins' range")
    _log_axes(ax, x=(x > 0).any(), y=finite_y.size > 0)
    ax.set_xlabel("offline validation MSE (normalized outputs, 1)")
    ax.set_ylabel(f"{online.replace('_', ' ')} ({results[online].attrs.get('units', '1')})")
    ax.set_title("offline versus online error")
    ax.legend(fontsize=8, loc="best")
    return _save(fig, path)


def plot_days_survived(results: xr.Dataset, path: str | os.PathLike) -> Path:
    """Days survived against offline validation MSE (log x), coloured by optimizer."""
    plt = _pyplot()
    r = _finished(results)
    colors = optimizer_colors(results)
    fig, ax = plt.subplots(figsize=(6.0, 4.5))
    for name, color in colors.items():
        pick = (r["optimizer"].values == name) & (r["offline_mse"].values > 0)
        ax.scatter(r["offline_mse"].values[pick], r["days_survived"].values[pick], c=color, label=name,
                   edgecolors="k", linewidths=0.4)
    run_days = np.nanmax(r["run_days"].values) if r.sizes["emulator"] and np.isfinite(r["run_days"].values).any() else None
    if run_days:
        ax.axhline(run_days, color="0.5", ls=":", lw=1, label="run length")
    _log_axes(ax, x=(r["offline_mse"].values > 0).any())
    ax.set_xlabel("offline validation MSE (normalized outputs, 1)")
    ax.set_ylabel("days survived (days)")
    ax.set_title("stability versus offline error")
    ax.legend(fontsize=8, loc="best")
    return _save(fig, path)


def plot_survival_curve(results: xr.Dataset, path: str | os.PathLike) -> Path:
    """Kaplan-Meier survival curves of the coupled runs (runs alive at the end
    censored there) with 95 % confidence bands, all and by optimizer."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.0, 4.5))
    colors = {"all": "k", **optimizer_colors(results)}
    for name, fit in kaplan_meier(results).items():
        color = colors.get(name, "0.5")
        times = np.r_[fit.times, max(fit.end, fit.times[-1])]          # carry the last value to the end
        curve, lower, upper = (np.r_[values, values[-1]] for values in (fit.survival, fit.lower, fit.upper))
        ax.step(times, curve, where="post", color=color, lw=2 if name == "all" else 1.2,
                label=f"{name} ({fit.events}/{fit.n} crashed)")
        ax.fill_between(times, lower, upper, step="post", color=color, alpha=0.12, lw=0)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("model time (days)")
    ax.set_ylabel("fraction of runs alive (1)")
    ax.set_title("survival of the coupled runs (Kaplan-Meier, 95 % bands)")
    ax.legend(fontsize=7, loc="best")
    return _save(fig, path)


def plot_optimizer_boxes(results: xr.Dataset, path: str | os.PathLike,
                         online: str = "online_error_normalized") -> Path:
    """Box plots by optimizer: days survived (all runs) and online error
    (runs that survived the whole run)."""
    plt = _pyplot()
    r = _finished(results)
    names = list(optimizer_colors(results))
    fig, axes = plt.subplots(1, 2, figsize=(9.0, 4.2))
    survivors = r["crashed"].values == 0
    panels = ((axes[0], "days_survived", np.ones(r.sizes["emulator"], bool), "days survived (days)", False),
              (axes[1], online, survivors, f"{online.replace('_', ' ')} ({r[online].attrs.get('units', '1')})", True))
    for ax, var, mask, label, log in panels:
        data = []
        for name in names:
            v = r[var].values[(r["optimizer"].values == name) & mask]
            data.append(v[np.isfinite(v)])
        ax.boxplot([d if d.size else [np.nan] for d in data], tick_labels=names)
        for i, d in enumerate(data):
            ax.scatter(np.full(d.size, i + 1.0), d, s=10, c="k", alpha=0.5, zorder=3)
        if log and any(d.size and (d > 0).all() for d in data):
            ax.set_yscale("log")
        ax.tick_params(axis="x", labelrotation=25)
        ax.set_xlabel("optimizer")
        ax.set_ylabel(label)
    axes[0].set_title("stability by optimizer")
    axes[1].set_title("online error of survivors by optimizer")
    return _save(fig, path)


def plot_design_grid(results: xr.Dataset, path: str | os.PathLike) -> Path:
    """A designed sweep's cells (experiments/designed.py) as two grids, the
    first factor's levels in rows and the others' (the strata) in columns:
    the fraction of coupled runs that survived the whole run, and the median
    offline validation MSE (log colour scale), each cell annotated with its
    numbers (survived/coupled; failed tasks marked)."""
    from matplotlib.colors import LogNorm


    frame, factors = design_frame(results)
    cells = cell_table(frame, factors)
    cells["stratum"] = cells[factors[1:]].agg(" ".join, axis=1) if len(factors) > 1 else "all"
    rows = list(dict.fromkeys(cells[factors[0]]))
    columns = list(dict.fromkeys(cells["stratum"]))
    survived = np.full((len(rows), len(columns)), np.nan)
    mse = np.full_like(survived, np.nan)
    notes = np.full(survived.shape, "", dtype=object)
    for _, cell in cells.iterrows():
        i, j = rows.index(cell[factors[0]]), columns.index(cell["stratum"])
        if cell["finished"]:
            survived[i, j] = cell["survived"] / cell["finished"]
        mse[i, j] = cell["median_offline_mse"]
        notes[i, j] = f"{cell['survived']}/{cell['finished']}" + (f"\n{cell['failed']} failed" if cell["failed"] else "")
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(4.0 + 1.6 * len(columns), 0.6 * len(rows) + 2.2))
    positive = mse[np.isfinite(mse) & (mse > 0)]
    panels = ((axes[0], survived, "viridis", None, "fraction of coupled runs surviving (1)", notes),
              (axes[1], mse, "magma_r", LogNorm(positive.min(), positive.max()) if positive.size and
               positive.min() < positive.max() else None, "median offline validation MSE (1)",
               np.vectorize(lambda v: f"{v:.3g}" if np.isfinite(v) else "")(mse)))
    for ax, values, cmap, norm, label, text in panels:
        image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, norm=norm, aspect="auto",
                          **({} if norm is not None else {"vmin": 0.0, "vmax": 1.0} if values is survived else {}))
        fig.colorbar(image, ax=ax, label=label, shrink=0.85)
        shade = image.norm(np.ma.masked_invalid(values))           # 0-1 along the colour map
        for (i, j), note in np.ndenumerate(text):
            dark = shade[i, j] < 0.55 if values is survived else shade[i, j] > 0.55   # viridis dark low, magma_r high
            ax.text(j, i, note, ha="center", va="center", fontsize=7, color="w" if dark else "k")
        ax.set_xticks(range(len(columns)), columns)
        ax.set_yticks(range(len(rows)), rows if ax is axes[0] else [])
        ax.set_xlabel(" x ".join(factors[1:]) or "")
    axes[0].set_ylabel(factors[0])
    axes[0].set_title("survival by cell (survived/coupled)")
    axes[1].set_title("offline error by cell")
    return _save(fig, path)


def _zonal_time_mean(run: xr.Dataset, name: str, times: np.ndarray) -> xr.DataArray:
    return run[f"{name}_mean"].sel(time=times).astype(np.float64).mean(("time", "lon")).load()


def plot_zonal_bias(run: xr.Dataset, reference: xr.Dataset, path: str | os.PathLike, title: str = "") -> Path:
    """Latitude-pressure sections of the zonal- and time-mean T bias [K] and
    q bias [g kg-1] of `run` against `reference`, over the records both have
    (pressure = sigma times the reference's zonal-mean surface pressure)."""
    plt = _pyplot()
    times = np.intersect1d(run["time"].values, reference["time"].values)
    if times.size == 0:
        raise ValueError("the run and the reference have no output record in common")
    ps = reference["ps_mean"].sel(time=times).mean(("time", "lon")).astype(np.float64).load()
    lat = reference["lat"].values
    pressure = reference["lev"].values[:, None] * ps.values[None, :] / 100.0  # hPa, (lev, lat)
    lat2d = np.broadcast_to(lat[None, :], pressure.shape)
    fields = [("t", 1.0, "temperature bias (K)")]
    if "q_mean" in run and "q_mean" in reference:
        fields.append(("q", 1000.0, "specific humidity bias (g kg-1)"))
    fig, axes = plt.subplots(1, len(fields), figsize=(5.2 * len(fields), 4.2), squeeze=False)
    for ax, (name, scale, label) in zip(axes[0], fields):
        bias = (_zonal_time_mean(run, name, times) - _zonal_time_mean(reference, name, times)).values * scale
        limit = float(np.nanmax(np.abs(bias))) or 1.0
        mesh = ax.contourf(lat2d, pressure, bias, levels=np.linspace(-limit, limit, 17), cmap="RdBu_r", extend="both")
        fig.colorbar(mesh, ax=ax, label=label)
        ax.invert_yaxis()
        ax.set_xlabel("latitude (degrees north)")
        ax.set_ylabel("pressure (hPa)")
        ax.set_title(label.split(" (")[0])
    fig.suptitle(title or f"zonal-mean bias, days {times[0]:g}-{times[-1]:g}")
    return _save(fig, path)


def plot_crash_attribution(results: xr.Dataset, path: str | os.PathLike) -> Path:
    """Histograms of the crash records: the largest distance on the crash
    columns over the last day as a multiple of the guard's threshold (line
    at 1: flagged beyond it), and the emulator's error on the crash columns'
    inputs as a multiple of its offline validation error."""
    plt = _pyplot()
    has = (results["status"].values == "ok") & (results["crash_ood"].values >= 0)
    ratio = results["crash_distance_ratio"].values[has]
    error = results["crash_mse_crash_columns"].values[has] / results["offline_mse"].values[has]
    fig, axes = plt.subplots(1, 2, figsize=(9.0, 3.8))
    for ax, values, label, title in (
            (axes[0], ratio, "largest distance / guard threshold (1)", "how far out of the training data"),
            (axes[1], error, "MSE on crash columns / offline MSE (1)", "how wrong before the crash")):
        values = values[np.isfinite(values) & (values > 0)]
        if values.size:
            bins = np.logspace(np.log10(values.min()) - 0.05, np.log10(values.max()) + 0.05, 16)
            ax.hist(values, bins=bins, color="0.4", edgecolor="k")
        ax.axvline(1.0, color="tab:red", ls="--", lw=1)
        ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("crashed runs (1)")
        ax.set_title(title, fontsize=10)
    fig.suptitle(f"crash attribution: {int(has.sum())} crashed runs with a record", fontsize=11)
    return _save(fig, path)


_COVARIATE_LABELS = {"log10_offline_mse": "offline MSE (per decade)", "log10_learning_rate": "learning rate (per decade)",
                     "depth": "depth (per layer)", "width": "width (per unit)", "dropout": "dropout (per unit rate)",
                     "batch_normalization": "batch normalization (on)",
                     "water_conservation": "column-water conservation layer (on)"}


def plot_hazard_ratios(table, info: dict, path: str | os.PathLike) -> Path:
    """Forest plot of a Cox model's hazard ratios (experiments/survival.py
    ``cox_hazards``) with their 95 % intervals, log scale, a line at 1."""
    plt = _pyplot()
    names = list(table.index)
    fig, ax = plt.subplots(figsize=(6.4, 0.45 * len(names) + 1.4))
    y = np.arange(len(names))[::-1]
    ratio, low, high = (table[c].to_numpy(float) for c in ("hazard_ratio", "lower_95", "upper_95"))
    ax.errorbar(ratio, y, xerr=[ratio - low, high - ratio], fmt="o", color="k", ecolor="0.3", capsize=3)
    ax.axvline(1.0, color="tab:red", ls="--", lw=1)
    reference = info.get("reference_optimizer") or ""
    labels = [_COVARIATE_LABELS.get(n, n.replace("optimizer_", "optimizer ") + (f" vs {reference}" if
              n.startswith("optimizer_") and reference else "")) for n in names]
    ax.set_yticks(y, labels, fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("hazard ratio of a crash (95 % interval)")
    ax.set_title(f"Cox model of the crash hazard: {info.get('n', 0)} runs, {info.get('events', 0)} crashes",
                 fontsize=10)
    return _save(fig, path)
