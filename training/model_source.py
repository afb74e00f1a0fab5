"""Where the serving model comes from: the MLflow registry (alias ``champion``) or the BentoML model store.

Either way the result is a :class:`ModelHandle`: a local ``serving_bundle/`` directory (see
:mod:`training.bundle`) plus the model card, cached under ``<var_dir>/models/<name>/<version>-<run>/``.
The cache is what makes replay work offline and for Bento-served decisions: a version's bundle
never changes once logged, so the cached copy is exact.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from core.settings import Settings, redacted

CHAMPION = "champion"
BUNDLE_ARTIFACT = "serving_bundle"
CARD_FILE = "card.json"
METRIC_KEYS = (
    "auc",
    "gini",
    "ks",
    "brier",
    "log_loss",
    "ece",
    "n",
    "defaults",
    "default_rate",
    "mean_pd",
    "classes_rejected",
    "psi_score_train_test",
)


# MLflow error codes for "no such model, version or alias" (anything else: the store itself fails)
NOT_FOUND = frozenset({"RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE"})


class ModelUnavailable(RuntimeError):
    """No servable model: the message says what is missing and which command produces it."""


@dataclass(frozen=True)
class ModelHandle:
    """A model version ready to load: its bundle directory and its card."""

    name: str
    version: str
    run_id: str
    bundle_dir: Path
    card: dict
    source: str


def cache_dir(settings: Settings, name: str, version: str, run_id: str) -> Path:
    return settings.var_dir / "models" / name / f"{version}-{run_id[:12]}"


def _card_from_run(client, name: str, version: str, run_id: str, source: str) -> dict:
    run = client.get_run(run_id)
    params, metrics = run.data.params, run.data.metrics
    windows: dict[str, dict] = {}
    for key, value in params.items():
        value = int(value) if value.isdigit() else value
        if key.startswith("window."):
            part, _, field = key.removeprefix("window.").partition("_")
            if part in ("train", "valid", "test") and field:
                windows.setdefault({"valid": "calibration"}.get(part, part), {})[field] = value
            else:
                windows.setdefault("split", {})[key.removeprefix("window.")] = value
    return {
        "name": name,
        "version": str(version),
        "alias": CHAMPION,
        "run_id": run_id,
        "source": source,
        "windows": windows,
        "test_metrics": {k: metrics[f"test.{k}"] for k in METRIC_KEYS if f"test.{k}" in metrics},
        "challenger_test_auc": metrics.get("challenger.test.auc"),
        "feature_set": {
            "name": params.get("feature_set.name"),
            "version": params.get("feature_set.version"),
            "n_features": int(params["n_features"]) if "n_features" in params else None,
        },
        "master_scale": params.get("master_scale", ""),
        "calibrator": params.get("calibrator"),
        "trained_at": run.info.start_time,
    }


def _download_bundle(run_id: str, target: Path) -> None:
    """Download the run's serving_bundle into ``target`` atomically (rename from a temporary folder)."""
    import mlflow

    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".download-") as tmp:
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        path = Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=BUNDLE_ARTIFACT, dst_path=tmp))
        if not (path / "bundle.json").exists():
            raise FileNotFoundError(f"{BUNDLE_ARTIFACT}/bundle.json")
        try:
            path.rename(target)
        except OSError:  # another worker got there first
            if not (target / "bundle.json").exists():
                raise


def _scrubbed(text: str, uri: str) -> str:
    """``text`` without the password of ``uri`` (error texts may quote the whole URL)."""
    password = urlsplit(uri).password
    return text.replace(password, "***") if password else text


def from_mlflow(settings: Settings, model_name: str | None = None, version: str | None = None) -> ModelHandle:
    """The champion (or ``version``) of ``model_name`` from the MLflow registry, bundle cached locally."""
    from mlflow.exceptions import MlflowException

    from training.registry import client

    name = model_name or settings.model_name
    try:
        c = client(settings)
        mv = c.get_model_version(name, version) if version else c.get_model_version_by_alias(name, CHAMPION)
    except Exception as err:
        if not isinstance(err, MlflowException) or err.error_code not in NOT_FOUND:
            cause = _scrubbed(str(err), settings.tracking_uri)[:300]
            raise ModelUnavailable(
                f"MLflow store at {redacted(settings.tracking_uri)} is unreachable or failing "
                f"({type(err).__name__}: {cause}); serving needs it to find model '{name}'"
            ) from err
        what = f"version {version}" if version else f"version with alias '{CHAMPION}'"
        raise ModelUnavailable(
            f"model '{name}' has no {what} in the registry at {redacted(settings.tracking_uri)}: train one with "
            f"`lifecredit train` and promote it with `lifecredit promote --version N`"
        ) from err
    run_id = mv.run_id
    target = cache_dir(settings, name, str(mv.version), run_id)
    bundle = target / BUNDLE_ARTIFACT
    if not (bundle / "bundle.json").exists():
        try:
            _download_bundle(run_id, bundle)
        except Exception as err:
            raise ModelUnavailable(
                f"model '{name}' version {mv.version} (run {run_id}) has no usable {BUNDLE_ARTIFACT}/ artefact "
                f"({err}); retrain with `lifecredit train` or promote another version"
            ) from err
    card_path = target / CARD_FILE
    if card_path.exists():
        card = json.loads(card_path.read_text(encoding="utf-8"))
    else:
        card = _card_from_run(c, name, str(mv.version), run_id, f"mlflow registry {redacted(settings.tracking_uri)}")
        card_path.write_text(json.dumps(card, indent=1, ensure_ascii=False), encoding="utf-8")
    return ModelHandle(name, str(mv.version), run_id, bundle, card, card["source"])


def from_cache(settings: Settings, name: str, version: str, run_id: str | None) -> ModelHandle | None:
    """A version already cached by a server (any source), or None."""
    root = settings.var_dir / "models" / name
    pattern = f"{version}-{run_id[:12]}" if run_id else f"{version}-*"
    for d in sorted(root.glob(pattern)):
        if (d / BUNDLE_ARTIFACT / "bundle.json").exists() and (d / CARD_FILE).exists():
            card = json.loads((d / CARD_FILE).read_text(encoding="utf-8"))
            return ModelHandle(name, version, card["run_id"], d / BUNDLE_ARTIFACT, card, card["source"])
    return None


# -- the BentoML model store ------------------------------------------------------------------
BENTO_POLICY = "policy.yaml"


def import_to_bentoml(handle: ModelHandle, policy_path: Path) -> str:
    """Copy the bundle, card and decision policy into the BentoML model store; returns the tag."""
    import bentoml

    version = f"v{handle.version}-{handle.run_id[:12]}"
    tag = f"{handle.name}:{version}"
    try:
        return str(bentoml.models.get(tag).tag)
    except bentoml.exceptions.NotFound:
        pass
    labels = {"mlflow_version": handle.version, "feature_set": str(handle.card["feature_set"].get("name"))}
    metadata = {"mlflow_model": handle.name, "mlflow_version": handle.version, "run_id": handle.run_id}
    with bentoml.models.create(tag, labels=labels, metadata=metadata) as model:
        shutil.copytree(handle.bundle_dir, Path(model.path) / BUNDLE_ARTIFACT)
        (Path(model.path) / CARD_FILE).write_text(
            json.dumps(handle.card, indent=1, ensure_ascii=False), encoding="utf-8"
        )
        shutil.copy(policy_path, Path(model.path) / BENTO_POLICY)
    return tag


def from_bentoml(settings: Settings, tag: str) -> tuple[ModelHandle, Path]:
    """The model packed in a Bento (no MLflow): its handle (bundle also cached for replay) and policy file."""
    import bentoml

    try:
        model = bentoml.models.get(tag)
    except bentoml.exceptions.NotFound as err:
        raise ModelUnavailable(
            f"BentoML model {tag} is not in the model store; rebuild with `lifecredit bento build`"
        ) from err
    root = Path(model.path)
    card = json.loads((root / CARD_FILE).read_text(encoding="utf-8"))
    card["source"] = f"bentoml model store {model.tag}"
    target = cache_dir(settings, card["name"], card["version"], card["run_id"])
    if not (target / BUNDLE_ARTIFACT / "bundle.json").exists():
        target.mkdir(parents=True, exist_ok=True)
        shutil.copytree(root / BUNDLE_ARTIFACT, target / BUNDLE_ARTIFACT, dirs_exist_ok=True)
        (target / CARD_FILE).write_text(json.dumps(card, indent=1, ensure_ascii=False), encoding="utf-8")
    handle = ModelHandle(card["name"], card["version"], card["run_id"], root / BUNDLE_ARTIFACT, card, card["source"])
    return handle, root / BENTO_POLICY
