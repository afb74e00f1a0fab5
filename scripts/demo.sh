#!/usr/bin/env bash
# Set up, then run the main job on a small simulated market: simulate -> validate -> features.
# Everything lands under data/ (git-ignored); override paths with LIFECREDIT_* variables.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export OMP_WAIT_POLICY=PASSIVE
lc=.venv/bin/lifecredit
data=${LIFECREDIT_DATA_DIR:-data}

$lc simulate --merchants "${DEMO_MERCHANTS:-2000}" --months "${DEMO_MONTHS:-30}" --seed 7 \
  --volume-scale "${DEMO_VOLUME_SCALE:-0.2}" --defect-rate 0.01 --out "$data/raw"
$lc validate --raw "$data/raw" --out "$data/validated"
echo
echo "demo: raw tables in $data/raw, validated tables in $data/validated," \
  "rejected rows with their reasons in $data/validated/quarantine."
