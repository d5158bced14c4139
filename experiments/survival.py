"""Survival analysis of the coupled runs, with statsmodels.

A coupled run's life is ``days_survived``; a run that crashed is an event, a
run still alive at the end of its planned length is right-censored there
(it would have lived longer; it did not "survive the maximum"). Over the
finished emulators of a sweep:

- :func:`kaplan_meier`: Kaplan-Meier survival curves (statsmodels
  ``SurvfuncRight``) with pointwise 95 % bands (Greenwood's variance on the
  log(-log) scale), all runs and by optimizer;
- :func:`logrank_by_optimizer`: the log-rank test of equal survival across
  the optimizers (statsmodels ``survdiff``); :func:`logrank_by` the same
  across the values of any column, e.g. ``water_conservation`` (with and
  without the column-water-conservation layer);
- :func:`cox_hazards`: a Cox proportional-hazards model of the crash hazard
  (statsmodels ``PHReg``, Breslow ties) on log10 offline validation error,
  the optimizer (against the most common one), log10 learning rate, depth,
  width, dropout, batch normalization and the water-conservation layer
  (when the sweep drew both): hazard ratios with 95 % intervals
  and p-values, and a test of proportional hazards per covariate (the
  correlation of its Schoenfeld residuals with the rank of the crash time,
  after Grambsch & Therneau 1994). A covariate that does not vary is left
  out; a fit that does not converge (a group that never crashes makes its
  ratio infinite) is reported as missing, not shown.

:func:`survival_dataset` gathers the test and the hazard ratios as a Dataset
on the dimension ``covariate``, which the case study writes into results.nc.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

__all__ = ["KaplanMeier", "survival_frame", "kaplan_meier", "logrank_by", "logrank_by_optimizer", "cox_hazards",
           "survival_dataset", "with_survival"]

_NUMERIC = ("log10_offline_mse", "log10_learning_rate", "depth", "width", "dropout", "batch_normalization",
            "water_conservation")


def survival_frame(results: xr.Dataset) -> pd.DataFrame:
    """One row per finished emulator with a survival time: ``duration``
    [days], ``event`` (1 crashed, 0 censored at the run length), the
    optimizer and the covariates of the Cox model (``water_conservation`` 0
    for results of before the hyperparameter, which had no layer)."""
    ok = results["status"].values == "ok"
    conservation = (results["water_conservation"].values.astype(float) if "water_conservation" in results
                    else np.zeros(results.sizes["emulator"]))
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
        "water_conservation": np.where(conservation >= 0, conservation, np.nan),
    })[ok]
    frame = frame[np.isfinite(frame["duration"])]
    # a crash at the very first step is a life of (almost) zero: keep it positive for the estimators
    frame["duration"] = frame["duration"].clip(lower=1e-3)
    return frame.reset_index(drop=True)


@dataclass
class KaplanMeier:
    """A Kaplan-Meier curve: survival after each crash time, with its band."""

    times: np.ndarray       #: crash times [days], preceded by 0
    survival: np.ndarray
    lower: np.ndarray       #: pointwise 95 % band
    upper: np.ndarray
    n: int                  #: runs
    events: int             #: crashes
    end: float              #: the longest duration (crash or censoring) [days]


def _kaplan_meier(duration: pd.Series, event: pd.Series) -> KaplanMeier:
    from statsmodels.api import SurvfuncRight

    fit = SurvfuncRight(duration.to_numpy(float), event.to_numpy(int))
    times = np.r_[0.0, fit.surv_times]
    survival = np.r_[1.0, fit.surv_prob]
    se = np.r_[0.0, fit.surv_prob_se]
    with np.errstate(divide="ignore", invalid="ignore"):
        # log(-log S) has standard error se / (S |log S|); back-transform a 95 % interval
        spread = 1.96 * se / (survival * np.abs(np.log(survival)))
        lower = survival ** np.exp(spread)
        upper = survival ** np.exp(-spread)
    lower = np.where(np.isfinite(lower), lower, np.where(survival >= 1, 1.0, 0.0))
    upper = np.where(np.isfinite(upper), upper, np.where(survival >= 1, 1.0, 0.0))
    return KaplanMeier(times, survival, lower, upper, len(duration), int(event.sum()), float(duration.max()))


def kaplan_meier(results: xr.Dataset) -> dict[str, KaplanMeier]:
    """Kaplan-Meier curves of all finished runs ("all") and of each optimizer's."""
    frame = survival_frame(results)
    return {name: _kaplan_meier(part["duration"], part["event"])
            for name, part in [("all", frame)] + sorted(frame.groupby("optimizer")) if len(part)}


def logrank_by(results: xr.Dataset, column: str) -> dict[str, float]:
    """The log-rank test (statsmodels ``survdiff``) of equal survival across
    the values of `column` of the survival frame (``optimizer``,
    ``water_conservation``, ...): statistic, degrees of freedom, p-value,
    runs, crashes, and per group its runs and survivors (``groups``); NaN
    with fewer than two groups or no crash."""
    from statsmodels.duration.survfunc import survdiff

    frame = survival_frame(results)
    frame = frame[frame[column].notna()]
    groups = frame[column].nunique()
    out = {"statistic": math.nan, "df": max(groups - 1, 0), "p_value": math.nan, "n": len(frame),
           "events": int(frame["event"].sum()),
           "groups": {_group_label(value): {"n": len(part), "survived": int((part["event"] == 0).sum())}
                      for value, part in sorted(frame.groupby(column))}}
    if groups >= 2 and out["events"] > 0:
        statistic, p_value = survdiff(frame["duration"].to_numpy(float), frame["event"].to_numpy(int),
                                      frame[column].to_numpy())
        out.update(statistic=float(statistic), p_value=float(p_value))
    return out


def _group_label(value: Any) -> str:
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def logrank_by_optimizer(results: xr.Dataset) -> dict[str, float]:
    """The log-rank test of equal survival across the optimizers
    (:func:`logrank_by` on ``optimizer``)."""
    return logrank_by(results, "optimizer")


def _design(frame: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """The Cox model's covariates: numeric ones with any spread, optimizer
    indicators against the most common optimizer (the reference level)."""
    reference = frame["optimizer"].value_counts().sort_index().idxmax()
    columns = {name: frame[name] for name in _NUMERIC if frame[name].notna().all() and frame[name].std() > 0}
    for name in sorted(set(frame["optimizer"]) - {reference}):
        columns[f"optimizer_{name}"] = (frame["optimizer"] == name).astype(float)
    return pd.DataFrame(columns), reference


def cox_hazards(results: xr.Dataset) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The Cox model of the crash hazard: a table indexed by covariate with
    ``hazard_ratio``, ``lower_95``, ``upper_95``, ``p_value`` and
    ``ph_test_p`` (small: the hazard ratio changes with time), and facts
    about the fit (runs, crashes, reference optimizer, whether it converged).
    An empty table with no crash, too few runs, or no convergence."""
    from scipy.stats import pearsonr, rankdata
    from statsmodels.duration.hazard_regression import PHReg

    frame = survival_frame(results).dropna()
    info: dict[str, Any] = {"n": len(frame), "events": int(frame["event"].sum()), "reference_optimizer": "",
                            "converged": False}
    empty = pd.DataFrame(columns=["hazard_ratio", "lower_95", "upper_95", "p_value", "ph_test_p"])
    if info["events"] < 2 or len(frame) < 5:
        return empty, info
    design, info["reference_optimizer"] = _design(frame)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            fit = PHReg(frame["duration"].to_numpy(float), design.to_numpy(float),
                        status=frame["event"].to_numpy(int), ties="breslow").fit()
        except (np.linalg.LinAlgError, ValueError):
            return empty, info
        interval = np.asarray(fit.conf_int())
        residuals = np.asarray(fit.schoenfeld_residuals)
    coefficients, p_values = np.asarray(fit.params), np.asarray(fit.pvalues)
    if not (np.all(np.isfinite(coefficients)) and np.all(np.isfinite(interval)) and np.all(np.abs(coefficients) < 20)):
        return empty, info                                   # diverged: some ratio is effectively infinite
    crashed = frame["event"].to_numpy(int) == 1
    crash_rank = rankdata(frame["duration"].to_numpy(float)[crashed])
    ph = []
    for j in range(design.shape[1]):
        r = residuals[crashed, j]
        ph.append(float(pearsonr(r, crash_rank).pvalue) if np.std(r) > 0 and len(r) > 2 else math.nan)
    table = pd.DataFrame({"hazard_ratio": np.exp(coefficients), "lower_95": np.exp(interval[:, 0]),
                          "upper_95": np.exp(interval[:, 1]), "p_value": p_values, "ph_test_p": ph},
                         index=pd.Index(design.columns, name="covariate"))
    info["converged"] = True
    return table, info


def survival_dataset(results: xr.Dataset) -> xr.Dataset:
    """The log-rank test (attributes) and the Cox hazard ratios (variables on
    ``covariate``) as a Dataset to merge into the results."""
    table, info = cox_hazards(results)
    test = logrank_by_optimizer(results)
    conservation = logrank_by(results, "water_conservation")
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
                "logrank_optimizer_p_value": test["p_value"],
                "logrank_water_conservation_statistic": conservation["statistic"],
                "logrank_water_conservation_df": conservation["df"],
                "logrank_water_conservation_p_value": conservation["p_value"],
                "cox_runs": info["n"], "cox_crashes": info["events"],
                "cox_reference_optimizer": info["reference_optimizer"], "cox_converged": int(info["converged"])}
    return ds


def with_survival(results: xr.Dataset) -> xr.Dataset:
    """The results with :func:`survival_dataset` merged in (what results.nc holds)."""
    survival = survival_dataset(results)
    merged = results.drop_vars([n for n in results.variables if "covariate" in results[n].dims], errors="ignore")
    merged = merged.assign(survival.data_vars)
    merged.attrs = {**results.attrs, **survival.attrs}
    return merged
