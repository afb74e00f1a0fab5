"""``lifecredit truth-check`` end to end on the session's small simulated market.

Features built, a model trained into a fresh MLflow store, then the command run through the CLI:
its JSON, its last stdout line, the metrics and artefact it logs to the model's run, a labelled
``--as-of`` date (label AUCs present) and a run without ``evaluation/split_rows.parquet``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from core.settings import get_settings
from lifecredit.cli import app
from truth_check import SPLIT_ROWS_ARTIFACT

pytestmark = pytest.mark.slow


def _invoke(args: list[str]):
    res = CliRunner().invoke(app, ["truth-check", *args])
    return res, (json.loads(res.stdout.strip().splitlines()[-1]) if res.exit_code == 0 else None)


def test_truth_check_cli(validated_market, small_market, mlflow_store, tmp_path):
    from features import build_features
    from training.registry import client
    from training.train import train_from_features

    features = tmp_path / "features"
    build_features(validated_market, features)
    truth = small_market / "truth.parquet"
    with mlflow_store.use(mlflow_store.new(tmp_path / "mlruns")):
        trained = train_from_features(features, settings=get_settings(), seed=7)
        c = client(get_settings())
        folder, name = SPLIT_ROWS_ARTIFACT.rsplit("/", 1)  # training logs which rows it fitted on
        assert name in {Path(a.path).name for a in c.list_artifacts(trained["run_id"], folder)}
        out = tmp_path / "out"
        res, summary = _invoke(
            ["--model", trained["model_uri"], "--features", str(features), "--truth", str(truth), "--out", str(out)]
        )
        assert res.exit_code == 0, res.output
        report = json.loads((out / "truth_check.json").read_text(encoding="utf-8"))

        # the latest month in both truth and features, nothing the model was fitted on
        latest = str(pd.read_parquet(truth, columns=["as_of"])["as_of"].max())[:10]
        assert report["rows"]["as_of"] == [latest] and report["rows"]["fitted_rows_dropped"] == 0
        assert report["model"]["run_id"] == trained["run_id"] and report["model"]["kind"] == "lightgbm"
        for name in ("all", "unseen"):
            sec = report[name]
            assert {
                "rows",
                "merchants",
                "spearman",
                "kappa",
                "confusion",
                "class_share",
                "by_class",
                "by_grade",
                "calibration",
                "labels",
                "ceiling",
                "spearman_ratio",
                "kappa_ratio",
            } <= set(sec)
            assert sum(map(sum, sec["confusion"]["matrix"])) == sec["rows"]
            assert {r["grade"] for r in sec["by_grade"]} == {str(g) for g in range(1, 10)}
        a, u = report["all"], report["unseen"]
        assert a["rows"] > 50 and 0 < u["rows"] < a["rows"]
        assert 0 < a["spearman"] <= 1 and 0 < a["ceiling"]["spearman"] <= 1
        assert -1 <= a["kappa"] <= 1 and a["ceiling"]["kappa"] is not None
        assert a["spearman_ratio"] == pytest.approx(a["spearman"] / a["ceiling"]["spearman"])
        assert a["calibration"]["slope"] is not None and a["labels"]["rows"] == 0 and "skipped" in a["labels"]
        assert report["ceiling"]["train_rows"] > 0 and report["ceiling"]["best_iteration"] > 0

        # the last stdout line: a compact summary of the same figures
        assert summary["spearman"] == a["spearman"] and summary["ceiling_kappa"] == a["ceiling"]["kappa"]
        assert summary["unseen"]["rows"] == u["rows"] and summary["logged"] is True

        # logged to the model's run (local store)
        run = c.get_run(trained["run_id"])
        for key in ("spearman", "kappa", "ceiling_spearman", "ceiling_kappa", "spearman_ratio", "kappa_ratio"):
            assert run.data.metrics[f"truth.{key}"] == pytest.approx(summary[key])
        assert any(k.startswith("truth.unseen.") for k in run.data.metrics)
        assert [f.path for f in c.list_artifacts(trained["run_id"], "truth_check")] == ["truth_check/truth_check.json"]

        # a labelled date of the test window: label AUCs computed; the alias resolves to the same run
        test_from = trained["split"]["test_from"]
        res, summary = _invoke(
            [
                "--model",
                "models:/lifecredit-merchant-pd@challenger",
                "--features",
                str(features),
                "--truth",
                str(truth),
                "--out",
                str(tmp_path / "out2"),
                "--as-of",
                test_from,
                "--no-log",
            ]
        )
        assert res.exit_code == 0, res.output
        labelled = json.loads((tmp_path / "out2" / "truth_check.json").read_text(encoding="utf-8"))
        assert labelled["model"]["run_id"] == trained["run_id"] and labelled["rows"]["as_of"] == [test_from]
        assert 0.5 < labelled["all"]["labels"]["auc_true_pd"] <= 1 and "auc_pd" in labelled["all"]["labels"]
        assert summary["logged"] is False

        # a run without the split rows: a clear refusal
        bare = c.create_run(c.get_run(trained["run_id"]).info.experiment_id).info.run_id
        c.set_terminated(bare)
        res, _ = _invoke(["--model", f"runs:/{bare}/model", "--features", str(features), "--truth", str(truth)])
        assert res.exit_code == 2
        assert "no evaluation/split_rows.parquet: retrain with this version" in " ".join(res.output.split())
