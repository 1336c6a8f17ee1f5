"""What persists between commands: the MLflow runs, the Optuna studies, the feature store, saved model state, atomic writes."""
