"""Bad output paths and unreadable inputs on the command line: one line
naming the problem, exit status 1, the previous outputs intact."""
from __future__ import annotations

import pytest

from fkb_cli import main

MODEL = "tests/data/fkb-compat/simple_model_with_weights.txt"

# every command whose --out names a folder, with the rest of a valid call
COMMANDS = {
    "gcm run": ["gcm", "run", "--preset", "held-suarez-t10", "--days", "1", "--overwrite", "--no-progress"],
    "gcm twin": ["gcm", "twin", "--preset", "held-suarez-t10", "--days", "1", "--overwrite"],
    "data": ["data", "--preset", "aquaplanet-t10", "--days", "1", "--overwrite"],
    "train": ["train", "--data", "training.nc"],
    "couple": ["couple", "--emulator", MODEL, "--reference", "reference", "--overwrite"],
    "sweep": ["sweep", "--overwrite"],
    "casestudy": ["casestudy", "--preset", "quick"],
    "demo": ["demo"],
}


@pytest.mark.parametrize("command", COMMANDS, ids=str)
def test_an_out_that_is_a_file_is_refused_and_kept(command, tmp_path, capsys):
    target = tmp_path / "results.txt"
    target.write_text("earlier results\n")
    status = main([*COMMANDS[command], "--out", str(target)])
    err = capsys.readouterr().err
    assert status == 1
    assert err.strip() == (f"fkb {command.split()[0]}: error: {target}: exists and is not a folder "
                           "(--out names an output folder); left as it was")
    assert target.read_text() == "earlier results\n"


def test_report_names_a_results_file_that_is_not_netcdf(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "results.nc").write_text("not netCDF\n")
    assert main(["report", str(sweep), "--no-progress"]) == 1
    assert capsys.readouterr().err.strip() == f"fkb report: error: {sweep / 'results.nc'}: not a netCDF file"
    assert (sweep / "results.nc").read_text() == "not netCDF\n"
