"""Faults against real processes: the service fails closed and keeps its last good state.

Each test runs ``lifecredit`` / ``bentoml serve`` processes on loopback with their own
stores (a private MLflow store holding a copy of the session champion, a private snapshot
folder, a private audit log), so the session's stores stay untouched. Full disk is simulated
with ``ulimit -f`` (RLIMIT_FSIZE) on the server process: once the audit log's files reach the
limit, SQLite's writes fail with EFBIG ("database or disk is full"), exactly like a full disk.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import polars as pl
import pytest

from benchmarks.soak import LC, ServerProcess, base_env, cli, free_port, serve, service_cmd
from helpers import reload_over_http

MODEL = "lifecredit-merchant-pd"


def _keys(env: dict, *roles: str) -> dict[str, str]:
    return {
        r: cli(["keys", "create", "--role", r, "--name", f"faults-{r}"], env).strip().splitlines()[-1] for r in roles
    }


def _post(url: str, path: str, key: str, body: dict | None = None) -> httpx.Response:
    return httpx.post(url + path, json=body, headers={"Authorization": f"Bearer {key}"}, timeout=120)


def _wait_settled(url: str, seconds: float = 180) -> httpx.Response:
    """/readyz once the first load has finished (ready, or not ready for a reason other than loading)."""
    deadline = time.monotonic() + seconds
    while True:
        r = httpx.get(url + "/readyz", timeout=30)
        if r.status_code == 200 or "still loading" not in r.text or time.monotonic() > deadline:
            return r
        time.sleep(0.5)


def _use_store(monkeypatch, mlruns: Path) -> None:
    from core.settings import get_settings

    monkeypatch.setenv("LIFECREDIT_MLRUNS_DIR", str(mlruns))
    get_settings.cache_clear()


def _bundle_of(served_champion) -> Path:
    root = Path(served_champion["env"]["LIFECREDIT_MLRUNS_DIR"]) / "artifacts"
    return next(root.glob(f"**/{served_champion['run_id']}/artifacts/serving_bundle"))


def register_copy(bundle: Path | None, *, champion: bool, corrupt=None) -> str:
    """Log ``bundle`` (after ``corrupt(folder)``) as a new run of the current store and register it.

    ``bundle=None`` registers a version whose run has no serving bundle at all.
    """
    import mlflow

    from core.settings import get_settings
    from training.registry import CHAMPION, client, experiment_id, register

    c = client(get_settings())
    with mlflow.start_run(experiment_id=experiment_id(c, "lifecredit", get_settings())) as run:
        mlflow.log_param("note", "fault test copy")
        if bundle is not None:
            with tempfile.TemporaryDirectory() as tmp:
                work = Path(shutil.copytree(bundle, Path(tmp) / "serving_bundle"))
                if corrupt:
                    corrupt(work)
                mlflow.log_artifacts(str(work), "serving_bundle")
    version = register(c, f"{run.info.artifact_uri}/serving_bundle", MODEL, run_id=run.info.run_id, tags={})
    if champion:
        c.set_registered_model_alias(MODEL, CHAMPION, version)
    return version


def _registry_state() -> tuple[list[str], dict]:
    from core.settings import get_settings
    from training.registry import client

    c = client(get_settings())
    versions = sorted(int(mv.version) for mv in c.search_model_versions(f"name='{MODEL}'"))
    return versions, dict(c.get_registered_model(MODEL).aliases)


# -- MLflow store empty or unreachable at start --------------------------------------------------
def test_store_empty_or_unreachable_means_not_ready_and_no_score(served_champion, tmp_path):
    env = base_env(
        **{k: v for k, v in served_champion["env"].items() if k != "LIFECREDIT_MLRUNS_DIR"},
        LIFECREDIT_MLRUNS_DIR=str(tmp_path / "empty-mlruns"),
        LIFECREDIT_VAR_DIR=str(tmp_path / "var"),
    )
    bank = _keys(env, "bank")["bank"]
    closed = free_port()
    down = {
        **env,
        "LIFECREDIT_TRACKING_URI": f"http://127.0.0.1:{closed}",
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
    }
    ports = free_port(), free_port()
    with (
        ServerProcess(env, tmp_path / "empty.log", port=ports[0], cmd=service_cmd(ports[0])) as empty,
        ServerProcess(down, tmp_path / "down.log", port=ports[1], cmd=service_cmd(ports[1])) as unreachable,
    ):
        for server, cause in (
            (empty, "has no version with alias 'champion'"),
            (unreachable, f"MLflow store at http://127.0.0.1:{closed} is unreachable"),
        ):
            server.wait("/livez")
            ready = _wait_settled(server.url)
            assert ready.status_code == 503 and cause in ready.text, ready.text
            for body in ({"merchant_id": "M00000001"}, {"features": {"sales_net_yuan_30d": 1.0}}):
                r = _post(server.url, "/score", bank, body)
                assert r.status_code == 503 and cause in r.json()["error"] and "pd" not in r.json(), r.text
    res = subprocess.run(
        [LC, "serve", "--port", str(free_port())], env=down, capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 2 and "unreachable" in res.stderr


# -- reload refusals: a broken champion or snapshot never replaces the serving one ---------------
@pytest.fixture(scope="module")
def reloadable(served_champion, tmp_path_factory):
    """A server on a private store (champion = a copy of the session champion) and a private snapshot folder."""
    root = tmp_path_factory.mktemp("reloadable")
    snap = root / "snapshot"
    snap.mkdir()
    for name in ("latest.parquet", "metadata.json"):
        shutil.copy(served_champion["features"] / name, snap / name)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LIFECREDIT_DATA_DIR", str(root / "data"))
        mp.setenv("LIFECREDIT_VAR_DIR", str(root / "var"))
        _use_store(mp, root / "mlruns")
        version = register_copy(_bundle_of(served_champion), champion=True)
    env = base_env(
        LIFECREDIT_DATA_DIR=str(root / "data"),
        LIFECREDIT_MLRUNS_DIR=str(root / "mlruns"),
        LIFECREDIT_SNAPSHOT_DIR=str(snap),
        LIFECREDIT_VAR_DIR=str(root / "var"),
    )
    keys = _keys(env, "bank", "admin")
    m = pl.read_parquet(snap / "latest.parquet", columns=["merchant_id"])["merchant_id"][0]
    with serve(env, root / "serve.log") as url:
        yield {"url": url, "keys": keys, "root": root, "snap": snap, "version": version, "merchant": m}


def _still_serving(site: dict, before: dict | None = None) -> dict:
    r = _post(site["url"], "/score", site["keys"]["bank"], {"merchant_id": site["merchant"]})
    assert r.status_code == 200 and r.json()["model_version"] == site["version"], r.text
    if before is not None:
        assert {k: r.json()[k] for k in ("pd", "features_as_of")} == {k: before[k] for k in ("pd", "features_as_of")}
    return r.json()


def _refused(site: dict, *needles: str) -> None:
    """The reload job fails, naming what is wrong, and the server stays ready on its old answers."""
    job = reload_over_http(site["url"], site["keys"]["admin"])
    assert job["status"] == "failed", job
    assert all(n in job["error"] for n in needles), job
    assert httpx.get(site["url"] + "/readyz").status_code == 200


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize(
    ("case", "corrupt", "needle"),
    [
        ("missing", None, "no usable serving_bundle/"),
        ("truncated", lambda d: _truncate(d / "model.txt"), "corrupt or truncated"),
        ("garbage", lambda d: (d / "model.txt").write_bytes(os.urandom(4096)), "cannot load its bundle"),
        ("bad json", lambda d: _truncate(d / "bundle.json"), "cannot load its bundle"),
    ],
)
def test_reload_refuses_champion_with_missing_or_corrupt_artefact(
    reloadable, monkeypatch, served_champion, case, corrupt, needle
):
    from core.settings import get_settings
    from training.registry import CHAMPION, client

    before = _still_serving(reloadable)
    _use_store(monkeypatch, reloadable["root"] / "mlruns")
    bad = register_copy(None if case == "missing" else _bundle_of(served_champion), champion=True, corrupt=corrupt)
    try:
        _refused(reloadable, f"version {bad}", needle)
        _still_serving(reloadable, before)
    finally:
        client(get_settings()).set_registered_model_alias(MODEL, CHAMPION, reloadable["version"])


@pytest.mark.parametrize(
    ("case", "needle"),
    [
        ("truncated", "cannot read feature snapshot"),
        ("garbage", "cannot read feature snapshot"),
        ("half the rows", "is partial"),
        ("no merchant_id", "has no merchant_id column"),
    ],
)
def test_reload_refuses_corrupt_or_partial_snapshot_and_keeps_the_old_one(reloadable, case, needle):
    latest = reloadable["snap"] / "latest.parquet"
    good = latest.read_bytes()
    before = _still_serving(reloadable)
    frame = pl.read_parquet(latest)
    if case == "truncated":
        _truncate(latest)
    elif case == "garbage":
        latest.write_bytes(os.urandom(len(good)))
    elif case == "half the rows":
        frame.head(frame.height // 2).write_parquet(latest)
    else:
        frame.drop("merchant_id").write_parquet(latest)
    try:
        _refused(reloadable, str(latest), needle)
        _still_serving(reloadable, before)
    finally:
        latest.write_bytes(good)
    job = reload_over_http(reloadable["url"], reloadable["keys"]["admin"])
    assert job["status"] == "succeeded" and job["result"]["model_version"] == reloadable["version"], job


# -- audit store unwritable: no decision without a record -------------------------------------------
def _audit_ids(db: Path, endpoint: str) -> set[str]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return {r[0] for r in conn.execute("SELECT decision_id FROM audit_log WHERE endpoint = ?", (endpoint,))}


def _immutable(path: Path, on: bool) -> bool:
    """Make ``path`` unwritable even for root (chattr +i); False where that is not possible."""
    if os.geteuid() != 0:
        path.chmod(0o444 if on else 0o644)
        return True
    return subprocess.run(["chattr", "+i" if on else "-i", str(path)], capture_output=True).returncode == 0


def test_audit_store_read_only_or_full_fails_closed(served_champion, tmp_path):
    from core.audit import AuditLog

    env = base_env(**served_champion["env"], LIFECREDIT_VAR_DIR=str(tmp_path / "var"))
    bank = _keys(env, "bank")["bank"]
    m = pl.read_parquet(served_champion["features"] / "latest.parquet", columns=["merchant_id"])["merchant_id"]
    ro_db, full_db = tmp_path / "ro" / "audit.db", tmp_path / "full" / "audit.db"
    AuditLog(f"sqlite:///{ro_db}", checkpoint_seconds=None).close()
    if not _immutable(ro_db, True):
        pytest.skip("cannot make a file read-only for this (root) user: chattr +i refused")
    full_port = free_port()
    try:
        ro = ServerProcess({**env, "LIFECREDIT_AUDIT_URL": f"sqlite:///{ro_db}"}, tmp_path / "ro.log")
        full = ServerProcess(
            {**env, "LIFECREDIT_AUDIT_URL": f"sqlite:///{full_db}"},
            tmp_path / "full.log",
            port=full_port,
            cmd=["bash", "-c", f"ulimit -f 512 && exec {LC} serve --port {full_port}"],
        )
        with ro, full:
            # read-only file (SQLite may still open it read-only): neither /decide nor /score answers
            ro.wait("/livez")
            _wait_settled(ro.url)
            decide = {"merchant_id": m[0], "requested_amount_fen": 1_000_000, "term_months": 12, "product": "term_loan"}
            for path, body in (("/decide", decide), ("/score", {"merchant_id": m[0]})):
                r = _post(ro.url, path, bank, body)
                assert r.status_code == 503 and "audit" in r.json()["error"] and "decision_id" not in r.json(), r.text
            assert _audit_ids(ro_db, "/decide") == set()

            # full disk (512 KiB per file): decisions until the log is full, then 503s; none lost
            full.wait()
            answered, scored, refused, scores_refused = [], [], 0, 0
            for i in range(3000):
                body = {**decide, "merchant_id": m[i % len(m)]}
                r = _post(full.url, "/decide", bank, body)
                if r.status_code == 200:
                    answered.append(r.json()["decision_id"])
                    continue
                assert r.status_code == 503 and "audit store" in r.json()["error"], r.text
                assert "decision" not in r.json() and "decision_id" not in r.json()
                refused += 1
                # a /score record is smaller than a /decide one and may still fit: then it is
                # answered and recorded; once it cannot be recorded it is refused too
                score = _post(full.url, "/score", bank, {"merchant_id": m[i % len(m)]})
                if score.status_code == 200:
                    scored.append(score.json()["decision_id"])
                else:
                    assert score.status_code == 503 and "pd" not in score.json(), score.text
                    scores_refused += 1
                if refused >= 3 and scores_refused >= 1:
                    break
            assert refused >= 3 and scores_refused >= 1 and len(answered) > 10, (len(answered), refused, scores_refused)
        assert _audit_ids(full_db, "/decide") == set(answered)
        assert _audit_ids(full_db, "/score") == set(scored)
    finally:
        _immutable(ro_db, False)


# -- training killed mid-run ------------------------------------------------------------------------
def test_training_killed_mid_run_leaves_registry_and_champion_unchanged(served_champion, tmp_path, monkeypatch):
    mlruns = tmp_path / "mlruns"
    _use_store(monkeypatch, mlruns)
    register_copy(_bundle_of(served_champion), champion=True)
    before = _registry_state()
    env = base_env(
        LIFECREDIT_DATA_DIR=str(tmp_path / "data"),
        LIFECREDIT_MLRUNS_DIR=str(mlruns),
        LIFECREDIT_VAR_DIR=str(tmp_path / "var"),
    )
    train = [LC, "train", "--features", str(served_champion["features"]), "--seed", "3"]
    known = _run_ids(mlruns)
    proc = subprocess.Popen(
        train, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + 240
    while not (_run_ids(mlruns) - known) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.1)  # the run is logging its evidence (seconds); registration comes after
    assert proc.poll() is None, "training finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert _registry_state() == before
    done = json.loads(cli(train[1:], env).strip().splitlines()[-1])
    versions, aliases = _registry_state()
    assert versions == sorted([*before[0], int(done["version"])])
    assert aliases["champion"] == before[1]["champion"] and aliases["challenger"] == int(done["version"])


def _run_ids(mlruns: Path) -> set[str]:
    db = mlruns / "mlflow.db"
    if not db.exists():
        return set()
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
            return {r[0] for r in conn.execute("SELECT run_uuid FROM runs")}
    except sqlite3.Error:
        return set()


# -- validation interrupted mid-write ----------------------------------------------------------------
def _tables(out: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(out)): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file() and not p.name.startswith(".")
    }


def test_validation_killed_mid_write_leaves_no_partial_table(small_market, validated_market, tmp_path):
    env = base_env(LIFECREDIT_DATA_DIR=str(tmp_path / "data"), LIFECREDIT_VAR_DIR=str(tmp_path / "var"))
    previous, fresh = tmp_path / "previous", tmp_path / "fresh"
    shutil.copytree(validated_market, previous)
    fresh.mkdir()
    kept = _tables(previous)
    for out in (previous, fresh):
        proc = subprocess.Popen(
            [LC, "validate", "--raw", str(small_market), "--out", str(out)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 240
        while not any(p.stat().st_size for p in out.rglob(".*.tmp")) and time.monotonic() < deadline:
            assert proc.poll() is None, "validation finished before it could be killed"
            time.sleep(0.01)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    # the previous complete output is intact; the fresh folder holds no table under its final name
    assert _tables(previous) == kept
    assert not [p for p in fresh.rglob("*.parquet") if not p.name.startswith(".")]
    assert not (fresh / "validation_summary.json").exists()
    res = subprocess.run(
        [LC, "features", "--raw", str(fresh), "--out", str(tmp_path / "features")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode != 0 and "merchants" in res.stderr, res.stderr[-2000:]
