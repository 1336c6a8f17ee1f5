"""MLflow tracking: local sqlite store by default, one experiment per track."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

DEFAULT_TRACKING_URI = "sqlite:///mlflow/mlflow.db"
ARTIFACT_ROOT = Path("mlflow/artifacts")


def setup(tracking_uri: str | None, track: str) -> str:
    """Point MLflow at the store and return the experiment id for `track`."""
    import logging

    import mlflow

    # MLflow's own migration and emoji banners would bury the run's progress
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    os.environ.setdefault("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", "false")
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    experiment = mlflow.get_experiment_by_name(track)
    if experiment is None:
        location = (ARTIFACT_ROOT / track).resolve().as_uri() if uri == DEFAULT_TRACKING_URI else None
        experiment_id = mlflow.create_experiment(track, artifact_location=location)
    else:
        experiment_id = experiment.experiment_id
    mlflow.set_experiment(experiment_id=experiment_id)  # nested trial runs land in it too
    return experiment_id


def git_commit() -> str:
    try:
        root = Path(__file__).resolve().parent.parent
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True, text=True, timeout=5)
        return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "") if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def flatten(prefix: str, params: dict) -> dict:
    return {f"{prefix}{k}": v for k, v in params.items()}


def log_history(history: list[dict], prefix: str = "") -> None:
    import mlflow

    for row in history:
        step = int(row["epoch"])
        mlflow.log_metrics({f"{prefix}{k}": float(v) for k, v in row.items() if k != "epoch"}, step=step)


def run_tags(kind: str, track: str, config, head: str, fingerprint: str | None = None, feature_keys: dict | None = None, **extra) -> dict:
    """The tags every top-level run carries, so `challenge runs` and parameter look-ups can
    filter track runs, ensembles and study runs alike."""
    tags = {"challenge.kind": kind, "track": track, "head": head, "features": ",".join(config.features), "git_commit": git_commit(),
            "seed": config.seed, "shuffled_labels": config.shuffle_labels, **{f"feature_key.{k}": v for k, v in (feature_keys or {}).items()}}
    if fingerprint is not None:
        tags["data_fingerprint"] = fingerprint
    return tags | extra
