"""Words every layer shares: the credit-risk classes, loan decisions and PSI bands.

The master scale (``training/master_scale.yaml``) says which PDs fall in each class and what
each class means; this module only names them, so a view, a metric and a report agree on them.
"""

from __future__ import annotations

from typing import Literal

CLASSES: tuple[str, ...] = ("A", "B", "C", "D")
"""Credit-risk classes, from low (A) to high (D) credit risk."""
RiskClass = Literal["A", "B", "C", "D"]

DECISIONS: tuple[str, ...] = ("approve", "refer", "decline")
"""What a loan decision can be."""

PSI_BANDS = {"stable": 0.10, "shifted": 0.25}
"""Population stability index bands: below 0.10 stable, 0.10-0.25 shifted, 0.25 and above a significant change."""
PSI_LIMIT = PSI_BANDS["shifted"]
"""The PSI the promotion gate tolerates (a significant change refuses a model)."""
