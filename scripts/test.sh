#!/usr/bin/env bash
# Set up, check format, lint and layers, then run the whole test suite (unit, integration, e2e)
# on small simulated markets. Arguments go to pytest: `bash scripts/test.sh -m "not slow"` is the
# developers' fast path (skips the tests marked slow); with none, everything runs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/setup_browser.sh
bash scripts/audit_deps.sh  # pip-audit of uv.lock: prints its report, never fails offline

# Static checks (config in pyproject.toml: [tool.ruff*], [tool.importlinter]); all three run,
# then any failure stops the script before pytest.
failed=()
echo "== ruff format --check" && .venv/bin/ruff format --check . || failed+=("ruff format")
echo "== ruff check" && .venv/bin/ruff check . || failed+=("ruff check")
echo "== lint-imports (layers)" && .venv/bin/lint-imports --no-logo || failed+=("lint-imports")
if ((${#failed[@]})); then
    (IFS=,; echo "test.sh: failed: ${failed[*]}" >&2)
    echo "  fix format and lint: .venv/bin/ruff format . && .venv/bin/ruff check --fix . (then fix what remains by hand);" >&2
    echo "  lint-imports: move the import named above, or the code, to a layer it may use (pyproject.toml [tool.importlinter])." >&2
    exit 1
fi

export OMP_WAIT_POLICY=PASSIVE
exec .venv/bin/python -m pytest "$@"
