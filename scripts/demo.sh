#!/usr/bin/env bash
# Set up, then run the main job on a small simulated market:
# simulate -> validate -> features -> train -> promote (alias champion) -> predict.
# Everything lands under data/ and mlruns/ (git-ignored); override with LIFECREDIT_* variables.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export OMP_WAIT_POLICY=PASSIVE
lc=.venv/bin/lifecredit
data=${LIFECREDIT_DATA_DIR:-data}
step() { printf '\n\033[1m== %s\033[0m\n' "$*" >&2; }

step "1/6 simulate a small market"
$lc simulate --merchants "${DEMO_MERCHANTS:-3000}" --months "${DEMO_MONTHS:-30}" --seed 7 \
  --volume-scale "${DEMO_VOLUME_SCALE:-0.1}" --defect-rate 0.01 --out "$data/raw"
step "2/6 validate against the contracts (rejected rows go to quarantine)"
$lc validate --raw "$data/raw" --out "$data/validated"
step "3/6 build point-in-time features"
$lc features --raw "$data/validated" --out "$data/features"
step "4/6 train, calibrate, evaluate and register (alias challenger)"
train_json=$($lc train --features "$data/features" | tail -n 1)
echo "$train_json"
version=$(printf '%s' "$train_json" | .venv/bin/python -c 'import json,sys; print(json.load(sys.stdin)["version"])')
step "5/6 promote version $version through the gate (alias champion)"
$lc promote --version "$version"
step "6/6 score the latest snapshot with the champion"
$lc predict --model "models:/lifecredit-merchant-pd@champion" --table "$data/features/latest.parquet" \
  --out "$data/scores.parquet"
.venv/bin/python - "$data/scores.parquet" <<'PY'
import sys, polars as pl
scores = pl.read_parquet(sys.argv[1])
print(scores.head(5))
print(scores.group_by("class").len().sort("class"))
PY
cat <<MSG

demo: raw tables in $data/raw; validated tables and quarantine in $data/validated;
features in $data/features; model runs in the MLflow store — browse them with:
  .venv/bin/mlflow ui --backend-store-uri "$($lc settings --field tracking_uri)" --port 5000
MSG
