"""Package the champion as a Bento: the model store entry plus the service code, served without MLflow.

``build_bento`` copies the champion's serving bundle (booster, calibrator, master scale,
catalogue), its model card and the decision policy into the BentoML model store
(``bentoml.models.create``), then builds a Bento of the ``lifecredit`` service that packs
that model. A service loaded from a Bento finds the packed model (``LifeCredit.bento``) and
loads it from the model store instead of the registry. The feature snapshot, API keys and
audit log stay outside the Bento: they are the bank's runtime data, located by the usual
``LIFECREDIT_*`` settings (give absolute paths: a Bento runs from its own folder).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

from core.settings import Settings
from serving.policy import DEFAULT_POLICY
from training.model_source import from_mlflow, import_to_bentoml

ROOT = Path(__file__).resolve().parent.parent
INCLUDE = [
    "core/*.py",
    "data_contracts/*.py",
    "data_contracts/contracts/*.yaml",
    "features/*.py",
    "features/*.yaml",
    "training/*.py",
    "training/*.yaml",
    "answers/*.py",
    "regulator/*.py",
    "regulator/*.yaml",
    "merchant/*.py",
    "serving/*.py",
    "serving/*.yaml",
    "serving/regulator/*.py",
    "serving/regulator/static/*",
    "serving/merchant/*.py",
    "serving/merchant/static/*",
    "lifecredit/*.py",
    "lifecredit/cli/*.py",
    "pyproject.toml",
]
"""Every package the service imports (a Bento runs from its own copy of the source), never the simulator."""
RUNTIME_PACKAGES = [
    "bentoml",
    "fastapi",
    "lightgbm",
    "numpy",
    "pandas",
    "polars",
    "pyarrow",
    "pyyaml",
    "pydantic",
    "pydantic-settings",
    "typer",
    "rich",
    "mlflow",
]


def _uv_on_path() -> None:
    """BentoML's build asks for ``uv`` (even when it locks nothing): use the project's pinned one."""
    import os
    import shutil

    if shutil.which("uv"):
        return
    for folder in (ROOT / ".tools" / "bin", Path(sys.executable).parent):
        if (folder / "uv").exists():
            os.environ["PATH"] = f"{folder}{os.pathsep}{os.environ.get('PATH', '')}"
            return
    raise RuntimeError("building a Bento needs `uv` on PATH; scripts/setup.sh installs it in .tools/bin")


def build_bento(
    settings: Settings, *, model_name: str | None = None, progress: Callable[[str], None] | None = None
) -> dict:
    """Import the champion into the model store and build the Bento; returns the tags and path."""
    import bentoml

    say = progress or (lambda _msg: None)
    handle = from_mlflow(settings, model_name)
    policy = Path(settings.policy_file or DEFAULT_POLICY)
    say(
        f"importing {handle.name} version {handle.version} (run {handle.run_id}) and policy {policy.name} "
        "into the BentoML model store"
    )
    tag = import_to_bentoml(handle, policy)
    say(f"building the Bento around model {tag}")
    _uv_on_path()
    bento = bentoml.bentos.build(
        "serving.service:LifeCredit",
        name="lifecredit",
        description=(ROOT / "docs" / "api.md").read_text(encoding="utf-8")
        if (ROOT / "docs" / "api.md").exists()
        else None,
        labels={"model": handle.name, "model_version": handle.version, "run_id": handle.run_id},
        include=INCLUDE,
        exclude=["**/__pycache__"],
        models=[tag],
        python={"packages": [f"{p}=={version(p)}" for p in RUNTIME_PACKAGES], "lock_packages": False},
        build_ctx=str(ROOT),
    )
    return {"bento": str(bento.tag), "model": tag, "model_version": handle.version, "path": str(bento.path)}
