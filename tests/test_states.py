"""Shipped spun-up states (experiments/states.py, `fkb gcm spin-up`): every
shipped state matches the configuration its recipe runs, a mismatch is
refused naming the option and the command that regenerates it, and the
recipe regenerates a state bit for bit."""
from __future__ import annotations

import filecmp

import pytest

from fkb_cli import main
from experiments.casestudy import load_casestudy
from experiments.states import STATE_DIR, check_state, recipes, regenerate, state_path
from gcm_toy import Model


def test_every_recipe_has_its_state_and_the_state_fits_the_code():
    known = recipes()
    assert {"aquaplanet-t15", "aquaplanet-t21"} <= set(known)
    for name, recipe in known.items():
        # fails when a default of the code changed under a shipped state: regenerate it
        path = check_state(name, recipe.preset, recipe.overrides)
        assert path == STATE_DIR / f"{name}.bin" and path.stat().st_size < 2_000_000
        model = Model.from_checkpoint(path)
        assert model.time_days == pytest.approx(recipe.days)
        assert model.check() is None


def test_a_state_of_another_configuration_is_refused_with_the_fix():
    with pytest.raises(ValueError) as info:
        check_state("aquaplanet-t15", "aquaplanet-t15", {"diffusion_time": 8640.0})
    message = str(info.value)
    assert "diffusion_time" in message and "fkb gcm spin-up aquaplanet-t15" in message
    with pytest.raises(ValueError, match="truncation"):
        check_state("aquaplanet-t15", "aquaplanet")            # the state of another resolution
    with pytest.raises(FileNotFoundError, match="fkb gcm spin-up nowhere"):
        check_state("nowhere", "aquaplanet")
    with pytest.raises(ValueError, match="diffusion_time"):    # a case study is refused before any work
        load_casestudy({"reference": {"preset": "aquaplanet-t15", "initial_state": "aquaplanet-t15",
                                      "overrides": {"diffusion_time": 8640.0}}})


def test_the_recipe_regenerates_a_state_bit_for_bit(tmp_path, capsys):
    assert main(["gcm", "spin-up", "aquaplanet-t15", "--days", "1", "--out", str(tmp_path / "a")]) == 0
    assert "wrote" in capsys.readouterr().out
    path = regenerate("aquaplanet-t15", days=1.0, out_dir=tmp_path / "b", log=lambda line: None)
    assert filecmp.cmp(tmp_path / "a" / "aquaplanet-t15.bin", path, shallow=False)
    direct = Model("aquaplanet-t15")
    direct.advance(32)                                          # 1 day of 45-minute steps
    direct.save_checkpoint(tmp_path / "direct.bin")
    assert filecmp.cmp(tmp_path / "direct.bin", path, shallow=False)
    assert check_state(path, "aquaplanet-t15") == path
    assert state_path("aquaplanet-t15") == STATE_DIR / "aquaplanet-t15.bin"


def test_spin_up_lists_the_recipes_and_refuses_an_unknown_one(capsys):
    assert main(["gcm", "spin-up"]) == 0
    assert "aquaplanet-t21" in capsys.readouterr().out
    assert main(["gcm", "spin-up", "nope"]) == 1
    err = capsys.readouterr().err
    assert "unknown spun-up state 'nope'" in err and len(err.strip().splitlines()) == 1
