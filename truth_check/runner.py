"""The whole truth check: the model URI, the features, the truth and the MLflow run wired together.

:func:`run` resolves the model's run, reads which rows trained or calibrated it
(``evaluation/split_rows.parquet``), scores the evaluation rows, fits the feature ceiling on the
model's training rows and writes (and, for a local store, logs) ``truth_check.json``; the figures
themselves are :mod:`truth_check.check`'s.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from datetime import date
from pathlib import Path

import pandas as pd
import polars as pl

from core.settings import Settings
from truth_check.check import (
    FITTED_ROLES,
    JSON_ARTIFACT,
    JSON_NAME,
    KEYS,
    LABEL,
    SPLIT_ROWS_ARTIFACT,
    TRUE_PD,
    Progress,
    TruthCheckError,
    evaluation_rows,
    fit_ceiling,
    headline,
    section,
    spearman,
)


def resolve_run(client, model_uri: str) -> dict:
    """``models:/name/version``, ``models:/name@alias`` or ``runs:/id/path`` -> run id, name, version."""
    if model_uri.startswith("runs:/"):
        run_id = model_uri.removeprefix("runs:/").split("/", 1)[0]
        return {"run_id": run_id, "name": None, "version": None}
    if not model_uri.startswith("models:/"):
        raise TruthCheckError(
            f"model URI {model_uri!r}: expected models:/NAME/VERSION, models:/NAME@ALIAS or runs:/RUN_ID/model"
        )
    ref = model_uri.removeprefix("models:/").rstrip("/")
    if "@" in ref:
        name, alias = ref.rsplit("@", 1)
        mv = client.get_model_version_by_alias(name, alias)
    else:
        name, _, version = ref.rpartition("/")
        mv = client.get_model_version(name, version)
    return {"run_id": mv.run_id, "name": name, "version": str(mv.version)}


def split_rows(client, run_id: str, tmp: str) -> pl.DataFrame:
    """The run's ``evaluation/split_rows.parquet`` (merchant_id, as_of, role)."""
    import mlflow

    folder, name = SPLIT_ROWS_ARTIFACT.rsplit("/", 1)
    if name not in {Path(a.path).name for a in client.list_artifacts(run_id, folder)}:
        raise TruthCheckError(
            f"this model's run ({run_id}) has no {SPLIT_ROWS_ARTIFACT}: retrain with this version "
            "of lifecredit, whose training logs which rows trained the model"
        )
    path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=SPLIT_ROWS_ARTIFACT, dst_path=tmp)
    rows = pl.read_parquet(path).select(
        pl.col("merchant_id").cast(pl.String), pl.col("as_of").cast(pl.Date), pl.col("role").cast(pl.String)
    )
    roles = set(rows["role"].unique().to_list())
    if "train" not in roles or not roles <= {*FITTED_ROLES, "test"}:
        raise TruthCheckError(
            f"{SPLIT_ROWS_ARTIFACT} of run {run_id}: roles {sorted(map(str, roles))}, expected "
            "train, calibration and test"
        )
    return rows


def read_features(features_dir: Path) -> pl.DataFrame:
    """``panel.parquet`` ∪ ``latest.parquet`` (a row in both is taken from the panel, which carries ``bad``)."""
    parts = [
        pl.read_parquet(p) for p in (features_dir / "panel.parquet", features_dir / "latest.parquet") if p.exists()
    ]
    if not parts:
        raise TruthCheckError(f"no panel.parquet or latest.parquet in {features_dir}: run `lifecredit features` first")
    frame = pl.concat(parts, how="diagonal_relaxed").unique(KEYS, keep="first", maintain_order=True)
    if LABEL not in frame.columns:
        frame = frame.with_columns(pl.lit(None, dtype=pl.Int8).alias(LABEL))
    return frame.with_columns(pl.col("merchant_id").cast(pl.String), pl.col("as_of").cast(pl.Date))


def read_truth(path: Path) -> pl.DataFrame:
    if not path.exists():
        raise TruthCheckError(
            f"{path} not found: the truth exists for simulated markets only "
            "(`lifecredit simulate` writes it beside the raw tables)"
        )
    return pl.read_parquet(path, columns=[*KEYS, TRUE_PD]).with_columns(
        pl.col("merchant_id").cast(pl.String), pl.col("as_of").cast(pl.Date)
    )


def _load_model(model_uri: str, run_id: str, tmp: str):
    """The run's serving bundle (features, categories, master scale) and a scoring function for the model.

    A LightGBM model scores with the bundle (the same one its pyfunc wraps, without reasons);
    another kind (the scorecard challenger) through its pyfunc.
    """
    import mlflow

    from training.bundle import ScoringBundle, default_threads

    meta = mlflow.models.get_model_info(model_uri).metadata or {}
    bundle = ScoringBundle.load(
        mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="serving_bundle", dst_path=tmp),
        num_threads=default_threads(),
    )
    kind = meta.get("kind", bundle.kind)
    if kind == "lightgbm":
        predict = lambda frame: bundle.predict(frame, reasons=False)  # noqa: E731
    else:
        model = mlflow.pyfunc.load_model(model_uri)
        predict = model.predict
    by_name = {f.name: f for f in bundle.features}
    features = [by_name[n] for n in meta.get("features", bundle.feature_names)]
    return predict, features, bundle.scale, kind


def run(
    model_uri: str,
    features_dir: str | Path,
    truth_path: str | Path,
    *,
    settings: Settings,
    out_dir: str | Path,
    as_of: Sequence[date] | None = None,
    seed: int = 7,
    log: bool = True,
    progress: Progress | None = None,
) -> dict:
    """Run the whole check; write ``OUT/truth_check.json`` and (local store, ``log``) log it to the model's run.

    ``settings`` names the MLflow store the model is read from. Returns the JSON's content plus ``out`` (its path) and ``logged`` (whether it went to the run).
    """
    from training.bundle import encode
    from training.registry import client as open_client

    say = progress or (lambda _msg: None)
    features_dir, truth_path, out_dir = Path(features_dir), Path(truth_path), Path(out_dir)
    truth = read_truth(truth_path)
    features = read_features(features_dir)
    c = open_client(settings)
    from mlflow.exceptions import MlflowException

    try:
        ref = resolve_run(c, model_uri)
    except MlflowException as err:
        raise TruthCheckError(f"model {model_uri}: {err.message}") from err
    run_id = ref["run_id"]
    with tempfile.TemporaryDirectory() as tmp:
        roles = split_rows(c, run_id, tmp)
        say(f"model {model_uri} (run {run_id}); loading it")
        predict, model_features, scale, kind = _load_model(model_uri, run_id, tmp)
    fitted = roles.filter(pl.col("role").is_in(FITTED_ROLES))
    seen = set(fitted["merchant_id"].to_list())
    rows, facts = evaluation_rows(features, truth, as_of, fitted)
    say(f"{rows.height:,} rows at {', '.join(facts['as_of'])}; scoring them")
    frame = rows.to_pandas()
    scored = predict(frame)
    # the ceiling: the model's own training rows, features and encoding, fitted to the truth
    train = (
        features.join(roles.filter(pl.col("role") == "train").select(KEYS), on=KEYS, how="semi")
        .join(truth, on=KEYS, how="inner")
        .sort(KEYS)
        .to_pandas()
    )
    if not len(train):
        raise TruthCheckError(
            "none of the model's training rows is in these features and truth: pass the features "
            "the model was trained on"
        )
    say(f"feature ceiling: LightGBM on logit(true PD) of the model's {len(train):,} training rows")
    cats = [j for j, f in enumerate(model_features) if f.is_categorical]
    ceiling = fit_ceiling(
        encode(train, model_features), train[TRUE_PD].to_numpy(), train["merchant_id"].to_numpy(), cats, seed=seed
    )
    checked = pd.DataFrame(
        {
            "merchant_id": frame["merchant_id"].to_numpy(),
            "as_of": frame["as_of"].to_numpy(),
            LABEL: frame[LABEL].to_numpy(),
            TRUE_PD: frame[TRUE_PD].to_numpy(),
            "pd": scored["pd"].to_numpy(),
            "grade": scored["grade"].astype(str).to_numpy(),
            "class": scored["class"].astype(str).to_numpy(),
            "ceiling_pd": ceiling.predict_pd(encode(frame, model_features)),
        }
    )
    unseen = ~checked["merchant_id"].isin(seen).to_numpy()
    result = {
        "model": {
            "uri": model_uri,
            "run_id": run_id,
            "name": ref["name"],
            "version": ref["version"],
            "kind": kind,
            "master_scale": f"{scale.name}@{scale.version}",
            "features": len(model_features),
        },
        "inputs": {"features": str(features_dir), "truth": str(truth_path)},
        "rows": facts,
        "seen_merchants": len(seen),
        "all": section(checked, scale),
        "unseen": section(checked[unseen], scale),
        "by_as_of": [
            {
                "as_of": str(pd.Timestamp(d).date()),
                "rows": int(len(g)),
                "spearman": spearman(g["pd"], g[TRUE_PD]),
                "ceiling_spearman": spearman(g["ceiling_pd"], g[TRUE_PD]),
            }
            for d, g in checked.groupby("as_of", sort=True)
        ],
        "ceiling": ceiling.summary(),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / JSON_NAME
    text = json.dumps(result, ensure_ascii=False, indent=2)
    out.write_text(text, encoding="utf-8")
    result["out"] = str(out)
    result["logged"] = False
    if log and _local(settings.tracking_uri):
        _log(c, run_id, result, text)
        result["logged"] = True
    return result


def _local(uri: str) -> bool:
    return uri.startswith(("sqlite:", "file:")) or "://" not in uri


def _log(c, run_id: str, result: dict, text: str) -> None:
    import time

    from mlflow.entities import Metric

    stamp = int(time.time() * 1000)
    c.log_batch(run_id, metrics=[Metric(k, v, stamp, 0) for k, v in headline(result).items()])
    c.log_text(run_id, text, JSON_ARTIFACT)
