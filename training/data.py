"""Training tables and their splits: the feature panel (with its catalogue) or any table.

A :class:`TrainingTable` is the labelled rows plus everything training must know about them:
which columns are features (with dtype, risk direction and reason texts), which identify a
row, which is the label, where it came from (path and SHA-256) and how it is split.

Splits
------
* Merchant-disjoint and out of time (the feature panel, or a table with ``--time-col``). A
  merchant's monthly rows share one 12-month outcome and its static attributes identify it, so
  a test row of a merchant the booster saw is not a new applicant. Working back from the latest
  labelled date, whole dates form the **late window** until it holds ``late_share`` of the rows;
  its first date is the split date. A seeded ``test_share`` of the merchants with rows in the
  late window (drawn separately among those with and without a default there) is held out
  whole: no booster or calibration row comes from them. The other merchants' rows before it are the **booster rows**
  (``train``), their rows from it on the **calibration rows** (``valid``), and the held-out
  merchants' rows from it on the **test** rows: later than every booster row, from merchants
  no fitted row came from. The other merchants are dealt into ``FOLDS`` folds for
  cross-fitting (``training.lgbm.crossfit``): a calibration row is scored by a booster fitted
  without its merchant. The held-out merchants' rows before the split date are not used.
  For a table, the ``--id`` column plays the merchant's part (row ids make it a random split).
* Stratified random (a table without a time column): test drawn with the label's proportions
  kept; the other rows are both booster and calibration rows, in stratified folds (plain
  K-fold cross-fitting). Seeded.

Unlabelled rows (``bad`` null: 12 months not yet observed) are dropped first. The bounds and
counts of every window, and the merchants on each side, are returned by :meth:`Split.params`
and logged; :meth:`Split.roles` names each row's role (logged as ``evaluation/split_rows.parquet``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
from pydantic import ValidationError

from core.files import file_sha256
from training.bundle import ModelInput

LABEL = "bad"
PANEL_IDS = ["merchant_id", "as_of"]
TEST_SHARE = 0.25
"""Share of merchants held out whole for the test (stratified tables: share of rows)."""
LATE_SHARE = 0.35
"""Share of labelled rows in the late window (calibration and test rows)."""
FOLDS = 5


@dataclass(frozen=True)
class FeatureSet:
    """The feature catalogue as training needs it: feature-set name and version, the features
    (dtype, risk direction, reason texts) and the YAML text that is logged with the model."""

    name: str
    version: str
    features: list[ModelInput]
    text: str
    sha256: str

    @classmethod
    def read(cls, path: str | Path | None = None) -> FeatureSet:
        """Read ``features/catalog.yaml`` (or ``path``), checked by :func:`features.load_catalog`."""
        from features import load_catalog
        from features.catalog import CATALOG_PATH

        path = Path(path or CATALOG_PATH).resolve()
        try:
            cat = load_catalog(path)
        except ValidationError as err:
            raise ValueError(f"{path}: not a valid feature catalogue: {err}") from err
        features = [
            ModelInput(
                name=f.name,
                dtype=f.dtype,
                direction=int(f.risk_direction),
                reason=f.shows_reason,
                reason_en=f.reason_en or "",
                reason_zh=f.reason_zh or "",
                reason_threshold=f.reason_threshold,
                reason_group=f.reason_group or "",
            )
            for f in cat.model_features()
        ]
        raw = path.read_bytes()
        return cls(
            name=cat.name,
            version=cat.version,
            features=features,
            text=raw.decode("utf-8"),
            sha256=hashlib.sha256(raw).hexdigest(),
        )


@dataclass
class Split:
    """Row positions of the booster (``train``), calibration (``valid``) and test rows, the
    cross-fitting fold of each row (-1: not fitted on), and how they were drawn."""

    kind: str  # "merchant_disjoint" | "stratified_random"
    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray
    fold: np.ndarray
    bounds: dict[str, str] = field(default_factory=dict)

    def params(self, y: np.ndarray) -> dict[str, object]:
        out: dict[str, object] = {"split": self.kind, **self.bounds}
        for name in ("train", "valid", "test"):
            idx = getattr(self, name)
            out[f"{name}_rows"] = int(len(idx))
            out[f"{name}_bads"] = int(y[idx].sum())
        return out

    def roles(self) -> list[tuple[str, np.ndarray]]:
        """(role, rows) for the split-rows artefact: train, calibration, test."""
        return [("train", self.train), ("calibration", self.valid), ("test", self.test)]


@dataclass
class TrainingTable:
    """Labelled rows ready for training, with their features, ids, label, provenance and split."""

    frame: pd.DataFrame
    features: list[ModelInput]
    id_columns: list[str]
    target: str
    source: Path
    sha256: str
    feature_set: dict[str, str]
    split: Split
    time_col: str | None = None
    catalog_text: str | None = None

    @property
    def y(self) -> np.ndarray:
        return self.frame[self.target].to_numpy(dtype=np.int8)


def _held_out(groups: np.ndarray, y: np.ndarray, share: float, rng: np.random.Generator) -> set:
    """A ``share`` of the groups, drawn separately among groups with and without a default in ``y``."""
    group_bad = pd.Series(y).groupby(groups).max()
    held: list = []
    for _, members in group_bad.groupby(group_bad):
        ids = members.index.to_numpy()
        held.extend(rng.choice(ids, size=int(round(share * len(ids))), replace=False))
    return set(held)


def time_split(
    times: np.ndarray,
    groups: np.ndarray,
    y: np.ndarray,
    *,
    seed: int,
    test_share: float = TEST_SHARE,
    late_share: float = LATE_SHARE,
    folds: int = FOLDS,
) -> Split:
    """Merchant-disjoint test in a late window; booster rows before it (see the module docstring)."""
    values, counts = np.unique(times, return_counts=True)
    if len(values) < 2:
        raise ValueError(
            f"a merchant-disjoint out-of-time split needs at least 2 distinct labelled dates, got {len(values)}"
        )
    # the fewest latest dates holding late_share of the rows, leaving at least one date to fit on
    n_late = min(int(np.searchsorted(np.cumsum(counts[::-1]), late_share * counts.sum()) + 1), len(values) - 1)
    split_at = values[len(values) - n_late]
    rng = np.random.default_rng(seed)
    late = times >= split_at
    # held out among merchants with late rows, stratified by a default in them: the test's defaults
    # are then about test_share of the late window's, and no early-only merchant is wasted
    held = _held_out(groups[late], y[late], test_share, rng)
    is_test = pd.Series(groups).isin(held).to_numpy()  # hashed: np.isin on objects is quadratic
    pos = np.arange(len(times))
    others = pd.unique(groups[~is_test])
    fold_of = pd.Series(rng.permutation(len(others)) % folds, index=others)
    fold = np.where(is_test, -1, pd.Series(groups).map(fold_of).fillna(-1).to_numpy()).astype(np.int64)
    tr, va, te = pos[~is_test & ~late], pos[~is_test & late], pos[is_test & late]
    if not len(tr) or not len(va) or not len(te):
        raise ValueError(
            "too few merchants or dates for a merchant-disjoint out-of-time split "
            f"(booster rows {len(tr)}, calibration rows {len(va)}, test rows {len(te)})"
        )
    day = lambda v: str(v)[:10]  # noqa: E731 - dates or timestamps
    bounds = {
        "train_from": day(times[tr].min()),
        "train_to": day(times[tr].max()),
        "valid_from": day(split_at),
        "valid_to": day(times[va].max()),
        "test_from": day(split_at),
        "test_to": day(times[te].max()),
        "train_groups": str(len(others)),
        "test_groups": str(len(held)),
        "test_groups_unused_rows": str(int((is_test & ~late).sum())),
        "folds": str(folds),
        "validation": "out-of-fold margins of later rows (cross-fitting by merchant)",
        "test": "merchants held out whole, rows from the split date on",
    }
    return Split("merchant_disjoint", tr, va, te, fold, bounds)


def stratified_split(y: np.ndarray, *, seed: int, test_share: float = TEST_SHARE, folds: int = FOLDS) -> Split:
    """Stratified random test rows; the other rows are booster and calibration rows in stratified folds."""
    from sklearn.model_selection import StratifiedKFold, train_test_split

    pos = np.arange(len(y))
    rest, te = train_test_split(pos, test_size=test_share, stratify=y, random_state=seed)
    rest = np.sort(rest)
    fold = np.full(len(y), -1, dtype=np.int64)
    n_folds = int(max(2, min(folds, np.bincount(y[rest], minlength=2).min())))
    for k, (_, idx) in enumerate(StratifiedKFold(n_folds, shuffle=True, random_state=seed).split(rest, y[rest])):
        fold[rest[idx]] = k
    return Split("stratified_random", rest, rest, np.sort(te), fold, {"seed": str(seed), "folds": str(n_folds)})


def load_panel(features_dir: str | Path, catalog: str | Path | None = None, *, seed: int = 7) -> TrainingTable:
    """The labelled rows of ``<features_dir>/panel.parquet`` with the catalogue's features.

    The catalogue is ``catalog`` if given, else ``<features_dir>/catalog.yaml`` if the features
    stage wrote one, else the package's ``features/catalog.yaml`` - which must then be the one
    the panel was built with (``metadata.json``'s ``catalog_sha256``): a changed catalogue means
    rebuilding the features, not silently training on the old ones. Every catalogue feature
    must be a panel column (a missing one is an error naming it); panel columns outside the
    catalogue are not used.
    """
    features_dir = Path(features_dir)
    panel_path = features_dir / "panel.parquet"
    if not panel_path.exists():
        raise FileNotFoundError(f"{panel_path} not found: run `lifecredit features` first")
    explicit = catalog is not None
    if catalog is None and (features_dir / "catalog.yaml").exists():
        catalog, explicit = features_dir / "catalog.yaml", True
    cat = FeatureSet.read(catalog)
    meta_path = features_dir / "metadata.json"
    built_with = json.loads(meta_path.read_text(encoding="utf-8")).get("catalog_sha256") if meta_path.exists() else None
    if not explicit and built_with and built_with != cat.sha256:
        raise ValueError(
            f"{panel_path} was built with another catalogue (sha256 {built_with[:12]}..., now "
            f"{cat.sha256[:12]}...): rebuild the features, or pass the catalogue explicitly"
        )
    lazy = pl.scan_parquet(panel_path)
    schema = lazy.collect_schema()
    missing = [c for c in [*PANEL_IDS, LABEL] + [f.name for f in cat.features] if c not in schema]
    if missing:
        raise ValueError(f"{panel_path}: column(s) {', '.join(missing)} from the catalogue or spine are missing")
    labelled = (
        lazy.filter(pl.col(LABEL).is_not_null())
        .select(*PANEL_IDS, LABEL, *[f.name for f in cat.features])
        .sort(["as_of", "merchant_id"])
        .collect()
    )
    features = _with_categories(cat.features, labelled)
    frame = labelled.to_pandas()
    return TrainingTable(
        frame=frame,
        features=features,
        id_columns=list(PANEL_IDS),
        target=LABEL,
        source=panel_path.resolve(),
        sha256=file_sha256(panel_path),
        feature_set={"name": cat.name, "version": cat.version},
        split=time_split(
            frame["as_of"].to_numpy(), frame["merchant_id"].to_numpy(), frame[LABEL].to_numpy(), seed=seed
        ),
        time_col="as_of",
        catalog_text=cat.text,
    )


def load_table(
    path: str | Path,
    *,
    target: str,
    id_col: str,
    time_col: str | None = None,
    categorical: list[str] | None = None,
    monotone: dict[str, int] | None = None,
    seed: int = 7,
) -> TrainingTable:
    """Any feature table (Parquet or CSV): every column but target, id and dates is a feature.

    String columns and those named in ``categorical`` are native categoricals; ``monotone``
    gives risk directions (+1 riskier as it grows, -1 safer); rows with a null target are
    dropped; the target must be 0/1.
    """
    path = Path(path)
    frame = _read_any(path)
    for col in [target, id_col, *([time_col] if time_col else [])]:
        if col not in frame.columns:
            raise ValueError(f"{path}: column {col!r} not found (columns: {', '.join(frame.columns)})")
    frame = frame.filter(pl.col(target).is_not_null())
    y_values = set(frame[target].unique().to_list())
    if not y_values <= {0, 1} or len(y_values) < 2:
        raise ValueError(
            f"{path}: target {target!r} must hold both 0 and 1 (1 = default/bad, 0 = good), found "
            f"{sorted(map(str, y_values))[:10]}; recode it first, e.g. 2 -> 1 and 1 -> 0 for a 1/2 label"
        )
    frame = frame.with_columns(pl.col(target).cast(pl.Int8))
    categorical = list(categorical or [])
    monotone = dict(monotone or {})
    unknown = [c for c in [*categorical, *monotone] if c not in frame.columns]
    if unknown:
        raise ValueError(f"{path}: column(s) {', '.join(unknown)} named in --categorical/--monotone not found")
    features = []
    for name, dtype in frame.schema.items():
        if name in (target, id_col, time_col) or dtype.is_temporal():
            continue  # dates are for splitting (--time-col), not model inputs
        is_cat = name in categorical or dtype in (pl.String, pl.Categorical, pl.Enum)
        if is_cat and monotone.get(name, 0):
            raise ValueError(f"{name}: a categorical feature cannot carry a monotone direction")
        kind = "category" if is_cat else ("bool" if dtype == pl.Boolean else "float")
        features.append(ModelInput(name=name, dtype=kind, direction=int(monotone.get(name, 0))))
    if not features:
        raise ValueError(f"{path}: no feature columns besides {target!r}, {id_col!r}")
    frame = frame.with_columns([pl.col(f.name).cast(pl.String) for f in features if f.is_categorical])
    if time_col:
        frame = frame.sort(time_col)
    features = _with_categories(features, frame)
    pdf = frame.to_pandas()
    y = pdf[target].to_numpy()
    split = (
        time_split(pdf[time_col].to_numpy(), pdf[id_col].to_numpy(), y, seed=seed)
        if time_col
        else stratified_split(y, seed=seed)
    )
    return TrainingTable(
        frame=pdf,
        features=features,
        id_columns=[id_col],
        target=target,
        source=path.resolve(),
        sha256=file_sha256(path),
        feature_set={"name": path.stem, "version": file_sha256(path)[:12]},
        split=split,
        time_col=time_col,
    )


def _read_any(path: Path) -> pl.DataFrame:
    if not path.exists():
        raise FileNotFoundError(f"{path} not found")
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return pl.read_parquet(path)
    if suffix in (".csv", ".txt"):
        frame = pl.read_csv(path, infer_schema_length=10_000, try_parse_dates=True, null_values=CSV_NULLS)
        return frame.with_columns(_percent_to_number(frame))
    raise ValueError(f"{path}: expected a .parquet or .csv table")


CSV_NULLS = ["", "NA", "N/A", "NaN", "nan", "NULL", "null", "None", "?"]
"""Missing-value spellings of exported credit tables (R's NA, UCI's ?); a numeric column holding
one of them would otherwise be read as text and become a categorical of thousands of levels."""
_PERCENT = r"^\s*[-+]?\d+(\.\d+)?\s*%\s*$"


def _percent_to_number(frame: pl.DataFrame) -> list[pl.Expr]:
    """Text columns whose every value reads like ``13.5%`` become numbers (13.5), not categories."""
    out = []
    for name, dtype in frame.schema.items():
        values = frame[name].drop_nulls() if dtype == pl.String else None
        if values is not None and len(values) and values.str.contains(_PERCENT).all():
            out.append(pl.col(name).str.strip_chars().str.strip_chars_end("%").str.strip_chars().cast(pl.Float64))
    return out


def _with_categories(features: list[ModelInput], frame: pl.DataFrame) -> list[ModelInput]:
    """Fix each categorical feature's categories: sorted distinct non-null values in the frame."""
    out = []
    for f in features:
        if f.is_categorical:
            cats = frame[f.name].cast(pl.String).drop_nulls().unique().sort().to_list()
            f = replace(f, direction=0, categories=tuple(cats))
        out.append(f)
    return out


def read_frame(path: str | Path) -> pd.DataFrame:
    """A Parquet or CSV table as pandas (for ``lifecredit predict``)."""
    return _read_any(Path(path)).to_pandas()
