"""`lifecredit train --engine dask`: the booster fitted with lightgbm.dask on a local cluster of 2
workers, the rest of the pipeline unchanged; test AUC within 0.005 of local training on the same data.

The data is the synthetic panel of test_train_synthetic (a known signal, monotone and categorical
features). The AUC check uses 4,000 merchants x 20 months, enough that two fits differing only in
their random draws (bagging rows, bin samples) agree on test AUC to about 0.002.
"""

from __future__ import annotations

import json
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before LightGBM loads: busy-waiting threads crawl on shared cores

import numpy as np
import pytest
from typer.testing import CliRunner

from test_train_synthetic import write_synthetic_panel

pytestmark = pytest.mark.slow  # the fast path (-m "not slow") skips it; the full suite runs it

MODEL = "dask-trained"


@pytest.fixture(scope="module")
def cluster():
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=1, dashboard_address=":0", env={"OMP_WAIT_POLICY": "PASSIVE"}
    ) as c:
        yield c


def test_dask_test_auc_within_0005_of_local(cluster, tmp_path):
    from sklearn.metrics import roc_auc_score

    from training import lgbm
    from training.bundle import encode
    from training.dask_fit import DaskFitter
    from training.data import load_panel

    data = load_panel(write_synthetic_panel(tmp_path, merchants=4000, months=20, seed=0), seed=7)
    s, y, X = data.split, data.y, encode(data.frame, data.features)
    args = (X, y, s.train, s.valid, s.fold, data.features)
    local = lgbm.crossfit(*args, seed=7)
    merchants = data.frame["merchant_id"].to_numpy()[s.train]
    dask = lgbm.crossfit(*args, seed=7, fitter=DaskFitter(cluster.scheduler_address, groups=merchants))
    auc = {
        name: roc_auc_score(y[s.test], r.booster.predict(X[s.test], raw_score=True))
        for name, r in (("local", local), ("dask", dask))
    }
    assert auc["local"] > 0.7
    assert abs(auc["dask"] - auc["local"]) <= 0.005, auc
    assert type(dask.booster) is type(local.booster)  # a plain lightgbm.Booster
    assert dask.booster.params["tree_learner"] == "data"
    assert dask.booster.params["monotone_constraints"] == local.params["monotone_constraints"]
    assert 0 < dask.best_iteration < lgbm.MAX_ROUNDS  # trees chosen by cross-fitting
    assert dask.booster.num_trees() == local.booster.num_trees() == local.best_iteration


def test_train_cli_on_dask_tunes_registers_and_scores(tmp_path, mlflow_store):
    import mlflow
    import pandas as pd

    from lifecredit.cli import app

    panel = write_synthetic_panel(tmp_path / "features")
    store = mlflow_store.new(tmp_path / "mlruns")
    with mlflow_store.use(store):
        res = CliRunner().invoke(
            app, ["train", "--features", str(panel), "--model-name", MODEL, "--engine", "dask", "--tune", "1"]
        )  # Optuna trials here, then the final fit on Dask
        assert res.exit_code == 0, res.output
        out = json.loads(res.stdout.strip().splitlines()[-1])
        run = mlflow.MlflowClient().get_run(out["run_id"])
        scored = mlflow.pyfunc.load_model(out["model_uri"]).predict(pd.read_parquet(panel / "latest.parquet"))
    assert out["model_uri"] == f"models:/{MODEL}/1" and out["metrics"]["auc"] > 0.6
    assert run.data.params["engine"] == "dask" and run.data.params["tune_trials"] == "1"
    assert np.all((scored["pd"] > 0) & (scored["pd"] < 1)) and set(scored["class"]) <= set("ABCD")


def test_scheduler_needs_the_dask_engine(tmp_path):
    from lifecredit.cli import app

    res = CliRunner().invoke(app, ["train", "--features", str(tmp_path), "--scheduler", "tcp://127.0.0.1:8786"])
    assert res.exit_code == 2 and "--engine dask" in res.output
