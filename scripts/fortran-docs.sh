#!/usr/bin/env bash
# The Fortran library's API documentation: FORD reads the `!!` comments of
# fortran/src (project file fortran/ford.md) and writes HTML to build/ford, or
# to the folder given as the first argument; open its index.html. The output
# is generated, never committed.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${FKB_VENV:-$root/.venv}
ford="$venv/bin/ford"
[ -x "$ford" ] || ford=ford   # FORD installed some other way
out=${1:-$root/build/ford}
exec "$ford" --output_dir "$out" "$root/fortran/ford.md"
