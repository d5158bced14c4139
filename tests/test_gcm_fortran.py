"""The toy GCM's own Fortran tests: spectral transforms, the dynamical core
(resting atmosphere, Rossby-Haurwitz wave, Jablonowski-Williamson steady
state, mass and humidity conservation, restarts, crash reports) and the column
physics (budgets, positivity, determinism, a single-column RCE run)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_dynamical_core_fortran_tests_pass(tmp_path):
    """The CMake build of the dynamical core and the column physics with their
    unit tests (ctest; the coupling library, which needs the FKB library, is
    built and tested by run_tests.sh below, the single-column run there too)."""
    build = tmp_path / "gcm-build"
    subprocess.run(["cmake", "-S", str(ROOT / "gcm_toy"), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release",
                    "-DGCM_BUILD_COUPLING=OFF"], check=True, capture_output=True)
    result = subprocess.run(["cmake", "--build", str(build), "-j2"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    result = subprocess.run(["ctest", "--output-on-failure", "-E", "scm"], cwd=build, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-6000:]
    assert "100% tests passed" in result.stdout
    assert "physics_test_emulated_physics" in result.stdout and "dycore_test_dycore" in result.stdout


def test_column_physics_fortran_tests_pass(tmp_path):
    result = subprocess.run(["bash", str(ROOT / "gcm_toy" / "tests_fortran" / "physics" / "run_tests.sh")],
                            env={"PATH": "/usr/bin:/bin:/usr/local/bin", "PHYSICS_BUILD_DIR": str(tmp_path)},
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]


def test_coupling_fortran_tests_pass(tmp_path):
    """The emulator hook in Fortran: interface check, exact scatter of a known
    network, ensembles, limiters, non-finite outputs (test_coupling)."""
    result = subprocess.run(["bash", str(ROOT / "gcm_toy" / "tests_fortran" / "coupling" / "run_tests.sh"), "fast"],
                            env={"PATH": "/usr/bin:/bin:/usr/local/bin", "COUPLING_BUILD_DIR": str(tmp_path),
                                 "PYTHON": sys.executable},
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
