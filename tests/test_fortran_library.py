"""The standalone Fortran library: its CMake build, its own unit tests (ctest),
and the example program a Fortran user starts from."""
from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "tests" / "data" / "fkb-compat" / "simple_model_with_weights.txt"

@pytest.fixture(scope="module")
def cmake_build(fortran_cmake) -> Path:
    return fortran_cmake()


def test_fortran_unit_tests_pass_under_ctest(cmake_build):
    result = subprocess.run(["ctest", "--output-on-failure"], cwd=cmake_build, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-6000:]
    assert "100% tests passed" in result.stdout


def _example(cmake_build: Path) -> Path:
    found = [p for p in cmake_build.rglob("fkb_predict_example") if p.is_file()]
    assert found, "example program not built"
    return found[0]


def test_example_program_reproduces_original_fkb_outputs(cmake_build, tmp_path):
    x = np.load(SAMPLE.parent / "simple_model_with_weights.x.npy")
    y_fkb = np.load(SAMPLE.parent / "simple_model_with_weights.y_fkb.npy")
    inputs = tmp_path / "x.txt"
    np.savetxt(inputs, x, fmt="%.9g")
    result = subprocess.run([str(_example(cmake_build)), str(SAMPLE), str(inputs)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    y = np.loadtxt(result.stdout.splitlines(), ndmin=2)
    assert y.shape == y_fkb.shape
    np.testing.assert_allclose(y, y_fkb, rtol=1e-5, atol=1e-6 * np.abs(y_fkb).max())


def test_example_program_reports_a_missing_file_and_fails(cmake_build, tmp_path):
    result = subprocess.run([str(_example(cmake_build)), str(tmp_path / "nope.fkb"), str(tmp_path / "x.txt")],
                            capture_output=True, text=True)
    assert result.returncode != 0
    assert "nope.fkb" in (result.stderr + result.stdout)
