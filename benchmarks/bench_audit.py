"""Audit-log benchmark: appends/s and latency of the SQLite store against the PostgreSQL store.

    .venv/bin/python benchmarks/bench_audit.py [--seconds 5] [--threads 1,8] [--pg-url URL]

Appends a realistic ``/decide`` record (request, outputs with reasons, a 60-feature row) as
fast as possible from 1 and from 8 threads, each for ``--seconds``, into:

a. SQLite (WAL, ``synchronous=NORMAL``) in a temporary folder (the default store);
b. PostgreSQL at ``--pg-url`` (default ``$LC_TEST_PG_URL`` or postgres@127.0.0.1:5432), in a
   database created for the run and dropped after it; every append is its own committed
   transaction, with the server's ``synchronous_commit`` (on by default: a WAL flush per commit,
   shared by concurrent commits).

Prints appends/s and p50/p99 latency per store and thread count, and the ratio PostgreSQL /
SQLite. The machine is shared: the load average before and after is printed.

``--serve`` then runs a real ``lifecredit serve`` with each store (pinned to core 0, the champion
and snapshot of the current settings: run ``scripts/demo.sh`` first) and loads ``/score`` and
``/decide`` by merchant id from a Python client on core 1 at 1 and 16 connections.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.audit import AuditLog, AuditRecord, RawJSON, canonical_json  # noqa: E402

DEFAULT_PG = os.environ.get("LC_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def record_factory():
    """New /decide records shaped like the service's (outputs and features prebuilt as canonical JSON, as there)."""
    features = {f"feature_{i:02d}": i * 1.2345 for i in range(60)}
    outputs = {
        "pd": 0.0231,
        "score": 612,
        "grade": "B2",
        "class": "B",
        "decision": "approve",
        "approved_limit_fen": 1_800_000,
        "price_tier": "standard",
        "policy_version": "2026.11-1",
        "reasons": [
            {"feature": f"feature_{i:02d}", "text": "近90天退款率高于同行", "contribution": 0.1} for i in range(4)
        ],
    }
    request = {"merchant_id": "M00000001", "requested_amount_fen": 2_000_000, "term_months": 12, "product": "term_loan"}
    outputs, features = RawJSON(canonical_json(outputs)), RawJSON(canonical_json(features))
    return lambda: AuditRecord(
        "/decide",
        "bench-bank",
        request,
        outputs,
        merchant_id="M00000001",
        model_name="lifecredit-merchant-pd",
        model_version="3",
        features_as_of="2025-07-01",
        policy_version="2026.11-1",
        policy_hash="ab" * 32,
        model_run_id="0" * 32,
        features_ref="cd" * 32,
        features=features,
    )


def run(log: AuditLog, threads: int, seconds: float) -> dict:
    """Append from ``threads`` threads for ``seconds``; appends/s and latency percentiles (ms)."""
    new_record = record_factory()
    latencies: list[list[float]] = [[] for _ in range(threads)]
    stop = time.perf_counter() + seconds

    def work(out: list[float]) -> None:
        while (t0 := time.perf_counter()) < stop:
            log.append(new_record())
            out.append(time.perf_counter() - t0)

    started = time.perf_counter()
    pool = [threading.Thread(target=work, args=(lat,)) for lat in latencies]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    elapsed = time.perf_counter() - started
    flat = sorted(x for lat in latencies for x in lat)
    return {
        "appends_per_s": len(flat) / elapsed,
        "p50_ms": 1000 * statistics.median(flat),
        "p99_ms": 1000 * flat[int(0.99 * (len(flat) - 1))],
        "n": len(flat),
    }


def load(port: int, key: str, route: str, ids: list[str], connections: int, seconds: float) -> dict:
    """Keep-alive POSTs from ``connections`` threads for ``seconds``: requests/s, p50, p99 (ms), status counts."""
    import http.client
    import json

    latencies: list[float] = []
    codes: dict[int, int] = {}
    stop = time.perf_counter() + seconds
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}

    def work(offset: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        i = offset
        while time.perf_counter() < stop:
            body = {"merchant_id": ids[i % len(ids)]}
            if route == "/decide":
                body |= {"requested_amount_fen": 2_000_000, "term_months": 12, "product": "term_loan"}
            i += 1
            t0 = time.perf_counter()
            conn.request("POST", route, json.dumps(body), headers)
            resp = conn.getresponse()
            resp.read()
            latencies.append(time.perf_counter() - t0)
            codes[resp.status] = codes.get(resp.status, 0) + 1

    started = time.perf_counter()
    pool = [threading.Thread(target=work, args=(k * 7,)) for k in range(connections)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    latencies.sort()
    return {
        "rps": len(latencies) / (time.perf_counter() - started),
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))],
        "codes": codes,
    }


def serve_with(stores: dict[str, str], seconds: float, work: Path) -> None:
    """Load a real ``lifecredit serve`` with each audit store (same champion and snapshot)."""
    import polars as pl
    from bench_serving import BIN, CLIENT_CORE, Server, free_port, http

    from core.settings import get_settings
    from serving.keys import KeyStore

    settings = get_settings()
    ids = (
        pl.read_parquet(settings.serving_snapshot_dir / "latest.parquet", columns=["merchant_id"])["merchant_id"]
        .head(200)
        .to_list()
    )
    env = {k: v for k, v in os.environ.items() if k not in ("LIFECREDIT_VAR_DIR", "LIFECREDIT_AUDIT_URL")}
    env.update(
        PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        BENTOML_DO_NOT_TRACK="true",
        OMP_WAIT_POLICY="PASSIVE",
        LIFECREDIT_VAR_DIR=str(work / "var"),
    )
    key = KeyStore(work / "var" / "api_keys.json").create("bank", "bench-audit")
    os.sched_setaffinity(0, {int(CLIENT_CORE)})
    for store, url in stores.items():
        port = free_port()
        server = Server(
            f"serve-{store}",
            [str(BIN / "lifecredit"), "serve", "--port", str(port)],
            {**env, "LIFECREDIT_AUDIT_URL": url},
            port,
            lambda p: http("GET", f"http://127.0.0.1:{p}/readyz")[0] == 200,
            work / f"serve-{store}.log",
        )
        try:
            load(port, key, "/score", ids, 4, 1.0)  # warm-up
            for route in ("/score", "/decide"):
                for connections in (1, 16):
                    r = load(port, key, route, ids, connections, seconds)
                    print(
                        f"server, {store:10s} audit, {route:7s} {connections:2d} connection(s): {r['rps']:6.0f} req/s, "
                        f"p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, statuses {r['codes']}",
                        flush=True,
                    )
        finally:
            server.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--threads", default="1,8", help="Comma-separated thread counts.")
    ap.add_argument("--pg-url", default=DEFAULT_PG, help="A PostgreSQL role that may CREATE DATABASE.")
    ap.add_argument("--serve", action="store_true", help="Also load a real server with each store.")
    args = ap.parse_args()
    import psycopg2

    counts = [int(t) for t in args.threads.split(",")]
    print(f"load average before: {os.getloadavg()[0]:.2f}; {os.cpu_count()} cores")
    name = f"lc_bench_audit_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(args.pg_url, connect_timeout=5)
    admin.autocommit = True
    admin.cursor().execute(f'CREATE DATABASE "{name}"')
    results: dict[tuple[str, int], dict] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            stores = {
                "sqlite": f"sqlite:///{tmp}/audit.db",
                "postgresql": urlunsplit(urlsplit(args.pg_url)._replace(path=f"/{name}")),
            }
            for store, url in stores.items():
                log = AuditLog(url)
                run(log, 1, min(1.0, args.seconds))  # warm-up: connections, caches
                for n in counts:
                    results[store, n] = r = run(log, n, args.seconds)
                    print(
                        f"{store:10s} {n:2d} thread(s): {r['appends_per_s']:8.0f} appends/s, "
                        f"p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms ({r['n']} appends)"
                    )
                log.close()
            if args.serve:
                serve_with(stores, args.seconds, Path(tmp))
    finally:
        admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
    for n in counts:
        ratio = results["postgresql", n]["appends_per_s"] / results["sqlite", n]["appends_per_s"]
        print(f"ratio PostgreSQL / SQLite at {n} thread(s): {ratio:.2f}x appends/s")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
