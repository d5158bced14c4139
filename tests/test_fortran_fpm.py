"""The Fortran library builds and passes its own tests with the Fortran
package manager (fortran/fpm.toml; fpm from PyPI), from a copy of the
library's folder as a user would check it out."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _fpm() -> str:
    beside_python = Path(sys.executable).parent / "fpm"
    found = str(beside_python) if beside_python.exists() else shutil.which("fpm")
    if found is None:
        pytest.fail("fpm is not installed (scripts/setup.sh installs it from PyPI)")
    return found


@pytest.fixture(scope="module")
def fpm_package(tmp_path_factory) -> Path:
    package = tmp_path_factory.mktemp("fpm") / "fkb"
    package.mkdir()
    for name in ("fpm.toml", "src", "test"):
        source = ROOT / "fortran" / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, package / name)
    return package


def _fpm_run(package: Path, *arguments: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "OMP_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "1"}
    return subprocess.run(["nice", "-n", "10", _fpm(), *arguments, "--profile", "release"], cwd=package,
                          capture_output=True, text=True, env=environment)


def test_fpm_builds_the_library_from_its_sources_found_in_src(fpm_package):
    result = _fpm_run(fpm_package, "build")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    libraries = list((fpm_package / "build").rglob("libfkb.a"))
    assert libraries, "fpm build made no libfkb.a"


def test_fpm_test_runs_the_library_tests_and_they_pass(fpm_package):
    result = _fpm_run(fpm_package, "test")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    passed = dict(re.findall(r"^(.*): (\d+ of \d+) checks passed$", output, re.M))
    for suite in ("network", "keras reference, real32", "keras reference, real64", "save_resume", "training",
                  "errors", "model file", "ensemble"):
        assert suite in passed, f"no result of the {suite} tests:\n{output[-4000:]}"
        done, total = passed[suite].split(" of ")
        assert done == total != "0"
