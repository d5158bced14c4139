"""Both model readers, the Fortran library's (emulators.fkb.load, which also
builds the network) and the Python package's (read_model_file), on the same
mutated files: they accept the same files and refuse the same files, each
refusal one line naming the file, and neither dies, hangs or allocates what
the file does not hold (docs/model-file.md, "Limits").

The mutations go where the readers decide things: header numbers replaced by
extremes (0, negative, 2^22, 2^31, 11 digits, leading zeros, signs), header
lines deleted, repeated, swapped or with a byte flipped, payload bytes
flipped or cut. A mutated file is re-hashed, so that the hash does not
refuse everything before the parsers are reached (and some are left with
their old hash, which both must refuse)."""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pytest

from emulators.fkb import FKBError, load
from emulators.modelfile import (
    InputStatistics,
    LayerSpec,
    ModelFileError,
    ModelSpec,
    Normalization,
    encode_model_file,
    read_model_file,
)

NUMBERS = [b"0", b"-1", b"1", b"2", b"3", b"4194304", b"4194305", b"2147483647", b"2147483648",
           b"99999999999", b"00000000001", b"007", b"0000000002", b"+2", b"1.5", b"1e3"]


def _f32(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.normal(size=shape).astype(np.float32)


def base_specs() -> dict[str, ModelSpec]:
    """Small models that between them have every section and most layer kinds."""
    rng = np.random.default_rng(20)
    dense = lambda i, n_out, n_in, src, act="relu", **extra: LayerSpec(  # noqa: E731
        i, "dense", n_out, [src], {"activation": act, "use_bias": 1, **extra},
        {"kernel": _f32(rng, n_out, n_in), "bias": _f32(rng, n_out)})
    graph = ModelSpec(
        3, 2,
        [dense(1, 4, 3, 0, "leaky_relu", alpha=0.1),
         LayerSpec(2, "batch_normalization", 4, [1], {"epsilon": 0.001, "center": 1, "scale": 1, "momentum": 0.99},
                   {"gamma": _f32(rng, 4), "beta": _f32(rng, 4), "moving_mean": _f32(rng, 4),
                    "moving_variance": np.abs(_f32(rng, 4)) + 0.5}),
         LayerSpec(3, "prelu", 4, [2], {}, {"alpha": _f32(rng, 4)}),
         LayerSpec(4, "add", 4, [1, 3]),
         LayerSpec(5, "concatenate", 8, [4, 2]),
         LayerSpec(6, "layer_normalization", 8, [5], {"epsilon": 0.001, "center": 1, "scale": 1},
                   {"gamma": _f32(rng, 8), "beta": _f32(rng, 8)}),
         dense(7, 2, 8, 6, "linear")],
        name="graph", inputs=[("T", "K"), ("q", "kg kg-1"), ("ps", "Pa")], outputs=[("dT", "K s-1"), ("P", "mm")],
        input_normalization=Normalization(_f32(rng, 3), np.abs(_f32(rng, 3)) + 0.1),
        output_normalization=Normalization(_f32(rng, 2), np.abs(_f32(rng, 2)) + 0.1))
    chain = ModelSpec(
        2, 2,
        [LayerSpec(1, "relu", 2, [0], {"max_value": 6.0, "negative_slope": 0.0, "threshold": 0.0}),
         LayerSpec(2, "dropout", 2, [1], {"variant": "dropout", "rate": 0.25}),
         LayerSpec(3, "normalization", 2, [2], {"invert": 0}, {"mean": _f32(rng, 2), "variance": np.ones(2, np.float32)}),
         LayerSpec(4, "rescaling", 2, [3], {}, {"scale": _f32(rng, 2), "offset": _f32(rng, 2)}),
         LayerSpec(5, "softmax", 2, [4])])
    x = rng.normal(size=(50, 3))
    basis = np.linalg.qr(rng.normal(size=(3, 2)))[0].astype(np.float32)
    stats = dataclass_replace(graph, input_statistics=InputStatistics(
        minimum=x.min(0).astype(np.float32), maximum=x.max(0).astype(np.float32), mean=x.mean(0).astype(np.float32),
        std=x.std(0).astype(np.float32), basis=basis, variance=np.array([1.5, 0.5], np.float32),
        residual_variance=0.25, distance_q999=3.0, samples=50))
    return {"graph": graph, "chain": chain, "statistics": stats}


def dataclass_replace(spec: ModelSpec, **changes) -> ModelSpec:
    import dataclasses
    return dataclasses.replace(spec, **changes)


def rehashed(data: bytes) -> bytes:
    first, _, body = data.split(b"\n", 2)
    return first + b"\nsha256 " + hashlib.sha256(body).hexdigest().encode() + b"\n" + body


def mutations(data: bytes, rng: np.random.Generator, n: int):
    """`n` mutated copies of a model file's bytes."""
    head, _, payload = data.partition(b"end_header\n")
    lines = head.split(b"\n")[:-1]    # lines[0] FKB, lines[1] sha256
    for _ in range(n):
        new = list(lines)
        body = payload
        kind = int(rng.integers(8))
        i = int(rng.integers(2, len(new)))
        if kind <= 2:    # a number of a header line replaced
            spans = [m.span() for m in re.finditer(rb"(?<![A-Za-z_])\d+(?:\.\d+)?", new[i])]
            if spans:
                a, b = spans[int(rng.integers(len(spans)))]
                new[i] = new[i][:a] + NUMBERS[int(rng.integers(len(NUMBERS)))] + new[i][b:]
        elif kind == 3:
            del new[i]
        elif kind == 4:
            new.insert(i, new[i])
        elif kind == 5 and i + 1 < len(new):
            new[i], new[i + 1] = new[i + 1], new[i]
        elif kind == 6 and new[i]:
            line = bytearray(new[i])
            line[int(rng.integers(len(line)))] ^= 1 << int(rng.integers(7))
            new[i] = bytes(line)
        else:            # the payload: a byte flipped or the end cut
            cut = bytearray(body)
            if rng.integers(2) and cut:
                cut[int(rng.integers(len(cut)))] ^= 1 << int(rng.integers(8))
            else:
                del cut[int(rng.integers(len(cut))):]
            body = bytes(cut)
        mutated = b"\n".join(new) + b"\n" + b"end_header\n" + body
        yield mutated if rng.random() < 0.9 else data.split(b"\n", 2)[0] + b"\n" + lines[1] + b"\n" + \
            mutated.split(b"\n", 2)[2]


def outcome(reader, error, path: Path) -> str | None:
    """None if `reader` accepts the file, else its message (one line naming the file)."""
    try:
        reader(path)
    except error as exc:
        message = str(exc)
        assert "\n" not in message and message.startswith(f"{path}: "), message
        return message
    return None


def trained_file(folder: Path, precision: int) -> bytes:
    """A model file with a training section (format version 2), written by
    the Fortran trainer: the graph above after two Adam steps with a
    schedule."""
    from emulators.modelfile import write_model_file
    write_model_file(dataclass_replace(base_specs()["graph"], input_statistics=None), folder / "graph.fkb")
    net = load(folder / "graph.fkb")
    net.compile("adam", precision=precision, schedule={"kind": "exponential", "initial_learning_rate": 0.01,
                                                       "decay_steps": 3, "decay_rate": 0.5, "staircase": False})
    rng = np.random.default_rng(precision)
    dtype = np.float32 if precision == 32 else np.float64
    for _ in range(2):
        net.train_step(rng.normal(size=(8, 3)).astype(dtype), rng.normal(size=(8, 2)).astype(dtype))
    return net.save(folder / "trained.fkb").read_bytes()


@pytest.mark.parametrize("name", ["graph", "chain", "statistics", "trained32", "trained64"])
def test_both_readers_accept_and_refuse_the_same_mutated_files(name, tmp_path):
    if name.startswith("trained"):
        data = trained_file(tmp_path, int(name[-2:]))
    else:
        data = encode_model_file(base_specs()[name])
    rng = np.random.default_rng(sum(map(ord, name)))
    counts = {"accepted": 0, "refused": 0}
    disagreements = []
    for k, mutated in enumerate(mutations(data, rng, 600)):
        path = tmp_path / f"{name}_{k}.fkb"
        path.write_bytes(rehashed(mutated) if k % 10 else mutated)
        python, fortran = outcome(read_model_file, ModelFileError, path), outcome(load, FKBError, path)
        if (python is None) != (fortran is None):
            disagreements.append(f"{path.name}: python {python or 'accepts'}; fortran {fortran or 'accepts'}")
        counts["accepted" if python is None else "refused"] += 1
        if not disagreements:
            path.unlink()
    assert not disagreements, "\n".join(disagreements[:5])
    assert counts["refused"] > 50 and counts["accepted"] > 0, counts
