"""``fkb gcm ...``: run the toy GCM and look at its output."""
from __future__ import annotations

import argparse
from pathlib import Path

from emulators.progress import add_progress_option
from fkb_cli.errors import UserError

# Each command imports what it runs when it runs, so that `fkb --help` and a user's mistake load no
# TensorFlow, Dask or Fortran extension.


# --------------------------------------------------------------------- gcm
def cmd_gcm_run(args: argparse.Namespace) -> None:
    from gcm_toy import Model, parse_overrides
    from gcm_toy.run import day_label
    overrides = parse_overrides(args.set)
    if args.output_interval_hours is not None:
        overrides["output_interval_hours"] = args.output_interval_hours
    if args.physics is not None:
        overrides["physics"] = args.physics
    if args.emulator:
        overrides["emulator"] = args.emulator
    if args.emulator_precision is not None:
        overrides["emulator_precision"] = args.emulator_precision
    if args.limit_humidity:
        overrides["limit_humidity"] = True
    if args.limit_precipitation:
        overrides["limit_precipitation"] = True
    if args.restart:
        model = Model.from_checkpoint(args.restart, overrides, config=args.preset)
    else:
        model = Model(args.preset or "held-suarez", overrides)
    out = Path(args.out)
    start = model.time_days
    output = out / f"gcm_day{day_label(start)}.nc"
    ds = model.run(args.days, output, overwrite=args.overwrite, checkpoint_every_days=args.checkpoint_every,
                   checkpoint_dir=out, progress=args.progress)
    records = f"{ds.sizes['time']} records"
    if ds.attrs["run_status"] == "crashed":
        message = f"run stopped at day {float(ds.attrs['crash_time_days']):g}: {ds.attrs['crash_reason']}"
        if args.fail_on_crash:
            raise UserError(message)
        print(message)
        last = float(ds.time[-1]) if ds.sizes["time"] else start
        print(f"wrote {output} ({records}, days {start:g}-{last:g}; run_status = crashed, no checkpoint)")
        return
    checkpoint = model.save_checkpoint(out / f"checkpoint_day{day_label(model.time_days)}.bin")
    print(f"wrote {output} ({records}, days {start:g}-{model.time_days:g}) and {checkpoint}")


def cmd_gcm_presets(args: argparse.Namespace) -> None:
    from gcm_toy import list_presets
    presets = list_presets()
    width = max(len(name) for name in presets)
    for name, description in presets.items():
        print(f"{name:<{width}}  {description}")


def cmd_gcm_options(args: argparse.Namespace) -> None:
    from gcm_toy import GCMConfig, load_config
    config = load_config(args.preset)
    docs = GCMConfig.option_docs()
    width = max(len(name) for name in docs)
    for name, doc in docs.items():
        value = getattr(config, name)
        shown = "(default)" if value is None else repr(value)
        print(f"{name:<{width}}  {shown:<22}  {doc}")


def cmd_gcm_twin(args: argparse.Namespace) -> None:
    from gcm_toy import parse_overrides
    from gcm_toy.twin import run_twins, twin_table
    out = Path(args.out)
    target = out / "twin.nc"
    if target.exists() and not args.overwrite:
        raise UserError(f"{target} exists (pass --overwrite to replace it)")
    if args.restart is None and args.preset is None:
        raise UserError("give --restart CHECKPOINT (a spun-up state) or --preset NAME (with --spinup-days)")
    from gcm_toy.run import days_progress_bar
    with days_progress_bar(args.progress, args.days, 0.0, f"control and {args.twins} twins") as bar:
        result = run_twins(args.preset, args.restart, overrides=parse_overrides(args.set),
                           spinup_days=args.spinup_days, days=args.days, amplitude=args.perturb,
                           kind=args.perturbation, n_twins=args.twins, seed=args.seed, sample_hours=args.sample_hours,
                           reseed_physics=args.reseed_physics, progress=lambda day: bar.update(day - bar.n))
    out.mkdir(parents=True, exist_ok=True)
    from emulators.netcdf_files import write_dataset
    write_dataset(result.curves, target)
    print(twin_table(result))
    print(f"wrote {target}")


def cmd_gcm_spin_up(args: argparse.Namespace) -> None:
    from experiments.states import recipes, regenerate
    if args.list or not args.name:
        for name, recipe in recipes().items():
            print(f"{name:<18} {recipe.description}")
        return
    regenerate(args.name, days=args.days, out_dir=args.out, progress=args.progress)


def cmd_gcm_plot_held_suarez(args: argparse.Namespace) -> None:
    from experiments.held_suarez import held_suarez_report
    held_suarez_report(args.run, spinup_days=args.spinup_days, out_dir=args.out)


def cmd_gcm_plot_aquaplanet(args: argparse.Namespace) -> None:
    from experiments.aquaplanet_climate import aquaplanet_report
    aquaplanet_report(args.run, spinup_days=args.spinup_days, out_dir=args.out, plots=not args.no_plots)


def add_gcm_parser(sub) -> None:
    """The `fkb gcm` command group: run, presets, options, plot-held-suarez, plot-aquaplanet."""
    p = sub.add_parser("gcm", help="run the toy GCM and look at its output",
                       description="The toy climate model: a spectral dynamical core with column physics.")
    gcm = p.add_subparsers(dest="gcm_command", metavar="GCM_COMMAND")
    gcm.required = True

    p = gcm.add_parser("run", help="run the toy GCM from a preset or a checkpoint, writing netCDF",
                       description="Run the toy GCM. Writes OUT/gcm_dayNNNNN.nc (NNNNN = start day; instantaneous "
                                   "u, v, t, (q), ps and their means over each output interval, CF netCDF4, flushed "
                                   "record by record) and a final checkpoint OUT/checkpoint_dayMMMMM.bin (+ .toml). "
                                   "A run that fails the crash check (NaN/Inf, T outside 150-350 K, wind above "
                                   "250 m/s, ps outside 400-1100 hPa by default) is data: it stops, keeps its output, "
                                   "records why/when/where in the file's attributes, prints 'run stopped at day X: "
                                   "...' and exits 0 (1 with --fail-on-crash).")
    p.add_argument("--preset", default=None,
                   help="preset name (see `fkb gcm presets`) or TOML file (default: held-suarez; with --restart: "
                        "the checkpoint's configuration)")
    p.add_argument("--days", type=float, default=None, help="simulated days (default: the preset's `days`)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a configuration option (repeatable; see `fkb gcm options`)")
    p.add_argument("--output-interval-hours", type=float, default=None, metavar="H",
                   help="interval of the output records [h] (a multiple of the time step)")
    p.add_argument("--physics", default=None,
                   help="column physics: none (dynamics only), held-suarez, or the moist aquaplanet physics with "
                        "its cloud and radiation part from the reference (toy superparameterization), an emulator "
                        "or an ensemble of emulators (default: the preset's)")
    p.add_argument("--emulator", nargs="+", default=None, metavar="PATH",
                   help="model file(s) for --physics emulator (one) or ensemble (several); checked against the "
                        "emulator interface (names, units, sizes) before the first step")
    p.add_argument("--emulator-precision", choices=("float32", "float64"), default=None,
                   help="arithmetic of the networks (default: float32)")
    p.add_argument("--limit-humidity", action="store_true",
                   help="emulator limiter: clip dq/dt at -q/dt (then fill negative humidity)")
    p.add_argument("--limit-precipitation", action="store_true", help="emulator limiter: clip precipitation at 0")
    p.add_argument("--restart", default=None, metavar="CHECKPOINT",
                   help="continue from a checkpoint (bit for bit the uninterrupted run)")
    p.add_argument("--checkpoint-every", type=float, default=None, metavar="DAYS",
                   help="also write a checkpoint into DIR at every multiple of DAYS of model time")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.add_argument("--fail-on-crash", action="store_true", help="exit 1 if the run crashes")
    add_progress_option(p)
    p.set_defaults(func=cmd_gcm_run)

    p = gcm.add_parser("twin", help="twin experiment: growth of a small temperature perturbation",
                       description="Run a control and perturbed twins (seeded temperature noise of RMS --perturb "
                                   "K) from one state and write OUT/twin.nc: every --sample-hours the RMS "
                                   "difference of T, v and ps, and of T by latitude band and by total-wavenumber "
                                   "band; prints the growth table and the doubling time fitted to the exponential "
                                   "phase (docs/gcm-dynamics.md, 'Error growth').")
    p.add_argument("--preset", default=None,
                   help="preset name or TOML file (with --restart: default the checkpoint's configuration)")
    p.add_argument("--restart", default=None, metavar="CHECKPOINT", help="start from this spun-up state")
    p.add_argument("--spinup-days", type=float, default=0.0,
                   help="without --restart: run the preset this long before perturbing (default: %(default)s)")
    p.add_argument("--days", type=float, default=30.0, help="length of the twin runs (default: %(default)s)")
    p.add_argument("--perturb", type=float, default=0.01, metavar="KELVIN",
                   help="RMS amplitude of the temperature perturbation (default: %(default)s)")
    p.add_argument("--perturbation", choices=("grid", "synoptic"), default="grid",
                   help="noise at every grid point, or in total wavenumbers 6-15 only (default: %(default)s)")
    p.add_argument("--twins", type=int, default=3, help="number of perturbed twins (default: %(default)s)")
    p.add_argument("--seed", type=int, default=1, help="seed of the first twin's noise (default: %(default)s)")
    p.add_argument("--sample-hours", type=float, default=6.0,
                   help="interval between measurements (default: %(default)s)")
    p.add_argument("--reseed-physics", action="store_true",
                   help="twin k also draws the reference physics' subgrid random numbers with seed + k (a "
                        "different realization of the unresolved convection)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a configuration option (repeatable)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--overwrite", action="store_true", help="replace an existing OUT/twin.nc")
    add_progress_option(p)
    p.set_defaults(func=cmd_gcm_twin)

    p = gcm.add_parser("spin-up", help="make a shipped spun-up state from its recipe",
                       description="Run the recipe of a spun-up state (experiments/states/states.toml: a preset, "
                                   "its options and a number of days) and write experiments/states/NAME.bin and "
                                   "NAME.bin.toml, the state case studies start from (docs/gcm.md, 'Shipped "
                                   "spun-up states'). Without NAME: list the recipes.")
    p.add_argument("name", nargs="?", metavar="NAME", help="the state to make")
    p.add_argument("--days", type=float, default=None, help="run this long instead of the recipe's days (tests)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="write the state here instead of experiments/states/")
    p.add_argument("--list", action="store_true", help="list the recipes")
    add_progress_option(p)
    p.set_defaults(func=cmd_gcm_spin_up)

    p = gcm.add_parser("presets", help="list the presets", description="List the toy-GCM presets.")
    p.set_defaults(func=cmd_gcm_presets)

    p = gcm.add_parser("options", help="list the configuration options and a preset's values",
                       description="List every configuration option (for --set KEY=VALUE), its value in a "
                                   "preset and its meaning and unit.")
    p.add_argument("--preset", default="held-suarez", help="preset name or TOML file (default: %(default)s)")
    p.set_defaults(func=cmd_gcm_options)

    p = gcm.add_parser("plot-held-suarez", help="Held-Suarez figures and jet numbers from a run folder",
                       description="Latitude-pressure figures of the time- and zonal-mean u and T after a "
                                   "spin-up, and the jet maxima and tropical surface winds.")
    p.add_argument("run", metavar="DIR", help="run folder (gcm_day*.nc) or a netCDF file")
    p.add_argument("--spinup-days", type=float, default=200.0,
                   help="discard records before this model day (default: %(default)s)")
    p.add_argument("--out", default=None, help="figure folder (default: DIR)")
    p.set_defaults(func=cmd_gcm_plot_held_suarez)

    p = gcm.add_parser("plot-aquaplanet", help="aquaplanet climate figures and numbers from a run folder",
                       description="Zonal means after a spin-up: latitude-pressure figures of T, q, u and "
                                   "cloud, precipitation and evaporation and the TOA and surface fluxes against "
                                   "latitude; prints global precipitation and evaporation, the ITCZ, the "
                                   "subtropical minima, the jets and the global fluxes.")
    p.add_argument("run", metavar="DIR", help="run folder (gcm_day*.nc) or a netCDF file")
    p.add_argument("--spinup-days", type=float, default=40.0,
                   help="discard records before this model day (default: %(default)s)")
    p.add_argument("--out", default=None, help="figure folder (default: DIR)")
    p.add_argument("--no-plots", action="store_true", help="only print the numbers")
    p.set_defaults(func=cmd_gcm_plot_aquaplanet)
