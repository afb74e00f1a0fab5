"""The bottom layer: settings and the vocabulary every stage shares; it imports no stage.

* :mod:`core.settings`: the one typed settings object (``LIFECREDIT_*`` variables);
* :mod:`core.vocabulary`: risk classes, decisions, PSI bands;
* :mod:`core.files`: atomic writes and file hashing;
* :mod:`core.progress`: the ``(done, total)`` progress callback stages accept;
* :mod:`core.audit`: the append-only audit log (SQLite or PostgreSQL) that serving writes and
  replay and the regulator read.
"""
