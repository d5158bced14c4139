#!/usr/bin/env bash
# Build the aquaplanet climate/cost benchmark of the toy GCM:
#   bash benchmarks/bench_gcm_physics/build.sh [build_dir]     (default /tmp/bench_gcm_physics)
# Uses the coupling tests' build (dycore + physics + coupling objects, the FKB
# library via CMake, and the test networks including the 5x128 MLP in
# <build_dir>/networks), then links <build_dir>/aquaplanet_climate. Run:
#   OPENBLAS_NUM_THREADS=1 <build_dir>/aquaplanet_climate truncation=21 nlev=10 days=360 spinup=60 \
#       physics=reference checkpoint=ref.ckpt out=ref
#   OPENBLAS_NUM_THREADS=1 <build_dir>/aquaplanet_climate days=10 spinup=0 start=ref.ckpt \
#       physics=emulator emulator=<build_dir>/networks/mlp_5x128_L10.fkb out=emu
#   OPENBLAS_NUM_THREADS=1 <build_dir>/bench_physics_step <build_dir>/networks/mlp_5x128_L10.fkb [ref.ckpt]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
build="${1:-/tmp/bench_gcm_physics}"
FC="${FC:-gfortran}"
mkdir -p "$build"
COUPLING_BUILD_DIR="$build" bash "$root/gcm_toy/tests_fortran/coupling/run_tests.sh" build
objs=$(ls "$build"/release/*.o | grep -v test_support.o)
blas="$(pkg-config --libs openblas 2>/dev/null || echo -lopenblas)"
for prog in aquaplanet_climate bench_physics_step; do
  # shellcheck disable=SC2086
  "$FC" -std=f2018 -O3 -fimplicit-none -I "$build/release" -I "$build/fkb/modules" -J "$build" \
        "$here/$prog.f90" $objs "$build/fkb/libfkb.a" $blas -fopenmp -o "$build/$prog"
done
echo "built $build/aquaplanet_climate and $build/bench_physics_step; networks in $build/networks"
