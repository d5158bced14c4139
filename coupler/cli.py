"""The ``fkb`` command line: a thin layer over the Python API.

Every command prints ``--help``, exits 0 on success, and on a user mistake
(missing file, corrupt model, wrong shape, bad option) prints one line
``fkb <command>: error: <reason>`` on stderr and exits 1 — never a traceback.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

# Quieten TensorFlow before anything imports it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")


class UserError(Exception):
    """A mistake in the command's input: reported in one line, exit status 1."""


# Exception types (module, class) that describe bad input rather than a bug.
# Looked up only in modules already imported, so reporting an error never
# imports TensorFlow.
_USER_ERROR_TYPES = [
    ("emulators.fkb", "FKBError"),
    ("emulators.modelfile", "ModelFileError"),
    ("emulators.convert", "ConversionError"),
]


def _is_user_error(exc: BaseException) -> bool:
    if isinstance(exc, (UserError, ValueError, FileNotFoundError, IsADirectoryError, PermissionError)):
        return True
    return any(isinstance(exc, getattr(sys.modules[module], name))
               for module, name in _USER_ERROR_TYPES if module in sys.modules)


# ----------------------------------------------------------------- convert
def cmd_convert(args: argparse.Namespace) -> None:
    from emulators.convert import convert
    convert(args.src, args.dst)
    print(f"wrote {args.dst}")


# -------------------------------------------------------------------- info
def cmd_info(args: argparse.Namespace) -> None:
    if Path(args.model).suffix.lower() in (".keras", ".h5", ".hdf5"):
        from emulators.convert import load_spec as read
    else:
        from emulators.modelfile import read_model_file as read
    spec = read(args.model)
    print(describe_spec(spec, args.model))


def describe_spec(spec, path) -> str:
    """A human-readable summary of a model: layers, shapes, parameters,
    normalization, names and units, hash."""
    lines = [f"model       {path}"]
    if spec.name:
        lines.append(f"name        {spec.name}")
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
    if spec.inputs:
        lines.append("input variables")
        lines.extend(f"  {i + 1:>4}  {name}  [{units}]" for i, (name, units) in enumerate(spec.inputs))
    if spec.outputs:
        lines.append("output variables")
        lines.extend(f"  {i + 1:>4}  {name}  [{units}]" for i, (name, units) in enumerate(spec.outputs))
    return "\n".join(lines)


# ----------------------------------------------------------------- predict
def cmd_predict(args: argparse.Namespace) -> None:
    import numpy as np
    from emulators.fkb import load
    x = _load_array(args.input)
    if x.ndim != 2:
        raise UserError(f"{args.input}: expected a 2-D array (n_samples, n_inputs), got shape {x.shape}")
    net = load(args.model)
    y = net.predict(x)
    _save_array(args.output, y)
    print(f"wrote {args.output}: {y.shape[0]} samples x {y.shape[1]} outputs ({y.dtype})")


def _load_array(path: str):
    import numpy as np
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{path}: no such file")
    try:
        x = np.load(p, allow_pickle=False)
    except Exception as exc:  # numpy raises several types for a bad file
        raise UserError(f"{path}: not a readable .npy file ({exc})") from None
    if x.dtype.kind not in "fiu":
        raise UserError(f"{path}: array of dtype {x.dtype} is not numeric")
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float64)
    return x


def _save_array(path: str, y) -> None:
    import numpy as np
    out = Path(path)
    tmp = out.with_name(out.name + ".tmp.npy")
    np.save(tmp, y)
    os.replace(tmp, out)


# -------------------------------------------------------------------- demo
def cmd_demo(args: argparse.Namespace) -> None:
    from experiments.bridge_demo import run_demo
    ok = run_demo(Path(args.out), seed=args.seed)
    if not ok:
        raise UserError("Keras and Fortran predictions disagree (see the table above)")


# ------------------------------------------------------------------- train
def cmd_train(args: argparse.Namespace) -> None:
    from emulators.train import run_train
    run_train(args)


# ------------------------------------------------------------------ parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fkb", description="Fortran-Keras Bridge: run Keras networks in Fortran, and test them online in a toy GCM.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("convert", help="convert between Keras (.keras, .h5) and the model file (.fkb, FKB .txt)",
                       description="Convert a model. Direction from the extensions: .keras/.h5 -> .fkb; "
                                   ".fkb or an original FKB .txt file -> .keras.")
    p.add_argument("src", help="source model file")
    p.add_argument("dst", help="destination model file")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("info", help="print a model's layers, shapes, parameters, normalization and hash",
                       description="Describe a model file (.fkb, original FKB .txt, or a Keras .keras/.h5).")
    p.add_argument("model")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("predict", help="run the Fortran runtime on a .npy array",
                       description="Predict with the Fortran runtime: X.npy has shape (n_samples, n_inputs); "
                                   "Y.npy gets (n_samples, n_outputs) in X's precision.")
    p.add_argument("model", help="model file (.fkb) or original FKB text file")
    p.add_argument("-i", "--input", required=True, metavar="X.npy")
    p.add_argument("-o", "--output", required=True, metavar="Y.npy")
    p.set_defaults(func=cmd_predict)

    from emulators.train import add_train_arguments
    p = sub.add_parser("train", help="train one Keras emulator on a reference run and export it",
                       description="Train one emulator (hyperparameters from a TOML file and/or --set), "
                                   "score it offline and export the model file with its normalization.")
    add_train_arguments(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("demo", help="end-to-end bridge demo: train in Keras, convert, predict in Fortran, compare",
                       description="Train a small Keras model, convert it to a model file, predict with the Fortran "
                                   "runtime and show that both agree.")
    p.add_argument("--out", default="fkb-demo", help="output folder (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except KeyboardInterrupt:
        print(f"fkb {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if _is_user_error(exc):
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            print(f"fkb {args.command}: error: {message}", file=sys.stderr)
            return 1
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
