"""The Python handle on the Fortran runtime (emulators.fkb): predictions agree
with Keras, errors are clear, and original FKB files reproduce the original
library's outputs."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from emulators.fkb import FKBError, dense_kernel, load
from emulators.modelfile import LayerSpec, ModelSpec, evaluate, read_model_file, write_model_file

SHARED = Path(__file__).resolve().parent / "data" / "fkb-compat"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_original_fkb_sample_reproduces_original_outputs(dtype):
    x = np.load(SHARED / "simple_model_with_weights.x.npy").astype(dtype)
    y_fkb = np.load(SHARED / "simple_model_with_weights.y_fkb.npy")
    net = load(SHARED / "simple_model_with_weights.txt")
    assert (net.n_inputs, net.n_outputs) == (5, 2)
    y = net.predict(x)
    assert y.dtype == dtype
    assert np.max(np.abs(y - y_fkb)) / np.max(np.abs(y_fkb)) <= 1e-5


def test_single_sample_agrees_with_the_batch_row_and_repeats_bitwise():
    """One column goes through GEMV, a batch through GEMM: the BLAS may sum in
    another order (float32 rounding, docs/fortran-api.md), but the same call
    gives the same bits every time."""
    x = np.load(SHARED / "simple_model_with_weights.x.npy")
    net = load(SHARED / "simple_model_with_weights.txt")
    batch = net.predict(x)
    scale = np.abs(batch).max()
    for i in range(3):
        single = net.predict(x[i])
        np.testing.assert_allclose(single, batch[i], rtol=0, atol=4 * np.finfo(np.float32).eps * scale)
        np.testing.assert_array_equal(net.predict(x[i]), single)
    np.testing.assert_array_equal(net.predict(x), batch)


def test_missing_file_is_reported_with_its_name(tmp_path):
    with pytest.raises(FKBError, match="missing.fkb") as info:
        load(tmp_path / "missing.fkb")
    assert info.value.status == 1


def test_wrong_input_width_is_refused():
    net = load(SHARED / "simple_model_with_weights.txt")
    with pytest.raises(FKBError, match="expected"):
        net.predict(np.zeros((4, 6), np.float32))


def test_nan_input_is_reported_not_propagated():
    net = load(SHARED / "simple_model_with_weights.txt")
    x = np.ones((3, 5), np.float32)
    x[1, 2] = np.nan
    with pytest.raises(FKBError) as info:
        net.predict(x)
    assert info.value.status == 7


def test_one_float32_sample_takes_the_lean_call_with_the_same_checks():
    net = load(SHARED / "simple_model_with_weights.txt")
    x = np.load(SHARED / "simple_model_with_weights.x.npy").astype(np.float32)
    y = net.predict(x[1])
    assert y.shape == (2,) and y.dtype == np.float32
    row = net.predict(x[1:2])                                      # (1, n_inputs): the same call
    assert row.shape == (1, 2) and row.dtype == np.float32
    np.testing.assert_array_equal(y, row[0])
    bad = x[1].copy()
    bad[2] = np.inf
    with pytest.raises(FKBError, match="input column 1 feature 3 is [+]Inf") as info:
        net.predict(bad)
    assert info.value.status == 7
    with pytest.raises(FKBError, match="expected"):
        net.predict(x[1][:4])


def test_corrupted_model_file_is_refused(tmp_path):
    spec = read_model_file(SHARED / "simple_model_with_weights.txt")
    path = tmp_path / "m.fkb"
    write_model_file(spec, path)
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x40
    bad = tmp_path / "bad.fkb"
    bad.write_bytes(bytes(data))
    with pytest.raises(FKBError, match="bad.fkb") as info:
        load(bad)
    assert info.value.status == 4
    truncated = tmp_path / "truncated.fkb"
    truncated.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(FKBError, match="truncated.fkb"):
        load(truncated)


def test_model_file_and_original_text_give_identical_fortran_results(tmp_path):
    x = np.load(SHARED / "simple_model_with_weights.x.npy")
    spec = read_model_file(SHARED / "simple_model_with_weights.txt")
    path = tmp_path / "m.fkb"
    write_model_file(spec, path)
    np.testing.assert_array_equal(load(path).predict(x), load(SHARED / "simple_model_with_weights.txt").predict(x))


BLOCKS_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    from emulators.fkb import FKBError, load
    net = load(sys.argv[1])
    x = np.load(sys.argv[2])
    out = {"y": net.predict(x), "narrow": net.predict(x[:100]), "one": net.predict(x[7])}
    # predict chooses its threads by measurement over the calls (probing one
    # thread and all of them): the bits must not follow the choice
    repeats = [net.predict(x[:600]) for _ in range(60)]
    out["repeats_agree"] = np.array(all(r.tobytes() == out["y"][:600].tobytes() for r in repeats))
    # one column: its layers' rows shared among the threads, or on one
    ones = [net.predict(x[7]) for _ in range(120)]
    out["repeats_agree"] &= np.array(all(r.tobytes() == out["one"].tobytes() for r in ones))
    bad = x.copy()
    bad[4100, 3] = np.nan     # seventh block
    bad[2500, 7] = np.inf     # fifth block: the one to report
    try:
        net.predict(bad)
    except FKBError as error:
        out["error"] = np.array(str(error))
    np.savez(sys.argv[3], **out)
""")


def test_large_batches_run_in_blocks_on_threads_with_identical_bits(tmp_path):
    """A large batch runs its blocks of columns on OpenMP threads, a narrow
    one its GEMMs on BLAS threads, one column its layers' rows on the
    threads: the results equal the NumPy reference to float32 rounding,
    have the same bits for 1, 2 and 3 threads and from call to call
    (whatever threads predict chose), and the first bad column is the one
    reported."""
    rng = np.random.default_rng(5)
    dense = lambda i, n_out, n_in, act: LayerSpec(  # noqa: E731
        i, "dense", n_out, [i - 1], {"activation": act, "use_bias": 1},
        {"kernel": rng.normal(0, 1 / np.sqrt(n_in), (n_out, n_in)).astype(np.float32),
         "bias": rng.normal(0, 0.1, n_out).astype(np.float32)})
    spec = ModelSpec(n_inputs=20, n_outputs=7,
                     layers=[dense(1, 200, 20, "relu"), dense(2, 200, 200, "tanh"),
                             dense(3, 7, 200, "linear")])
    write_model_file(spec, tmp_path / "m.fkb")
    x = rng.normal(size=(5000, 20)).astype(np.float32)   # 8 blocks of 625 columns
    np.save(tmp_path / "x.npy", x)
    results = []
    for threads in (1, 2, 3):
        out = tmp_path / f"threads{threads}.npz"
        env = dict(os.environ, OMP_NUM_THREADS=str(threads))
        done = subprocess.run([sys.executable, "-c", BLOCKS_SCRIPT, str(tmp_path / "m.fkb"),
                               str(tmp_path / "x.npy"), str(out)],
                              env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        results.append(np.load(out))
    reference = evaluate(spec, x.astype(np.float64))
    scale = np.abs(reference).max()
    assert np.abs(results[0]["y"] - reference).max() <= 1e-5 * scale
    assert np.abs(results[0]["narrow"] - reference[:100]).max() <= 1e-5 * scale
    assert np.abs(results[0]["one"] - reference[7]).max() <= 1e-5 * scale
    for other in results[1:]:
        for name in ("y", "narrow", "one"):
            assert other[name].tobytes() == results[0][name].tobytes(), name
    for result in results:
        assert "input column 2501 feature 8 is +Inf" in str(result["error"])
        assert bool(result["repeats_agree"])


KERNEL_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    from emulators.fkb import dense_kernel, load
    x = np.load(sys.argv[2])
    np.savez(sys.argv[3], y=load(sys.argv[1]).predict(x), kernel=np.array(dense_kernel()))
""")


@pytest.mark.skipif(dense_kernel() != "avx512", reason="this machine runs dense layers on the BLAS")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dense_kernel_agrees_with_the_blas_and_gives_a_column_the_same_bits_anywhere(tmp_path, dtype):
    """The AVX-512 kernels on packed weights (widths that are not multiples of
    a panel, a batch that is not a multiple of a tile, every epilogue: none,
    relu, leaky relu, an activation after it, no bias) agree with the BLAS
    path (FKB_DENSE_KERNEL=blas) and the NumPy reference to rounding, and a
    column has the same bits alone, in a batch and at another position."""
    rng = np.random.default_rng(11)

    def dense(i, n_out, n_in, act, use_bias=True, **attrs):
        params = {"kernel": rng.normal(0, 1 / np.sqrt(n_in), (n_out, n_in)).astype(np.float32)}
        if use_bias:
            params["bias"] = rng.normal(0, 0.1, n_out).astype(np.float32)
        return LayerSpec(i, "dense", n_out, [i - 1], {"activation": act, "use_bias": int(use_bias), **attrs},
                         params)

    spec = ModelSpec(n_inputs=13, n_outputs=7,
                     layers=[dense(1, 45, 13, "relu"), dense(2, 33, 45, "leaky_relu", alpha=0.2),
                             dense(3, 70, 33, "tanh", use_bias=False), dense(4, 16, 70, "linear"),
                             dense(5, 7, 16, "softmax")])
    write_model_file(spec, tmp_path / "m.fkb")
    x = rng.normal(size=(37, 13)).astype(dtype)
    np.save(tmp_path / "x.npy", x)
    net = load(tmp_path / "m.fkb")
    y = net.predict(x)
    for j in (0, 12, 36):
        assert net.predict(x[j]).tobytes() == y[j].tobytes()
    assert net.predict(x[5:30]).tobytes() == y[5:30].tobytes()
    out = tmp_path / "blas.npz"
    done = subprocess.run([sys.executable, "-c", KERNEL_SCRIPT, str(tmp_path / "m.fkb"), str(tmp_path / "x.npy"),
                           str(out)], env=dict(os.environ, FKB_DENSE_KERNEL="blas"), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    blas = np.load(out)
    assert str(blas["kernel"]) == "blas"
    tolerance = 10 * np.finfo(dtype).eps
    np.testing.assert_allclose(y, blas["y"], rtol=0, atol=tolerance)
    np.testing.assert_allclose(y, evaluate(spec, x.astype(np.float64)), rtol=0, atol=tolerance)
