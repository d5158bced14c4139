"""The training inputs' distribution in the model file and the runtime's
out-of-distribution guard (emulators/input_statistics.py,
fortran/src/fkb_guard.inc, docs/model-file.md "Input statistics")."""
import dataclasses

import numpy as np
import pytest

from emulators.input_statistics import guard_scores, input_statistics
from emulators.modelfile import (InputStatistics, LayerSpec, ModelFileError, ModelSpec, encode_model_file,
                                 read_model_file, write_model_file)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

N_IN, N_OUT = 12, 3


def _training_inputs(n=20000, seed=0):
    rng = np.random.default_rng(seed)
    mixing = rng.standard_normal((N_IN, N_IN)) * np.r_[np.ones(4), 0.05 * np.ones(N_IN - 4)]
    return (rng.standard_normal((n, N_IN)) @ mixing.T) * np.linspace(1, 50, N_IN) + np.linspace(-3, 280, N_IN)


def _spec(stats=None):
    rng = np.random.default_rng(1)
    layers = [LayerSpec(1, "dense", 8, [0], {"activation": "relu", "use_bias": 1},
                        {"kernel": rng.standard_normal((8, N_IN)).astype(np.float32) * 0.01,
                         "bias": np.zeros(8, np.float32)}),
              LayerSpec(2, "dense", N_OUT, [1], {"activation": "linear", "use_bias": 1},
                        {"kernel": rng.standard_normal((N_OUT, 8)).astype(np.float32),
                         "bias": np.zeros(N_OUT, np.float32)})]
    return ModelSpec(N_IN, N_OUT, layers, name="guarded", input_statistics=stats)


@pytest.fixture(scope="module")
def stats():
    x = _training_inputs()
    return input_statistics(lambda: (x[i:i + 4096] for i in range(0, len(x), 4096)))


@pytest.fixture(scope="module")
def model_file(stats, tmp_path_factory):
    path = tmp_path_factory.mktemp("guard") / "guarded.fkb"
    write_model_file(_spec(stats), path)
    return path


def test_statistics_describe_the_training_inputs(stats):
    x = _training_inputs()
    np.testing.assert_allclose(stats.mean, x.mean(axis=0), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(stats.std, x.std(axis=0), rtol=1e-9)
    np.testing.assert_array_equal(stats.minimum, x.min(axis=0))
    np.testing.assert_array_equal(stats.maximum, x.max(axis=0))
    assert stats.samples == len(x) and 4 <= stats.rank <= 12
    np.testing.assert_allclose(stats.basis.T @ stats.basis, np.eye(stats.rank), atol=1e-9)
    scores = guard_scores(stats, x)
    assert np.mean(scores.distance ** 2) == pytest.approx(1.0, rel=0.02)   # ~1 in distribution
    assert np.mean(scores.distance > stats.distance_q999) == pytest.approx(0.001, abs=5e-4)
    assert scores.n_outside.max() == 0 and not scores.flagged.any()


def test_a_column_off_the_training_manifold_is_flagged(stats):
    x = _training_inputs(n=10, seed=5)
    # within every input's range, but against the correlation: the small directions are blown up
    off = x.copy()
    off[:, 4:] = stats.mean[4:] + (x[:, 4:] - stats.mean[4:]) * 0 + stats.std[4:] * 2.5 * np.sign(
        np.random.default_rng(3).standard_normal((10, N_IN - 4)))
    assert guard_scores(stats, off).n_outside.max() == 0
    assert guard_scores(stats, off).flagged.all()
    far = x + 10 * (stats.maximum - stats.minimum)
    assert (guard_scores(stats, far).n_outside == N_IN).all()


def test_the_section_round_trips_and_needs_version_3(stats, model_file):
    data = model_file.read_bytes()
    assert data.startswith(b"FKB 3\n") and b"\ninput_statistics samples=20000 rank=" in data
    back = read_model_file(model_file).input_statistics
    for name in ("minimum", "maximum", "mean", "std", "basis", "variance"):
        np.testing.assert_array_equal(getattr(back, name), getattr(stats, name).astype(np.float32))
    assert (back.residual_variance, back.distance_q999, back.samples) == \
        (stats.residual_variance, stats.distance_q999, stats.samples)
    assert encode_model_file(_spec()).startswith(b"FKB 1\n")        # no statistics: version 1 as before


@pytest.mark.parametrize("change, message", [
    (lambda s: dataclasses.replace(s, std=-s.std), "std is not positive for input 1"),
    (lambda s: dataclasses.replace(s, minimum=s.maximum + 1), "minimum is above maximum for input 1"),
    (lambda s: dataclasses.replace(s, basis=s.basis[:, :1]), "basis must be an array of shape"),
    (lambda s: dataclasses.replace(s, distance_q999=float("nan")), "distance_q999 nan is not a positive number"),
    (lambda s: dataclasses.replace(s, samples=0), "samples 0 is not a positive integer"),
])
def test_bad_statistics_are_refused_naming_the_problem(stats, change, message, tmp_path):
    with pytest.raises(ModelFileError, match=message):
        write_model_file(_spec(change(stats)), tmp_path / "bad.fkb")
    assert not (tmp_path / "bad.fkb").exists()


def _rehash(data: bytes) -> bytes:
    import hashlib
    magic, _, rest = data.partition(b"\n")
    _, _, body = rest.partition(b"\n")
    return magic + b"\nsha256 " + hashlib.sha256(body).hexdigest().encode() + b"\n" + body


@pytest.mark.parametrize("edit, message", [
    (lambda d: d.replace(b"FKB 3\n", b"FKB 2\n", 1), "needs format version 3"),
    (lambda d: d.replace(b" rank=", b" rank=-", 1), "rank"),
    (lambda d: d.replace(b"param std ", b"param sd ", 1), "input_statistics"),
])
def test_both_readers_refuse_a_damaged_section(model_file, edit, message, tmp_path):
    pytest.importorskip("emulators._fkb_runtime")
    from emulators.fkb import FKBError, load

    bad = tmp_path / "bad.fkb"
    bad.write_bytes(_rehash(edit(model_file.read_bytes())))
    with pytest.raises(ModelFileError, match=message):
        read_model_file(bad)
    with pytest.raises(FKBError, match=message):
        load(bad)


@pytest.mark.parametrize("precision", [32, 64])
def test_the_runtime_scores_as_the_reference(stats, model_file, precision):
    pytest.importorskip("emulators._fkb_runtime")
    from emulators.fkb import load, set_threads, threads

    rng = np.random.default_rng(7)
    x = _training_inputs(n=3000, seed=9)
    x[::3] *= rng.uniform(0.5, 1.5, size=(1000, N_IN))               # a third off the training distribution
    x = x.astype(np.float32 if precision == 32 else np.float64)
    stored = read_model_file(model_file).input_statistics
    reference = guard_scores(stored, x, margin=0.05, distance_factor=1.5)
    net = load(model_file)
    before = threads()
    try:
        set_threads(1)
        one = net.guard(x, margin=0.05, distance_factor=1.5)
        set_threads(2)
        two = net.guard(x, margin=0.05, distance_factor=1.5)
    finally:
        set_threads(before)
    for name in ("max_abs_z", "distance", "n_outside", "flagged"):
        np.testing.assert_array_equal(getattr(one, name), getattr(two, name))       # any thread count
    rtol = 2e-5 if precision == 32 else 1e-10
    np.testing.assert_allclose(one.max_abs_z, reference.max_abs_z, rtol=rtol)
    np.testing.assert_allclose(one.distance, reference.distance, rtol=rtol * 10)
    np.testing.assert_array_equal(one.n_outside, reference.n_outside)
    close = np.abs(reference.distance - 1.5 * stored.distance_q999) < 1e-4 * reference.distance
    np.testing.assert_array_equal(one.flagged[~close], reference.flagged[~close])
    assert 0 < one.flagged.sum() < len(x)


def test_saving_keeps_the_statistics_and_a_model_without_them_has_no_guard(model_file, tmp_path):
    pytest.importorskip("emulators._fkb_runtime")
    from emulators.fkb import FKBError, load

    saved = load(model_file).save(tmp_path / "saved.fkb")          # the Fortran writer
    original, back = read_model_file(model_file).input_statistics, read_model_file(saved).input_statistics
    for name in ("minimum", "basis", "variance", "residual_variance", "distance_q999", "samples"):
        np.testing.assert_array_equal(getattr(back, name), getattr(original, name))
    write_model_file(_spec(), tmp_path / "plain.fkb")
    with pytest.raises(FKBError, match="no input statistics"):
        load(tmp_path / "plain.fkb").guard(np.zeros((2, N_IN), np.float32))


def test_keras_round_trip_keeps_the_statistics(model_file, tmp_path):
    from emulators.convert import convert

    convert(model_file, tmp_path / "m.keras")
    convert(tmp_path / "m.keras", tmp_path / "back.fkb")
    assert read_model_file(tmp_path / "back.fkb").input_statistics.samples == 20000


def test_cli_info_and_predict_guard(model_file, tmp_path, capsys):
    pytest.importorskip("emulators._fkb_runtime")
    from fkb_cli import main

    assert main(["info", str(model_file)]) == 0
    out = capsys.readouterr().out
    assert "input statistics: 20000 training samples" in out and "(training minimum, mean, maximum, std)" in out
    x = _training_inputs(n=50, seed=11).astype(np.float32)
    x[:5] *= 3
    np.save(tmp_path / "x.npy", x)
    assert main(["predict", str(model_file), "-i", str(tmp_path / "x.npy"), "-o", str(tmp_path / "y.npy"),
                 "--guard", str(tmp_path / "g.npz")]) == 0
    out = capsys.readouterr().out
    scores = np.load(tmp_path / "g.npz")
    assert scores["flagged"][:5].all() and scores["flagged"].shape == (50,)
    assert f"{int(scores['flagged'].sum())} of 50 samples flagged" in out
    write_model_file(_spec(), tmp_path / "plain.fkb")
    assert main(["predict", str(tmp_path / "plain.fkb"), "-i", str(tmp_path / "x.npy"), "-o",
                 str(tmp_path / "y2.npy"), "--guard", str(tmp_path / "g2.npz")]) == 1
    err = capsys.readouterr().err
    assert "no input statistics" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "y2.npy").exists() and not (tmp_path / "g2.npz").exists()


def test_converting_without_statistics_says_so(model_file, tmp_path, capsys):
    from fkb_cli import main

    write_model_file(_spec(), tmp_path / "plain.fkb")
    assert main(["convert", str(tmp_path / "plain.fkb"), str(tmp_path / "plain.keras")]) == 0
    assert main(["convert", str(tmp_path / "plain.keras"), str(tmp_path / "back.fkb")]) == 0
    assert "carries no statistics of its training inputs" in capsys.readouterr().out
    assert main(["convert", str(model_file), str(tmp_path / "m.keras")]) == 0
    assert main(["convert", str(tmp_path / "m.keras"), str(tmp_path / "m.fkb")]) == 0
    assert "no statistics" not in capsys.readouterr().out
