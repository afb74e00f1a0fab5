"""The bottom layer: atomic writes leave the old file or the new one, never half of one; one vocabulary."""

from __future__ import annotations

import stat

import pytest

from core.files import atomic_path, file_sha256, write_bytes_atomic, write_text_atomic
from core.vocabulary import CLASSES, PSI_BANDS, PSI_LIMIT


def test_a_failed_write_keeps_the_old_file_and_no_temporary(tmp_path):
    target = write_text_atomic(tmp_path / "a.json", "old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_atomic_writes_replace_create_folders_and_set_the_mode(tmp_path):
    target = write_text_atomic(tmp_path / "deep" / "keys.json", "secret", mode=0o600)
    assert target.read_text() == "secret"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    write_bytes_atomic(target, b"new")
    assert target.read_bytes() == b"new"
    assert file_sha256(target) == "11507a0e2f5e69d5dfa40a62a1bd7b6ee57e6bcd85c67c9b8431b36fff21c437"


def test_the_master_scale_and_the_gate_speak_the_vocabulary():
    from training.master_scale import MasterScale

    assert tuple(sorted(MasterScale.load().classes)) == CLASSES
    assert PSI_BANDS["stable"] < PSI_BANDS["shifted"] == PSI_LIMIT
