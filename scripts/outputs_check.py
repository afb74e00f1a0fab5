"""Fingerprint what the pipeline produces for one seed, to show a refactor changed no output.

Runs the CLI end to end on a small simulated market in a temporary folder (simulate, validate,
features, train, promote, predict with reasons, score-all, then a real server answering /score
and /decide over HTTP) and hashes each output's content (floats rounded to 9 decimals; ids,
timestamps and run ids left out). ``--write FILE`` records the fingerprint, ``--compare FILE``
exits 1 naming every output that differs. The recorded reference is
``tests/golden/outputs_fingerprint.json``; ``tests/integration/test_outputs_unchanged.py`` compares
against it.

    .venv/bin/python scripts/outputs_check.py --compare tests/golden/outputs_fingerprint.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import polars as pl

BIN = Path(sys.executable).parent
MARKET = ["--merchants", "400", "--months", "30", "--seed", "11", "--volume-scale", "0.05", "--defect-rate", "0.01"]
VOLATILE = {
    "decision_id",
    "request_id",
    "scored_at",
    "decided_at",
    "timestamp",
    "run_id",
    "model_uri",
    "served_at",
    "created_at",
    "at",
    "duration_ms",
    "latency_ms",
    "key_name",
    "model_run_id",
}


def frame_hash(df: pl.DataFrame) -> str:
    """SHA-256 of a frame's JSON lines with floats rounded, so equal content gives equal hashes."""
    df = df.with_columns(pl.col(pl.Float32, pl.Float64).round(9))
    return hashlib.sha256(df.write_ndjson().encode()).hexdigest()[:16]


def clean(value):
    """A JSON answer without its volatile fields, floats rounded."""
    if isinstance(value, dict):
        return {k: clean(v) for k, v in sorted(value.items()) if k not in VOLATILE}
    if isinstance(value, list):
        return [clean(v) for v in value]
    if isinstance(value, float):
        return round(value, 9)
    return value


def cli(env: dict, *args: str) -> str:
    res = subprocess.run([str(BIN / "lifecredit"), *args], env=env, capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"lifecredit {' '.join(args)} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
    return res.stdout


def post(url: str, body: dict, key: str) -> dict:
    req = urllib.request.Request(
        url,
        json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": "Bearer " + key, "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.load(resp)


def served_answers(env: dict, features: Path, merchants: list[str]) -> str:
    """/score and /decide answers of a real server for ``merchants``, hashed."""
    key = cli(env, "keys", "create", "--role", "bank", "--name", "outputs-check").strip().splitlines()[-1]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    log = open(Path(env["LIFECREDIT_VAR_DIR"]) / "serve.log", "w")
    proc = subprocess.Popen(
        [str(BIN / "lifecredit"), "serve", "--port", str(port), "--features", str(features)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        for _ in range(240):
            try:
                urllib.request.urlopen(url + "/readyz", timeout=2)
                break
            except (urllib.error.URLError, OSError):
                if proc.poll() is not None:
                    raise SystemExit(f"the server stopped; see {log.name}") from None
                time.sleep(1)
        else:
            raise SystemExit("the server did not become ready in 240 s")
        answers = []
        for i, m in enumerate(merchants):
            answers.append(clean(post(url + "/score", {"merchant_id": m}, key)))
            answers.append(
                clean(
                    post(
                        url + "/decide",
                        {
                            "merchant_id": m,
                            "requested_amount_fen": 2_000_000 + 500_000 * i,
                            "term_months": 12,
                            "product": "term_loan",
                        },
                        key,
                    )
                )
            )
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()
    return hashlib.sha256(json.dumps(answers, sort_keys=True).encode()).hexdigest()[:16]


def fingerprint(work: Path) -> dict:
    env = {
        **os.environ,
        "LIFECREDIT_DATA_DIR": str(work / "data"),
        "LIFECREDIT_MLRUNS_DIR": str(work / "mlruns"),
        "LIFECREDIT_VAR_DIR": str(work / "var"),
        "LIFECREDIT_HISTORY_DIR": str(work / "history"),
        "OMP_WAIT_POLICY": "PASSIVE",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    }
    (work / "var").mkdir(parents=True, exist_ok=True)
    raw, valid, feats = work / "raw", work / "validated", work / "features"
    out: dict = {}
    cli(env, "simulate", *MARKET, "--out", str(raw))
    out["raw"] = {p.stem: frame_hash(pl.read_parquet(p)) for p in sorted(raw.glob("*.parquet"))}
    cli(env, "validate", "--raw", str(raw), "--out", str(valid))
    out["validated"] = {p.stem: frame_hash(pl.read_parquet(p)) for p in sorted(valid.glob("*.parquet"))}
    out["quarantine"] = {
        p.stem: frame_hash(pl.read_parquet(p).drop("rejected_at", strict=False))
        for p in sorted((valid / "quarantine").glob("*.parquet"))
    }
    cli(env, "features", "--raw", str(valid), "--out", str(feats))
    out["features"] = {p.stem: frame_hash(pl.read_parquet(p)) for p in sorted(feats.glob("*.parquet"))}
    trained = json.loads(cli(env, "train", "--features", str(feats), "--seed", "3").strip().splitlines()[-1])
    out["train"] = clean({k: v for k, v in trained.items() if k not in {"run_id", "model_uri"}})
    cli(env, "promote", "--version", str(trained["version"]), "--force", "--reason", "outputs check")
    scores = work / "scores.parquet"
    cli(env, "predict", "--table", str(feats / "latest.parquet"), "--out", str(scores), "--reasons")
    out["predict"] = frame_hash(pl.read_parquet(scores))
    history = json.loads(
        cli(env, "score-all", "--months", "12", "--features", str(feats), "--validated", str(valid))
        .strip()
        .splitlines()[-1]
    )
    hist_dir = Path(history["history_dir"])
    out["score_all"] = {
        p.relative_to(hist_dir).as_posix(): frame_hash(
            pl.read_parquet(p).drop([c for c in pl.read_parquet_schema(p) if c in VOLATILE])
        )
        for p in sorted(hist_dir.rglob("*.parquet"))
    }
    merchants = pl.read_parquet(feats / "latest.parquet", columns=["merchant_id"])["merchant_id"].head(12).to_list()
    out["served"] = served_answers(env, feats, merchants)
    return out


def differences(a, b, path: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        diffs = []
        for k in sorted(set(a) | set(b)):
            diffs += differences(a.get(k), b.get(k), f"{path}.{k}" if path else k)
        return diffs
    return [] if a == b else [f"{path}: reference {a!r}, now {b!r}"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    what = ap.add_mutually_exclusive_group(required=True)
    what.add_argument("--write", type=Path, help="record the fingerprint in this JSON file")
    what.add_argument("--compare", type=Path, help="compare with the fingerprint recorded in this JSON file")
    ap.add_argument("--work", type=Path, help="working folder (default: a temporary one, removed after)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="lc-outputs-") as tmp:
        now = fingerprint(args.work or Path(tmp))
    if args.write:
        args.write.parent.mkdir(parents=True, exist_ok=True)
        args.write.write_text(json.dumps(now, indent=1, sort_keys=True) + "\n")
        print(f"outputs fingerprint written to {args.write}")
        return
    diffs = differences(json.loads(args.compare.read_text()), now)
    for d in diffs:
        print("differs:", d)
    print(json.dumps({"outputs_unchanged": not diffs, "differences": len(diffs)}))
    raise SystemExit(1 if diffs else 0)


if __name__ == "__main__":
    main()
