"""Reload jobs: ``POST /admin/reload`` starts one and answers at once; ``GET /admin/reload/{id}`` follows it.

A job runs in a thread of the worker that took the request; its state is a small JSON file,
``<var_dir>/reload-jobs/<job id>.json``, rewritten atomically as it moves on, so whichever worker
the follow-up request reaches can answer it. One job runs at a time in a worker: asking again
while one runs returns that job.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from core.files import write_text_atomic

logger = logging.getLogger("lifecredit.serving")
JOB_ID = re.compile(r"RLD-\d{8}T\d{6}-[0-9a-f]{6}")
WRITE_EVERY_S = 0.5


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Job:
    """One reload's state, written to its file on every change of stage and at most every half second."""

    def __init__(self, folder: Path):
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        self.job_id = f"RLD-{stamp}-{secrets.token_hex(3)}"
        self.path = folder / f"{self.job_id}.json"
        self.state = {
            "job_id": self.job_id,
            "status": "running",
            "stage": "starting",
            "progress": 0.0,
            "started_at": _now(),
            "finished_at": None,
            "result": None,
            "error": None,
        }
        self._written = 0.0
        self._lock = threading.Lock()
        self._write()

    def update(self, progress: float | None = None, stage: str | None = None, *, force: bool = False) -> None:
        with self._lock:
            changed = stage is not None and stage != self.state["stage"]
            if stage is not None:
                self.state["stage"] = stage
            if progress is not None:
                self.state["progress"] = round(min(max(progress, 0.0), 1.0), 4)
            if force or changed or time.monotonic() - self._written >= WRITE_EVERY_S:
                self._write()

    def finish(self, result: dict | None = None, error: str | None = None) -> None:
        with self._lock:
            self.state.update(
                status="failed" if error else "succeeded",
                stage="failed" if error else "done",
                progress=self.state["progress"] if error else 1.0,
                finished_at=_now(),
                result=result,
                error=error,
            )
            self._write()

    def _write(self) -> None:
        try:
            write_text_atomic(self.path, json.dumps(self.state, ensure_ascii=False))
        except OSError as err:
            logger.warning("could not write reload job state %s: %s", self.path, err)
        self._written = time.monotonic()


class ReloadJobs:
    """Starts reloads in a background thread, one at a time, and reads any worker's job state back."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self._current: Job | None = None
        self._lock = threading.Lock()

    def start(self, run: Callable[[Job], dict]) -> tuple[dict, bool]:
        """Start ``run(job)`` in a thread (its return value is the job's result; an exception fails the job).
        Returns (the job's state, whether it was started now rather than already running)."""
        with self._lock:
            if self._current is not None and self._current.state["status"] == "running":
                return dict(self._current.state), False
            self.folder.mkdir(parents=True, exist_ok=True)
            job = self._current = Job(self.folder)

        def work() -> None:
            try:
                job.finish(result=run(job))
            except Exception as err:  # noqa: BLE001 - the job says why; the old answers keep serving
                logger.error("reload %s failed, still serving the previous answers: %s", job.job_id, err)
                job.finish(error=str(err))

        threading.Thread(target=work, name=f"lifecredit-{job.job_id}", daemon=True).start()
        return dict(job.state), True

    def get(self, job_id: str) -> dict | None:
        """A job's state as its file says (any worker's job), or None for an unknown id."""
        if not JOB_ID.fullmatch(job_id):
            return None
        try:
            return json.loads((self.folder / f"{job_id}.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
