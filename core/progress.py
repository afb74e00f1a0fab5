"""The progress callback stages accept; the CLI turns it into a progress bar (``lifecredit.progress``)."""

from __future__ import annotations

from collections.abc import Callable

ProgressFn = Callable[[int, int], None]
"""Called by a stage with (done, total) units of work."""
