"""The search space of a sweep: :class:`SearchSpace` draws seeded
:class:`~emulators.architectures.Hyperparameters` like Ott et al. (2020).
Draw i depends only on (seed, i), so a longer sweep extends a shorter one."""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from emulators.architectures import OPTIMIZERS, Hyperparameters
from emulators.settings import dataclass_from_table


# ------------------------------------------------------------- search space
@dataclass(frozen=True)
class SearchSpace:
    """Where hyperparameters are drawn from: integer and float ranges are
    inclusive ``(low, high)``; ``learning_rate`` is drawn log-uniformly;
    tuples of choices uniformly. Defaults follow Ott et al. (2020).

    ``water_conservation`` (choices of the hyperparameter, default only
    off) is drawn last, after the training seed: the other hyperparameters
    of draw i are the same whatever its choices (a single choice draws no
    random number at all), so a space that adds ``(false, true)`` to a
    sweep draws the same networks and gives some of them the layer."""

    depth: tuple[int, int] = (4, 8)
    width: tuple[int, int] = (100, 300)
    leaky_relu_slope: tuple[float, float] = (0.0, 0.4)
    dropout: tuple[float, float] = (0.0, 0.25)
    batch_normalization: tuple[bool, ...] = (False, True)
    optimizer: tuple[str, ...] = OPTIMIZERS
    learning_rate: tuple[float, float] = (1e-5, 1e-1)
    batch_size: tuple[int, ...] = (256, 512, 1024, 2048)
    water_conservation: tuple[bool, ...] = (False,)

    def __post_init__(self) -> None:
        for name in ("depth", "width", "leaky_relu_slope", "dropout", "learning_rate"):
            low, high = getattr(self, name)
            if not low <= high:
                raise ValueError(f"search space {name}: low {low} is above high {high}")
        if self.learning_rate[0] <= 0:
            raise ValueError(f"search space learning_rate: must be positive, got {self.learning_rate}")
        for name in ("batch_normalization", "optimizer", "batch_size", "water_conservation"):
            if len(getattr(self, name)) == 0:
                raise ValueError(f"search space {name}: no choices")
        for name in ("batch_normalization", "water_conservation"):
            odd = [v for v in getattr(self, name) if not isinstance(v, bool)]
            if odd:
                raise ValueError(f"search space {name}: choices are true or false, got {odd[0]!r}")
        unknown = [o for o in self.optimizer if o not in OPTIMIZERS]
        if unknown:
            raise ValueError(f"search space optimizer: unknown {unknown[0]!r} (known: {', '.join(OPTIMIZERS)})")
        # every value the space can draw is a valid hyperparameter: its ends and choices
        for name in ("depth", "width", "leaky_relu_slope", "dropout", "learning_rate", "batch_size"):
            for value in getattr(self, name):
                try:
                    Hyperparameters(**{name: value})
                except ValueError as exc:
                    raise ValueError(f"search space {name}: {exc}") from None

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "SearchSpace":
        return dataclass_from_table(cls, {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()},
                                    "search-space option")

    def fixed_values(self, exclude: Sequence[str] = ()) -> dict[str, Any]:
        """The space's hyperparameters as fixed values, for a designed sweep
        (coupler/design.py), but those in `exclude` (the design's factors):
        each must be fixed, a range with ``low == high`` or a single choice,
        else ValueError naming the first that is not. The activation is
        leaky ReLU, as in every draw."""
        values: dict[str, Any] = {"activation": "leaky_relu"}
        for f in dataclasses.fields(self):
            if f.name in exclude:
                continue
            value = getattr(self, f.name)
            ranged = f.name in ("depth", "width", "leaky_relu_slope", "dropout", "learning_rate")
            fixed = value[0] == value[1] if ranged else len(value) == 1
            if not fixed:
                toml = json.dumps                       # TOML spells these values as JSON does
                shown = toml(list(value))
                default = " (the default)" if value == f.default else ""
                how = f"{f.name} = {toml([value[0]] * (2 if ranged else 1))}"
                raise ValueError(f"[design] varies only its factors, but [space] {f.name} = {shown}{default} is "
                                 f"not fixed: fix it in [space] (e.g. {how}) or make it a factor")
            values[f.name] = value[0]
        return values

    def sample(self, n: int, seed: int, base: Hyperparameters = Hyperparameters(),
               start: int = 0) -> list[Hyperparameters]:
        """Hyperparameters of emulators ``start .. start + n - 1``: `base` with
        the searched fields drawn from ``numpy.random.default_rng([seed, i])``
        and a training seed of its own."""
        if n < 0:
            raise ValueError(f"number of emulators must be >= 0, got {n}")
        return [self._draw(np.random.default_rng([seed, i]), base) for i in range(start, start + n)]

    def _draw(self, rng: np.random.Generator, base: Hyperparameters) -> Hyperparameters:
        def choice(options):
            return options[int(rng.integers(len(options)))]

        log_lo, log_hi = (math.log10(v) for v in self.learning_rate)
        return dataclasses.replace(
            base,
            depth=int(rng.integers(self.depth[0], self.depth[1] + 1)),
            width=int(rng.integers(self.width[0], self.width[1] + 1)),
            activation="leaky_relu",
            leaky_relu_slope=float(rng.uniform(*self.leaky_relu_slope)),
            dropout=float(rng.uniform(*self.dropout)),
            batch_normalization=bool(choice(self.batch_normalization)),
            optimizer=str(choice(self.optimizer)),
            learning_rate=float(10.0 ** rng.uniform(log_lo, log_hi)),
            batch_size=int(choice(self.batch_size)),
            seed=int(rng.integers(2 ** 31 - 1)),
            # last, so that the draws above never depend on its choices
            water_conservation=bool(choice(self.water_conservation)),
        )
