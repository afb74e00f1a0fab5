"""Parquet output: one file per table, appended block by block from a background thread.

Generation (NumPy, mostly in the main thread) overlaps with Parquet encoding (Arrow, GIL
released) on the second core. Small tables are buffered into row groups of at least
``MIN_ROW_GROUP`` rows; transactions go out one row group per block of merchants. Files are
written under a temporary name and renamed when the run completes, so a failed run never
leaves a truncated table behind under the real name.
"""

from __future__ import annotations

import queue
import threading
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

MIN_ROW_GROUP = 256_000
_OPTIONS = {
    "transactions": dict(
        use_dictionary=["merchant_id", "txn_type", "channel"], write_statistics=["txn_id", "merchant_id", "ts"]
    ),
}


class ParquetSink:
    """Collects Arrow tables per output table and writes them to ``out/<table>.parquet``."""

    def __init__(self, out: Path, schemas: dict[str, pa.Schema], max_pending: int = 8) -> None:
        self.out = out
        self.schemas = schemas
        self.rows = dict.fromkeys(schemas, 0)
        self._writers: dict[str, pq.ParquetWriter] = {}
        self._buffers: dict[str, list[pa.Table]] = {name: [] for name in schemas}
        self._queue: queue.Queue = queue.Queue(maxsize=max_pending)
        self._error: BaseException | None = None
        self.cpu_seconds = 0.0
        """CPU time the writer thread spent encoding and writing."""
        self._thread = threading.Thread(target=self._run, name="parquet-sink", daemon=True)
        self._thread.start()

    def _tmp(self, name: str) -> Path:
        return self.out / f".{name}.parquet.partial"

    def put(self, name: str, table: pa.Table) -> None:
        """Queue ``table`` for ``name`` (blocks while the writer is behind)."""
        if self._error is not None:
            raise RuntimeError("writing Parquet failed") from self._error
        self.rows[name] += table.num_rows
        self._queue.put((name, table))

    def _run(self) -> None:
        start = time.thread_time()
        try:
            self._consume()
        finally:
            self.cpu_seconds = time.thread_time() - start

    def _consume(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                break
            if self._error is not None:
                continue
            try:
                name, table = item
                buf = self._buffers[name]
                buf.append(table)
                if sum(t.num_rows for t in buf) >= MIN_ROW_GROUP:
                    self._flush(name)
            except BaseException as err:  # surfaced in the main thread by put/close
                self._error = err

    def _flush(self, name: str) -> None:
        buf = self._buffers[name]
        table = pa.concat_tables(buf) if len(buf) != 1 else buf[0]
        buf.clear()
        writer = self._writers.get(name)
        if writer is None:
            writer = self._writers[name] = pq.ParquetWriter(
                self._tmp(name), self.schemas[name], compression="lz4", **_OPTIONS.get(name, {})
            )
        if table.num_rows:
            writer.write_table(table, row_group_size=table.num_rows)

    def close(self) -> dict[str, int]:
        """Flush everything, rename the files into place and return rows written per table."""
        self._queue.put(None)
        self._thread.join()
        start = time.thread_time()
        if self._error is not None:
            self.abort()
            raise RuntimeError("writing Parquet failed") from self._error
        for name in self.schemas:
            if self._buffers[name] or name not in self._writers:
                self._buffers[name].append(self.schemas[name].empty_table())
                self._flush(name)
            self._writers[name].close()
        for name in self.schemas:
            self._tmp(name).replace(self.out / f"{name}.parquet")
        self.cpu_seconds += time.thread_time() - start
        return dict(self.rows)

    def abort(self) -> None:
        """Stop the writer and remove partial files."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        for w in self._writers.values():
            try:
                w.close()
            except Exception:
                pass
        for name in self.schemas:
            self._tmp(name).unlink(missing_ok=True)
