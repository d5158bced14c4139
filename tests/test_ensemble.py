"""Ensembles in the Fortran runtime: ``emulators.fkb.load_ensemble`` and
``fkb predict`` with several models. Mean and standard deviation against
NumPy over the single networks, members, seeded input noise in the documented
units, folder loading, mismatch errors, and bitwise independence of the
number of OpenMP threads."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from fkb_cli import main
from emulators.fkb import FKBError, load, load_ensemble
from emulators.modelfile import LayerSpec, ModelSpec, Normalization, write_model_file

N_IN, N_HIDDEN, N_OUT, N_MEMBERS = 5, 8, 3, 4
INPUT_SCALE = np.array([2.0, 0.5, 10.0, 1.0, 4.0], dtype=np.float32)


def member_spec(seed: int, output_units: str = "K s-1", n_in: int = N_IN) -> ModelSpec:
    """normalize -> dense(8, tanh) -> dense(3) -> de-normalize, weights from `seed`."""
    rng = np.random.default_rng(seed)
    f32 = lambda *shape: rng.normal(0.0, 0.7, shape).astype(np.float32)  # noqa: E731
    return ModelSpec(
        n_inputs=n_in, n_outputs=N_OUT, name=f"member{seed}",
        inputs=[(f"x{i}", "K") for i in range(n_in)],
        outputs=[("heating", output_units), ("moistening", "kg kg-1 s-1"), ("precip", "mm day-1")],
        input_normalization=Normalization(np.linspace(-1, 1, n_in).astype(np.float32),
                                          np.resize(INPUT_SCALE, n_in)),
        output_normalization=Normalization(np.array([1.0, 0.0, 2.0], np.float32),
                                           np.array([3.0, 0.1, 5.0], np.float32)),
        layers=[LayerSpec(1, "dense", N_HIDDEN, [0], {"activation": "tanh", "use_bias": 1},
                          {"kernel": f32(N_HIDDEN, n_in), "bias": f32(N_HIDDEN)}),
                LayerSpec(2, "dense", N_OUT, [1], {"activation": "linear", "use_bias": 1},
                          {"kernel": f32(N_OUT, N_HIDDEN), "bias": f32(N_OUT)})])


def identity_spec() -> ModelSpec:
    """Outputs the normalized inputs: (x - offset) / scale."""
    return ModelSpec(
        n_inputs=N_IN, n_outputs=N_IN, inputs=[(f"x{i}", "K") for i in range(N_IN)],
        input_normalization=Normalization(np.full(N_IN, 3.0, np.float32), INPUT_SCALE),
        layers=[LayerSpec(1, "dense", N_IN, [0], {"activation": "linear", "use_bias": 0},
                          {"kernel": np.eye(N_IN, dtype=np.float32)})])


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Four members written out of name order, and a file that is not a model."""
    path = tmp_path_factory.mktemp("ensemble")
    for k in reversed(range(N_MEMBERS)):
        write_model_file(member_spec(k), path / f"m{k}.fkb")
    (path / "README.txt").write_text("not a model\n")
    return path


@pytest.fixture(scope="module")
def paths(folder) -> list[Path]:
    return [folder / f"m{k}.fkb" for k in range(N_MEMBERS)]


def inputs(n: int = 300, dtype=np.float32) -> np.ndarray:
    rng = np.random.default_rng(1)
    return (rng.normal(0.0, 1.0, (n, N_IN)) * INPUT_SCALE).astype(dtype)


@pytest.mark.parametrize("precision,dtype,rtol", [(32, np.float32, 2e-6), (64, np.float64, 1e-13)])
def test_mean_and_std_are_numpy_statistics_of_the_single_networks(paths, precision, dtype, rtol):
    x = inputs(dtype=dtype)
    singles = np.stack([load(p).predict(x) for p in paths])
    with load_ensemble(paths, precision=precision) as ens:
        assert (ens.n_members, ens.n_inputs, ens.n_outputs) == (N_MEMBERS, N_IN, N_OUT)
        mean, std, members = ens.predict(x, members=True)
        mean_only, std_only = ens.predict(x)
    assert mean.dtype == dtype and mean.shape == (len(x), N_OUT) and members.shape == singles.shape
    np.testing.assert_array_equal(members, singles)  # each member is its network, bit for bit
    np.testing.assert_allclose(mean, singles.astype(np.float64).mean(axis=0), rtol=rtol, atol=1e-6)
    np.testing.assert_allclose(std, singles.astype(np.float64).std(axis=0, ddof=0), rtol=10 * rtol,
                               atol=1e-6)
    assert (std > 0).all()
    np.testing.assert_array_equal(mean_only, mean)
    np.testing.assert_array_equal(std_only, std)


def test_one_sample_and_input_conversion(paths):
    x = inputs(4)
    with load_ensemble(paths) as ens:
        mean, std, members = ens.predict(x[2], members=True)
        batch_mean, _, batch_members = ens.predict(x.astype(np.float64), members=True)  # cast to 32 bit
    assert mean.shape == (N_OUT,) and std.shape == (N_OUT,) and members.shape == (N_MEMBERS, N_OUT)
    np.testing.assert_array_equal(mean, batch_mean[2])
    np.testing.assert_array_equal(members, batch_members[:, 2])


def test_folder_loads_its_fkb_files_in_name_order(folder, paths):
    x = inputs()
    with load_ensemble(folder) as by_folder, load_ensemble(paths) as by_list:
        assert by_folder.paths == paths
        a, b = by_folder.predict(x, members=True), by_list.predict(x, members=True)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)


def test_noise_is_seeded_and_in_normalized_input_units(tmp_path):
    for k in range(N_MEMBERS):
        write_model_file(identity_spec(), tmp_path / f"id{k}.fkb")
    x = inputs(2000, np.float64)
    sigma = 0.2
    with load_ensemble(tmp_path, precision=64) as ens:
        clean = ens.predict(x, members=True)[2]
        a = ens.predict(x, members=True, noise_std=sigma, seed=5)[2]
        b = ens.predict(x, members=True, noise_std=sigma, seed=5)[2]
        c = ens.predict(x, members=True, noise_std=sigma, seed=6)[2]
        np.testing.assert_array_equal(ens.predict(x, members=True, noise_std=0.0, seed=5)[2], clean)
    np.testing.assert_array_equal(a, b)
    assert np.mean(a != c) > 0.99
    z = (a - clean) / sigma  # the identity network returns (x + noise * scale - offset) / scale
    assert abs(z.mean()) < 0.02 and abs(z.std() - 1.0) < 0.02
    assert abs(np.corrcoef(z[0].ravel(), z[1].ravel())[0, 1]) < 0.05  # members get their own noise
    assert abs(np.corrcoef(z[0, :, 0], z[0, :, 1])[0, 1]) < 0.08     # and so do features


def test_mismatched_members_are_refused_naming_member_and_field(tmp_path, paths):
    write_model_file(member_spec(9, output_units="K day-1"), tmp_path / "units.fkb")
    write_model_file(member_spec(9, n_in=N_IN + 1), tmp_path / "wide.fkb")
    with pytest.raises(FKBError, match=r"member 3 \(.*units\.fkb\).*output 1 \(heating\) units") as info:
        load_ensemble([paths[0], paths[1], tmp_path / "units.fkb"])
    assert info.value.status == 6
    with pytest.raises(FKBError, match=r"member 2 .*wide\.fkb.*n_inputs is 6, not 5"):
        load_ensemble([paths[0], tmp_path / "wide.fkb"])
    with pytest.raises(FKBError, match="member 2: .*nothing.fkb"):
        load_ensemble([paths[0], tmp_path / "nothing.fkb"])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FKBError, match=r"no \*\.fkb model files"):
        load_ensemble(empty)
    with pytest.raises(FKBError, match="expected"):
        load_ensemble(paths).predict(np.zeros((3, N_IN + 1), np.float32))
    with pytest.raises(FKBError, match="column 2 feature 4 is NaN"):
        x = np.zeros((3, N_IN), np.float32)
        x[1, 3] = np.nan
        load_ensemble(paths).predict(x)
    with pytest.raises(FKBError, match="noise_std"):
        load_ensemble(paths).predict(np.zeros((3, N_IN)), noise_std=-1.0)


def run_cli(argv, capsys):
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def test_fkb_predict_with_several_models_writes_mean_std_and_members(folder, paths, tmp_path, capsys):
    x = inputs()
    np.save(tmp_path / "x.npy", x)
    status, out, _ = run_cli(["predict", *paths, "-i", tmp_path / "x.npy", "-o", tmp_path / "mean.npy",
                              "--std", tmp_path / "std.npy", "--members", tmp_path / "members.npy",
                              "--noise-std", "0.1", "--seed", "3"], capsys)
    assert status == 0 and "mean of 4 members" in out
    with load_ensemble(paths) as ens:
        mean, std, members = ens.predict(x, members=True, noise_std=0.1, seed=3)
    np.testing.assert_array_equal(np.load(tmp_path / "mean.npy"), mean)
    np.testing.assert_array_equal(np.load(tmp_path / "std.npy"), std)
    np.testing.assert_array_equal(np.load(tmp_path / "members.npy"), members)

    status, _, _ = run_cli(["predict", folder, "-i", tmp_path / "x.npy", "-o", tmp_path / "folder.npy"], capsys)
    assert status == 0
    np.testing.assert_array_equal(np.load(tmp_path / "folder.npy"), ens_mean_without_noise(paths, x))

    status, _, _ = run_cli(["predict", paths[0], "-i", tmp_path / "x.npy", "-o", tmp_path / "one.npy"], capsys)
    assert status == 0  # one model: unchanged, the network's prediction
    np.testing.assert_array_equal(np.load(tmp_path / "one.npy"), load(paths[0]).predict(x))


def ens_mean_without_noise(paths, x):
    with load_ensemble(paths) as ens:
        return ens.predict(x)[0]


def test_fkb_predict_refuses_mismatched_models_in_one_line(paths, tmp_path, capsys):
    write_model_file(member_spec(9, output_units="K day-1"), tmp_path / "units.fkb")
    np.save(tmp_path / "x.npy", inputs(5))
    status, _, err = run_cli(["predict", paths[0], tmp_path / "units.fkb", "-i", tmp_path / "x.npy",
                              "-o", tmp_path / "y.npy"], capsys)
    assert status == 1
    assert err.strip().count("\n") == 0
    assert err.startswith("fkb predict: error: member 2") and "units" in err
    assert not (tmp_path / "y.npy").exists()
    status, _, err = run_cli(["predict", *paths, "-i", tmp_path / "x.npy", "-o", tmp_path / "y.npy",
                              "--noise-std", "-1"], capsys)
    assert status == 1 and "--noise-std" in err


THREADS_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    from emulators.fkb import load_ensemble
    folder, x_file, out = sys.argv[1:]
    x = np.load(x_file)
    with load_ensemble(folder) as ens:
        mean, std, members = ens.predict(x, members=True, noise_std=0.3, seed=17)
        clean = ens.predict(x)
    np.savez(out, mean=mean, std=std, members=members, clean_mean=clean[0], clean_std=clean[1])
""")


def test_results_are_bitwise_independent_of_the_thread_count(folder, tmp_path):
    x = inputs(1500)  # more columns than one noise block
    np.save(tmp_path / "x.npy", x)
    results = []
    for threads in (1, 2):
        env = dict(os.environ, OMP_NUM_THREADS=str(threads))
        out = tmp_path / f"threads{threads}.npz"
        done = subprocess.run([sys.executable, "-c", THREADS_SCRIPT, str(folder), str(tmp_path / "x.npy"),
                               str(out)], env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        results.append(np.load(out))
    for name in ("mean", "std", "members", "clean_mean", "clean_std"):
        assert results[0][name].tobytes() == results[1][name].tobytes(), name
