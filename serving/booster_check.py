"""A LightGBM model file is loaded once in a child process before the server loads it: LightGBM's parser aborts
the whole process on a truncated or corrupt model text, and the serving worker must outlive a bad file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

_CHECKED_BOOSTERS: set[tuple[str, int, int]] = set()


def check_booster_file(path: Path) -> None:
    """Load a LightGBM model file once in a child process first; raise if it cannot be loaded.

    LightGBM's parser aborts the whole process (C++ terminate) on a truncated or corrupt
    model text, which would take the serving worker and its current model down with it; a
    child that dies instead costs one extra process start per new model file (each file is
    checked once; the verdict is kept beside it, so a restart does not pay again). Its message may quote the
    file's broken bytes: decoded with replacement, never an error of its own.
    """
    stat = path.stat()
    ident = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    verdict = path.with_name(f".{path.name}.loads")
    if ident in _CHECKED_BOOSTERS:
        return
    try:
        if verdict.read_text(encoding="utf-8") == f"{stat.st_size} {stat.st_mtime_ns}":
            _CHECKED_BOOSTERS.add(ident)
            return
    except OSError:
        pass
    res = subprocess.run(
        [sys.executable, "-c", "import sys, lightgbm; lightgbm.Booster(model_file=sys.argv[1])", str(path)],
        capture_output=True,
        text=True,
        errors="replace",
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    if res.returncode != 0:
        lines = [line.strip() for line in res.stderr.splitlines() if line.strip()]
        how = f"killed by {signal.Signals(-res.returncode).name}" if res.returncode < 0 else f"exit {res.returncode}"
        raise ValueError(
            f"model file {path} is corrupt or truncated: LightGBM cannot load it ({how}"
            f"{': ' + lines[-1][:300] if lines else ''})"
        )
    _CHECKED_BOOSTERS.add(ident)
    try:
        verdict.write_text(f"{stat.st_size} {stat.st_mtime_ns}", encoding="utf-8")
    except OSError:
        pass  # a read-only bundle (a Bento's) is checked again at the next start
