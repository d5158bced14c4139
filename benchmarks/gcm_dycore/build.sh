#!/usr/bin/env bash
# Build the dynamical-core benchmarks with a plain gfortran command line:
#   bash benchmarks/gcm_dycore/build.sh [build_dir]      (default /tmp/gcm_dycore_bench)
# then run  <build_dir>/bench_dycore [days]
#      and  <build_dir>/held_suarez_climate [truncation nlev days spinup out_file]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
src="$here/../../gcm_toy/src"
build="${1:-/tmp/gcm_dycore_bench}"
FC="${FC:-gfortran}"
mkdir -p "$build"
modules=(gcm_constants gcm_status gcm_config gcm_gaussian_grid gcm_legendre gcm_fourier
         gcm_spectral_transform gcm_vertical gcm_state gcm_physics_interface gcm_held_suarez
         gcm_moisture_fixer gcm_diagnostics gcm_dynamics gcm_checkpoint gcm_model
         gcm_initial_conditions gcm_dycore)
sources=()
for m in "${modules[@]}"; do sources+=("$src/$m.f90"); done
for prog in bench_dycore held_suarez_climate; do
  "$FC" -O3 -std=f2018 -J "$build" "${sources[@]}" "$here/$prog.f90" -o "$build/$prog"
done
echo "built $build/bench_dycore and $build/held_suarez_climate"
