"""The promotion gate: absolute checks without a champion, comparison with one, refusal with the
failing check and its margin, forced promotion with a reason, and a history that outlives aliases."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from core.settings import get_settings

MODEL = "lifecredit-merchant-pd"


@pytest.fixture(scope="module")
def wrong_directions(synthetic_features, tmp_path_factory):
    """The same panel with every known risk direction flipped: the monotone model must fight the data."""
    out = tmp_path_factory.mktemp("wrong_directions")
    catalog = yaml.safe_load((synthetic_features / "catalog.yaml").read_text(encoding="utf-8"))
    for f in catalog["features"]:
        f["risk_direction"] = -f["risk_direction"]
    path = out / "catalog.yaml"
    path.write_text(yaml.safe_dump(catalog), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def registry_store(mlflow_store, synthetic_features, wrong_directions):
    """Version 1: a good model; version 2: the wrong-direction model (same panel, same test window)."""
    from training.train import train_from_features

    store = mlflow_store.new()
    with mlflow_store.use(store):
        good = train_from_features(synthetic_features, settings=get_settings(), seed=7)
        bad = train_from_features(synthetic_features, settings=get_settings(), seed=7, catalog=wrong_directions)
    assert (good["version"], bad["version"]) == ("1", "2")
    assert bad["metrics"]["auc"] < good["metrics"]["auc"] - 0.02
    return store


@pytest.fixture
def env(registry_store, mlflow_store):
    with mlflow_store.use(registry_store):
        yield registry_store


def test_gate_sequence(env):
    """One ordered story, since each step depends on where the alias stands."""
    from training.registry import PromotionRefused, client, current_champion, promote, promotion_history

    c = client(get_settings())
    # 1. no champion yet: only the absolute checks run, and they pass
    first = promote(1, get_settings(), by="tester")
    names = [ch["name"] for ch in first["checks"]]
    assert names == [
        "jeffreys_class_A",
        "jeffreys_class_B",
        "jeffreys_class_C",
        "jeffreys_class_D",
        "score_psi_train_test",
    ]
    assert first["promoted"] and first["from_version"] is None and current_champion(c, MODEL) == "1"

    # 2. the wrong-direction model loses too much AUC against the champion: refused, alias unchanged
    with pytest.raises(PromotionRefused, match="auc_vs_champion") as refused:
        promote(2, get_settings(), by="tester")
    failed = {ch["name"]: ch for ch in refused.value.record["checks"] if not ch["passed"]}
    assert "auc_vs_champion" in failed and failed["auc_vs_champion"]["value"] < -0.01
    assert "difference" in failed["auc_vs_champion"]["detail"]
    assert current_champion(c, MODEL) == "1"

    # 3. the CLI says the same, with a non-zero exit code and the JSON record last on stdout
    from lifecredit.cli import app

    res = CliRunner().invoke(app, ["promote", "--version", "2"])
    assert res.exit_code == 1
    assert "FAIL" in res.stderr and "auc_vs_champion" in res.stderr
    record = json.loads(res.stdout.strip().splitlines()[-1])
    assert record["promoted"] is False and record["to_version"] == "2"
    assert CliRunner().invoke(app, ["promote", "--version", "2", "--force"]).exit_code == 2  # no reason

    # 4. forced, with a reason: the alias moves and who/why are recorded
    res = CliRunner().invoke(
        app, ["promote", "--version", "2", "--force", "--reason", "pilot for bank X", "--by", "risk-officer"]
    )
    assert res.exit_code == 0, res.stderr
    assert current_champion(c, MODEL) == "2"
    assert c.get_model_version(MODEL, "2").tags["forced_promotion_reason"] == "pilot for bank X"

    # 5. history: every decision, in order, still there after the alias moved twice
    history = promotion_history(get_settings(), MODEL)
    assert [(h["to_version"], h["promoted"], h["forced"]) for h in history] == [
        ("1", True, False),
        ("2", False, False),
        ("2", False, False),
        ("2", True, True),
    ]
    assert history[-1]["reason"] == "pilot for bank X" and history[-1]["by"] == "risk-officer"
    assert history[-1]["from_version"] == "1"
    last = json.loads(c.get_registered_model(MODEL).tags["last_promotion"])
    assert last["to_version"] == "2" and last["forced"] is True
    run_id = c.get_model_version(MODEL, "2").run_id
    logged = [a.path for a in c.list_artifacts(run_id, "promotions")]
    assert len(logged) == 3  # two refusals and the forced promotion of version 2

    # 6. back to version 1: better AUC, but its scores differ so much from the champion's that
    #    the stability check refuses it on its own
    with pytest.raises(PromotionRefused) as refused:
        promote(1, get_settings(), by="tester")
    checks = {ch["name"]: ch for ch in refused.value.record["checks"]}
    assert checks["auc_vs_champion"]["passed"] and checks["auc_vs_champion"]["value"] > 0
    assert not checks["score_psi_vs_champion"]["passed"] and checks["score_psi_vs_champion"]["value"] > 0.25
    assert current_champion(c, MODEL) == "2" and len(promotion_history(get_settings(), MODEL)) == 5


def test_unknown_version_is_a_clear_error(env):
    from lifecredit.cli import app

    res = CliRunner().invoke(app, ["promote", "--version", "99"])
    assert res.exit_code == 2 and "promote stopped" in res.stderr
