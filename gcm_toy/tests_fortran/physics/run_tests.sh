#!/usr/bin/env bash
# Build the column physics (gcm_toy/src/physics) and its standalone tests with
# plain gfortran, and run them.
#
#   bash run_tests.sh            unit, emulated-physics and driver tests (debug build,
#                                runtime checks, FP traps), the same in a release build,
#                                and the 100-day single-column RCE run
#   bash run_tests.sh scm        only the single-column run (release build)
#   bash run_tests.sh bench      the cost benchmark against a 5x128 MLP (release, OpenBLAS)
#
# Build products go to $PHYSICS_BUILD_DIR (default: ./build next to this script).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
src="$here/../../src/physics"
dycore_src="$here/../../src"
build="${PHYSICS_BUILD_DIR:-$here/build}"
FC="${FC:-gfortran}"
what="${1:-all}"

# the model's one constants module and one status module (the dycore's), then the physics
shared=(gcm_constants gcm_status)
modules=(physics_configuration physics_random moist_thermodynamics
         sea_surface insolation surface_fluxes boundary_layer convection condensation clouds radiation
         column_physics_io emulated_physics physics_driver)
debug_flags=(-std=f2018 -O0 -g -fcheck=all -ffpe-trap=invalid,zero,overflow -Wall -Wextra
             -Wno-compare-reals -Wno-unused-dummy-argument -fimplicit-none -fbacktrace)
release_flags=(-std=f2018 -O2 -fimplicit-none)

compile() {  # compile <dir> <flags...>: the physics library and the test support module
  local dir="$1"; shift
  mkdir -p "$dir"
  local objs=()
  for m in "${shared[@]}"; do
    "$FC" "$@" -J "$dir" -c "$dycore_src/$m.f90" -o "$dir/$m.o"
    objs+=("$dir/$m.o")
  done
  for m in "${modules[@]}"; do
    "$FC" "$@" -J "$dir" -c "$src/$m.f90" -o "$dir/$m.o"
    objs+=("$dir/$m.o")
  done
  "$FC" "$@" -J "$dir" -c "$here/physics_test_support.f90" -o "$dir/physics_test_support.o"
  objs+=("$dir/physics_test_support.o")
  echo "${objs[@]}"
}

program() {  # program <dir> <name> <objs> <flags...> [-- link flags]
  local dir="$1" name="$2" objs="$3"; shift 3
  local flags=() link=()
  while [ $# -gt 0 ]; do
    if [ "$1" = "--" ]; then shift; link=("$@"); break; fi
    flags+=("$1"); shift
  done
  # shellcheck disable=SC2086
  "$FC" "${flags[@]}" -I "$dir" -J "$dir" "$here/$name.f90" $objs "${link[@]}" -o "$dir/$name"
}

run_checks() {
  local dir="$1"; shift
  local objs
  objs="$(compile "$dir" "$@")"
  for t in test_physics_units test_emulated_physics test_physics_driver; do
    program "$dir" "$t" "$objs" "$@"
    "$dir/$t"
  done
}

case "$what" in
  all)
    echo "== debug build (runtime checks, FP traps) =="
    run_checks "$build/debug" "${debug_flags[@]}"
    echo "== release build =="
    run_checks "$build/release" "${release_flags[@]}"
    objs="$(compile "$build/release" "${release_flags[@]}")"
    program "$build/release" scm_rce "$objs" "${release_flags[@]}"
    "$build/release/scm_rce"
    ;;
  scm)
    objs="$(compile "$build/release" "${release_flags[@]}")"
    program "$build/release" scm_rce "$objs" "${release_flags[@]}"
    "$build/release/scm_rce" "${@:2}"
    ;;
  bench)
    objs="$(compile "$build/bench" -std=f2018 -O3 -march=native -fimplicit-none)"
    blas="$(pkg-config --libs openblas 2>/dev/null || echo -lopenblas)"
    # shellcheck disable=SC2086
    program "$build/bench" bench_physics_cost "$objs" -std=f2018 -O3 -march=native -fimplicit-none -- $blas
    OPENBLAS_NUM_THREADS=1 "$build/bench/bench_physics_cost"
    ;;
  *)
    echo "usage: bash run_tests.sh [all|scm|bench]" >&2
    exit 2
    ;;
esac
