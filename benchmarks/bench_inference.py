"""Inference speed and load time of the Fortran runtime, against ONNX Runtime and Keras.

On the SP-CAM-sized network of the FKB paper, 94 -> 5 x 256 (LeakyReLU 0.3)
-> 65, float32, one run prints:

* batched calls (64, 2048, 8192 columns): the Fortran runtime through its
  Python handle (one f2py call per batch), ONNX Runtime on a graph built from
  the same weights (Gemm + LeakyRelu), and Keras ``predict_on_batch``; with
  the runtime's GFLOP/s beside the machine's SGEMM rate (the network's largest
  product, 256 x 256 times 256 x 2048, through the same BLAS);
* one column per call through Python: the Fortran runtime against ONNX
  Runtime's one-row calls;
* the per-column time of a pure Fortran driver (benchmarks/fortran) beside
  the original FKB's one-column ``output``: about 41 us per column on this
  machine (the issue's measurement; the original library is not built here);
* the same for the toy GCM's 24 -> 5 x 128 -> 25 emulator, and the load time
  of a model file with over a million parameters.

    .venv/bin/python benchmarks/bench_inference.py [--threads N] [--rounds R]
    .venv/bin/python benchmarks/bench_inference.py --pairs 10 [--busy-neighbour]

Every engine runs with the same number of threads (default: all cores), each
in a process of its own (ONNX Runtime's and TensorFlow's thread pools spin
after their calls and would slow whatever runs next in the same process):
the Fortran runtime on that many OpenMP threads with one BLAS thread each
(how it is meant to run), the SGEMM reference on that many OpenBLAS threads.
The engines stay loaded in their processes, and each measurement is taken of
the three in turn, for several rounds (``--rounds``, default 5); every time
is the best of its rounds.

``--pairs N`` asks how reliable the lead is rather than how large it is at
best: N rounds, each starting every engine afresh in a process of its own,
in turn (the first engine alternating), timing one column per call and
batches of 256, 2048 and 8192 columns; each round gives a pair of times per
engine and width, and the table shows the ratios' minimum, median and
maximum over the pairs, how many pairs the runtime won, and its GFLOP/s
beside the machine's multiply-add peak (``fma_peak.c`` times the threads).
``--busy-neighbour`` runs the same with another process spinning on one
core.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import busy_neighbour, fma_peak  # noqa: E402


def best_time(fn, repeat: int = 7, min_seconds: float = 0.2) -> float:
    """Best of `repeat` timings, each averaging enough calls to last min_seconds."""
    fn()
    t0 = time.perf_counter()
    fn()
    once = max(time.perf_counter() - t0, 1e-7)
    number = max(1, int(min_seconds / once / repeat))
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - t0) / number)
    return best


ORIGINAL_FKB_US_PER_COLUMN = 41.0   # the original FKB's one-column `output`, measured for the issue


def mlp(n_in: int, widths: list[int], n_out: int, slope: float = 0.3, seed: int = 0):
    """A Keras MLP with LeakyReLU(slope) hidden layers and a linear output."""
    import keras
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((n_in,))
    h = inputs
    for w in widths:
        h = keras.layers.Dense(w)(h)
        h = keras.layers.LeakyReLU(negative_slope=slope)(h)
    outputs = keras.layers.Dense(n_out)(h)
    return keras.Model(inputs, outputs)


def dense_weights(model) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(k.astype(np.float32), b.astype(np.float32))
            for k, b in (l.get_weights() for l in model.layers if l.get_weights())]


def onnx_model_bytes(model, slope: float) -> bytes:
    """An ONNX graph of the same MLP (Gemm + LeakyRelu per layer), serialized."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    layers = dense_weights(model)
    nodes, inits, h = [], [], "x"
    for i, (k, b) in enumerate(layers):
        inits += [numpy_helper.from_array(k, f"W{i}"), numpy_helper.from_array(b, f"b{i}")]
        out = "y" if i == len(layers) - 1 else f"z{i}"
        nodes.append(helper.make_node("Gemm", [h, f"W{i}", f"b{i}"], [out]))
        if i < len(layers) - 1:
            nodes.append(helper.make_node("LeakyRelu", [out], [f"h{i}"], alpha=slope))
            out = f"h{i}"
        h = out
    graph = helper.make_graph(
        nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, layers[0][0].shape[0]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, layers[-1][0].shape[1]])], inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 8
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def engine_predictor(engine: str, files: dict[str, Path], threads: int):
    """`predict(x)` of one engine on the benchmark network, in this process only:
    the Fortran runtime (emulators.fkb), ONNX Runtime, or Keras predict_on_batch."""
    if engine == "fortran":
        from emulators import fkb
        fkb.set_threads(threads)
        return fkb.load(files["fkb"]).predict
    if engine == "onnx":
        import onnxruntime as ort
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(files["onnx"].read_bytes(), options, providers=["CPUExecutionProvider"])
        return lambda x: session.run(None, {"x": x})[0]
    import keras
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    return keras.saving.load_model(files["keras"]).predict_on_batch


def serve_engine(engine: str, files: dict[str, Path], n_inputs: int, columns: list[int], threads: int) -> None:
    """The child process of one engine: load it, print its outputs on the first
    batch (for the check), then time each request read from stdin ("2048": a
    batch of that many columns; "single": one column per call, a (1, n_inputs)
    array) and print the best time [s], one JSON line each."""
    import json
    import sys
    predict = engine_predictor(engine, files, threads)
    rng = np.random.default_rng(0)
    inputs = {str(n): rng.standard_normal((n, n_inputs)).astype(np.float32) for n in columns}
    inputs["single"] = np.random.default_rng(3).standard_normal((1, n_inputs)).astype(np.float32)
    print(json.dumps({"check": np.asarray(predict(inputs[str(columns[0])])).tolist()}), flush=True)
    for line in sys.stdin:
        x = inputs[line.strip()]
        print(json.dumps({"time": best_time(lambda: predict(x), repeat=3, min_seconds=0.1)}), flush=True)


class EngineProcess:
    """One engine in a process of its own (`serve_engine`), timing on request."""

    def __init__(self, engine: str, files: dict[str, Path], n_inputs: int, columns: list[int], threads: int):
        import json
        import sys
        self.engine = engine
        self.log = files["fkb"].parent / f"{engine}.stderr"
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS="1")
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(
                [sys.executable, __file__, "--child", engine, "--threads", str(threads),
                 "--n-inputs", str(n_inputs), "--columns", ",".join(map(str, columns)),
                 *[f"--{kind}={path}" for kind, path in files.items()]],
                env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True)
        self.check = json.loads(self._reply())["check"]

    def _reply(self) -> str:
        line = self.process.stdout.readline()
        if not line:
            self.process.wait()
            raise SystemExit(f"bench_inference: the {self.engine} process failed:\n"
                             f"{self.log.read_text()[-3000:]}")
        return line

    def time(self, key: str) -> float:
        import json
        self.process.stdin.write(key + "\n")
        self.process.stdin.flush()
        return json.loads(self._reply())["time"]

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait()


def sgemm_rate(n_columns: int = 2048, width: int = 256) -> float:
    """GFLOP/s of width x width times width x n_columns float32 products through the runtime's BLAS."""
    import ctypes
    from emulators.blas import preload
    lib = preload()
    a = np.asfortranarray(np.random.default_rng(1).random((width, width), dtype=np.float32))
    b = np.asfortranarray(np.random.default_rng(2).random((width, n_columns), dtype=np.float32))
    c = np.asfortranarray(np.zeros((width, n_columns), dtype=np.float32))
    if lib is None:     # system BLAS: NumPy's product is the closest stand-in
        return 2.0 * width * width * n_columns / best_time(lambda: a @ b) / 1e9
    ci, cf, ptr = ctypes.c_int, ctypes.c_float, ctypes.c_void_p
    args = [ctypes.byref(ctypes.c_char(b"N")), ctypes.byref(ctypes.c_char(b"N")),
            ctypes.byref(ci(width)), ctypes.byref(ci(n_columns)), ctypes.byref(ci(width)),
            ctypes.byref(cf(1.0)), ptr(a.ctypes.data), ctypes.byref(ci(width)),
            ptr(b.ctypes.data), ctypes.byref(ci(width)), ctypes.byref(cf(0.0)),
            ptr(c.ctypes.data), ctypes.byref(ci(width))]
    t = best_time(lambda: lib.scipy_sgemm_(*args))
    np.testing.assert_allclose(c, a @ b, rtol=1e-4)
    return 2.0 * width * width * n_columns / t / 1e9


def timed_rounds(files: dict[str, Path], n_inputs: int, columns: list[int], threads: int,
                 rounds: int) -> dict[str, dict]:
    """Every engine's timings, each engine in a process of its own: in every
    round each measurement (a batch width, then one column per call) is taken
    of the three engines one after the other, and every time is the best of
    its rounds, so that a change in the machine's speed (this VM's varies by
    up to 2x within minutes) reaches all engines alike. A pause after each
    measurement lets the engine's thread pool stop spinning before the next."""
    engines = {}
    try:
        for engine in ("fortran", "onnx", "keras"):
            engines[engine] = EngineProcess(engine, files, n_inputs, columns, threads)
        keys = [str(n) for n in columns] + ["single"]
        best = {engine: dict.fromkeys(keys, np.inf) for engine in engines}
        for _ in range(rounds):
            for key in keys:
                for engine, process in engines.items():
                    best[engine][key] = min(best[engine][key], process.time(key))
                    time.sleep(0.05)
    finally:
        for process in engines.values():
            process.close()
    return {engine: {"batch": {str(n): best[engine][str(n)] for n in columns}, "single": best[engine]["single"],
                     "check": engines[engine].check} for engine in engines}


def bench_network(label: str, model, slope: float, tmp: Path, name: str, columns: list[int],
                  threads: int, rounds: int) -> Path:
    """The table of one network: each engine timed in its own process. Returns the model file."""
    files = write_engine_files(model, slope, tmp, name)
    n_inputs = model.inputs[0].shape[-1]
    times = timed_rounds(files, n_inputs, columns, threads, rounds)
    y = np.asarray(times["fortran"]["check"])
    for engine in ("onnx", "keras"):
        np.testing.assert_allclose(y, np.asarray(times[engine]["check"]), rtol=1e-4, atol=1e-4 * np.abs(y).max())
    flops_per_col = 2 * sum(k.size for k, _ in dense_weights(model))
    print(f"\n{label}: {model.count_params():,} parameters, {flops_per_col:,} flop per column")
    print(f"{'columns':>8} | {'Fortran (ms)':>12} {'GFLOP/s':>8} {'columns/s':>10} | {'ONNX RT (ms)':>12} | "
          f"{'Keras (ms)':>10} | {'ORT/Fortran':>11} {'Keras/Fortran':>13}")
    for n in columns:
        t_f, t_o, t_k = (times[e]["batch"][str(n)] for e in ("fortran", "onnx", "keras"))
        print(f"{n:>8} | {1e3 * t_f:>12.3f} {flops_per_col * n / t_f / 1e9:>8.1f} {n / t_f:>10,.0f} | "
              f"{1e3 * t_o:>12.3f} | {1e3 * t_k:>10.3f} | {t_o / t_f:>11.2f} {t_k / t_f:>13.2f}")
    t_f, t_o = times["fortran"]["single"], times["onnx"]["single"]
    print(f"  one column per call through Python: Fortran {1e6 * t_f:.1f} us, ONNX Runtime {1e6 * t_o:.1f} us "
          f"(ORT/Fortran {t_o / t_f:.2f}; target >= 1.5)")
    return files["fkb"]


def build_fortran_bench(tmp: Path) -> Path:
    """Build the library with CMake (on the runtime's BLAS) and the pure-Fortran timing program."""
    from emulators.blas import preload
    root = Path(__file__).resolve().parents[1]
    build = tmp / "fortran-build"
    blas = ["-DFKB_BLAS=system"]
    link = ["-lopenblas"]
    if preload() is not None:
        import scipy_openblas32
        libdir = scipy_openblas32.get_lib_dir()
        blas = ["-DFKB_BLAS=scipy-openblas", f"-DFKB_SCIPY_OPENBLAS_DIR={libdir}"]
        link = [f"-L{libdir}", "-lscipy_openblas", f"-Wl,-rpath,{libdir}"]
    subprocess.run(["cmake", "-S", str(root / "fortran"), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release",
                    "-DFKB_BUILD_TESTS=OFF", "-DFKB_BUILD_EXAMPLE=OFF", *blas], check=True, capture_output=True)
    subprocess.run(["cmake", "--build", str(build), "-j2"], check=True, capture_output=True)
    exe = tmp / "bench_predict"
    subprocess.run(["gfortran", "-O3", "-fopenmp", "-I", str(build / "modules"),
                    str(root / "benchmarks" / "fortran" / "bench_predict.f90"),
                    str(build / "libfkb.a"), *link, "-o", str(exe)], check=True)
    return exe


def bench_fortran_only(exe: Path, path: Path, threads: int, original_fkb: bool) -> None:
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS=str(threads))
    out = subprocess.run([str(exe), str(path), "2048"], check=True, capture_output=True, text=True,
                         env=env).stdout
    times = {k: float(v) for k, v in (line.split() for line in out.splitlines())}
    reference = (f"   (original FKB `output`: {ORIGINAL_FKB_US_PER_COLUMN:.0f} us/column, "
                 f"{ORIGINAL_FKB_US_PER_COLUMN / times['single']:.1f}x slower)" if original_fkb else "")
    print(f"  pure Fortran driver: one-column call {times['single']:.1f} us/column{reference}; "
          f"batched (2048) {times['batch']:.2f} us/column")


def bench_load(model, path: Path) -> None:
    from emulators.convert import keras_to_spec
    from emulators.fkb import load
    from emulators.modelfile import write_model_file
    write_model_file(keras_to_spec(model), path)
    size = path.stat().st_size
    t = best_time(lambda: load(path).close(), repeat=5, min_seconds=0.5)
    print(f"\nload of a {model.count_params():,}-parameter model file ({size / 1e6:.1f} MB): "
          f"{1e3 * t:.1f} ms (Fortran reader, SHA-256 verified; target: well under 1 s)")


ENGINES = ("fortran", "onnx", "keras")
PAIRED_COLUMNS = [256, 2048, 8192]


def paired_times(files: dict[str, Path], n_inputs: int, columns: list[int], threads: int,
                 pairs: int) -> dict[str, dict[str, list[float]]]:
    """times[key][engine]: one time per round (key: a batch width, or
    "single"); in every round each engine is started afresh in a process of
    its own and timed on every key, the engines one after the other."""
    keys = [str(n) for n in columns] + ["single"]
    times = {key: {engine: [] for engine in ENGINES} for key in keys}
    for round_ in range(pairs):
        order = ENGINES if round_ % 2 == 0 else ENGINES[1:] + ENGINES[:1]
        for engine in order:
            process = EngineProcess(engine, files, n_inputs, columns, threads)
            try:
                for key in keys:
                    times[key][engine].append(process.time(key))
            finally:
                process.close()
            time.sleep(0.2)
    return times


def _spread(values) -> str:
    values = np.asarray(values)
    return f"{values.min():.2f} / {np.median(values):.2f} / {values.max():.2f}"


def bench_pairs(label: str, model, slope: float, tmp: Path, name: str, threads: int, pairs: int,
                peak: float | None) -> None:
    """The paired table of one network (see the module's docstring)."""
    files = write_engine_files(model, slope, tmp, name)
    times = paired_times(files, model.inputs[0].shape[-1], PAIRED_COLUMNS, threads, pairs)
    flops_per_col = 2 * sum(k.size for k, _ in dense_weights(model))
    peak_text = f"{peak * threads:.0f} GFLOP/s peak on {threads} cores" if peak else "peak unknown"
    print(f"\n{label}: {pairs} pairs, every engine started afresh each round; ratio = other engine's time / "
          f"Fortran's (> 1: Fortran faster), min / median / max; {peak_text}")
    print(f"{'columns':>8} | {'Fortran GFLOP/s min/median/max':>30} {'% peak':>7} | {'ORT/Fortran':>18} "
          f"{'won':>6} | {'Keras/Fortran':>18} {'won':>6}")
    for key in [str(n) for n in PAIRED_COLUMNS] + ["single"]:
        fortran = np.asarray(times[key]["fortran"])
        n = 1 if key == "single" else int(key)
        gflops = flops_per_col * n / fortran / 1e9
        share = f"{100 * np.median(gflops) / (peak * threads):>6.0f}%" if peak else "      -"
        cells = []
        for other in ("onnx", "keras"):
            ratio = np.asarray(times[key][other]) / fortran
            cells.append(f"{_spread(ratio):>18} {int((ratio >= 1.0).sum()):>3}/{pairs:<2}")
        shown = "1 (call)" if key == "single" else key
        print(f"{shown:>8} | {_spread(gflops):>30} {share} | {cells[0]} | {cells[1]}")


def write_engine_files(model, slope: float, tmp: Path, name: str) -> dict[str, Path]:
    """The network as a model file, an ONNX graph and a .keras file."""
    from emulators.convert import keras_to_spec
    from emulators.modelfile import write_model_file

    files = {"fkb": tmp / f"{name}.fkb", "onnx": tmp / f"{name}.onnx", "keras": tmp / f"{name}.keras"}
    write_model_file(keras_to_spec(model), files["fkb"])
    files["onnx"].write_bytes(onnx_model_bytes(model, slope))
    model.save(files["keras"])
    return files


def main_pairs(args: argparse.Namespace) -> None:
    peak = fma_peak()
    neighbour = busy_neighbour() if args.busy_neighbour else None
    try:
        if neighbour is not None:
            print(f"with a busy neighbour: another process spinning on core {os.cpu_count() - 1}")
        with tempfile.TemporaryDirectory() as tmp:
            bench_pairs("FKB-paper emulator 94 -> 5 x 256 (LeakyReLU 0.3) -> 65", mlp(94, [256] * 5, 65, slope=0.3),
                        0.3, Path(tmp), "paper", args.threads, args.pairs, peak)
    finally:
        if neighbour is not None:
            neighbour.kill()
            neighbour.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="threads of every engine")
    parser.add_argument("--rounds", type=int, default=5,
                        help="rounds of every measurement on all engines in turn; each time is the best of its rounds")
    parser.add_argument("--child", choices=["fortran", "onnx", "keras"], help=argparse.SUPPRESS)
    parser.add_argument("--n-inputs", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--columns", help=argparse.SUPPRESS)
    parser.add_argument("--pairs", type=int, help="paired mode: this many rounds of fresh engine processes, "
                                                  "ratios' min/median/max (see above)")
    parser.add_argument("--busy-neighbour", action="store_true",
                        help="paired mode with another process spinning on one core")
    for kind in ("fkb", "onnx", "keras"):
        parser.add_argument(f"--{kind}", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    threads = args.threads
    if args.child:
        files = {"fkb": args.fkb, "onnx": args.onnx, "keras": args.keras}
        serve_engine(args.child, files, args.n_inputs, [int(c) for c in args.columns.split(",")], threads)
        return
    if args.busy_neighbour and args.pairs is None:
        parser.error("--busy-neighbour belongs to the paired mode (--pairs N)")
    if args.pairs is not None:
        if args.pairs < 1:
            parser.error(f"--pairs must be at least 1, not {args.pairs}")
        main_pairs(args)
        return
    from emulators import blas
    blas.set_threads(threads)
    print(f"machine SGEMM (256 x 256 times 256 x 2048, float32, {threads} BLAS threads): "
          f"{sgemm_rate():.0f} GFLOP/s")
    blas.set_threads(1)
    from emulators.fkb import dense_kernel
    print(f"every engine in a process of its own with {threads} threads (the Fortran runtime: OpenMP, one BLAS "
          f"thread each), best of {args.rounds} rounds of each measurement on all engines in turn; runtime dense "
          f"layers: {'AVX-512 kernels' if dense_kernel() == 'avx512' else 'BLAS'}; runtime BLAS: "
          f"{blas.info().rsplit(',', 1)[0]}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        exe = build_fortran_bench(tmp)
        paper = mlp(94, [256] * 5, 65, slope=0.3)
        path = bench_network("FKB-paper emulator 94 -> 5 x 256 (LeakyReLU 0.3) -> 65", paper, 0.3, tmp, "paper",
                             [64, 2048, 8192], threads, args.rounds)
        bench_fortran_only(exe, path, threads, original_fkb=True)
        gcm = mlp(24, [128] * 5, 25, slope=0.3)
        path = bench_network("GCM emulator 24 -> 5 x 128 (LeakyReLU 0.3) -> 25", gcm, 0.3, tmp, "gcm", [2048],
                             threads, args.rounds)
        bench_fortran_only(exe, path, threads, original_fkb=False)
        bench_load(mlp(94, [1000, 1000], 65), tmp / "big.fkb")


if __name__ == "__main__":
    main()
