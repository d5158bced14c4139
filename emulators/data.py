"""Training data on disk: open lazily, split by time, normalize, stream batches.

The GCM's reference run is an xarray dataset in netCDF4 (the layout of
:mod:`emulators.interface`). Nothing here loads it whole:

- :func:`open_dataset` opens one or several files lazily with Dask chunks
  along time;
- :func:`split_by_time` cuts it into contiguous train / validation / test
  blocks of time (contiguous so the validation and test samples are not
  neighbours in time of training samples);
- :func:`compute_normalization` streams over time blocks once, accumulating
  per-element means and variances (Chan et al.'s parallel update);
- :class:`ColumnStream` serves shuffled mini-batches from a buffer of a few
  time blocks at a time, within a memory budget, so a dataset larger than
  memory trains.

Normalization (carried into the model file as ``input_normalization`` and
``output_normalization``; the network sees ``(x - offset) / scale`` and
returns ``y * scale + offset``):

- inputs: per element, offset = mean and scale = standard deviation, floored
  at ``relative_floor`` times the variable's pooled standard deviation so an
  almost constant level is not blown up into noise (a constant variable gets
  scale 1);
- outputs: offset = per-element mean; scale = one value per *variable*, the
  pooled standard deviation ``sqrt(mean over levels of the per-level
  variance)``. Per-element scales would give the tiny upper-level tendencies
  (TPHYSTND, PHQ are orders of magnitude smaller near the model top) as much
  weight in the loss as the large lower-level ones, making the network fit
  noise where nothing happens; a per-variable scale keeps each level's
  weight proportional to its physical variance. ``output_scaling="element"``
  gives per-element scales instead.
"""
from __future__ import annotations

import glob
import math
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import xarray as xr

from emulators.interface import SAMPLE_DIMS, VARIABLES, Layout, check_dataset
from emulators.netcdf_files import write_dataset

# Dask is imported inside the functions that use it, so that importing this module does not load it
# (start-up time).

__all__ = [
    "SPLITS", "SplitFractions", "NormalizationStats", "RunningMoments", "ColumnStream", "open_dataset",
    "split_by_time", "iter_blocks", "compute_normalization", "level_thickness", "DEFAULT_TIME_BLOCK",
    "DEFAULT_MEMORY_BUDGET",
]

SPLITS = ("train", "validation", "test")
DEFAULT_TIME_BLOCK = 8                 # time steps read at once
DEFAULT_MEMORY_BUDGET = 256 * 2 ** 20  # bytes of samples a ColumnStream may hold


# --------------------------------------------------------------------- open
def open_dataset(paths: str | os.PathLike | Sequence[str | os.PathLike], time_chunk: int | None = DEFAULT_TIME_BLOCK,
                 variables: Sequence[str] | None = None) -> xr.Dataset:
    """Open training data lazily (netCDF4, Dask chunks of ``time_chunk`` steps).

    ``paths`` is a file, a glob pattern or a list of files (concatenated along
    time). The interface's variables (or ``variables``) are checked for
    presence, dimensions and units. ``time_chunk=None`` opens a single file
    without Dask, still lazily (xarray's backend arrays read what is indexed):
    the training stream reads one block of time steps at a time in one
    thread, where Dask's per-task overhead would cost it a factor of about
    four in throughput. Several files always get Dask chunks.
    """
    files = _expand(paths)
    if time_chunk is not None and time_chunk < 1:
        raise ValueError(f"time_chunk must be at least 1, got {time_chunk}")
    try:
        if len(files) == 1:
            chunks = {"time": int(time_chunk)} if time_chunk is not None else None
            ds = xr.open_dataset(files[0], engine="netcdf4", chunks=chunks)
        else:
            chunks = {"time": int(time_chunk or DEFAULT_TIME_BLOCK)}
            ds = xr.open_mfdataset(files, engine="netcdf4", chunks=chunks, combine="by_coords")
    except OSError as exc:  # netCDF4 reports unreadable files as OSError
        raise ValueError(f"{', '.join(files)}: not a readable netCDF file ({' '.join(str(exc).split())})") from None
    if variables is None:
        variables = [v for v in VARIABLES]
    check_dataset(ds, variables)
    return ds


def level_thickness(ds: xr.Dataset) -> np.ndarray:
    """The sigma thickness of each level, top first, from the half levels
    ``lev_bnds`` that ``fkb data`` writes (gcm_toy.training_data); a
    ValueError of one line for data without them (written before they were)."""
    if "lev_bnds" not in ds:
        raise ValueError("the training data have no lev_bnds (the half levels; fkb data writes them since the "
                         "water-conservation hyperparameter): remake them with fkb data to build the "
                         "column-water-conservation layer")
    bounds = ds["lev_bnds"]
    if "time" in bounds.dims:                    # several files concatenated in time
        bounds = bounds.isel(time=0)
    bounds = np.asarray(bounds.values, np.float64)
    if bounds.ndim != 2 or bounds.shape[1] != 2:
        raise ValueError(f"lev_bnds of the training data has shape {bounds.shape}, not (levels, 2)")
    dsigma = bounds[:, 1] - bounds[:, 0]
    if not np.all(dsigma > 0):
        raise ValueError("lev_bnds of the training data: a level of zero or negative thickness")
    return dsigma


def _expand(paths) -> list[str]:
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    files: list[str] = []
    for p in paths:
        p = os.fspath(p)
        if glob.has_magic(p):
            matches = sorted(glob.glob(p))
            if not matches:
                raise FileNotFoundError(f"{p}: no file matches")
            files.extend(matches)
        elif os.path.isfile(p):
            files.append(p)
        else:
            raise FileNotFoundError(f"{p}: no such file")
    if not files:
        raise FileNotFoundError("no data file given")
    return files


# -------------------------------------------------------------------- split
@dataclass(frozen=True)
class SplitFractions:
    """Fractions of the time axis in the train, validation and test blocks
    (in that order along time); they may sum to less than one."""

    train: float = 0.7
    validation: float = 0.15
    test: float = 0.15

    def __post_init__(self):
        for name in SPLITS:
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0.0 <= value <= 1.0):
                raise ValueError(f"split fraction {name}={value!r} is not in [0, 1]")
        if self.train <= 0.0:
            raise ValueError("split fraction train must be positive")
        if self.train + self.validation + self.test > 1.0 + 1e-9:
            raise ValueError(f"split fractions sum to {self.train + self.validation + self.test:g} > 1")

    @classmethod
    def parse(cls, text: str) -> "SplitFractions":
        """From ``"0.7,0.15,0.15"`` (train, validation, test)."""
        try:
            values = [float(v) for v in text.split(",")]
        except ValueError:
            raise ValueError(f"split {text!r} is not three comma-separated numbers") from None
        if len(values) != 3:
            raise ValueError(f"split {text!r} is not three comma-separated numbers (train,validation,test)")
        return cls(*values)


def split_by_time(ds: xr.Dataset, fractions: SplitFractions = SplitFractions()) -> dict[str, xr.Dataset]:
    """Contiguous blocks of time: ``{"train": ..., "validation": ..., "test": ...}``
    (lazy views of ``ds``). A split with a positive fraction gets at least one
    time step, or ValueError."""
    n = int(ds.sizes["time"])
    cumulative = np.cumsum([0.0] + [getattr(fractions, name) for name in SPLITS])
    bounds = [min(int(round(c * n)), n) for c in cumulative]
    out = {}
    for i, name in enumerate(SPLITS):
        start, stop = bounds[i], bounds[i + 1]
        if getattr(fractions, name) > 0 and stop <= start:
            raise ValueError(f"split {name!r} ({getattr(fractions, name):g} of {n} time steps) is empty; "
                             "use more time steps or a larger fraction")
        out[name] = ds.isel(time=slice(start, stop))
    return out


# ------------------------------------------------------------------- blocks
def _time_blocks(n_time: int, time_block: int) -> list[slice]:
    if time_block < 1:
        raise ValueError(f"time_block must be at least 1, got {time_block}")
    return [slice(start, min(start + time_block, n_time)) for start in range(0, n_time, time_block)]


def _samples_per_step(ds: xr.Dataset) -> int:
    return int(np.prod([ds.sizes[d] for d in SAMPLE_DIMS[1:]]))


def _read(ds: xr.Dataset, layout: Layout, time_slice: slice) -> tuple[np.ndarray, np.ndarray]:
    """Stacked physical inputs and outputs of one block of time steps, in the
    dtype on disk, read with one synchronous Dask computation."""
    import dask

    names = list(layout.inputs + layout.outputs)
    with dask.config.set(scheduler="synchronous"):
        block = ds[names].isel(time=time_slice).compute()
    x = layout.stack_inputs(block)
    y = layout.stack_outputs(block)
    del block
    for label, array, variables, slices in (("input", x, layout.inputs, layout.input_slices()),
                                            ("output", y, layout.outputs, layout.output_slices())):
        if not np.all(np.isfinite(array)):
            bad = next(v for v in variables if not np.all(np.isfinite(array[:, slices[v]])))
            raise ValueError(f"{label} {bad!r} has NaN or infinite values in time steps "
                             f"{time_slice.start}..{time_slice.stop - 1} of its split")
    return x, y


def iter_blocks(ds: xr.Dataset, layout: Layout, time_block: int = DEFAULT_TIME_BLOCK
                ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Physical ``(x, y)`` (interface units, dtype on disk) of consecutive blocks of
    ``time_block`` time steps, in order; each ``(time_block * columns, n)``."""
    for time_slice in _time_blocks(int(ds.sizes["time"]), time_block):
        yield _read(ds, layout, time_slice)


# ------------------------------------------------------------ normalization
class RunningMoments:
    """Per-element count, mean and sum of squared deviations, merged block by
    block (Chan, Golub & LeVeque 1979), stable for large offsets such as T."""

    def __init__(self, width: int):
        self.count = 0
        self.mean = np.zeros(width)
        self.m2 = np.zeros(width)

    def update(self, block: np.ndarray) -> None:
        n = block.shape[0]
        if n == 0:
            return
        mean = block.mean(axis=0, dtype=np.float64)
        m2 = ((block - mean) ** 2).sum(axis=0)  # float64, as mean is
        total = self.count + n
        delta = mean - self.mean
        self.mean = self.mean + delta * n / total
        self.m2 = self.m2 + m2 + delta ** 2 * self.count * n / total
        self.count = total

    @property
    def variance(self) -> np.ndarray:
        return self.m2 / max(self.count, 1)


@dataclass
class NormalizationStats:
    """Offsets and scales of the stacked inputs and outputs (interface units).

    The network sees ``(x - input_offset) / input_scale`` and its output ``y``
    means ``y * output_scale + output_offset``.
    """

    input_names: list[str]
    input_units: list[str]
    input_offset: np.ndarray
    input_scale: np.ndarray
    output_names: list[str]
    output_units: list[str]
    output_offset: np.ndarray
    output_scale: np.ndarray
    output_scaling: str = "variable"
    n_samples: int = 0
    attrs: dict = field(default_factory=dict)

    # Normalizing uses the float32 offsets and scales the model file stores,
    # in float32 arithmetic as the Fortran runtime does, so training, offline
    # metrics and the exported model see the same numbers.
    def normalize_inputs(self, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Physical inputs ``(n, n_inputs)`` -> network inputs, float32 (into ``out`` if given)."""
        (offset, scale), _ = self.model_file_arrays()
        return _affine(x, offset, scale, out)

    def normalize_outputs(self, y: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Physical outputs ``(n, n_outputs)`` -> network targets, float32 (into ``out`` if given)."""
        _, (offset, scale) = self.model_file_arrays()
        return _affine(y, offset, scale, out)

    def denormalize_outputs(self, y: np.ndarray) -> np.ndarray:
        """Network outputs -> physical outputs, float64."""
        _, (offset, scale) = self.model_file_arrays()
        return np.asarray(y, np.float64) * scale + offset

    def model_file_arrays(self) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
        """``((input offset, scale), (output offset, scale))`` as float32, for the model file."""
        f32 = lambda a: np.asarray(a, np.float32)  # noqa: E731
        return ((f32(self.input_offset), f32(self.input_scale)),
                (f32(self.output_offset), f32(self.output_scale)))

    def to_dataset(self) -> xr.Dataset:
        """As an xarray Dataset with dimensions ``input`` and ``output``."""
        return xr.Dataset(
            {
                "input_offset": ("input", self.input_offset, {"long_name": "input normalization offset (x - offset) / scale"}),
                "input_scale": ("input", self.input_scale, {"long_name": "input normalization scale"}),
                "output_offset": ("output", self.output_offset, {"long_name": "output normalization offset y * scale + offset"}),
                "output_scale": ("output", self.output_scale, {"long_name": "output normalization scale"}),
                "input_units": ("input", np.array(self.input_units, dtype=object), {"long_name": "units of the input"}),
                "output_units": ("output", np.array(self.output_units, dtype=object),
                                 {"long_name": "units of the output"}),
            },
            coords={"input": ("input", np.array(self.input_names, dtype=object), {"long_name": "input name"}),
                    "output": ("output", np.array(self.output_names, dtype=object), {"long_name": "output name"})},
            attrs={**self.attrs, "output_scaling": self.output_scaling, "n_samples": self.n_samples},
        )

    @classmethod
    def from_dataset(cls, ds: xr.Dataset) -> "NormalizationStats":
        attrs = dict(ds.attrs)
        scaling = str(attrs.pop("output_scaling", "variable"))
        n_samples = int(attrs.pop("n_samples", 0))
        return cls([str(v) for v in ds["input"].values], [str(v) for v in ds["input_units"].values],
                   ds["input_offset"].values.astype(np.float64), ds["input_scale"].values.astype(np.float64),
                   [str(v) for v in ds["output"].values], [str(v) for v in ds["output_units"].values],
                   ds["output_offset"].values.astype(np.float64), ds["output_scale"].values.astype(np.float64),
                   scaling, n_samples, attrs)

    def save(self, path: str | os.PathLike) -> Path:
        """Write to netCDF."""
        path = Path(path)
        write_dataset(self.to_dataset(), path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "NormalizationStats":
        if not Path(path).is_file():
            raise FileNotFoundError(f"{path}: no such file")
        with xr.open_dataset(path, engine="netcdf4") as ds:
            return cls.from_dataset(ds.load())

    def check_layout(self, layout: Layout) -> None:
        """ValueError unless these statistics belong to ``layout``'s elements."""
        if self.input_names != layout.input_names() or self.output_names != layout.output_names():
            raise ValueError("normalization statistics were computed for other variables "
                             f"({len(self.input_names)} inputs, {len(self.output_names)} outputs) "
                             f"than the layout ({layout.n_inputs} inputs, {layout.n_outputs} outputs)")


def _affine(values: np.ndarray, offset: np.ndarray, scale: np.ndarray, out: np.ndarray | None) -> np.ndarray:
    """``(values - offset) / scale`` in float32 without temporaries."""
    values = np.asarray(values)
    if out is None:
        out = np.empty(values.shape, np.float32)
    np.subtract(values, offset, out=out, casting="same_kind")
    np.divide(out, scale, out=out)
    return out


def _floored_scale(variance: np.ndarray, slices: dict[str, slice], relative_floor: float) -> np.ndarray:
    std = np.sqrt(variance)
    scale = np.empty_like(std)
    for slc in slices.values():
        pooled = math.sqrt(float(np.mean(variance[slc])))
        scale[slc] = np.maximum(std[slc], relative_floor * pooled) if pooled > 0 else 1.0
        scale[slc] = np.where(scale[slc] > 0, scale[slc], 1.0)  # relative_floor = 0 on a constant element
    return scale


def compute_normalization(ds: xr.Dataset, layout: Layout, time_block: int = DEFAULT_TIME_BLOCK,
                          output_scaling: str = "variable", relative_floor: float = 1e-3) -> NormalizationStats:
    """Normalization statistics of ``ds`` (the training split), computed in one
    streaming pass over blocks of ``time_block`` time steps."""
    if output_scaling not in ("variable", "element"):
        raise ValueError(f"output_scaling must be 'variable' or 'element', got {output_scaling!r}")
    if not 0.0 <= relative_floor < 1.0:
        raise ValueError(f"relative_floor must be in [0, 1), got {relative_floor}")
    x_moments = RunningMoments(layout.n_inputs)
    y_moments = RunningMoments(layout.n_outputs)
    for x, y in iter_blocks(ds, layout, time_block):
        x_moments.update(x)
        y_moments.update(y)
    if x_moments.count == 0:
        raise ValueError("cannot compute normalization statistics of an empty dataset")
    input_scale = _floored_scale(x_moments.variance, layout.input_slices(), relative_floor)
    if output_scaling == "variable":
        output_scale = np.empty(layout.n_outputs)
        for slc in layout.output_slices().values():
            pooled = math.sqrt(float(np.mean(y_moments.variance[slc])))
            output_scale[slc] = pooled if pooled > 0 else 1.0
    else:
        output_scale = _floored_scale(y_moments.variance, layout.output_slices(), relative_floor)
    return NormalizationStats(layout.input_names(), layout.input_units(), x_moments.mean, input_scale,
                              layout.output_names(), layout.output_units(), y_moments.mean, output_scale,
                              output_scaling, x_moments.count, {"relative_floor": relative_floor})


# ------------------------------------------------------------------ stream
_READ_OVERHEAD_BLOCKS = 3


class ColumnStream:
    """Normalized mini-batches of columns, read from disk a few time blocks at a time.

    An epoch visits every sample of ``ds`` once. With ``shuffle``, the time
    blocks are permuted (seeded by ``seed`` and the epoch number), grouped
    into shuffle buffers, and the samples of each buffer are shuffled. At
    most two buffers are held at a time (a batch may straddle two) and one
    block is read at a time, the buffers sized so that all of it stays below
    ``memory_budget`` bytes however large the dataset; larger buffers shuffle
    better. Batches are random access (``stream[i]``), cheapest in order.

    Keras's ``fit`` must be given ``shuffle=False`` for this stream: it
    shuffles itself, and visiting batches out of order rereads buffers.
    """

    def __init__(self, ds: xr.Dataset, layout: Layout, normalization: NormalizationStats, batch_size: int,
                 *, shuffle: bool = True, seed: int = 0, time_block: int = DEFAULT_TIME_BLOCK,
                 memory_budget: int = DEFAULT_MEMORY_BUDGET):
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        normalization.check_layout(layout)
        self.ds = ds
        self.layout = layout
        self.normalization = normalization
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.epoch = 0
        self.blocks = _time_blocks(int(ds.sizes["time"]), time_block)
        self.columns = _samples_per_step(ds)
        self.n_samples = int(ds.sizes["time"]) * self.columns
        if self.n_samples == 0:
            raise ValueError("cannot stream batches from an empty dataset")
        self.blocks_per_buffer = self.blocks_per_buffer_for(ds, layout, time_block, memory_budget)
        self.memory_budget = int(memory_budget)
        self._cache: OrderedDict[int, tuple[np.ndarray, np.ndarray, np.ndarray | None]] = OrderedDict()
        self._lock = threading.Lock()
        self._plan()

    @staticmethod
    def blocks_per_buffer_for(ds: xr.Dataset, layout: Layout, time_block: int, memory_budget: int) -> int:
        """Time blocks per shuffle buffer within ``memory_budget`` bytes; ValueError if not even one fits."""
        block_bytes = time_block * _samples_per_step(ds) * 4 * (layout.n_inputs + layout.n_outputs)
        # Two buffers, plus reading one block: the raw variables, their
        # stacked copy and the reshaping in between (measured: < 3 blocks).
        blocks = int((memory_budget - _READ_OVERHEAD_BLOCKS * block_bytes) // (2 * block_bytes))
        if blocks < 1:
            minimum = (_READ_OVERHEAD_BLOCKS + 2) * block_bytes
            raise ValueError(f"memory budget of {memory_budget / 2**20:.3g} MiB is below the {minimum / 2**20:.3g} MiB "
                             f"needed for blocks of {time_block} time steps; lower time_block or raise the budget")
        return blocks

    # The epoch's plan: which blocks form each buffer and where each buffer
    # starts in the epoch's sample sequence. The short last block (if any)
    # always closes the last buffer, so the number of batches is the same
    # every epoch.
    def _plan(self) -> None:
        order = np.arange(len(self.blocks))
        if self.shuffle:
            full_length = self.blocks[0].stop - self.blocks[0].start
            full = [i for i, b in enumerate(self.blocks) if b.stop - b.start == full_length]
            short = [i for i, b in enumerate(self.blocks) if b.stop - b.start != full_length]
            rng = np.random.default_rng([self.seed, self.epoch])
            order = np.concatenate([rng.permutation(full), short]).astype(int)
        k = self.blocks_per_buffer
        self._buffers = [order[i:i + k] for i in range(0, len(order), k)]
        sizes = [sum(self.blocks[j].stop - self.blocks[j].start for j in buf) * self.columns for buf in self._buffers]
        self._starts = np.concatenate([[0], np.cumsum(sizes)])
        with self._lock:
            self._cache.clear()

    def set_epoch(self, epoch: int) -> None:
        """Reshuffle for ``epoch`` (the order depends only on seed and epoch)."""
        if epoch != self.epoch:
            self.epoch = int(epoch)
            if self.shuffle:
                self._plan()

    def __len__(self) -> int:
        return math.ceil(self.n_samples / self.batch_size)

    def _buffer(self, b: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        with self._lock:
            if b in self._cache:
                self._cache.move_to_end(b)
                return self._cache[b]
            while len(self._cache) >= 2:
                self._cache.popitem(last=False)
        n = int(self._starts[b + 1] - self._starts[b])
        x = np.empty((n, self.layout.n_inputs), np.float32)
        y = np.empty((n, self.layout.n_outputs), np.float32)
        row = 0
        for j in self._buffers[b]:
            xb, yb = _read(self.ds, self.layout, self.blocks[j])
            self.normalization.normalize_inputs(xb, out=x[row:row + len(xb)])
            self.normalization.normalize_outputs(yb, out=y[row:row + len(yb)])
            row += len(xb)
            del xb, yb
        order = np.random.default_rng([self.seed, self.epoch, b]).permutation(n) if self.shuffle else None
        with self._lock:
            self._cache[b] = (x, y, order)
        return x, y, order

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Batch ``i``: normalized ``(x, y)``, float32, ``(batch_size, n)`` (the
        last batch of the epoch may be shorter)."""
        if not 0 <= i < len(self):
            raise IndexError(f"batch {i} out of range 0..{len(self) - 1}")
        start, stop = i * self.batch_size, min((i + 1) * self.batch_size, self.n_samples)
        xs, ys = [], []
        b = int(np.searchsorted(self._starts, start, side="right")) - 1
        while start < stop:
            x, y, order = self._buffer(b)
            lo, hi = start - int(self._starts[b]), min(stop, int(self._starts[b + 1])) - int(self._starts[b])
            if order is not None:
                xs.append(x[order[lo:hi]])
                ys.append(y[order[lo:hi]])
            else:  # copies, so a batch kept downstream does not pin an evicted buffer
                xs.append(x[lo:hi].copy())
                ys.append(y[lo:hi].copy())
            start += hi - lo
            b += 1
        if len(xs) == 1:
            return xs[0], ys[0]
        return np.concatenate(xs), np.concatenate(ys)

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for i in range(len(self)):
            yield self[i]
