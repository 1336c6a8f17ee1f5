"""`challenge serve`: the MLflow UI on the runs and optuna-dashboard on the studies, as two child
processes bound to 127.0.0.1 unless told otherwise (the stores hold every run's parameters:
expose them to a network on purpose, with --host). Ctrl-C stops both."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from challenge.errors import ChallengeError
from challenge.progress import say
from challenge.tracking import DEFAULT_TRACKING_URI
from challenge.tuning import DEFAULT_STORAGE


EXPOSED = ("[yellow]{host} is not a loopback address: everyone who can reach it sees every run and study.{auth} optuna-dashboard has no "
           "authentication of its own: keep it on 127.0.0.1 and reach it through `ssh -L {dashboard_port}:127.0.0.1:{dashboard_port} THIS-MACHINE`, "
           "or put a reverse proxy with authentication in front of it.[/]")
BASIC_AUTH_HINT = (" Add --basic-auth to put MLflow's basic-auth app in front of the MLflow UI (users and passwords in "
                   "basic_auth.db; log in as admin / password1234 and change that password at once).")


def commands(tracking_uri: str | None, storage: str | None, host: str, mlflow_port: int, dashboard_port: int,
             basic_auth: bool = False) -> dict[str, tuple[list[str], str]]:
    """name -> (command line, the URL it answers on). A tracking server (http://) already has
    its UI: only the dashboard is started then."""
    tracking_uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    storage = storage or DEFAULT_STORAGE
    bin_dir = Path(sys.executable).parent
    out = {"optuna-dashboard": ([str(bin_dir / "optuna-dashboard"), storage, "--host", host, "--port", str(dashboard_port), "--quiet"],
                                f"http://{host}:{dashboard_port}")}
    if not tracking_uri.startswith(("http://", "https://")):
        auth = ["--app-name", "basic-auth"] if basic_auth else []
        out["mlflow ui"] = ([str(bin_dir / "mlflow"), "ui", "--backend-store-uri", tracking_uri, "--host", host, "--port", str(mlflow_port), *auth],
                            f"http://{host}:{mlflow_port}")
    else:
        say(f"the runs are on the tracking server {tracking_uri}: open it there")
    return out


def _answers(url: str) -> bool:
    try:
        return urllib.request.urlopen(url, timeout=2).status == 200
    except urllib.error.HTTPError as error:
        return error.code == 401  # the basic-auth app answers, asking for a password
    except OSError:
        return False


def serve(tracking_uri: str | None, storage: str | None, host: str, mlflow_port: int, dashboard_port: int, wait_seconds: float = 120,
          basic_auth: bool = False) -> None:
    from challenge.loopback import is_loopback

    if not is_loopback(host):
        say(EXPOSED.format(host=host, dashboard_port=dashboard_port, auth="" if basic_auth else BASIC_AUTH_HINT))
    started = {}
    try:
        for name, (command, url) in commands(tracking_uri, storage, host, mlflow_port, dashboard_port, basic_auth).items():
            started[name] = (subprocess.Popen(command, start_new_session=True), url)
        deadline = time.time() + wait_seconds
        for name, (process, url) in started.items():
            while not _answers(url):
                if process.poll() is not None or time.time() > deadline:
                    raise ChallengeError(f"{name} did not start ({' '.join(process.args)}); is port {url.rsplit(':', 1)[1]} taken? "
                                         "Pass another with --mlflow-port / --dashboard-port.")
                time.sleep(0.5)
            say(f"{name}: {url}")
        say("Ctrl-C stops both")
        while all(process.poll() is None for process, _ in started.values()):
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        for process, _ in started.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)  # the server and its workers
                process.wait(30)
