"""API keys: shown once, stored hashed, roles enforced, revocation live."""

import json

import pytest
from typer.testing import CliRunner

from lifecredit.cli import app
from serving.keys import KeyStore, UnknownKey


def test_key_is_stored_only_as_salted_hash(tmp_path):
    store = KeyStore(tmp_path / "keys.json")
    key = store.create("bank", "bank-a")
    raw = (tmp_path / "keys.json").read_text()
    assert key.split("_", 2)[2] not in raw
    assert key not in raw
    record = json.loads(raw)[0]
    assert record["role"] == "bank" and record["name"] == "bank-a" and len(record["salt"]) == 32


def test_authenticate_accepts_only_the_exact_active_key(tmp_path):
    store = KeyStore(tmp_path / "keys.json")
    key = store.create("regulator")
    assert store.authenticate(key).role == "regulator"
    assert store.authenticate(key[:-1] + ("A" if key[-1] != "A" else "B")) is None
    assert store.authenticate("not-a-key") is None
    assert store.authenticate("") is None


def test_revocation_is_seen_by_another_store_on_the_same_file(tmp_path):
    writer, server = KeyStore(tmp_path / "keys.json"), KeyStore(tmp_path / "keys.json")
    key = writer.create("bank", "b1")
    assert server.authenticate(key) is not None
    writer.revoke("b1")
    assert server.authenticate(key) is None
    with pytest.raises(UnknownKey):
        writer.revoke("b1")


def test_unknown_role_is_refused(tmp_path):
    with pytest.raises(ValueError, match="role must be one of"):
        KeyStore(tmp_path / "keys.json").create("superuser")


def test_cli_create_list_revoke(tmp_path):
    runner = CliRunner()
    created = runner.invoke(app, ["keys", "create", "--role", "bank", "--name", "demo-bank"])
    assert created.exit_code == 0, created.output
    key = created.stdout.strip().splitlines()[-1]
    assert key.startswith("lck_")
    listed = runner.invoke(app, ["keys", "list"])
    assert "demo-bank" in listed.stdout and key not in listed.stdout
    assert runner.invoke(app, ["keys", "revoke", "demo-bank"]).exit_code == 0
    assert runner.invoke(app, ["keys", "revoke", "demo-bank"]).exit_code == 2
