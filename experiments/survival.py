"""Survival analysis of the coupled runs, with lifelines.

A coupled run's life is ``days_survived``; a run that crashed is an event, a
run still alive at the end of its planned length is right-censored there
(it would have lived longer; it did not "survive the maximum"). Over the
finished emulators of a sweep:

- :func:`kaplan_meier`: Kaplan-Meier survival curves with 95 % confidence
  bands (Greenwood), all runs and by optimizer;
- :func:`logrank_by_optimizer`: the log-rank test of equal survival across
  the optimizers;
- :func:`cox_hazards`: a Cox proportional-hazards model of the crash hazard on
  log10 offline validation error, the optimizer (against the most common
  one), log10 learning rate, depth, width, dropout and batch normalization:
  hazard ratios with 95 % intervals and p-values, and the Schoenfeld-residual
  test of proportional hazards per covariate. With a few dozen runs and about
  ten coefficients the fit uses a small ridge penalty (``PENALIZER``) so that
  it exists when a group never crashes; the intervals are the penalized
  model's.

:func:`survival_dataset` gathers the test and the hazard ratios as a Dataset
on the dimension ``covariate``, which the case study writes into results.nc.
"""
from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

__all__ = ["PENALIZER", "survival_frame", "kaplan_meier", "logrank_by_optimizer", "cox_hazards",
           "survival_dataset", "with_survival", "survival_lines"]

PENALIZER = 0.1
"""Ridge penalty of the Cox model (lifelines' ``penalizer``)."""

_NUMERIC = ("log10_offline_mse", "log10_learning_rate", "depth", "width", "dropout", "batch_normalization")


def survival_frame(results: xr.Dataset) -> pd.DataFrame:
    """One row per finished emulator with a survival time: ``duration``
    [days], ``event`` (1 crashed, 0 censored at the run length), the
    optimizer and the covariates of the Cox model."""
    ok = results["status"].values == "ok"
    frame = pd.DataFrame({
        "emulator": results["emulator"].values,
        "duration": results["days_survived"].values.astype(float),
        "event": (results["crashed"].values == 1).astype(int),
        "optimizer": results["optimizer"].values.astype(str),
        "log10_offline_mse": np.log10(np.where(results["offline_mse"].values > 0, results["offline_mse"].values,
                                               np.nan)),
        "log10_learning_rate": np.log10(results["learning_rate"].values.astype(float)),
        "depth": results["depth"].values.astype(float),
        "width": results["width"].values.astype(float),
        "dropout": results["dropout"].values.astype(float),
        "batch_normalization": results["batch_normalization"].values.astype(float),
    })[ok]
    frame = frame[np.isfinite(frame["duration"])]
    # a crash at the very first step is a life of (almost) zero: keep it positive for the estimators
    frame["duration"] = frame["duration"].clip(lower=1e-3)
    return frame.reset_index(drop=True)


def kaplan_meier(results: xr.Dataset) -> dict[str, Any]:
    """Kaplan-Meier fits (lifelines ``KaplanMeierFitter``, 95 % bands) of
    all finished runs ("all") and of each optimizer's."""
    from lifelines import KaplanMeierFitter

    frame = survival_frame(results)
    fits = {}
    for name, part in [("all", frame)] + sorted(frame.groupby("optimizer")):
        if len(part):
            fits[name] = KaplanMeierFitter(label=name).fit(part["duration"], part["event"])
    return fits


def logrank_by_optimizer(results: xr.Dataset) -> dict[str, float]:
    """The log-rank test (lifelines ``multivariate_logrank_test``) of equal
    survival across the optimizers: statistic, degrees of freedom, p-value,
    runs, crashes; NaN with fewer than two optimizers or no crash."""
    from lifelines.statistics import multivariate_logrank_test

    frame = survival_frame(results)
    groups = frame["optimizer"].nunique()
    out = {"statistic": math.nan, "df": max(groups - 1, 0), "p_value": math.nan, "n": len(frame),
           "events": int(frame["event"].sum())}
    if groups >= 2 and out["events"] > 0:
        test = multivariate_logrank_test(frame["duration"], frame["optimizer"], frame["event"])
        out.update(statistic=float(test.test_statistic), p_value=float(test.p_value))
    return out


def _design(frame: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """The Cox model's columns: numeric covariates with any spread, optimizer
    indicators against the most common optimizer (the reference level)."""
    reference = frame["optimizer"].value_counts().sort_index().idxmax()
    columns = {name: frame[name] for name in _NUMERIC if frame[name].notna().all() and frame[name].std() > 0}
    for name in sorted(set(frame["optimizer"]) - {reference}):
        columns[f"optimizer_{name}"] = (frame["optimizer"] == name).astype(float)
    design = pd.DataFrame(columns)
    design["duration"], design["event"] = frame["duration"], frame["event"]
    return design, reference


def cox_hazards(results: xr.Dataset, penalizer: float = PENALIZER) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The Cox model of the crash hazard: a table indexed by covariate with
    ``hazard_ratio``, ``lower_95``, ``upper_95``, ``p_value`` and
    ``ph_test_p`` (Schoenfeld residuals, lifelines
    ``proportional_hazard_test``; small p: the hazard ratio changes over
    time), and facts about the fit (runs, crashes, reference optimizer,
    penalizer, concordance). An empty table when there is no crash or too few
    runs."""
    from lifelines import CoxPHFitter
    from lifelines.statistics import proportional_hazard_test

    frame = survival_frame(results).dropna()
    info: dict[str, Any] = {"n": len(frame), "events": int(frame["event"].sum()), "penalizer": penalizer,
                            "reference_optimizer": "", "concordance": math.nan}
    empty = pd.DataFrame(columns=["hazard_ratio", "lower_95", "upper_95", "p_value", "ph_test_p"])
    if info["events"] == 0 or len(frame) < 5:
        return empty, info
    design, info["reference_optimizer"] = _design(frame)
    fitter = CoxPHFitter(penalizer=penalizer)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitter.fit(design, duration_col="duration", event_col="event")
        ph = proportional_hazard_test(fitter, design, time_transform="rank").summary["p"]
    summary = fitter.summary
    table = pd.DataFrame({
        "hazard_ratio": summary["exp(coef)"], "lower_95": summary["exp(coef) lower 95%"],
        "upper_95": summary["exp(coef) upper 95%"], "p_value": summary["p"],
        "ph_test_p": ph.reindex(summary.index)})
    table.index.name = "covariate"
    info["concordance"] = float(fitter.concordance_index_)
    return table, info


def survival_dataset(results: xr.Dataset) -> xr.Dataset:
    """The log-rank test (attributes) and the Cox hazard ratios (variables on
    ``covariate``) as a Dataset to merge into the results."""
    table, info = cox_hazards(results)
    test = logrank_by_optimizer(results)
    names = np.array(table.index, dtype=object)
    ds = xr.Dataset(
        {"cox_hazard_ratio": ("covariate", table["hazard_ratio"].to_numpy(float),
                              {"long_name": "Cox hazard ratio of crashing per unit of the covariate", "units": "1"}),
         "cox_hazard_ratio_lower": ("covariate", table["lower_95"].to_numpy(float),
                                    {"long_name": "lower end of its 95 % interval", "units": "1"}),
         "cox_hazard_ratio_upper": ("covariate", table["upper_95"].to_numpy(float),
                                    {"long_name": "upper end of its 95 % interval", "units": "1"}),
         "cox_p_value": ("covariate", table["p_value"].to_numpy(float), {"long_name": "Wald p-value", "units": "1"}),
         "cox_ph_test_p": ("covariate", table["ph_test_p"].to_numpy(float),
                           {"long_name": "p-value of the proportional-hazards test (Schoenfeld residuals)",
                            "units": "1"})},
        coords={"covariate": ("covariate", names)})
    ds.attrs = {"logrank_optimizer_statistic": test["statistic"], "logrank_optimizer_df": test["df"],
                "logrank_optimizer_p_value": test["p_value"], "cox_runs": info["n"], "cox_crashes": info["events"],
                "cox_reference_optimizer": info["reference_optimizer"], "cox_penalizer": info["penalizer"],
                "cox_concordance": info["concordance"]}
    return ds


def with_survival(results: xr.Dataset) -> xr.Dataset:
    """The results with :func:`survival_dataset` merged in (what results.nc holds)."""
    survival = survival_dataset(results)
    merged = results.drop_vars([n for n in results.variables if "covariate" in results[n].dims], errors="ignore")
    merged = merged.assign(survival.data_vars)
    merged.attrs = {**results.attrs, **survival.attrs}
    return merged


def _number(value: float, digits: int = 3) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:.{digits}g}"


def survival_lines(results: xr.Dataset) -> list[str]:
    """The report's section on survival: the log-rank test and the Cox table."""
    test = logrank_by_optimizer(results)
    table, info = cox_hazards(results)
    lines = ["## Survival analysis (lifelines)", "",
             f"{test['n']} finished coupled runs, {test['events']} crashed; a run alive at the end is censored at "
             "its length. Kaplan-Meier curves with 95 % bands by optimizer in `survival.png`.", "",
             f"Log-rank test of equal survival across the optimizers: chi2 {_number(test['statistic'])} with "
             f"{test['df']} degrees of freedom, p = {_number(test['p_value'])}.", ""]
    if table.empty:
        lines += ["No Cox model: too few runs or no crash.", ""]
        return lines
    lines += [f"Cox proportional-hazards model of the crash hazard (ridge penalty {info['penalizer']:g}; optimizers "
              f"against {info['reference_optimizer']}; concordance {_number(info['concordance'])}). A hazard ratio "
              "above 1 means earlier crashes, per unit of the covariate (a factor of 10 for the log10 ones); "
              "the last column tests proportional hazards (Schoenfeld residuals; small p: the ratio changes "
              "with time).", "",
              "| covariate | hazard ratio | 95 % interval | p | PH test p |", "|---|---|---|---|---|"]
    for name, row in table.iterrows():
        lines.append(f"| {name} | {_number(row['hazard_ratio'])} | {_number(row['lower_95'])}-"
                     f"{_number(row['upper_95'])} | {_number(row['p_value'])} | {_number(row['ph_test_p'])} |")
    lines.append("")
    return lines
