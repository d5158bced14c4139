"""The case-study report on a results dataset with known rank correlations,
and bias maps from real toy-GCM runs."""
import dataclasses

import numpy as np
import pytest
from scipy.stats import spearmanr

from coupler.results import read_results, results_dataset, write_results
from coupler.sweep import CoupledRunConfig, coupled_run
from experiments.survival import cox_hazards, kaplan_meier, logrank_by_optimizer, survival_frame, with_survival
from experiments.report import headline_statistics, make_report

RUN_DAYS = 30.0
OPTIMIZERS = ["adam", "rmsprop", "sgd", "sgd_momentum", "nesterov"]


def record(index, optimizer, offline, online, days, run_path="", status="ok"):
    crashed = days < RUN_DAYS
    return {
        "index": index, "status": status, "error": None if status == "ok" else "ValueError: diverged",
        "hyperparameters": {"depth": 4 + index % 3, "width": 100 + 10 * index, "leaky_relu_slope": 0.1, "dropout": 0.0,
                            "batch_normalization": bool(index % 2), "optimizer": optimizer,
                            "learning_rate": 10.0 ** (-4 + index % 3), "batch_size": 512, "epochs": 20, "seed": index},
        "offline": None if status != "ok" else {"validation_mse": offline, "validation_r2": 1.0 - offline,
                                                 "test_mse": 1.1 * offline, "test_r2": 1.0 - 1.1 * offline},
        "online": None if status != "ok" else {
            "days_survived": days, "run_days": RUN_DAYS, "crashed": crashed,
            "crash_reason": "temperature above bound" if crashed else "",
            "online_error_t": online * 20.0 if online is not None else None,
            "online_error_q": online * 2.0 if online is not None else None,
            "online_error_normalized": online},
        "artifacts": {"run": run_path},
    }


def survivor_values():
    """9 survivors: online error increases with offline MSE except two swapped
    pairs, so Spearman's rho = 1 - 6 * 4 / (9 * 80) = 29/30."""
    offline = 10.0 ** np.linspace(-2.0, 0.0, 9)
    online = 0.05 * np.sqrt(offline)
    online[[0, 1]] = online[[1, 0]]
    online[[4, 5]] = online[[5, 4]]
    return offline, online


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A reference and two runs from perturbed starts (small and large perturbation)."""
    folder = tmp_path_factory.mktemp("report-runs")
    config = CoupledRunConfig(overrides={"humidity": True}, initial_relative_humidity=0.7, days=4.0, window_days=2.0)
    paths = {}
    for name, kelvin in (("reference", 0.0), ("good", 0.05), ("bad", 2.0)):
        paths[name] = folder / f"{name}.nc"
        coupled_run(None, dataclasses.replace(config, perturbation_kelvin=kelvin), paths[name], twin=int(kelvin > 0))
    return paths


@pytest.fixture(scope="module")
def results(runs):
    offline, online = survivor_values()
    records = []
    for i in range(9):
        path = str(runs["good"]) if i == 1 else str(runs["bad"]) if i == 8 else ""
        records.append(record(i, OPTIMIZERS[i % 5], float(offline[i]), float(online[i]), RUN_DAYS, path))
    # crashed runs: large offline error, short lives; one crashed before its first window
    records.append(record(9, "sgd", 2.0, 0.2, 12.0))
    records.append(record(10, "sgd", 3.0, None, 1.5))
    records.append(record(11, "nesterov", 0.5, 0.08, 25.0))
    records.append(record(12, "adam", None, None, 0.0, status="failed"))
    return results_dataset(records, {"noise_floor_t": 0.01, "noise_floor_q": 0.001, "noise_floor_normalized": 0.002})


def test_rank_correlation_among_survivors_is_scipys(results):
    stats = headline_statistics(results)
    offline, online = survivor_values()
    s = stats["spearman_offline_vs_online_error_normalized"]
    expected = spearmanr(offline, online)
    assert s["n"] == 9
    assert s["rho"] == pytest.approx(29.0 / 30.0, abs=1e-12)
    assert s["rho"] == pytest.approx(expected.statistic) and s["p_value"] == pytest.approx(expected.pvalue)
    assert stats["spearman_offline_vs_online_error_t"]["rho"] == pytest.approx(29.0 / 30.0)
    # the 95 % bootstrap interval: around rho, at most 1, and wide for 9 emulators
    assert s["ci_low"] < s["rho"] <= s["ci_high"] <= 1.0
    assert 0.3 < s["ci_low"] < 0.95


def test_bootstrap_interval_needs_five_pairs_and_tells_no_correlation_from_one():
    from experiments.report import _spearman
    rng = np.random.default_rng(3)
    assert np.isnan(_spearman(np.arange(4.0), np.arange(4.0))["ci_low"])
    x = rng.normal(size=60)
    strong, none = _spearman(x, x + 0.3 * rng.normal(size=60)), _spearman(x, rng.normal(size=60))
    assert strong["ci_low"] > 0.7 and none["ci_low"] < 0 < none["ci_high"]
    same = _spearman(x, 2.0 * x)
    assert same["ci_low"] == pytest.approx(1.0) and same["ci_high"] == pytest.approx(1.0)


def test_rank_correlation_with_days_survived_is_scipys(results):
    stats = headline_statistics(results)
    ok = results["status"].values == "ok"
    expected = spearmanr(results["offline_mse"].values[ok], results["days_survived"].values[ok])
    s = stats["spearman_offline_vs_days_survived"]
    assert s["n"] == 12
    assert s["rho"] == pytest.approx(expected.statistic) and s["p_value"] == pytest.approx(expected.pvalue)
    assert s["rho"] < 0  # larger offline error, shorter life


def test_counts_optimizers_best_and_worst(results):
    stats = headline_statistics(results)
    assert (stats["n_emulators"], stats["n_finished"], stats["n_failed"], stats["n_crashed"],
            stats["n_survivors"]) == (13, 12, 1, 3, 9)
    sgd = stats["by_optimizer"]["sgd"]  # survivors 2 and 7, crashed 9 and 10
    assert (sgd["n"], sgd["n_crashed"], sgd["fraction_survived"]) == (4, 2, 0.5)
    assert sgd["median_days_survived"] == pytest.approx(np.median([30, 30, 12, 1.5]))
    _, online = survivor_values()
    assert sgd["median_online_error"] == pytest.approx(np.median(online[[2, 7]]))
    assert stats["best"]["emulator"] == 1 and stats["worst"]["emulator"] == 8


def test_results_round_trip_through_netcdf_and_csv(results, tmp_path):
    nc, csv = write_results(results, tmp_path)
    again = read_results(nc)
    assert again["optimizer"].values.tolist() == results["optimizer"].values.tolist()
    np.testing.assert_array_equal(again["days_survived"].values, results["days_survived"].values)
    assert np.isnan(again["online_error_t"].sel(emulator=10)) and again["status"].sel(emulator=12) == "failed"
    lines = csv.read_text().splitlines()
    assert len(lines) == 14 and lines[0].startswith("emulator,depth,width")


def test_survival_censors_the_runs_alive_at_the_end_and_tests_the_optimizers(results):
    frame = survival_frame(results)
    assert len(frame) == 12                                        # the failed task has no life
    alive = frame["duration"] == RUN_DAYS
    assert (frame["event"][alive] == 0).all() and (frame["event"][~alive] == 1).all()
    fits = kaplan_meier(results)
    assert set(fits) == {"all"} | set(OPTIMIZERS)
    # Kaplan-Meier with censoring: 12 runs, crashes at 1.5, 12 and 25 days, 9 alive at 30
    km = fits["all"]
    np.testing.assert_allclose(km.times, [0.0, 1.5, 12.0, 25.0])
    np.testing.assert_allclose(km.survival, [1.0, 11 / 12, 10 / 12, 9 / 12])
    assert (km.lower <= km.survival).all() and (km.survival <= km.upper).all()
    assert km.n == 12 and km.events == 3 and km.end == RUN_DAYS
    test = logrank_by_optimizer(results)
    assert test["df"] == 4 and 0 <= test["p_value"] <= 1 and test["events"] == 3
    table, info = cox_hazards(results)                   # 3 crashes for 10 coefficients: no usable fit
    assert info["events"] == 3 and info["n"] == 12
    assert table.empty or ((table["lower_95"] <= table["hazard_ratio"])
                           & (table["hazard_ratio"] <= table["upper_95"])).all()
    merged = with_survival(results)
    assert merged["cox_hazard_ratio"].dims == ("covariate",) and merged.sizes["emulator"] == 13
    assert "logrank_optimizer_p_value" in merged.attrs and "noise_floor_t" in merged.attrs


def test_report_has_the_numbers_and_the_figures(results, runs, tmp_path):
    path = make_report(results, tmp_path, reference=runs["reference"])
    text = path.read_text()
    expected = spearmanr(*survivor_values())
    s = headline_statistics(results)["spearman_offline_vs_online_error_normalized"]
    assert (f"| {expected.statistic:.3g} | [{s['ci_low']:.3g}, {s['ci_high']:.3g}] | {expected.pvalue:.3g} | 9 |"
            in text)
    assert "| sgd | 4 | 2 | 0.5 |" in text
    assert "| best | 1 | rmsprop |" in text and "| worst | 8 | sgd_momentum |" in text
    assert "Log-rank test of equal survival across the optimizers: chi2" in text
    assert "## Survival analysis (statsmodels)" in text
    for name in ("offline_vs_online", "days_survived", "survival", "by_optimizer", "bias_best", "bias_worst"):
        png = tmp_path / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({name}.png)" in text
    # the worst survivor's run has the larger perturbation: its bias map is not the best's
    assert (tmp_path / "bias_worst.png").read_bytes() != (tmp_path / "bias_best.png").read_bytes()


def test_cli_score_and_report(results, runs, tmp_path, capsys):
    from fkb_cli import main
    assert main(["score", str(runs["bad"]), "--reference", str(runs["reference"]), "--perturbed", str(runs["good"]),
                 "--window-days", "2", "--days", "4", "-o", str(tmp_path / "score.nc")]) == 0
    out = capsys.readouterr().out
    assert "days survived  4" in out and "windows scored 2" in out and "noise floor" in out
    for option, value in (("--days", "-3"), ("--window-days", "0"), ("--days", "nan")):
        assert main(["score", str(runs["bad"]), "--reference", str(runs["reference"]), option, value]) == 1
        assert f"{option} must be a positive number of days" in capsys.readouterr().err
    # a window longer than the completed run: an error, not a NaN
    assert main(["score", str(runs["bad"]), "--reference", str(runs["reference"]), "--window-days", "30"]) == 1
    assert "a completed run of 4 days holds no window of 30 days" in capsys.readouterr().err
    # the window of the runs' coupled.json, as a sweep or fkb couple writes it
    (runs["reference"].parent / "coupled.json").write_text('{"days": 4.0, "window_days": 1.0}')
    try:
        assert main(["score", str(runs["bad"]), "--reference", str(runs["reference"])]) == 0
        assert "windows scored 4 of 1 days" in capsys.readouterr().out
    finally:
        (runs["reference"].parent / "coupled.json").unlink()
    write_results(results, tmp_path / "sweep")
    assert main(["report", str(tmp_path / "sweep"), "--reference", str(runs["reference"])]) == 0
    assert (tmp_path / "sweep" / "report.md").is_file()
    assert main(["report", str(tmp_path / "missing")]) == 1
    assert "fkb report: error: " in capsys.readouterr().err


# ------------------------------------------------------------ conservation
def with_budgets(records, reference=(0.001, -1.4)):
    """The records with budget residuals (an emulator with the layer closes
    its water budget; without it, it leaks) and the layer drawn for every
    even index; and the reference's residuals as the results' attributes."""
    out = []
    for r in records:
        r = {**r, "hyperparameters": {**r["hyperparameters"], "water_conservation": r["index"] % 2 == 0}}
        if r["online"] is not None:
            layer = r["index"] % 2 == 0
            r["online"] = {**r["online"], "water_budget_residual": 0.002 if layer else 0.1 * (1 + r["index"]),
                           "energy_budget_residual": -1.0 - r["index"], "budget_days": r["online"]["days_survived"]}
        out.append(r)
    attrs = {"reference_water_budget_residual": reference[0], "reference_energy_budget_residual": reference[1],
             "reference_budget_days": RUN_DAYS}
    return out, attrs


@pytest.fixture(scope="module")
def budget_records():
    offline, online = survivor_values()
    records = [record(i, OPTIMIZERS[i % 5], float(offline[i]), float(online[i]), RUN_DAYS) for i in range(9)]
    records += [record(9, "sgd", 2.0, 0.2, 12.0), record(10, "sgd", 3.0, None, 1.5),
                record(11, "nesterov", 0.5, 0.08, 25.0), record(12, "adam", None, None, 0.0, status="failed")]
    return with_budgets(records)


def test_budgets_and_the_layer_are_columns_with_units(budget_records, tmp_path):
    records, attrs = budget_records
    ds = results_dataset(records, attrs)
    assert ds.attrs["budget_records"] == 12 and ds.attrs["reference_energy_budget_residual"] == -1.4
    assert ds["water_budget_residual"].attrs["units"] == "mm day-1"
    assert ds["energy_budget_residual"].attrs["units"] == "W m-2" and "long_name" in ds["budget_days"].attrs
    assert ds["water_conservation"].values.tolist() == [1, 0] * 6 + [1]
    nc, csv = write_results(with_survival(ds), tmp_path)
    header = csv.read_text().splitlines()[0].split(",")
    assert {"water_conservation", "water_budget_residual", "energy_budget_residual", "budget_days"} <= set(header)
    again = read_results(nc)
    np.testing.assert_allclose(again["energy_budget_residual"].values[:12], -1.0 - np.arange(12))
    assert np.isfinite(again.attrs["logrank_water_conservation_p_value"])
    # records of before the hyperparameter had no layer: 0, not unknown
    old = results_dataset([{**r, "hyperparameters": {k: v for k, v in r["hyperparameters"].items()
                                                     if k != "water_conservation"}} for r in records])
    assert (old["water_conservation"].values == 0).all()


def test_report_gives_the_residuals_beside_the_reference_and_survival_by_the_layer(budget_records, tmp_path):
    from experiments.report import conservation_statistics

    records, attrs = budget_records
    ds = with_survival(results_dataset(records, attrs))
    stats = conservation_statistics(ds)
    assert stats["recorded"] and stats["reference"]["water_budget_residual"] == 0.001
    assert stats["groups"]["with_layer"]["water"] == {"n": 6, "median": 0.002, "min": 0.002, "max": 0.002}
    leaky = 0.1 * (1 + np.array([1, 3, 5, 7, 9, 11]))
    assert stats["groups"]["without_layer"]["water"]["median"] == pytest.approx(np.median(leaky))
    assert stats["groups"]["all"]["n"] == 12 and stats["groups"]["with_layer"]["survived"] == 5
    assert stats["logrank"]["groups"] == {"0": {"n": 6, "survived": 4}, "1": {"n": 6, "survived": 5}}
    assert "water_conservation" in survival_frame(ds)
    text = make_report(ds, tmp_path).read_text()
    assert "## Conservation: column water and energy budgets" in text
    assert "| reference run | 1 | 0.001 | -1.4 |" in text
    assert "| with the water-conservation layer | 6 | 0.002 [0.002, 0.002] | -6 [-11, -1] |" in text
    assert "Survival with the water-conservation layer: 5 of 6 runs survived, without it 4 of 6; log-rank" in text


def test_results_of_before_the_budgets_report_that_they_are_absent(results, tmp_path):
    text = make_report(results, tmp_path / "a").read_text()      # records without budgets
    assert "**Budget residuals: absent.**" in text and "reference run's budgets are unknown" in text
    assert "Every finished emulator was drawn without the water-conservation layer" in text
    # a results.nc of before this version: no budget columns, no layer, the reference's residuals known
    old = results.drop_vars(["water_budget_residual", "energy_budget_residual", "budget_days", "water_conservation"])
    old.attrs = {k: v for k, v in old.attrs.items() if k != "budget_records"}
    old.attrs["reference_water_budget_residual"], old.attrs["reference_energy_budget_residual"] = 0.001, -1.4
    old.attrs["reference_budget_days"] = 30.0
    text = make_report(with_survival(old), tmp_path / "b").read_text()
    assert "**Budget residuals: absent.**" in text
    assert "the reference run leaves 0.001 mm/day of water and -1.4 W/m2 of energy over its 30 days" in text


def test_results_missing_a_column_the_report_needs_are_refused_in_one_line(results, tmp_path, capsys):
    from fkb_cli import main
    from experiments.report import check_reportable

    broken = results.drop_vars(["optimizer", "days_survived"])
    with pytest.raises(ValueError, match=r"^the results have no column 'days_survived', which the report needs"):
        check_reportable(broken)
    with pytest.raises(ValueError, match="the results have no column"):
        make_report(broken, tmp_path)
    write_results(broken, tmp_path / "old")
    assert main(["report", str(tmp_path / "old")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("fkb report: error: the results have no column") and len(err.strip().splitlines()) == 1
