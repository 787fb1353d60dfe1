"""Experiment tracking of a run: TensorBoard event files in every work folder
(``tensorboard.py``), MLflow when a spec or the deployment asks for it (``mlflow_log.py``), fed
by ``Tracking`` (``tracking.py``) from the run's progress events."""
