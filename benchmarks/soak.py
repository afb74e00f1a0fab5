"""Soak: minutes of mixed /score, /score_batch and /decide traffic against a real ``lifecredit serve``.

    .venv/bin/python benchmarks/soak.py [--seconds 300] [--concurrency 32] [--workdir DIR]

Builds a small market, features and a champion under ``--workdir`` (reused when they are
there already), starts ``lifecredit serve`` on a free loopback port with a fresh audit log,
and drives it with ``--concurrency`` concurrent clients (httpx, asyncio) for ``--seconds``:
per request one of /score by id (60 %), /score_batch of 20 ids (10 %) and /decide (30 %).
It prints requests, errors by status, p50/p99 latency per endpoint, and checks that every
successful /decide answer has its audit record: the count of new /decide records equals
the count of 200 answers and their decision ids match. Exit 1 on any 5xx, transport error
or lost record.

``tests/e2e/test_soak.py`` runs the same code for 30 s on the test suite's market.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter, defaultdict
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
LC = str(BIN / "lifecredit")
MIX = (("/score", 0.6), ("/score_batch", 0.1), ("/decide", 0.3))
BATCH = 20
PRODUCTS = (("term_loan", 12), ("revenue_based", 6))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def probe(url: str) -> int | None:
    """Status of a GET on ``url``, or None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as err:
        return err.code
    except OSError:
        return None


class ServerProcess:
    """A server process (default ``lifecredit serve``) on a loopback port, in its own process group.

    Several can start at once and be waited for afterwards (their start-up overlaps); as a
    context manager the whole group is stopped at the end.
    """

    def __init__(self, env: dict, log: Path, *, port: int | None = None, cmd: list[str] | None = None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = Path(log)
        with open(self.log, "w") as out:
            self.proc = subprocess.Popen(
                cmd or [LC, "serve", "--port", str(self.port)],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=ROOT,
            )

    def wait(self, path: str = "/readyz", seconds: float = 240) -> str:
        """Block until GET ``path`` answers 200 (``/livez``: up, ready or not); the base URL."""
        deadline = time.monotonic() + seconds
        while probe(self.url + path) != 200:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited ({self.proc.returncode}):\n{self.log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{path} not 200 after {seconds} s:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.3)
        return self.url

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        except ProcessLookupError:
            pass

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


@contextmanager
def serve(env: dict, log: Path, *, port: int | None = None, cmd: list[str] | None = None, wait_for: str = "/readyz"):
    """``ServerProcess`` waited for ``wait_for``; yields its base URL."""
    with ServerProcess(env, log, port=port, cmd=cmd) as server:
        yield server.wait(wait_for)


def service_cmd(port: int) -> list[str]:
    """The service itself under ``bentoml serve``, without ``lifecredit serve``'s preflight checks."""
    return [
        str(BIN / "bentoml"),
        "serve",
        "serving.service:LifeCredit",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--working-dir",
        str(ROOT),
    ]


def cli(args: list[str], env: dict) -> str:
    """Run ``lifecredit ARGS``; its stdout, or exit with its stderr."""
    res = subprocess.run([LC, *args], env=env, capture_output=True, text=True, cwd=ROOT)
    if res.returncode != 0:
        raise RuntimeError(f"lifecredit {' '.join(args[:2])} failed ({res.returncode}):\n{res.stderr[-3000:]}")
    return res.stdout


def base_env(**lifecredit: str) -> dict:
    """This process's environment without LIFECREDIT_* variables, plus ``lifecredit`` (already prefixed)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIFECREDIT_")}
    env.update(
        PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        OMP_WAIT_POLICY="PASSIVE",
        BENTOML_DO_NOT_TRACK="true",
        MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false",
        **lifecredit,
    )
    return env


def build_market(workdir: Path, merchants: int) -> dict:
    """Market, features and a champion under ``workdir`` (kept and reused); returns their LIFECREDIT_* env."""
    data = workdir / "data"
    env = base_env(
        LIFECREDIT_DATA_DIR=str(data),
        LIFECREDIT_MLRUNS_DIR=str(workdir / "mlruns"),
        LIFECREDIT_VAR_DIR=str(workdir / "var"),
    )
    if not (data / "features" / "latest.parquet").exists():
        print(f"building a {merchants:,}-merchant market, features and champion under {workdir} ...", flush=True)
        cli(
            [
                "simulate",
                "--merchants",
                str(merchants),
                "--months",
                "30",
                "--seed",
                "5",
                "--volume-scale",
                "0.05",
                "--out",
                str(data / "raw"),
            ],
            env,
        )
        cli(["validate", "--raw", str(data / "raw"), "--out", str(data / "validated")], env)
        cli(["features", "--raw", str(data / "validated"), "--out", str(data / "features")], env)
        version = json.loads(cli(["train", "--features", str(data / "features")], env).strip().splitlines()[-1])
        cli(["promote", "--version", str(version["version"]), "--force", "--reason", "soak market"], env)
    return {k: env[k] for k in ("LIFECREDIT_DATA_DIR", "LIFECREDIT_MLRUNS_DIR")}


def audit_ids(db: Path, endpoint: str) -> set[str]:
    """Decision ids of ``endpoint`` in the SQLite audit log, read-only (empty when there is no log yet)."""
    if not db.exists():
        return set()
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return {r[0] for r in conn.execute("SELECT decision_id FROM audit_log WHERE endpoint = ?", (endpoint,))}


async def drive(url: str, key: str, ids: list[str], seconds: float, concurrency: int, seed: int = 1) -> dict:
    """``concurrency`` clients sending the mix until ``seconds`` pass; statuses, latencies and decision ids."""
    import httpx

    statuses: dict[str, Counter] = defaultdict(Counter)
    latencies: dict[str, list[float]] = defaultdict(list)
    decided: list[str] = []
    bodies: dict[str, str] = {}
    routes, weights = zip(*MIX, strict=True)
    deadline = time.monotonic() + seconds
    headers = {"Authorization": f"Bearer {key}"}
    # drop idle connections well before the server's 5 s keep-alive does: reusing one the server is
    # closing at that moment fails with a transport error that is the client's race, not the service's
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency, keepalive_expiry=2.0)

    async def client(rng: random.Random, http: httpx.AsyncClient) -> None:
        while time.monotonic() < deadline:
            route = rng.choices(routes, weights)[0]
            if route == "/score":
                body = {"merchant_id": rng.choice(ids)}
            elif route == "/score_batch":
                body = {"merchant_ids": rng.sample(ids, min(BATCH, len(ids)))}
            else:
                product, term = rng.choice(PRODUCTS)
                body = {
                    "merchant_id": rng.choice(ids),
                    "requested_amount_fen": rng.randrange(100_000, 20_000_000),
                    "term_months": term,
                    "product": product,
                }
            started = time.perf_counter()
            try:
                resp = await http.post(url + route, json=body, headers=headers)
            except httpx.HTTPError as err:
                statuses[route][type(err).__name__] += 1
                continue
            latencies[route].append(time.perf_counter() - started)
            statuses[route][resp.status_code] += 1
            if resp.status_code != 200:
                bodies.setdefault(f"{route} {resp.status_code}", resp.text[:300])
            elif route == "/decide":
                decided.append(resp.json()["decision_id"])

    async with httpx.AsyncClient(timeout=30, limits=limits) as http:
        await asyncio.gather(*(client(random.Random(seed * 1000 + i), http) for i in range(concurrency)))
    return {"statuses": statuses, "latencies": latencies, "decided": decided, "bodies": bodies}


def _ms(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


def soak(market_env: dict, workdir: Path, *, seconds: float, concurrency: int, extra_env: dict | None = None) -> dict:
    """Start a server on the market of ``market_env`` with a fresh var folder, drive it, return the report."""
    import polars as pl

    var = workdir / f"soak-var-{int(time.time() * 1000)}"
    env = base_env(**market_env, LIFECREDIT_VAR_DIR=str(var), **(extra_env or {}))
    key = cli(["keys", "create", "--role", "bank", "--name", "soak-bank"], env).strip().splitlines()[-1]
    snapshot_dir = Path(
        market_env.get("LIFECREDIT_SNAPSHOT_DIR") or Path(market_env["LIFECREDIT_DATA_DIR"]) / "features"
    )
    ids = pl.read_parquet(snapshot_dir / "latest.parquet", columns=["merchant_id"])["merchant_id"].to_list()
    db = var / "audit.db"
    with serve(env, workdir / "soak-server.log") as url:
        before = audit_ids(db, "/decide")
        started = time.monotonic()
        run = asyncio.run(drive(url, key, ids, seconds, concurrency))
        elapsed = time.monotonic() - started
        after = audit_ids(db, "/decide")
    new = after - before
    decided = set(run["decided"])
    statuses = {route: dict(c) for route, c in run["statuses"].items()}
    total = sum(sum(c.values()) for c in statuses.values())
    return {
        "seconds": round(elapsed, 1),
        "concurrency": concurrency,
        "merchants": len(ids),
        "requests": total,
        "requests_per_second": round(total / elapsed, 1),
        "statuses": statuses,
        "errors": {f"{route} {status}": n for route, c in statuses.items() for status, n in c.items() if status != 200},
        "latency_ms": {
            route: {"p50": _ms(v, 0.50), "p99": _ms(v, 0.99), "n": len(v)} for route, v in run["latencies"].items()
        },
        "decide_ok": len(run["decided"]),
        "decide_audit_new": len(new),
        "decide_missing_in_audit": len(decided - new),
        "audit_without_answer": len(new - decided),
        "error_bodies": run["bodies"],
    }


def failures(report: dict) -> list[str]:
    """Why the soak failed: 5xx answers, transport errors, lost or unexplained audit records."""
    out = [
        f"{what}: {n}"
        for what, n in report["errors"].items()
        if not str(what.split()[-1]).isdigit() or int(what.split()[-1]) >= 500
    ]
    if report["decide_ok"] != report["decide_audit_new"] or report["decide_missing_in_audit"]:
        out.append(
            f"{report['decide_ok']} successful /decide answers but {report['decide_audit_new']} new audit "
            f"records ({report['decide_missing_in_audit']} answered ids missing from the log)"
        )
    return out


def print_report(report: dict) -> None:
    print(
        f"{report['requests']:,} requests in {report['seconds']} s at concurrency {report['concurrency']} "
        f"({report['requests_per_second']} req/s, {report['merchants']:,} merchants)"
    )
    for route, lat in report["latency_ms"].items():
        print(
            f"  {route:<13} {lat['n']:>8,} answered  p50 {lat['p50']} ms  p99 {lat['p99']} ms  "
            f"statuses {report['statuses'][route]}"
        )
    print(f"  errors by status: {report['errors'] or 'none'}")
    print(
        f"  /decide: {report['decide_ok']:,} successful answers, {report['decide_audit_new']:,} new audit records, "
        f"{report['decide_missing_in_audit']} answered ids missing from the log"
    )
    for what, body in report["error_bodies"].items():
        print(f"  first {what} body: {body}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--workdir", type=Path, default=ROOT / "var" / "soak")
    parser.add_argument("--merchants", type=int, default=1000, help="market size when building (default 1,000)")
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args()
    workdir = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    report = soak(build_market(workdir, args.merchants), workdir, seconds=args.seconds, concurrency=args.concurrency)
    print_report(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=str))
    problems = failures(report)
    for p in problems:
        print(f"FAIL {p}")
    print("OK: no 5xx, no lost decision" if not problems else "FAILED")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
