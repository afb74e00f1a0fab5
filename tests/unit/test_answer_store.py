"""The answer store: written from a snapshot in parts sorted by merchant, opened memory-mapped, every merchant
found with the batch path's exact answer and its snapshot row, and refused when incomplete, altered or computed
for something else."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from datetime import date
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import polars as pl
import pytest

from answers.build import build_store
from answers.render import results
from answers.store import MANIFEST, StoreError, StoreFor, open_store, stores_of_snapshot
from core.audit import canonical_json
from test_fast_row import _bundle, _rows, booster  # noqa: F401 - the module's booster fixture

IDS = ["M2", "M10", "M1", "中文商户", "M0000000000000000000009", "m1", "M100", "A"]


@pytest.fixture
def made(tmp_path, booster):  # noqa: F811 - the imported fixture
    """A bundle folder, a snapshot of merchants in no particular order with ids of different lengths, and what
    a store of them is for."""
    bundle = _bundle(booster)
    bundle.save(tmp_path / "bundle")
    rows = _rows(len(IDS) * 25, 3)
    ids = [f"{m}-{k}" if k else m for k in range(25) for m in IDS]
    frame = pl.DataFrame(rows).with_columns(
        merchant_id=pl.Series(ids), as_of=pl.lit(date(2025, 7, 1)), sector=pl.col("sector").cast(pl.String)
    )
    snapshot = tmp_path / "latest.parquet"
    frame.write_parquet(snapshot)
    wanted = StoreFor("pd-model", "3", "run-1", "ab" * 32, "2026.12-1", "cd" * 32)
    return {"bundle": bundle, "dir": tmp_path / "bundle", "frame": frame, "snapshot": snapshot, "wanted": wanted}


def _build(made, tmp_path, **kw) -> dict:
    return build_store(tmp_path / "answers", made["wanted"], made["dir"], made["snapshot"], part_rows=37, **kw)


def test_every_merchant_is_found_with_the_batch_answer_and_its_row(made, tmp_path):
    summary = _build(made, tmp_path)
    assert summary["rows"] == made["frame"].height and summary["parts"] == 6 and not summary["reused"]
    store = open_store(summary["path"], wanted=made["wanted"], verify="full")
    frame, bundle = made["frame"], made["bundle"]
    ids = frame["merchant_id"].to_list()
    expected = results(bundle, bundle.encode(frame), ids, ["2025-07-01"] * len(ids), "pd-model", "3")
    for k, m in enumerate(ids):
        i = store.find(m)
        assert i is not None and store.merchant_id(i) == m
        assert store.answer(i) == canonical_json(expected[k])
        assert store.as_of(i) == "2025-07-01"
        assert store.row(i) == {**frame.row(k, named=True), "as_of": "2025-07-01"}
    for absent in ("", "M", "M3", "M10-0", "\0", "Z" * 200, "中"):
        assert store.find(absent) is None, absent
    assert [store.merchant_id(i) for i in range(len(store))] == sorted(ids, key=str.encode)
    assert store.frame(["merchant_id", "class"]).height == len(ids)
    assert store.schema == frame.schema


def test_a_store_is_reused_and_found_by_its_snapshot(made, tmp_path):
    first = _build(made, tmp_path)
    again = _build(made, tmp_path)
    assert again["reused"] and again["path"] == first["path"]
    assert stores_of_snapshot(tmp_path / "answers", "ab" * 32) == [tmp_path / "answers" / made["wanted"].store_id]
    assert stores_of_snapshot(tmp_path / "answers", "ef" * 32) == []
    rebuilt = _build(made, tmp_path, rebuild=True)
    assert not rebuilt["reused"] and open_store(rebuilt["path"], verify="full")
    manifest = Path(rebuilt["path"]) / MANIFEST
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "format_version": 1}))
    assert not _build(made, tmp_path)["reused"]  # a store of an older format is written again, not reused
    assert open_store(rebuilt["path"], verify="full")


def test_a_store_for_something_else_is_refused_naming_the_difference(made, tmp_path):
    path = _build(made, tmp_path)["path"]
    other = replace(made["wanted"], model_version="4", policy_version="2027.01-1")
    with pytest.raises(StoreError, match=r"model version 3 \(wanted 4\).*policy version 2026.12-1"):
        open_store(path, wanted=other)


@pytest.mark.parametrize("damage", ["truncated", "altered", "missing", "format"])
def test_an_incomplete_or_altered_store_is_refused(made, tmp_path, damage):
    path = tmp_path / "answers" / _build(made, tmp_path)["id"]
    part = path / "part-00001.arrow"
    if damage == "truncated":
        part.write_bytes(part.read_bytes()[:-100])
        needle = "bytes, its manifest says"
    elif damage == "altered":
        data = bytearray(part.read_bytes())
        data[len(data) // 2] ^= 0xFF
        part.write_bytes(bytes(data))
        needle = "does not hash"
    elif damage == "missing":
        part.unlink()
        needle = "is incomplete"
    else:
        manifest = json.loads((path / MANIFEST).read_text())
        (path / MANIFEST).write_text(json.dumps({**manifest, "format_version": 99}))
        needle = "has format 99"
    with pytest.raises(StoreError, match=needle):
        open_store(path, verify="full")


def test_a_snapshot_repeating_a_merchant_makes_no_store(made, tmp_path):
    frame = made["frame"]
    pl.concat([frame, frame.head(1)]).write_parquet(made["snapshot"])
    with pytest.raises(StoreError, match="repeats merchant ids"):
        _build(made, tmp_path)
    assert not (tmp_path / "answers" / made["wanted"].store_id).exists()


@pytest.mark.slow
def test_dask_writes_the_local_engines_store_byte_for_byte(made, tmp_path):
    """Each part depends only on its own merchants, so a 2-worker Dask cluster writes the local engine's bytes."""
    local = _build(made, tmp_path / "local")
    spread = _build(made, tmp_path / "dask", engine="dask", workers=2)
    assert spread["engine"] == "dask" and spread["parts"] == local["parts"] == 6
    manifests = [json.loads((Path(s["path"]) / MANIFEST).read_text()) for s in (local, spread)]
    assert [p["sha256"] for p in manifests[0]["parts"]] == [p["sha256"] for p in manifests[1]["parts"]]
    a, b = open_store(local["path"], verify="full"), open_store(spread["path"], verify="full")
    columns = [*a.snapshot_columns, "answer", "pd", "score", "grade", "class"]
    assert a.frame(columns).equals(b.frame(columns))
