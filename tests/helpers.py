"""Helpers the integration and end-to-end tests share: a real server process over HTTP, a fresh PostgreSQL database.

Importable as ``helpers`` from any test (``tests/`` is on ``sys.path`` through its conftest).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[1]
# A role there must be allowed to CREATE DATABASE; the tests never touch its other databases.
# Months of class history the regulator tests build: 12 would leave no month with full 12-month outcomes.
REGULATOR_MONTHS = 14
PG_URL_VARIABLE = "LC_TEST_PG_URL"
PG_DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method: str, url: str, body: dict | bytes | None = None, key: str | None = None) -> tuple[int, dict | str]:
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    headers = {"Content-Type": "application/json"} if data is not None else {}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as err:
        status, raw = err.code, err.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode("utf-8", "replace")


@contextmanager
def server(cmd: list[str], env: dict, port: int, log: Path, ready_seconds: float = 180):
    """Run ``cmd`` in its own process group until ``/readyz`` answers 200; yield its base URL; stop it after."""
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=ROOT)
        try:
            deadline = time.monotonic() + ready_seconds
            while True:
                assert proc.poll() is None, f"server exited ({proc.returncode}):\n{log.read_text()[-3000:]}"
                try:
                    if http("GET", f"http://127.0.0.1:{port}/readyz")[0] == 200:
                        break
                except OSError:
                    pass
                assert time.monotonic() < deadline, f"not ready in {ready_seconds} s:\n{log.read_text()[-3000:]}"
                time.sleep(0.5)
            yield f"http://127.0.0.1:{port}"
        finally:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            except ProcessLookupError:
                pass


def pg_admin_url() -> str:
    """The test PostgreSQL server (``$LC_TEST_PG_URL``); skips the test with how to get one when none answers."""
    import psycopg2

    url = os.environ.get(PG_URL_VARIABLE, PG_DEFAULT_URL)
    try:
        psycopg2.connect(url, connect_timeout=3).close()
    except psycopg2.Error as err:
        pytest.skip(
            f"no PostgreSQL server at {url} ({' '.join(str(err).split())}): start one "
            f"(`apt-get install postgresql && service postgresql start`) or set {PG_URL_VARIABLE}="
            f"postgresql://USER@HOST:PORT/postgres for a role that may create databases"
        )
    return url


def pg_execute(url: str, sql: str, args: tuple = ()) -> list[tuple]:
    """Run one statement outside a transaction (CREATE/DROP DATABASE need that); rows if it returns any."""
    import psycopg2

    conn = psycopg2.connect(url, connect_timeout=5)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


@contextmanager
def fresh_database(prefix: str = "lc_test"):
    """A newly created database with a random name on the test server, yielded as its URL, dropped afterwards."""
    admin = pg_admin_url()
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    pg_execute(admin, f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(urlsplit(admin)._replace(path=f"/{name}"))
    finally:
        pg_execute(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def set_reachable(url: str, reachable: bool) -> None:
    """Simulate a database outage (``False``: refuse new connections, end open ones) or its end (``True``)."""
    name = urlsplit(url).path.lstrip("/")
    admin = pg_admin_url()
    pg_execute(admin, f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {"true" if reachable else "false"}')
    if not reachable:
        pg_execute(admin, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))


def in_process_app():
    """The service as an in-process ASGI app (for Starlette's TestClient), without BentoML's metrics.

    BentoML registers its Prometheus metrics in the process-wide registry each time an app is
    built, so a second app in the same test process would fail with DuplicateTimeseries. The
    metrics endpoint is exercised against the real server in tests/e2e instead.
    """
    from serving.service import LifeCredit

    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(LifeCredit.config, "metrics", {**LifeCredit.config.get("metrics", {}), "enabled": False})
        return LifeCredit.to_asgi()


def apply_env(env: dict, mp: pytest.MonkeyPatch) -> None:
    """Set ``env`` through ``mp`` and drop the cached settings so the next read sees it."""
    from core.settings import get_settings

    for k, v in env.items():
        mp.setenv(k, v)
    get_settings.cache_clear()


@contextmanager
def headless_chromium(width: int, height: int):
    """A headless Chromium driven by chromedriver (English locale, browser console kept for the tests to read)."""
    import shutil

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--lang=en-US"):
        options.add_argument(arg)
    options.add_argument(f"--window-size={width},{height}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    chromedriver = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    driver = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(120)
    try:
        yield driver
    finally:
        driver.quit()


def file_objections(
    path: Path, objectors: list[str], repairers: list[str], received, repairs_received, answered_after
) -> None:
    """Objections of ``objectors`` (one each, in order; every second one resolved ``answered_after`` later, corrected
    or upheld in turn) and repair requests of ``repairers``, straight into an objection store before a server starts."""
    from core.objections import ObjectionStore

    store = ObjectionStore(path)
    try:
        for n, mid in enumerate(objectors):
            o = store.file(
                merchant_id=mid,
                kind="objection",
                table="complaints",
                record_id=f"C{n}",
                reason="not mine",
                filed_by=mid,
                now=received,
            )
            if n % 2:
                outcome = "corrected" if n % 4 == 1 else "upheld"
                store.resolve(o.objection_id, outcome=outcome, resolved_by="steward", now=received + answered_after)
        for n, mid in enumerate(repairers):
            store.file(
                merchant_id=mid,
                kind="repair",
                table="public_records",
                record_id=f"P{n}",
                reason="repaired",
                filed_by=mid,
                now=repairs_received,
            )
    finally:
        store.close()


def _follow_reload(started: tuple[int, dict], poll, timeout: float) -> dict:
    status, body = started
    assert status == 202, body
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = poll(body["job_id"])
        if job["status"] != "running":
            return job
        time.sleep(0.1)
    raise AssertionError(f"reload {body['job_id']} still running after {timeout} s")


def reload_over_http(url: str, admin_key: str, timeout: float = 180) -> dict:
    """POST /admin/reload (202 and a job id), then GET /admin/reload/{id} until the job ends: its last state."""

    def poll(job_id: str) -> dict:
        status, job = http("GET", f"{url}/admin/reload/{job_id}", key=admin_key)
        assert status == 200, job
        return job

    return _follow_reload(http("POST", url + "/admin/reload", {}, admin_key), poll, timeout)


def reload_in_process(engine, timeout: float = 180) -> dict:
    """An admin's reload through ``Engine.admin_reload``, followed until the job ends: its last state."""
    r = engine.admin_reload()
    return _follow_reload(
        (r.status_code, json.loads(r.body)), lambda job_id: json.loads(engine.reload_status(job_id).body), timeout
    )
