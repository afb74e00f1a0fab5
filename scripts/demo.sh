#!/usr/bin/env bash
# Set up, then run the main job on a small simulated market:
# simulate -> validate -> features -> train -> promote (alias champion) -> predict -> demo bank key
# -> serve (BentoML, foreground; prints curl examples that work against it for banks, regulators,
# a merchant and the data steward; Ctrl-C stops it).
# Everything lands under data/ and mlruns/ (git-ignored); override with LIFECREDIT_* variables.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export OMP_WAIT_POLICY=PASSIVE
lc=.venv/bin/lifecredit
data=${LIFECREDIT_DATA_DIR:-data}
step() { printf '\n\033[1m== %s\033[0m\n' "$*" >&2; }

step "1/8 simulate a small market"
$lc simulate --merchants "${DEMO_MERCHANTS:-12000}" --months "${DEMO_MONTHS:-30}" --seed 7 \
  --volume-scale "${DEMO_VOLUME_SCALE:-0.1}" --defect-rate 0.01 --out "$data/raw"
step "2/8 validate against the contracts (rejected rows go to quarantine)"
$lc validate --raw "$data/raw" --out "$data/validated"
step "3/8 build point-in-time features"
$lc features --raw "$data/validated" --out "$data/features"
step "4/8 train, calibrate, evaluate on merchants held out whole, and register (alias challenger)"
train_json=$($lc train --features "$data/features" | tail -n 1)
echo "$train_json"
version=$(printf '%s' "$train_json" | .venv/bin/python -c 'import json,sys; print(json.load(sys.stdin)["version"])')
step "4b/8 judge version $version against the simulator's true PD (simulated markets only; training never reads it)"
$lc truth-check --model "models:/lifecredit-merchant-pd/$version" --features "$data/features" \
  --truth "$data/raw/truth.parquet" --out "$data/truth_check"
step "5/8 promote version $version through the gate (alias champion)"
if ! $lc promote --version "$version"; then
  # never forced: a refusal is a regression to look at, not something to paper over
  echo "demo: the gate refused version $version (the failing checks are above, the decision is in the" >&2
  echo "      promotion history); the demo stops here. Inspect it with: $lc promote --version $version" >&2
  exit 1
fi
step "6/8 score the latest snapshot with the champion"
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

step "6b/8 class history for the regulator views: every merchant, month by month, then the regulator report"
# 24 months (at least 12): the older half has 12-month outcomes, so the outcome views have something to show
history_json=$($lc score-all --months "${DEMO_HISTORY_MONTHS:-24}" --features "$data/features" \
  --validated "$data/validated" | tail -n 1)
read -r report_month history_dir < <(printf '%s' "$history_json" | .venv/bin/python -c \
  'import json,sys; h = json.load(sys.stdin); print(h["months"][-1]["month"], h["history_dir"])')
$lc report --month "$report_month" --out "$data/regulator-report-$report_month.html" --features "$data/features" \
  >/dev/null
echo "demo: class history in $history_dir; regulator report: $data/regulator-report-$report_month.html"

step "6c/8 supervision: the consumption index, an inspection plan by class (双随机、一公开) and its simulated findings, the development report"
$lc consumption-index --validated "$data/validated" >/dev/null
$lc inspections plan --month "$report_month" --out "$data/inspection-plan-$report_month.json" >/dev/null
$lc simulate-inspections --plan "$data/inspection-plan-$report_month.json" --raw "$data/raw" \
  --out "$data/inspection-results-$report_month.csv" >/dev/null
$lc inspections record --file "$data/inspection-results-$report_month.csv" >/dev/null
$lc report --kind development --month "$report_month" --out "$data/development-report-$report_month.html" >/dev/null
echo "demo: consumption index in $data/consumption; inspection plan $data/inspection-plan-$report_month.json;"
echo "      development report: $data/development-report-$report_month.html"

step "7/8 create demo API keys for a bank, a regulator, a data steward and one merchant (shown once; only salted hashes are stored)"
for name in demo-bank demo-regulator demo-steward demo-merchant; do
  $lc keys revoke "$name" >/dev/null 2>&1 || true   # a rerun replaces the previous demo keys
done
key=$($lc keys create --role bank --name demo-bank)
regulator_key=$($lc keys create --role regulator --name demo-regulator)
steward_key=$($lc keys create --role admin --name demo-steward)
merchant=$(.venv/bin/python -c 'import sys, polars as pl; print(pl.read_parquet(sys.argv[1])["merchant_id"][0])' \
  "$data/features/latest.parquet")
# a merchant with a complaint on record, to show its own credit report and an objection
read -r own complaint < <(.venv/bin/python - "$data/features/latest.parquet" "$data/validated/complaints.parquet" <<'PY'
import sys, polars as pl
served = pl.read_parquet(sys.argv[1], columns=["merchant_id"])["merchant_id"]
c = pl.read_parquet(sys.argv[2]).filter(pl.col("merchant_id").is_in(served)).sort("received_at").row(-1, named=True)
print(c["merchant_id"], c["complaint_id"])
PY
)
merchant_key=$($lc keys create --role merchant --merchant "$own" --name demo-merchant)
$lc merchant-report --merchant "$own" --out "$data/merchant-report-$own.html" >/dev/null
echo "demo: merchant $own's own credit report: $data/merchant-report-$own.html"
host=$($lc settings --field host)
port=$($lc settings --field port)
url="http://$host:$port"

step "8/8 serve the champion: scoring and loan decisions over HTTP (Ctrl-C stops the server)"
if .venv/bin/python -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' "$url/livez" \
     2>/dev/null; then
  echo "demo: something already answers at $url; stop it or choose another port (LIFECREDIT_PORT=3001)" >&2
  exit 1
fi
$lc serve --features "$data/features" &
server=$!
trap 'kill "$server" 2>/dev/null || true' INT TERM EXIT
for _ in $(seq 300); do
  if .venv/bin/python -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
       "$url/readyz" 2>/dev/null; then ready=1; break; fi
  kill -0 "$server" 2>/dev/null || { echo "demo: the server stopped; see its messages above" >&2; exit 1; }
  sleep 1
done
[ "${ready:-0}" = 1 ] || { echo "demo: the server did not become ready in 300 s" >&2; exit 1; }
# A few hundred demo loan applications through the real API, so the regulator's inclusive-finance
# view has decisions to show (each one is audited like any bank's call).
.venv/bin/python - "$url" "$key" "$data/features/latest.parquet" "${DEMO_DECISIONS:-300}" <<'PY'
import json, sys, urllib.request
import polars as pl
url, key, snapshot, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
ids = pl.read_parquet(snapshot, columns=["merchant_id"])["merchant_id"].sample(n, seed=7, with_replacement=False)
counts = {}
for i, merchant in enumerate(ids):
    body = {"merchant_id": merchant, "requested_amount_fen": 2_000_000 + 500_000 * (i % 13),
            "term_months": 12, "product": "term_loan"}
    req = urllib.request.Request(url + "/decide", json.dumps(body).encode(), method="POST", headers={
        "Authorization": "Bearer " + key, "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        outcome = json.load(resp)["decision"]
    counts[outcome] = counts.get(outcome, 0) + 1
print("demo: %d loan applications decided through the API: %s" % (len(ids), counts), file=sys.stderr)
PY
cat <<MSG

demo: the scoring service is ready at $url (API guide: docs/api.md, OpenAPI: $url/docs.json).
Score a merchant and ask for a loan decision with the demo bank key:

  curl -s -X POST $url/score -H 'Authorization: Bearer $key' \\
    -H 'Content-Type: application/json' -d '{"merchant_id": "$merchant"}'

  curl -s -X POST $url/decide -H 'Authorization: Bearer $key' \\
    -H 'Content-Type: application/json' \\
    -d '{"merchant_id": "$merchant", "requested_amount_fen": 5000000, "term_months": 12, "product": "term_loan"}'

Every answer carries a decision_id: replay it with  $lc replay <decision_id>

Regulator dashboard (class distribution, stability, migration, outcomes, inclusive finance):
  open $url/regulator/ and sign in with the demo regulator key  $regulator_key
  or ask the API:  curl -s "$url/regulator/distribution?by=sector&month=$report_month" \\
                     -H 'Authorization: Bearer $regulator_key'
  the dynamic map, the consumption index, an inspection plan (seed published, same seed same plan):
    curl -s "$url/regulator/map?measure=class_D&month=$report_month" -H 'Authorization: Bearer $regulator_key'
    curl -s "$url/regulator/consumption-index" -H 'Authorization: Bearer $regulator_key'
    curl -s -X POST $url/regulator/inspections -H 'Authorization: Bearer $regulator_key' \\
      -H 'Content-Type: application/json' -d '{"month": "$report_month", "seed": 2026}'
Merchant $own's own credit report (信用报告; guide: docs/merchants.md):
  open $url/merchant/ and sign in with the demo merchant key  $merchant_key
  or:  curl -s $url/merchant/report -H 'Authorization: Bearer $merchant_key'
Object to its latest complaint (异议), then resolve it as the data steward:
  curl -s -X POST $url/merchant/objections -H 'Authorization: Bearer $merchant_key' \\
    -H 'Content-Type: application/json' \\
    -d '{"table": "complaints", "record_id": "$complaint", "reason": "not our shop", "kind": "objection"}'
  curl -s "$url/admin/objections?status=open" -H 'Authorization: Bearer $steward_key'
  curl -s -X POST $url/admin/objections/<objection_id>/resolve -H 'Authorization: Bearer $steward_key' \\
    -H 'Content-Type: application/json' -d '{"outcome": "corrected", "correction": {"action": "delete"}}'
Press Ctrl-C to stop the server.
MSG
wait "$server"
