"""The ``fkb`` command line: a thin layer over the Python API, at the top of
the layers (docs/architecture.md): it may import every package, and none
imports it.

Every command prints ``--help``, exits 0 on success, and on a user mistake
(missing file, corrupt model, wrong shape, bad option) prints one line
``fkb <command>: error: <reason>`` on stderr and exits 1 — never a traceback.

One module per command group: :mod:`.models` (convert, info, predict),
:mod:`.training` (train, demo, data), :mod:`.gcm` (``fkb gcm ...``) and
:mod:`.studies` (sweep, score, couple, check, crash-report, warming, report,
casestudy); :mod:`.errors` tells a user's mistake from a bug.
"""
from __future__ import annotations

import argparse
import os
import sys

# Quieten TensorFlow before anything imports it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

# The commands import what they run inside their functions, so that `fkb --help`
# and a user's mistake never wait for TensorFlow, Dask or the Fortran extensions.
from fkb_cli.errors import UserError, _is_user_error  # noqa: E402
from fkb_cli.gcm import add_gcm_parser  # noqa: E402
from fkb_cli.models import add_model_parsers, describe_spec  # noqa: E402
from fkb_cli.studies import add_casestudy_parsers  # noqa: E402
from fkb_cli.training import add_training_parsers  # noqa: E402

__all__ = ["UserError", "build_parser", "describe_spec", "main"]


# ------------------------------------------------------------------ parser
def build_parser() -> argparse.ArgumentParser:
    from emulators.provenance import package_version
    parser = argparse.ArgumentParser(
        prog="fkb", description="Fortran-Keras Bridge: run Keras networks in Fortran, and test them online in a toy GCM.")
    parser.add_argument("--version", action="version", version=f"fkb {package_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    add_model_parsers(sub)
    add_training_parsers(sub)
    add_gcm_parser(sub)
    add_casestudy_parsers(sub)
    return parser


def _check_output_folder(args: argparse.Namespace) -> None:
    """Every command's ``--out`` names a folder: refuse, before anything is
    written, one that is a file (or anything else), --overwrite or not."""
    out = getattr(args, "out", None)
    if out is not None and os.path.lexists(out) and not os.path.isdir(out):
        raise UserError(f"{out}: exists and is not a folder (--out names an output folder); left as it was")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        _check_output_folder(args)
        args.func(args)
        sys.stdout.flush()   # a closed pipe shows here, not in the interpreter's last flush
    except KeyboardInterrupt:
        print(f"fkb {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:   # `fkb info x.fkb | head`: the reader has gone, quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except Exception as exc:
        if _is_user_error(exc):
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            print(f"fkb {args.command}: error: {message}", file=sys.stderr)
            return 1
        raise
    return 0
