#!/usr/bin/env bash
# Set up everything the project needs, idempotently: gfortran, OpenBLAS,
# CMake and UDUNITS-2 from Debian's packages, a virtual environment (.venv, or $FKB_VENV), the
# pinned Python dependencies, and the package itself (editable, so a change to
# the Fortran or Python sources is rebuilt on the next import).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v gfortran >/dev/null 2>&1 || missing+=(gfortran)
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
command -v cmake >/dev/null 2>&1 || missing+=(cmake)   # the standalone Fortran build and its tests
command -v make >/dev/null 2>&1 || missing+=(make)
[ -e /usr/lib/x86_64-linux-gnu/pkgconfig/openblas.pc ] || [ -e /usr/lib/aarch64-linux-gnu/pkgconfig/openblas.pc ] \
  || pkg-config --exists openblas 2>/dev/null || missing+=(libopenblas-dev)
# UDUNITS-2, for the CF checker of the tests (cfunits loads it by name)
ldconfig -p 2>/dev/null | grep -q 'libudunits2\.so\.0' || missing+=(libudunits2-0)
[ -e /usr/include/udunits2.h ] || [ -e /usr/include/udunits2/udunits2.h ] || missing+=(libudunits2-dev)
python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
python3 -c 'import os, sysconfig; assert os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h"))' \
  2>/dev/null || missing+=(python3-dev)   # headers for the f2py extension
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
fi

venv=${FKB_VENV:-$root/.venv}
if [ ! -x "$venv/bin/python" ]; then
  echo "setup: creating virtual environment $venv"
  python3 -m venv "$venv"
fi
py="$venv/bin/python"
export PATH="$venv/bin:$PATH"

stamp="$venv/.fkb-deps-$(cat pyproject.toml requirements/constraints.txt | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "setup: installing Python dependencies (first run takes a few minutes)"
  "$py" -m pip install -q --upgrade pip
  "$py" -m pip install -q -c requirements/constraints.txt \
    meson-python meson ninja fypp numpy scipy-openblas32 onnx onnxruntime \
    keras tensorflow-cpu h5py xarray netCDF4 dask distributed scipy matplotlib tqdm statsmodels pytest hypothesis import-linter \
    ford cfchecker cfunits fpm
  # the CF standard name table, which cfchecker would download: compliance-checker ships it
  # (only its data file is used, so none of its dependencies)
  "$py" -m pip install -q --no-deps -c requirements/constraints.txt compliance-checker
  rm -f "$venv"/.fkb-deps-* && touch "$stamp"
fi

if ! "$py" -c 'import emulators._fkb_runtime' >/dev/null 2>&1; then
  echo "setup: building and installing the package (Fortran library + Python extension)"
  "$py" -m pip install -q --no-build-isolation --no-deps -e .
fi
