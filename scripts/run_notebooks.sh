#!/usr/bin/env bash
# Execute the notebooks headless, in order, sharing one work folder, and keep executed copies
# (with outputs and figures) for reading: bash scripts/run_notebooks.sh [OUT_DIR]
# OUT_DIR defaults to data/notebooks (git-ignored); the work folder (simulated market, MLflow store)
# is OUT_DIR/work unless NOTEBOOK_WORKDIR says otherwise. NOTEBOOK_* variables (market size, seed,
# ...; see each notebook's first cells) pass through. The notebooks in notebooks/ stay without outputs.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(realpath -m "${1:-data/notebooks}")
export NOTEBOOK_WORKDIR=$(realpath -m "${NOTEBOOK_WORKDIR:-$out/work}")
export OMP_WAIT_POLICY=PASSIVE
mkdir -p "$out"
for nb in notebooks/[0-9][0-9]-*.ipynb; do
  .venv/bin/python - "$nb" "$out" <<'PY'
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

source, out = Path(sys.argv[1]), Path(sys.argv[2])
nb = nbformat.read(source, as_version=4)
started = time.perf_counter()
NotebookClient(nb, kernel_name="python3", timeout=1800, resources={"metadata": {"path": str(out)}}).execute()
nbformat.write(nb, out / source.name)
print(f"{source.name}: {time.perf_counter() - started:.0f} s -> {out / source.name}", file=sys.stderr)
PY
done
echo "work folder: $NOTEBOOK_WORKDIR" >&2
