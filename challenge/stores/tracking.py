"""MLflow tracking: local sqlite store by default, one experiment per track."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

from challenge.stores.checks import check_store
from challenge.stores.schema_lock import DEFAULT_TRACKING_URI, schema_lock, sqlite_path


def connect(tracking_uri: str | None) -> str:
    """Point MLflow at the store (flag, $MLFLOW_TRACKING_URI, or the local default); returns the URI."""
    import logging

    import mlflow

    # MLflow's own migration and emoji banners would bury the run's progress
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    os.environ.setdefault("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", "false")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    check_store(uri, "--tracking-uri", DEFAULT_TRACKING_URI)  # a server that answers, a sound database; makes the default folder
    mlflow.set_tracking_uri(uri)
    return uri


def setup(tracking_uri: str | None, track: str) -> str:
    """Point MLflow at the store and return the experiment id for `track`."""
    import mlflow

    uri = connect(tracking_uri)
    with schema_lock(uri):  # the first use creates and migrates the tables: one process at a time
        experiment = mlflow.get_experiment_by_name(track)
        experiment_id = experiment.experiment_id if experiment is not None else _create_experiment(track, uri)
    mlflow.set_experiment(experiment_id=experiment_id)  # nested trial runs land in it too
    if uri not in _SWEPT:  # one search per command and store, however often a command sets up
        _SWEPT.add(uri)
        mark_dead_runs()
    return experiment_id


_SWEPT: set[str] = set()


def _create_experiment(track: str, uri: str) -> str:
    """A tracking server shared by workers: another worker may create the experiment first."""
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        return mlflow.create_experiment(track, artifact_location=_artifact_location(uri, track))
    except MlflowException as error:
        if error.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        return mlflow.get_experiment_by_name(track).experiment_id


def _artifact_location(uri: str, track: str) -> str | None:
    """A sqlite store keeps its artifacts beside the database (mlflow/artifacts/<track> for the
    default store); MLflow's own default would be ./mlruns in whatever folder the command ran
    from. A tracking server decides for itself (None)."""
    database = sqlite_path(uri)
    return None if database is None else (database.parent / "artifacts" / track).resolve().as_uri()


def _process_start(pid: int) -> str | None:
    """The kernel's start time of a process (clock ticks since boot), which tells a live process
    from a later one that reused its pid; None where /proc is absent or the process is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22; the name before ")" may hold spaces


def process_tags() -> dict:
    """Where a run lives: with these the next command can tell that its process was killed."""
    return {"process.host": socket.gethostname(), "process.pid": str(os.getpid()), "process.start": _process_start(os.getpid()) or ""}


def _alive(pid: int, start: str) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's live process
    now = _process_start(pid)
    return now is None or not start or now == start


def mark_dead_runs() -> list[str]:
    """Runs left RUNNING by a process of this host that no longer exists (SIGKILL, power cut)
    are marked KILLED, and so are their RUNNING nested runs; returns their ids. Runs of other
    hosts are left alone: their process cannot be checked from here."""
    import mlflow

    client = mlflow.MlflowClient()
    experiments = [e.experiment_id for e in client.search_experiments()]
    if not experiments:
        return []
    running = client.search_runs(experiments, filter_string="attributes.status = 'RUNNING'", max_results=5000)
    host = socket.gethostname()
    dead = {
        run.info.run_id
        for run in running
        if run.data.tags.get("process.host") == host
        and run.data.tags.get("process.pid", "").isdigit()
        and not _alive(int(run.data.tags["process.pid"]), run.data.tags.get("process.start", ""))
    }
    dead |= {run.info.run_id for run in running if run.data.tags.get("mlflow.parentRunId") in dead}
    for run_id in dead:
        client.set_tag(run_id, "process.fate", "killed: its process was gone when the next command started")
        client.set_terminated(run_id, status="KILLED")
    if dead:
        from challenge.progress import warn

        warn(f"marked {len(dead)} run(s) KILLED: their process on {host} is gone (see `challenge runs TRACK --all`)")
    return sorted(dead)


def git_commit() -> str:
    try:
        root = Path(__file__).resolve().parent.parent
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True, text=True, timeout=5
        )
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
    tags = {
        "challenge.kind": kind,
        "track": track,
        "head": head,
        "features": ",".join(config.features),
        "git_commit": git_commit(),
        "seed": config.seed,
        "shuffled_labels": config.shuffle_labels,
        **{f"feature_key.{k}": v for k, v in (feature_keys or {}).items()},
        **process_tags(),
    }
    if fingerprint is not None:
        tags["data_fingerprint"] = fingerprint
    return tags | extra
