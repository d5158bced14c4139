"""``fkb train``, ``fkb demo`` and ``fkb data``: training data and emulators."""
from __future__ import annotations

import argparse
from pathlib import Path

from fkb_cli.errors import UserError

# Each command imports what it runs when it runs, so that `fkb --help` and a user's mistake load no
# TensorFlow, Dask or Fortran extension.


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


def cmd_data(args: argparse.Namespace) -> None:
    from gcm_toy.training_data import run_data
    run_data(args)


def add_training_parsers(sub) -> None:
    """The commands that make training data and emulators: train, demo, data."""
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

    from gcm_toy.training_data import add_data_arguments
    p = sub.add_parser("data", help="emulator training data from a reference run of the toy GCM",
                       description="Run the toy GCM with the moist reference physics (after a spin-up) and write the "
                                   "emulator inputs and outputs of every column every H hours to DIR/training.nc "
                                   "(the names, units and dims of emulators.interface; `fkb train` reads it), and "
                                   "the run's final checkpoint DIR/checkpoint_dayNNNNN.bin for coupled runs.")
    add_data_arguments(p)
    p.set_defaults(func=cmd_data)
