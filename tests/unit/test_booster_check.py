"""The child-process check of a new model file before the server loads it (serving.booster_check)."""

from __future__ import annotations

import stat

import pytest

from serving import booster_check


def _fake_python(tmp_path, script: str):
    exe = tmp_path / "python"
    exe.write_text(f"#!/bin/sh\n{script}\n")
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    return str(exe)


@pytest.mark.parametrize(
    ("script", "how"),
    [
        (r"printf 'Check failed \317\377 at line 9\n' >&2; exit 1", "exit 1: Check failed"),
        ("kill -SEGV $$", "killed by SIGSEGV"),
    ],
)
def test_a_model_file_the_child_cannot_load_is_reported_as_corrupt(tmp_path, monkeypatch, script, how):
    """Whatever the child prints - even bytes that are not UTF-8, quoted from a corrupt file - the
    verdict is "corrupt or truncated", never a decoding error of the check itself."""
    model = tmp_path / "model.txt"
    model.write_text("tree\n")
    monkeypatch.setattr(booster_check.sys, "executable", _fake_python(tmp_path, script))
    with pytest.raises(ValueError, match="corrupt or truncated") as err:
        booster_check.check_booster_file(model)
    assert how in str(err.value)
