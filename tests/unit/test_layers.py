"""The architecture holds: layers, where settings are read, and why a module is long.

* The import-linter contracts in ``pyproject.toml`` (``[tool.importlinter]``) pass on the tree,
  and they have teeth: a reverse import planted in a copy of the tree (also one inside a
  function) makes ``lint-imports`` fail and name it.
* Settings are read at the entry points only: no production module outside ``lifecredit/``
  (the CLI) and ``serving/service.py`` (the BentoML service) refers to ``get_settings``
  (calling it or handing it on, e.g. ``Depends(get_settings)``); everything else receives a
  ``Settings`` (or the values it needs) as an argument. ``core/settings.py`` defines it.
  Docstrings and comments do not count (the check walks the syntax tree).
* Convention for long modules: a production module over 400 lines (physical lines, as
  ``wc -l`` counts them) says why in its module docstring, in a sentence containing the words
  "over 400 lines" (e.g. "Over 400 lines: the six views share one suppression pass and are
  kept together so that ..."). A module that grows past 400 lines without one fails here.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = (
    "core",
    "data_contracts",
    "simulation",
    "features",
    "training",
    "truth_check",
    "regulator",
    "serving",
    "lifecredit",
)
SETTINGS_ENTRY_POINTS = ("lifecredit/", "serving/service.py", "core/settings.py")
LONG_MODULE_LINES = 400
LONG_MODULE_MARKER = re.compile(r"\bover 400 lines\b", re.IGNORECASE)

# lint-imports of this environment, whatever the venv layout; it analyses the packages found
# from its working directory (it puts the cwd first on sys.path), so a copy is linted as a copy.
LINT_IMPORTS = [
    sys.executable,
    "-c",
    "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())",
    "--no-logo",
]


def production_modules() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py") if "__pycache__" not in p.parts)


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def lint_imports(cwd: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200"}  # no wrapped contract names or import chains
    return subprocess.run([*LINT_IMPORTS, *extra], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_the_import_contracts_pass_on_the_tree():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.fixture(scope="module")
def tree_copy(tmp_path_factory) -> Path:
    """The production packages (.py files only) and pyproject.toml, copied as they are now."""
    copy = tmp_path_factory.mktemp("layers_tree")
    shutil.copy2(ROOT / "pyproject.toml", copy / "pyproject.toml")
    for path in production_modules():
        target = copy / rel(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    return copy


PLANTED = [
    # (module to edit, line to add, importer -> imported as lint-imports reports it, contract)
    ("core/vocabulary.py", "import lifecredit.cli", "core.vocabulary -> lifecredit.cli", "Layers"),
    (
        "features/catalog.py",
        "def _planted():\n    from serving import engine\n    return engine",
        "features.catalog -> serving.engine",
        "Layers",
    ),
    ("training/__init__.py", "import regulator", "training -> regulator", "Layers"),
    ("regulator/__init__.py", "import truth_check", "regulator -> truth_check", "Layers"),
    ("serving/__init__.py", "import simulation", "serving -> simulation", "Simulated-market tools"),
]


@pytest.mark.parametrize(("module", "line", "reported", "contract"), PLANTED, ids=[p[0] for p in PLANTED])
def test_a_planted_reverse_import_breaks_the_contract(tree_copy, module, line, reported, contract):
    path = tree_copy / module
    original = path.read_text(encoding="utf-8")
    try:
        path.write_text(f"{original}\n\n{line}  # planted by tests/unit/test_layers.py\n", encoding="utf-8")
        result = lint_imports(tree_copy, "--no-cache")
    finally:
        path.write_text(original, encoding="utf-8")
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert re.search(rf"^{re.escape(contract)}.*BROKEN", output, re.MULTILINE), output
    assert reported in output, output


def test_the_unplanted_copy_passes(tree_copy):
    """The copy itself is clean, so the failures above come from the planted lines alone."""
    result = lint_imports(tree_copy, "--no-cache")
    assert result.returncode == 0, result.stdout + result.stderr


def settings_uses(tree: ast.AST) -> list[int]:
    """Lines referring to ``get_settings`` in code: calls, ``module.get_settings``, passing it on."""
    lines = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Name) and node.id == "get_settings" and isinstance(node.ctx, ast.Load)) or (
            isinstance(node, ast.Attribute) and node.attr == "get_settings"
        ):
            lines.append(node.lineno)
    return sorted(set(lines))


def test_settings_are_read_at_the_entry_points_only():
    offenders = []
    for path in production_modules():
        name = rel(path)
        if name.startswith(SETTINGS_ENTRY_POINTS):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=name)
        offenders += [f"{name}:{line}" for line in settings_uses(tree)]
    assert not offenders, (
        "get_settings() outside the entry points (lifecredit/, serving/service.py); "
        "pass Settings or the values needed instead: " + ", ".join(offenders)
    )


def test_a_module_over_400_lines_says_why():
    unexplained = []
    for path in production_modules():
        text = path.read_text(encoding="utf-8")
        lines = len(text.splitlines())
        if lines <= LONG_MODULE_LINES:
            continue
        docstring = ast.get_docstring(ast.parse(text)) or ""
        if not LONG_MODULE_MARKER.search(docstring):
            unexplained.append(f"{rel(path)} ({lines} lines)")
    assert not unexplained, (
        'modules over 400 lines without a sentence containing "over 400 lines" in the module '
        "docstring that says why: " + ", ".join(unexplained)
    )


def test_test_module_names_are_unique_across_folders():
    """pytest imports test modules by basename (no packages under tests/): two of one name cannot both run."""
    from collections import Counter

    names = Counter(p.name for p in (ROOT / "tests").rglob("test_*.py"))
    assert not [n for n, c in names.items() if c > 1]
