"""Writing a missing answer store from the server: in its own process at first load, in a child process on reload.

At first load nothing is being served, so the server scores the snapshot itself. During a reload
the old answers are being served: scoring a large snapshot in the serving process would hold
its interpreter for minutes and slow every request, so a child process (``python -m
answers.build``, at lower CPU priority) writes the store and reports its progress line by line.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
from collections import deque
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from answers.build import build_store
from answers.store import StoreError, StoreFor
from serving.scorer import StoreBuilder

logger = logging.getLogger("lifecredit.serving")
CHILD_NICENESS = 10
Progress = Callable[[float, str], None]


def in_process(root: Path, progress: Progress | None = None) -> StoreBuilder:
    """Build in this process with every core (nothing is served yet)."""

    def build(wanted: StoreFor, bundle_dir: Path, snapshot: Path) -> None:
        logger.warning(
            "no answer store %s under %s: computing it now (run `lifecredit score-all` beforehand to start in seconds)",
            wanted.store_id,
            root,
        )
        build_store(root, wanted, bundle_dir, snapshot, progress=progress)

    return build


def in_child(root: Path, progress: Progress | None = None) -> StoreBuilder:
    """Build in a child process at lower priority, following its progress; its error message is raised here."""
    say = progress or (lambda fraction, message: None)

    def build(wanted: StoreFor, bundle_dir: Path, snapshot: Path) -> None:
        job = {
            "root": str(root),
            "computed_for": asdict(wanted),
            "bundle_dir": str(bundle_dir),
            "snapshot": str(snapshot),
        }
        with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="answers-job-", delete=False) as fh:
            json.dump(job, fh)
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "answers.build", "--job", fh.name],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                preexec_fn=lambda: os.nice(CHILD_NICENESS),
                env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"},
            )
            problem, tail = None, deque(maxlen=20)
            for line in proc.stdout:
                try:
                    msg = json.loads(line)
                except ValueError:
                    tail.append(line.strip())
                    continue
                if "progress" in msg:
                    say(msg["progress"], msg["message"])
                problem = msg.get("error", problem)
            if proc.wait() != 0:
                raise StoreError(problem or f"answer store build exited with {proc.returncode}: {' | '.join(tail)}")
        finally:
            Path(fh.name).unlink(missing_ok=True)

    return build
