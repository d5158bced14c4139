"""The Fortran library as a package: ``cmake --install`` gives what
``find_package(fkb)`` needs, a host model builds against it and predicts;
an install prefix that cannot be written is refused in one line before
anything is installed."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import tomllib
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
COMPAT = ROOT / "tests" / "data" / "fkb-compat"


def _run(command: list[str], **options) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, **options)


def _ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return result


@pytest.fixture(scope="module")
def library_build():
    """The library alone (no tests, no examples), configured and built in a
    folder every user can read (the permission test installs as another user)."""
    folder = Path(tempfile.mkdtemp(prefix="fkb-package-"))
    folder.chmod(0o755)
    build = folder / "build"
    _ok(_run(["cmake", "-S", str(ROOT / "fortran"), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release",
              "-DFKB_BUILD_TESTS=OFF", "-DFKB_BUILD_EXAMPLE=OFF"]))
    _ok(_run(["nice", "-n", "10", "cmake", "--build", str(build), "-j2", "--target", "fkb"]))
    yield build
    shutil.rmtree(folder, ignore_errors=True)


def _install(build: Path, prefix: Path, as_user: list[str] = ()) -> subprocess.CompletedProcess:
    return _run([*as_user, "cmake", "--install", str(build), "--prefix", str(prefix)])


@pytest.fixture(scope="module")
def installed(library_build, tmp_path_factory) -> Path:
    prefix = tmp_path_factory.mktemp("prefix")
    _ok(_install(library_build, prefix))
    return prefix


def test_install_gives_the_library_its_modules_and_a_package_config(installed):
    assert (installed / "lib" / "libfkb.a").is_file()
    modules = {p.name for p in (installed / "include" / "fkb").glob("*.mod")}
    assert {"fkb.mod", "fkb_network_r32.mod", "fkb_sha256.mod"} <= modules
    config = installed / "lib" / "cmake" / "fkb"
    assert {"fkbConfig.cmake", "fkbConfigVersion.cmake", "fkbTargets.cmake"} <= {p.name for p in config.iterdir()}
    assert "fkb::fkb" in (config / "fkbTargets.cmake").read_text()


def test_the_package_version_is_the_python_package_version(installed):
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    text = (installed / "lib" / "cmake" / "fkb" / "fkbConfigVersion.cmake").read_text()
    assert f'set(PACKAGE_VERSION "{version}")' in text


def test_a_host_model_builds_with_find_package_and_predicts(installed, tmp_path):
    build = tmp_path / "host"
    _ok(_run(["cmake", "-S", str(ROOT / "fortran" / "example" / "host_model"), "-B", str(build),
              f"-DCMAKE_PREFIX_PATH={installed}"]))
    _ok(_run(["cmake", "--build", str(build)]))
    # the layout the docs state: a C-ordered (n_columns, n_inputs) array is
    # the library's x(n_inputs, n_columns) as it is
    x = np.load(COMPAT / "simple_model_with_weights.x.npy").astype(np.float32)
    expected = np.load(COMPAT / "simple_model_with_weights.y_fkb.npy")
    x.tofile(tmp_path / "x.bin")
    _ok(_run([str(build / "host_model"), str(COMPAT / "simple_model_with_weights.txt"), str(len(x)),
              str(tmp_path / "x.bin"), str(tmp_path / "y.bin")], env={**os.environ, "OMP_NUM_THREADS": "1"}))
    y = np.fromfile(tmp_path / "y.bin", np.float32).reshape(len(x), -1)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)
    missing = _run([str(build / "host_model"), str(tmp_path / "no.fkb"), "1", str(tmp_path / "x.bin"),
                    str(tmp_path / "y.bin")])
    assert missing.returncode == 1 and missing.stderr.strip() == f"host_model: {tmp_path / 'no.fkb'}: no such file"


def test_find_package_refuses_an_older_version_than_asked(installed, tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    (source / "CMakeLists.txt").write_text("cmake_minimum_required(VERSION 3.20)\nproject(host LANGUAGES Fortran)\n"
                                           "find_package(fkb 99.0 REQUIRED)\n")
    result = _run(["cmake", "-S", str(source), "-B", str(tmp_path / "b"), f"-DCMAKE_PREFIX_PATH={installed}"])
    assert result.returncode != 0
    assert "fkb" in result.stderr and "99.0" in result.stderr


def test_an_install_prefix_that_is_not_a_folder_is_refused_in_one_line(library_build, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder\n")
    result = _install(library_build, blocker / "prefix")
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if "fkb:" in line]
    assert len(lines) == 1 and f"cannot install into {blocker / 'prefix'}" in lines[0], result.stderr
    assert blocker.read_text() == "not a folder\n"


def _unprivileged() -> list[str]:
    """The command prefix that runs a command without the rights to write
    into a folder the test made read-only (root ignores permissions)."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: cannot drop the rights to write")
    return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def test_an_install_prefix_without_write_permission_is_refused_and_left_as_it_was(library_build, tmp_path):
    prefix = Path(tempfile.mkdtemp(prefix="fkb-readonly-"))
    try:
        _ok(_install(library_build, prefix))
        before = {p: p.read_bytes() for p in prefix.rglob("*") if p.is_file()}
        for folder in [prefix, *[p for p in prefix.rglob("*") if p.is_dir()]]:
            folder.chmod(0o555)
        result = _install(library_build, prefix, as_user=_unprivileged())
        assert result.returncode != 0
        lines = [line for line in result.stderr.splitlines() if "fkb:" in line]
        assert len(lines) == 1 and "cannot install into" in lines[0] and "not writable" in lines[0], result.stderr
        assert {p: p.read_bytes() for p in prefix.rglob("*") if p.is_file()} == before
    finally:
        for folder in [prefix, *[p for p in prefix.rglob("*") if p.is_dir()]]:
            folder.chmod(0o755)
        shutil.rmtree(prefix, ignore_errors=True)
