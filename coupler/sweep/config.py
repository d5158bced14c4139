"""A sweep as data (the TOML tables ``[sweep]``, ``[space]``, ``[training]``,
...), its identity in its output folder, and running it from the TOML."""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from coupler.design import Design
from coupler.folder_identity import claim_folder
from coupler.folder_lock import folder_lock
from coupler.records import json_safe
from coupler.results import collect_results, write_results
from coupler.runs import CoupledRunConfig, prepare_reference
from coupler.sweep.runner import SweepSummary, run_sweep
from coupler.sweep.space import SearchSpace
from coupler.sweep.tasks import (
    DEFAULT_TASK_TIMEOUT,
    EmulatorTask,
    check_task_timeout,
    default_task,
    resolve_task,
)
from emulators.architectures import Hyperparameters
from emulators.settings import check_known_keys, read_settings_file


MAX_EMULATORS = 1_000_000
"""More emulators than any sweep needs; a larger number is a typo."""


# ------------------------------------------------------------ configuration
@dataclass(frozen=True)
class SweepConfig:
    """A sweep as data (TOML tables ``[sweep]``, ``[space]``, ``[training]``,
    ``[coupled]``, and optionally ``[design]``): ``n_emulators`` drawn from
    ``space`` with ``seed``, ``training`` the fixed hyperparameters (epochs,
    patience, ...), ``data`` the training data, ``task`` the task function
    (``module:function``), ``coupled`` the coupled runs of the default task.
    With a ``design`` (:class:`coupler.design.Design`) the emulators are its
    grid instead of draws: its factors' levels, the space's other fields
    (each fixed) and the training table; ``n_emulators`` is its cells times
    repeats (computed when the table leaves it out, refused if it differs).
    ``task_timeout_seconds``: a task running longer is stopped and recorded
    as failed, "timed out after N s" (:func:`run_sweep`)."""

    n_emulators: int = 8
    seed: int = 0
    data: str | None = None
    task: str = "coupler.sweep:default_task"
    space: SearchSpace = SearchSpace()
    training: Mapping[str, Any] = field(default_factory=dict)
    coupled: CoupledRunConfig = CoupledRunConfig()
    design: Design | None = None
    task_timeout_seconds: float = DEFAULT_TASK_TIMEOUT

    def __post_init__(self) -> None:
        for name, least, most in (("n_emulators", 1, MAX_EMULATORS), ("seed", 0, 2 ** 63 - 1)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not least <= value <= most:
                raise ValueError(f"[sweep] {name} must be an integer from {least} to {most}, got {value!r}")
        check_task_timeout(self.task_timeout_seconds, "[sweep] task_timeout_seconds")
        if self.design is not None:
            if self.n_emulators != self.design.n_emulators:
                raise ValueError(f"[sweep] n_emulators = {self.n_emulators} does not match the design's "
                                 f"{self.design.describe()} (leave it out: a design computes it)")
            self._design_base()      # every hyperparameter but the factors fixed, and none set twice

    @classmethod
    def from_toml(cls, path: str | os.PathLike) -> "SweepConfig":
        path = Path(path)
        return cls.from_dict(read_settings_file(path, "sweep configuration"), base_dir=path.parent)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], base_dir: str | os.PathLike = ".") -> "SweepConfig":
        check_known_keys(data, ("sweep", "space", "training", "coupled", "design"), "table", quote="[{}]".format)
        sweep = dict(data.get("sweep", {}))
        design = None
        if "design" in data:
            design = Design.from_dict(data["design"])
            for factor in design.names:
                for table in ("space", "training"):
                    if factor in data.get(table, {}):
                        raise ValueError(f"[design] factor {factor!r} is also set in [{table}]; a factor's "
                                         "values are its levels: remove it there")
            sweep.setdefault("n_emulators", design.n_emulators)
        check_known_keys(sweep, {"n_emulators", "seed", "data", "task", "task_timeout_seconds"}, "sweep option")
        if sweep.get("data"):
            sweep["data"] = os.fspath(Path(base_dir) / sweep["data"])
        training = dict(data.get("training", {}))
        Hyperparameters.from_dict(training)  # refuses unknown or invalid values now
        coupled = dict(data.get("coupled", {}))
        if coupled.get("initial_checkpoint"):
            coupled["initial_checkpoint"] = os.fspath(Path(base_dir) / coupled["initial_checkpoint"])
        return cls(space=SearchSpace.from_dict(data.get("space", {})), training=training,
                   coupled=CoupledRunConfig.from_dict(coupled), design=design, **sweep)

    def _design_base(self) -> Hyperparameters:
        """A designed sweep's fixed hyperparameters: [training], then the
        space's values (each fixed) but the factors'."""
        training = dict(self.training)
        for factor in self.design.names:
            if factor in training:
                raise ValueError(f"[design] factor {factor!r} is also set in [training]; a factor's values are "
                                 "its levels: remove it there")
        return dataclasses.replace(Hyperparameters.from_dict(training), **self.space.fixed_values(self.design.names))

    def hyperparameters(self) -> list[Hyperparameters]:
        """The emulators' hyperparameters: drawn from the space, or the
        design's cells (coupler/design.py)."""
        if self.design is not None:
            return self.design.hyperparameters(self._design_base(), self.seed)
        return self.space.sample(self.n_emulators, self.seed, Hyperparameters.from_dict(self.training))

    def tasks(self, out_dir: str | os.PathLike, reference: str | os.PathLike | None = None) -> list[EmulatorTask]:
        out = Path(out_dir).resolve()
        return [EmulatorTask(index=i, hyperparameters=hp, work_dir=os.fspath(out / "emulators" / f"emulator_{i:04d}"),
                             data=os.fspath(Path(self.data).resolve()) if self.data else None, coupled=self.coupled,
                             reference=os.fspath(reference) if reference is not None else None,
                             design=self.design.cell(i).to_dict() if self.design is not None else None)
                for i, hp in enumerate(self.hyperparameters())]


SWEEP_IDENTITY = "sweep.json"
"""File in which sweep folders made before ``identity.json`` kept their configuration."""

SWEEP_PRODUCTS = ("results", "emulators", "reference", "results.nc", "results.csv", SWEEP_IDENTITY)
"""What a sweep writes in its folder and starting over removes (the report and figures are rewritten)."""

ADDED_SETTINGS = {"space.water_conservation": [False]}
"""Settings added to the configuration after sweep folders were made, with
the value those folders had without saying it: a folder whose identity
lacks one is the same sweep as a configuration with that value."""


def sweep_identity(config: SweepConfig) -> dict[str, Any]:
    """The configuration that makes a sweep folder's results comparable:
    everything but the number of emulators (a re-run may raise it to extend
    the sweep; a design's repeats likewise) and the per-task timeout (how
    long to wait, not what is computed)."""
    mine = json_safe({**dataclasses.asdict(config), "n_emulators": None})
    mine.pop("task_timeout_seconds", None)
    if config.design is not None:
        mine["design"]["repeats"] = None
    return json.loads(json.dumps(mine))


def _legacy_sweep(folder: Path) -> dict[str, Any] | None:
    path = folder / SWEEP_IDENTITY
    return json.loads(path.read_text()) if path.is_file() else None


def claim_sweep_folder(config: SweepConfig, out_dir: str | os.PathLike, *, start_over: bool = False):
    """Claim ``OUT`` for this sweep (:func:`coupler.folder_identity.claim_folder`):
    a new folder, or a re-run of the same configuration; a folder of another
    space, training, coupled run, seed or data is refused naming the
    differences (FolderConflict, a ValueError), unless `start_over`, which
    removes the old sweep's results first. Returns the FolderIdentity."""
    return claim_folder(out_dir, "sweep", sweep_identity(config), products=SWEEP_PRODUCTS, legacy=_legacy_sweep,
                        added=ADDED_SETTINGS, start_over=start_over)


def check_sweep(config: SweepConfig) -> None:
    """What a sweep needs before it starts, checked at once (ValueError or
    FileNotFoundError naming the problem): training data that exist, and for
    the default task the coupled runs (:meth:`CoupledRunConfig.check_gcm`)."""
    import glob

    if config.data and not glob.glob(config.data):
        raise FileNotFoundError(f"[sweep] data: no training data at {config.data}")
    if resolve_task(config.task) is default_task:
        config.coupled.check_gcm()


def run_sweep_from_config(config: SweepConfig, out_dir: str | os.PathLike, *, scheduler: str | None = None,
                          n_workers: int | None = None, progress: bool | None = None,
                          retry_failed: bool = False, start_over: bool = False, log=print) -> SweepSummary:
    """A whole sweep: the reference runs (for the default task), the tasks,
    and the results dataset ``OUT/results.nc`` / ``results.csv``. Checked
    first (:func:`check_sweep`), then, with the folder locked, the folder
    claimed (:func:`claim_sweep_folder`; `start_over` removes the results of
    another configuration); `log` gets the note of a changed code version."""
    out = Path(out_dir)
    check_sweep(config)
    with folder_lock(out):
        identity = claim_sweep_folder(config, out, start_over=start_over)
        if identity.note:
            log(identity.note)
        reference = None
        if resolve_task(config.task) is default_task:
            reference = prepare_reference(config.coupled, out / "reference", progress=progress)["reference"]
        summary = run_sweep(config.tasks(out, reference), out, config.task, scheduler=scheduler,
                            n_workers=n_workers, progress=progress, retry_failed=retry_failed,
                            task_timeout=config.task_timeout_seconds)
        write_results(collect_results(out), out)
    return summary
