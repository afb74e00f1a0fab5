"""lifecredit training: from the feature panel (or any table) to a registered, calibrated PD model.

Modules, in the order a training run uses them:

- ``data``: the training table, the catalogue's features and the train / validation / test split;
- ``lgbm``: the monotone LightGBM booster (optionally tuned with Optuna);
- ``calibration``: margin -> PD (Platt or isotonic, chosen on validation);
- ``master_scale`` (+ ``master_scale.yaml``): PD -> score -> grade -> class A/B/C/D;
- ``scorecard``: the WoE logistic challenger and its points table;
- ``evaluate``: validation evidence shared by every model (and the regulator views);
- ``bundle``: the serving bundle (scoring without MLflow); ``pyfunc``: the MLflow model around it;
- ``registry``: MLflow store, registration, promotion gate and history;
- ``train``: ``train_from_features`` / ``train_from_table``, which the CLI calls.
"""
