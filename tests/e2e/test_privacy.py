"""Owner and customer identities exist only as salted hashes in everything the demo flow writes.

The demo flow's steps run on the small market: simulate (``small_market``), validate,
features, train and promote (``served_champion``), score-all and serve + decide
(``live_service``). The simulator hashes an owner as ``sha256(f"{salt}:owner:{n}")[:16]``
with a per-seed salt (simulation/merchants.py, simulation/market.py); customers are drawn as
random 16-hex hashes and never exist in the clear. Every file under those folders is read
(Parquet column names and string values, SQLite databases as SQL text, other files as text)
and must not contain: the salt, an owner's pre-image, or an owner hashed without the salt.
Columns named ``*_hash`` must hold 16-hex values only.
"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import httpx
import polars as pl

from conftest import SMALL_MARKET

HASH = r"^[0-9a-f]{16}$"


def raw_identities(seed: int, merchants: int) -> list[str]:
    """What must never be written: the simulator's salt, owner pre-images and unsalted owner hashes."""
    salt = hashlib.sha256(f"lifecredit-simulation:{seed}".encode()).hexdigest()[:16]
    out = [salt]
    for n in range(merchants):
        for text in (f"owner:{n}", str(n)):
            digest = hashlib.sha256(text.encode()).hexdigest()
            out += [digest[:16], digest]
    return out


def scan(roots: list[Path], needles: list[str]) -> tuple[list[str], int]:
    """(findings, files read): each finding names the file, column or table and what was found."""
    findings, files = [], 0
    for root in roots:
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            files += 1
            findings += [f"{path}: {what}" for what in _scan_file(path, needles)]
    return findings, files


def _contains(texts: list[str], needles: list[str]) -> bool:
    return bool(pl.Series(texts, dtype=pl.String).str.contains_any(needles).any())


def _scan_file(path: Path, needles: list[str]) -> list[str]:
    if path.suffix == ".parquet":
        frame = pl.read_parquet(path)
        found = [f"column name {c!r}" for c in frame.columns if _contains([c], needles)]
        for c in frame.columns:
            column = frame[c]
            if column.dtype == pl.String:
                if column.str.contains_any(needles).any():
                    found.append(f"a raw identity in column {c!r}")
                if c.endswith("_hash") and not column.drop_nulls().str.contains(HASH).all():
                    found.append(f"column {c!r} holds values that are not 16-hex hashes")
        return found
    data = path.read_bytes()
    if data.startswith(b"SQLite format 3"):
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            text = "\n".join(conn.iterdump())
    else:
        text = data.decode("utf-8", errors="replace")
    return ["a raw identity in the text"] if _contains([text], needles) else []


def test_scanner_finds_a_planted_identity(tmp_path):
    needles = raw_identities(SMALL_MARKET["seed"], 3)
    pl.DataFrame({"owner_hash": [needles[1]]}).write_parquet(tmp_path / "a.parquet")
    (tmp_path / "b.json").write_text(f'{{"salt": "{needles[0]}"}}')
    pl.DataFrame({"customer_hash": ["Zhang San"]}).write_parquet(tmp_path / "c.parquet")
    findings, files = scan([tmp_path], needles)
    assert files == 3 and len(findings) == 3, findings


def test_demo_flow_outputs_hold_identities_only_as_salted_hashes(
    small_market, validated_market, served_champion, live_service
):
    url, bank = live_service["url"], live_service["new_key"]("bank")
    for m in live_service["ids"][:5]:
        r = httpx.post(
            f"{url}/decide",
            json={"merchant_id": m, "requested_amount_fen": 3_000_000, "term_months": 12, "product": "term_loan"},
            headers={"Authorization": f"Bearer {bank}"},
            timeout=60,
        )
        assert r.status_code == 200, r.text
    served_root = Path(served_champion["env"]["LIFECREDIT_MLRUNS_DIR"]).parent
    roots = [small_market, validated_market, served_root, live_service["var"].parent]
    owners = pl.read_parquet(small_market / "merchants.parquet", columns=["owner_hash"])["owner_hash"]
    assert owners.str.contains(HASH).all() and owners.n_unique() > 300  # salted, one per owner
    findings, files = scan(roots, raw_identities(SMALL_MARKET["seed"], SMALL_MARKET["merchants"]))
    assert files > 20
    assert not findings, "\n".join(findings[:20])
