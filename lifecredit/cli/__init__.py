"""The ``lifecredit`` command line: one command per stage, wiring settings to stage functions.

Commands are grouped by module and registered in pipeline order: :mod:`~lifecredit.cli.data`
(simulate, validate, features), :mod:`~lifecredit.cli.model` (train, truth-check, promote),
:mod:`~lifecredit.cli.scores` (predict, score-all, report), :mod:`~lifecredit.cli.merchant`
(merchant-report), :mod:`~lifecredit.cli.service` (keys, serve, replay, bento, settings). Every command that cannot go on says
``<command> stopped: <why>`` and exits 2 (:func:`~lifecredit.cli.common.stop`).
"""

from lifecredit.cli import consumption, data, inspections, merchant, model, scores, service  # noqa: F401  (each registers its commands)
from lifecredit.cli.common import app

__all__ = ["app"]

if __name__ == "__main__":
    app()
