"""Tier 3: a real ``lifecredit serve`` process over HTTP, and a built Bento served by ``bentoml serve``.

Each server runs in its own process group on a free port and is stopped at the end of its
test. The champion is the session fixture ``served_champion``.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from helpers import BIN, ROOT, free_port, http, server


@pytest.fixture(scope="module")
def site(served_champion, tmp_path_factory):
    """Environment for the server processes and one key per role (created through the CLI)."""
    var = tmp_path_factory.mktemp("e2e_var")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIFECREDIT_")}
    env.update(
        served_champion["env"],
        LIFECREDIT_VAR_DIR=str(var),
        OMP_WAIT_POLICY="PASSIVE",
        BENTOML_DO_NOT_TRACK="true",
        BENTOML_HOME=str(tmp_path_factory.mktemp("bentoml_home")),
        PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    keys = {}
    for role in ("bank", "regulator", "admin"):
        res = subprocess.run(
            [str(BIN / "lifecredit"), "keys", "create", "--role", role, "--name", f"e2e-{role}"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        keys[role] = res.stdout.strip().splitlines()[-1]
    ids = pl.read_parquet(served_champion["features"] / "latest.parquet")["merchant_id"].to_list()
    return {
        "env": env,
        "keys": keys,
        "ids": ids,
        "logs": tmp_path_factory.mktemp("logs"),
        "version": served_champion["version"],
    }


def test_serve_refuses_to_start_without_snapshot_or_champion(served_champion, monkeypatch, tmp_path):
    from core.settings import get_settings
    from lifecredit.cli import app

    for k, v in served_champion["env"].items():
        monkeypatch.setenv(k, v)
    get_settings.cache_clear()
    runner = CliRunner()
    res = runner.invoke(app, ["serve", "--features", str(tmp_path / "empty")])
    assert res.exit_code == 2 and "lifecredit features" in res.stderr
    res = runner.invoke(app, ["serve", "--model-name", "no-such-model"])
    assert res.exit_code == 2 and "lifecredit train" in res.stderr and "lifecredit promote" in res.stderr


def test_lifecredit_serve_every_endpoint_every_role(site):
    port = free_port()
    cmd = [str(BIN / "lifecredit"), "serve", "--port", str(port)]
    with server(cmd, site["env"], port, site["logs"] / "serve.log") as url:
        keys, m = site["keys"], site["ids"][0]
        decide = {"merchant_id": m, "requested_amount_fen": 2_000_000, "term_months": 12, "product": "term_loan"}
        status, decided = http("POST", f"{url}/decide", decide, keys["bank"])
        assert status == 200 and decided["decision"] in ("approve", "refer", "decline")
        calls = {
            "score": ("POST", "/score", {"merchant_id": m}),
            "score_batch": ("POST", "/score_batch", {"merchant_ids": [m, "M99999999"]}),
            "decide": ("POST", "/decide", decide),
            "decision": ("GET", f"/decisions/{decided['decision_id']}", None),
            "model": ("GET", "/model", None),
            "reload": ("POST", "/admin/reload", None),
        }
        allowed = {
            "bank": {"score", "score_batch", "decide", "decision", "model"},
            "regulator": {"model"},
            "admin": {"decision", "model", "reload"},
        }
        for role, key in keys.items():
            for name, (method, path, body) in calls.items():
                status, payload = http(method, f"{url}{path}", body, key)
                ok = 202 if name == "reload" else 200  # a reload answers with its job at once
                assert status == (ok if name in allowed[role] else 403), (role, name, payload)
            for bad in (None, "lck_0000_wrong"):
                assert http("POST", f"{url}/score", {"merchant_id": m}, bad)[0] == 401
        status, scored = http("POST", f"{url}/score", {"merchant_id": m}, keys["bank"])
        assert scored["model_version"] == site["version"] and scored["decision_id"]
        status, batch = http("POST", f"{url}/score_batch", {"merchant_ids": [m, "M99999999"]}, keys["bank"])
        assert batch["errors"] == 1 and batch["results"][1]["error"]["status"] == 404
        assert http("POST", f"{url}/score", b"{oops", keys["bank"])[0] == 400
        assert http("POST", f"{url}/score", {"merchant_id": "M99999999"}, keys["bank"])[0] == 404
        for probe in ("/livez", "/healthz", "/readyz", "/metrics"):
            assert http("GET", f"{url}{probe}")[0] == 200, probe
        status, record = http("GET", f"{url}/decisions/{scored['decision_id']}", None, keys["admin"])
        assert status == 200 and record["key_name"] == "e2e-bank" and record["outputs"]["pd"] == scored["pd"]
    log = (site["logs"] / "serve.log").read_text()
    assert all(key not in log for key in keys.values())


def test_bento_builds_and_serves_without_the_registry(site, tmp_path):
    env = dict(site["env"])
    res = subprocess.run(
        [str(BIN / "lifecredit"), "bento", "build"], env=env, capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    assert res.returncode == 0, res.stderr[-3000:]
    built = json.loads(res.stdout.strip().splitlines()[-1])
    assert built["bento"].startswith("lifecredit:") and built["model_version"] == site["version"]
    # the Bento must not need MLflow: point the registry at nothing and use a fresh var folder
    env.update(LIFECREDIT_MLRUNS_DIR=str(tmp_path / "no-registry"), LIFECREDIT_VAR_DIR=str(tmp_path / "var"))
    subprocess.run(
        [str(BIN / "lifecredit"), "keys", "create", "--role", "bank", "--name", "bento-bank"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    key = subprocess.run(
        [str(BIN / "lifecredit"), "keys", "create", "--role", "regulator"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    bank = subprocess.run(
        [str(BIN / "lifecredit"), "keys", "create", "--role", "bank"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    port = free_port()
    cmd = [str(BIN / "bentoml"), "serve", built["bento"], "--port", str(port), "--host", "127.0.0.1"]
    with server(cmd, env, port, site["logs"] / "bento.log") as url:
        status, card = http("GET", f"{url}/model", None, key)
        assert status == 200 and card["source"].startswith("bentoml model store") and card["version"] == site["version"]
        status, scored = http("POST", f"{url}/score", {"merchant_id": site["ids"][1]}, bank)
        assert status == 200 and scored["model_version"] == site["version"]
    assert not (tmp_path / "no-registry").exists()


def _mapping_pids(folder) -> dict[int, set[str]]:
    """Processes that map files of ``folder``, with the files each maps (from /proc/<pid>/maps)."""
    found: dict[int, set[str]] = {}
    for maps in Path("/proc").glob("[0-9]*/maps"):
        try:
            files = {line.split(maxsplit=5)[-1] for line in maps.read_text().splitlines() if str(folder) in line}
        except OSError:
            continue
        if files:
            found[int(maps.parent.name)] = files
    return found


def test_two_workers_share_one_mapped_answer_store(site, tmp_path):
    """With LIFECREDIT_SERVE_WORKERS=2 both workers map the same store files (one copy in the page cache);
    their first loads race to write the missing store and one folder results."""
    import time

    answers = tmp_path / "answers"
    env = {**site["env"], "LIFECREDIT_SERVE_WORKERS": "2", "LIFECREDIT_ANSWERS_DIR": str(answers)}
    port = free_port()
    with server([str(BIN / "lifecredit"), "serve", "--port", str(port)], env, port, site["logs"] / "two.log") as url:
        deadline = time.monotonic() + 90
        while len(mapping := _mapping_pids(answers)) < 2 and time.monotonic() < deadline:
            time.sleep(0.5)
        stores = [p for p in answers.iterdir() if not p.name.startswith(".")]
        assert len(stores) == 1 and len(mapping) == 2, (stores, mapping)
        assert all(files == {str(stores[0] / "part-00000.arrow")} for files in mapping.values()), mapping
        for m in site["ids"][:20]:
            status, body = http("POST", f"{url}/score", {"merchant_id": m}, site["keys"]["bank"])
            assert status == 200 and body["merchant_id"] == m
