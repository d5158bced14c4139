"""Designed sweeps (coupler/design.py): the grid, its indices and seeds, and
the refusals of a bad [design] table, one line each."""
import dataclasses
import json
import tomllib

import pytest

from coupler.design import Design
from coupler.sweep import SearchSpace, SweepConfig, claim_sweep_folder
from emulators.architectures import OPTIMIZERS

FIXED_SPACE = """
[space]
depth = [4, 4]
width = [64, 64]
leaky_relu_slope = [0.1, 0.1]
dropout = [0.0, 0.0]
batch_normalization = [false]
batch_size = [512]
"""

DESIGNED = """
[sweep]
seed = 7

[design]
optimizer = ["adam", "rmsprop", "sgd", "sgd_momentum", "nesterov"]
learning_rate = [1e-4, 1e-3, 1e-2, 1e-1]
repeats = 3
""" + FIXED_SPACE + """
[training]
epochs = 60
patience = 5
"""

LRS = [1e-4, 1e-3, 1e-2, 1e-1]


def config(text: str = DESIGNED) -> SweepConfig:
    return SweepConfig.from_dict(tomllib.loads(text))


def test_the_grid_is_every_cell_repeat_by_repeat_with_everything_else_fixed():
    c = config()
    assert c.n_emulators == 60 and c.design.n_cells == 20
    assert c.design.describe() == "5 optimizer x 4 learning_rate = 20 cells x 3 repeats = 60 emulators"
    hps = c.hyperparameters()
    # emulator i: repeat i // 20 of cell i % 20; the first factor varies slowest
    for i, hp in enumerate(hps):
        repeat, cell = divmod(i, 20)
        assert (hp.optimizer, hp.learning_rate) == (OPTIMIZERS[cell // 4], LRS[cell % 4])
        assert c.design.cell(i).to_dict() == {"cell": cell, "repeat": repeat,
                                              "factors": {"optimizer": hp.optimizer, "learning_rate": hp.learning_rate}}
    # everything but the factors and the seed is one value for all 60
    rest = {json.dumps({k: v for k, v in dataclasses.asdict(hp).items() if k not in ("optimizer", "learning_rate",
                                                                                     "seed")}) for hp in hps}
    assert len(rest) == 1
    first = hps[0]
    assert (first.depth, first.width, first.leaky_relu_slope, first.dropout, first.batch_normalization,
            first.batch_size, first.activation, first.epochs, first.patience) == (4, 64, 0.1, 0.0, False, 512,
                                                                                  "leaky_relu", 60, 5)
    # a repeat's seed is shared by its cells (common random numbers); repeats differ
    seeds = [[hp.seed for hp in hps[r * 20:(r + 1) * 20]] for r in range(3)]
    assert all(len(set(s)) == 1 for s in seeds) and len({s[0] for s in seeds}) == 3
    assert seeds[0][0] == Design.repeat_seed(7, 0)


def test_indices_are_deterministic_and_more_repeats_extend_the_design(tmp_path):
    three = config().hyperparameters()
    assert config().hyperparameters() == three                       # same table, same emulators
    five = config(DESIGNED.replace("repeats = 3", "repeats = 5"))
    assert five.n_emulators == 100 and five.hyperparameters()[:60] == three
    tasks = config().tasks(tmp_path / "out", reference=tmp_path / "ref.nc")
    assert [t.index for t in tasks] == list(range(60))
    assert tasks[27].design == {"cell": 7, "repeat": 1, "factors": {"optimizer": "rmsprop", "learning_rate": 0.1}}
    assert tasks[27].work_dir.endswith("emulator_0027")
    # the sweep folder takes more repeats (an extension), not another factor level
    claim_sweep_folder(config(), tmp_path / "sweep")
    claim_sweep_folder(five, tmp_path / "sweep")
    with pytest.raises(ValueError, match="holds a sweep of another configuration"):
        claim_sweep_folder(config(DESIGNED.replace("1e-1]", "3e-1]")), tmp_path / "sweep")


def test_random_sweeps_are_unchanged():
    c = SweepConfig.from_dict({"sweep": {"n_emulators": 5, "seed": 3}, "space": {"depth": [2, 5]}})
    assert c.design is None
    assert c.hyperparameters() == SearchSpace(depth=(2, 5)).sample(5, 3)
    assert all(t.design is None for t in c.tasks("/tmp/out"))


def test_n_emulators_is_computed_or_must_match():
    assert config(DESIGNED.replace("seed = 7", "seed = 7\nn_emulators = 60")).n_emulators == 60
    with pytest.raises(ValueError) as info:
        config(DESIGNED.replace("seed = 7", "seed = 7\nn_emulators = 24"))
    assert str(info.value) == ("[sweep] n_emulators = 24 does not match the design's 5 optimizer x 4 learning_rate "
                               "= 20 cells x 3 repeats = 60 emulators (leave it out: a design computes it)")
    with pytest.raises(ValueError, match="does not match the design"):
        dataclasses.replace(config(), n_emulators=61)                 # fkb sweep --n-emulators 61


@pytest.mark.parametrize("old, new, message", [
    ("optimizer = [", "optimiser = [", "[design] unknown factor 'optimiser' (known: depth, width,"),
    ('learning_rate = [1e-4, 1e-3, 1e-2, 1e-1]', "learning_rate = []",
     "[design] factor 'learning_rate' has no levels (give a non-empty list)"),
    ("repeats = 3", "repeats = 0", "[design] repeats must be an integer >= 1, got 0"),
    ("repeats = 3", "repeats = 1.5", "[design] repeats must be an integer >= 1, got 1.5"),
    ('"nesterov"]', '"lbfgs"]', "[design] factor 'optimizer': hyperparameter optimizer='lbfgs' is not one of"),
    ("1e-1]", "1e-2]", "[design] factor 'learning_rate' lists the level 0.01 twice"),
    ('learning_rate = [1e-4, 1e-3, 1e-2, 1e-1]', "learning_rate = 1e-3",
     "[design] factor 'learning_rate' must be a list of levels, got 0.001"),
    ("repeats = 3", "repeats = 3\nseed = [1, 2]", "[design] seed cannot be a factor"),
    ("depth = [4, 4]", "depth = [4, 6]", "[design] varies only its factors, but [space] depth = [4, 6] is not fixed: "
                                         "fix it in [space] (e.g. depth = [4, 4]) or make it a factor"),
    ("batch_size = [512]", "", "[space] batch_size = [256, 512, 1024, 2048] (the default) is not fixed"),
    ("batch_size = [512]", 'batch_size = [512]\noptimizer = ["adam"]',
     "[design] factor 'optimizer' is also set in [space]"),
    ("patience = 5", "patience = 5\nlearning_rate = 0.01", "[design] factor 'learning_rate' is also set in [training]"),
])
def test_a_bad_design_is_refused_in_one_line_naming_it(old, new, message):
    assert old in DESIGNED
    with pytest.raises(ValueError) as info:
        config(DESIGNED.replace(old, new, 1))
    assert message in str(info.value) and "\n" not in str(info.value)


def test_a_design_without_factors_is_refused():
    with pytest.raises(ValueError, match=r"\[design\] names no factor"):
        Design.from_dict({"repeats": 2})


def test_a_casestudy_preset_with_a_design_and_the_shipped_one():
    from experiments.casestudy import load_casestudy

    study = load_casestudy("optimizers")
    sweep = study.sweep("training.nc", "checkpoint.bin")
    assert sweep.n_emulators == 60 and sweep.design.names == ("optimizer", "learning_rate")
    assert set(sweep.design.factors[0][1]) == set(OPTIMIZERS) and sweep.design.repeats == 3
    quick = load_casestudy("quick")
    assert study.reference == quick.reference                           # the quick preset's world
    assert study.sweep_tables["coupled"] == quick.sweep_tables["coupled"]
    assert quick.sweep("training.nc", "checkpoint.bin").design is None
    hp = sweep.hyperparameters()[0]
    assert (hp.depth, hp.width, hp.dropout, hp.batch_normalization, hp.batch_size) == (4, 64, 0.0, False, 512)
    with pytest.raises(ValueError, match=r"\[design\] unknown factor 'optimiser'"):
        load_casestudy({**study.to_dict(), "design": {"optimiser": ["adam"]}})
