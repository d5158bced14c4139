"""Every netCDF file the project writes is CF and says where it came from:
the CF checker (cfchecker, with the CF standard name table as
compliance-checker ships it) finds no error in one file of each kind, and
each carries ``Conventions`` and a ``history`` line naming the command and
the package version."""
from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from emulators.provenance import package_version

# Neither table is shipped on PyPI; the project's files use no area_type and
# no region, so an empty table of each is the honest one (a file that used
# either would be an error).
EMPTY_AREA_TYPES = ("<area_type_table><version_number>none</version_number><date>none</date>"
                    "</area_type_table>\n")
EMPTY_REGIONS = ("<standardized_region_list><version_number>none</version_number><date>none</date>"
                 "</standardized_region_list>\n")


def _standard_name_table() -> Path:
    spec = importlib.util.find_spec("compliance_checker")   # found, not imported: only its data is used
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("compliance-checker is not installed (scripts/setup.sh installs it for its standard name table)")
    return Path(list(spec.submodule_search_locations)[0]) / "data" / "cf-standard-name-table.xml"


@pytest.fixture(scope="module")
def cf_check(tmp_path_factory):
    """check(path) -> (errors, warnings): the CF checker's messages on the
    file, for the CF version its ``Conventions`` names."""
    from cfchecker.cfchecks import CFChecker

    tables = tmp_path_factory.mktemp("cf-tables")
    (tables / "area-types.xml").write_text(EMPTY_AREA_TYPES)
    (tables / "regions.xml").write_text(EMPTY_REGIONS)

    def check(path: Path) -> tuple[list[str], list[str]]:
        checker = CFChecker(cfStandardNamesXML=str(_standard_name_table()),
                            cfAreaTypesXML=str(tables / "area-types.xml"),
                            cfRegionNamesXML=str(tables / "regions.xml"), version=None, silent=True)
        results = checker.checker(str(path))
        errors, warnings = [], []
        scopes = [("global", results["global"])] + list(results["variables"].items())
        for scope, messages in scopes:
            errors += [f"{scope}: {m}" for m in messages.get("FATAL", []) + messages.get("ERROR", [])]
            warnings += [f"{scope}: {m}" for m in messages.get("WARN", [])]
        return errors, warnings

    return check


@pytest.fixture(scope="module")
def results_file(crashed_run, tmp_path_factory) -> Path:
    """A sweep's results.nc, from one emulator's record of the crashed run."""
    from coupler.results import collect_results, write_results

    folder = tmp_path_factory.mktemp("sweep")
    (folder / "results").mkdir()
    record = {"index": 0, "status": "ok", "hyperparameters": {"depth": 1, "width": 8, "optimizer": "adam"},
              "offline": {"validation_mse": 0.1},
              "online": {"crashed": True, "days_survived": 3.0, "run_days": 6.0},
              "artifacts": {"run": str(crashed_run / "coupled.nc")}}
    (folder / "results" / "emulator_0000.json").write_text(json.dumps(record))
    nc_path, _ = write_results(collect_results(folder), folder)
    return nc_path


@pytest.fixture(scope="module")
def trained(tiny_casestudy_reference, tmp_path_factory) -> dict[str, Path]:
    """The files of a training (one epoch of a small network on the tiny
    study's data): normalization.nc and metrics.nc among them."""
    from emulators.train import train_emulator

    result = train_emulator(None, tiny_casestudy_reference["stage"].data["training"],
                            hyperparameters={"depth": 1, "width": 8, "epochs": 1, "batch_size": 256},
                            out_dir=tmp_path_factory.mktemp("trained"), verbose=0, export=False)
    return result.files


@pytest.fixture(scope="module")
def files(tiny_casestudy_reference, crashed_run, results_file, trained) -> dict[str, Path]:
    out = tiny_casestudy_reference["out"]
    return {
        "GCM output (reference run)": out / "reference" / "reference.nc",
        "GCM output (coupled run)": crashed_run / "coupled.nc",
        "training data (fkb data)": Path(tiny_casestudy_reference["stage"].data["training"]),
        "noise floor": out / "reference" / "noise_floor.nc",
        "score (fkb couple)": crashed_run / "score.nc",
        "crash record": crashed_run / "coupled_crash.nc",
        "results of a sweep": results_file,
        "normalization (fkb train)": trained["normalization"],
        "offline metrics (fkb train)": trained["metrics"],
    }


KINDS = ["GCM output (reference run)", "GCM output (coupled run)", "training data (fkb data)", "noise floor",
         "score (fkb couple)", "crash record", "results of a sweep", "normalization (fkb train)",
         "offline metrics (fkb train)"]


@pytest.mark.parametrize("kind", KINDS)
def test_the_cf_checker_finds_no_error(kind, files, cf_check):
    errors, _ = cf_check(files[kind])
    assert errors == []


@pytest.mark.parametrize("kind", KINDS)
def test_every_file_names_its_conventions_command_and_package_version(kind, files):
    with xr.open_dataset(files[kind], decode_times=False) as ds:
        assert ds.attrs["Conventions"] == "CF-1.8"
        lines = ds.attrs["history"].splitlines()
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ "
    assert lines and all(re.match(stamp, line) for line in lines), lines
    assert f"(fkb {package_version()})" in lines[-1]


def test_the_score_has_units_and_long_names(files):
    with xr.open_dataset(files["score (fkb couple)"]) as score:
        for name in list(score.data_vars) + list(score.coords):
            assert "long_name" in score[name].attrs, name
            assert "units" in score[name].attrs, name
        assert score["online_error_t"].attrs["units"] == "K"
        assert score["days_survived"].attrs["units"] == "days"


def test_the_command_line_is_the_history(tmp_path, capsys, tiny_casestudy_reference):
    from fkb_cli import main

    out = tiny_casestudy_reference["out"] / "reference"
    target = tmp_path / "score.nc"
    argv = ["score", str(out / "perturbed_1.nc"), "--reference", str(out / "reference.nc"),
            "--window-days", "1", "--output", str(target)]
    saved, sys.argv = sys.argv, ["/usr/local/bin/fkb", *argv]
    try:
        assert main(argv) == 0
        assert main(argv) == 0           # the file written again: its history keeps the first line
    finally:
        sys.argv = saved
    capsys.readouterr()
    with xr.open_dataset(target) as score:
        lines = score.attrs["history"].splitlines()
    assert len(lines) == 2
    for line in lines:
        assert f"fkb score {out / 'perturbed_1.nc'} --reference" in line and "--window-days 1" in line
        assert line.endswith(f"(fkb {package_version()}): score of a GCM run against a reference run")


def test_write_dataset_leaves_the_dataset_it_writes_unchanged(tmp_path):
    from emulators.netcdf_files import write_dataset

    ds = xr.Dataset({"x": ("n", np.arange(3.0), {"units": "1", "long_name": "x"})}, attrs={"title": "t"})
    write_dataset(ds, tmp_path / "a.nc", note="test")
    assert dict(ds.attrs) == {"title": "t"}
    with xr.open_dataset(tmp_path / "a.nc") as written:
        assert written.attrs["title"] == "t" and written.attrs["history"].endswith(": test")
