"""The scoring service, tiers 1 and 2: its methods called directly, then its ASGI app through a test client.

One champion trained on the small market (session fixture ``served_champion``); keys for
every role in a module-wide var folder.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
import time
from types import SimpleNamespace

import polars as pl
import pytest
from typer.testing import CliRunner

from helpers import apply_env, in_process_app, reload_in_process
from serving.keys import KeyStore

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def served(served_champion, tmp_path_factory):
    """Settings env for this module (the session champion, a fresh var folder) and one key per role."""
    from core.settings import get_settings

    env = {**served_champion["env"], "LIFECREDIT_VAR_DIR": str(tmp_path_factory.mktemp("serving_var"))}
    with pytest.MonkeyPatch.context() as mp:
        apply_env(env, mp)
        store = KeyStore(get_settings().api_keys_file)
        keys = {role: store.create(role, f"{role}-one") for role in ("bank", "regulator", "admin")}
        keys["bank2"] = store.create("bank", "bank-two")
        snapshot = pl.read_parquet(served_champion["features"] / "latest.parquet")
        yield SimpleNamespace(
            env=env,
            keys=keys,
            snapshot=snapshot,
            ids=snapshot["merchant_id"].to_list(),
            version=served_champion["version"],
        )
    get_settings.cache_clear()


@pytest.fixture
def in_served(served, monkeypatch):
    """This test runs with the module's settings (the autouse fixture isolated them)."""
    apply_env(served.env, monkeypatch)
    return served


def _wait(predicate, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "service not ready in time"
        time.sleep(0.1)


def _body(response) -> dict:
    return json.loads(response.body)


def _features(served, i: int = 0) -> dict:
    """The model's inputs from snapshot row ``i`` (the snapshot also holds identities that are no model input)."""
    from features import load_catalog

    inputs = {f.name for f in load_catalog().model_features()}
    return {k: v for k, v in served.snapshot.row(i, named=True).items() if k in inputs}


# -- tier 1: the service's methods, called directly ---------------------------------------------
@pytest.fixture(scope="module")
def svc(served):
    from serving.service import LifeCredit

    with pytest.MonkeyPatch.context() as mp:
        apply_env(served.env, mp)
        instance = LifeCredit()
        _wait(instance._engine.ready)
    return instance


def _key(svc, served, who: str):
    return KeyStore(svc._engine.settings.api_keys_file).authenticate(served.keys[who])


def call(coro):
    return asyncio.run(coro)


def test_direct_score_by_id_and_by_feature_row_agree(svc, served):
    from serving.service import direct_context

    ctx = direct_context(_key(svc, served, "bank"))
    by_id = _body(call(svc.score(merchant_id=served.ids[0], ctx=ctx)))
    by_row = _body(call(svc.score(features=_features(served, 0), ctx=ctx)))
    assert by_id["merchant_id"] == served.ids[0] and by_row["merchant_id"] is None
    assert by_id["features_as_of"] == str(served.snapshot["as_of"][0]) and by_row["features_as_of"] is None
    for field in ("pd", "score", "grade", "class", "reasons", "model_version"):
        assert by_id[field] == by_row[field], field
    assert 0 < by_id["pd"] < 1 and by_id["class"] in "ABCD" and len(by_id["reasons"]) <= 4
    assert by_id["model_version"] == served.version and by_id["decision_id"] != by_row["decision_id"]
    record = svc._engine.audit.get(by_id["decision_id"])
    assert record["key_name"] == "bank-one" and record["merchant_id"] == served.ids[0]
    assert record["outputs"]["pd"] == by_id["pd"] and record["features_ref"]


def test_direct_decide_is_audited_with_features_and_policy(svc, served):
    from serving.service import direct_context

    ctx = direct_context(_key(svc, served, "bank"))
    before = svc._engine.audit.count("/decide")
    out = _body(
        call(
            svc.decide(
                merchant_id=served.ids[1],
                requested_amount_fen=3_000_000,
                term_months=12,
                product="revenue_based",
                ctx=ctx,
            )
        )
    )
    assert out["decision"] in ("approve", "refer", "decline") and out["policy_hash"]
    assert svc._engine.audit.count("/decide") == before + 1
    record = svc._engine.audit.get(out["decision_id"])
    assert record["policy_hash"] == out["policy_hash"] and record["features"]["merchant_id"] == served.ids[1]
    if out["decision"] != "decline":
        assert set(out["price"]) >= {"factor", "remit_share_of_daily_sales", "minimum_payment_per_60_days_fen"}


def test_direct_errors_are_4xx_with_the_field(svc, served):
    from serving.service import direct_context

    ctx = direct_context(_key(svc, served, "bank"))
    r = call(svc.score(merchant_id="M99999999", ctx=ctx))
    assert r.status_code == 404 and "M99999999" in _body(r)["error"]
    r = call(
        svc.decide(
            merchant_id=served.ids[0], requested_amount_fen=100_000, term_months=30, product="revenue_based", ctx=ctx
        )
    )
    assert r.status_code == 422 and _body(r)["detail"][0]["loc"] == ["term_months"]
    row = _features(served)
    row.pop("sales_net_yuan_180d")
    row["not_a_feature"] = 1
    row["thin_file"] = "yes"
    row["tenure_months"] = "long"
    r = call(svc.score(features=row, ctx=ctx))
    assert r.status_code == 422
    problems = {d["loc"][1]: d["type"] for d in _body(r)["detail"]}
    assert problems == {
        "sales_net_yuan_180d": "missing",
        "not_a_feature": "extra_forbidden",
        "thin_file": "bool_type",
        "tenure_months": "number_type",
    }
    assert call(svc.score(merchant_id=served.ids[0], ctx=direct_context(None))).status_code == 401


def test_audit_failure_fails_closed(served, monkeypatch, tmp_path):
    from core.settings import Settings
    from serving.engine import Engine

    apply_env(served.env, monkeypatch)
    engine = Engine(Settings(var_dir=tmp_path / "var"))
    engine.load()
    key = KeyStore(Settings().api_keys_file).authenticate(served.keys["bank"])
    assert engine.score_id(key, served.ids[0]).status_code == 200
    engine.audit._conn.execute("PRAGMA query_only = ON")
    for response in (
        engine.score_id(key, served.ids[0]),
        engine.score_batch(key, served.ids[:3]),
        engine.decide(key, served.ids[0], 1_000_000, 12, "term_loan"),
    ):
        assert response.status_code == 503 and "audit" in _body(response)["error"]
        assert "decision_id" not in _body(response)
    engine.audit._conn.execute("PRAGMA query_only = OFF")
    assert engine.audit.count() == 1


# -- reload: new champion or snapshot without a restart; broken versions refused -----------------
@pytest.fixture
def own_store(served, monkeypatch, tmp_path):
    """A copy of the champion's registry (the session store stays untouched) and a snapshot folder."""
    from core.settings import get_settings

    apply_env(served.env, monkeypatch)
    mlruns = tmp_path / "mlruns"
    mlruns.mkdir()
    shutil.copy(get_settings().mlruns_dir / "mlflow.db", mlruns / "mlflow.db")
    snap = tmp_path / "snapshot"
    snap.mkdir()
    shutil.copy(get_settings().serving_snapshot_dir / "latest.parquet", snap / "latest.parquet")
    apply_env(
        {
            "LIFECREDIT_MLRUNS_DIR": str(mlruns),
            "LIFECREDIT_SNAPSHOT_DIR": str(snap),
            "LIFECREDIT_VAR_DIR": str(tmp_path / "var"),
        },
        monkeypatch,
    )
    return snap


def test_a_server_opens_the_store_score_all_wrote_and_refuses_one_for_another_policy(
    served, own_store, tmp_path, monkeypatch
):
    """The server answers from the answer store of its champion, snapshot and policy (no second computation);
    pinned to a store computed for another policy, it stays not ready and names the difference."""
    from core.settings import get_settings
    from serving.engine import Engine
    from serving.policy import DEFAULT_POLICY

    monkeypatch.setenv("LIFECREDIT_ANSWERS_DIR", str(tmp_path / "answers"))
    get_settings.cache_clear()
    written = Engine(get_settings())
    written.load()
    store = written.scorer.store
    assert written.ready() and store.path.parent == tmp_path / "answers" and len(store) == len(served.ids)
    assert written.scorer.fragment(written.scorer.find(served.ids[0])) == store.answer(store.find(served.ids[0]))

    other = tmp_path / "policy.yaml"
    other.write_text(DEFAULT_POLICY.read_text().replace('version: "', 'version: "other-', 1))
    monkeypatch.setenv("LIFECREDIT_POLICY_FILE", str(other))
    monkeypatch.setenv("LIFECREDIT_ANSWER_STORE", str(store.path))
    get_settings.cache_clear()
    pinned = Engine(get_settings())
    pinned.load()
    reason = pinned.not_ready().body.decode()
    assert not pinned.ready() and "computed for another policy version" in reason and "wanted other-" in reason


def test_reload_swaps_atomically_and_broken_versions_keep_the_old_model(served, own_store):
    import mlflow

    from core.settings import get_settings
    from serving.engine import Engine
    from training.registry import CHAMPION, client

    engine = Engine(get_settings())
    engine.load()
    key = KeyStore(get_settings().api_keys_file).create("bank", "reloader")
    bank = KeyStore(get_settings().api_keys_file).authenticate(key)
    old = engine.scorer
    m = served.ids[2]
    before = _body(engine.score_id(bank, m))

    # a champion whose run has no serving bundle
    c = client(get_settings())
    exp = c.get_experiment_by_name("lifecredit")
    with mlflow.start_run(experiment_id=exp.experiment_id) as run:
        mlflow.log_param("note", "no artefacts")
    mv = c.create_model_version("lifecredit-merchant-pd", f"{run.info.artifact_uri}/model", run_id=run.info.run_id)
    c.set_registered_model_alias("lifecredit-merchant-pd", CHAMPION, mv.version)
    job = reload_in_process(engine)
    assert job["status"] == "failed" and "serving_bundle" in job["error"]
    assert engine.scorer is old and engine.ready()
    c.set_registered_model_alias("lifecredit-merchant-pd", CHAMPION, served.version)

    # a snapshot that lacks a model feature
    frame = pl.read_parquet(own_store / "latest.parquet")
    frame.drop("complaints_unresolved_share_365d").write_parquet(own_store / "latest.parquet")
    job = reload_in_process(engine)
    assert job["status"] == "failed" and "complaints_unresolved_share_365d" in job["error"]
    assert engine.scorer is old and engine.score_id(bank, m).status_code == 200

    # a good new snapshot, reloaded while requests keep coming: none fails, none mixes models
    changed = frame.with_columns(
        pl.when(pl.col("merchant_id") == m)
        .then(pl.lit(0.95))
        .otherwise(pl.col("complaints_unresolved_share_365d"))
        .alias("complaints_unresolved_share_365d"),
        pl.when(pl.col("merchant_id") == m)
        .then(pl.lit(40))
        .otherwise(pl.col("complaints_365d"))
        .alias("complaints_365d"),
    )
    changed.write_parquet(own_store / "latest.parquet")
    statuses, stop = [], threading.Event()

    def hammer():
        while not stop.is_set():
            statuses.append(engine.score_id(bank, served.ids[len(statuses) % len(served.ids)]).status_code)

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    for t in threads:
        t.start()
    job = reload_in_process(engine)
    stop.set()
    for t in threads:
        t.join()
    assert job["status"] == "succeeded" and job["result"]["snapshot_sha256"] != old.snapshot.sha256
    assert statuses and set(statuses) == {200}
    assert engine.scorer is not old and old.fragment(old.find(m)) == json.dumps(
        {k: v for k, v in before.items() if k not in ("decision_id", "records_under_objection")},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    after = _body(engine.score_id(bank, m))
    assert after["pd"] >= before["pd"]  # unresolved complaints never lower PD (monotone)
    assert after["decision_id"] != before["decision_id"]


# -- replay ---------------------------------------------------------------------------------------
def test_replay_reproduces_every_kind_of_record_after_the_snapshot_moves_on(served, own_store):
    from core.settings import get_settings
    from lifecredit.cli import app
    from serving.engine import Engine

    engine = Engine(get_settings())
    engine.load()
    bank = KeyStore(get_settings().api_keys_file).authenticate(
        KeyStore(get_settings().api_keys_file).create("bank", "replayer")
    )
    ids = served.ids[:5]
    made = [
        _body(engine.score_id(bank, ids[0])),
        _body(engine.score_features(bank, _features(served, 3))),
        _body(engine.score_batch(bank, [*ids, "M99999999", ids[0]])),
        _body(engine.decide(bank, ids[1], 2_000_000, 6, "term_loan")),
    ]
    # the snapshot moves on and the server reloads: the old records still replay exactly
    frame = pl.read_parquet(own_store / "latest.parquet")
    frame.with_columns(pl.col("sales_net_yuan_180d") * 0.5, pl.col("complaints_365d") + 3).write_parquet(
        own_store / "latest.parquet"
    )
    assert reload_in_process(engine)["status"] == "succeeded"
    runner = CliRunner()
    for answer in made:
        res = runner.invoke(app, ["replay", answer["decision_id"]])
        assert res.exit_code == 0, res.stderr
        assert json.loads(res.stdout.strip().splitlines()[-1])["matches"] is True
    res = runner.invoke(app, ["replay", "no-such-id"])
    assert res.exit_code == 2 and "no audit record" in res.stderr


def test_replay_detects_a_changed_policy_copy(served, own_store):
    from core.settings import get_settings
    from lifecredit.cli import app
    from serving import archive
    from serving.engine import Engine

    engine = Engine(get_settings())
    engine.load()
    bank = KeyStore(get_settings().api_keys_file).authenticate(
        KeyStore(get_settings().api_keys_file).create("bank", "tamper")
    )
    out = _body(engine.decide(bank, served.ids[0], 1_000_000, 12, "term_loan"))
    copy = archive.policy_path(get_settings(), out["policy_hash"])
    copy.chmod(0o644)
    copy.write_text(copy.read_text(encoding="utf-8").replace("minimum_fen: 500000", "minimum_fen: 1"), encoding="utf-8")
    res = CliRunner().invoke(app, ["replay", out["decision_id"]])
    assert res.exit_code == 2 and "altered" in res.stderr


# -- tier 2: the ASGI app through a test client ---------------------------------------------------
@pytest.fixture(scope="module")
def client(served):
    from starlette.testclient import TestClient

    with pytest.MonkeyPatch.context() as mp:
        apply_env(served.env, mp)
        with TestClient(in_process_app(), raise_server_exceptions=False) as c:
            _wait(lambda: c.get("/readyz").status_code == 200)
            yield c


def _auth(served, who: str) -> dict:
    return {"Authorization": f"Bearer {served.keys[who]}"}


def test_every_endpoint_by_role(client, served):
    m = served.ids[0]
    bank_decision = client.post(
        "/decide",
        headers=_auth(served, "bank"),
        json={"merchant_id": m, "requested_amount_fen": 1_000_000, "term_months": 12, "product": "term_loan"},
    ).json()
    calls = {
        "score": lambda h: client.post("/score", headers=h, json={"merchant_id": m}),
        "score_batch": lambda h: client.post("/score_batch", headers=h, json={"merchant_ids": [m]}),
        "decide": lambda h: client.post(
            "/decide",
            headers=h,
            json={"merchant_id": m, "requested_amount_fen": 1_000_000, "term_months": 12, "product": "term_loan"},
        ),
        "decision": lambda h: client.get(f"/decisions/{bank_decision['decision_id']}", headers=h),
        "model": lambda h: client.get("/model", headers=h),
    }
    expected = {  # role -> status per endpoint
        "bank": {"score": 200, "score_batch": 200, "decide": 200, "decision": 200, "model": 200},
        "bank2": {"score": 200, "score_batch": 200, "decide": 200, "decision": 404, "model": 200},
        "regulator": {"score": 403, "score_batch": 403, "decide": 403, "decision": 403, "model": 200},
        "admin": {"score": 403, "score_batch": 403, "decide": 403, "decision": 200, "model": 200},
    }
    for who, statuses in expected.items():
        for name, status in statuses.items():
            r = calls[name](_auth(served, who))
            assert r.status_code == status, (who, name, r.text)
            assert r.headers["content-type"].startswith("application/json")
    for name, call_ in calls.items():
        assert call_({}).status_code == 401, name
        assert call_({"Authorization": "Bearer lck_nope_nope"}).status_code == 401, name
    assert client.post("/admin/reload", headers=_auth(served, "bank")).status_code == 403
    for path in ("/livez", "/healthz", "/readyz"):  # /metrics needs the real server (tests/e2e)
        assert client.get(path).status_code == 200, path


def test_score_batch_keeps_order_and_reports_unknown_ids(client, served):
    ids = [served.ids[3], "M99999999", served.ids[0], served.ids[3]]
    r = client.post("/score_batch", headers=_auth(served, "bank"), json={"merchant_ids": ids})
    body = r.json()
    assert r.status_code == 200 and body["count"] == 4 and body["errors"] == 1
    assert [x["merchant_id"] for x in body["results"]] == ids
    assert body["results"][1]["error"]["status"] == 404 and "pd" not in body["results"][1]
    assert body["results"][0] == body["results"][3]
    single = client.post("/score", headers=_auth(served, "bank"), json={"merchant_id": served.ids[0]}).json()
    assert {k: v for k, v in single.items() if k != "decision_id"} == body["results"][2]


MALFORMED = [
    ("/score", b"{not json", 400, None),
    ("/score", b"", 400, None),
    ("/score", b"[]", 400, None),
    ("/score", b'"M1"', 400, None),
    ("/score", b"null", 400, None),
    ("/score", b"{}", 400, None),
    ("/score", b'{"merchant_id": 12}', 400, "merchant_id"),
    ("/score", b'{"merchant_id": "M1", "extra": 1}', 400, "extra"),
    ("/score", b'{"merchant_id": "M1", "features": {}}', 400, None),
    ("/score", b'{"merchant_id": "bad id with spaces"}', 400, "merchant_id"),
    ("/score", b'{"features": [1, 2]}', 400, "features"),
    ("/score", b'{"features": {"a": {"b": 1}}}', 400, "features"),
    ("/score", b'{"features": {"sales_net_yuan_180d": "NaN"}}', 422, "features"),
    ("/score", '{"merchant_id": "\udcff"}'.encode("utf-8", "surrogatepass"), 400, None),
    ("/score", b"\xff\xfe\x00", 400, None),
    ("/score_batch", b'{"merchant_ids": []}', 400, "merchant_ids"),
    ("/score_batch", b'{"merchant_ids": "M1"}', 400, "merchant_ids"),
    ("/score_batch", json.dumps({"merchant_ids": ["M1"] * 10_001}).encode(), 400, "merchant_ids"),
    ("/score_batch", b'{"merchant_ids": [1, 2]}', 400, "merchant_ids"),
    ("/decide", b'{"merchant_id": "M1"}', 400, "requested_amount_fen"),
    (
        "/decide",
        b'{"merchant_id": "M1", "requested_amount_fen": -5, "term_months": 12, "product": "term_loan"}',
        400,
        "requested_amount_fen",
    ),
    (
        "/decide",
        b'{"merchant_id": "M1", "requested_amount_fen": 1e30, "term_months": 12, "product": "term_loan"}',
        400,
        "requested_amount_fen",
    ),
    (
        "/decide",
        b'{"merchant_id": "M1", "requested_amount_fen": 99999999999999, "term_months": 12, "product": "term_loan"}',
        400,
        "requested_amount_fen",
    ),
    (
        "/decide",
        b'{"merchant_id": "M1", "requested_amount_fen": "500", "term_months": 12, "product": "term_loan"}',
        400,
        "requested_amount_fen",
    ),
    (
        "/decide",
        b'{"merchant_id": "M1", "requested_amount_fen": 500.5, "term_months": 12, "product": "term_loan"}',
        400,
        "requested_amount_fen",
    ),
    (
        "/decide",
        b'{"merchant_id": "M1", "requested_amount_fen": 500, "term_months": 0, "product": "term_loan"}',
        400,
        "term_months",
    ),
    (
        "/decide",
        b'{"merchant_id": "M1", "requested_amount_fen": 500, "term_months": 12, "product": "payday"}',
        400,
        "product",
    ),
    (
        "/decide",
        b'{"merchant_id": "M1", "requested_amount_fen": 500, "term_months": 12, "product": "term_loan", "rate": 0.01}',
        400,
        "rate",
    ),
]


@pytest.mark.parametrize(("route", "body", "status", "field"), MALFORMED)
def test_malformed_requests_are_4xx_naming_the_field(client, served, route, body, status, field):
    r = client.post(route, content=body, headers={**_auth(served, "bank"), "Content-Type": "application/json"})
    assert r.status_code == status, r.text
    payload = r.json()
    assert payload["error"]
    if field:
        locs = [str(loc) for d in payload.get("detail", []) for loc in d["loc"]]
        assert field in locs or field in payload["error"], payload


def test_other_bad_requests_are_never_500(client, served):
    auth = _auth(served, "bank")
    checks = [
        client.post("/score", content=b'{"merchant_id": "M1"}', headers={**auth, "Content-Type": "text/plain"}),
        client.post("/score", content=b"a=b", headers={**auth, "Content-Type": "multipart/form-data; boundary=x"}),
        client.post("/score", content=b"x" * 3_000_000, headers={**auth, "Content-Type": "application/json"}),
        client.get("/score", headers=auth),
        client.post("/model", headers=auth),
        client.get("/decisions/", headers=auth),
        client.get("/nowhere", headers=auth),
        client.post("/score", json={"merchant_id": "M99999999"}, headers=auth),
        client.post(
            "/admin/reload", content=b"{bad", headers={**_auth(served, "admin"), "Content-Type": "application/json"}
        ),
    ]
    assert [r.status_code for r in checks] == [415, 415, 413, 405, 405, 404, 404, 404, 400]


def test_model_card_and_openapi(client, served):
    card = client.get("/model", headers=_auth(served, "regulator")).json()
    assert card["name"] == "lifecredit-merchant-pd" and card["version"] == served.version
    assert card["alias"] == "champion" and card["test_metrics"]["auc"] > 0.5
    assert {"train", "test"} <= set(card["windows"]) and card["windows"]["test"]["from"]
    assert card["feature_set"]["name"] and card["feature_set"]["version"] and card["feature_set"]["features"]
    assert card["policy"]["version"] and len(card["policy"]["sha256"]) == 64
    assert card["snapshot"]["merchants"] == len(served.ids)
    spec = client.get("/docs.json").json()
    assert {
        "/score",
        "/score_batch",
        "/decide",
        "/model",
        "/decisions/{decision_id}",
        "/admin/reload",
        "/readyz",
        "/metrics",
    } <= set(spec["paths"])
    schemas = spec["components"]["schemas"]
    assert "requested_amount_fen" in schemas["DecideRequestIODescriptor"]["properties"]
    assert schemas["DecideRequestIODescriptor"]["properties"]["requested_amount_fen"]["description"]


def test_keys_never_reach_the_logs(client, served, caplog):
    import logging

    caplog.set_level(logging.DEBUG)
    for who in ("bank", "regulator"):
        client.post("/score", content=b"{bad", headers={**_auth(served, who), "Content-Type": "application/json"})
        client.post("/score", json={"merchant_id": served.ids[0]}, headers=_auth(served, who))
    text = caplog.text
    for key in served.keys.values():
        assert key not in text and key.split("_", 2)[2] not in text  # the whole secret


def test_a_reload_in_one_worker_reaches_the_others(served, own_store):
    """Workers share the var folder: one reloads and writes the marker, the others poll it and follow."""
    from core.settings import get_settings
    from serving.engine import Engine

    first, second = Engine(get_settings()), Engine(get_settings())
    first.load()
    second.load()
    second.poll_marker()  # nothing announced since its load: no reload
    old = second.scorer
    assert old is not None
    frame = pl.read_parquet(own_store / "latest.parquet")
    frame.with_columns(pl.col("complaints_365d") + 1).write_parquet(own_store / "latest.parquet")
    time.sleep(0.05)  # a distinct marker mtime on coarse clocks
    assert reload_in_process(first)["status"] == "succeeded"
    second.poll_marker()
    assert second.scorer is not old and second.scorer.snapshot.sha256 == first.scorer.snapshot.sha256
    followed = second.scorer
    first.poll_marker()  # its own announcement: no ping-pong between workers
    second.poll_marker()
    assert second.scorer is followed
