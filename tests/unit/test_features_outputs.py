"""Feature outputs are swapped in whole: a write that dies leaves the previous file as it was."""

from __future__ import annotations

import polars as pl
import pytest

from core.files import atomic_path


def test_a_failed_write_keeps_the_previous_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "latest.parquet"
    pl.DataFrame({"merchant_id": ["M1", "M2"]}).write_parquet(target)

    def dies_half_way(tmp):
        tmp.write_bytes(b"PAR1 half a file")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"), atomic_path(target) as tmp:
        dies_half_way(tmp)
    assert pl.read_parquet(target)["merchant_id"].to_list() == ["M1", "M2"]
    assert [p.name for p in tmp_path.iterdir()] == ["latest.parquet"]

    with atomic_path(target) as tmp:
        pl.DataFrame({"merchant_id": ["M3"]}).write_parquet(tmp)
    assert pl.read_parquet(target)["merchant_id"].to_list() == ["M3"]
