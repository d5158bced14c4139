#!/usr/bin/env bash
# Build the toy GCM (dynamical core + column physics + coupling) with the FKB
# library and run the coupling tests.
#
#   bash run_tests.sh            fast tests (test_coupling: interface, emulator
#                                path, mismatches, non-finite output, limiters,
#                                training batch; ~10 s), then the 30-day T10
#                                aquaplanet reference run (test_aquaplanet_run)
#   bash run_tests.sh fast       only test_coupling
#   bash run_tests.sh debug      test_coupling built with runtime checks
#   bash run_tests.sh build      only build (programs in $COUPLING_BUILD_DIR)
#
# The FKB library is built with CMake into $COUPLING_BUILD_DIR/fkb
# (`cmake -S fortran -B <dir>`), linked as libfkb.a -lopenblas. The test
# networks are written by make_test_networks.py with the project's venv
# ($PYTHON, default: the repository's .venv/bin/python if there is one, else python3).
# Build products go to $COUPLING_BUILD_DIR (default ./build next to this script).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
src="$root/gcm_toy/src"
build="${COUPLING_BUILD_DIR:-$here/build}"
FC="${FC:-gfortran}"
what="${1:-all}"
if [ -z "${PYTHON:-}" ]; then
  if [ -x "$root/.venv/bin/python" ]; then PYTHON="$root/.venv/bin/python"; else PYTHON=python3; fi
fi
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}"

# in dependency order
dycore=(gcm_constants gcm_status gcm_config gcm_gaussian_grid gcm_legendre gcm_fourier
        gcm_spectral_transform gcm_vertical gcm_state gcm_physics_interface gcm_held_suarez
        gcm_moisture_fixer gcm_diagnostics gcm_dynamics gcm_checkpoint gcm_model
        gcm_initial_conditions gcm_dycore)
physics=(physics_configuration physics_random moist_thermodynamics
         sea_surface insolation surface_fluxes boundary_layer convection condensation clouds radiation
         column_physics_io emulated_physics physics_driver)
coupling=(gcm_emulator_interface gcm_finetune gcm_emulator_networks gcm_emulator gcm_aquaplanet gcm_physics_choice)
sources=()
for m in "${dycore[@]}"; do sources+=("$src/$m.f90"); done
for m in "${physics[@]}"; do sources+=("$src/physics/$m.f90"); done
# the custom layer the emulator coupling registers (column water conservation, 32 and 64 bits)
sources+=("$root/fortran/example/custom_layer/column_water_conservation.f90")
sources+=("$root/fortran/example/custom_layer/column_water_conservation_r64.f90")
for m in "${coupling[@]}"; do sources+=("$src/coupling/$m.f90"); done

release_flags=(-std=f2018 -O3 -fimplicit-none)
debug_flags=(-std=f2018 -O0 -g -fcheck=all -ffpe-trap=zero -fbacktrace -fimplicit-none)

build_fkb() {
  if [ ! -f "$build/fkb/libfkb.a" ]; then
    cmake -S "$root/fortran" -B "$build/fkb" -DCMAKE_BUILD_TYPE=Release -DFKB_BUILD_TESTS=OFF \
          -DFKB_BUILD_EXAMPLE=OFF > "$build/fkb-cmake.log"
  fi
  cmake --build "$build/fkb" -j2 > "$build/fkb-build.log"
}

compile() {  # compile <dir> <flags...>: the GCM library objects
  # Everything is rebuilt when any source or libfkb.a is newer than the last
  # build (a changed module interface must reach every user of it).
  local dir="$1"; shift
  mkdir -p "$dir"
  local objs=() stale=0
  local all=("${sources[@]}" "$root/gcm_toy/tests_fortran/test_support.f90")
  for s in "${all[@]}" "$build/fkb/libfkb.a"; do
    if [ ! -f "$dir/.stamp" ] || [ "$s" -nt "$dir/.stamp" ]; then stale=1; fi
  done
  for s in "${all[@]}"; do
    local o="$dir/$(basename "${s%.f90}").o"
    if [ "$stale" = 1 ]; then
      "$FC" "$@" -J "$dir" -I "$build/fkb/modules" -c "$s" -o "$o"
    fi
    objs+=("$o")
  done
  touch "$dir/.stamp"
  echo "${objs[@]}"
}

program() {  # program <dir> <source> <objs> <flags...>
  local dir="$1" file="$2" objs="$3"; shift 3
  local name
  name="$(basename "${file%.f90}")"
  blas="$(pkg-config --libs openblas 2>/dev/null || echo -lopenblas)"
  # shellcheck disable=SC2086
  "$FC" "$@" -I "$dir" -J "$dir" -I "$build/fkb/modules" "$file" $objs "$build/fkb/libfkb.a" $blas -fopenmp \
        -o "$dir/$name"
}

networks() {
  PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" "$PYTHON" "$here/make_test_networks.py" "$build/networks" 10
}

mkdir -p "$build"
build_fkb
case "$what" in
  all|fast|build)
    objs="$(compile "$build/release" "${release_flags[@]}")"
    program "$build/release" "$here/test_coupling.f90" "$objs" "${release_flags[@]}"
    program "$build/release" "$here/test_aquaplanet_run.f90" "$objs" "${release_flags[@]}"
    networks
    [ "$what" = build ] && exit 0
    (cd "$build" && "$build/release/test_coupling" "$build/networks")
    [ "$what" = fast ] && exit 0
    (cd "$build" && "$build/release/test_aquaplanet_run")
    ;;
  debug)
    objs="$(compile "$build/debug" "${debug_flags[@]}")"
    program "$build/debug" "$here/test_coupling.f90" "$objs" "${debug_flags[@]}"
    networks
    (cd "$build" && "$build/debug/test_coupling" "$build/networks")
    ;;
  *)
    echo "usage: bash run_tests.sh [all|fast|debug|build]" >&2
    exit 2
    ;;
esac
