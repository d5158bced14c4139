"""``fkb convert``, ``fkb info`` and ``fkb predict``: model files and the Fortran runtime."""
from __future__ import annotations

import argparse
from pathlib import Path

from fkb_cli.errors import UserError

# Each command imports what it runs when it runs, so that `fkb --help` and a user's mistake load no
# TensorFlow, Dask or Fortran extension.


# ----------------------------------------------------------------- convert
def _load_plugins(names: list[str]) -> None:
    """Import the modules that register custom layers (docs/custom-layers.md)."""
    if names:
        from emulators.convert import load_plugin
        for name in names:
            load_plugin(name)


def cmd_convert(args: argparse.Namespace) -> None:
    _load_plugins(args.plugin)
    if args.normalization is not None and args.interface is None:
        raise UserError("--normalization goes with --interface gcm")
    if args.interface == "gcm":
        from emulators.export import convert_for_gcm
        spec = convert_for_gcm(args.src, args.dst, args.normalization)
    else:
        from emulators.formats import convert   # imports Keras only for a Keras file
        spec = convert(args.src, args.dst)
    print(f"wrote {args.dst}")
    if Path(args.dst).suffix.lower() == ".fkb" and getattr(spec, "input_statistics", None) is None:
        print(f"note: {args.src} carries no statistics of its training inputs, so {args.dst} has none: "
              "the runtime's out-of-distribution guard needs them (docs/model-file.md, 'Input statistics')")


# -------------------------------------------------------------------- info
def cmd_info(args: argparse.Namespace) -> None:
    _load_plugins(args.plugin)
    from emulators.formats import load_spec, needs_conversion
    spec = load_spec(args.model)
    print(describe_spec(spec, args.model, converted=needs_conversion(args.model)))


def describe_spec(spec, path, converted: bool = False) -> str:
    """A human-readable summary of a model: layers, shapes, parameters,
    normalization, names and units, hash (for a model of another format
    (`converted`), the hash of the model file it converts to)."""
    lines = [f"model       {path}"]
    if spec.name:
        lines.append(f"name        {spec.name}")
    if converted:
        from emulators.modelfile import encode_model_file
        digest = encode_model_file(spec).split(b"\n", 2)[1].split(b" ")[1].decode("ascii")
        lines.append(f"sha256      {digest} (of the model file it converts to)")
    else:
        lines.append(f"sha256      {spec.sha256 or '(none: original FKB text file)'}")
    lines.append(f"inputs      {spec.n_inputs}")
    lines.append(f"outputs     {spec.n_outputs}")
    n_params = sum(int(p.size) for layer in spec.layers for p in layer.params.values())
    lines.append(f"parameters  {n_params}")
    for label, norm in (("input", spec.input_normalization), ("output", spec.output_normalization)):
        if norm is None:
            lines.append(f"{label} normalization: none")
        else:
            offset, scale = norm
            lines.append(f"{label} normalization: offset in [{offset.min():.4g}, {offset.max():.4g}], "
                         f"scale in [{scale.min():.4g}, {scale.max():.4g}]")
    lines.append("layers")
    lines.append(f"  {'id':>3}  {'type':<20} {'width':>6}  {'inputs':<8} {'params':>8}  attributes")
    for layer in spec.layers:
        attrs = " ".join(f"{k}={v}" for k, v in layer.attributes.items())
        n = sum(int(p.size) for p in layer.params.values())
        inputs = ",".join(str(i) for i in layer.inputs)
        lines.append(f"  {layer.id:>3}  {layer.kind:<20} {layer.n_out:>6}  {inputs:<8} {n:>8}  {attrs}")
    stats = getattr(spec, "input_statistics", None)
    if stats is None:
        lines.append("input statistics: none (the runtime's guard needs them: a model exported with its "
                     "training data, e.g. by fkb train)")
    else:
        lines.append(f"input statistics: {stats.samples} training samples, {stats.rank} principal directions "
                     f"(residual variance {stats.residual_variance:.3g}), 99.9 % distance "
                     f"{stats.distance_q999:.3g}")
    if spec.inputs or stats is not None:
        names, units = spec.input_names, spec.input_units
        lines.append("input variables" + ("  (training minimum, mean, maximum, std)" if stats is not None else ""))
        for i in range(spec.n_inputs):
            row = f"  {i + 1:>4}  {names[i]}  [{units[i]}]"
            if stats is not None:
                row += (f"  {stats.minimum[i]:.5g}  {stats.mean[i]:.5g}  {stats.maximum[i]:.5g}  "
                        f"{stats.std[i]:.4g}")
            lines.append(row)
    if spec.outputs:
        lines.append("output variables")
        lines.extend(f"  {i + 1:>4}  {name}  [{units}]" for i, (name, units) in enumerate(spec.outputs))
    state = getattr(spec, "training", None)
    if state is not None:  # saved by a network trained in Fortran (format version 2)
        settings = " ".join(f"{k}={v}" for k, v in state.optimizer_attributes.items())
        lines.append(f"training state: {state.optimizer} ({settings}), loss {state.attributes.get('loss')}, "
                     f"{state.attributes.get('iterations')} steps, {state.precision}-bit arrays "
                     f"{', '.join(state.tensors) or '(none)'}")
        if state.schedule is not None:
            lines.append(f"  schedule {state.schedule} "
                         + " ".join(f"{k}={v}" for k, v in state.schedule_attributes.items()))
    return "\n".join(lines)


# ----------------------------------------------------------------- predict
def cmd_predict(args: argparse.Namespace) -> None:
    x = _load_array(args.input)
    if x.ndim != 2:
        raise UserError(f"{args.input}: expected a 2-D array (n_samples, n_inputs), got shape {x.shape}")
    from emulators.formats import needs_conversion
    if any(needs_conversion(m) and not Path(m).is_dir() for m in args.models):
        import tempfile
        with tempfile.TemporaryDirectory(prefix="fkb-predict-") as folder:
            args.models = _converted_models(args.models, Path(folder))
            _predict(args, x)
        return
    _predict(args, x)


def _converted_models(models: list[str], folder: Path) -> list[str]:
    """The model files of `models`: ONNX and Keras files converted into
    `folder` (named after their source), model files as they are."""
    from emulators.formats import convert, needs_conversion
    out = []
    for i, model in enumerate(models):
        if needs_conversion(model) and not Path(model).is_dir():
            target = folder / (f"{Path(model).stem}.fkb" if len(models) == 1 else f"{i:02d}_{Path(model).stem}.fkb")
            convert(model, target)
            out.append(str(target))
        else:
            out.append(model)
    return out


def _predict(args: argparse.Namespace, x) -> None:
    ensemble_options = (args.std, args.members, args.noise_std, args.seed)
    if len(args.models) == 1 and not Path(args.models[0]).is_dir() \
            and all(option is None for option in ensemble_options):
        from emulators.fkb import load
        net = load(args.models[0])
        scores = net.guard(x, margin=args.guard_margin, distance_factor=args.guard_factor) \
            if args.guard is not None else None          # before any file is written
        y = net.predict(x)
        _save_array(args.output, y)
        print(f"wrote {args.output}: {y.shape[0]} samples x {y.shape[1]} outputs ({y.dtype})")
        if scores is not None:
            _save_guard(args.guard, scores)
        return
    if args.guard is not None:
        raise UserError("--guard takes one model file, not an ensemble")
    _predict_ensemble(args, x)


def _save_guard(path: str, scores) -> None:
    """The guard's scores as a .npz file: max_abs_z, distance, n_outside, flagged."""
    import numpy as np

    from emulators.atomic_files import replacing
    with replacing(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, max_abs_z=scores.max_abs_z, distance=scores.distance, n_outside=scores.n_outside,
                     flagged=scores.flagged)
    n, flagged = scores.flagged.size, int(scores.flagged.sum())
    print(f"wrote {path}: {flagged} of {n} samples flagged out of distribution ({100 * flagged / max(n, 1):.3g} %), "
          f"largest |z| {float(scores.max_abs_z.max(initial=0)):.3g}, largest distance "
          f"{float(scores.distance.max(initial=0)):.3g}")


def _predict_ensemble(args: argparse.Namespace, x) -> None:
    """Several models (or a folder of them): the members' mean to -o, on
    request their standard deviation and every member's output."""
    from emulators.fkb import load_ensemble
    if len(args.models) > 1 and any(Path(m).is_dir() for m in args.models):
        raise UserError("give either one folder or model files, not both")
    noise_std = 0.0 if args.noise_std is None else args.noise_std
    if not noise_std >= 0.0 or noise_std == float("inf"):
        raise UserError(f"--noise-std must be finite and >= 0, not {args.noise_std}")
    source = args.models[0] if len(args.models) == 1 else args.models
    with load_ensemble(source, precision=64 if x.dtype == "float64" else 32) as ens:
        result = ens.predict(x, members=args.members is not None, noise_std=noise_std,
                             seed=0 if args.seed is None else args.seed)
    mean, std = result[0], result[1]
    _save_array(args.output, mean)
    print(f"wrote {args.output}: mean of {ens.n_members} members, {mean.shape[0]} samples x "
          f"{mean.shape[1]} outputs ({mean.dtype})")
    if args.std is not None:
        _save_array(args.std, std)
        print(f"wrote {args.std}: standard deviation over members (ddof=0)")
    if args.members is not None:
        _save_array(args.members, result[2])
        print(f"wrote {args.members}: {ens.n_members} members x {mean.shape[0]} samples x "
              f"{mean.shape[1]} outputs")


def _load_array(path: str):
    """The .npy array at `path`, after checking it is a regular file whose
    array fits in the memory this process may use (emulators/machine_memory.py);
    UserError in one line otherwise."""
    import numpy as np

    from emulators.machine_memory import MEMORY_FRACTION, usable_memory
    from emulators.modelfile import ModelFileError, check_readable_file
    try:
        check_readable_file(path, limit=2 ** 62, what="an array")
        x = np.load(path, mmap_mode="r", allow_pickle=False)    # the header only, and its size against the file's
    except ModelFileError as exc:
        raise UserError(str(exc)) from None
    except Exception as exc:  # numpy raises several types for a bad file
        raise UserError(f"{path}: not a readable .npy file ({exc})") from None
    if x.dtype.kind not in "fiu":
        raise UserError(f"{path}: array of dtype {x.dtype} is not numeric")
    floating = x.dtype in (np.float32, np.float64)
    need = x.size * (x.dtype.itemsize if floating else 8)     # other types become a float64 copy
    have = usable_memory()
    if have and need > MEMORY_FRACTION * have:
        raise UserError(f"{path}: a {' x '.join(map(str, x.shape))} array of {x.dtype} needs "
                        f"{need / 2 ** 30:.3g} GiB, more than {MEMORY_FRACTION:.0%} of the {have / 2 ** 30:.3g} GiB "
                        "this process may use: predict it in parts")
    return np.array(x, dtype=x.dtype if floating else np.float64)


def _save_array(path: str, y) -> None:
    import numpy as np

    from emulators.atomic_files import replacing
    with replacing(path) as tmp:
        np.save(tmp, y)


def _add_interface_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--interface", choices=("gcm",), default=None,
                   help="attach the toy GCM's input and output names and units to a model of your own "
                        "(docs/emulators.md, 'Bring your own model')")
    p.add_argument("--normalization", metavar="NORMALIZATION.nc", default=None,
                   help="with --interface gcm: the model works in the normalized units of this training set's "
                        "statistics (emulators' normalization.nc); without it, in physical units")


def add_model_parsers(sub) -> None:
    """The model commands: convert, info, predict."""
    p = sub.add_parser("convert", help="convert between Keras (.keras, .h5), ONNX (.onnx) and the model file "
                                       "(.fkb, FKB .txt)",
                       description="Convert a model. Direction from the extensions: .keras/.h5 or .onnx -> .fkb; "
                                   ".fkb or an original FKB .txt file -> .keras or .onnx; .keras/.h5 <-> .onnx. "
                                   "ONNX files come from PyTorch's torch.onnx.export (docs/pytorch.md).")
    p.add_argument("src", help="source model file")
    p.add_argument("dst", help="destination model file")
    _add_interface_arguments(p)
    p.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                   help="import MODULE first (a dotted module name or a .py file), so that the custom layers "
                        "it registers convert (docs/custom-layers.md); repeatable")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("info", help="print a model's layers, shapes, parameters, normalization and hash",
                       description="Describe a model file (.fkb, original FKB .txt), a Keras .keras/.h5 or an "
                                   "ONNX .onnx file (as the model file it converts to).")
    p.add_argument("model")
    p.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                   help="import MODULE first, for models with custom layers (as for convert); repeatable")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("predict", help="run the Fortran runtime on a .npy array (one model or an ensemble)",
                       description="Predict with the Fortran runtime: X.npy has shape (n_samples, n_inputs); "
                                   "Y.npy gets (n_samples, n_outputs) in X's precision. With several models, "
                                   "or a folder whose *.fkb files (in name order) are the members, the models "
                                   "form an ensemble: Y.npy gets the members' mean, --std their standard "
                                   "deviation (ddof=0), --members every member's output (these options, --noise-std and "
                                   "--seed also make one model an ensemble of one).")
    p.add_argument("models", nargs="+", metavar="MODEL",
                   help="model file (.fkb), original FKB text file, or a Keras or ONNX file (converted on the way); "
                        "several files, or one folder of .fkb files, for an ensemble")
    p.add_argument("-i", "--input", required=True, metavar="X.npy")
    p.add_argument("-o", "--output", required=True, metavar="Y.npy",
                   help="the prediction; for an ensemble the members' mean")
    p.add_argument("--std", metavar="STD.npy", help="ensemble: standard deviation over members, (n_samples, n_outputs)")
    p.add_argument("--members", metavar="MEMBERS.npy",
                   help="ensemble: every member's output, (n_members, n_samples, n_outputs)")
    p.add_argument("--noise-std", type=float, metavar="S",
                   help="ensemble: perturb each member's input with Gaussian noise of standard deviation S in "
                        "normalized input units (S times the model file's input scale); default 0")
    p.add_argument("--seed", type=int, metavar="N", help="ensemble: seed of the input noise (default 0)")
    p.add_argument("--guard", metavar="GUARD.npz",
                   help="also score every sample against the training inputs' statistics of the model file "
                        "(docs/model-file.md): largest |z|, distance, inputs outside the widened training range, "
                        "flag, as arrays of a .npz file")
    p.add_argument("--guard-margin", type=float, metavar="M",
                   help="widen each input's training range by M times its width (default 0.1)")
    p.add_argument("--guard-factor", type=float, metavar="F",
                   help="flag beyond F times the training's 99.9th-percentile distance (default 2)")
    p.set_defaults(func=cmd_predict)
