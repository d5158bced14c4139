"""The analysis of a designed sweep (coupler/design.py): each factor's effect
with the others held fixed.

A designed sweep's results carry each emulator's cell (``design_cell``,
``design_repeat``) and the factors' names (attribute ``design_factors``,
coupler/results.py). The *first* factor is the one compared (the optimizer
in the controlled optimizer experiment); the others define the *strata*
within which it is compared (the learning rate). Here:

- :func:`design_frame`: one row per emulator with its factors' levels as
  labels (a learning rate as ``1e-3``), its stratum, and the survival
  frame's columns (experiments/survival.py); a one-line ValueError for
  results that are not of a designed sweep, of an older version, or missing
  a column;
- :func:`cell_table`: per cell (and per level of each factor): runs, failed
  tasks, crashed coupled runs, survivors, median days survived, median
  offline validation MSE, median epochs trained and early stops;
- :func:`designed_statistics`: the log-rank test across the first factor
  stratified by the others (statsmodels ``survdiff`` with ``strata``), the
  same test within each stratum, the unstratified test for comparison, a Cox
  model with every factor as categorical covariates (hazard ratios with
  95 % intervals against the level that survived most; when it does not
  converge, why), the same with log10 offline validation MSE added (is a
  factor's effect on stability more than its effect on offline skill?),
  and the same within-stratum comparison of offline
  validation error: a linear model of log10 offline MSE on the factors
  (statsmodels OLS, type II F-test of the first factor; each level's ratio
  of geometric-mean MSE to the reference level, 95 % intervals) and a
  Kruskal-Wallis test within each stratum;
- :func:`designed_lines`: the report's section on all that.

Failed tasks (a training that diverged) were never coupled: they are counted
in the table and left out of the survival analysis and the offline tests.
"""
from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from coupler.results import require_columns
from experiments.survival import cox_fit, logrank_test, survival_frame

# statsmodels and SciPy are imported inside the functions that use them, so that importing this module
# does not load them (start-up time).

__all__ = ["MIN_FINISHED", "is_designed", "design_factors", "level_label", "design_frame", "cell_table",
           "designed_statistics", "designed_lines"]

MIN_FINISHED = 2
"""Finished coupled runs the designed comparison needs at least."""


def is_designed(results: xr.Dataset) -> bool:
    """Whether the results are of a designed sweep (coupler/design.py)."""
    return bool(results.attrs.get("design_factors")) and "design_cell" in results.variables


def design_factors(results: xr.Dataset) -> list[str]:
    """The design's factors, in order (the first is the one compared); a
    one-line ValueError for results not of a designed sweep."""
    factors = str(results.attrs.get("design_factors", "")).split()
    if not factors or "design_cell" not in results.variables:
        raise ValueError("the results are not of a designed sweep (no design_factors attribute or design_cell "
                         "column: a sweep drawn at random, or results of a version before designed sweeps)")
    return factors


def level_label(name: str, value: Any) -> str:
    """A factor level as the report names it: a learning rate that is a power
    of ten as ``1e-3``, other numbers with 3 significant digits, flags
    as on/off."""
    if isinstance(value, (bool, np.bool_)) or name == "batch_normalization":
        return "on" if bool(value) and value != -1 else "off"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if value > 0 and name == "learning_rate":
            exponent = math.log10(value)
            if abs(exponent - round(exponent)) < 1e-9:
                return f"1e{int(round(exponent))}"
        return f"{value:.3g}"
    return str(value)


def design_frame(results: xr.Dataset) -> tuple[pd.DataFrame, list[str]]:
    """(rows, factors): every emulator of the results (finished or not) with
    ``status``, ``design_cell``, ``design_repeat``, a label column per
    factor (named as the factor), ``stratum`` (the labels of the factors but
    the first, joined; "all" with one factor), ``offline_mse``,
    ``epochs_trained``, ``epochs`` and, for finished runs, ``duration`` and
    ``event`` (NaN otherwise). Rows in the design's order (by cell, then
    repeat)."""
    factors = design_factors(results)
    require_columns(results, ["design_cell", "design_repeat", "status", "offline_mse", *factors],
                    "the designed comparison")
    labels = {name: np.array([level_label(name, v) for v in results[name].values], dtype=object)
              for name in factors}
    frame = pd.DataFrame({"emulator": results["emulator"].values, "status": results["status"].values.astype(str),
                          "design_cell": results["design_cell"].values.astype(int),
                          "design_repeat": results["design_repeat"].values.astype(int),
                          "offline_mse": results["offline_mse"].values.astype(float),
                          **{f"_{k}": results[k].values for k in ("epochs_trained", "epochs") if k in results},
                          **labels})
    frame = frame.rename(columns={"_epochs_trained": "epochs_trained", "_epochs": "epochs"})
    if (frame["design_cell"] < 0).any():
        raise ValueError(f"{int((frame['design_cell'] < 0).sum())} emulators of the results have no design cell "
                         "(results of a designed sweep mixed with others)")
    frame["stratum"] = (frame[factors[1:]].agg(" ".join, axis=1) if len(factors) > 1 else "all")
    survival = survival_frame(results, extra={name: labels[name] for name in factors})
    frame = frame.merge(survival[["emulator", "duration", "event", "log10_offline_mse"]], on="emulator", how="left")
    return frame.sort_values(["design_cell", "design_repeat"]).reset_index(drop=True), factors


def _order(frame: pd.DataFrame, column: str) -> list[str]:
    """The levels of a label column: numbers in increasing order, others in
    the design's order (first appearance by cell)."""
    levels = list(dict.fromkeys(frame.sort_values("design_cell")[column]))
    try:
        return sorted(levels, key=float)
    except ValueError:
        return levels


def _summary(part: pd.DataFrame) -> dict[str, Any]:
    finished = part[part["status"] == "ok"]
    coupled = finished[finished["duration"].notna()]
    epochs = finished["epochs_trained"] if "epochs_trained" in finished else pd.Series(dtype=float)
    epochs = epochs[epochs > 0] if len(epochs) else epochs
    early = (int((finished["epochs_trained"] < finished["epochs"]).sum())
             if {"epochs_trained", "epochs"} <= set(finished) and len(epochs) else None)
    return {"runs": len(part), "failed": int((part["status"] == "failed").sum()), "finished": len(coupled),
            "crashed": int(coupled["event"].sum()), "survived": int((coupled["event"] == 0).sum()),
            "median_days": float(coupled["duration"].median()) if len(coupled) else math.nan,
            "median_offline_mse": float(finished["offline_mse"].median()) if finished["offline_mse"].notna().any()
            else math.nan,
            "median_epochs": float(epochs.median()) if len(epochs) else math.nan, "stopped_early": early}


def cell_table(frame: pd.DataFrame, factors: list[str]) -> pd.DataFrame:
    """Per cell (a row per combination of the factors' levels present, in
    the design's order): runs, failed, finished (coupled), crashed,
    survived, median days survived, median offline MSE, median epochs
    trained and how many runs stopped early (None without those columns)."""
    rows = []
    for _, part in frame.groupby("design_cell", sort=True):
        rows.append({**{name: part[name].iloc[0] for name in factors}, **_summary(part)})
    return pd.DataFrame(rows)


def margin_table(frame: pd.DataFrame, factor: str) -> pd.DataFrame:
    """The same summary per level of one factor (over the others' levels)."""
    return pd.DataFrame([{factor: level, **_summary(frame[frame[factor] == level])}
                         for level in _order(frame, factor)])


def _best_level(coupled: pd.DataFrame, column: str, order: list[str]) -> str:
    """The level whose runs survived most (fraction), the first in the
    design's order among equals: the Cox model's reference level."""
    fractions = {level: 1.0 - coupled.loc[coupled[column] == level, "event"].mean() for level in order
                 if (coupled[column] == level).any()}
    return max(fractions, key=lambda level: (fractions[level], -order.index(level)))


def _offline_model(finished: pd.DataFrame, factors: list[str], reference: str) -> dict[str, Any]:
    """OLS of log10 offline MSE on the factors (categorical): the type II
    F-test of the first factor, and each of its levels' ratio of
    geometric-mean MSE to `reference`, with 95 % intervals."""
    import statsmodels.formula.api as smf
    from statsmodels.stats.anova import anova_lm

    data = finished[finished["offline_mse"] > 0].copy()
    data["log10_mse"] = np.log10(data["offline_mse"])
    names = {name: f"f{i}" for i, name in enumerate(factors)}
    data = data.rename(columns=names)
    out: dict[str, Any] = {"n": len(data), "F": math.nan, "df": math.nan, "df_resid": math.nan, "p_value": math.nan,
                           "ratios": pd.DataFrame(columns=["ratio", "lower_95", "upper_95", "p_value"]),
                           "reference": reference}
    present = [names[name] for name in factors if data[names[name]].nunique() > 1]
    first = names[factors[0]]
    if first not in present or len(data) <= sum(data[c].nunique() - 1 for c in present) + 1:
        return out
    terms = [f"C({first}, Treatment(reference={reference!r}))"] + [f"C({c})" for c in present if c != first]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = smf.ols("log10_mse ~ " + " + ".join(terms), data=data).fit()
        table = anova_lm(fit, typ=2)
    row = table.loc[terms[0]]
    out.update(F=float(row["F"]), df=float(row["df"]), df_resid=float(fit.df_resid), p_value=float(row["PR(>F)"]))
    interval = fit.conf_int()
    ratios = {}
    for param in fit.params.index:
        if param.startswith(terms[0] + "[T."):
            level = param[len(terms[0]) + 3:-1]
            ratios[level] = {"ratio": 10 ** fit.params[param], "lower_95": 10 ** interval.loc[param, 0],
                             "upper_95": 10 ** interval.loc[param, 1], "p_value": fit.pvalues[param]}
    out["ratios"] = pd.DataFrame.from_dict(ratios, orient="index")
    return out


def designed_statistics(results: xr.Dataset) -> dict[str, Any]:
    """The numbers of the designed comparison (see the module docstring) as a
    dict: ``factors``, ``group`` (the first factor), ``strata`` (the others),
    ``cells`` and ``margins`` (tables), ``logrank_stratified``,
    ``logrank_unstratified``, ``logrank_by_stratum`` (stratum: test),
    ``cox`` and ``cox_offline`` (table, info: without and with log10 offline
    MSE as a covariate), ``offline_model`` and ``offline_by_stratum``
    (stratum: Kruskal-Wallis statistic, p, n). ValueError (one line) for
    results that are not of a designed sweep or have fewer than
    :data:`MIN_FINISHED` finished coupled runs."""
    from scipy.stats import kruskal

    frame, factors = design_frame(results)
    group = factors[0]
    coupled = frame[(frame["status"] == "ok") & frame["duration"].notna()]
    if len(coupled) < MIN_FINISHED:
        raise ValueError(f"the designed comparison needs at least {MIN_FINISHED} finished coupled runs; "
                         f"the results have {len(coupled)} (of {len(frame)} emulators)")
    strata_order = _order(frame, "stratum")
    stats: dict[str, Any] = {
        "factors": factors, "group": group, "strata": factors[1:], "n_emulators": len(frame),
        "n_finished": len(coupled), "cells": cell_table(frame, factors),
        "margins": {name: margin_table(frame, name) for name in factors},
        "logrank_stratified": logrank_test(coupled, group, "stratum" if len(factors) > 1 else None),
        "logrank_unstratified": logrank_test(coupled, group),
        "logrank_by_stratum": {s: logrank_test(coupled[coupled["stratum"] == s], group) for s in strata_order
                               if (coupled["stratum"] == s).any()},
    }
    references = {name: _best_level(coupled, name, _order(frame, name)) for name in factors}
    stats["cox"] = cox_fit(coupled, categorical=tuple(factors), references=references)
    stats["cox_offline"] = cox_fit(coupled, numeric=("log10_offline_mse",), categorical=tuple(factors),
                                   references=references)
    finished = frame[(frame["status"] == "ok") & frame["offline_mse"].notna()]
    stats["offline_model"] = _offline_model(finished, factors, references[group])
    by_stratum = {}
    for s in strata_order:
        samples = [part["offline_mse"].to_numpy(float) for _, part in finished[finished["stratum"] == s].groupby(group)]
        samples = [x for x in samples if len(x)]
        if len(samples) >= 2 and np.ptp(np.concatenate(samples)) > 0:
            test = kruskal(*samples)
            by_stratum[s] = {"statistic": float(test.statistic), "p_value": float(test.pvalue),
                             "n": int(sum(len(x) for x in samples)), "groups": len(samples)}
    stats["offline_by_stratum"] = by_stratum
    return stats


def _number(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def _test_text(test: dict[str, Any]) -> str:
    if not math.isfinite(test["statistic"]):
        return f"no test ({test['note'] or 'not computable'}; {test['n']} runs, {test['events']} crashes)"
    return f"chi2 {_number(test['statistic'])}, {test['df']} df, p = {_number(test['p_value'], 2)}"


def _summary_cells(row: pd.Series) -> str:
    early = "–" if row["stopped_early"] is None or (isinstance(row["stopped_early"], float)
                                                     and math.isnan(row["stopped_early"])) else \
        f"{int(row['stopped_early'])}/{row['runs'] - row['failed']}"
    return (f"{row['runs']} | {row['failed']} | {row['crashed']} | {row['survived']} | {_number(row['median_days'])} "
            f"| {_number(row['median_offline_mse'])} | {_number(row['median_epochs'])} | {early} |")


def designed_lines(results: xr.Dataset) -> list[str]:
    """The report's section on a designed sweep: the design, the survival
    table by cell and by each factor, the stratified tests, the Cox model,
    the offline comparison. Results with too few finished runs get a plain
    sentence saying so, not an empty table."""
    factors = design_factors(results)
    try:
        st = designed_statistics(results)
    except ValueError as exc:
        return ["## The designed comparison", "", f"No designed comparison: {exc}.", ""]
    group, strata = st["group"], st["strata"]
    by = " x ".join(strata) if strata else ""
    header = (" | ".join(factors) + " | runs | failed | crashed | survived | median days survived "
              "| median offline MSE | median epochs trained | stopped early |")
    lines = ["## The designed comparison", "",
             f"A designed sweep (coupler/design.py): {' x '.join(factors)}, {st['n_emulators']} emulators, "
             f"{st['n_finished']} coupled. Each cell is one configuration; its repeats differ only in the training "
             "seed (initial weights and batch order), and every cell of a repeat shares that seed. "
             f"The {group} is compared" + (f" within each {by} (the strata)" if strata else "")
             + "; tasks that failed (a training that diverged) were never coupled and are left out of the tests.", "",
             "### Survival by cell", "", "| " + header, "|" + "---|" * (len(factors) + 8)]
    for _, row in st["cells"].iterrows():
        lines.append("| " + " | ".join(str(row[name]) for name in factors) + " | " + _summary_cells(row))
    for name in factors:
        lines += ["", f"By {name} (over the other factors):", "",
                  f"| {name} | runs | failed | crashed | survived | median days survived | median offline MSE "
                  "| median epochs trained | stopped early |", "|---|---|---|---|---|---|---|---|---|"]
        for _, row in st["margins"][name].iterrows():
            lines.append(f"| {row[name]} | " + _summary_cells(row))
    lines += ["", "### Does the " + group + " matter once " + (by or "nothing else") + " is fixed?", ""]
    if strata:
        lines += [f"Log-rank test of equal survival across the {group}s, stratified by {by} (statsmodels survdiff "
                  f"with strata: the {group}s compared within each stratum, the comparisons summed): "
                  f"**{_test_text(st['logrank_stratified'])}**. Unstratified, for comparison: "
                  f"{_test_text(st['logrank_unstratified'])}. Within each stratum (the summed test can hide "
                  "effects of opposite sign in different strata):", "",
                  f"| {by} | runs | crashed | log-rank across {group}s |", "|---|---|---|---|"]
        for s, test in st["logrank_by_stratum"].items():
            lines.append(f"| {s} | {test['n']} | {test['events']} | {_test_text(test)} |")
    else:
        lines.append(f"Log-rank test of equal survival across the {group}s: {_test_text(st['logrank_stratified'])}.")
    lines.append("")
    for key, what in (("cox", f"with {', '.join(factors)} as categories"),
                      ("cox_offline", f"with {', '.join(factors)} as categories and log10 offline validation MSE "
                                      "(is the effect more than offline skill?)")):
        table, info = st[key]
        if table.empty:
            lines += [f"Cox proportional-hazards model {what}: **no estimate** — {info['reason']}."
                      + (" The table and the log-rank tests above are the comparison." if key == "cox" else ""), ""]
            continue
        refs = ", ".join(f"{name} {level}" for name, level in info["references"].items())
        lines += [f"Cox proportional-hazards model of the crash hazard {what} ({info['n']} runs, {info['events']} "
                  f"crashes; each level against the level of its factor that survived most: {refs}"
                  + ("; the offline MSE per factor of 10" if key == "cox_offline" else "")
                  + "). A hazard ratio above 1 means earlier crashes; the last column tests proportional hazards.",
                  "", "| covariate | hazard ratio | 95 % interval | p | PH test p |", "|---|---|---|---|---|"]
        for name, row in table.iterrows():
            lines.append(f"| {name} | {_number(row['hazard_ratio'])} | {_number(row['lower_95'])}-"
                         f"{_number(row['upper_95'])} | {_number(row['p_value'], 2)} | {_number(row['ph_test_p'], 2)} |")
        lines.append("")
    model = st["offline_model"]
    lines += ["### Offline validation error, the same comparison", ""]
    if not math.isfinite(model["F"]):
        lines += [f"No linear model of the offline error: too few finished runs ({model['n']}) for its "
                  "coefficients.", ""]
    else:
        lines += [f"Linear model of log10 offline validation MSE on {' + '.join(factors)} (categorical; statsmodels "
                  f"OLS, {model['n']} runs): type II F-test of the {group}: **F {_number(model['F'])} on "
                  f"{model['df']:g} and {model['df_resid']:g} df, p = {_number(model['p_value'], 2)}**. Each "
                  f"{group}'s geometric-mean offline MSE as a multiple of {model['reference']}'s, "
                  f"{'the other factors held fixed' if strata else ''}:", "",
                  f"| {group} | MSE ratio | 95 % interval | p |", "|---|---|---|---|"]
        for level, row in model["ratios"].iterrows():
            lines.append(f"| {level} | {_number(row['ratio'])} | {_number(row['lower_95'])}-"
                         f"{_number(row['upper_95'])} | {_number(row['p_value'], 2)} |")
        lines.append("")
    if st["offline_by_stratum"]:
        lines += [f"Kruskal-Wallis test of equal offline MSE across the {group}s within each stratum:", "",
                  f"| {by or 'stratum'} | runs | {group}s | H | p |", "|---|---|---|---|---|"]
        for s, test in st["offline_by_stratum"].items():
            lines.append(f"| {s} | {test['n']} | {test['groups']} | {_number(test['statistic'])} "
                         f"| {_number(test['p_value'], 2)} |")
        lines.append("")
    return lines
