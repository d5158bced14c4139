"""The whole case study in one call: ``fkb casestudy --preset quick --out DIR``.

Composes the existing pieces, in order:

1. **reference data** (:func:`make_reference_data`): a run of the toy GCM
   with the reference physics — a spin-up, then the data period whose
   columns go to ``OUT/data/training.nc``
   (:func:`gcm_toy.training_data.write_training_data`) — and the checkpoint
   at its end, ``OUT/data/checkpoint_dayNNNNN.bin``: the initial state of
   every coupled run;
2. **reference runs** (:func:`coupler.sweep.prepare_reference`): the reference
   physics from that checkpoint for the coupled period, the same from
   perturbed states (the twins), and their noise floor, in ``OUT/reference/``;
3. **the sweep** (:func:`coupler.sweep.run_sweep`, task
   :func:`coupler.sweep.default_task`): N emulators drawn from the seeded
   space, each one Dask task (train on the training data split by time,
   export, couple from the checkpoint, score against the reference);
4. **results** ``OUT/results.nc`` / ``.csv`` (:mod:`coupler.results`) and
   **the report** ``OUT/report.md`` with its figures
   (:func:`experiments.report.make_report`) plus a section on the setup and
   the wall time of each stage.

A case study is data: a TOML preset (``experiments/presets/casestudy-NAME.toml``
or any file) with the tables ``[casestudy]`` (description, workers),
``[reference]`` (the data run: preset, spin-up, data days, sample interval,
GCM overrides), and the sweep's ``[sweep]``, ``[space]``, ``[training]``,
``[coupled]`` (:class:`coupler.sweep.SweepConfig`; the training data and the
initial checkpoint are the case study's own and may not be set).

Re-running the same command continues where it stopped: complete reference
data and reference runs are reused, finished emulators are skipped. The
folder remembers its configuration (``OUT/casestudy.toml``) and refuses a
different one.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from coupler.folder_identity import claim_folder, code_version
from coupler.folder_lock import folder_lock
from coupler.results import collect_results, write_results
from coupler.sweep import SweepConfig, prepare_reference, run_sweep
from emulators.atomic_files import write_text_replacing
from emulators.settings import check_known_keys, dataclass_from_table, read_settings_file
from experiments.designed import designed_statistics, is_designed
from experiments.invocations import InvocationLog, read_invocations, total_seconds
from experiments.replicates import replicate_folder, write_replicates_report
from experiments.report import (
    check_reportable,
    conservation_statistics,
    format_interval,
    format_number,
    headline_statistics,
    make_report,
)
from experiments.states import check_state
from experiments.survival import with_survival
from experiments.warming import warming_lines
from experiments.world import WorldMetrics, format_world, world_metrics

# The toy GCM (its Fortran extension) is imported inside the functions that use it, so that importing
# this module does not load it (start-up time).

__all__ = ["PRESET_DIR", "ReferenceDataConfig", "CaseStudyConfig", "CaseStudyResult", "ReferenceStage", "list_presets",
           "load_casestudy", "make_reference_data", "prepare_casestudy_reference", "rewrite_report", "run_casestudy",
           "summary_lines"]

PRESET_DIR = Path(__file__).resolve().parent / "presets"
"""Where ``--preset NAME`` looks for ``casestudy-NAME.toml``."""

_SWEEP_TABLES = ("sweep", "space", "training", "coupled", "design")
_OPTIONAL_TABLES = ("design",)          # passed on to the sweep only when the preset has them
_OWN_OPTIONS = {"sweep": ("data", "task"), "coupled": ("initial_checkpoint",)}


# ------------------------------------------------------------ configuration
@dataclass(frozen=True)
class ReferenceDataConfig:
    """The reference run that makes the training data: ``preset`` (a toy-GCM
    preset with the moist reference physics) with ``overrides``, started from
    the shipped spun-up state ``initial_state`` (experiments/states.py; None:
    the preset's own start), run ``spinup_days`` [days] unsampled, then
    ``data_days`` [days] sampling every column every ``interval_hours`` [h]
    (float32 or float64 ``precision``). The coupled period starts where the
    data end."""

    preset: str = "aquaplanet-t10"
    overrides: Mapping[str, Any] = field(default_factory=dict)
    initial_state: str | None = None
    spinup_days: float = 10.0
    data_days: float = 20.0
    interval_hours: float = 6.0
    precision: str = "float32"

    def __post_init__(self) -> None:
        for name in ("spinup_days", "data_days", "interval_hours"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"[reference] {name} must be a finite number, got {value!r}")
        if not self.spinup_days >= 0:
            raise ValueError(f"[reference] spinup_days must be >= 0, got {self.spinup_days}")
        if not self.data_days > 0:
            raise ValueError(f"[reference] data_days must be positive, got {self.data_days}")
        if not self.interval_hours > 0:
            raise ValueError(f"[reference] interval_hours must be positive, got {self.interval_hours}")
        if self.precision not in ("float32", "float64"):
            raise ValueError(f"[reference] precision must be float32 or float64, got {self.precision!r}")

    def check_gcm(self) -> None:
        """Check the run before it is made: the GCM options
        (:func:`gcm_toy.check_configuration`) and the spin-up, the data period
        and the sample interval as whole numbers of time steps."""
        from gcm_toy import check_configuration
        from gcm_toy.config import steps_for_days

        gcm = check_configuration(self.preset, dict(self.overrides))
        steps_for_days(self.spinup_days, gcm.dt, "[reference] spinup_days")
        steps_for_days(self.data_days, gcm.dt, "[reference] data_days")
        steps_for_days(self.interval_hours / 24.0, gcm.dt, "[reference] interval_hours")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "ReferenceDataConfig":
        return dataclass_from_table(cls, values, "[reference] option")


@dataclass(frozen=True)
class CaseStudyConfig:
    """A case study: its reference data run, the sweep tables (as in a sweep
    TOML file, without ``data``, ``task`` and ``initial_checkpoint``), the
    number of local Dask workers (None: one per core) and where it came from."""

    name: str
    description: str
    reference: ReferenceDataConfig
    sweep_tables: Mapping[str, Any]
    workers: int | None = None
    source: str = ""

    def __post_init__(self) -> None:
        # the sweep's tables are checked now, before hours of reference runs
        self.sweep("training.nc", "checkpoint.bin")

    def sweep(self, data: str | os.PathLike, checkpoint: str | os.PathLike) -> SweepConfig:
        """The sweep of this case study on the training data `data`, coupled
        from `checkpoint`: the coupled runs use the reference run's preset,
        options and physics unless ``[coupled]`` says otherwise."""
        tables = {name: dict(self.sweep_tables.get(name, {})) for name in _SWEEP_TABLES
                  if name in self.sweep_tables or name not in _OPTIONAL_TABLES}
        tables["sweep"]["data"] = os.fspath(Path(data).resolve())
        coupled = tables["coupled"]
        coupled.setdefault("preset", self.reference.preset)
        coupled.setdefault("reference_physics", "reference")
        coupled["overrides"] = {**dict(self.reference.overrides), **dict(coupled.get("overrides", {}))}
        coupled["initial_checkpoint"] = os.fspath(Path(checkpoint).resolve())
        return SweepConfig.from_dict(tables)

    def to_dict(self) -> dict[str, Any]:
        """The configuration as TOML-like tables (what ``OUT/casestudy.toml`` holds)."""
        casestudy = {"name": self.name, "description": self.description}
        if self.workers is not None:
            casestudy["workers"] = self.workers
        return {"casestudy": casestudy, "reference": dataclasses.asdict(self.reference),
                **{k: dict(v) for k, v in self.sweep_tables.items()}}


def list_presets() -> dict[str, str]:
    """Case-study presets shipped in ``experiments/presets``: name -> description."""
    presets = {}
    for path in sorted(PRESET_DIR.glob("casestudy-*.toml")):
        data = tomllib.loads(path.read_text())
        presets[path.stem.removeprefix("casestudy-")] = str(data.get("casestudy", {}).get("description", ""))
    return presets


def _preset_path(preset: str | os.PathLike) -> Path:
    path = Path(preset)
    if path.suffix == ".toml" or path.is_file():
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such case-study preset")
        return path
    named = PRESET_DIR / f"casestudy-{preset}.toml"
    if not named.is_file():
        raise ValueError(f"unknown case-study preset {str(preset)!r} (known: {', '.join(list_presets())}; "
                         "or a TOML file)")
    return named


def load_casestudy(preset: str | os.PathLike | Mapping[str, Any]) -> CaseStudyConfig:
    """A case study from a preset name (``quick``, ``paper``), a TOML file or
    a dict of tables. Unknown tables or options raise ValueError naming them;
    the sweep tables are checked by :class:`coupler.sweep.SweepConfig`."""
    if isinstance(preset, Mapping):
        data, name, source = dict(preset), "custom", "(dict)"
    else:
        path = _preset_path(preset)
        data = read_settings_file(path)
        name, source = path.stem.removeprefix("casestudy-"), os.fspath(path)
    known = ("casestudy", "reference") + _SWEEP_TABLES
    check_known_keys(data, known, "case-study table", quote="[{}]".format)
    head = dict(data.get("casestudy", {}))
    check_known_keys(head, {"name", "description", "workers"}, "[casestudy] option")
    for table, options in _OWN_OPTIONS.items():
        for option in options:
            if option in data.get(table, {}):
                raise ValueError(f"[{table}] {option} is made by the case study itself; remove it from the preset")
    workers = head.get("workers")
    if workers is not None and (not isinstance(workers, int) or isinstance(workers, bool) or not 1 <= workers <= 4096):
        raise ValueError(f"[casestudy] workers must be a positive integer (at most 4096), got {workers!r}")
    config = CaseStudyConfig(name=str(head.get("name", name)), description=str(head.get("description", "")),
                             reference=ReferenceDataConfig.from_dict(data.get("reference", {})),
                             sweep_tables={k: dict(data[k]) for k in _SWEEP_TABLES if k in data},
                             workers=workers, source=source)
    # every value is checked now, before any run: the sweep tables, the GCM runs of both stages
    config.sweep("training.nc", "checkpoint.bin").coupled.check_gcm(checkpoint=False)
    config.reference.check_gcm()
    if config.reference.initial_state:             # and that the shipped start fits the run
        check_state(config.reference.initial_state, config.reference.preset, config.reference.overrides)
    return config


def _toml(tables: Mapping[str, Mapping[str, Any]]) -> str:
    """Tables of scalars, lists and inline tables as TOML text."""
    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, Mapping):
            return "{" + ", ".join(f"{json.dumps(str(k))} = {value(x)}" for k, x in v.items()) + "}"
        raise TypeError(f"cannot write {type(v).__name__} as TOML")

    lines = []
    for name, table in tables.items():
        lines.append(f"[{name}]")
        lines += [f"{key} = {value(v)}" for key, v in table.items() if v is not None]
        lines.append("")
    return "\n".join(lines)


CASESTUDY_PRODUCTS = ("results", "emulators", "replicates", "casestudy.toml")
"""What a case study writes in its folder (a folder holding any of them is not new). Not ``data`` and
``reference``: those stages check their own configuration (``data.json``, ``coupled.json``), so a reference
stage copied into a new folder is reused by a study of the same world."""


def _identity_tables(tables: Mapping[str, Any]) -> dict[str, Any]:
    """A case study's configuration for its folder identity: its tables but
    the per-task timeout (how long to wait, not what is computed)."""
    tables = {name: dict(table) for name, table in tables.items()}
    tables.get("sweep", {}).pop("task_timeout_seconds", None)
    return tables


def _legacy_casestudy(folder: Path) -> dict[str, Any] | None:
    path = folder / "casestudy.toml"
    return _identity_tables(tomllib.loads(path.read_text())) if path.is_file() else None


def _claim_folder(config: CaseStudyConfig, out: Path, log=print) -> None:
    """Claim `out` for this case study (:func:`coupler.folder_identity.claim_folder`:
    a new folder, or a re-run of the same configuration; another one is
    refused naming the differences) and write ``OUT/casestudy.toml``, the
    preset as run. Call it with the folder locked."""
    text = _toml(config.to_dict())
    identity = claim_folder(out, "casestudy", _identity_tables(tomllib.loads(text)), products=CASESTUDY_PRODUCTS,
                            legacy=_legacy_casestudy, start_over_option=None)
    if identity.note:
        log(identity.note)
    path = out / "casestudy.toml"
    if not path.is_file() or tomllib.loads(path.read_text()) != tomllib.loads(text):
        write_text_replacing(path, f"# case study {config.name!r} from {config.source}\n" + text)


# ----------------------------------------------------------- reference data
def make_reference_data(config: ReferenceDataConfig, out_dir: str | os.PathLike,
                        progress: bool | None = None) -> dict[str, Any]:
    """The training data and the initial checkpoint of the coupled runs in
    ``out_dir`` (``training.nc``, ``checkpoint_dayNNNNN.bin`` + ``.toml``,
    and ``data.json`` describing them, written last). Data of an earlier
    complete call (``data.json`` present) are reused; an incomplete attempt
    is replaced. Returns ``data.json``'s content: paths, samples, columns,
    days, seconds."""
    from gcm_toy import Model
    from gcm_toy.run import day_label
    from gcm_toy.training_data import write_training_data
    import xarray as xr

    out = Path(out_dir)
    manifest = out / "data.json"
    if manifest.is_file():
        with open(manifest) as fh:
            info = json.load(fh)
        if Path(info["training"]).is_file() and Path(info["checkpoint"]).is_file():
            info["reused"] = True
            return info
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("checkpoint_day*.bin*"):
        stale.unlink()
    clock = time.perf_counter()
    start = check_state(config.initial_state, config.preset, config.overrides) if config.initial_state else None
    with Model(config.preset, dict(config.overrides), keep_training_batch=True) as model:
        if start is not None:
            model.load_checkpoint(start)
        training = write_training_data(model, config.data_days, out / "training.nc",
                                       interval_hours=config.interval_hours, spinup_days=config.spinup_days,
                                       overwrite=True, dtype=config.precision, progress=progress)
        checkpoint = model.save_checkpoint(out / f"checkpoint_day{day_label(model.time_days)}.bin")
        start_day = model.time_days
    with xr.open_dataset(training, decode_times=False) as ds:
        info = {"training": os.fspath(training.resolve()), "checkpoint": os.fspath(checkpoint.resolve()),
                "samples": int(ds.sizes["time"]), "columns": int(ds.sizes["lat"] * ds.sizes["lon"]),
                "first_day": float(ds.time[0]), "last_day": float(ds.time[-1]), "coupled_start_day": start_day,
                "simulated_days": config.spinup_days + config.data_days,
                "seconds": time.perf_counter() - clock}
    write_text_replacing(manifest, json.dumps(info, indent=2) + "\n")
    info["reused"] = False
    return info


# ---------------------------------------------------------- reference stage
@dataclass
class ReferenceStage:
    """The first two stages of a case study in its folder: the reference
    data (``data.json``'s content), the sweep configuration on them, the
    reference-run files (:func:`coupler.sweep.prepare_reference`) and the
    wall time of each stage [s] (0 when reused)."""

    data: dict[str, Any]
    sweep: SweepConfig
    paths: dict[str, Path]
    seconds: dict[str, float]
    world: WorldMetrics | None = None


def prepare_casestudy_reference(config: CaseStudyConfig, out_dir: str | os.PathLike, *,
                                progress: bool | None = None, log=print) -> ReferenceStage:
    """Claim `out_dir` for the case study (``casestudy.toml``) and make or
    reuse its reference data (``OUT/data``) and reference runs
    (``OUT/reference``): what every coupled run of the study starts from and
    is scored against (``fkb casestudy`` and ``fkb couple --preset``). The
    folder is locked meanwhile (:mod:`coupler.folder_lock`)."""
    out = Path(out_dir)
    with folder_lock(out):
        return _prepare_reference_locked(config, out, progress, log)


def _prepare_reference_locked(config: CaseStudyConfig, out: Path, progress, log) -> ReferenceStage:
    _claim_folder(config, out, log)
    seconds: dict[str, float] = {}
    clock = time.perf_counter()
    ref = config.reference
    log(f"case study {config.name!r}: reference data ({ref.preset}, {ref.spinup_days:g}-day spin-up, "
        f"{ref.data_days:g} days of samples every {ref.interval_hours:g} h) in {out / 'data'}")
    data = make_reference_data(ref, out / "data", progress=progress)
    clock = _timed(seconds, "reference_data", clock)
    if data["reused"]:
        seconds["reference_data"] = 0.0
        log(f"  reused {data['training']}")
    sweep = config.sweep(data["training"], data["checkpoint"])
    coupled = sweep.coupled

    reused = (out / "reference" / "noise_floor.nc").is_file()
    log(f"reference runs: {coupled.days:g} days from day {data['coupled_start_day']:g}, and {coupled.n_perturbed} "
        f"twins from states perturbed by {coupled.perturbation_kelvin:g} K (noise floor) in {out / 'reference'}")
    paths = prepare_reference(coupled, out / "reference", progress=progress)
    _timed(seconds, "reference_runs", clock)
    if reused:
        seconds["reference_runs"] = 0.0
    world = reference_world(paths)
    log(format_world(world))
    return ReferenceStage(data, sweep, paths, seconds, world)


def reference_world(paths: Mapping[str, Any]) -> WorldMetrics:
    """How credible the reference's world is over the coupled period
    (experiments/world.py: eddies, equilibrium, ITCZ, and how far its twins
    drift apart), also written to ``reference/world.json``."""
    from gcm_toy import open_output
    from gcm_toy.output import open_outputs

    with open_output(paths["reference"]) as reference, open_outputs(paths.get("perturbed", [])) as twins:
        start = float(reference["time_bnds"].values[0, 0])
        end = float(reference["time_bnds"].values[-1, 1])
        world = world_metrics(reference, start, end, twins)
    target = Path(paths["reference"]).parent / "world.json"
    write_text_replacing(target, json.dumps({**world.as_dict(), "passes": world.passes()}, indent=2) + "\n")
    return world


# -------------------------------------------------------------------- run
@dataclass
class CaseStudyResult:
    """What :func:`run_casestudy` made: the folder, the report, the results
    Dataset, the report's headline statistics, the sweep summary, the data
    description, the wall time of each stage [s] (0 for a stage reused), the
    reference's world, with replicates ``OUT/replicates.md``, and the records
    of every invocation on the folder (``OUT/invocations.json``). (Results,
    report and statistics are those of the first replicate, the study itself.)"""

    out_dir: Path
    report: Path
    results: Any
    stats: dict[str, Any]
    sweep: Any
    data: dict[str, Any]
    config: CaseStudyConfig
    seconds: dict[str, float]
    world: WorldMetrics | None = None
    replicates: Path | None = None
    invocations: list[dict[str, Any]] = field(default_factory=list)


def _timed(seconds: dict[str, float], name: str, clock: float) -> float:
    now = time.perf_counter()
    seconds[name] = now - clock
    return now


def run_casestudy(preset: str | os.PathLike | Mapping[str, Any] | CaseStudyConfig, out_dir: str | os.PathLike, *,
                  scheduler: str | None = None, n_workers: int | None = None, progress: bool | None = None,
                  retry_failed: bool = False, only: Sequence[int] | None = None, replicates: int = 1,
                  task_timeout: float | None = None, log=print) -> CaseStudyResult:
    """Run (or continue) the case study `preset` in `out_dir`: reference
    data, reference runs, the sweep on Dask (a local cluster of `n_workers`
    processes, default the preset's ``workers`` or one per core, or the
    cluster at `scheduler`), results, report. `only`: run the tasks of these
    emulators only (indices of the sweep; the results and the report cover
    every emulator with a result). `replicates`: run the sweep that many
    times on the same reference stage, with sweep seeds ``seed, seed + 1,
    ...`` (experiments/replicates.py), and write ``OUT/replicates.md``, the
    verdict on the paper's claims. `log` gets one line per stage; every
    invocation's wall time is kept in ``OUT/invocations.json``
    (experiments/invocations.py), so a study continued over several
    invocations can tell its whole cost. `task_timeout`: seconds an
    emulator's task may run (default: the preset's ``[sweep]
    task_timeout_seconds``). The folder is locked for the call and claimed
    for the preset (:mod:`coupler.folder_identity`)."""
    if replicates < 1:
        raise ValueError(f"--replicates must be at least 1, got {replicates}")
    config = preset if isinstance(preset, CaseStudyConfig) else load_casestudy(preset)
    out = Path(out_dir)
    with folder_lock(out):
        return _run_casestudy_locked(config, out, scheduler, n_workers, progress, retry_failed, only, replicates,
                                     task_timeout, log)


def _run_casestudy_locked(config: CaseStudyConfig, out: Path, scheduler, n_workers, progress, retry_failed: bool,
                          only, replicates: int, task_timeout, log) -> CaseStudyResult:
    _claim_folder(config, out, log)
    code = code_version()
    with InvocationLog(out, code) as invocation:
        result = _run_stages(config, out, scheduler, n_workers, progress, retry_failed, only, replicates, log,
                             invocation, task_timeout)
        result.invocations = invocation.invocations
        result.invocations[-1]["finished"] = True       # this one, by the time the report is read
        _write_timings(result, code)
        with open(result.report, "a") as fh:
            fh.write("\n" + "\n".join(setup_section(result, code)) + "\n")
    return result


def _run_stages(config: CaseStudyConfig, out: Path, scheduler, n_workers, progress, retry_failed: bool,
                only: Sequence[int] | None, replicates: int, log, invocation: InvocationLog,
                task_timeout: float | None = None) -> CaseStudyResult:
    """The stages of :func:`run_casestudy`, each recorded in `invocation` when done."""
    start = time.perf_counter()
    stage = prepare_casestudy_reference(config, out, progress=progress, log=log)
    data, sweep, paths, seconds = stage.data, stage.sweep, stage.paths, dict(stage.seconds)
    if task_timeout is not None:
        sweep = dataclasses.replace(sweep, task_timeout_seconds=task_timeout)
    for name, value in seconds.items():
        invocation.stage(name, value)
    clock = time.perf_counter()

    workers = n_workers if n_workers is not None else config.workers
    seeds = [sweep.seed + r for r in range(replicates)]
    runs = []
    for r, seed in enumerate(seeds, start=1):
        folder = replicate_folder(out, r, seed)
        runs.append(_run_sweep_stage(dataclasses.replace(sweep, seed=seed), folder, paths, scheduler,
                                     None if scheduler else workers, progress, retry_failed, only, log))
        clock = _timed(seconds, "sweep" if r == 1 else f"replicate_{r}", clock)
        invocation.stage("sweep" if r == 1 else f"replicate_{r}", seconds["sweep" if r == 1 else f"replicate_{r}"])
    summary, results, report, stats = runs[0]
    replicates_report = None
    if replicates > 1:
        from experiments.survival import logrank_by_optimizer
        replicates_report = write_replicates_report(
            out, seeds, [{**st, "logrank": logrank_by_optimizer(res)} for _, res, _, st in runs])
        log(f"replicates: {replicates_report}")
    clock = _timed(seconds, "report", clock)
    invocation.stage("report", seconds["report"])
    seconds["total"] = clock - start
    return CaseStudyResult(out, report, results, stats, summary, data, config, seconds, stage.world,
                           replicates_report)


def rewrite_report(out_dir: str | os.PathLike, report_dir: str | os.PathLike | None = None,
                   progress: bool | None = None) -> Path:
    """Write a finished case study's report again with the code running now
    (``fkb report OUT`` on a case-study folder): results and report from the
    emulators' records, the setup section from the folder's own
    ``casestudy.toml``, ``timings.json`` and ``reference/world.json``, and a
    line naming both the commit that ran the study and the one that wrote
    the report. Nothing is re-run; ``timings.json`` is left as it was.
    `progress`: the report's progress bar (None: on a terminal)."""
    out = Path(out_dir)
    for name in ("casestudy.toml", "timings.json", "results"):
        if not (out / name).exists():
            raise FileNotFoundError(f"{out}: not a finished case study (no {name})")
    config = load_casestudy(out / "casestudy.toml")
    timings = json.loads((out / "timings.json").read_text())
    world = None
    if (out / "reference" / "world.json").is_file():
        values = json.loads((out / "reference" / "world.json").read_text())
        names = {f.name for f in dataclasses.fields(WorldMetrics)}
        world = WorldMetrics(**{k: v for k, v in values.items() if k in names})
    results = collect_results(out)
    check_reportable(results)      # a missing column, or fewer than 2 finished runs: one line, nothing written
    results = with_survival(results)
    write_results(results, out)
    reference = out / "reference" / "reference.nc"
    report = make_report(results, Path(report_dir) if report_dir else out,
                         reference=reference if reference.is_file() else None, sections=warming_lines(out),
                         progress=progress)
    result = CaseStudyResult(out, report, results, headline_statistics(results), None, timings["data"], config,
                             timings["stages_seconds"], world, invocations=read_invocations(out))
    lines = setup_section(result, timings.get("code", {}), rewritten_by=code_version())
    with open(report, "a") as fh:
        fh.write("\n" + "\n".join(lines) + "\n")
    return report


def _run_sweep_stage(sweep: SweepConfig, out: Path, paths: Mapping[str, Any], scheduler, workers, progress,
                     retry_failed: bool, only: Sequence[int] | None, log) -> tuple[Any, Any, Path, dict]:
    """One sweep of the study in `out` (its emulators, results and report),
    scored against the reference runs `paths`: (summary, results, report,
    headline statistics)."""
    log(f"sweep: {sweep.n_emulators} emulators (seed {sweep.seed}"
        + (f"; design {sweep.design.describe()}" if sweep.design is not None else "") + "), one Dask task each "
        f"({'scheduler ' + scheduler if scheduler else 'local cluster'}) in {out / 'emulators'}")
    tasks = sweep.tasks(out, paths["reference"])
    if only is not None:
        unknown = sorted(set(only) - {task.index for task in tasks})
        if unknown:
            raise ValueError(f"--only: no emulator {unknown[0]} in this sweep (0-{sweep.n_emulators - 1})")
        tasks = [task for task in tasks if task.index in set(only)]
    summary = run_sweep(tasks, out, sweep.task, scheduler=scheduler, n_workers=workers, progress=progress,
                        retry_failed=retry_failed, task_timeout=sweep.task_timeout_seconds)
    log(f"  {summary}")
    results = with_survival(collect_results(out))
    write_results(results, out)
    report = make_report(results, out, reference=paths["reference"], progress=progress)
    return summary, results, report, headline_statistics(results)


def _emulator_timings(result: CaseStudyResult) -> list[dict[str, float]]:
    """Per emulator: task, training and coupled-run wall time [s], coupled
    days simulated, parameters of the network."""
    rows = []
    ds = result.results
    for i, index in enumerate(ds["emulator"].values):
        path = Path(result.out_dir) / "results" / f"emulator_{int(index):04d}.json"
        with open(path) as fh:
            record = json.load(fh)
        train = math.nan
        training_json = Path(record.get("work_dir", "")) / "training.json"
        if training_json.is_file():
            with open(training_json) as fh:
                train = float(sum(json.load(fh)["history"]["seconds"]))
        depth, width = int(ds["depth"].values[i]), int(ds["width"].values[i])
        n_in, n_out = 24, 25
        params = (n_in * width + width + (depth - 1) * (width * width + width) + width * n_out + n_out
                  if depth > 0 and width > 0 else math.nan)
        rows.append({"emulator": int(index), "task_seconds": float(record.get("seconds") or math.nan),
                     "fit_seconds": train, "coupled_days": float(ds["days_survived"].values[i]),
                     "parameters": params})
    return rows


def _write_timings(result: CaseStudyResult, code: Mapping[str, Any]) -> None:
    rows = _emulator_timings(result)
    info = {"stages_seconds": result.seconds, "emulators": rows, "data": result.data, "code": dict(code)}
    path = Path(result.out_dir) / "timings.json"
    write_text_replacing(path, json.dumps(info, indent=2, default=float) + "\n")


def _commit_text(code: Mapping[str, Any]) -> str:
    commit = code.get("commit")
    if not commit:
        return "a commit not recorded"
    return f"commit `{commit}`" + (" with changes not committed" if code.get("dirty") else "")


def setup_section(result: CaseStudyResult, code: Mapping[str, Any],
                  rewritten_by: Mapping[str, Any] | None = None) -> list[str]:
    """The report's section on the setup, the wall time of the stages and
    the code (`code`: :func:`code_version` of the run; `rewritten_by`: of
    the code writing the report again, if it does)."""
    c, d = result.config, result.data
    sweep = c.sweep(d["training"], d["checkpoint"])
    k = sweep.coupled
    s = result.seconds
    rows = _emulator_timings(result)
    task = [r["task_seconds"] for r in rows if math.isfinite(r["task_seconds"])]
    lines = ["## Setup", "",
             f"Case study `{c.name}` ({c.source}): {c.description}", "",
             f"- reference data: `{c.reference.preset}`"
             + (f" from the shipped spun-up state `{c.reference.initial_state}`" if c.reference.initial_state else "")
             + f", {c.reference.spinup_days:g}-day spin-up, then "
             f"{c.reference.data_days:g} days sampled every {c.reference.interval_hours:g} h: {d['samples']} samples "
             f"of {d['columns']} columns (days {d['first_day']:g}-{d['last_day']:g}), split by time into "
             "training, validation and test blocks (70/15/15 %);",
             f"- coupled runs: {k.days:g} days from day {d['coupled_start_day']:g} (the end of the data), "
             f"scored in windows of {k.window_days:g} days, output every {k.output_interval_hours:g} h; noise floor "
             f"from {k.n_perturbed} twins of the reference, started perturbed by {k.perturbation_kelvin:g} K"
             + (" and with their own subgrid random numbers" if k.reseed_physics else "") + ";",
             _emulators_line(sweep), "",
             "Wall time [s] of this invocation (0: reused from an earlier one):", "",
             "| reference data | reference runs | sweep | results + report | total |", "|---|---|---|---|---|",
             f"| {s['reference_data']:.0f} | {s['reference_runs']:.0f} | {s['sweep']:.0f} | {s['report']:.0f} "
             f"| {s['total']:.0f} |", ""]
    if len(result.invocations) > 1:
        lines += [f"The study took {len(result.invocations)} invocations on this folder, "
                  f"{total_seconds(result.invocations):.0f} s of wall time in all (`invocations.json`):", "",
                  "| started (UTC) | wall time [s] | stages completed | ended |", "|---|---|---|---|"]
        lines += [f"| {r['started']} | {r['elapsed_seconds']:.0f} | "
                  + (", ".join(f"{k} {v:.0f} s" for k, v in r["stages_seconds"].items()) or "none")
                  + f" | {'finished' if r['finished'] else 'interrupted'} |" for r in result.invocations]
        lines.append("")
    if task:
        lines.append(f"One emulator's task (train, export, couple, score): median {sorted(task)[len(task) // 2]:.0f} s, "
                     f"max {max(task):.0f} s; per-emulator times in `timings.json`.")
    if result.world is not None:
        lines += ["", "The reference's world over the coupled period (`reference/world.json`, experiments/world.py):",
                  "", "```", format_world(result.world), "```"]
    lines += ["", f"Code: the study ran at {_commit_text(code)}"
              + (f"; this report was written again at {_commit_text(rewritten_by)} (`fkb report`)."
                 if rewritten_by is not None else ".")]
    return lines


def _emulators_line(sweep: SweepConfig) -> str:
    """The setup's line on the emulators: drawn from the space, or a design's grid."""
    training = ", ".join(f"{key} = {v}" for key, v in sweep.training.items()) or "the defaults"
    if sweep.design is None:
        return f"- {sweep.n_emulators} emulators drawn with seed {sweep.seed}; fixed training settings: {training}."
    hp = sweep.hyperparameters()[0]
    fixed = {name: getattr(hp, name) for name in ("depth", "width", "activation", "leaky_relu_slope", "dropout",
                                                    "batch_normalization", "optimizer", "learning_rate", "batch_size")
             if name not in sweep.design.names}
    levels = "; ".join(f"{name} {', '.join(format_number(v) for v in values)}" for name, values in sweep.design.factors)
    return (f"- a designed sweep (coupler/design.py): {sweep.design.describe()} ({levels}; each repeat its own "
            f"training seed from sweep seed {sweep.seed}, shared by the cells); fixed: "
            + ", ".join(f"{name} = {format_number(v)}" for name, v in fixed.items()) + f"; training settings: {training}.")


def _designed_summary(results) -> list[str]:
    """A designed sweep's line: its first factor compared within the others (experiments/designed.py)."""
    if not is_designed(results):
        return []
    try:
        st = designed_statistics(results)
    except ValueError as exc:
        return [f"  designed comparison: none ({exc})"]
    test, free = st["logrank_stratified"], st["logrank_unstratified"]
    within = f" within each {' x '.join(st['strata'])}" if st["strata"] else ""
    offline = st["offline_model"]
    return [f"  designed: survival across {st['group']}s{within}: log-rank chi2 {format_number(test['statistic'])}, "
            f"{test['df']} df, p {format_number(test['p_value'])} (unstratified p {format_number(free['p_value'])}); "
            f"offline MSE across {st['group']}s{within}: F {format_number(offline['F'])}, "
            f"p {format_number(offline['p_value'])}"]


def _conservation_lines(results) -> list[str]:
    """The summary's lines on the budget residuals and the water-conservation layer."""
    stats = conservation_statistics(results)
    ref = stats["reference"]
    lines = []
    if stats["recorded"] and stats["groups"]["all"]["water"]["n"]:
        w, e = stats["groups"]["all"]["water"], stats["groups"]["all"]["energy"]
        lines.append(f"  budget residuals of the coupled runs (median [range], {w['n']} runs): water "
                     f"{format_number(w['median'])} [{format_number(w['min'])}, {format_number(w['max'])}] mm/day, "
                     f"energy {format_number(e['median'])} [{format_number(e['min'])}, {format_number(e['max'])}] "
                     f"W/m2; the reference's {format_number(ref['water_budget_residual'])} mm/day, "
                     f"{format_number(ref['energy_budget_residual'])} W/m2")
    test = stats["logrank"]
    if test is not None:
        with_, without = test["groups"].get("1", {}), test["groups"].get("0", {})
        lines.append(f"  survived with the water-conservation layer {with_.get('survived', 0)}/{with_.get('n', 0)}, "
                     f"without {without.get('survived', 0)}/{without.get('n', 0)} (log-rank p "
                     f"{format_number(test['p_value'])})")
    return lines


def summary_lines(result: CaseStudyResult) -> list[str]:
    """A few lines saying what the case study found, for the terminal."""
    st, res = result.stats, result.results
    k = result.config.sweep(result.data["training"], result.data["checkpoint"]).coupled
    lines = [f"case study {result.config.name!r}: {st['n_emulators']} emulators, {st['n_finished']} finished, "
             f"{st['n_failed']} failed; of the coupled runs ({k.days:g} days), {st['n_crashed']} crashed and "
             f"{st['n_survivors']} survived"]
    ok = res["status"].values == "ok"
    days = res["days_survived"].values[ok]
    if days.size:
        lines.append(f"  days survived: min {days.min():g}, median {float(sorted(days)[days.size // 2]):g}, "
                     f"max {days.max():g}")
    for label, key in (("online error (survivors)", "spearman_offline_vs_online_error_normalized"),
                       ("days survived (all)", "spearman_offline_vs_days_survived")):
        sp = st[key]
        lines.append(f"  offline validation MSE vs {label}: Spearman rho {format_number(sp['rho'])} "
                     f"{format_interval(sp)} (p {format_number(sp['p_value'])}, n {sp['n']})")
    floor = st["noise_floor"]
    survivors = ok & (res["crashed"].values == 0)
    errors = res["online_error_normalized"].values[survivors]
    if errors.size:
        multiples = st.get("survivors_error_over_noise_floor")
        lines.append(f"  online error of survivors (normalised): min {errors.min():.3g}, max {errors.max():.3g}; "
                     f"noise floor {format_number(floor['normalized'])} [{format_number(floor.get('normalized_min'))}-"
                     f"{format_number(floor.get('normalized_max'))}]"
                     + (f", the survivors at {multiples['min']:.3g}-{multiples['max']:.3g} times it"
                        if multiples else ""))
    by = st["by_optimizer"]
    if by:
        lines.append("  survived by optimizer: " + ", ".join(
            f"{name} {round(v['fraction_survived'] * v['n'])}/{v['n']}" for name, v in by.items()))
    lines += _designed_summary(res)
    lines += _conservation_lines(res)
    s = result.seconds
    lines.append(f"  wall time: reference data {s['reference_data']:.0f} s, reference runs {s['reference_runs']:.0f} s, "
                 f"sweep {s['sweep']:.0f} s, report {s['report']:.0f} s; total {s['total']:.0f} s")
    if result.replicates is not None:
        lines.append(f"replicates: {result.replicates}")
    lines.append(f"report: {result.report}")
    return lines
