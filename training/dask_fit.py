"""The LightGBM booster fitted on a Dask cluster (``lifecredit train --engine dask``).

The final fit of :func:`training.lgbm.crossfit` (a fixed number of trees, chosen by the
cross-fitting that runs here): the same parameters (monotone constraints, native categoricals)
and a plain ``lightgbm.Booster`` back, so calibration, the master scale, evaluation and
registration run unchanged. Only the fit moves to ``lightgbm.dask.DaskLGBMClassifier``:

* the training rows are partitioned by a hash of the merchant (all rows of one merchant in one
  partition), one partition per worker, each scattered to its worker;
* data-parallel LightGBM sums the workers' histograms, so every worker grows the same trees.

Bin boundaries are found by the workers on their own rows and bagging samples per worker, so
the trees differ slightly from a local fit's (the test checks AUC within 0.005).
"""

from __future__ import annotations

import contextlib
import sys
import warnings

import numpy as np
import pandas as pd

NOT_PASSED = ("num_threads",)  # each Dask worker uses its own thread count


class DaskFitter:
    """``fitter(params, train, rounds) -> Booster`` on the cluster at ``scheduler`` (None: a local one).

    ``groups`` (one per training row, e.g. merchant ids) keep each group's rows in one partition.
    """

    def __init__(self, scheduler: str | None = None, groups: np.ndarray | None = None) -> None:
        self.scheduler = scheduler
        self.groups = groups

    def __call__(self, params: dict, train, rounds: int):
        from features.dask_engine import dask_client

        with dask_client(self.scheduler) as client:
            return fit_booster(client, params, train, rounds, groups=self.groups)


def partition_rows(groups: np.ndarray | None, n_rows: int, n: int) -> np.ndarray:
    """Partition (0..n-1) of each row: a hash of its group, or round robin without groups."""
    if groups is None:
        return np.arange(n_rows) % n
    return (pd.util.hash_array(np.asarray(groups, dtype=object)) % n).astype(np.int64)


def fit_booster(client, params: dict, train, rounds: int, *, groups: np.ndarray | None = None):
    """Fit ``rounds`` trees on the workers of ``client`` from a ``lightgbm.Dataset`` built with raw data kept."""
    import dask.array as da
    from lightgbm.dask import DaskLGBMClassifier

    X, y = np.asarray(train.data), np.asarray(train.label)
    workers = sorted(client.scheduler_info(n_workers=-1)["workers"])
    if not workers:
        raise RuntimeError("the Dask cluster has no workers: start some with `dask worker SCHEDULER_ADDRESS`")
    part = partition_rows(groups, len(y), len(workers))

    def chunk(a: np.ndarray, worker: str):
        return da.from_delayed(client.scatter(a, workers=[worker], direct=True), shape=a.shape, dtype=a.dtype)

    Xs, ys = [], []
    for k, worker in enumerate(workers):
        rows = np.flatnonzero(part == k)
        if len(rows) == 0:
            continue
        Xs.append(chunk(X[rows], worker))
        ys.append(chunk(y[rows], worker))
    model = DaskLGBMClassifier(
        client=client, n_estimators=rounds, **{k: v for k, v in params.items() if k not in NOT_PASSED}
    )
    with warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr):  # lightgbm.dask prints progress
        warnings.filterwarnings("ignore", message="Parameter n_jobs will be ignored")
        model.fit(
            da.concatenate(Xs),
            da.concatenate(ys),
            feature_name=list(train.feature_name),
            categorical_feature=list(train.categorical_feature),
        )
    return model.booster_
