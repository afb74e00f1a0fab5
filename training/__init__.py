"""lifecredit training: from the feature panel (or any table) to a registered, calibrated PD model.

Modules, in the order a training run uses them:

- ``data``: the training table, the catalogue's features and the train / validation / test split;
- ``lgbm``: the monotone LightGBM booster (optionally tuned with Optuna);
- ``candidates``, ``select``: the candidate models of a bring-your-own table and the choice among them;
- ``calibration``: margin -> PD (Platt or isotonic, chosen on validation);
- ``master_scale`` (+ ``master_scale.yaml``): PD -> score -> grade -> class A/B/C/D;
- ``scorecard``: the WoE logistic challenger and its points table;
- ``evaluate``: validation evidence shared by every model (and the regulator views);
- ``bundle``: the serving bundle (scoring without MLflow), ``result``: its one scoring result
  (``Scores``: PD, score, grade, class, reasons), ``linear``: the scorecard and logistic kinds;
  ``pyfunc``: the MLflow model around it; ``model_source``: the champion from the registry or BentoML;
- ``tracking``: what a run logs to MLflow; ``registry``: MLflow store, registration, promotion gate and history;
- ``train``: ``train_from_features`` / ``train_from_table``, which the CLI calls.
"""
