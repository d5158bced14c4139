"""Replicates of a case study (``fkb casestudy --replicates N``): one
reference stage, N sweeps with consecutive sweep seeds, and the verdict on
the paper's claims, claim by claim."""
from __future__ import annotations

import math

import xarray as xr

from fkb_cli import main
from experiments.replicates import claim_verdicts


def replicate(rho_online, interval_online, rho_days, interval_days, logrank_p):
    return {"spearman_offline_vs_online_error_normalized":
            {"rho": rho_online, "ci_low": interval_online[0], "ci_high": interval_online[1], "n": 20},
            "spearman_offline_vs_days_survived":
            {"rho": rho_days, "ci_low": interval_days[0], "ci_high": interval_days[1], "n": 40},
            "logrank": {"p_value": logrank_p}}


def verdicts(*replicates):
    return {v["claim"]: v["verdict"] for v in claim_verdicts(replicates)}


def test_a_claim_is_reproduced_only_when_every_interval_excludes_zero_on_its_side():
    strong = replicate(0.6, (0.3, 0.8), -0.5, (-0.7, -0.2), 0.001)
    assert set(verdicts(strong, strong, strong).values()) == {"reproduced"}
    one_weak = replicate(0.3, (-0.1, 0.6), -0.1, (-0.4, 0.2), 0.2)
    assert set(verdicts(strong, one_weak, strong).values()) == {"undetermined"}
    opposite = replicate(-0.6, (-0.8, -0.3), 0.5, (0.2, 0.7), 0.001)
    v = verdicts(opposite, opposite)
    assert v["offline skill predicts online error"] == "contradicted"
    assert v["offline skill predicts stability"] == "contradicted"
    assert v["the optimizer matters for stability"] == "reproduced"
    no_interval = replicate(0.9, (math.nan, math.nan), -0.9, (math.nan, math.nan), math.nan)
    assert set(verdicts(strong, no_interval).values()) == {"undetermined"}


def test_replicates_share_the_reference_and_give_a_verdict(tiny_casestudy_reference, capsys):
    preset, out = tiny_casestudy_reference["preset"], tiny_casestudy_reference["out"].parent / "replicated"
    import shutil
    shutil.copytree(tiny_casestudy_reference["out"], out)        # the reference stage, made once
    status = main(["casestudy", "--preset", str(preset), "--out", str(out), "--no-progress", "--replicates", "2"])
    stdout = capsys.readouterr().out
    assert status == 0
    assert "reference data 0 s, reference runs 0 s" in stdout
    assert "sweep: 3 emulators (seed 4)" in stdout and "sweep: 3 emulators (seed 5)" in stdout
    second = out / "replicates" / "seed_5"
    first_draws = xr.open_dataset(out / "results.nc")["learning_rate"].values
    second_draws = xr.open_dataset(second / "results.nc")["learning_rate"].values
    assert (first_draws != second_draws).all()                    # other draws, same reference runs
    assert (second / "report.md").is_file() and not (second / "reference").exists()
    text = (out / "replicates.md").read_text()
    assert "| seed 4 | seed 5 |" in text
    for claim in ("offline skill predicts online error", "offline skill predicts stability",
                  "the optimizer matters for stability"):
        assert claim in text
    assert "**undetermined**" in text                             # 3 emulators decide nothing
    assert f"replicates: {out / 'replicates.md'}" in stdout
    assert main(["casestudy", "--preset", str(preset), "--out", str(out), "--replicates", "0"]) == 1
