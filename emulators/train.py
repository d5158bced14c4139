"""Train an emulator on a dataset on disk.

:func:`train_emulator` is the whole pipeline for one emulator: open the data
lazily, split it by time, compute the normalization in one streaming pass,
stream shuffled batches from disk into Keras (seeded and deterministic),
stop early on the validation loss keeping the best weights, then save the
model with its loss curve, offline metrics, R² plot and model file. With
the hyperparameter ``trainer = "fortran"`` the Fortran runtime trains the
same Keras-built network instead, on the splits held in memory
(:mod:`emulators.train_fortran`), and the rest is the same:

    out_dir/
      model.keras            the trained Keras model (normalized inputs/outputs)
      emulator.fkb           the model file: network + normalization + names/units
      emulator.keras         the same as a Keras model (physical units, GCM names): coupleable as it is
      normalization.nc       offsets and scales of inputs and outputs
      hyperparameters.toml   the settings it was trained with
      history.csv            loss curve, one row per epoch (Keras CSVLogger)
      training.json          loss curve, timings, layout, split, data paths
      metrics.nc             offline metrics on the validation and test splits
      r2_by_level.png        R² per level

Any Keras model whose input and output widths match the layout can be
trained (``train_emulator(my_model, "data.nc")``); ``inputs``/``outputs``
choose other variables (a subset, another order). The command-line layer is
:func:`add_train_arguments` and :func:`run_train` (``fkb train``).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import xarray as xr

from emulators.architectures import Hyperparameters, build_emulator, build_loss, build_optimizer, plateau_callback
from emulators.atomic_files import write_text_replacing
from emulators.data import (DEFAULT_MEMORY_BUDGET, DEFAULT_TIME_BLOCK, ColumnStream, NormalizationStats,
                            SplitFractions, compute_normalization, level_thickness, open_dataset, split_by_time)
from emulators.input_statistics import input_statistics
from emulators.interface import INPUT_VARIABLES, OUTPUT_VARIABLES, Layout
from emulators.metrics import plot_r2_by_level, save_metrics
from emulators.progress import add_progress_option

# TensorFlow is imported inside the functions that use it, so that importing this module does not load
# it (start-up time).

__all__ = ["LoaderOptions", "TrainingResult", "train_emulator", "training_input_statistics", "keras_batches",
           "add_train_arguments", "run_train"]


@dataclass(frozen=True)
class LoaderOptions:
    """How training data are read: ``time_block`` time steps per read, and at
    most ``memory_budget`` bytes of samples held by each stream."""

    time_block: int = DEFAULT_TIME_BLOCK
    memory_budget: int = DEFAULT_MEMORY_BUDGET

    def __post_init__(self):
        if self.time_block < 1:
            raise ValueError(f"time_block must be at least 1, got {self.time_block}")
        if self.memory_budget < 1:
            raise ValueError(f"memory_budget must be positive, got {self.memory_budget}")


@dataclass
class TrainingResult:
    """What :func:`train_emulator` produced. ``history`` holds one value per
    epoch for ``loss``, ``val_loss`` (normalized units) and ``seconds``."""

    model: Any
    hyperparameters: Hyperparameters
    layout: Layout
    normalization: NormalizationStats
    history: dict[str, list[float]]
    best_epoch: int
    metrics: xr.Dataset | None = None
    out_dir: Path | None = None
    files: dict[str, Path] = field(default_factory=dict)
    input_statistics: Any = None
    """The training inputs' distribution (:class:`emulators.modelfile.InputStatistics`),
    which the exported model file carries for the runtime's guard."""

    @property
    def best_val_loss(self) -> float:
        return float(self.history["val_loss"][self.best_epoch - 1])


_KERAS_BATCHES = None


def keras_batches(stream: ColumnStream, endless: bool = False):
    """A ``keras.utils.PyDataset`` over a :class:`ColumnStream` (pass
    ``shuffle=False`` to ``fit``: the stream shuffles itself).

    By default its length is one epoch and Keras's end of epoch advances
    the stream's shuffle. ``endless=True`` numbers the batches of all epochs
    in one sequence instead: batch ``i`` is batch ``i % len(stream)`` of
    epoch ``i // len(stream)``, whenever it is read, and the length is
    unknown (give ``fit`` ``steps_per_epoch = len(stream)``). Training uses
    that: Keras's tf.data prefetching reads the first batches of the next
    epoch in another thread, possibly before the end-of-epoch call, so an
    epoch counted by that call is a race; an epoch taken from the index is
    not."""
    global _KERAS_BATCHES
    if _KERAS_BATCHES is None:
        import keras

        class KerasBatches(keras.utils.PyDataset):
            def __init__(self, stream: ColumnStream, endless: bool):
                super().__init__(workers=1, use_multiprocessing=False)
                self.stream = stream
                self.endless = endless

            @property
            def num_batches(self) -> int | None:
                return None if self.endless else len(self.stream)

            def __len__(self) -> int:
                return len(self.stream)

            def __getitem__(self, index: int):
                if not self.endless:
                    return self.stream[index]
                epoch, batch = divmod(int(index), len(self.stream))
                self.stream.set_epoch(epoch)
                return self.stream[batch]

            def on_epoch_end(self) -> None:
                if not self.endless:
                    self.stream.set_epoch(self.stream.epoch + 1)

        _KERAS_BATCHES = KerasBatches
    return _KERAS_BATCHES(stream, endless)


def _seed_everything(seed: int) -> None:
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def _model_widths(model) -> tuple[int, int]:
    inputs, outputs = model.inputs, model.outputs
    if len(inputs) != 1 or len(outputs) != 1:
        raise ValueError(f"model {model.name!r} has {len(inputs)} inputs and {len(outputs)} outputs; "
                         "an emulator takes one input vector and returns one output vector")
    return int(inputs[0].shape[-1]), int(outputs[0].shape[-1])


def _check_widths(model, layout: Layout) -> None:
    n_in, n_out = _model_widths(model)
    if (n_in, n_out) != (layout.n_inputs, layout.n_outputs):
        raise ValueError(
            f"model {model.name!r} maps {n_in} -> {n_out} values but the layout maps {layout.n_inputs} "
            f"({', '.join(layout.inputs)}) -> {layout.n_outputs} ({', '.join(layout.outputs)}) at "
            f"nlev={layout.nlev}; choose variables with inputs=/outputs=")


_EPOCH_TIMER = None


def _epoch_timer():
    """A Keras callback recording the wall time of each epoch in ``seconds``."""
    global _EPOCH_TIMER
    if _EPOCH_TIMER is None:
        import keras

        class EpochTimer(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.seconds: list[float] = []
                self._start = 0.0

            def on_epoch_begin(self, epoch, logs=None):
                self._start = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                self.seconds.append(time.perf_counter() - self._start)

        _EPOCH_TIMER = EpochTimer
    return _EPOCH_TIMER()


def train_emulator(model, dataset: str | os.PathLike | Sequence | xr.Dataset, *,
                   hyperparameters: Hyperparameters | Mapping[str, Any] | None = None,
                   out_dir: str | os.PathLike | None = None,
                   inputs: Sequence[str] | None = None, outputs: Sequence[str] | None = None,
                   split: SplitFractions = SplitFractions(),
                   normalization: NormalizationStats | None = None,
                   loader: LoaderOptions = LoaderOptions(),
                   output_scaling: str = "variable",
                   compile_model: bool = True, evaluate: bool = True, export: bool = True,
                   callbacks: Sequence = (), verbose: int | None = None) -> TrainingResult:
    """Train ``model`` (or, if None, the MLP of ``hyperparameters``) on ``dataset``.

    ``dataset``: path(s) or glob of netCDF files, or an xarray Dataset, with the
    variables of :mod:`emulators.interface`. ``inputs``/``outputs``: variable
    names making the stacked vectors (default: the whole interface); a given
    ``model`` must take ``(n, n_inputs)`` normalized inputs and return
    ``(n, n_outputs)`` normalized outputs for them. The hyperparameters'
    seed seeds Keras, TensorFlow (with op determinism) and the shuffle; their
    optimizer, schedule and loss compile the model unless ``compile_model`` is
    False (then ``model`` must be compiled). ``normalization``: precomputed
    statistics (for several emulators on the same data), else computed from
    the training split. With ``out_dir``, everything is saved there (see the
    module docstring); ``export`` writes the model file, ``evaluate`` the
    metrics. ``callbacks``: more Keras callbacks (after early stopping and
    the loss log). ``verbose``: Keras's verbosity; by default a progress bar
    when stdout is a terminal, silence otherwise.
    """
    hp = _hyperparameters(hyperparameters)
    if isinstance(dataset, xr.Dataset):
        ds = dataset
    else:
        variables = list(inputs or INPUT_VARIABLES) + list(outputs or OUTPUT_VARIABLES)
        ds = open_dataset(dataset, time_chunk=None, variables=variables)
    layout = Layout.for_dataset(ds, inputs, outputs)
    splits = split_by_time(ds, split)
    if splits["validation"].sizes["time"] == 0:
        raise ValueError("training needs a validation split (early stopping monitors its loss)")
    # Fail on a mismatch before the normalization pass, which reads all the training data.
    ColumnStream.blocks_per_buffer_for(ds, layout, loader.time_block, loader.memory_budget)
    if model is not None:
        _check_widths(model, layout)
        if hp.water_conservation:
            raise ValueError("hyperparameter water_conservation builds its layer into the hyperparameters' MLP; "
                             "end a model of your own in emulators.conservation.ColumnWaterConservation instead")
    elif hp.water_conservation:
        level_thickness(ds)   # before the normalization pass: data without the half levels fail now
    if normalization is None:
        normalization = compute_normalization(splits["train"], layout, loader.time_block, output_scaling)
    normalization.check_layout(layout)

    train_stream = ColumnStream(splits["train"], layout, normalization, hp.batch_size, shuffle=True,
                                seed=hp.seed, time_block=loader.time_block, memory_budget=loader.memory_budget)
    val_stream = ColumnStream(splits["validation"], layout, normalization, max(hp.batch_size, 4096),
                              shuffle=False, time_block=loader.time_block, memory_budget=loader.memory_budget)

    import keras


    _seed_everything(hp.seed)
    if model is None:
        conservation = {}
        if hp.water_conservation:
            conservation = {"normalization": normalization, "dsigma": level_thickness(ds)}
        model = build_emulator(hp, layout.n_inputs, layout.n_outputs, **conservation)   # its own seeds: hp.seed
    if compile_model:
        model.compile(optimizer=build_optimizer(hp, len(train_stream)), loss=build_loss(hp))
        if hp.trainer == "fortran":   # Keras's optimizer stays fresh: model.keras saves it built
            model.optimizer.build(model.trainable_variables)
    elif getattr(model, "optimizer", None) is None:
        raise ValueError(f"model {model.name!r} is not compiled; compile it or pass compile_model=True")

    out = Path(out_dir) if out_dir is not None else None
    files: dict[str, Path] = {}
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        files["hyperparameters"] = out / "hyperparameters.toml"
        write_text_replacing(files["hyperparameters"], hp.to_toml())
        files["normalization"] = normalization.save(out / "normalization.nc")
    timer = _epoch_timer()
    all_callbacks = [keras.callbacks.EarlyStopping(monitor="val_loss", patience=hp.patience,
                                                   restore_best_weights=True), timer]
    if plateau_callback(hp) is not None:
        all_callbacks.insert(0, plateau_callback(hp))
    if out is not None:
        files["history_csv"] = out / "history.csv"
        all_callbacks.append(keras.callbacks.CSVLogger(str(files["history_csv"])))
    all_callbacks.extend(callbacks)
    if verbose is None:
        verbose = 1 if sys.stdout.isatty() else 0
    if hp.trainer == "fortran":
        if not compile_model:
            raise ValueError("compile_model=False keeps your Keras optimizer, which only the Keras trainer uses "
                             "(hyperparameter trainer = \"keras\")")
        if callbacks:
            raise ValueError("Keras callbacks need the Keras trainer (hyperparameter trainer = \"keras\")")
        from emulators.train_fortran import fit_in_fortran
        model, history = fit_in_fortran(model, hp, train_stream, val_stream, progress=bool(verbose))
        if out is not None:
            write_text_replacing(files["history_csv"], "epoch,loss,val_loss\n" + "".join(
                f"{i},{loss!r},{val!r}\n" for i, (loss, val) in enumerate(zip(history["loss"], history["val_loss"]))))
    else:
        fit = model.fit(keras_batches(train_stream, endless=True), steps_per_epoch=len(train_stream),
                        validation_data=keras_batches(val_stream), epochs=hp.epochs, callbacks=all_callbacks,
                        verbose=verbose, shuffle=False)
        history = {key: [float(v) for v in values] for key, values in fit.history.items()}
        history["seconds"] = list(timer.seconds)
    best_epoch = int(min(range(len(history["val_loss"])), key=history["val_loss"].__getitem__)) + 1

    result = TrainingResult(model, hp, layout, normalization, history, best_epoch, out_dir=out, files=files)
    if export and out is not None:
        result.input_statistics = training_input_statistics(splits["train"], layout, normalization, loader)
    if evaluate:
        from emulators.metrics import evaluate_emulator
        result.metrics = evaluate_emulator(model, {k: splits[k] for k in ("validation", "test")}, layout,
                                           normalization, loader.time_block)
    if out is not None:
        source = ds.encoding.get("source") if isinstance(dataset, xr.Dataset) else dataset
        _save(result, out, source, split, train_stream.n_samples, export)
    return result


def training_input_statistics(ds: xr.Dataset, layout: Layout, normalization: NormalizationStats,
                              loader: LoaderOptions = LoaderOptions()):
    """The distribution of the training inputs ``ds`` in physical units
    (:func:`emulators.input_statistics.input_statistics`, two passes over
    the data in batches), for the model file's ``input_statistics``."""
    offset = np.asarray(normalization.input_offset, np.float64)
    scale = np.asarray(normalization.input_scale, np.float64)

    def batches():
        stream = ColumnStream(ds, layout, normalization, 65536, shuffle=False, time_block=loader.time_block,
                              memory_budget=loader.memory_budget)
        for x, _ in stream:
            yield np.asarray(x, np.float64) * scale + offset

    return input_statistics(batches)


def _hyperparameters(value) -> Hyperparameters:
    if value is None:
        return Hyperparameters()
    if isinstance(value, Hyperparameters):
        return value
    return Hyperparameters.from_dict(value)


def _save(result: TrainingResult, out: Path, source, split: SplitFractions, n_train: int,
          export: bool) -> None:
    files = result.files
    files["model"] = out / "model.keras"
    result.model.save(files["model"])
    epochs = len(result.history["loss"])
    seconds = sum(result.history["seconds"])
    record = {
        "history": {"epoch": list(range(1, epochs + 1)), **result.history},
        "best_epoch": result.best_epoch,
        "best_val_loss": result.best_val_loss,
        "samples_per_second": n_train * epochs / seconds if seconds > 0 else None,
        "n_train_samples": n_train,
        "layout": {"inputs": list(result.layout.inputs), "outputs": list(result.layout.outputs),
                   "nlev": result.layout.nlev},
        "split": {"train": split.train, "validation": split.validation, "test": split.test},
        "data": [os.fspath(p) for p in source] if isinstance(source, (list, tuple)) else
                (os.fspath(source) if source is not None else None),
        "hyperparameters": result.hyperparameters.to_dict(),
    }
    files["training"] = out / "training.json"
    write_text_replacing(files["training"], json.dumps(record, indent=2) + "\n")
    if result.metrics is not None:
        files["metrics"] = save_metrics(result.metrics, out / "metrics.nc")
        files["r2_plot"] = plot_r2_by_level(result.metrics, out / "r2_by_level.png",
                                            title=f"{result.model.name}: R² by level")
    if export:
        from emulators.convert import write_keras
        from emulators.export import emulator_spec
        from emulators.modelfile import write_model_file

        spec = emulator_spec(result.model, result.normalization, statistics=result.input_statistics)
        files["model_file"] = out / "emulator.fkb"
        write_model_file(spec, files["model_file"])
        # the same network as a Keras model in physical units, with the GCM's names: coupleable as it is
        files["keras_emulator"] = out / "emulator.keras"
        write_keras(spec, files["keras_emulator"])


# ------------------------------------------------------------ command line
def add_train_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Options of ``fkb train``."""
    parser.add_argument("--data", required=True, nargs="+", metavar="DATA",
                        help="netCDF file(s) or glob of the reference run (interface variables)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument("--hyperparameters", metavar="H.toml", help="TOML file of hyperparameters")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="settings",
                        help="set one hyperparameter (repeatable; after --hyperparameters): "
                             + ", ".join(f.name for f in dataclasses.fields(Hyperparameters)))
    parser.add_argument("--split", default="0.7,0.15,0.15", metavar="TRAIN,VAL,TEST",
                        help="fractions of the time axis, contiguous blocks in this order (default: %(default)s)")
    parser.add_argument("--inputs", metavar="VARS", help="comma-separated input variables (default: all)")
    parser.add_argument("--outputs", metavar="VARS", help="comma-separated output variables (default: all)")
    parser.add_argument("--time-block", type=int, default=DEFAULT_TIME_BLOCK, metavar="N",
                        help="time steps read at once (default: %(default)s)")
    parser.add_argument("--memory-budget", type=float, default=DEFAULT_MEMORY_BUDGET / 2 ** 20, metavar="MIB",
                        help="memory for buffered samples per stream, MiB (default: %(default)g)")
    parser.add_argument("--output-scaling", choices=("variable", "element"), default="variable",
                        help="output normalization scale per variable or per element (default: %(default)s)")
    parser.add_argument("--trainer", choices=("keras", "fortran"), default=None,
                        help="who trains: Keras model.fit or the Fortran runtime (default: the hyperparameters', "
                             "fortran)")
    parser.add_argument("--no-export", action="store_true", help="do not write the model file")
    add_progress_option(parser)
    return parser


def run_train(args: argparse.Namespace) -> TrainingResult:
    """Run ``fkb train``; prints a short summary. Bad input raises ValueError
    or FileNotFoundError with a one-line message."""
    hp = Hyperparameters.from_toml(args.hyperparameters) if args.hyperparameters else Hyperparameters()
    hp = hp.with_settings(args.settings)
    if args.trainer is not None:
        hp = dataclasses.replace(hp, trainer=args.trainer)
    split = SplitFractions.parse(args.split)
    if args.time_block < 1:
        raise ValueError(f"--time-block must be at least 1, got {args.time_block}")
    if not args.memory_budget > 0:
        raise ValueError(f"--memory-budget must be positive, got {args.memory_budget}")
    loader = LoaderOptions(args.time_block, int(args.memory_budget * 2 ** 20))
    data = args.data if len(args.data) > 1 else args.data[0]
    result = train_emulator(None, data, hyperparameters=hp, out_dir=args.out,
                            inputs=_names(args.inputs), outputs=_names(args.outputs), split=split,
                            loader=loader, output_scaling=args.output_scaling, export=not args.no_export,
                            verbose=0 if args.progress is False else None)
    print(f"trained {len(result.history['loss'])} epochs in {sum(result.history['seconds']):.1f} s; "
          f"best validation loss {result.best_val_loss:.4g} (epoch {result.best_epoch})")
    if result.metrics is not None:
        r2 = result.metrics["r2"]
        for split_name in [str(s) for s in r2["split"].values]:
            values = ", ".join(f"{v} {float(r2.sel(split=split_name, variable=v)):.3f}"
                               for v in [str(v) for v in r2["variable"].values])
            print(f"R² {split_name}: {values}")
    print(f"wrote {result.out_dir}")
    return result


def _names(text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise ValueError(f"no variable names in {text!r}")
    return names
