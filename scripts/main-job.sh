#!/usr/bin/env bash
# The project's main job: set up what is missing, then run the quick
# offline-versus-online case study (about 5 minutes on 2 cores once set up).
# Results, plots and report.md go to results/casestudy (or the folder given).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$root/scripts/setup.sh"
venv=${FKB_VENV:-$root/.venv}
exec "$venv/bin/fkb" casestudy --preset quick --out "${1:-$root/results/casestudy}"
