"""Refactors change no output: the same seed gives the same market, features, metrics and served answers.

The reference (``tests/golden/outputs_fingerprint.json``) was recorded with
``scripts/outputs_check.py --write`` before the architecture step; a change that is meant to alter
outputs records it again and says so in its commit.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from helpers import ROOT

pytestmark = pytest.mark.slow


def test_outputs_match_the_recorded_fingerprint(tmp_path):
    res = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "outputs_check.py"),
            "--compare",
            str(ROOT / "tests" / "golden" / "outputs_fingerprint.json"),
            "--work",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert '"outputs_unchanged": true' in res.stdout
