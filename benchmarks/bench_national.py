"""National-book benchmark (issue 16): a 1,000,000-merchant market served from its answer store.

    .venv/bin/python benchmarks/bench_national.py --work /work/bench1m [--merchants 1000000]
        [--stage build|score-all|serve|reload|all, or several: serve,reload]

Keep ``--work`` outside the repository: the market is a few GB. Every stage reads what the
earlier ones left there, and writes its figures to ``<work>/results.json``; the final JSON
summary (last stdout line) holds every figure measured so far and the goals of the issue.

- **build**: a market of ``--merchants`` over ``--months`` panel months (12 months of history
  before them) at a thin ``--volume-scale``, validated, with features at the latest ``as_of``
  only (``lifecredit features --as-of``: the server reads only ``latest.parquet``); and a small
  market of ``--small-merchants`` x ``--small-months`` (same volume scale, same pipeline and
  feature set, another seed) on which two models are trained: version 1 promoted (the gate's
  verdict recorded) and version 2 kept for the reload. Each step runs under
  ``/usr/bin/time -v`` (wall time, peak RSS) and is skipped when its output and its timing
  already exist.
- **score-all**: ``lifecredit score-all --rebuild`` with the local engine and with
  ``--engine dask --workers 2`` (a local cluster) into a second store root; wall time, peak RSS
  of the largest process and of the whole process tree; both stores read back (every
  ``part-*.arrow``) and compared column by column.
- **serve**: ``lifecredit serve`` on the local store, pinned to core 0 (the load generator on
  core 1, as in bench_serving.py): seconds from process start to ``/readyz`` 200; VmRSS and PSS
  of every server process; ``/score`` by merchant id at one connection for ``--seconds`` with
  ``wrk``, ids drawn at random over the whole book; memory again after the load. Then
  ``benchmarks/starlette_ref.py`` (lookup plus a live booster call) the same way on the same
  snapshot and ids (``--no-reference`` skips it): the machine's noise floor in the same run.
  Last, ``--soak-seconds`` at 16 connections and the memory again: a memory-mapped store's
  pages count in RSS once touched, so RSS grows with the share of the book requested.
- **reload**: with the server up, the other model version is promoted (``--force``: a
  benchmark switch, not a model decision) and its store written by ``score-all``; then
  ``POST /admin/reload`` and ``GET /admin/reload/{job_id}`` until done, while one connection
  keeps sending ``/score`` (a Python client logging every request's latency and status, so the
  reload window can be cut out exactly; its figures before the reload are printed beside it).

Needs ``wrk`` (Debian: ``apt-get install -y wrk``, as root) and ``taskset``. GB are 10^9 bytes.
The machine may be shared: the load average is recorded with every stage.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import threading
import time
from datetime import date
from http.client import HTTPConnection, HTTPException
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_serving import CLIENT_CORE, ROOT, Server, free_port, http, loadavg, wrk  # noqa: E402

BIN = Path(sys.executable).parent
LC = str(BIN / "lifecredit")
GOALS = {
    "ready_s": 10.0,
    "server_rss_gb": 1.5,
    "p99_c1_ms": 5.0,
    "reload_p99_ms": 50.0,
}


# -- running and measuring commands ---------------------------------------------------------
class TreeMemory:
    """Peak RSS of a process and all its descendants (largest process and the sum), sampled by a thread."""

    def __init__(self, pid: int, every_s: float = 0.1):
        import psutil

        self.root = psutil.Process(pid)
        self.every_s = every_s
        self.peak_sum = self.peak_one = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        import psutil

        try:
            procs = [self.root, *self.root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return
        rss = []
        for p in procs:
            try:
                rss.append(p.memory_info().rss)
            except psutil.NoSuchProcess:
                pass
        if rss:
            self.peak_sum, self.peak_one = max(self.peak_sum, sum(rss)), max(self.peak_one, max(rss))

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self._sample()

    def stop(self) -> dict:
        self._stop.set()
        self._thread.join()
        return {"peak_rss_tree_gb": gb(self.peak_sum), "peak_rss_one_process_sampled_gb": gb(self.peak_one)}


def gb(n_bytes: float) -> float:
    return round(n_bytes / 1e9, 3)


def timed(name: str, cmd: list[str], env: dict, logs: Path) -> dict:
    """Run ``cmd`` under /usr/bin/time -v (log in ``logs/<name>.log``); wall seconds, peak RSS, last stdout line."""
    log, tfile = logs / f"{name}.log", logs / f"{name}.time"
    print(f"[{name}] {' '.join(cmd)}  (log {log}; load average {loadavg()})", flush=True)
    with open(log, "w") as out:
        proc = subprocess.Popen(["/usr/bin/time", "-v", "-o", str(tfile), *cmd], env=env, stdout=out, stderr=out)
        meter = TreeMemory(proc.pid)
        rc = proc.wait()
        tree = meter.stop()
    if rc != 0:
        sys.exit(f"[{name}] failed (exit {rc}); last lines of {log}:\n{log.read_text()[-3000:]}")
    return {**time_file(tfile), **tree, "last_line": last_json_line(log)}


def time_file(path: Path) -> dict:
    """Wall seconds and peak RSS (largest single process) from a GNU time -v report."""
    text = path.read_text()
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", text).group(1)
    seconds = 0.0
    for part in wall.split(":"):
        seconds = seconds * 60 + float(part)
    rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1))
    cpu = float(re.search(r"User time \(seconds\): ([\d.]+)", text).group(1)) + float(
        re.search(r"System time \(seconds\): ([\d.]+)", text).group(1)
    )
    return {"seconds": round(seconds, 1), "cpu_seconds": round(cpu, 1), "peak_rss_gb": gb(rss_kb * 1024)}


def last_json_line(log: Path) -> dict | None:
    for line in reversed(log.read_text(errors="replace").splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                return None
    return None


def du_gb(path: Path) -> float:
    return gb(sum(f.stat().st_size for f in path.rglob("*") if f.is_file())) if path.exists() else 0.0


# -- the work folder ------------------------------------------------------------------------
class Work:
    """Paths and environment of a benchmark work folder (big market, small market, models, stores, logs)."""

    def __init__(self, root: Path):
        self.root = root.resolve()
        if self.root == ROOT or ROOT in self.root.parents:
            sys.exit(f"--work {self.root} is inside the repository: use a folder outside it, e.g. /work/bench1m")
        self.data = self.root / "data"
        self.small = self.root / "small" / "data"
        self.logs = self.root / "logs"
        self.answers_local = self.data / "answers"
        self.answers_dask = self.root / "answers-dask"
        self.results_file = self.root / "results.json"
        self.logs.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("LIFECREDIT_")}
        env.update(
            PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            BENTOML_DO_NOT_TRACK="true",
            MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false",
            OMP_WAIT_POLICY="PASSIVE",
            LIFECREDIT_DATA_DIR=str(self.data),
            LIFECREDIT_MLRUNS_DIR=str(self.root / "mlruns"),
            LIFECREDIT_VAR_DIR=str(self.root / "var"),
        )
        self.env = env

    def small_env(self) -> dict:
        return {**self.env, "LIFECREDIT_DATA_DIR": str(self.small), "LIFECREDIT_VAR_DIR": str(self.root / "small-var")}

    def results(self) -> dict:
        return json.loads(self.results_file.read_text()) if self.results_file.exists() else {}

    def save(self, stage: str, figures: dict) -> None:
        results = self.results()
        results[stage] = figures
        self.results_file.write_text(json.dumps(results, indent=1, default=str))


def step(work: Work, name: str, cmd: list[str], env: dict, done: Path) -> dict:
    """A build step, skipped (its recorded figures reused) when ``done`` and its timing exist."""
    tfile, log = work.logs / f"{name}.time", work.logs / f"{name}.log"
    if done.exists() and log.exists():
        print(f"[{name}] already built ({done}); figures from {tfile}", flush=True)
        figures = time_file(tfile) if tfile.exists() else {"seconds": None, "peak_rss_gb": None}
        return {**figures, "reused": True, "last_line": last_json_line(log)}
    return timed(name, cmd, env, work.logs)


def month_after(start: date, months: int) -> date:
    y, m = divmod(start.month - 1 + months, 12)
    return date(start.year + y, m + 1, 1)


# -- stage: build ---------------------------------------------------------------------------
def stage_build(work: Work, args: argparse.Namespace) -> dict:
    import pyarrow.parquet as pq

    d, s, env, small_env = work.data, work.small, work.env, work.small_env()
    latest_as_of = month_after(date.fromisoformat(args.start), args.months).isoformat()
    out: dict = {
        "market": {
            "merchants": args.merchants,
            "months": args.months,
            "volume_scale": args.volume_scale,
            "seed": args.seed,
            "features_as_of": [latest_as_of],
        },
        "steps": {},
    }
    steps = out["steps"]
    sim = ["--volume-scale", str(args.volume_scale), "--start", args.start]
    steps["simulate"] = step(
        work,
        "simulate",
        [LC, "simulate", "--merchants", str(args.merchants), "--months", str(args.months), "--seed", str(args.seed)]
        + [*sim, "--out", str(d / "raw")],
        env,
        d / "raw" / "transactions.parquet",
    )
    steps["validate"] = step(
        work,
        "validate",
        [LC, "validate", "--raw", str(d / "raw"), "--out", str(d / "validated")],
        env,
        d / "validated" / "transactions.parquet",
    )
    steps["features"] = step(
        work,
        "features",
        [LC, "features", "--raw", str(d / "validated"), "--out", str(d / "features"), "--as-of", latest_as_of]
        + (["--engine", "dask"] if args.features_engine == "dask" else []),
        env,
        d / "features" / "latest.parquet",
    )
    small_sim = [
        LC,
        "simulate",
        "--merchants",
        str(args.small_merchants),
        "--months",
        str(args.small_months),
        "--seed",
        str(args.small_seed),
    ]
    steps["small-simulate"] = step(
        work,
        "small-simulate",
        [*small_sim, *sim, "--out", str(s / "raw")],
        small_env,
        s / "raw" / "transactions.parquet",
    )
    steps["small-validate"] = step(
        work,
        "small-validate",
        [LC, "validate", "--raw", str(s / "raw"), "--out", str(s / "validated")],
        small_env,
        s / "validated" / "transactions.parquet",
    )
    steps["small-features"] = step(
        work,
        "small-features",
        [LC, "features", "--raw", str(s / "validated"), "--out", str(s / "features")],
        small_env,
        s / "features" / "panel.parquet",
    )
    models = work.root / "mlruns" / "mlflow.db"
    steps["small-train"] = step(
        work, "small-train", [LC, "train", "--features", str(s / "features"), "--seed", "7"], small_env, models
    )
    steps["small-promote"] = step(
        work, "small-promote", [LC, "promote", "--version", "1"], small_env, work.logs / "small-promote.log"
    )
    steps["small-train2"] = step(
        work,
        "small-train2",
        [LC, "train", "--features", str(s / "features"), "--seed", "8"],
        small_env,
        work.logs / "small-train2.log",
    )
    promoted = steps["small-promote"].pop("last_line") or {}
    out["champion"] = {
        "version": promoted.get("to_version"),
        "gate_passed": bool(promoted.get("promoted")) and not promoted.get("forced"),
        "failed_checks": [c["name"] for c in promoted.get("checks", []) if not c.get("passed")],
    }
    for name in ("small-train", "small-train2"):
        line = steps[name].pop("last_line") or {}
        steps[name]["version"] = line.get("version")
        steps[name]["test_auc"] = round(line.get("metrics", {}).get("auc", float("nan")), 4)
    for v in steps.values():
        v.pop("last_line", None)
    tx = pq.ParquetFile(d / "validated" / "transactions.parquet").metadata.num_rows
    latest = d / "features" / "latest.parquet"
    out["sizes"] = {
        "transactions": tx,
        "raw_gb": du_gb(d / "raw"),
        "validated_gb": du_gb(d / "validated"),
        "latest_rows": pq.ParquetFile(latest).metadata.num_rows,
        "latest_columns": pq.ParquetFile(latest).metadata.num_columns,
        "latest_gb": gb(latest.stat().st_size),
    }
    if out["sizes"]["latest_rows"] < args.merchants:
        print(f"note: latest.parquet holds {out['sizes']['latest_rows']:,} of {args.merchants:,} merchants")
    work.save("build", out)
    return out


# -- stage: score-all -----------------------------------------------------------------------
def read_store(path: Path):
    """Every ``part-*.arrow`` of a store folder, in name order, as one table."""
    import pyarrow as pa

    parts = sorted(path.glob("part-*.arrow"))
    if not parts:
        sys.exit(f"no part-*.arrow in {path}")
    tables = []
    for p in parts:
        with pa.memory_map(str(p)) as source:
            try:
                tables.append(pa.ipc.open_file(source).read_all())
            except pa.ArrowInvalid:
                source.seek(0)
                tables.append(pa.ipc.open_stream(source).read_all())
    return pa.concat_tables(tables), len(parts)


def compare_stores(a: Path, b: Path) -> dict:
    """Row for row: same schema, same row count, every column exactly equal (nulls included)."""
    ta, na = read_store(a)
    tb, nb = read_store(b)
    out: dict = {"rows": [ta.num_rows, tb.num_rows], "parts": [na, nb], "columns": ta.num_columns}
    if ta.schema != tb.schema:
        out.update(equal=False, why=f"schemas differ: {set(ta.schema.names) ^ set(tb.schema.names) or 'types'}")
        return out
    if ta.num_rows != tb.num_rows:
        out.update(equal=False, why="row counts differ")
        return out
    # chunked comparison: a column of texts may hold over 2 GiB across the parts
    differing = [name for name in ta.schema.names if not ta[name].equals(tb[name])]
    out.update(equal=not differing, differing_columns=differing)
    manifests = [json.loads((p / "manifest.json").read_text()) for p in (a, b)]
    out["manifest_keys_differing"] = sorted(
        k for k in set(manifests[0]) | set(manifests[1]) if manifests[0].get(k) != manifests[1].get(k)
    )
    out["parts_byte_identical"] = [p["sha256"] for p in manifests[0]["parts"]] == [
        p["sha256"] for p in manifests[1]["parts"]
    ]
    return out


def stage_score_all(work: Work, args: argparse.Namespace) -> dict:
    env = {**work.env, "LIFECREDIT_ANSWERS_DIR": str(work.answers_local)}
    out: dict = {"load_average_before": loadavg()}
    runs = {
        "local": [LC, "score-all", "--rebuild"],
        "dask": [
            LC,
            "score-all",
            "--rebuild",
            "--engine",
            "dask",
            "--workers",
            "2",
            "--answers",
            str(work.answers_dask),
        ],
    }
    for engine, cmd in runs.items():
        res = timed(f"score-all-{engine}", cmd, env, work.logs)
        line = res.pop("last_line") or {}
        store = line.get("store") or {}
        if not store.get("path"):
            sys.exit(f"score-all ({engine}) printed no answer store (is the lead's answer store in?): {line}")
        res["store"] = store
        res["model_version"] = (line.get("model") or {}).get("version")
        out[engine] = res
        print(
            f"  score-all {engine}: {res['seconds']} s wall, {res['cpu_seconds']} s CPU, peak RSS "
            f"{res['peak_rss_gb']} GB (one process), {res['peak_rss_tree_gb']} GB (all processes); store "
            f"{store['path']} ({store.get('rows'):,} rows, {store.get('seconds')} s inside)",
            flush=True,
        )
    out["store_gb"] = du_gb(Path(out["local"]["store"]["path"]))
    out["ratio_dask_over_local"] = round(out["dask"]["seconds"] / out["local"]["seconds"], 2)
    out["compare"] = compare_stores(Path(out["local"]["store"]["path"]), Path(out["dask"]["store"]["path"]))
    out["load_average_after"] = loadavg()
    print(f"  dask store {'EQUAL' if out['compare']['equal'] else 'NOT EQUAL'} to local: {out['compare']}", flush=True)
    work.save("score_all", out)
    return out


# -- stage: serve ---------------------------------------------------------------------------
def create_key(work: Work, role: str) -> str:
    res = subprocess.run(
        [LC, "keys", "create", "--role", role, "--name", f"bench-national-{role}-{time.strftime('%Y%m%dT%H%M%S')}"],
        env=work.env,
        capture_output=True,
        text=True,
    )
    if res.returncode != 0:
        sys.exit(f"keys create failed:\n{res.stderr[-2000:]}")
    return res.stdout.strip().splitlines()[-1]


def server_memory(root_pid: int) -> dict:
    """VmRSS (anonymous and file-backed: a memory-mapped store counts as file pages) and PSS, in MiB, of the
    server's processes (the BentoML parent and its workers), and their sums."""
    import psutil

    procs = [psutil.Process(root_pid), *psutil.Process(root_pid).children(recursive=True)]
    rows = []
    for p in procs:
        try:
            status = Path(f"/proc/{p.pid}/status").read_text()
            rollup = Path(f"/proc/{p.pid}/smaps_rollup").read_text()
            cmd = " ".join(p.cmdline())
        except (OSError, psutil.NoSuchProcess):
            continue
        rss, anon, file_backed = (
            int(re.search(rf"{field}:\s+(\d+) kB", status).group(1)) for field in ("VmRSS", "RssAnon", "RssFile")
        )
        pss = int(re.search(r"^Pss:\s+(\d+) kB", rollup, re.M).group(1))
        role = (
            "worker"
            if "_bentoml_impl" in cmd or "worker" in cmd
            else ("taskset" if cmd.startswith("taskset") else "parent")
        )
        rows.append(
            {
                "pid": p.pid,
                "role": role,
                "cmd": cmd[:120],
                "rss_mb": round(rss / 1024),
                "rss_anon_mb": round(anon / 1024),
                "rss_file_mb": round(file_backed / 1024),
                "pss_mb": round(pss / 1024),
            }
        )
    return {
        "processes": rows,
        "rss_sum_gb": gb(sum(r["rss_mb"] for r in rows) * 2**20),
        "pss_sum_gb": gb(sum(r["pss_mb"] for r in rows) * 2**20),
        "rss_anon_sum_gb": gb(sum(r["rss_anon_mb"] for r in rows) * 2**20),
        "rss_file_sum_gb": gb(sum(r["rss_file_mb"] for r in rows) * 2**20),
    }


def ids_lua(work: Work, key: str, seed: int) -> Path:
    """A wrk script sending /score for ids drawn at random (seeded) over every merchant of the snapshot."""
    import pyarrow.parquet as pq

    ids = pq.read_table(work.data / "features" / "latest.parquet", columns=["merchant_id"])["merchant_id"]
    ids_file = work.root / "ids.txt"
    ids_file.write_text("\n".join(ids.cast("string").to_pylist()) + "\n")
    script = work.root / "score_random.lua"
    script.write_text(
        "\n".join(
            [
                "local ids = {}",
                f'for line in io.lines("{ids_file}") do ids[#ids + 1] = line end',
                f"math.randomseed({seed})",
                'local headers = {["Content-Type"] = "application/json", ["Authorization"] = "Bearer ' + key + '"}',
                "request = function()",
                "  local id = ids[math.random(#ids)]",
                '  return wrk.format("POST", "/score", headers, \'{"merchant_id":"\' .. id .. \'"}\')',
                "end",
            ]
        )
        + "\n"
    )
    return script


def start_server(work: Work, name: str, workers: int = 1) -> Server:
    """``lifecredit serve`` pinned to the server core; ``server.listening_s``: seconds until /readyz first answered
    (any status), so that ready_s splits into process start-up and loading the answers."""
    port = free_port()
    env = {
        **work.env,
        "LIFECREDIT_ANSWERS_DIR": str(work.answers_local),
        "LIFECREDIT_SERVE_WORKERS": str(workers),
        "LIFECREDIT_RATE_LIMIT_PER_MINUTE": "1000000000",  # out of reach: a 429 is a cheap answer, not a score
    }
    print(
        f"[{name}] starting lifecredit serve ({workers} worker(s)) on port {port} (load average {loadavg()})",
        flush=True,
    )
    started, first = time.perf_counter(), []

    def ready(p: int) -> bool:
        status = http("GET", f"http://127.0.0.1:{p}/readyz")[0]
        if not first:
            first.append(time.perf_counter() - started)
        return status == 200

    wall = time.time()
    server = Server(name, [LC, "serve", "--port", str(port)], env, port, ready, work.logs / f"{name}.log")
    server.listening_s = round(first[0], 2)
    server.milestones = log_milestones(work.logs / f"{name}.log", wall)
    return server


def log_milestones(log: Path, started: float) -> dict:
    """Seconds (whole-second log stamps) from the process start to BentoML's first lines in the server log: the
    ``lifecredit serve`` checks and BentoML's own start (``cli``), then the worker's imports and ``__init__``."""
    from datetime import datetime

    text = log.read_text(errors="replace")
    out = {}
    for key, pattern in (
        ("bentoml_cli_s", r"\[cli\] Starting production"),
        ("worker_initialized_s", r"Service \S+ initialized"),
    ):
        m = re.search(rf"^(\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d)([+-]\d{{4}}) .*{pattern}", text, re.M)
        if m:
            stamp = datetime.strptime(m.group(1) + m.group(2), "%Y-%m-%dT%H:%M:%S%z").timestamp()
            out[key] = round(stamp - started, 1)
    return out


def model_card(server: Server, key: str) -> dict:
    status, body = http("GET", f"http://127.0.0.1:{server.port}/model", headers={"Authorization": f"Bearer {key}"})
    return json.loads(body) if status == 200 else {"status": status, "body": body[:300].decode(errors="replace")}


def live_row(server: Server, key: str, card: dict) -> float:
    """Seconds from now until one live /score with a full feature row answers (it waits for the model)."""
    import pyarrow.parquet as pq

    features = card["feature_set"]["features"]
    row = pq.read_table(card["snapshot"]["path"], columns=features).slice(0, 1).to_pylist()[0]
    row = {k: None if isinstance(v, float) and v != v else v for k, v in row.items()}
    started = time.perf_counter()
    status, body = http(
        "POST",
        f"http://127.0.0.1:{server.port}/score",
        json.dumps({"features": row}, default=str).encode(),
        {"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    if status != 200:
        sys.exit(f"live /score answered {status}: {body[:300]!r}")
    return time.perf_counter() - started


def stage_serve(work: Work, args: argparse.Namespace, server: Server, keys: dict) -> dict:
    out: dict = {
        "load_average_before": loadavg(),
        "ready_s": round(server.ready_s, 2),
        "listening_s": server.listening_s,
        "start_milestones": server.milestones,
    }
    out["memory_ready"] = server_memory(server.proc.pid)
    card = model_card(server, keys["bank"])
    out["model_card"] = {
        k: card.get(k) for k in ("version", "run_id", "policy", "snapshot", "answer_store", "load_seconds")
    }
    m = out["memory_ready"]
    print(
        f"  ready after {out['ready_s']} s (answering HTTP after {out['listening_s']} s; log: "
        f"{server.milestones}); RSS "
        f"{[(p['role'], p['rss_mb']) for p in m['processes']]} MiB, sum {m['rss_sum_gb']} GB, PSS {m['pss_sum_gb']} GB",
        flush=True,
    )
    script = ids_lua(work, keys["bank"], args.seed)
    url = f"http://127.0.0.1:{server.port}/score"
    # The server answers by id as soon as the store is open and loads the model (live rows) in the background
    # right after: measured once straight after ready, then in steady state, after one live row has waited for it.
    out["c1_first_after_ready"] = wrk(url, script, 1, args.seconds)
    out["model_loaded_s"] = round(live_row(server, keys["bank"], card) + server.ready_s, 2)
    wrk(url, script, 1, 3)  # warm-up
    out["c1"] = wrk(url, script, 1, args.seconds)
    out["memory_after_load"] = server_memory(server.proc.pid)
    r = out["c1"]
    print(
        f"  /score by id, 1 connection, {args.seconds} s: {r['rps']:.0f} req/s, p50 {r['p50_ms']:.2f} ms, "
        f"p99 {r['p99_ms']:.2f} ms, non-2xx {r['non_2xx']}; RSS after {out['memory_after_load']['rss_sum_gb']} GB "
        f"(PSS {out['memory_after_load']['pss_sum_gb']} GB)",
        flush=True,
    )
    if args.reference:
        out["reference"] = reference_c1(work, args, script)
        ref = out["reference"]["c1"]
        out["p99_over_reference"] = round(r["p99_ms"] / ref["p99_ms"], 2)
        out["rps_over_reference"] = round(r["rps"] / ref["rps"], 3)
        print(
            f"  Starlette reference (same ids, same pinning, same run): {ref['rps']:.0f} req/s, p50 "
            f"{ref['p50_ms']:.2f} ms, p99 {ref['p99_ms']:.2f} ms; ours / reference: p99 {out['p99_over_reference']}x, "
            f"req/s {out['rps_over_reference']}x",
            flush=True,
        )
    if args.soak_seconds:
        # Pages of a memory-mapped store count in RSS once touched: random ids over a longer run touch more.
        out["soak_c16"] = wrk(url, script, 16, args.soak_seconds)
        out["memory_after_soak"] = server_memory(server.proc.pid)
        m = out["memory_after_soak"]
        print(
            f"  after {args.soak_seconds} s more at 16 connections ({out['soak_c16']['rps']:.0f} req/s, p99 "
            f"{out['soak_c16']['p99_ms']:.2f} ms): RSS {m['rss_sum_gb']} GB (file-backed {m['rss_file_sum_gb']} GB), "
            f"PSS {m['pss_sum_gb']} GB",
            flush=True,
        )
    out["load_average_after"] = loadavg()
    work.save("serve" if args.workers == 1 else f"serve-{args.workers}-workers", out)
    return out


def reference_c1(work: Work, args: argparse.Namespace, script: Path) -> dict:
    """benchmarks/starlette_ref.py (lookup plus a live booster call, nothing else) on the same snapshot and ids,
    pinned like the service: what the machine's load does to a bare endpoint's p99 in this run."""
    import pyarrow.parquet as pq

    latest = work.data / "features" / "latest.parquet"
    first = pq.ParquetFile(latest).read_row_group(0, columns=["merchant_id"])["merchant_id"][0].as_py()
    probe = json.dumps({"merchant_id": first}).encode()
    port = free_port()
    env = {**work.env, "REF_BUNDLE_DIR": champion(work)[1], "REF_SNAPSHOT": str(latest)}
    cmd = [str(BIN / "uvicorn"), "--app-dir", str(HERE), "starlette_ref:app", "--port", str(port)]
    ref = Server(
        "starlette-reference",
        [*cmd, "--no-access-log", "--log-level", "warning"],
        env,
        port,
        lambda p: http("POST", f"http://127.0.0.1:{p}/score", probe)[0] == 200,
        work.logs / "starlette-reference.log",
    )
    try:
        url = f"http://127.0.0.1:{port}/score"
        wrk(url, script, 1, 3)  # warm-up
        return {
            "ready_s": round(ref.ready_s, 2),
            "c1": wrk(url, script, 1, args.seconds),
            "memory": server_memory(ref.proc.pid),
        }
    finally:
        ref.stop()


# -- stage: reload --------------------------------------------------------------------------
class RequestLog(threading.Thread):
    """One keep-alive connection sending /score for random ids back to back, logging (start, seconds, status)."""

    def __init__(self, port: int, key: str, ids: list[str], seed: int):
        super().__init__(daemon=True)
        self.port, self.ids, self.rng = port, ids, random.Random(seed)
        self.headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
        self.records: list[tuple[float, float, int]] = []
        self.halt = threading.Event()

    def run(self) -> None:
        conn = HTTPConnection("127.0.0.1", self.port, timeout=30)
        while not self.halt.is_set():
            body = json.dumps({"merchant_id": self.ids[self.rng.randrange(len(self.ids))]})
            t0 = time.perf_counter()
            try:
                conn.request("POST", "/score", body, self.headers)
                resp = conn.getresponse()
                resp.read()
                status = resp.status
            except (OSError, HTTPException):
                status = -1  # refused, reset or timed out: counted as a failure
                conn.close()
                conn = HTTPConnection("127.0.0.1", self.port, timeout=30)
            self.records.append((t0, time.perf_counter() - t0, status))
        conn.close()

    def window(self, lo: float, hi: float) -> dict:
        """Requests in flight at any time in [lo, hi]: count, failures, p50/p99/max latency (ms)."""
        rows = [(t, s, c) for t, s, c in self.records if t <= hi and t + s >= lo]
        lat = sorted(s * 1e3 for _, s, _ in rows)
        if not lat:
            return {"requests": 0}

        def pct(q: float) -> float:
            return round(lat[min(len(lat) - 1, int(q * len(lat)))], 2)

        return {
            "requests": len(rows),
            "non_2xx": sum(1 for _, _, c in rows if not 200 <= c < 300),
            "failed_connections": sum(1 for _, _, c in rows if c == -1),
            "p50_ms": pct(0.50),
            "p99_ms": pct(0.99),
            "max_ms": round(lat[-1], 2),
            "rps": round(len(rows) / max(hi - lo, 1e-9), 1),
        }


def champion(work: Work) -> tuple[str, str]:
    """The champion's version and serving-bundle folder (in a child process: the settings are the work folder's)."""
    code = (
        "from core.settings import get_settings; from training.model_source import from_mlflow; "
        "h = from_mlflow(get_settings()); print(h.version, h.bundle_dir, sep=chr(9))"
    )
    res = subprocess.run(
        [sys.executable, "-c", code], env=work.env, cwd=ROOT, capture_output=True, text=True, check=False
    )
    if res.returncode != 0:
        sys.exit(f"cannot read the champion:\n{res.stderr[-2000:]}")
    version, bundle_dir = res.stdout.strip().splitlines()[-1].split("\t")
    return version, bundle_dir


def admin(server: Server, key: str, method: str, path: str, timeout: float = 600) -> tuple[int, dict]:
    conn = HTTPConnection("127.0.0.1", server.port, timeout=timeout)
    try:
        body = b"{}" if method == "POST" else None
        conn.request(method, path, body, {"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
        resp = conn.getresponse()
        text = resp.read()
        try:
            return resp.status, json.loads(text)
        except json.JSONDecodeError:
            return resp.status, {"body": text[:500].decode(errors="replace")}
    finally:
        conn.close()


def stage_reload(work: Work, args: argparse.Namespace, server: Server, keys: dict) -> dict:
    import pyarrow.parquet as pq

    out: dict = {"load_average_before": loadavg()}
    current = champion(work)[0]
    other = "2" if current == "1" else "1"
    out["from_version"], out["to_version"] = current, other
    promote = timed(
        "reload-promote",
        [LC, "promote", "--version", other, "--force", "--reason", "bench_national: a second store for the reload"],
        work.env,
        work.logs,
    )
    out["promote_seconds"] = promote["seconds"]
    env = {**work.env, "LIFECREDIT_ANSWERS_DIR": str(work.answers_local)}
    res = timed(f"score-all-v{other}", [LC, "score-all"], env, work.logs)
    line = res.pop("last_line") or {}
    out["second_store"] = {**(line.get("store") or {}), "wall_s": res["seconds"], "peak_rss_gb": res["peak_rss_gb"]}
    print(f"  store for version {other}: {out['second_store']}", flush=True)

    ids = pq.read_table(work.data / "features" / "latest.parquet", columns=["merchant_id"])["merchant_id"]
    load = RequestLog(server.port, keys["bank"], ids.cast("string").to_pylist(), args.seed)
    load.start()
    time.sleep(args.reload_settle)
    t_post = time.perf_counter()
    status, body = admin(server, keys["admin"], "POST", "/admin/reload")
    out["post"] = {"status": status, "seconds": round(time.perf_counter() - t_post, 3), "body": body}
    stages = []
    if status == 202:
        poll = body.get("poll") or f"/admin/reload/{body['job_id']}"
        deadline = t_post + args.reload_timeout
        while time.perf_counter() < deadline:
            code, job = admin(server, keys["admin"], "GET", poll, timeout=30)
            if not stages or stages[-1][1:] != (job.get("stage"), job.get("progress")):
                stages.append((round(time.perf_counter() - t_post, 2), job.get("stage"), job.get("progress")))
            if code != 200 or job.get("status") != "running":
                break
            time.sleep(0.1)
        out["job"] = job
    t_done = time.perf_counter()
    time.sleep(args.reload_settle)
    load.halt.set()
    load.join()
    out["reload_s"] = round(t_done - t_post, 2)
    out["stages"] = stages
    out["succeeded"] = (status == 200) or (status == 202 and out.get("job", {}).get("status") == "succeeded")
    out["before"] = load.window(t_post - args.reload_settle, t_post)
    out["during"] = load.window(t_post, t_done)
    out["after"] = load.window(t_done, t_done + args.reload_settle)
    served = model_card(server, keys["bank"])
    out["served_version_after"] = served.get("model_version") or served.get("version")
    out["memory_after"] = server_memory(server.proc.pid)
    out["load_average_after"] = loadavg()
    print(
        f"  reload {'succeeded' if out['succeeded'] else 'FAILED'} in {out['reload_s']} s (POST answered "
        f"{status} in {out['post']['seconds']} s); during it: {out['during']}; before: {out['before']}",
        flush=True,
    )
    work.save("reload", out)
    return out


# -- summary --------------------------------------------------------------------------------
def summary(results: dict) -> dict:
    build, sa, serve, rl = (results.get(k) or {} for k in ("build", "score_all", "serve", "reload"))
    during = rl.get("during") or {}
    s = {
        "merchants": (build.get("sizes") or {}).get("latest_rows"),
        "build_s": {k: v.get("seconds") for k, v in (build.get("steps") or {}).items()} or None,
        "build_peak_rss_gb": {k: v.get("peak_rss_gb") for k, v in (build.get("steps") or {}).items()} or None,
        "score_all_local_s": (sa.get("local") or {}).get("seconds"),
        "score_all_dask_s": (sa.get("dask") or {}).get("seconds"),
        "dask_equal": (sa.get("compare") or {}).get("equal"),
        "ready_s": serve.get("ready_s"),
        "answering_http_s": serve.get("listening_s"),
        "server_rss_after_c1_gb": (serve.get("memory_after_load") or {}).get("rss_sum_gb"),
        "server_rss_after_soak_gb": (serve.get("memory_after_soak") or {}).get("rss_sum_gb"),
        "server_rss_gb": max(
            (serve.get(k, {}).get("rss_sum_gb") for k in ("memory_after_load", "memory_after_soak") if k in serve),
            default=None,
        ),
        "server_pss_gb": max(
            (serve.get(k, {}).get("pss_sum_gb") for k in ("memory_after_load", "memory_after_soak") if k in serve),
            default=None,
        ),
        "p50_c1_ms": (serve.get("c1") or {}).get("p50_ms"),
        "p99_c1_ms": (serve.get("c1") or {}).get("p99_ms"),
        "rps_c1": (serve.get("c1") or {}).get("rps"),
        "reference_p99_c1_ms": ((serve.get("reference") or {}).get("c1") or {}).get("p99_ms"),
        "p99_over_reference": serve.get("p99_over_reference"),
        "load_average_serve": serve.get("load_average_before"),
        "reload_s": rl.get("reload_s"),
        "reload_store_reused": (rl.get("second_store") or {}).get("reused"),
        "p99_before_reload_ms": (rl.get("before") or {}).get("p99_ms"),
        "reload_p99_ms": during.get("p99_ms"),
        "reload_max_ms": during.get("max_ms"),
        "reload_refused": (during.get("non_2xx") if during else None),
    }

    def le(key: str) -> bool | None:
        return None if s[key] is None else s[key] <= GOALS[key]

    s["goals"] = {
        "ready_s<=10": le("ready_s"),
        "server_rss_gb<=1.5": le("server_rss_gb"),
        "p99_c1_ms<=5": le("p99_c1_ms"),
        "reload_no_refusal_and_p99<=50ms": None
        if not during
        else bool(rl.get("succeeded")) and during.get("non_2xx") == 0 and le("reload_p99_ms"),
        "dask_equal_local": s["dask_equal"],
    }
    return s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, required=True, help="work folder outside the repository")
    ap.add_argument("--merchants", type=int, default=1_000_000)
    ap.add_argument("--stage", default="all", help="build, score-all, serve, reload, several joined by commas, or all")
    ap.add_argument("--months", type=int, default=1, help="panel months of the big market (plus 12 of history)")
    ap.add_argument("--volume-scale", type=float, default=0.02)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--start", default="2023-01-01")
    ap.add_argument("--features-engine", choices=["local", "dask"], default="local")
    ap.add_argument("--small-merchants", type=int, default=5000)
    ap.add_argument("--small-months", type=int, default=24)
    ap.add_argument("--small-seed", type=int, default=7)
    ap.add_argument("--seconds", type=int, default=15, help="wrk duration at one connection")
    ap.add_argument(
        "--reference",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also load benchmarks/starlette_ref.py the same way (the machine's noise floor)",
    )
    ap.add_argument(
        "--soak-seconds", type=int, default=60, help="then load at 16 connections this long and measure memory again"
    )
    ap.add_argument(
        "--workers", type=int, default=1, help="server workers (LIFECREDIT_SERVE_WORKERS): what each extra one costs"
    )
    ap.add_argument("--reload-settle", type=float, default=3.0, help="seconds of load before and after the reload")
    ap.add_argument("--reload-timeout", type=float, default=900.0)
    args = ap.parse_args()
    for tool in ("wrk", "taskset"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} not found: install it (Debian/Ubuntu, as root: apt-get install -y {tool})")
    if len(os.sched_getaffinity(0)) < 2:
        sys.exit("needs two cores (server on core 0, load generator on core 1)")

    work = Work(args.work)
    known = ["build", "score-all", "serve", "reload"]
    stages = known if args.stage == "all" else args.stage.split(",")
    if set(stages) - set(known):
        sys.exit(f"--stage {args.stage}: use {', '.join(known)}, several joined by commas, or all")
    if "build" in stages or not (work.data / "features" / "latest.parquet").exists():
        stage_build(work, args)
    if "score-all" in stages:
        stage_score_all(work, args)
    if "serve" in stages or "reload" in stages:
        keys = {role: create_key(work, role) for role in ("bank", "admin")}
        server = start_server(work, "serve", args.workers)
        os.sched_setaffinity(0, {int(CLIENT_CORE)})
        try:
            if "serve" in stages:
                stage_serve(work, args, server, keys)
            if "reload" in stages:
                stage_reload(work, args, server, keys)
        finally:
            server.stop()
            os.sched_setaffinity(0, set(range(os.cpu_count() or 2)))
    results = work.results()
    results["summary"] = summary(results)
    work.results_file.write_text(json.dumps(results, indent=1, default=str))
    print(json.dumps(results["summary"]))


if __name__ == "__main__":
    main()
