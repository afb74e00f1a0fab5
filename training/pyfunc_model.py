"""Models-from-code entry point: MLflow executes this file when it loads a lifecredit model.

Never imported by the package (it calls ``set_model``, which is its only job).
"""

from mlflow.models import set_model

from training.pyfunc import LifecreditModel

set_model(LifecreditModel())
