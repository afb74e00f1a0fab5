"""An answer store: one feature snapshot's answers under one model version and policy, memory-mapped.

Layout (written by :mod:`answers.build`)::

    <answers_dir>/<store id>/
      manifest.json      what the answers were computed for (model name, version and run, the
                         snapshot's SHA-256, the policy's version and SHA-256), the rows, and each
                         part's rows, bytes, SHA-256 and first and last merchant
      part-00000.arrow   Arrow IPC file, uncompressed, one record batch, rows sorted by merchant
      part-00001.arrow   ...

Columns of a part: ``key`` (the merchant id's UTF-8 bytes, NUL-padded to a fixed width, for a
binary search straight on the mapped bytes), ``answer`` (the answer's canonical JSON, exactly as
the API returns it), ``features`` (the snapshot row the answer came from as canonical JSON: one
merchant's row is a few adjacent bytes, for a decision), ``pd``, ``score``, ``grade``, ``class``,
then the same snapshot row as typed columns (``merchant_id``, ``as_of``, every feature) for
readers of whole columns (the class history, replay).

Opening maps the parts (advised as random access: no read-ahead around a touched page) and reads
nothing else: a lookup is a binary search over the mapped keys and a slice of the mapped answers,
so memory holds only the pages requests touched, and every worker or server on the machine that
opens the same store shares one copy in the page cache.
A store is immutable; its folder is renamed into place whole, so it exists complete or not at all.
"""

from __future__ import annotations

import json
import mmap
import os
import re
from bisect import bisect_right
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl
import pyarrow as pa

from core.files import file_sha256

FORMAT_VERSION = 2  # 2: the features text column
MANIFEST = "manifest.json"
ANSWER_COLUMNS = ("key", "answer", "features", "pd", "score", "grade", "class")
"""Columns a store adds before the snapshot's own (a snapshot column may not take one of these names)."""
EPOCH = date(1970, 1, 1)


class StoreError(RuntimeError):
    """An answer store is missing, incomplete, altered or computed for something else; the message says which."""


@dataclass(frozen=True)
class StoreFor:
    """What a store's answers were computed for; :attr:`store_id` names its folder."""

    model_name: str
    model_version: str
    model_run_id: str | None
    snapshot_sha256: str
    policy_version: str
    policy_sha256: str

    @property
    def store_id(self) -> str:
        name = re.sub(r"[^A-Za-z0-9._-]", "_", self.model_name)
        return f"{name}-v{self.model_version}-s{self.snapshot_sha256[:12]}-p{self.policy_sha256[:12]}"

    def differences(self, other: StoreFor) -> list[str]:
        """What differs from ``other`` (this being what a store holds, ``other`` what is wanted), in words."""
        labels = {
            "model_name": "model",
            "model_version": "model version",
            "model_run_id": "model run",
            "snapshot_sha256": "feature snapshot (SHA-256)",
            "policy_version": "policy version",
            "policy_sha256": "policy (SHA-256)",
        }
        mine, theirs = asdict(self), asdict(other)
        return [f"{labels[k]} {mine[k]} (wanted {theirs[k]})" for k in labels if mine[k] != theirs[k]]


def store_path(root: Path, wanted: StoreFor) -> Path:
    return Path(root) / wanted.store_id


def read_manifest(path: Path) -> dict:
    try:
        manifest = json.loads((Path(path) / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise StoreError(f"no answer store at {path} (no {MANIFEST}): write one with `lifecredit score-all`") from err
    except (OSError, ValueError) as err:
        raise StoreError(f"answer store {path}: cannot read {MANIFEST}: {err}") from err
    if manifest.get("format_version") != FORMAT_VERSION:
        raise StoreError(
            f"answer store {path} has format {manifest.get('format_version')}, this server reads {FORMAT_VERSION}: "
            "write it again with `lifecredit score-all --rebuild`"
        )
    return manifest


def is_current(path: Path) -> bool:
    """Whether a complete store of this format is at ``path`` (an older format is written again, like a missing one)."""
    try:
        return read_manifest(path) is not None
    except StoreError:
        return False


def computed_for(manifest: dict) -> StoreFor:
    return StoreFor(**manifest["computed_for"])


class _Texts:
    """A binary column of UTF-8 texts: its offsets mapped, row ``j``'s bytes read with ``pread`` from the page cache
    (a mapped page would stay in the process's memory once touched, with its neighbours: a book's worth, in time)."""

    def __init__(self, column: pa.Array, fd: int, mapped_at: int):
        buffers = column.buffers()
        width = 8 if pa.types.is_large_binary(column.type) else 4  # 64-bit offsets past 2 GiB of text in a part
        self.offsets = np.frombuffer(
            buffers[1], dtype=np.int64 if width == 8 else np.int32, count=len(column) + 1, offset=column.offset * width
        )
        self.fd, self.start = fd, buffers[2].address - mapped_at  # where the text bytes begin in the file

    def __getitem__(self, j: int) -> str:
        begin, end = int(self.offsets[j]), int(self.offsets[j + 1])
        return str(os.pread(self.fd, end - begin, self.start + begin), "utf-8")


class _Part:
    """One part: the file mapped (keys, offsets, as_of days and the typed columns as NumPy and Arrow views) and open
    for reading its texts."""

    def __init__(self, path: Path, width: int):
        self.path = path
        self.file = open(path, "rb")  # open as long as the part is served
        self.source = mmap.mmap(self.file.fileno(), 0, access=mmap.ACCESS_READ)
        self.source.madvise(mmap.MADV_RANDOM)  # no read-ahead around the pages a lookup touches
        whole = pa.py_buffer(self.source)
        reader = pa.ipc.open_file(pa.BufferReader(whole))
        if reader.num_record_batches != 1:
            raise StoreError(f"{path}: {reader.num_record_batches} record batches, a part holds one")
        self.batch = reader.get_batch(0)
        self.rows = self.batch.num_rows
        key = self.batch.column("key")
        self.keys = np.frombuffer(key.buffers()[1], dtype=f"S{width}", count=self.rows, offset=key.offset * width)
        self.answers = _Texts(self.batch.column("answer"), self.file.fileno(), whole.address)
        self.features = _Texts(self.batch.column("features"), self.file.fileno(), whole.address)
        as_of = self.batch.column("as_of")
        self.as_of = np.frombuffer(as_of.buffers()[1], dtype=np.int32, count=self.rows, offset=as_of.offset * 4)


class AnswerStore:
    """A store opened read-only: lookups by merchant id, answers, feature rows and columns.

    Rows are numbered 0..len-1 in merchant order across the parts; :meth:`find` gives a row's
    number, the other lookups take it.
    """

    def __init__(self, path: Path, manifest: dict, parts: list[_Part]):
        self.path = Path(path)
        self.manifest = manifest
        self.computed_for = computed_for(manifest)
        self.parts = parts
        self.width = int(manifest["key_width"])
        self._starts = list(np.cumsum([0] + [p.rows for p in parts[:-1]]).tolist())
        self._firsts = [bytes(p.keys[0]) for p in parts]
        self.snapshot_columns = list(manifest["snapshot"]["columns"])

    def __len__(self) -> int:
        return int(self.manifest["rows"])

    @property
    def store_id(self) -> str:
        return self.path.name

    @property
    def latest_as_of(self) -> str | None:
        return self.manifest["snapshot"]["as_of"]

    @property
    def schema(self) -> pl.Schema:
        """The snapshot rows' Polars schema (for a re-scored row, which must carry the same columns)."""
        return pl.from_arrow(self.parts[0].batch.slice(0, 0).select(self.snapshot_columns)).schema

    def _locate(self, i: int) -> tuple[_Part, int]:
        p = bisect_right(self._starts, i) - 1
        return self.parts[p], i - self._starts[p]

    def find(self, merchant_id: str) -> int | None:
        """The row of ``merchant_id``, or None when the store has no such merchant."""
        key = merchant_id.encode()
        if not key or len(key) > self.width or b"\0" in key:
            return None
        p = bisect_right(self._firsts, key) - 1
        if p < 0:
            return None
        part = self.parts[p]
        j = int(np.searchsorted(part.keys, key))
        if j < part.rows and part.keys[j] == key:
            return self._starts[p] + j
        return None

    def answer(self, i: int) -> str:
        """Row ``i``'s answer, the canonical JSON text the API returns (without a decision id)."""
        part, j = self._locate(i)
        return part.answers[j]

    def as_of(self, i: int) -> str:
        part, j = self._locate(i)
        return (EPOCH + timedelta(days=int(part.as_of[j]))).isoformat()

    def merchant_id(self, i: int) -> str:
        part, j = self._locate(i)
        return bytes(part.keys[j]).decode()

    def row(self, i: int) -> dict[str, Any]:
        """Row ``i``'s snapshot row as plain JSON values (dates as ISO text), read from its few mapped bytes."""
        part, j = self._locate(i)
        return json.loads(part.features[j])

    def frame(self, columns: list[str] | None = None, rows: list[int] | None = None) -> pl.DataFrame:
        """Columns (default: the snapshot row's) of the given rows (default: all), in merchant order or as given."""
        names = columns or self.snapshot_columns
        table = pa.Table.from_batches([p.batch.select(names) for p in self.parts])
        if rows is not None:
            table = table.take(pa.array(rows, type=pa.int64()))
        return pl.from_arrow(table)


def stores_of_snapshot(root: Path, snapshot_sha256: str) -> list[Path]:
    """The stores under ``root`` computed from the snapshot with this SHA-256 (any model or policy), newest first."""
    found = []
    for manifest in Path(root).glob(f"*/{MANIFEST}"):
        try:
            held = computed_for(json.loads(manifest.read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if held.snapshot_sha256 == snapshot_sha256:
            found.append(manifest.parent)
    return sorted(found, key=lambda p: (p / MANIFEST).stat().st_mtime, reverse=True)


def open_store(
    path: Path, *, wanted: StoreFor | None = None, verify: Literal["quick", "full"] = "quick"
) -> AnswerStore:
    """Open the store at ``path``, checked against what it should hold; :class:`StoreError` says what is wrong.

    ``quick`` checks the manifest, every part's size and rows and the merchant order (strictly
    increasing keys, so no merchant twice); ``full`` also every part's SHA-256 against the manifest.
    """
    path = Path(path)
    manifest = read_manifest(path)
    held = computed_for(manifest)
    if wanted is not None and held != wanted:
        raise StoreError(
            f"answer store {path} was computed for another "
            + "; ".join(held.differences(wanted))
            + ": write the right one with `lifecredit score-all`, or point LIFECREDIT_ANSWER_STORE at it"
        )
    parts: list[_Part] = []
    previous: bytes | None = None
    for meta in manifest["parts"]:
        file = path / meta["file"]
        try:
            size = file.stat().st_size
        except FileNotFoundError as err:
            raise StoreError(f"answer store {path} is incomplete: {meta['file']} is missing") from err
        if size != meta["bytes"]:
            raise StoreError(f"answer store {path}: {meta['file']} has {size} bytes, its manifest says {meta['bytes']}")
        if verify == "full" and file_sha256(file) != meta["sha256"]:
            raise StoreError(f"answer store {path}: {meta['file']} does not hash to its manifest's SHA-256 (altered)")
        try:
            part = _Part(file, int(manifest["key_width"]))
        except (OSError, ValueError, pa.ArrowException, KeyError) as err:
            raise StoreError(f"answer store {path}: cannot map {meta['file']}: {err}") from err
        if part.rows != meta["rows"] or part.rows == 0:
            raise StoreError(
                f"answer store {path}: {meta['file']} has {part.rows} rows, its manifest says {meta['rows']}"
            )
        keys = part.keys
        if (previous is not None and bytes(keys[0]) <= previous) or not bool(np.all(keys[1:] > keys[:-1])):
            raise StoreError(f"answer store {path}: merchants out of order or repeated in {meta['file']}")
        previous = bytes(keys[-1])
        parts.append(part)
    if sum(p.rows for p in parts) != manifest["rows"]:
        raise StoreError(
            f"answer store {path}: its parts hold {sum(p.rows for p in parts)} rows, not {manifest['rows']}"
        )
    return AnswerStore(path, manifest, parts)
