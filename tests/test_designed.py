"""The analysis of a designed sweep (experiments/designed.py) on synthetic
results with known structure, its refusals of results it cannot read, and a
tiny designed case study end to end."""
import shutil

import numpy as np
import pytest

from conftest import TINY_CASESTUDY
from coupler.design import Design
from coupler.results import read_results, results_dataset, write_results
from experiments.designed import design_frame, designed_lines, designed_statistics, is_designed, level_label
from experiments.report import make_report
from experiments.survival import logrank_test, survival_frame

OPTIMIZERS = ("adam", "rmsprop", "sgd", "sgd_momentum", "nesterov")
RATES = (1e-4, 1e-3, 1e-2, 1e-1)
RUN_DAYS = 25.0


def designed_records(hazard, repeats=3, seed=0, optimizers=OPTIMIZERS, rates=RATES):
    """Result records of a designed sweep whose coupled runs live an
    exponential time of rate ``hazard(optimizer, rate)`` per day (censored
    at RUN_DAYS; None: never crashes), offline MSE 0.3 times 2 for plain SGD
    and a factor per decade away from 1e-3."""
    design = Design((("optimizer", optimizers), ("learning_rate", rates)), repeats=repeats)
    rng = np.random.default_rng(seed)
    records = []
    for i in range(design.n_emulators):
        cell = design.cell(i)
        optimizer, rate = cell.levels["optimizer"], cell.levels["learning_rate"]
        h = hazard(optimizer, rate)
        life = rng.exponential(1.0 / h) if h else np.inf
        mse = 0.3 * (2.0 if optimizer == "sgd" else 1.0) * 10 ** (0.3 * abs(np.log10(rate) + 3)) * rng.lognormal(0, .05)
        records.append({
            "index": i, "status": "ok", "design": cell.to_dict(),
            "hyperparameters": {"depth": 4, "width": 64, "leaky_relu_slope": 0.1, "dropout": 0.0,
                                "batch_normalization": False, "optimizer": optimizer, "learning_rate": rate,
                                "batch_size": 512, "epochs": 60, "seed": cell.repeat},
            "offline": {"validation_mse": mse, "validation_r2": 1 - mse, "test_mse": mse, "test_r2": 1 - mse,
                        "epochs": 20 + cell.repeat, "best_epoch": 14},
            "online": {"days_survived": min(life, RUN_DAYS), "run_days": RUN_DAYS, "crashed": bool(life < RUN_DAYS),
                       "crash_reason": "", "online_error_t": 1.0, "online_error_q": 0.1,
                       "online_error_normalized": 0.1},
            "artifacts": {"run": ""}})
    return records


def failed(record):
    return {**record, "status": "failed", "error": "ValueError: training stopped in epoch 2: loss nan",
            "offline": None, "online": None}


def learning_rate_only(optimizer, rate):
    return 0.5 if rate == 1e-1 else 0.01


def sgd_family_worse(optimizer, rate):
    return (0.2 if optimizer.startswith("sgd") else 0.02) * (3.0 if rate == 1e-1 else 1.0)


def logrank_by_hand(duration, event, group, stratum):
    """The stratified two-group log-rank statistic from its definition:
    (sum over strata and crash times of O - E)^2 / (sum of the variances)."""
    o_minus_e = variance = 0.0
    for s in np.unique(stratum):
        d, e, g = duration[stratum == s], event[stratum == s], group[stratum == s]
        for t in np.unique(d[e == 1]):
            at_risk = d >= t
            n, n1 = at_risk.sum(), (at_risk & g).sum()
            deaths, deaths1 = ((d == t) & (e == 1)).sum(), ((d == t) & (e == 1) & g).sum()
            o_minus_e += deaths1 - deaths * n1 / n
            if n > 1:
                variance += deaths * (n1 / n) * (1 - n1 / n) * (n - deaths) / (n - 1)
    return o_minus_e ** 2 / variance


def test_the_stratified_log_rank_test_is_the_textbook_one():
    records = designed_records(sgd_family_worse, optimizers=("adam", "sgd"), repeats=4)
    results = results_dataset(records)
    frame, factors = design_frame(results)
    coupled = frame.dropna(subset=["duration"])
    test = logrank_test(coupled, "optimizer", "stratum")
    expected = logrank_by_hand(coupled["duration"].to_numpy(), coupled["event"].to_numpy(),
                               (coupled["optimizer"] == "sgd").to_numpy(), coupled["stratum"].to_numpy())
    assert test["statistic"] == pytest.approx(expected, rel=1e-10)
    assert test["df"] == 1 and test["strata"] == 4 and test["n"] == 32


def test_a_learning_rate_effect_is_not_taken_for_an_optimizer_effect():
    """Crashes depend on the learning rate alone: stratified by it, the
    optimizers do not differ; where the sgd family crashes more at every
    rate, they do, and the table and the Cox model say which way."""
    null = designed_statistics(results_dataset(designed_records(learning_rate_only, repeats=6, seed=1)))
    assert null["group"] == "optimizer" and null["strata"] == ["learning_rate"]
    assert null["logrank_stratified"]["df"] == 4 and null["logrank_stratified"]["strata"] == 4
    assert null["logrank_stratified"]["p_value"] > 0.05
    effect = designed_statistics(results_dataset(designed_records(sgd_family_worse, repeats=6, seed=1)))
    assert effect["logrank_stratified"]["p_value"] < 1e-3
    assert set(effect["logrank_by_stratum"]) == {"1e-4", "1e-3", "1e-2", "1e-1"}
    margins = effect["margins"]["optimizer"].set_index("optimizer")
    assert margins.loc["sgd", "crashed"] > margins.loc["adam", "crashed"] and margins["runs"].eq(24).all()
    table, info = effect["cox"]
    assert info["converged"] and info["events"] > 20
    assert table.loc["optimizer_sgd", "hazard_ratio"] > 2 and table.loc["learning_rate_1e-1", "hazard_ratio"] > 1
    assert (table["lower_95"] <= table["hazard_ratio"]).all() and (table["hazard_ratio"] <= table["upper_95"]).all()
    # offline MSE: plain SGD twice the others at every rate; the model recovers the factor 2 against the reference
    model = effect["offline_model"]
    assert model["p_value"] < 1e-10 and model["df"] == 4
    ratio_sgd = model["ratios"].loc["sgd", "ratio"] / (model["ratios"].loc["rmsprop", "ratio"]
                                                        if model["reference"] != "rmsprop" else 1.0)
    assert ratio_sgd == pytest.approx(2.0, rel=0.1)
    assert all(test["p_value"] < 0.05 for test in effect["offline_by_stratum"].values())


def test_the_table_counts_failed_tasks_and_early_stops():
    records = designed_records(sgd_family_worse)
    records[3] = failed(records[3])                  # adam at 1e-1, repeat 0: the training diverged
    stats = designed_statistics(results_dataset(records))
    cells = stats["cells"]
    assert list(cells.columns[:2]) == ["optimizer", "learning_rate"] and len(cells) == 20
    row = cells.iloc[3]
    assert (row["optimizer"], row["learning_rate"], row["runs"], row["failed"], row["finished"]) == \
        ("adam", "1e-1", 3, 1, 2)
    assert row["crashed"] + row["survived"] == 2 and row["stopped_early"] == 2     # 20-22 of 60 epochs
    assert stats["n_finished"] == 59 and stats["logrank_stratified"]["n"] == 59
    text = "\n".join(designed_lines(results_dataset(records)))
    assert "| adam | 1e-1 | 3 | 1 |" in text and "stratified by learning_rate" in text


def test_a_cox_model_that_cannot_converge_says_why():
    def nesterov_never(optimizer, rate):
        return None if optimizer == "nesterov" else 0.1

    text = "\n".join(designed_lines(results_dataset(designed_records(nesterov_never))))
    assert ("Cox proportional-hazards model with optimizer, learning_rate as categories: **no estimate** — it did "
            "not converge: optimizer nesterov never crashed, so a hazard ratio is 0 or infinite.") in text
    assert "inf" not in text.replace("infinite", "")
    assert "**chi2" in text                                           # the log-rank test is still there


def test_level_labels():
    assert [level_label("learning_rate", v) for v in RATES] == ["1e-4", "1e-3", "1e-2", "1e-1"]
    assert level_label("learning_rate", 3e-4) == "0.0003" and level_label("optimizer", "sgd") == "sgd"
    assert level_label("batch_normalization", np.int8(1)) == "on" and level_label("depth", np.int64(4)) == "4"


def test_results_that_are_not_of_a_designed_sweep_or_too_few_are_told_plainly(tmp_path, capsys):
    from fkb_cli import main

    records = designed_records(sgd_family_worse)
    random = results_dataset([{k: v for k, v in r.items() if k != "design"} for r in records])
    assert not is_designed(random)
    with pytest.raises(ValueError) as info:
        designed_statistics(random)
    assert "not of a designed sweep" in str(info.value) and "\n" not in str(info.value)
    # a results file of an older version: a column missing
    with pytest.raises(ValueError, match="the results have no column 'offline_mse', which the designed comparison"):
        designed_statistics(results_dataset(records).drop_vars("offline_mse"))
    with pytest.raises(ValueError, match="no column 'crashed', which the report needs"):
        make_report(results_dataset(records).drop_vars("crashed"), tmp_path / "r")
    # fewer than two finished runs: said in the report, not an empty table
    one = results_dataset([records[0]] + [failed(r) for r in records[1:]])
    text = "\n".join(designed_lines(one))
    assert "No designed comparison: the designed comparison needs at least 2 finished coupled runs; the results " \
           "have 1 (of 60 emulators)." in text and "| adam |" not in text
    report = make_report(one, tmp_path / "one").read_text()
    assert "1 of 60 emulators finished: no statistics" in report
    # fkb report: one line and exit status 1 for both
    folder = tmp_path / "old"
    write_results(results_dataset(records).drop_vars("crashed"), folder)
    assert main(["report", str(folder)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "fkb report: error: the results have no column 'crashed'" in err[0]
    write_results(one, tmp_path / "one")
    assert main(["report", str(tmp_path / "one")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["fkb report: error: 1 of 60 emulators finished; a report needs at least 2 finished runs"]


def test_the_report_of_a_designed_sweep(tmp_path):
    records = designed_records(sgd_family_worse)
    results = results_dataset(records)
    write_results(results, tmp_path)
    again = read_results(tmp_path)
    assert is_designed(again) and again.attrs["design_factors"] == "optimizer learning_rate"
    assert list(again["design_cell"].values[:21]) == list(range(20)) + [0]
    assert (again["epochs_trained"].values >= 20).all() and (again["best_epoch"].values == 14).all()
    text = make_report(again, tmp_path).read_text()
    assert "## The designed comparison" in text and "### Survival by cell" in text
    assert "| optimizer | learning_rate | runs | failed | crashed | survived |" in text
    assert "Log-rank test of equal survival across the optimizers, stratified by learning_rate" in text
    assert "### Offline validation error, the same comparison" in text and "![design.png](design.png)" in text
    assert (tmp_path / "design.png").stat().st_size > 10_000
    # and a random sweep's report has no such section
    random = results_dataset([{k: v for k, v in r.items() if k != "design"} for r in records])
    assert "designed comparison" not in make_report(random, tmp_path / "random").read_text()
    assert (random["design_cell"].values == -1).all() and "design_factors" not in random.attrs


# ------------------------------------------------------------ end to end
DESIGNED_TINY = TINY_CASESTUDY.replace("""[sweep]
n_emulators = 3
seed = 4

[space]
depth = [1, 2]
width = [8, 16]
batch_size = [256]
learning_rate = [1e-4, 1e-2]
""", """[sweep]
seed = 4

[design]
optimizer = ["adam", "sgd"]
learning_rate = [1e-3, 1e-2]
repeats = 1

[space]
depth = [1, 1]
width = [8, 8]
leaky_relu_slope = [0.1, 0.1]
dropout = [0.0, 0.0]
batch_normalization = [false]
batch_size = [256]
""")


def test_a_tiny_designed_case_study_end_to_end(tiny_casestudy_reference, tmp_path, capsys):
    """The tiny case study's world (its reference data and runs, copied) with
    a 2 x 2 design: every emulator in its cell, the report's designed
    comparison, and --only for one cell."""
    from fkb_cli import main

    assert DESIGNED_TINY != TINY_CASESTUDY
    source = tiny_casestudy_reference["out"]
    out = tmp_path / "designed"
    for name in ("data", "reference"):
        shutil.copytree(source / name, out / name)
    preset = tmp_path / "designed.toml"
    preset.write_text(DESIGNED_TINY)
    assert main(["casestudy", "--preset", str(preset), "--out", str(out), "--no-progress", "--only", "3"]) == 0
    capsys.readouterr()
    assert [p.name for p in sorted((out / "results").iterdir())] == ["emulator_0003.json"]
    assert "1 of 1 emulators finished: no statistics" in (out / "report.md").read_text()
    assert main(["casestudy", "--preset", str(preset), "--out", str(out), "--no-progress"]) == 0
    stdout = capsys.readouterr().out
    assert "4 emulators, 4 finished" in stdout and "designed: survival across optimizers within each " \
                                                   "learning_rate" in stdout
    results = read_results(out)
    assert list(results["optimizer"].values) == ["adam", "adam", "sgd", "sgd"]
    np.testing.assert_allclose(results["learning_rate"].values, [1e-3, 1e-2, 1e-3, 1e-2])
    assert list(results["design_cell"].values) == [0, 1, 2, 3] and (results["design_repeat"].values == 0).all()
    assert len(set(results["seed"].values)) == 1 and (results["depth"].values == 1).all()
    assert (results["epochs_trained"].values == 1).all()
    text = (out / "report.md").read_text()
    assert "## The designed comparison" in text and "| sgd | 1e-2 | 1 |" in text
    assert "a designed sweep (coupler/design.py): 2 optimizer x 2 learning_rate = 4 cells x 1 repeats" in text
    frame = survival_frame(results)
    assert len(frame) == 4


def test_a_cox_fit_whose_newton_steps_overflow_is_found_by_bfgs():
    """statsmodels' Newton iteration returns NaN from some starts (an outlying
    covariate, as the controlled experiment's one diverged RMSprop training);
    the fit then falls back on BFGS and keeps it only at a vanishing gradient."""
    import warnings

    import pandas as pd
    from statsmodels.duration.hazard_regression import PHReg

    from experiments.survival import cox_fit

    rng = np.random.default_rng(0)
    for _ in range(3):                       # the third draw is one where Newton fails
        x = rng.normal(-0.5, 0.1, 40)
        x[0] = 1.7
        rate = rng.choice([-4, -3, -2, -1], 40).astype(float)
        group = rng.integers(0, 3, 40)
        duration = np.minimum(rng.exponential(20 * np.exp(-2 * (x + 0.5)) / (1 + group)), RUN_DAYS)
        duration[0] = 0.09
    event = (duration < RUN_DAYS).astype(int)
    frame = pd.DataFrame({"duration": duration, "event": event, "x": x, "rate": rate,
                          "group": np.array(["a", "b", "c"])[group]})
    model = PHReg(duration, np.column_stack([x, rate, group == 1, group == 2]).astype(float), status=event,
                  ties="breslow")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert np.isnan(model.fit().params).all()                     # Newton alone: nothing
        expected = model.fit(method="bfgs", maxiter=1000).params
    table, info = cox_fit(frame, numeric=("x", "rate"), categorical=("group",), references={"group": "a"})
    assert info["converged"] and info["method"] == "bfgs"
    np.testing.assert_allclose(np.log(table["hazard_ratio"].to_numpy()), expected, rtol=1e-6)
    assert list(table.index) == ["x", "rate", "group_b", "group_c"]
