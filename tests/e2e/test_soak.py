"""A 30-second soak (benchmarks/soak.py) against a real ``lifecredit serve``: no 5xx, no lost decision."""

from __future__ import annotations

import pytest

from benchmarks.soak import failures, print_report, soak

pytestmark = pytest.mark.slow  # the fast path (-m "not slow") skips it; the full suite runs it


def test_thirty_second_soak_loses_no_decision(served_champion, tmp_path):
    report = soak(served_champion["env"], tmp_path, seconds=30, concurrency=32)
    print_report(report)
    assert report["decide_ok"] > 0 and report["latency_ms"]["/score_batch"]["n"] > 0
    assert failures(report) == []
    assert report["errors"] == {}, report["error_bodies"]
