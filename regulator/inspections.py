"""Inspection plans by credit-risk class (信用风险分类管理, 双随机、一公开), inspection results, and the finding rate.

A plan is a random sample of one month's class history, stratified by class x province, with a
sampling ratio per class from a versioned YAML policy (:data:`POLICY_FILE`; local policies under
``<var_dir>/inspections/policies/``). In every stratum ``n = ratio x eligible`` rounded half up,
so the realised ratio is within half a merchant of the policy's. Each merchant's draw key is
``sha256("<seed>:<month>:<merchant_id>")``; a stratum draws its ``n`` smallest keys: a simple
random sample that anyone can redraw with nothing but SHA-256 (一公开: publish the seed, the policy
hash and the population rule, all in the plan). The plan file is canonical JSON (sorted, no
timestamp), so the same history, results, policy and seed give the same bytes.

Results of inspections (``lifecredit inspections record``) are checked by the ODCS contract
``data_contracts/contracts/inspections.yaml`` plus the checks only a store can make (not in the
future, a known plan, not already recorded); bad rows go to quarantine with every reason. They
feed the exclusion "inspected within the last N months" and :func:`finding_rates`, the finding
rate per class with Jeffreys intervals, small cells suppressed as in every regulator view.

The module is over 400 lines because the policy, the plan, the two stores and the finding view
share one set of paths, columns and rules: a plan's exclusions read the same results store whose
rows the finding view counts, and split they would drift apart.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl
import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from core.audit import AuditRecord
from core.files import atomic_path, file_sha256, write_bytes_atomic
from core.settings import Settings
from core.vocabulary import CLASSES, RiskClass
from regulator.common import UnknownValue, ViewError, count_grid, rounded, segment, suppression_note
from regulator.history import HistoryError, months_back, scan_history
from regulator.labels import UNKNOWN, label
from regulator.outcomes import INTERVAL_LEVEL, jeffreys_interval
from regulator.suppression import protect

POLICY_FILE = Path(__file__).with_name("inspection_policy.yaml")
POLICY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
PLAN_ID = re.compile(r"^IP-\d{4}-\d{2}-[0-9a-f]{12}$")
FINDINGS = ("none", "minor", "serious")
UNCLASSIFIED = "unclassified"
PLAN_ENDPOINT = "/regulator/inspections"
CLI_PLAN_ENDPOINT = "cli:inspections plan"
CLI_RECORD_ENDPOINT = "cli:inspections record"
MARKET_TZ = ZoneInfo("Asia/Shanghai")
RESULT_SCHEMA = {
    "merchant_id": pl.String(),
    "inspected_on": pl.Date(),
    "finding": pl.String(),
    "plan_id": pl.String(),
    "inspector": pl.String(),
    "source_sha256": pl.String(),
    "recorded_at": pl.Datetime("us", "UTC"),
}
OPTIONAL_COLUMNS = ("plan_id", "inspector")
LINE = "__line__"
QUARANTINE_LINE = "csv_line"
REASONS = "rejection_reasons"


class InspectionError(ValueError):
    """A plan or a results file that cannot be made; the message says what is wrong."""


class MissingInput(InspectionError):
    """A store the plan or the results need is not there yet; the message names the command that makes it."""


# ---------------------------------------------------------------- policy


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Closed(_Strict):
    """A merchant is closed when registered ``min_registered_days`` before as_of with no sale in ``no_sale_days``."""

    no_sale_days: int = Field(ge=1, le=3650)
    min_registered_days: int = Field(ge=0, le=3650)


class Exclusions(_Strict):
    inspected_within_months: int = Field(ge=0, le=120)
    closed: Closed | None = None


class InspectionPolicy(_Strict):
    """The whole policy file; ``sha256`` (of the file's bytes) identifies exactly which text drew a plan."""

    version: str = Field(pattern=POLICY_NAME.pattern)
    description: str = Field(min_length=1)
    local_policy_note: str | None = None
    ratios: dict[RiskClass, float]
    exclusions: Exclusions
    sha256: str = ""

    @field_validator("ratios")
    @classmethod
    def _every_class(cls, ratios: dict[str, float]) -> dict[str, float]:
        missing = [c for c in CLASSES if c not in ratios]
        if missing:
            raise ValueError(f"ratios needs every class {', '.join(CLASSES)}; missing {', '.join(missing)}")
        bad = {c: r for c, r in ratios.items() if not 0.0 <= r <= 1.0}
        if bad:
            raise ValueError(f"a sampling ratio is a share between 0 and 1, got {bad}")
        return {c: ratios[c] for c in CLASSES}


def load_policy(path: Path | str = POLICY_FILE) -> InspectionPolicy:
    """Parse and check a policy file; a typo in a key is an error naming it."""
    raw = Path(path).read_bytes()
    data = yaml.safe_load(raw)
    if not isinstance(data, dict) or "sha256" in data:
        raise InspectionError(f"{path}: an inspection policy is a YAML mapping without a sha256 key")
    return InspectionPolicy.model_validate({**data, "sha256": hashlib.sha256(raw).hexdigest()})


def policies_dir(settings: Settings) -> Path:
    return settings.var_dir / "inspections" / "policies"


def policy_files(settings: Settings) -> dict[str, Path]:
    """version -> file: the shipped policy and the local ones under ``<var_dir>/inspections/policies/``."""
    found = {load_policy(POLICY_FILE).version: POLICY_FILE}
    folder = policies_dir(settings)
    for path in sorted(folder.glob("*.yaml")) if folder.is_dir() else []:
        found.setdefault(load_policy(path).version, path)
    return found


def find_policy(settings: Settings, name: str | None) -> InspectionPolicy:
    """The policy whose ``version`` is ``name`` (None: the shipped one); never a path."""
    if name is None:
        return load_policy(POLICY_FILE)
    if not POLICY_NAME.fullmatch(name):
        raise InspectionError(f"a policy is named by its version (letters, digits, . _ -), got {name!r}")
    files = policy_files(settings)
    if name not in files:
        raise UnknownValue(f"no inspection policy {name!r}; known: {', '.join(sorted(files))}")
    return load_policy(files[name])


# ---------------------------------------------------------------- plans


def default_seed(month: str) -> int:
    """The seed when none is given: the month as the number YYYYMM (printed and recorded in the plan)."""
    return int(month.replace("-", ""))


def draw_key(seed: int, month: str, merchant_id: str) -> str:
    """A merchant's draw key: hex SHA-256 of ``"<seed>:<month>:<merchant_id>"`` (UTF-8)."""
    return hashlib.sha256(f"{seed}:{month}:{merchant_id}".encode()).hexdigest()


def sample_size(ratio: float, eligible: int) -> int:
    """``ratio x eligible`` rounded half up, in decimal arithmetic on the ratio as written (0.005 x 100 = 1)."""
    return int((Decimal(repr(ratio)) * eligible).to_integral_value(rounding=ROUND_HALF_UP))


def _months_before(as_of: date, months: int) -> date:
    return months_back(as_of, months + 1)[0]


def exclusion_dates(as_of: date, policy: InspectionPolicy) -> dict:
    """The dates the policy's exclusions compare with, for a plan month's ``as_of``."""
    ex = policy.exclusions
    out = {"inspected_since": _months_before(as_of, ex.inspected_within_months).isoformat()}
    if ex.closed is not None:
        out["no_sale_since"] = (as_of - timedelta(days=ex.closed.no_sale_days)).isoformat()
        out["registered_before"] = (as_of - timedelta(days=ex.closed.min_registered_days)).isoformat()
    return out


def population_rule(month: str, as_of: date, policy: InspectionPolicy) -> str:
    dates = exclusion_dates(as_of, policy)
    rule = (
        f"Every merchant in the class history of {month} (classified as of {as_of}), stratified by credit-risk "
        f"class x province (two-digit code, '{UNKNOWN}' when missing); not eligible: "
    )
    if policy.exclusions.inspected_within_months:
        rule += f"merchants with a recorded inspection dated from {dates['inspected_since']} to the day before {as_of}"
    else:
        rule += "no merchant for an earlier inspection"
    if policy.exclusions.closed is not None:
        rule += (
            f", and closed merchants: registered before {dates['registered_before']} with no sale on the platform "
            f"from {dates['no_sale_since']} to the day before {as_of}"
        )
    return rule + " (a merchant both recently inspected and closed is listed as recently inspected)."


GENERATOR = (
    "Draw key of a merchant: hex SHA-256 of the UTF-8 text '<seed>:<month>:<merchant_id>'. In each class x "
    "province stratum the eligible merchants are sorted by draw key and the first n are drawn, n = ratio x "
    "eligible rounded half up (decimal arithmetic on the ratio as written): a simple random sample without "
    "replacement that anyone can redraw from the seed, the policy and the population."
)


def _canonical(obj) -> bytes:
    return (json.dumps(obj, ensure_ascii=False, sort_keys=True, indent=1) + "\n").encode()


def draw_plan(
    month_frame: pl.DataFrame,
    policy: InspectionPolicy,
    seed: int,
    *,
    recently_inspected: Iterable[str] = (),
    closed: Iterable[str] = (),
) -> dict:
    """The inspection plan for one month of the class history (``merchant_id``, ``month``, ``as_of``, ``class``,
    ``province``, ...): eligible merchants stratified by class x province, ``sample_size`` drawn per stratum.

    ``recently_inspected`` and ``closed``: merchant ids the policy's exclusions take out (see
    :func:`exclusions_for`). Pure: the same inputs give the same plan, and :func:`plan_bytes` the same bytes.
    """
    if seed < 0 or seed >= 2**63:
        raise InspectionError(f"a seed is an integer from 0 to 2^63 - 1, got {seed}")
    months = month_frame["month"].unique().to_list()
    if len(months) != 1:
        raise InspectionError(f"a plan draws from one month of the class history, got {sorted(months)}")
    month = months[0]
    as_of = month_frame["as_of"].max()
    recent, shut = set(recently_inspected), set(closed) - set(recently_inspected)
    frame = (
        month_frame.select(
            "merchant_id",
            "class",
            *(segment(c) for c in ("province", "sector", "city")),
        )
        .unique("merchant_id", keep="first")
        .sort("merchant_id")
    )
    ids = frame["merchant_id"].to_list()
    frame = frame.with_columns(
        key=pl.Series([draw_key(seed, month, m) for m in ids], dtype=pl.String),
        excluded=pl.Series(
            ["recently_inspected" if m in recent else "closed" if m in shut else None for m in ids], dtype=pl.String
        ),
    )
    strata, drawn = [], []
    for (klass, province), part in sorted(frame.partition_by("class", "province", as_dict=True).items()):
        eligible = part.filter(pl.col("excluded").is_null()).sort("key", "merchant_id")
        ratio = policy.ratios[klass]
        n = sample_size(ratio, eligible.height)
        drawn.append(eligible.head(n))
        strata.append(
            {
                "class": klass,
                "province": province,
                "population": part.height,
                "excluded_recently_inspected": int((part["excluded"] == "recently_inspected").sum()),
                "excluded_closed": int((part["excluded"] == "closed").sum()),
                "eligible": eligible.height,
                "ratio": ratio,
                "expected": round(ratio * eligible.height, 6),
                "drawn": n,
            }
        )
    chosen = pl.concat(drawn).sort("merchant_id") if drawn else frame.clear()
    eligible_ids = frame.filter(pl.col("excluded").is_null())["merchant_id"].to_list()
    models = (
        month_frame.select("model_name", "model_version").unique().sort("model_name", "model_version")
        if {"model_name", "model_version"} <= set(month_frame.columns)
        else pl.DataFrame()
    )
    body = {
        "month": month,
        "as_of": as_of.isoformat(),
        "seed": seed,
        "policy": {
            "version": policy.version,
            "sha256": policy.sha256,
            "ratios": policy.ratios,
            "exclusions": policy.exclusions.model_dump(),
            "local_policy_note": policy.local_policy_note,
        },
        "population": {
            "rule": population_rule(month, as_of, policy),
            "exclusion_dates": exclusion_dates(as_of, policy),
            "classified_by": [f"{n} v{v}" for n, v in models.iter_rows()],
            "merchants": frame.height,
            "eligible": len(eligible_ids),
            "eligible_sha256": hashlib.sha256("\n".join(eligible_ids).encode()).hexdigest(),
        },
        "generator": GENERATOR,
        "strata": strata,
        "excluded": {
            "recently_inspected": frame.filter(pl.col("excluded") == "recently_inspected")["merchant_id"].to_list(),
            "closed": frame.filter(pl.col("excluded") == "closed")["merchant_id"].to_list(),
        },
        "drawn": chosen.height,
        "merchants": chosen.select("merchant_id", "class", "province", "sector", "city", "key").to_dicts(),
    }
    digest = hashlib.sha256(_canonical(body)).hexdigest()
    return {"plan_id": f"IP-{month}-{digest[:12]}", **body}


def plan_bytes(plan: dict) -> bytes:
    """The plan as canonical JSON (sorted keys, one-space indent, UTF-8, final newline): the published file."""
    return _canonical(plan)


def _validated_table(validated_dir: Path, name: str) -> Path:
    path = Path(validated_dir) / f"{name}.parquet"
    if not path.exists():
        raise MissingInput(f"no validated {name} table at {path}: run `lifecredit validate` first")
    return path


def closed_merchants(validated_dir: Path, as_of: date, closed: Closed) -> set[str]:
    """Merchants registered ``min_registered_days`` before ``as_of`` without a sale in the ``no_sale_days`` before it."""
    registered_before = as_of - timedelta(days=closed.min_registered_days)
    since = datetime.combine(as_of - timedelta(days=closed.no_sale_days), datetime.min.time(), MARKET_TZ)
    until = datetime.combine(as_of, datetime.min.time(), MARKET_TZ)
    trading = (
        pl.scan_parquet(_validated_table(validated_dir, "transactions"))
        .filter((pl.col("txn_type") == "sale") & (pl.col("ts") >= since) & (pl.col("ts") < until))
        .select("merchant_id")
        .unique()
    )
    old = (
        pl.scan_parquet(_validated_table(validated_dir, "merchants"))
        .filter(pl.col("registered_on") < registered_before)
        .select("merchant_id")
        .unique()
    )
    return set(old.join(trading, on="merchant_id", how="anti").collect(engine="streaming")["merchant_id"].to_list())


def exclusions_for(
    policy: InspectionPolicy, as_of: date, results: pl.DataFrame, validated_dir: Path | None
) -> tuple[set[str], set[str]]:
    """(recently inspected, closed) merchant ids under ``policy`` for a plan month's ``as_of``."""
    since = _months_before(as_of, policy.exclusions.inspected_within_months)
    recent = set(
        results.filter((pl.col("inspected_on") >= since) & (pl.col("inspected_on") < as_of))["merchant_id"].to_list()
    )
    closed = policy.exclusions.closed
    if closed is None:
        return recent, set()
    if validated_dir is None:
        raise MissingInput("the closed-merchant exclusion needs the validated tables (transactions, merchants)")
    return recent, closed_merchants(validated_dir, as_of, closed)


def history_month(history_dir: Path, month: str) -> pl.DataFrame:
    """One month of the class history (raises :class:`UnknownValue` for a month it does not hold)."""
    if not MONTH.fullmatch(month):
        raise InspectionError(f"expected a month YYYY-MM, got {month!r}")
    lazy = scan_history(history_dir)
    frame = lazy.filter(pl.col("month") == month).collect()
    if frame.height == 0:
        available = sorted(lazy.select(pl.col("month").unique()).collect()["month"].to_list())
        raise UnknownValue(
            f"no month {month} in the class history; available: {available[0]} .. {available[-1]} "
            "(score it with `lifecredit score-all --as-of YYYY-MM-01`)"
        )
    return frame


def make_plan(
    settings: Settings,
    month: str,
    policy: InspectionPolicy,
    seed: int | None = None,
    *,
    history_dir: Path | None = None,
    validated_dir: Path | None = None,
) -> dict:
    """Draw the plan for ``month`` from the configured class history, results store and validated tables."""
    frame = history_month(Path(history_dir or settings.class_history_dir), month)
    as_of = frame["as_of"].max()
    recent, closed = exclusions_for(
        policy, as_of, read_results(settings), Path(validated_dir or settings.validated_dir)
    )
    return draw_plan(
        frame, policy, default_seed(month) if seed is None else seed, recently_inspected=recent, closed=closed
    )


def plans_dir(settings: Settings) -> Path:
    return settings.var_dir / "inspections" / "plans"


def store_plan(settings: Settings, plan: dict) -> tuple[Path, bool]:
    """Keep the plan as ``<var_dir>/inspections/plans/<plan_id>.json``; (path, False) when it is there already."""
    path = plans_dir(settings) / f"{plan['plan_id']}.json"
    data = plan_bytes(plan)
    if path.exists() and path.read_bytes() == data:
        return path, False
    write_bytes_atomic(path, data)
    return path, True


def plan_summary(plan: dict) -> dict:
    """What a list of plans shows: id, month, seed, policy, counts drawn per class, the file's SHA-256."""
    by_class = {c: 0 for c in CLASSES}
    for s in plan["strata"]:
        by_class[s["class"]] += s["drawn"]
    return {
        "plan_id": plan["plan_id"],
        "month": plan["month"],
        "as_of": plan["as_of"],
        "seed": plan["seed"],
        "policy_version": plan["policy"]["version"],
        "policy_sha256": plan["policy"]["sha256"],
        "eligible": plan["population"]["eligible"],
        "drawn": plan["drawn"],
        "drawn_by_class": by_class,
        "plan_sha256": hashlib.sha256(plan_bytes(plan)).hexdigest(),
    }


def read_plan(settings: Settings, plan_id: str) -> dict | None:
    """A stored plan, or None (``plan_id`` is checked against the id pattern, never used as a path as is)."""
    if not PLAN_ID.fullmatch(plan_id):
        return None
    path = plans_dir(settings) / f"{plan_id}.json"
    return json.loads(path.read_bytes()) if path.exists() else None


def list_plans(settings: Settings, month: str | None = None) -> list[dict]:
    """Summaries of the stored plans (of one month, when given), by month then id."""
    if month is not None and not MONTH.fullmatch(month):
        raise ViewError(f"month: expected YYYY-MM, got {month!r}")
    folder = plans_dir(settings)
    pattern = f"IP-{month}-*.json" if month else "IP-*.json"
    plans = [json.loads(p.read_bytes()) for p in sorted(folder.glob(pattern))] if folder.is_dir() else []
    return sorted((plan_summary(p) for p in plans), key=lambda s: (s["month"], s["plan_id"]))


def plan_audit_record(plan: dict, *, endpoint: str, key_name: str, request: dict) -> AuditRecord:
    """The audit record of a drawn plan: who asked, the seed, the policy's version and hash, the plan's hash."""
    return AuditRecord(
        endpoint=endpoint,
        key_name=key_name,
        request=request,
        outputs=plan_summary(plan),
        policy_version=plan["policy"]["version"],
        policy_hash=plan["policy"]["sha256"],
        features_as_of=plan["as_of"],
    )


# ---------------------------------------------------------------- results


def results_dir(settings: Settings) -> Path:
    return settings.data_dir / "inspections" / "results"


def quarantine_dir(settings: Settings) -> Path:
    return settings.data_dir / "inspections" / "quarantine"


def read_results(settings: Settings) -> pl.DataFrame:
    """Every recorded inspection (valid rows of every recorded file); empty when none was recorded."""
    folder = results_dir(settings)
    files = sorted(folder.glob("*.parquet")) if folder.is_dir() else []
    if not files:
        return pl.DataFrame(schema=RESULT_SCHEMA)
    return pl.concat([pl.read_parquet(f) for f in files], how="vertical_relaxed").select(
        pl.col(c).cast(t) for c, t in RESULT_SCHEMA.items()
    )


def _read_csv(file: Path) -> pl.DataFrame:
    from data_contracts import TableError

    data = Path(file).read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise TableError(file, None, "UTF-8 text", f"a byte that is not UTF-8 at offset {err.start}") from err
    if not data.strip():
        raise TableError(file, None, "a CSV header line", "an empty file", "write the header line and the rows")
    frame = pl.read_csv(data, infer_schema=False)
    return frame.with_columns(pl.lit(None, dtype=pl.String).alias(c) for c in OPTIONAL_COLUMNS if c not in frame)


def _store_checks(raw: pl.DataFrame, settings: Settings, today: date) -> pl.DataFrame:
    """``line`` and the reasons only the stores can give, per raw row: future date, unknown plan, not drawn,
    already recorded."""
    day = pl.col("inspected_on").str.strip_chars().str.to_date("%Y-%m-%d", strict=False)
    plan_ids = raw["plan_id"].drop_nulls().unique().to_list()
    drawn = {}
    for pid in plan_ids:
        plan = read_plan(settings, pid)
        if plan is not None:
            drawn[pid] = {m["merchant_id"] for m in plan["merchants"]}
    pairs = [(p, m) for p, ms in drawn.items() for m in ms]
    in_plan = pl.DataFrame(pairs, schema={"plan_id": pl.String, "merchant_id": pl.String}, orient="row")
    stored = read_results(settings).select("merchant_id", "inspected_on").unique().with_columns(__stored__=pl.lit(True))
    checked = (
        raw.select(LINE, "merchant_id", "plan_id", day.alias("__day__"))
        .join(in_plan.with_columns(pl.lit(True).alias("__in_plan__")), on=["plan_id", "merchant_id"], how="left")
        .join(stored.rename({"inspected_on": "__day__"}), on=["merchant_id", "__day__"], how="left")
    )
    known = pl.col("plan_id").is_in(list(drawn))
    rules = {
        "inspected_on:not_in_future": pl.col("__day__") > today,
        "plan_id:known_plan": pl.col("plan_id").is_not_null()
        & pl.col("plan_id").str.contains(PLAN_ID.pattern)
        & ~known,
        "plan_id:merchant_in_plan": known & pl.col("__in_plan__").is_null(),
        "merchant_id+inspected_on:already_recorded": pl.col("__stored__").is_not_null(),
    }
    return checked.select(
        LINE,
        pl.concat_list([pl.when(e.fill_null(False)).then(pl.lit(name)) for name, e in rules.items()])
        .list.drop_nulls()
        .alias("__extra__"),
    )


def record_results(
    settings: Settings, file: Path, *, validated_dir: Path | None = None, today: date | None = None
) -> dict:
    """Check a results CSV and append its valid rows to the store (one Parquet file per recorded file).

    Bad rows go to ``<data_dir>/inspections/quarantine/`` with every rule they broke and their CSV line;
    valid + quarantined = rows in. Recording the same file again (same bytes) appends nothing and says so.
    """
    from data_contracts import TableError, load_contract, validate_table

    file = Path(file)
    if not file.is_file():
        raise InspectionError(f"no results file {file}")
    digest = file_sha256(file)
    target = results_dir(settings) / f"{digest[:16]}.parquet"
    held = quarantine_dir(settings) / f"{digest[:16]}.parquet"
    summary = {"file": str(file), "sha256": digest, "results": str(target), "quarantine": str(held)}
    if target.exists():
        return {**summary, "already_recorded": True, "rows_in": None, "valid": 0, "rejected": 0, "rejected_by_rule": {}}
    merchants = _validated_table(Path(validated_dir or settings.validated_dir), "merchants")
    ids = pl.read_parquet(merchants, columns=["merchant_id"])["merchant_id"]
    raw = _read_csv(file).with_row_index(LINE, offset=2).with_columns(pl.col(LINE).cast(pl.Int64))
    extra = _store_checks(raw, settings, today or date.today())
    try:
        valid, rejected, _ = validate_table(raw, load_contract("inspections"), valid_merchant_ids=ids)
    except TableError as err:  # name the file, not the in-memory frame
        raise TableError(file, err.column, err.expected, err.found, err.fix) from err
    valid_lines = raw.filter(~pl.col(LINE).is_in(rejected[LINE].implode()))[LINE]
    valid = valid.with_columns(valid_lines.alias(LINE)).join(extra, on=LINE, how="left")
    bad_raw = raw.join(valid.filter(pl.col("__extra__").list.len() > 0).select(LINE, "__extra__"), on=LINE)
    quarantined = (
        pl.concat(
            [
                rejected.join(extra, on=LINE, how="left").with_columns(
                    pl.concat_list(REASONS, pl.col("__extra__").fill_null(pl.lit([], dtype=pl.List(pl.String))))
                ),
                bad_raw.with_columns(pl.col("__extra__").alias(REASONS)),
            ],
            how="diagonal_relaxed",
        )
        .drop("__extra__")
        .sort(LINE)
        .rename({LINE: QUARANTINE_LINE})
    )
    kept = valid.filter(pl.col("__extra__").list.len() == 0)
    if kept.height + quarantined.height != raw.height:  # the promise: nothing dropped silently
        raise RuntimeError(f"{file}: {raw.height} rows in but {kept.height} valid + {quarantined.height} rejected")
    stamp = datetime.now(UTC)
    rows = kept.select(
        *(c for c in RESULT_SCHEMA if c not in ("source_sha256", "recorded_at")),
        pl.lit(digest).alias("source_sha256"),
        pl.lit(stamp, dtype=RESULT_SCHEMA["recorded_at"]).alias("recorded_at"),
    )
    with atomic_path(held) as tmp:
        quarantined.write_parquet(tmp)
    with atomic_path(target) as tmp:  # last: its presence marks the file recorded
        rows.select(pl.col(c).cast(t) for c, t in RESULT_SCHEMA.items()).write_parquet(tmp)
    by_rule: dict[str, int] = {}
    for reasons in quarantined[REASONS].to_list():
        for r in reasons:
            by_rule[r] = by_rule.get(r, 0) + 1
    return {
        **summary,
        "already_recorded": False,
        "rows_in": raw.height,
        "valid": rows.height,
        "rejected": quarantined.height,
        "rejected_by_rule": dict(sorted(by_rule.items())),
        "findings": {f: int((rows["finding"] == f).sum()) for f in FINDINGS},
    }


def results_audit_record(summary: dict, *, key_name: str) -> AuditRecord:
    """The audit record of a recorded results file: its hash and what was kept and quarantined."""
    return AuditRecord(
        endpoint=CLI_RECORD_ENDPOINT,
        key_name=key_name,
        request={"file": summary["file"], "sha256": summary["sha256"]},
        outputs={k: summary[k] for k in ("already_recorded", "rows_in", "valid", "rejected", "rejected_by_rule")},
    )


# ---------------------------------------------------------------- finding rate


def _interval(count: int | None, n: int | None) -> dict | None:
    if count is None or not n:
        return None
    lo, hi = jeffreys_interval(count, n)
    return {"low": rounded(lo), "high": rounded(hi), "level": INTERVAL_LEVEL}


def finding_rates(
    history, results: pl.DataFrame, *, k: int, from_month: str | None = None, to_month: str | None = None
) -> dict:
    """Inspections per class (the merchant's class in the month of the inspection) and what they found.

    Per class: the inspections, each finding (count, share), the serious rate and the rate of any finding
    (minor or serious) with 95 % Jeffreys intervals. Inspections of a merchant the history does not classify
    that month count as ``unclassified``. Counts of fewer than ``k`` distinct merchants, and any cell they
    could be worked out from, are suppressed (:func:`regulator.suppression.protect`).
    """
    for name, value in (("from", from_month), ("to", to_month)):
        if value is not None and not MONTH.fullmatch(value):
            raise ViewError(f"{name}: expected a month YYYY-MM, got {value!r}")
    if from_month and to_month and from_month > to_month:
        raise ViewError(f"from {from_month} is after to {to_month}")
    done = results.with_columns(month=pl.col("inspected_on").dt.strftime("%Y-%m"))
    if from_month:
        done = done.filter(pl.col("month") >= from_month)
    if to_month:
        done = done.filter(pl.col("month") <= to_month)
    if done.height:
        classes = (
            history.lazy()
            .filter(pl.col("month").is_in(done["month"].unique().implode()))
            .select("merchant_id", "month", "class")
            .unique(["merchant_id", "month"], keep="first")
            .collect()
        )
        done = done.join(classes, on=["merchant_id", "month"], how="left")
    else:
        done = done.with_columns(pl.lit(None, dtype=pl.String).alias("class"))
    done = done.with_columns(pl.col("class").fill_null(UNCLASSIFIED))
    keys = [*CLASSES, UNCLASSIFIED]
    counts, distinct = count_grid(done, "class", keys, "finding", list(FINDINGS))
    t = protect(counts, k, distinct=distinct)
    m, n = t.shape

    def row(i: int) -> dict:
        total = t.count(i, n)
        none, serious = t.count(i, 0), t.count(i, 2)
        anyf = total - none if total is not None and none is not None else None
        out = {"inspections": t.cell(i, n)}
        for j, f in enumerate(FINDINGS):
            out[f] = t.cell(i, j, share=rounded(t.share(i, j, (i, n))))
        out["serious"]["interval"] = _interval(serious, total)
        out["any_finding"] = {
            "count": anyf,
            "suppressed": anyf is None,
            "rate": rounded(anyf / total) if anyf is not None and total else None,
            "interval": _interval(anyf, total),
        }
        return out

    rows = []
    for i, key in enumerate(keys):
        text = label("class", key) if key != UNCLASSIFIED else {"en": "not classified that month", "zh": "当月未分类"}
        rows.append({"key": key, "label": text, **row(i)})
    months = sorted(done["month"].unique().to_list())
    return {
        "view": "inspection_findings",
        "from": from_month or (months[0] if months else None),
        "to": to_month or (months[-1] if months else None),
        "months_with_inspections": months,
        "definition_en": "Recorded inspections by the merchant's credit-risk class in the month of the inspection; "
        "any finding: minor or serious. A class system that works finds more in D than in A.",
        "definition_zh": "按检查当月商户信用风险分类统计的已录入检查结果；发现问题：一般问题或严重问题。"
        "分类有效时，D类的问题发现率应高于A类。",
        "rows": rows,
        "total": row(m),
        "suppressed_cells": t.n_suppressed,
        **suppression_note(k),
    }


def findings_view(settings: Settings, from_month: str | None = None, to_month: str | None = None) -> dict:
    """:func:`finding_rates` over the configured class history and results store."""
    results = read_results(settings)
    history = scan_history(settings.class_history_dir) if results.height else None
    if history is None:
        history = pl.LazyFrame(schema={"merchant_id": pl.String, "month": pl.String, "class": pl.String})
    return finding_rates(history, results, k=settings.min_cell_count, from_month=from_month, to_month=to_month)


__all__ = [
    "FINDINGS",
    "POLICY_FILE",
    "HistoryError",
    "InspectionError",
    "MissingInput",
    "InspectionPolicy",
    "default_seed",
    "draw_key",
    "draw_plan",
    "find_policy",
    "finding_rates",
    "findings_view",
    "list_plans",
    "load_policy",
    "make_plan",
    "plan_bytes",
    "read_plan",
    "read_results",
    "record_results",
    "sample_size",
    "store_plan",
]
