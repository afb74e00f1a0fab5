"""Truth check: a model of a simulated market judged against the simulator's true PD.

What no credit-modelling library offers: on a simulated market the true 12-month PD of every
merchant-month is known (``truth.parquet``), so a model can be judged by how well it ranks,
classes and calibrates the *truth*, not only the noisy labels, and against a **feature
ceiling** (the best a learner does on the same features when it is fitted to the truth itself).

Only ``lifecredit truth-check`` reads the truth; training never does (features/, training/
and serving/ may not name it, see ``tests/unit/test_features_catalog.py``). This package may
import training (bundle, master scale, registry), never the other way round.

* :mod:`truth_check.check` - the figures, computed on frames (testable without MLflow), and the
  feature ceiling;
* :mod:`truth_check.runner` - :func:`truth_check.runner.run`, which wires the model, features,
  truth and MLflow run together;
* :mod:`truth_check.tables` - the rich tables the command prints.
"""

from truth_check.check import SPLIT_ROWS_ARTIFACT, TruthCheckError
from truth_check.runner import run

__all__ = ["SPLIT_ROWS_ARTIFACT", "TruthCheckError", "run"]
