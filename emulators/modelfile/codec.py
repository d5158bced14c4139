"""The model file, versions 1-3 (docs/model-file.md): an ASCII header, then
every weight as little-endian float32, protected by a SHA-256 hash. Written
(always the lowest version that holds a spec) and read; the reader also
accepts the original FKB text format (:mod:`.fkb_text`)."""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np

from emulators.atomic_files import replacing
from emulators.modelfile.fkb_text import _parse_fkb_text
from emulators.modelfile.spec import (
    AttributeValue,
    FORMAT_VERSION,
    InputStatistics,
    LayerSpec,
    MAX_MODEL_FILE_BYTES,
    ModelFileError,
    ModelSpec,
    Normalization,
    PathLike,
    TrainingState,
    _ATTRIBUTES,
    _CUSTOM_KINDS,
    _INT_RE,
    _TOKEN_RE,
    _unknown_kind,
)
from emulators.modelfile.tokens import _format_attribute, _header_int, _parse_attribute, _positive_int
from emulators.modelfile.validation import _GENERATOR_MAX, _STATISTICS_VECTORS, validate_spec

# The Fortran runtime is imported inside the functions that use it, so that importing this module does
# not load it (start-up time).


# --------------------------------------------------------------------------
# Writing


def _as_float32(value: np.ndarray, what: str) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype == np.float32:
        return array
    if not np.issubdtype(array.dtype, np.floating) and not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{what} has dtype {array.dtype}, not a real type")
    converted = array.astype(np.float32)
    with np.errstate(invalid="ignore"):
        exact = np.array_equal(converted.astype(array.dtype), array, equal_nan=True)
    if not exact:
        raise ValueError(f"{what} has dtype {array.dtype} and values that float32 cannot hold exactly")
    return converted


def _param_line(name: str, shape: tuple[int, ...]) -> str:
    return "param " + name + "".join(f" {d}" for d in shape)


def encode_model_file(spec: ModelSpec) -> bytes:
    """The bytes of ``spec`` as a version-1 model file.

    Raises ModelFileError (message without a file name) for an invalid spec.
    """
    try:
        return _encode(spec)
    except ValueError as exc:
        raise ModelFileError(f"cannot write model: {exc}") from None


def _encode(spec: ModelSpec) -> bytes:
    spec = _with_float32_params(spec)
    validate_spec(spec)
    lines: list[str] = []
    tensors: list[np.ndarray] = []
    if spec.name is not None:
        lines.append(f"name {spec.name}")
    lines.append(f"n_inputs {int(spec.n_inputs)}")
    lines.append(f"n_outputs {int(spec.n_outputs)}")
    for keyword, pairs in (("input", spec.inputs), ("output", spec.outputs)):
        for i, (name, units) in enumerate(pairs, start=1):
            lines.append(f"{keyword} {i} {name} {units}")
    for keyword, norm in (
        ("input_normalization", spec.input_normalization),
        ("output_normalization", spec.output_normalization),
    ):
        if norm is not None:
            lines.append(keyword)
            for pname, value in zip(("offset", "scale"), norm):
                lines.append(_param_line(pname, value.shape))
                tensors.append(value)
    version = 1
    stats = spec.input_statistics
    if stats is not None:
        version = 3
        lines.append(" ".join(["input_statistics"] + [_format_attribute(k, v) for k, v in (
            ("samples", int(stats.samples)), ("rank", stats.rank),
            ("residual_variance", float(stats.residual_variance)),
            ("distance_q999", float(stats.distance_q999)))]))
        for pname in _STATISTICS_VECTORS + ("basis", "variance"):
            value = getattr(stats, pname)
            if value.size:
                lines.append(_param_line(pname, value.shape))
                tensors.append(value)
    for layer in spec.layers:
        words = [f"layer {layer.id} {layer.kind} {int(layer.n_out)}"]
        words.append("inputs=" + ",".join(str(int(i)) for i in layer.inputs))
        words.extend(_format_attribute(k, v) for k, v in layer.attributes.items())
        lines.append(" ".join(words))
        for pname, value in layer.params.items():
            if not _TOKEN_RE.match(pname):
                raise ValueError(f"layer {layer.id}: param name {pname!r} is not a token")
            lines.append(_param_line(pname, value.shape))
            tensors.append(value)
    payload_type = ["<f4"] * len(tensors)
    state = spec.training
    if state is not None:
        version = max(version, 2)
        words = [f"training precision={state.precision}"]
        words.extend(_format_attribute(k, v) for k, v in state.attributes.items())
        lines.append(" ".join(words))
        lines.append(" ".join([f"optimizer {state.optimizer}"]
                              + [_format_attribute(k, v) for k, v in state.optimizer_attributes.items()]))
        if state.schedule is not None:
            lines.append(" ".join([f"schedule {state.schedule}"]
                                  + [_format_attribute(k, v) for k, v in state.schedule_attributes.items()]))
        for node, value in state.generators.items():
            lines.append(f"generator {int(node)} {int(value)}")
        for pname, value in state.tensors.items():
            lines.append(_param_line(pname, value.shape))
            tensors.append(value)
            payload_type.append("<f4" if state.precision == 32 else "<f8")
    lines.append("end_header")
    header = ("\n".join(lines) + "\n").encode("ascii")
    payload = b"".join(t.astype(kind).ravel(order="F").tobytes() for t, kind in zip(tensors, payload_type))
    body = header + payload
    digest = hashlib.sha256(body).hexdigest()
    return f"FKB {version}\nsha256 {digest}\n".encode("ascii") + body


def _with_float32_params(spec: ModelSpec) -> ModelSpec:
    """A shallow copy of ``spec`` whose tensors are float32 (exact casts only)."""
    layers = []
    for layer in spec.layers:
        params = {
            name: _as_float32(value, f"layer {layer.id} param {name}") for name, value in layer.params.items()
        }
        layers.append(LayerSpec(layer.id, layer.kind, layer.n_out, list(layer.inputs), dict(layer.attributes), params))
    norms = []
    for what, norm in (("input_normalization", spec.input_normalization), ("output_normalization", spec.output_normalization)):
        if norm is None:
            norms.append(None)
        else:
            norms.append(Normalization(*(_as_float32(v, f"{what} {n}") for n, v in zip(("offset", "scale"), norm))))
    return ModelSpec(
        n_inputs=spec.n_inputs,
        n_outputs=spec.n_outputs,
        layers=layers,
        name=spec.name,
        inputs=list(spec.inputs),
        outputs=list(spec.outputs),
        input_normalization=norms[0],
        output_normalization=norms[1],
        sha256=spec.sha256,
        training=_with_state_dtype(spec.training),
        input_statistics=_with_float32_statistics(spec.input_statistics),
    )


def _with_float32_statistics(stats: InputStatistics | None) -> InputStatistics | None:
    """A copy of ``stats`` with float32 arrays (rounded: statistics, not weights)."""
    if stats is None:
        return None
    arrays = {}
    for name in _STATISTICS_VECTORS + ("basis", "variance"):
        value = np.asarray(getattr(stats, name))
        if not np.issubdtype(value.dtype, np.number):
            raise ValueError(f"input_statistics {name} is not numeric")
        arrays[name] = value.astype(np.float32)
    return InputStatistics(**arrays, residual_variance=stats.residual_variance,
                           distance_q999=stats.distance_q999, samples=stats.samples)


def _with_state_dtype(state: TrainingState | None) -> TrainingState | None:
    """A copy of ``state`` whose tensors have its precision's dtype (exact casts only)."""
    if state is None:
        return None
    tensors = {}
    for name, value in state.tensors.items():
        if state.precision == 32:
            tensors[name] = _as_float32(value, f"training param {name}")
        else:
            array = np.asarray(value)
            if not np.issubdtype(array.dtype, np.floating) or array.dtype.itemsize > 8:
                raise ValueError(f"training param {name} has dtype {array.dtype}, not float32 or float64")
            tensors[name] = array.astype(np.float64)
    return TrainingState(state.precision, state.optimizer, dict(state.optimizer_attributes),
                         dict(state.attributes), state.schedule, dict(state.schedule_attributes),
                         dict(state.generators), tensors)


def write_model_file(spec: ModelSpec, path: PathLike) -> str:
    """Write ``spec`` as a version-1 model file; return its SHA-256 hex digest.

    The file appears atomically (temporary file in the same folder, then
    ``os.replace``). Raises ModelFileError naming the file for an invalid spec
    or an I/O failure.
    """
    path = Path(path)
    try:
        data = _encode(spec)
    except ValueError as exc:
        raise ModelFileError(f"{path}: cannot write model: {exc}") from None
    digest = data.split(b"\n", 2)[1].split(b" ")[1].decode("ascii")
    try:
        with replacing(path, fsync=True) as tmp:
            tmp.write_bytes(data)
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot write: {exc.strerror or exc}") from None
    return digest


# --------------------------------------------------------------------------
# Reading


def check_readable_file(path: PathLike, limit: int = MAX_MODEL_FILE_BYTES, what: str = "a model file") -> None:
    """Refuse, with a ModelFileError of one line, a path that is not a regular
    file (a FIFO would block a reader, a device never end) or is larger than
    `limit` bytes (`what` names the kind of file in that message): the
    messages of the Fortran reader (fkb_files.f90)."""
    import stat as stat_module

    path = Path(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise ModelFileError(f"{path}: no such file") from None
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if stat_module.S_ISDIR(info.st_mode):
        raise ModelFileError(f"{path}: is a directory")
    if not stat_module.S_ISREG(info.st_mode):
        raise ModelFileError(f"{path}: is not a regular file (a FIFO, device or socket)")
    if info.st_size > limit:
        raise ModelFileError(f"{path}: {info.st_size // 2 ** 20} MiB, more than the {limit // 2 ** 20} MiB {what} "
                             "may have")


def _read_regular_file(path: Path) -> bytes:
    check_readable_file(path)
    return path.read_bytes()


def read_model_file(path: PathLike) -> ModelSpec:
    """Read a version-1 model file or an original FKB text file.

    Raises ModelFileError with a one-line message naming the file and the
    problem: unreadable file, bad magic, unknown version, hash mismatch,
    malformed line, unknown layer type or activation, bad graph or shapes,
    payload size mismatch, non-finite weight.
    """
    path = Path(path)
    try:
        data = _read_regular_file(path)
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        first = data.split(b"\n", 1)[0].strip()
        if re.fullmatch(rb"\d+", first):
            spec = _parse_fkb_text(data)
        elif first.split(b" ")[0] == b"FKB":
            spec = _parse_v1(data)
        elif not data:
            raise ValueError("empty file")
        else:
            raise ValueError("not a model file (bad magic: first line is neither 'FKB <version>' nor a layer count)")
    except ValueError as exc:
        message = " ".join(str(exc).split())
        raise ModelFileError(f"{path}: {message}") from None
    if spec.training is not None:
        _check_training_meaning(path)
    return spec


def _check_training_meaning(path: Path) -> None:
    """What a training section means (the optimizer and its hyperparameters,
    the loss, the schedule, which slots and generators it must have, the
    64-bit weights rounding to the layers') is checked by one implementation,
    the Fortran runtime's (fkb_training_state.f90): the file is loaded by it,
    and its refusal of the training state is this reader's too, so that both
    readers accept the same files. Without the compiled runtime, the syntax
    checks above stand alone."""
    try:
        from emulators.fkb import FKBError, load
    except ImportError:
        return
    try:
        load(path)
    except FKBError as exc:
        if f"{path}: training state: " in str(exc):
            raise ModelFileError(str(exc)) from None


def _parse_v1(data: bytes) -> ModelSpec:
    magic, _, rest = data.partition(b"\n")
    words = magic.decode("ascii", "replace").split()
    if len(words) != 2 or not _INT_RE.match(words[1]):
        raise ValueError(f"bad magic line {magic[:40].decode('ascii', 'replace')!r} (expected 'FKB 1')")
    version = int(words[1])
    if not 1 <= version <= FORMAT_VERSION:
        raise ValueError(f"unknown format version {words[1]} (this reader knows versions 1 to {FORMAT_VERSION})")
    hash_line, newline, body = rest.partition(b"\n")
    hash_words = hash_line.decode("ascii", "replace").split(" ")
    if not newline or len(hash_words) != 2 or hash_words[0] != "sha256" or not re.fullmatch(r"[0-9a-f]{64}", hash_words[1]):
        raise ValueError("line 2 is not 'sha256 <64 lowercase hex digits>'")
    actual = hashlib.sha256(body).hexdigest()
    if actual != hash_words[1]:
        raise ValueError(f"hash mismatch: the file is corrupt or truncated (header says {hash_words[1][:12]}..., content hashes to {actual[:12]}...)")

    # header lines, numbered as in the file
    lines: list[tuple[int, str]] = []
    position = 0
    line_number = 2
    while True:
        end = body.find(b"\n", position)
        if end < 0:
            raise ValueError("header has no end_header line")
        line_number += 1
        raw = body[position:end]
        position = end + 1
        try:
            text = raw.decode("ascii")
        except UnicodeDecodeError:
            raise ValueError(f"line {line_number}: header line is not ASCII") from None
        if text == "end_header":
            break
        lines.append((line_number, text))
    payload = body[position:]

    spec_fields: dict[str, object] = {}
    inputs: dict[int, tuple[str, str]] = {}
    outputs: dict[int, tuple[str, str]] = {}
    norm_params: dict[str, dict[str, np.ndarray]] = {}
    layers: list[LayerSpec] = []
    declared: list[tuple[dict[str, np.ndarray], str, tuple[int, ...], int, str]] = []  # target, name, shape, line, dtype
    section: dict[str, np.ndarray] | None = None
    training: TrainingState | None = None
    statistics: dict[str, np.ndarray] | None = None
    statistics_attributes: dict[str, AttributeValue] = {}

    for number, text in lines:
        if re.search(r"[\x00-\x1f\x7f]", text):   # as the Fortran reader
            raise ValueError(f"line {number}: control character in the header")
        tokens = [t for t in text.split(" ") if t]
        if not tokens:
            raise ValueError(f"line {number}: empty header line")
        keyword = tokens[0]
        try:
            if training is not None and keyword not in ("param", "optimizer", "schedule", "generator"):
                raise ValueError(f"{keyword!r} line after the training section (it must come last)")
            if training is not None and keyword != "param":
                _parse_training_line(keyword, tokens, training, len(layers))
                continue
            if keyword == "training":
                if version < 2:
                    raise ValueError("a training section needs format version 2 (the file says 1)")
                if not layers:
                    raise ValueError("the training section comes after the layers")
                attributes = _parse_key_values(tokens[1:])
                precision = attributes.pop("precision", None)
                if precision not in (32, 64):
                    raise ValueError("the training line needs precision=32 or precision=64")
                training = TrainingState(int(precision), "", attributes=attributes)
                section = training.tensors
                continue
            if keyword in ("optimizer", "schedule", "generator"):
                raise ValueError(f"{keyword} line outside a training section")
            if keyword == "param":
                if section is None:
                    raise ValueError("param line outside a layer or normalization section")
                if len(tokens) not in (3, 4):
                    raise ValueError("param line needs a name and 1 or 2 dimensions")
                pname = tokens[1]
                shape = tuple(_positive_int(t, "dimension") for t in tokens[2:])
                if pname in section:
                    raise ValueError(f"param {pname} declared twice")
                dtype = "<f8" if training is not None and training.precision == 64 else "<f4"
                declared.append((section, pname, shape, number, dtype))
                section[pname] = np.empty(0)  # placeholder, filled from the payload
                continue
            section = None
            if keyword == "name":
                if "name" in spec_fields:
                    raise ValueError("name given twice")
                spec_fields["name"] = text[len("name"):].strip() or None
            elif keyword in ("n_inputs", "n_outputs"):
                if keyword in spec_fields:
                    raise ValueError(f"{keyword} given twice")
                if len(tokens) != 2:
                    raise ValueError(f"{keyword} line needs one integer")
                spec_fields[keyword] = _positive_int(tokens[1], keyword)
            elif keyword in ("input", "output"):
                if len(tokens) < 4:
                    raise ValueError(f"{keyword} line needs an index, a name and units")
                index = _positive_int(tokens[1], f"{keyword} index")
                target = inputs if keyword == "input" else outputs
                if index in target:
                    raise ValueError(f"{keyword} {index} given twice")
                units = text.split(None, 3)[3].strip()
                target[index] = (tokens[2], units)
            elif keyword in ("input_normalization", "output_normalization"):
                if len(tokens) != 1:
                    raise ValueError(f"{keyword} line takes no values")
                if keyword in norm_params:
                    raise ValueError(f"{keyword} given twice")
                section = norm_params[keyword] = {}
            elif keyword == "input_statistics":
                if version < 3:
                    raise ValueError(f"an input_statistics section needs format version 3 (the file says {version})")
                if statistics is not None:
                    raise ValueError("input_statistics given twice")
                if layers:
                    raise ValueError("the input_statistics section comes before the layers")
                statistics_attributes = _parse_key_values(tokens[1:])
                known = {"samples", "rank", "residual_variance", "distance_q999"}
                if set(statistics_attributes) != known:
                    raise ValueError("the input_statistics line needs exactly " + ", ".join(sorted(known)))
                for key, low in (("samples", 1), ("rank", 0)):
                    value = statistics_attributes[key]
                    if isinstance(value, bool) or not isinstance(value, int) or value < low:
                        raise ValueError(f"input_statistics {key}={value} is out of range")
                section = statistics = {}
            elif keyword == "layer":
                layer = _parse_layer_line(tokens)
                layers.append(layer)
                section = layer.params
            else:
                raise ValueError(f"unknown keyword {keyword!r}")
        except ValueError as exc:
            raise ValueError(f"line {number}: {exc}") from None

    for keyword in ("n_inputs", "n_outputs"):
        if keyword not in spec_fields:
            raise ValueError(f"header has no {keyword} line")

    if training is not None and not training.optimizer:
        raise ValueError("the training section has no optimizer line")
    expected = sum(np.dtype(dtype).itemsize * int(np.prod(shape)) for _, _, shape, _, dtype in declared)
    if len(payload) != expected:
        raise ValueError(f"payload size mismatch: the header declares {expected} bytes of tensors, the file holds {len(payload)}")
    offset = 0
    for target, pname, shape, number, dtype in declared:
        size = int(np.prod(shape))
        values = np.frombuffer(payload, dtype=dtype, count=size, offset=offset)
        offset += np.dtype(dtype).itemsize * size
        if not np.all(np.isfinite(values)):
            raise ValueError(f"line {number}: param {pname} holds a non-finite value")
        target[pname] = values.astype(np.dtype(dtype).newbyteorder("=")).reshape(shape, order="F")

    normalizations = {}
    for keyword, params in norm_params.items():
        if set(params) != {"offset", "scale"}:
            raise ValueError(f"{keyword} needs exactly the params offset and scale")
        zero = np.flatnonzero(params["scale"] == 0)
        if zero.size:   # as the Fortran reader: a division by zero
            raise ValueError(f"{keyword} scale is zero for feature {int(zero[0]) + 1}")
        normalizations[keyword] = Normalization(params["offset"], params["scale"])

    n_inputs = int(spec_fields["n_inputs"])  # type: ignore[arg-type]
    n_outputs = int(spec_fields["n_outputs"])  # type: ignore[arg-type]
    input_statistics = None
    if statistics is not None:
        rank = statistics_attributes["rank"]
        wanted = set(_STATISTICS_VECTORS) | ({"basis", "variance"} if rank else set())
        if set(statistics) != wanted:
            raise ValueError("input_statistics needs exactly the params " + ", ".join(sorted(wanted)))
        if not rank:
            statistics["basis"], statistics["variance"] = np.zeros((n_inputs, 0), np.float32), np.zeros(0, np.float32)
        if isinstance(rank, bool) or not isinstance(rank, int) or statistics["variance"].shape != (rank,):
            raise ValueError(f"input_statistics rank={rank} does not match its variance param")
        input_statistics = InputStatistics(
            **{name: statistics[name] for name in _STATISTICS_VECTORS + ("basis", "variance")},
            residual_variance=statistics_attributes["residual_variance"],
            distance_q999=statistics_attributes["distance_q999"], samples=statistics_attributes["samples"])
    named = []
    for keyword, target, count in (("input", inputs, n_inputs), ("output", outputs, n_outputs)):
        outside = [index for index in target if index > count]
        if outside:   # the Fortran reader's words
            raise ValueError(f"{keyword} index '{min(outside)}' is not in 1..{count}")
        if target and len(target) != count:
            raise ValueError(f"{keyword} lines given for {len(target)} of the {count} {keyword}s (all or none)")
        named.append([target[i] for i in sorted(target)])

    spec = ModelSpec(
        n_inputs=n_inputs,
        n_outputs=n_outputs,
        layers=layers,
        name=spec_fields.get("name"),  # type: ignore[arg-type]
        inputs=named[0],
        outputs=named[1],
        input_normalization=normalizations.get("input_normalization"),
        output_normalization=normalizations.get("output_normalization"),
        sha256=hash_words[1],
        training=training,
        input_statistics=input_statistics,
    )
    validate_spec(spec)
    return spec


def _parse_key_values(tokens: list[str]) -> dict[str, AttributeValue]:
    """``key=value`` tokens of a training, optimizer or schedule line."""
    attributes: dict[str, AttributeValue] = {}
    for token in tokens:
        key, eq, value = token.partition("=")
        if not eq or not key or not value:
            raise ValueError(f"malformed attribute {token!r} (expected key=value)")
        if key in attributes:
            raise ValueError(f"attribute {key} given twice")
        attributes[key] = _parse_attribute(value)
    return attributes


def _parse_training_line(keyword: str, tokens: list[str], training: TrainingState, n_layers: int) -> None:
    """An ``optimizer``, ``schedule`` or ``generator`` line of the training section."""
    if keyword in ("optimizer", "schedule"):
        if len(tokens) < 2:
            raise ValueError(f"expected '{keyword} <kind> [key=value ...]'")
        if keyword == "optimizer":
            if training.optimizer:
                raise ValueError("a second optimizer line")
            training.optimizer = tokens[1]
            training.optimizer_attributes = _parse_key_values(tokens[2:])
        else:
            if training.schedule is not None:
                raise ValueError("a second schedule line")
            training.schedule = tokens[1]
            training.schedule_attributes = _parse_key_values(tokens[2:])
        return
    if len(tokens) != 3 or not _INT_RE.match(tokens[1]) or not _INT_RE.match(tokens[2]):
        raise ValueError("expected 'generator <id> <state>'")
    node, value = (-1 if _header_int(t) is None else _header_int(t) for t in tokens[1:])  # as Fortran parses them
    if not 0 <= node <= n_layers:
        raise ValueError(f"generator id {node} is not in 0..{n_layers}")
    if not 1 <= value <= _GENERATOR_MAX:
        raise ValueError(f"generator {node}: state {value} is not in 1..{_GENERATOR_MAX}")
    if node in training.generators:
        raise ValueError(f"a second generator line for id {node}")
    training.generators[node] = value


def _parse_layer_line(tokens: list[str]) -> LayerSpec:
    if len(tokens) < 5:
        raise ValueError("layer line needs: layer <id> <type> <n_out> inputs=<ids>")
    layer_id = _positive_int(tokens[1], "layer id")
    kind = tokens[2]
    if kind not in _ATTRIBUTES and kind not in _CUSTOM_KINDS:
        raise ValueError(_unknown_kind(kind, quoted=True))
    n_out = _positive_int(tokens[3], "layer width")
    attributes: dict[str, AttributeValue] = {}
    layer_inputs: list[int] | None = None
    for token in tokens[4:]:
        key, eq, value = token.partition("=")
        if not eq or not key or not value:
            raise ValueError(f"malformed attribute {token!r} (expected key=value)")
        if key == "inputs":
            if layer_inputs is not None:
                raise ValueError("inputs given twice")
            parts = [_header_int(p) for p in value.split(",")]
            if None in parts:
                raise ValueError(f"malformed inputs={value}")
            layer_inputs = parts
        elif key in attributes:
            raise ValueError(f"attribute {key} given twice")
        else:
            attributes[key] = _parse_attribute(value)
    if layer_inputs is None:
        raise ValueError("layer line has no inputs=")
    return LayerSpec(layer_id, kind, n_out, layer_inputs, attributes, {})
