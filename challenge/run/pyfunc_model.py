"""The pyfunc wrapper of a run's model, logged as MLflow's "model from code": MLflow copies this
file into the run's model and runs it on `mlflow.pyfunc.load_model`, so the wrapper comes from
the installed project and its state (the `state` artifact) is read as data, never unpickled."""

import mlflow

from challenge.run.saved_model import ChallengeModel

mlflow.models.set_model(ChallengeModel())
