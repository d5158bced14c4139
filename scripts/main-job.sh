#!/usr/bin/env bash
# The project's main job: set up what is missing, then run it.
# Until the case study lands this is the end-to-end bridge demo.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$root/scripts/setup.sh"
venv=${FKB_VENV:-$root/.venv}
exec "$venv/bin/fkb" demo --out "${1:-$root/results/demo}"
