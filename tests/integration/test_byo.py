"""Bring your own table: the same pipeline on any labelled feature table, from Python and the CLI,
and as good as careful hand-built LightGBM and logistic models on the same split."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import polars as pl
import pytest
from typer.testing import CliRunner

from core.settings import get_settings


def credit_table(n: int = 20_000, seed: int = 1) -> pl.DataFrame:
    """A loan-level table with non-linear effects, an interaction, categoricals and missing values."""
    rng = np.random.default_rng(seed)
    income = rng.lognormal(8.5, 0.5, n)
    debt_ratio = np.clip(rng.beta(2, 5, n) + rng.normal(0, 0.05, n), 0, 1.5)
    age = rng.integers(20, 70, n)
    region = rng.choice(["north", "south", "east", "west"], n)
    branch = rng.integers(1, 8, n)
    months_on_book = rng.integers(0, 120, n)
    logit = (
        -3.2
        + 3.0 * debt_ratio
        - 0.8 * (np.log(income) - 8.5)
        + 0.9 * (age < 25)
        + 1.5 * debt_ratio * (income < 4000)
        + np.where(region == "west", 0.5, 0.0)
        - 0.01 * months_on_book
        + np.where(branch == 3, 0.4, 0.0)
    )
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    income = np.where(rng.random(n) < 0.05, np.nan, income)
    start = np.datetime64("2022-01-01")
    return pl.DataFrame(
        {
            "loan_id": [f"L{i:06d}" for i in range(n)],
            "application_date": (start + rng.integers(0, 720, n).astype("timedelta64[D]")).astype("datetime64[D]"),
            "income": income,
            "debt_ratio": debt_ratio,
            "age": age,
            "region": region,
            "branch": branch,
            "months_on_book": months_on_book,
            "default_flag": y,
        }
    ).with_columns(pl.col("income").fill_nan(None))


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    d = tmp_path_factory.mktemp("byo")
    frame = credit_table()
    frame.write_csv(d / "loans.csv")
    frame.write_parquet(d / "loans.parquet")
    return d


@pytest.fixture(scope="module")
def byo_store(mlflow_store):
    return mlflow_store.new()


@pytest.fixture
def env(byo_store, mlflow_store):
    with mlflow_store.use(byo_store):
        yield byo_store


def _hand_built_aucs(path, seed: int) -> dict[str, float]:
    """A careful LightGBM (early stopping, native categoricals) and a logistic model (imputed,
    scaled, one-hot), fitted on the pipeline's own train/validation rows and scored on its test rows."""
    import lightgbm as lgb
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from training.data import load_table

    t = load_table(path, target="default_flag", id_col="loan_id", categorical=["branch"], seed=seed)
    df, y, s = t.frame.copy(), t.y, t.split
    num = ["income", "debt_ratio", "age", "months_on_book"]
    cat = ["region", "branch"]
    for c in cat:
        df[c] = df[c].astype("category")
    X = df[num + cat]
    clf = lgb.LGBMClassifier(
        n_estimators=3000,
        learning_rate=0.03,
        num_leaves=15,
        min_child_samples=40,
        subsample=0.8,
        subsample_freq=1,
        colsample_bytree=0.8,
        reg_lambda=5.0,
        random_state=seed,
        verbose=-1,
        n_jobs=2,
    )
    clf.fit(
        X.iloc[s.train],
        y[s.train],
        eval_X=(X.iloc[s.valid],),
        eval_y=(y[s.valid],),
        eval_metric="auc",
        callbacks=[lgb.early_stopping(100, verbose=False)],
    )
    logit = make_pipeline(
        ColumnTransformer(
            [
                ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), num),
                ("cat", OneHotEncoder(handle_unknown="ignore"), cat),
            ]
        ),
        LogisticRegression(max_iter=2000),
    )
    logit.fit(df[num + cat].astype({c: str for c in cat}).iloc[s.train], y[s.train])
    test = df.iloc[s.test]
    return {
        "lightgbm": roc_auc_score(y[s.test], clf.predict_proba(X.iloc[s.test])[:, 1]),
        "logistic": roc_auc_score(y[s.test], logit.predict_proba(test[num + cat].astype({c: str for c in cat}))[:, 1]),
    }


def test_byo_table_is_as_good_as_hand_built_models(env, tables):
    from training.train import train_from_table

    r = train_from_table(
        tables / "loans.csv",
        settings=get_settings(),
        target="default_flag",
        id_col="loan_id",
        categorical=["branch"],
        model_name="byo-loans",
        seed=3,
    )
    assert r["split"]["split"] == "stratified_random" and r["model_uri"] == "models:/byo-loans/1"
    hand = _hand_built_aucs(tables / "loans.csv", seed=3)
    assert r["metrics"]["auc"] >= max(hand.values()) - 0.01, (r["metrics"]["auc"], hand)
    assert r["challenger_metrics"]["auc"] >= hand["logistic"] - 0.03
    assert r["metrics"]["classes_rejected"] == 0
    # the registered model is the candidate with the best out-of-fold evidence, and the run says so
    from mlflow import MlflowClient

    run = MlflowClient().get_run(r["run_id"]).data
    table = {row["candidate"]: row for row in r["selection"]}
    assert run.params["selected_model"] == r["selected_model"] and table[r["selected_model"]]["selected"]
    assert {"lightgbm", "lightgbm_small", "lightgbm_additive", "scorecard", "logistic"} <= set(table)
    assert all(f"oof.{c}.log_loss" in run.metrics and f"oof.{c}.auc" in run.metrics for c in table)


def test_byo_with_a_time_column_and_monotone_directions(env, tables):
    import mlflow

    from training.train import train_from_table

    r = train_from_table(
        tables / "loans.parquet",
        settings=get_settings(),
        target="default_flag",
        id_col="loan_id",
        time_col="application_date",
        monotone={"debt_ratio": 1, "income": -1},
        model_name="byo-loans-oot",
        seed=3,
    )
    # test rows: ids held out whole, from the split date on (the calibration rows' window)
    assert r["split"]["split"] == "merchant_disjoint" and r["split"]["test_from"] == r["split"]["valid_from"]
    assert r["split"]["valid_from"] > r["split"]["train_to"]
    model = mlflow.pyfunc.load_model(r["model_uri"])
    rows = pl.read_parquet(tables / "loans.parquet").head(40).to_pandas()
    pds = np.column_stack([model.predict(rows.assign(debt_ratio=v))["pd"] for v in np.linspace(0, 1.2, 13)])
    assert np.all(np.diff(pds, axis=1) >= 0)
    assert model.metadata.metadata["id_columns"] == ["loan_id"]


def test_cli_train_and_predict_on_a_table(env, tables, tmp_path):
    from lifecredit.cli import app

    runner = CliRunner()
    res = runner.invoke(
        app,
        [
            "train",
            "--table",
            str(tables / "loans.csv"),
            "--target",
            "default_flag",
            "--id",
            "loan_id",
            "--categorical",
            "branch",
            "--monotone",
            "debt_ratio=1",
            "--seed",
            "3",
        ],
    )
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert set(out) == {"run_id", "model_uri", "version", "metrics", "challenger_metrics"}
    assert out["model_uri"].startswith("models:/byo-loans/") and out["metrics"]["auc"] > 0.7

    scored = tmp_path / "scored.parquet"
    res = runner.invoke(
        app,
        [
            "predict",
            "--model",
            out["model_uri"],
            "--table",
            str(tables / "loans.csv"),
            "--out",
            str(scored),
            "--keep",
            "region",
        ],
    )
    assert res.exit_code == 0, res.stderr
    result = pd.read_parquet(scored)
    source = pd.read_csv(tables / "loans.csv")
    assert list(result.columns) == ["loan_id", "region", "pd", "score", "grade", "class"]
    assert result["loan_id"].tolist() == source["loan_id"].tolist()  # same rows, same order
    assert json.loads(res.stdout.strip().splitlines()[-1])["rows"] == len(source)

    res = runner.invoke(
        app,
        [
            "predict",
            "--model",
            out["model_uri"],
            "--table",
            str(tables / "loans.csv"),
            "--out",
            str(tmp_path / "x.csv"),
            "--reasons",
        ],
    )
    assert res.exit_code == 0 and "reason_1_code" in pd.read_csv(tmp_path / "x.csv").columns

    missing = tmp_path / "missing.csv"
    source.drop(columns=["debt_ratio", "default_flag"]).to_csv(missing, index=False)
    res = runner.invoke(
        app, ["predict", "--model", out["model_uri"], "--table", str(missing), "--out", str(tmp_path / "y.csv")]
    )
    assert res.exit_code == 2 and "debt_ratio" in res.stderr and not (tmp_path / "y.csv").exists()


def test_cli_train_rejects_half_given_options(env, tables):
    from lifecredit.cli import app

    res = CliRunner().invoke(app, ["train", "--table", str(tables / "loans.csv")])
    assert res.exit_code != 0 and "--target" in res.output + res.stderr
    res = CliRunner().invoke(app, ["train", "--target", "default_flag"])
    assert res.exit_code != 0


def test_byo_takes_column_names_lightgbm_refuses(env, tables, tmp_path):
    """Real tables carry names such as "" (a saved pandas index), "ratio [%]" or "a:b"; LightGBM
    refuses JSON characters in feature names, so the pipeline must not pass them through."""
    import mlflow

    from training.train import train_from_table

    odd = {"income": "income [CNY]", "debt_ratio": "debt:ratio", "age": "", "region": "region, coarse"}
    path = tmp_path / "odd.csv"
    credit_table(4_000, seed=2).rename(odd).write_csv(path)
    r = train_from_table(
        path, settings=get_settings(), target="default_flag", id_col="loan_id", model_name="byo-odd-names", seed=3
    )
    assert r["metrics"]["auc"] > 0.7
    rows = pl.read_csv(path).head(50).to_pandas()
    out = mlflow.pyfunc.load_model(r["model_uri"]).predict(rows[list(reversed(rows.columns))])
    assert out["pd"].between(0, 1).all() and len(out) == 50


def test_byo_target_other_than_0_1_names_the_recode(env, tmp_path):
    from training.train import train_from_table

    path = tmp_path / "german.csv"
    credit_table(1_000).with_columns((pl.col("default_flag") + 1).alias("class")).drop("default_flag").write_csv(path)
    with pytest.raises(ValueError, match=r"'class' must hold both 0 and 1.*found \['1', '2'\].*recode"):
        train_from_table(path, settings=get_settings(), target="class", id_col="loan_id", model_name="byo-german")


def test_byo_csv_reads_na_and_percent_text_as_numbers(tmp_path):
    """An R export writes missing values as NA, a loan book rates as "13.5%": both stay numeric
    features, not categoricals of thousands of text levels."""
    from training.data import load_table, read_frame

    frame = credit_table(2_000).with_columns(
        pl.col("income").cast(pl.String).fill_null("NA"),
        (pl.col("debt_ratio") * 100).round(1).cast(pl.String).add("%").alias("debt_ratio"),
    )
    path = tmp_path / "r_export.csv"
    frame.write_csv(path)
    kinds = {f.name: f.dtype for f in load_table(path, target="default_flag", id_col="loan_id").features}
    assert kinds["income"] == kinds["debt_ratio"] == "float" and kinds["region"] == "category"
    read = read_frame(path)
    assert read["income"].isna().sum() == frame["income"].eq("NA").sum() > 0
    assert np.allclose(read["debt_ratio"], credit_table(2_000)["debt_ratio"].to_numpy() * 100, atol=0.051)
