"""The scorer: one model version, one feature snapshot and one policy, served together and immutable.

Outputs for the snapshot are a pure function of (model version, snapshot), so they are computed
once, by ``lifecredit score-all`` (or by the server itself when no store exists yet), into an
answer store (:mod:`answers.store`): PD, score, grade, class and the TreeSHAP reasons of every
merchant as the JSON text the API returns, beside the feature row each came from. A scorer opens
that store memory-mapped, so a request by merchant id is a binary search and a slice of mapped
bytes, and start-up costs the same for ten thousand merchants or ten million. A request with a
full feature row is scored live by :class:`training.fast_row.RowScorer`: the same
:class:`training.bundle.ScoringBundle` code and answer, on LightGBM's single-row path.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl

from answers.render import render, results
from answers.store import AnswerStore, StoreError, StoreFor, is_current, open_store, store_path
from core.audit import canonical_json
from core.files import file_sha256
from serving.booster_check import check_booster_file
from serving.policy import Policy, decide, load_policy
from training.bundle import ScoringBundle
from training.fast_row import RowScorer, row_problems
from training.model_source import ModelHandle

SNAPSHOT_FILE = "latest.parquet"
METADATA_FILE = "metadata.json"
StoreBuilder = Callable[[StoreFor, Path, Path], None]
"""Writes the missing store for (what it is for, the model's bundle folder, the snapshot file)."""


class ScorerError(RuntimeError):
    """The model, snapshot or policy cannot be served together; the message says why and what to run."""


class InputError(ValueError):
    """A request the model cannot score; ``detail`` lists each problem as {loc, msg, type}."""

    def __init__(self, message: str, detail: list[dict]):
        super().__init__(message)
        self.detail = detail


class Snapshot:
    """The latest feature snapshot file, as written by ``lifecredit features``: its hash and schema at once,
    its rows only when something asks for them (the merchant pages' peer context, offline reports, replay)."""

    def __init__(self, path: Path, sha256: str, schema: pl.Schema):
        self.path, self.sha256, self.schema = path, sha256, schema

    @classmethod
    def load(cls, path: Path, sha256: str | None = None) -> Snapshot:
        path = Path(path)
        if path.is_dir():
            path = path / SNAPSHOT_FILE
        if not path.exists():
            raise ScorerError(
                f"no feature snapshot at {path}: build it with `lifecredit features` "
                f"(or point --features / LIFECREDIT_SNAPSHOT_DIR at a folder holding {SNAPSHOT_FILE})"
            )
        try:
            schema = pl.read_parquet_schema(path)
            rows = pl.scan_parquet(path).select(pl.len()).collect().item()
        except Exception as err:
            raise ScorerError(f"cannot read feature snapshot {path}: {err}") from err
        if "merchant_id" not in schema:
            raise ScorerError(f"feature snapshot {path} has no merchant_id column")
        expected = _expected_rows(path)
        if rows == 0 or (expected is not None and rows != expected):
            raise ScorerError(
                f"feature snapshot {path} is partial: {rows} rows, its {METADATA_FILE} says "
                f"{expected}; rebuild it with `lifecredit features`"
            )
        return cls(path, sha256 or file_sha256(path), pl.Schema(schema))

    @cached_property
    def frame(self) -> pl.DataFrame:
        """Every row, read once and kept (offline commands; a server reads only what a request needs)."""
        return self.read()

    def read(self) -> pl.DataFrame:
        """Every row, read now and not kept (a steward's re-score ranks one merchant against the whole market)."""
        return pl.read_parquet(self.path)

    def peers(self, sector: Any, province: Any) -> pl.DataFrame:
        """The rows of one sector x province (a merchant's peer group), read from the file with the filter pushed
        down, so a merchant's report does not hold a national book in memory."""
        return (
            pl.scan_parquet(self.path)
            .filter(
                (pl.col("sector").cast(pl.String) == str(sector))
                & (pl.col("province").cast(pl.String) == str(province))
            )
            .collect()
        )

    @cached_property
    def index(self) -> dict[str, int]:
        ids = self.frame["merchant_id"].cast(pl.String).to_list()
        index = {m: i for i, m in enumerate(ids)}
        if len(index) != len(ids):
            raise ScorerError(f"feature snapshot {self.path} repeats merchant ids ({len(ids) - len(index)} duplicates)")
        return index

    @cached_property
    def as_of(self) -> list[str | None]:
        if "as_of" not in self.frame.columns:
            return [None] * self.frame.height
        return self.frame["as_of"].cast(pl.String).to_list()

    def row(self, i: int) -> dict[str, Any]:
        """One merchant's row as plain JSON-ready values (dates as ISO text)."""
        return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in self.frame.row(i, named=True).items()}


def _expected_rows(path: Path) -> int | None:
    """Rows of the snapshot as recorded by ``lifecredit features`` in metadata.json beside it (None: not recorded)."""
    try:
        meta = json.loads((path.parent / METADATA_FILE).read_text(encoding="utf-8"))
        return int(meta["rows"]["latest"]) if path.name == SNAPSHOT_FILE else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


class _RowFrame:
    """A one-row, frame-like view of a request's feature dict, typed for ``ScoringBundle.encode``."""

    def __init__(self, columns: dict[str, np.ndarray]):
        self._columns = columns
        self.columns = list(columns)

    def __len__(self) -> int:
        return 1

    def __getitem__(self, name: str) -> np.ndarray:
        return self._columns[name]


def check_row(bundle: ScoringBundle, features: dict[str, Any], *, ignore_extra: bool = False) -> None:
    """Raise :class:`InputError` listing every problem with a request's feature row
    (:func:`training.fast_row.row_problems`: numbers for numeric features, true/false for flags,
    strings or integer codes for categories, null for missing; keys that are not model features
    are a problem unless ``ignore_extra``, as in replay of a stored snapshot row)."""
    detail = row_problems(bundle.features, features, ignore_extra=ignore_extra)
    if detail:
        raise InputError(f"{len(detail)} problem(s) with the feature row", detail)


def row_frame(bundle: ScoringBundle, features: dict[str, Any], *, ignore_extra: bool = False) -> _RowFrame:
    """Type-check a feature row (:func:`check_row`) and frame it for ``ScoringBundle.encode``."""
    check_row(bundle, features, ignore_extra=ignore_extra)
    columns: dict[str, np.ndarray] = {}
    for f in bundle.features:
        v = features[f.name]
        if f.is_categorical:
            columns[f.name] = np.array([None if v is None else str(v)], dtype=object)
        elif f.dtype == "bool":
            columns[f.name] = np.array([np.nan if v is None else float(bool(v))])
        else:
            columns[f.name] = np.array([np.nan if v is None else float(v)])
    return _RowFrame(columns)


_MODEL_LOADER = ThreadPoolExecutor(1, thread_name_prefix="lifecredit-model")


def _unloadable(handle: ModelHandle, err: Exception) -> ScorerError:
    return ScorerError(
        f"model '{handle.name}' version {handle.version}: cannot load its bundle from {handle.bundle_dir}: {err}"
    )


def _load_model(handle: ModelHandle) -> tuple[ScoringBundle, RowScorer]:
    """The model's bundle (its LightGBM file first checked in a child process) and its one-row scorer."""
    try:
        if (Path(handle.bundle_dir) / "model.txt").exists():  # a scorecard bundle has no booster
            check_booster_file(Path(handle.bundle_dir) / "model.txt")
        bundle = ScoringBundle.load(handle.bundle_dir, num_threads=1)
        return bundle, RowScorer(bundle)
    except Exception as err:
        raise _unloadable(handle, err) from err


@dataclass
class Scorer:
    """A servable (model, snapshot, policy) answering from the answer store computed for exactly those three."""

    handle: ModelHandle
    snapshot: Snapshot
    policy: Policy
    policy_file: Path
    store: AnswerStore
    card: dict
    model: Future = field(repr=False)  # (bundle, its one-row scorer): loaded, or loading in the background
    card_json: bytes = b""
    built_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    rescored: dict[int, dict] = field(default_factory=dict)  # store row -> its re-scored feature row
    _rescored_answers: dict[int, str] = field(default_factory=dict)  # store row -> its re-scored answer

    @property
    def bundle(self) -> ScoringBundle:
        """The model (waits for it while it loads; ScorerError if it could not be loaded)."""
        return self.model.result()[0]

    @property
    def row_scorer(self) -> RowScorer:
        """The live one-row path, built once per model."""
        return self.model.result()[1]

    @classmethod
    def build(
        cls,
        handle: ModelHandle,
        snapshot: Path | Snapshot,
        policy_file: Path,
        *,
        answers_dir: Path,
        pinned: Path | None = None,
        build_store: StoreBuilder | None = None,
        verify: Literal["quick", "full"] = "quick",
        model_later: bool = False,
        progress: Callable[[float, str], None] | None = None,
    ) -> Scorer:
        """Load and check the three parts, then open their answer store; ScorerError says what does not fit.

        The store is ``pinned`` (a store folder the operator named: refused unless computed for exactly this
        model version, snapshot and policy) or the one for them under ``answers_dir``; a missing one is
        written by ``build_store`` first, or refused when there is none. ``model_later``: when the store is
        there, load the model (LightGBM, needed only for live rows and re-scores) in the background instead
        of before answering by merchant id. ``progress(fraction, stage)`` hears of each step.
        """
        say = progress or (lambda fraction, stage: None)
        started = time.perf_counter()
        try:
            meta = ScoringBundle.describe(handle.bundle_dir)
        except Exception as err:
            raise _unloadable(handle, err) from err
        snap = snapshot if isinstance(snapshot, Snapshot) else Snapshot.load(snapshot)
        try:
            policy = load_policy(policy_file)
        except Exception as err:
            raise ScorerError(f"cannot load decision policy {policy_file}: {err}") from err
        missing = [f for f in meta["features"] if f not in snap.schema]
        if missing:
            raise ScorerError(
                f"model '{handle.name}' version {handle.version} needs {len(missing)} feature(s) the snapshot "
                f"{snap.path} lacks ({', '.join(missing[:8])}{', ...' if len(missing) > 8 else ''}): rebuild the "
                f"snapshot with `lifecredit features` or promote a model trained on this feature set"
            )
        lacking = sorted(f for f in policy.features if f not in snap.schema)
        if lacking:
            raise ScorerError(
                f"decision policy {policy_file} reads feature(s) {', '.join(lacking)} that the "
                f"snapshot {snap.path} lacks"
            )
        wanted = StoreFor(handle.name, str(handle.version), handle.run_id, snap.sha256, policy.version, policy.sha256)
        path = Path(pinned) if pinned else store_path(answers_dir, wanted)
        missing_store = not pinned and not is_current(path)
        if model_later and not missing_store:
            model = _MODEL_LOADER.submit(_load_model, handle)
        else:
            say(0.03, f"loading model version {handle.version}")
            model = Future()
            model.set_result(_load_model(handle))
        try:
            if missing_store:
                if build_store is None:
                    raise StoreError(
                        f"no answer store for model {handle.name} version {handle.version}, snapshot "
                        f"{snap.sha256[:12]} and policy {policy.version} under {answers_dir}: write it with "
                        "`lifecredit score-all`"
                    )
                build_store(wanted, Path(handle.bundle_dir), snap.path)
            say(
                0.96,
                f"opening and checking answer store {path.name}"
                + (" (every part's SHA-256)" if verify == "full" else ""),
            )
            store = open_store(path, wanted=wanted, verify=verify)
        except (StoreError, ValueError) as err:
            raise ScorerError(str(err)) from err
        card = {
            **handle.card,
            "feature_set": {
                **handle.card.get("feature_set", {}),
                **meta["feature_set"],
                "features": meta["features"],
            },
            "policy": {"version": policy.version, "sha256": policy.sha256, "file": str(policy_file)},
            "snapshot": {
                "path": str(snap.path),
                "as_of": store.latest_as_of,
                "merchants": len(store),
                "sha256": snap.sha256,
            },
            "answer_store": {"id": store.store_id, "path": str(store.path), "created_at": store.manifest["created_at"]},
            "load_seconds": round(time.perf_counter() - started, 3),
        }
        scorer = cls(handle, snap, policy, Path(policy_file), store, card, model)
        scorer.card_json = json.dumps(card, ensure_ascii=False, default=str).encode()
        return scorer

    # -- lookups ------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.store)

    @property
    def latest_as_of(self) -> str | None:
        return self.store.latest_as_of

    def find(self, merchant_id: str) -> int | None:
        return self.store.find(merchant_id)

    def fragment(self, i: int) -> str:
        """Merchant ``i``'s answer as canonical JSON: its re-scored one after a correction, else the store's."""
        return self._rescored_answers.get(i) or self.store.answer(i)

    def result(self, i: int) -> dict:
        return json.loads(self.fragment(i))

    def as_of(self, i: int) -> str:
        return self.store.as_of(i)

    def row(self, i: int) -> dict[str, Any]:
        """Merchant ``i``'s feature row: its re-scored row after a correction, else the store's."""
        return self.rescored.get(i) or self.store.row(i)

    def rescore(self, i: int, features: pl.DataFrame) -> dict:
        """Score merchant ``i`` anew from its recomputed feature row (one row of snapshot columns) and serve
        that answer from now on; the store is untouched. Returns the new answer."""
        X = self.bundle.encode(features)
        answer = results(
            self.bundle, X, [self.store.merchant_id(i)], [self.as_of(i)], self.handle.name, self.handle.version
        )
        row = {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in features.row(0, named=True).items()}
        self.rescored[i] = row
        self._rescored_answers[i] = canonical_json(answer[0])
        return answer[0]

    # -- live scoring of a feature row --------------------------------------------------------
    def score_row(self, features: dict[str, Any]) -> dict:
        """Score one feature row live: the bundle's answer for that row (TreeSHAP on one row is most of
        the cost, and grows with the model's size)."""
        check_row(self.bundle, features)
        scores = self.row_scorer.score(self.row_scorer.encode(features))
        return render(scores, [None], [None], self.handle.name, self.handle.version)[0]

    # -- decisions ----------------------------------------------------------------------------
    def term_problem(self, product: str, term_months: int) -> str | None:
        term = self.policy.term_range(product)
        if not term.min <= term_months <= term.max:
            return f"{product} terms run {term.min} to {term.max} months under policy {self.policy.version}"
        return None

    def decide(
        self, i: int, requested_amount_fen: int, term_months: int, product: str, objected: list[dict] = ()
    ) -> tuple[dict, dict]:
        """(outputs, feature row): the merchant's risk with the policy's decision on the request
        (``objected``: its records under open objection, which may turn a hard decline into a referral)."""
        risk = self.result(i)
        row = self.row(i)
        decision = decide(self.policy, risk["class"], row, requested_amount_fen, term_months, product, objected)
        return {**risk, **decision}, row
