#!/usr/bin/env bash
# Set up everything the project needs from a fresh clone: uv (pinned, in .tools/) and the
# locked virtual environment in .venv/ (uv.lock, exact). Safe to run again: it only syncs.
set -euo pipefail
cd "$(dirname "$0")/.."

UV_VERSION=0.13.9
if [ ! -x .tools/bin/uv ] || [ "$(.tools/bin/uv --version | cut -d' ' -f2)" != "$UV_VERSION" ]; then
  echo "setup: installing uv $UV_VERSION into .tools/" >&2
  python3 -m venv .tools
  .tools/bin/python -m pip install --quiet "uv==$UV_VERSION"
fi
export UV_PYTHON_DOWNLOADS=never
# --compile-bytecode: where PYTHONDONTWRITEBYTECODE is set, every process would otherwise
# recompile MLflow, scikit-learn and friends on import (seconds per CLI call).
.tools/bin/uv sync --frozen --quiet --compile-bytecode
echo "setup: .venv ready ($(.venv/bin/python --version))" >&2
