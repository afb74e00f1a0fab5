"""Every merchant's answer, computed once per (model version, feature snapshot, policy) and stored.

:mod:`answers.render` turns scored rows into the answers the API returns (the one rendering for
the store, live rows and replay); :mod:`answers.build` computes a snapshot's answers, locally
or on Dask, and writes them as an answer store; :mod:`answers.store` opens a store memory-mapped
and finds a merchant's answer and feature row in it. ``lifecredit score-all`` writes stores, the
server opens them, replay and the class history read their rows.
"""
