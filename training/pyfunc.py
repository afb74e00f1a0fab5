"""The one MLflow model of a lifecredit PD model: a pyfunc around the serving bundle.

``mlflow.pyfunc.load_model("models:/lifecredit-merchant-pd@champion").predict(frame)`` returns,
for every row of ``frame`` and in the same order, ``pd``, ``score``, ``grade``, ``class`` and
``reason_{1..4}_{code,en,zh}``: the bundle's :class:`training.result.Scores` rendered as a
frame (see :mod:`training.result` for their meaning, :mod:`training.bundle` for the input rules
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

Both models carry a signature built from the feature list (:func:`model_signature`: every feature
an optional input, the id columns optional too) and an input example of a few typed rows
(:func:`input_example`), for the MLflow UI, ``mlflow models serve`` and whoever loads the model.
The signature describes; it does not police: the bundle checks its inputs itself (missing columns
named, extras ignored, nullable integers and booleans, category codes given as numbers), and
MLflow 3's per-column enforcement would refuse several of those: an int column with a null
(float64 NaN) is no ``long``, an int64 column no ``double``, and a pandas ``Int64`` column with
``pd.NA`` neither. So the signature is marked as one whose model validates its own input (the
flag MLflow sets for signatures taken from ``predict``'s type hints), which makes
``PyFuncModel.predict`` pass the frame through untouched; ``mlflow models serve`` then takes
``{"inputs": [{column: value, ...}, ...]}`` (the saved ``serving_input_example.json``), which
:meth:`LifecreditModel.predict` turns into a frame.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.pyfunc import PythonModel
from mlflow.types import ColSpec, DataType, Schema

from training.bundle import ModelInput, ScoringBundle, default_threads
from training.master_scale import MasterScale
from training.result import REASON_COLUMNS

MODEL_CODE = Path(__file__).with_name("pyfunc_model.py")
RUNTIME_MODULES = {
    "mlflow": "mlflow",
    "lightgbm": "lightgbm",
    "numpy": "numpy",
    "pandas": "pandas",
    "pyyaml": "yaml",
    "pydantic": "pydantic",
    "polars": "polars",
    "scikit-learn": "sklearn",
}  # package -> module
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
        if not isinstance(model_input, pd.DataFrame):  # records or columns, as the scoring server passes them
            model_input = pd.DataFrame(
                [model_input]
                if isinstance(model_input, dict) and all(np.isscalar(v) or v is None for v in model_input.values())
                else model_input
            )
        if self._bundle is not None:
            return self._bundle.score(model_input).to_frame(model_input.index)
        from training.scorecard import scorecard_predict

        return scorecard_predict(self._scorecard, model_input, self._scale)


_FEATURE_TYPES = {
    "float": DataType.double,
    "int": DataType.double,  # an int with a null arrives as float
    "bool": DataType.boolean,
    "category": DataType.string,
}


def model_signature(features: list[ModelInput], id_columns: dict[str, bool], *, reasons: bool) -> ModelSignature:
    """The signature of a lifecredit pyfunc, from the feature list alone (no data is scanned).

    ``id_columns`` maps each id column to whether it holds dates. Every input is optional: a
    missing feature column is the bundle's to name, and an id column is only carried (a column
    named "" is left out: MLflow takes an empty name for none). Outputs:
    ``pd``, ``score``, ``grade``, ``class`` and, with ``reasons``, the optional reason columns.
    The signature is marked as validated by the model itself (see the module docstring).
    """
    inputs = [
        ColSpec(DataType.datetime if is_date else DataType.string, name, required=False)
        for name, is_date in id_columns.items()
        if name
    ]
    inputs += [
        ColSpec(_FEATURE_TYPES.get(f.dtype, DataType.double), f.name, required=False) for f in features if f.name
    ]  # MLflow reads a column named "" as unnamed: left out
    outputs = [
        ColSpec(DataType.double, "pd"),
        ColSpec(DataType.long, "score"),
        ColSpec(DataType.string, "grade"),
        ColSpec(DataType.string, "class"),
    ]
    if reasons:
        outputs += [ColSpec(DataType.string, c, required=False) for c in REASON_COLUMNS]
    signature = ModelSignature(Schema(inputs), Schema(outputs))
    signature._is_signature_from_type_hint = True  # MLflow then leaves the input to the model
    return signature


def input_example(frame: pd.DataFrame, features: list[ModelInput], id_columns: list[str]) -> list[dict]:
    """Rows of ``frame`` (id columns and features) as records typed as :func:`model_signature` says:
    numbers as floats (null NaN), booleans and categories as ``True``/``False``/strings (null None),
    dates as datetimes."""
    out = {}
    features = [f for f in features if f.name]  # as in model_signature
    for c in filter(None, id_columns):
        values = frame[c]
        if pd.api.types.is_datetime64_any_dtype(values):
            out[c] = [None if pd.isna(v) else v.to_pydatetime() for v in values]
        else:
            out[c] = [None if pd.isna(v) else str(v) for v in values]
    for f in features:
        values = frame[f.name].astype(object)
        if f.dtype == "bool":
            out[f.name] = [None if pd.isna(v) else bool(v) for v in values]
        elif f.is_categorical:
            out[f.name] = [
                None if pd.isna(v) else (str(int(v)) if isinstance(v, float) and v % 1 == 0 else str(v)) for v in values
            ]
        else:
            out[f.name] = [float("nan") if pd.isna(v) else float(v) for v in values]
    return [dict(zip(out, row)) for row in zip(*out.values())]


def log_model(
    name: str,
    artifacts: dict[str, str],
    metadata: dict,
    *,
    signature: ModelSignature | None = None,
    example: list[dict] | None = None,
) -> mlflow.models.model.ModelInfo:
    """Log one lifecredit pyfunc (models from code) in the active run, with ``signature`` and
    input ``example`` (:func:`model_signature`, :func:`input_example`).

    MLflow's notes about the environment (no ``pip`` in a uv venv) are silenced for the call.
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
                signature=signature,
                input_example=example,
            )
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


@contextmanager
def _known_packages() -> Iterator[None]:
    """Give MLflow's requirement check the modules of our pinned packages.

    ``log_model`` checks every requirement against the environment, and to do so first maps
    every module of every installed distribution to its package (slow: it walks the whole
    environment) unless that map exists. The check only looks up the packages it is given, so a
    map of those gives the same verdict; it is removed afterwards, so nothing else in the process sees it.
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
