"""Designed sweeps: a full factorial grid of hyperparameters instead of random draws.

A sweep with a ``[design]`` table does not draw its emulators from the
search space: it trains every combination of the levels of a few
*factors*, each ``repeats`` times, with everything else fixed::

    [design]
    optimizer = ["adam", "rmsprop", "sgd", "sgd_momentum", "nesterov"]
    learning_rate = [1e-4, 1e-3, 1e-2, 1e-1]   # the rate itself, one value per level
    repeats = 3                                # training seeds per cell

- **factors**: any hyperparameter of :class:`~emulators.architectures.Hyperparameters`
  but ``seed`` (which the repeats set), each with a non-empty list of
  distinct levels, in the table's order. A level is the value itself (a
  learning rate of 1e-3 is exactly 1e-3, not a draw within its decade), so a
  cell is one configuration and its repeats differ by their seed alone.
- **cells**: every combination of the levels, the first factor varying
  slowest (row-major); ``n_cells`` is the product of the numbers of levels.
- **emulator indices**: emulator ``i`` is repeat ``r = i // n_cells`` of
  cell ``c = i % n_cells``: the first ``n_cells`` emulators are one of every
  cell, and more repeats extend a design without changing its first
  emulators (as a longer random sweep extends a shorter one). ``n_emulators
  = n_cells * repeats``.
- **seeds**: every emulator of repeat ``r`` has the training seed
  ``numpy.random.default_rng([sweep seed, r]).integers(2**31 - 1)``: within a
  repeat, all cells start from the same initial weights and see the same
  batches (common random numbers), so cells differ only in their factors;
  repeats differ in weight initialization and shuffling.

Everything that is not a factor is fixed: the sweep's ``[space]`` must fix
each searched hyperparameter that is not a factor (``low == high`` or a
single choice; :meth:`coupler.sweep.SearchSpace.fixed_values`), and
``[training]`` the others. :class:`Design` is the table;
:meth:`Design.hyperparameters` expands it; :meth:`Design.cell` says which
cell and repeat an emulator is (recorded with its result, read by the
report's designed comparison in experiments/designed.py).
"""
from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from emulators.architectures import Hyperparameters

__all__ = ["Design", "DesignCell", "FACTOR_NAMES"]

FACTOR_NAMES = tuple(f.name for f in dataclasses.fields(Hyperparameters) if f.name != "seed")
"""Hyperparameters a design may vary (all but the training seed, which the repeats set)."""


@dataclass(frozen=True)
class DesignCell:
    """Where an emulator of a designed sweep sits: its ``cell`` (0 ..
    n_cells - 1), its ``repeat`` (0 .. repeats - 1) and the factors' levels."""

    cell: int
    repeat: int
    levels: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """As recorded with the emulator's result (``record["design"]``)."""
        return {"cell": self.cell, "repeat": self.repeat, "factors": dict(self.levels)}


@dataclass(frozen=True)
class Design:
    """A full factorial design: ``factors`` as ``((name, (level, ...)), ...)``
    in order (the first varies slowest), ``repeats`` seeds per cell."""

    factors: tuple[tuple[str, tuple[Any, ...]], ...]
    repeats: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.repeats, int) or isinstance(self.repeats, bool) or self.repeats < 1:
            raise ValueError(f"[design] repeats must be an integer >= 1, got {self.repeats!r}")
        if not self.factors:
            raise ValueError(f"[design] names no factor (any of: {', '.join(FACTOR_NAMES)}; and repeats)")
        names = [name for name, _ in self.factors]
        for name, levels in self.factors:
            if name == "seed":
                raise ValueError("[design] seed cannot be a factor: the repeats set the training seeds")
            if name not in FACTOR_NAMES:
                raise ValueError(f"[design] unknown factor {name!r} (known: {', '.join(FACTOR_NAMES)}; and repeats)")
            if names.count(name) > 1:
                raise ValueError(f"[design] factor {name!r} is given twice")
            if not isinstance(levels, tuple) or len(levels) == 0:
                raise ValueError(f"[design] factor {name!r} has no levels (give a non-empty list)")
            for level in levels:
                try:
                    Hyperparameters(**{name: level})
                except ValueError as exc:
                    raise ValueError(f"[design] factor {name!r}: {exc}") from None
            if len(set(levels)) != len(levels):
                twice = next(level for level in levels if levels.count(level) > 1)
                raise ValueError(f"[design] factor {name!r} lists the level {twice!r} twice")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "Design":
        """From the ``[design]`` table: factor = [levels], and ``repeats``
        (default 1). A factor given a single value instead of a list is
        refused (fix it in [space] or [training] instead)."""
        values = dict(values)
        repeats = values.pop("repeats", 1)
        factors = []
        for name, levels in values.items():
            if not isinstance(levels, (list, tuple)):
                raise ValueError(f"[design] factor {name!r} must be a list of levels, got {levels!r}")
            factors.append((str(name), tuple(levels)))
        return cls(factors=tuple(factors), repeats=repeats)

    @property
    def names(self) -> tuple[str, ...]:
        """The factors' names, in order."""
        return tuple(name for name, _ in self.factors)

    @property
    def n_cells(self) -> int:
        return math.prod(len(levels) for _, levels in self.factors)

    @property
    def n_emulators(self) -> int:
        """Cells times repeats: the size of the sweep."""
        return self.n_cells * self.repeats

    def describe(self) -> str:
        """E.g. ``5 optimizer x 4 learning_rate = 20 cells x 3 repeats = 60 emulators``."""
        factors = " x ".join(f"{len(levels)} {name}" for name, levels in self.factors)
        return f"{factors} = {self.n_cells} cells x {self.repeats} repeats = {self.n_emulators} emulators"

    def cell(self, index: int) -> DesignCell:
        """Cell, repeat and levels of emulator `index` (0 .. n_emulators - 1)."""
        if not 0 <= index < self.n_emulators:
            raise ValueError(f"emulator {index} is not in the design (0-{self.n_emulators - 1})")
        repeat, cell = divmod(index, self.n_cells)
        combination = next(itertools.islice(itertools.product(*(levels for _, levels in self.factors)), cell, None))
        return DesignCell(cell, repeat, dict(zip(self.names, combination)))

    @staticmethod
    def repeat_seed(sweep_seed: int, repeat: int) -> int:
        """The training seed of every emulator of `repeat`."""
        return int(np.random.default_rng([sweep_seed, repeat]).integers(2 ** 31 - 1))

    def hyperparameters(self, base: Hyperparameters, sweep_seed: int,
                        indices: Sequence[int] | None = None) -> list[Hyperparameters]:
        """The emulators' hyperparameters (all, or those of `indices`):
        `base` (every fixed value) with the cell's levels and the repeat's seed."""
        indices = range(self.n_emulators) if indices is None else indices
        out = []
        for index in indices:
            where = self.cell(index)
            out.append(dataclasses.replace(base, **where.levels, seed=self.repeat_seed(sweep_seed, where.repeat)))
        return out
