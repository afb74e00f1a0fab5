"""The promotion gate on a realistic simulated market, never forced: the trained model passes it,
and a deliberately miscalibrated copy (every PD halved, same ranking) is refused by the Jeffreys
test per class - the gate sees calibration, not only discrimination (issue 13, item 8)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from core.settings import get_settings

pytestmark = pytest.mark.slow

MERCHANTS, MONTHS, VOLUME = 8000, 30, 0.03


@pytest.fixture(scope="module")
def realistic(tmp_path_factory, mlflow_store):
    """A realistic market (defaults, entrants, a year of history), its features, a store and a trained version."""
    from data_contracts import validate_dir
    from features import build_features
    from simulation import simulate_market
    from training.train import train_from_features

    root = tmp_path_factory.mktemp("gate_market")
    simulate_market(root / "raw", merchants=MERCHANTS, months=MONTHS, seed=7, volume_scale=VOLUME)
    validate_dir(root / "raw", root / "validated")
    build_features(root / "validated", root / "features")
    store = mlflow_store.new(root / "mlruns")
    with mlflow_store.use(store):
        trained = train_from_features(root / "features", settings=get_settings(), seed=7, model_name="gate-validity")
    return {"root": root, "store": store, "trained": trained}


def _halved(calibrator: dict) -> dict:
    """The same margin -> PD curve with every PD halved, as an isotonic curve with logit tails."""
    from training.bundle import apply_calibration

    x = np.linspace(-12.0, 6.0, 400)
    y = apply_calibration(calibrator, x) / 2.0
    slope = calibrator["a"] if calibrator["kind"] == "platt" else calibrator["tail_slope"]
    return {"kind": "isotonic", "x": x.tolist(), "y": y.tolist(), "tail_slope": slope}


def _register_halved(run_id: str, name: str, tmp: Path) -> str:
    """A new run with the trained run's evidence and a bundle whose PDs are halved; returns its version."""
    import mlflow

    from training import pyfunc, registry

    c = registry.client(get_settings())
    src = Path(mlflow.artifacts.download_artifacts(run_id=run_id, dst_path=str(tmp / "src")))
    bundle = src / "serving_bundle"
    cal = json.loads((bundle / "calibrator.json").read_text(encoding="utf-8"))
    (bundle / "calibrator.json").write_text(json.dumps(_halved(cal)), encoding="utf-8")
    meta = mlflow.models.get_model_info(f"runs:/{run_id}/model").metadata
    with mlflow.start_run(experiment_id=c.get_run(run_id).info.experiment_id) as run:
        mlflow.log_artifacts(str(src / "evaluation"), "evaluation")
        info = pyfunc.log_model("model", {"serving_bundle": str(bundle)}, meta)
    shutil.rmtree(tmp / "src")
    return registry.register(c, info.model_uri, name, run_id=run.info.run_id, tags={"test": "halved PDs"})


def test_gate_passes_unforced_then_refuses_halved_pds(realistic, mlflow_store, tmp_path):
    from training.registry import PromotionRefused, promote

    trained = realistic["trained"]
    with mlflow_store.use(realistic["store"]):
        record = promote(trained["version"], get_settings(), model_name="gate-validity")
        assert record["passed"] and not record["forced"], record["checks"]
        # the same model with every PD halved - ranking intact, calibration broken - as the first version
        # of its own name: no champion to compare with, so only the absolute checks can refuse it
        version = _register_halved(trained["run_id"], "gate-validity-halved", tmp_path)
        with pytest.raises(PromotionRefused) as refused:
            promote(version, get_settings(), model_name="gate-validity-halved")
    checks = {c["name"]: c for c in refused.value.record["checks"]}
    assert checks["score_psi_train_test"]["passed"] and "auc_vs_champion" not in checks
    assert refused.value.record["candidate_auc"] == pytest.approx(record["candidate_auc"], abs=1e-9)  # same ranking
    rejected = [n for n, c in checks.items() if n.startswith("jeffreys_class_") and not c["passed"]]
    assert rejected, "\n".join(c["detail"] for c in checks.values())
    assert not refused.value.record["promoted"]
