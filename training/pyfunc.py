"""The one MLflow model of a lifecredit PD model: a pyfunc around the serving bundle.

``mlflow.pyfunc.load_model("models:/lifecredit-merchant-pd@champion").predict(frame)`` returns,
for every row of ``frame`` and in the same order, ``pd``, ``score``, ``grade``, ``class`` and
``reason_{1..4}_{code,en,zh}`` (see :mod:`training.bundle` for their meaning, the input rules
and the TreeSHAP baseline).

The model is logged as *models from code* (MLflow 3's replacement for pickled Python models):
MLflow executes ``training/pyfunc_model.py`` at load time, which builds a
:class:`LifecreditModel`; its ``load_context`` reads the artefacts logged with it:

* ``serving_bundle`` - the LightGBM champion candidate. The directory is the same bundle that
  every run also logs at ``serving_bundle/`` (and the booster alone at ``model.txt``), so a
  server can skip the pyfunc layer and call :meth:`training.bundle.ScoringBundle.load`::

      serving_bundle/
        bundle.json         features (dtype, categories, direction, reason texts), id columns,
                            target, feature set, TreeSHAP baseline
        model.txt           LightGBM booster, native text
        calibrator.json     margin -> PD (Platt or isotonic)
        master_scale.yaml   PD -> score -> grade -> class
        catalog.yaml        the feature catalogue (feature-panel models only)

* ``scorecard`` - the challenger: ``scorecard.json`` (bins, WoE, coefficients, points) and
  ``master_scale.yaml``; same output columns without reasons.

Loading needs the ``lifecredit`` package importable (``training.bundle`` does the scoring), and
its third-party requirements are pinned in the model's ``requirements.txt``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel

from training.bundle import ScoringBundle, default_threads
from training.master_scale import MasterScale

MODEL_CODE = Path(__file__).with_name("pyfunc_model.py")
RUNTIME_MODULES = {"mlflow": "mlflow", "lightgbm": "lightgbm", "numpy": "numpy", "pandas": "pandas", "pyyaml": "yaml",
                   "pydantic": "pydantic", "polars": "polars", "scikit-learn": "sklearn"}  # package -> module
RUNTIME_PACKAGES = list(RUNTIME_MODULES)


def pip_requirements() -> list[str]:
    """Pinned third-party requirements (passing them skips MLflow's slow inference)."""
    return [f"{name}=={version(name)}" for name in RUNTIME_PACKAGES]


class LifecreditModel(PythonModel):
    """Scores a frame with the bundle (or scorecard) logged beside it."""

    def load_context(self, context) -> None:
        artifacts = context.artifacts
        if "serving_bundle" in artifacts:
            self._bundle = ScoringBundle.load(artifacts["serving_bundle"], num_threads=default_threads())
            self._scorecard = None
        elif "scorecard" in artifacts:
            d = Path(artifacts["scorecard"])
            self._scorecard = json.loads((d / "scorecard.json").read_text(encoding="utf-8"))
            self._scale = MasterScale.load(d / "master_scale.yaml")
            self._bundle = None
        else:
            raise ValueError(f"no serving_bundle or scorecard among the artefacts: {sorted(artifacts)}")

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        if self._bundle is not None:
            return self._bundle.predict(model_input)
        from training.scorecard import scorecard_predict

        return scorecard_predict(self._scorecard, model_input, self._scale)


def log_model(name: str, artifacts: dict[str, str], metadata: dict) -> "mlflow.models.model.ModelInfo":
    """Log one lifecredit pyfunc (models from code) in the active run.

    No signature: the bundle checks its inputs itself (missing columns named, extras ignored,
    nullable integers and booleans accepted), which MLflow's per-column schema enforcement
    would either reject or slow down. MLflow's notes about that and about the environment
    (no ``pip`` in a uv venv) are silenced for the call.
    """
    loggers = [logging.getLogger(n) for n in ("mlflow.pyfunc", "mlflow.utils.environment", "mlflow.utils.uv_utils")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with _known_packages():
            return mlflow.pyfunc.log_model(
                name=name,
                python_model=str(MODEL_CODE),
                artifacts=artifacts,
                pip_requirements=pip_requirements(),
                metadata=metadata,
            )
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


@contextmanager
def _known_packages() -> Iterator[None]:
    """Give MLflow's requirement check the modules of our pinned packages.

    ``log_model`` checks every requirement against the environment, and to do so first maps
    every module of every installed distribution to its package (0.2-1.2 s on this venv) unless
    that map exists. The check only looks up the packages it is given, so a map of those gives
    the same verdict; it is removed afterwards, so nothing else in the process sees it.
    """
    from mlflow.utils import requirements_utils as ru

    if getattr(ru, "_MODULES_TO_PACKAGES", False) is not None:  # built already (or MLflow changed)
        yield
        return
    ru._MODULES_TO_PACKAGES = {module: [package] for package, module in RUNTIME_MODULES.items()}
    try:
        yield
    finally:
        ru._MODULES_TO_PACKAGES = None
