#!/usr/bin/env bash
# Run the test suite: set up what is missing, then pytest (which also builds
# and runs the standalone Fortran library's own tests). Extra arguments go to pytest.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$root/scripts/setup.sh"
venv=${FKB_VENV:-$root/.venv}
cd "$root"
exec "$venv/bin/python" -m pytest -q "$@"
