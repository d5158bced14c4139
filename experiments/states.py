"""Spun-up states the project ships, so that no case study spends its time
spinning up.

Each state is a toy-GCM checkpoint in ``experiments/states/NAME.bin`` with
its configuration beside it (``NAME.bin.toml``, written by
:meth:`gcm_toy.Model.save_checkpoint`), made by the recipe of the same name
in ``experiments/states/states.toml``: a GCM preset, its options, and how
many days to run it from the preset's own start (or from another shipped
state, ``from``). Regenerate one with

    fkb gcm spin-up NAME            # experiments/states/NAME.bin (+ .toml)

A state is used by a case study's ``[reference] initial_state = "NAME"``;
:func:`check_state` refuses it, naming the first differing option, when the
configuration it was spun up with is not the one the case study runs (the
resolution, time step, numerics or physics settings), because its
equilibrium would not be the run's.
"""
from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

from emulators.settings import check_known_keys

# The toy GCM (its Fortran extension) is imported inside the functions that use it, so that importing
# this module does not load it (start-up time).

__all__ = ["STATE_DIR", "StateRecipe", "recipes", "state_path", "check_state", "regenerate"]

STATE_DIR = Path(__file__).resolve().parent / "states"
"""Where the shipped states and their recipes (``states.toml``) live."""

_IGNORED = {"seed"}
"""Options a state may differ in: the seed draws the start's noise and the
physics' random numbers, which a continuing run may choose anew."""


@dataclass(frozen=True)
class StateRecipe:
    """How a shipped state is made: ``preset`` with ``overrides`` run for
    ``days`` from the preset's initial state, or from the shipped state
    ``start`` (``from`` in the TOML)."""

    name: str
    preset: str
    days: float
    overrides: Mapping[str, Any] = field(default_factory=dict)
    start: str | None = None
    description: str = ""


def recipes(directory: str | os.PathLike = STATE_DIR) -> dict[str, StateRecipe]:
    """The recipes of ``DIR/states.toml``: name -> :class:`StateRecipe`."""
    path = Path(directory) / "states.toml"
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no recipes of shipped states") from None
    out = {}
    for name, table in data.items():
        table = dict(table)
        try:
            check_known_keys(table, {"preset", "days", "overrides", "from", "description"}, f"[{name}] option")
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
        out[name] = StateRecipe(name=name, preset=str(table["preset"]), days=float(table["days"]),
                                overrides=dict(table.get("overrides", {})), start=table.get("from"),
                                description=str(table.get("description", "")))
    return out


def state_path(name: str | os.PathLike, directory: str | os.PathLike = STATE_DIR) -> Path:
    """The checkpoint of a shipped state by name, or a checkpoint path as it is."""
    text = os.fspath(name)
    if text.endswith(".bin") or os.sep in text:
        return Path(text)
    return Path(directory) / f"{text}.bin"


def _compared(config) -> dict[str, Any]:
    """The options that decide a state's equilibrium: the dynamical core's
    and the column physics' (not the run length, output, seed or the
    emulator options)."""
    from gcm_toy.config import GCMConfig

    return {f.name: getattr(config, f.name) for f in fields(GCMConfig)
            if (f.metadata.get("core") or f.metadata.get("physics") or f.name == "sigma_half")
            and f.name not in _IGNORED}


def check_state(name: str | os.PathLike, preset: str, overrides: Mapping[str, Any] | None = None,
                directory: str | os.PathLike = STATE_DIR) -> Path:
    """The checkpoint of state `name` if it was spun up with the configuration
    of `preset` + `overrides`; else ValueError naming the first option that
    differs and the command that regenerates the state (FileNotFoundError if
    it is missing)."""
    from gcm_toy.config import checkpoint_config_path, load_config, verified_checkpoint_config

    path = state_path(name, directory)
    regenerate_hint = f"regenerate it with `fkb gcm spin-up {name}` (docs/gcm.md, 'Shipped spun-up states')"
    if not path.is_file() or not checkpoint_config_path(path).is_file():
        raise FileNotFoundError(f"spun-up state {os.fspath(name)!r}: {path} or its .toml is missing; {regenerate_hint}")
    shipped = _compared(load_config(verified_checkpoint_config(path)))
    wanted = _compared(load_config(preset, dict(overrides or {})))
    for key, value in wanted.items():
        if shipped.get(key) != value:
            raise ValueError(f"spun-up state {os.fspath(name)!r} was made with {key} = {shipped.get(key)!r}, "
                             f"the run asks for {key} = {value!r}; {regenerate_hint}")
    return path


def regenerate(name: str, directory: str | os.PathLike = STATE_DIR, days: float | None = None,
               out_dir: str | os.PathLike | None = None, progress: bool | None = None, log=print) -> Path:
    """Make shipped state `name` by its recipe (``days`` overrides the
    recipe's, e.g. for a test) and write it to ``out_dir`` (default: the
    state folder) as ``NAME.bin`` + ``.toml``, through temporary files."""
    from gcm_toy import Model
    from gcm_toy.config import steps_for_days
    from gcm_toy.model import checkpoint_config_path
    from gcm_toy.run import days_progress_bar

    known = recipes(directory)
    if name not in known:
        raise ValueError(f"unknown spun-up state {name!r} (known: {', '.join(known)})")
    recipe = known[name]
    days = recipe.days if days is None else float(days)
    out = Path(out_dir) if out_dir is not None else Path(directory)
    if recipe.start is not None:
        start = check_state(recipe.start, recipe.preset, recipe.overrides, directory)
        model = Model.from_checkpoint(start, dict(recipe.overrides), config=recipe.preset)
    else:
        model = Model(recipe.preset, dict(recipe.overrides))
    with model:
        log(f"spin-up {name!r}: {recipe.preset} from day {model.time_days:g} for {days:g} days")
        remaining = steps_for_days(days, model.config.dt)
        chunk = max(1, steps_for_days(1.0, model.config.dt) if days >= 1 else remaining)
        with days_progress_bar(progress, days, model.time_days, f"spin-up {name}") as bar:
            while remaining > 0:
                failure = model.advance(min(chunk, remaining))
                if failure is not None:
                    raise RuntimeError(f"spin-up {name!r} crashed at day {failure.time_days:g}: {failure.reason}")
                bar.update(min(chunk, remaining) * model.config.dt / 86400.0)
                remaining -= min(chunk, remaining)
        target = out / f"{name}.bin"
        partial = out / f".{name}.{os.getpid()}.partial.bin"
        model.save_checkpoint(partial)
        os.replace(checkpoint_config_path(partial), checkpoint_config_path(target))
        os.replace(partial, target)
        day = model.time_days
    log(f"wrote {target} (model day {day:g})")
    return target
