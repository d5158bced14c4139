"""Survival analysis of the coupled runs, with statsmodels.

A coupled run's life is ``days_survived``; a run that crashed is an event, a
run still alive at the end of its planned length is right-censored there
(it would have lived longer; it did not "survive the maximum"). Over the
finished emulators of a sweep:

- :func:`kaplan_meier`: Kaplan-Meier survival curves (statsmodels
  ``SurvfuncRight``) with pointwise 95 % bands (Greenwood's variance on the
  log(-log) scale), all runs and by optimizer;
- :func:`logrank_by_optimizer`: the log-rank test of equal survival across
  the optimizers (statsmodels ``survdiff``); :func:`logrank_test` the same
  on any grouping of a :func:`survival_frame`, optionally stratified (a
  designed sweep's optimizers compared within each learning rate), and
  :func:`logrank_by` across the values of any column, e.g.
  ``water_conservation`` (with and without the column-water-conservation
  layer);
- :func:`cox_hazards`: a Cox proportional-hazards model of the crash hazard
  (statsmodels ``PHReg``, Breslow ties) on log10 offline validation error,
  the optimizer (against the most common one), log10 learning rate, depth,
  width, dropout, batch normalization and the water-conservation layer
  (when the sweep drew both): hazard ratios with 95 % intervals
  and p-values, and a test of proportional hazards per covariate (the
  correlation of its Schoenfeld residuals with the rank of the crash time,
  after Grambsch & Therneau 1994). A covariate that does not vary is left
  out; a fit that does not converge (a group that never crashes makes its
  ratio infinite) is reported as missing, not shown, with the reason
  (``info["reason"]``). :func:`cox_fit` is the same model on any numeric and
  categorical columns of a :func:`survival_frame` (a designed sweep's
  factors as categories).

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

from coupler.results import require_columns

# statsmodels and SciPy are imported inside the functions that use them, so that importing this module
# does not load them (start-up time).

__all__ = ["KaplanMeier", "survival_frame", "kaplan_meier", "logrank_test", "logrank_by", "logrank_by_optimizer",
           "cox_fit",
           "cox_hazards", "survival_dataset", "with_survival", "SURVIVAL_COLUMNS"]

_NUMERIC = ("log10_offline_mse", "log10_learning_rate", "depth", "width", "dropout", "batch_normalization",
            "water_conservation")

SURVIVAL_COLUMNS = ("status", "days_survived", "crashed", "optimizer", "offline_mse", "learning_rate", "depth",
                    "width", "dropout", "batch_normalization")
"""Columns of the results the survival analysis reads."""


def survival_frame(results: xr.Dataset, extra: dict[str, Any] | None = None) -> pd.DataFrame:
    """One row per finished emulator with a survival time: ``duration``
    [days], ``event`` (1 crashed, 0 censored at the run length), the
    optimizer and the covariates of the Cox model, and the `extra` columns
    (name: one value per emulator of `results`, e.g. a designed sweep's
    factor levels); ``water_conservation`` is 0 for results of before the
    hyperparameter, which had no layer. A missing column of the results is
    a one-line ValueError."""
    require_columns(results, SURVIVAL_COLUMNS, "the survival analysis")
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
        **{name: np.asarray(values) for name, values in (extra or {}).items()},
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


def logrank_test(frame: pd.DataFrame, group: str = "optimizer", strata: str | None = None) -> dict[str, Any]:
    """The log-rank test (statsmodels ``survdiff``) of equal survival across
    the groups of column `group` of a :func:`survival_frame`; with `strata`
    (a column) stratified: the groups are compared within each stratum and
    the comparisons summed, so a difference between strata (e.g. learning
    rates) is not taken for one between groups. Statistic (chi2), degrees
    of freedom, p-value, runs, crashes, strata; NaN with fewer than two
    groups or no crash. (Effects of opposite sign in different strata
    cancel in the sum: :func:`logrank_test` on each stratum's rows says
    where the groups differ.)"""
    from statsmodels.duration.survfunc import survdiff

    groups = frame[group].nunique()
    out = {"statistic": math.nan, "df": max(groups - 1, 0), "p_value": math.nan, "n": len(frame),
           "events": int(frame["event"].sum()), "strata": int(frame[strata].nunique()) if strata else 1,
           "note": ""}
    if groups < 2:
        out["note"] = f"fewer than two {group} groups"
    elif out["events"] == 0:
        out["note"] = "no crash"
    else:
        kwargs = {"strata": frame[strata].to_numpy(str)} if strata else {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=RuntimeWarning)   # a stratum without crashes adds nothing
            try:
                statistic, p_value = survdiff(frame["duration"].to_numpy(float), frame["event"].to_numpy(int),
                                              frame[group].to_numpy(str), **kwargs)
            except np.linalg.LinAlgError:    # a group never at risk beside another at a crash time (in its stratum)
                out["note"] = (f"not computable: some {group} group is never compared with another"
                               + (" within a stratum" if strata else ""))
                return out
        out.update(statistic=float(statistic), p_value=float(p_value))
    return out


def logrank_by(results: xr.Dataset, column: str) -> dict[str, Any]:
    """The log-rank test (:func:`logrank_test`) of equal survival across
    the values of `column` of the survival frame (``optimizer``,
    ``water_conservation``, ...): statistic, degrees of freedom, p-value,
    runs, crashes, and per group its runs and survivors (``groups``)."""
    frame = survival_frame(results)
    frame = frame[frame[column].notna()].reset_index(drop=True)
    out = logrank_test(frame.assign(**{column: frame[column].map(_group_label)}), group=column)
    out.pop("strata")
    out.pop("note")
    out["groups"] = {_group_label(value): {"n": len(part), "survived": int((part["event"] == 0).sum())}
                     for value, part in sorted(frame.groupby(column))}
    return out


def _group_label(value: Any) -> str:
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def logrank_by_optimizer(results: xr.Dataset) -> dict[str, float]:
    """The log-rank test (statsmodels ``survdiff``) of equal survival across
    the optimizers: statistic, degrees of freedom, p-value, runs, crashes;
    NaN with fewer than two optimizers or no crash."""
    out = logrank_test(survival_frame(results))
    out.pop("strata")
    out.pop("note")
    return out


def _reference_level(frame: pd.DataFrame, column: str) -> str:
    """The most common level (the first in sorted order among equals)."""
    return frame[column].value_counts().sort_index().idxmax()


def _design(frame: pd.DataFrame, numeric: tuple[str, ...], categorical: tuple[str, ...],
            references: dict[str, str]) -> pd.DataFrame:
    """The Cox model's covariates: numeric ones with any spread, then each
    categorical column's indicators against its reference level."""
    columns = {name: frame[name] for name in numeric if frame[name].notna().all() and frame[name].std() > 0}
    for column in categorical:
        for level in sorted(set(frame[column]) - {references[column]}):
            columns[f"{column}_{level}"] = (frame[column] == level).astype(float)
    return pd.DataFrame(columns)


def _never_crashed(frame: pd.DataFrame, categorical: tuple[str, ...]) -> list[str]:
    """Levels of the categorical columns whose runs all survived: their
    hazard ratio against any level that crashes is 0 (infinite the other way)."""
    return [f"{column} {level}" for column in categorical
            for level, part in sorted(frame.groupby(column)) if part["event"].sum() == 0]


def cox_fit(frame: pd.DataFrame, numeric: tuple[str, ...] = (), categorical: tuple[str, ...] = (),
            references: dict[str, str] | None = None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """A Cox model of the crash hazard on a :func:`survival_frame`'s `numeric`
    columns and indicators of its `categorical` columns' levels against
    `references` (column: level; default the most common level): a table
    indexed by covariate with ``hazard_ratio``, ``lower_95``, ``upper_95``,
    ``p_value`` and ``ph_test_p`` (small: the hazard ratio changes with
    time), and facts about the fit (runs, crashes, reference levels,
    whether it converged, and if not, ``reason``: too few runs or crashes,
    or the levels that never crashed; ``method``: statsmodels' Newton, or
    BFGS where Newton's steps overflowed). An empty table when there is no
    fit."""
    from scipy.stats import pearsonr, rankdata
    from statsmodels.duration.hazard_regression import PHReg

    frame = frame[["duration", "event", *numeric, *categorical]].dropna()
    references = {column: (references or {}).get(column) or _reference_level(frame, column)
                  for column in categorical if len(frame)}
    info: dict[str, Any] = {"n": len(frame), "events": int(frame["event"].sum()), "references": references,
                            "converged": False, "reason": ""}
    empty = pd.DataFrame(columns=["hazard_ratio", "lower_95", "upper_95", "p_value", "ph_test_p"])
    if info["events"] < 2 or len(frame) < 5:
        info["reason"] = f"too few runs or crashes ({info['n']} runs, {info['events']} crashes)"
        return empty, info
    design = _design(frame, numeric, categorical, references)
    never = _never_crashed(frame, categorical)
    diverged = (f"it did not converge: {', '.join(never)} never crashed, so a hazard ratio is 0 or infinite"
                if never else "it did not converge: a hazard ratio is effectively 0 or infinite (a group that "
                              "always crashes first, or never)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            model = PHReg(frame["duration"].to_numpy(float), design.to_numpy(float),
                          status=frame["event"].to_numpy(int), ties="breslow")
            fit = model.fit()
            info["method"] = "newton"
            if not np.all(np.isfinite(fit.params)):
                # Newton's steps can overflow from a start far from the optimum (a covariate with an
                # outlier); BFGS gets there, and counts only if the likelihood's gradient vanishes
                fit = model.fit(method="bfgs", maxiter=1000)
                info["method"] = "bfgs"
                if not (np.all(np.isfinite(fit.params))
                        and np.max(np.abs(model.score(np.asarray(fit.params)))) < 1e-3 * max(1, info["events"])):
                    info["reason"] = diverged
                    return empty, info
        except (np.linalg.LinAlgError, ValueError) as exc:
            info["reason"] = f"the fit failed ({exc})" if not never else diverged
            return empty, info
        interval = np.asarray(fit.conf_int())
        residuals = np.asarray(fit.schoenfeld_residuals)
    coefficients, p_values = np.asarray(fit.params), np.asarray(fit.pvalues)
    if not (np.all(np.isfinite(coefficients)) and np.all(np.isfinite(interval)) and np.all(np.abs(coefficients) < 20)):
        info["reason"] = diverged                            # some ratio is effectively infinite
        return empty, info
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


def cox_hazards(results: xr.Dataset) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The Cox model of a sweep's crash hazard (:func:`cox_fit`) on log10
    offline validation MSE, log10 learning rate, depth, width, dropout,
    batch normalization and the optimizer (against the most common one,
    ``info["reference_optimizer"]``); rows without an offline MSE left out."""
    frame = survival_frame(results).dropna()
    table, info = cox_fit(frame, _NUMERIC, ("optimizer",))
    info["reference_optimizer"] = info["references"].get("optimizer", "") if info["n"] >= 5 and info["events"] >= 2 \
        else ""
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
