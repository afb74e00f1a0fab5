#!/usr/bin/env bash
# Set up, then run the whole test suite (unit, integration, e2e) on small simulated markets.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/setup_browser.sh
bash scripts/audit_deps.sh  # pip-audit of uv.lock: prints its report, never fails offline
export OMP_WAIT_POLICY=PASSIVE
exec .venv/bin/python -m pytest "$@"
