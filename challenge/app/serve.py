"""`challenge serve`: the MLflow UI on the runs and optuna-dashboard on the studies, as two child
processes bound to 127.0.0.1 unless told otherwise (the stores hold every run's parameters:
expose them to a network on purpose, with --host: the MLflow UI then needs --basic-auth, the
dashboard its printed token). Both refuse a foreign Host and a state change from a foreign
Origin (DNS rebinding, cross-site requests). Ctrl-C stops both."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from challenge.app.dashboard import TOKEN_VARIABLE
from challenge.app.guard import is_loopback, new_token
from challenge.errors import ChallengeError
from challenge.progress import announce, say
from challenge.stores.schema_lock import sqlite_path
from challenge.stores.tracking import DEFAULT_TRACKING_URI
from challenge.stores.tuning import DEFAULT_STORAGE

EXPOSED = (
    "[yellow]{host} is not a loopback address: everyone who can reach it can try to open the runs and studies. The MLflow UI "
    "asks for a user and password (MLflow's basic-auth app); the dashboard for the token in its printed address.[/]"
)
NEEDS_AUTH = (
    "--host {host} exposes every run's parameters and files to the network, and the MLflow UI has no login of its own: "
    "add --basic-auth (MLflow's basic-auth app: users and passwords in basic_auth.db), or keep --host 127.0.0.1 and reach "
    "it through `ssh -L {mlflow_port}:127.0.0.1:{mlflow_port} THIS-MACHINE`."
)
ADMIN_PASSWORD = "MLFLOW_AUTH_ADMIN_PASSWORD"  # MLflow's basic-auth app creates its admin user with it on first start
SECRET_KEY = "MLFLOW_FLASK_SERVER_SECRET_KEY"
AUTH_DATABASE = Path("basic_auth.db")  # where MLflow's basic-auth app keeps its users (its default, in the working folder)


def commands(
    tracking_uri: str | None, storage: str | None, host: str, mlflow_port: int, dashboard_port: int, basic_auth: bool = False
) -> dict[str, tuple[list[str], str]]:
    """name -> (command line, the URL it answers on). A tracking server (http://) already has
    its UI: only the dashboard is started then. A sqlite study store that does not exist yet
    has no study to show: the dashboard is not started (a --tune run makes the store)."""
    tracking_uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    storage = storage or DEFAULT_STORAGE
    bin_dir = Path(sys.executable).parent
    out = {}
    if (database := sqlite_path(storage)) is not None and not database.is_file():
        say(f"no study yet ({database} does not exist; a `challenge track ... --tune` run makes it): the dashboard is not started")
    else:
        out["optuna-dashboard"] = (
            [sys.executable, "-m", "challenge.app.dashboard", storage, "--host", host, "--port", str(dashboard_port)],
            f"http://{host}:{dashboard_port}",
        )
    if not tracking_uri.startswith(("http://", "https://")):
        # MLflow refuses foreign Hosts and cross-origin state changes by itself (localhost pages
        # excepted); on loopback the Host must also name this port, not any private address
        own = {f"{name}:{mlflow_port}" for name in ("localhost", "127.0.0.1", host)}
        security = ["--allowed-hosts", ",".join(sorted(own))] if is_loopback(host) else []
        auth = ["--app-name", "basic-auth"] if basic_auth else []
        out["mlflow ui"] = (
            [
                str(bin_dir / "mlflow"),
                "ui",
                "--backend-store-uri",
                tracking_uri,
                "--host",
                host,
                "--port",
                str(mlflow_port),
                "--workers",
                "1",
                *security,
                *auth,
            ],
            f"http://{host}:{mlflow_port}",
        )
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


def check_serve_settings(tracking_uri: str | None, storage: str | None, host: str, mlflow_port: int, basic_auth: bool) -> None:
    """Before anything starts: the store URLs, and no UI without a login off loopback."""
    from challenge.stores.checks import SQL_SCHEMES, TRACKING_SCHEMES, check_url

    if storage:
        check_url(storage, SQL_SCHEMES, "--storage", "sqlite:///optuna/studies.db or postgresql+psycopg2://user@host/db")
    if tracking_uri:
        check_url(tracking_uri, TRACKING_SCHEMES, "--tracking-uri", "sqlite:///mlflow/mlflow.db or http://host:5000")
    remote_runs = (tracking_uri or "").startswith(("http://", "https://"))
    if not is_loopback(host) and not basic_auth and not remote_runs:
        raise ChallengeError(NEEDS_AUTH.format(host=host, mlflow_port=mlflow_port))
    if basic_auth:
        import importlib.util

        if importlib.util.find_spec("flask_wtf") is None:
            raise ChallengeError(
                "--basic-auth: MLflow's basic-auth app needs Flask-WTF, which is not installed: "
                "pip install 'mlflow[auth]' (the project's own install brings it)."
            )


def _auth_environment(basic_auth: bool) -> dict[str, str]:
    """MLflow ships no admin password: on the first start (no basic_auth.db yet) a random one is
    made and printed once, unless MLFLOW_AUTH_ADMIN_PASSWORD names one."""
    if not basic_auth:
        return {}
    # its CSRF protection needs a fixed key; one worker, so a key of this process's life will do
    out = {SECRET_KEY: os.environ.get(SECRET_KEY) or secrets.token_urlsafe(32)}
    if not AUTH_DATABASE.exists() and not os.environ.get(ADMIN_PASSWORD):
        out[ADMIN_PASSWORD] = secrets.token_urlsafe(12)
        announce(f"MLflow UI login: admin / {out[ADMIN_PASSWORD]} (made now, shown once; change it in the UI's account page)")
    return out


def serve(
    tracking_uri: str | None,
    storage: str | None,
    host: str,
    mlflow_port: int,
    dashboard_port: int,
    wait_seconds: float = 120,
    basic_auth: bool = False,
) -> None:
    check_serve_settings(tracking_uri, storage, host, mlflow_port, basic_auth)
    exposed = not is_loopback(host)
    if exposed:
        say(EXPOSED.format(host=host))
    token = new_token() if exposed else None
    environment = {**os.environ, **_auth_environment(basic_auth), **({TOKEN_VARIABLE: token} if token else {})}
    started = {}
    try:
        for name, (command, url) in commands(tracking_uri, storage, host, mlflow_port, dashboard_port, basic_auth).items():
            log = tempfile.TemporaryFile("w+")  # a pipe nobody reads would fill and stall the server
            process = subprocess.Popen(command, start_new_session=True, env=environment, stderr=log)
            process.log = log
            started[name] = (process, url)
        deadline = time.time() + wait_seconds
        for name, (process, url) in started.items():
            shown, probe = url, url
            if token and name == "optuna-dashboard":  # the address is the only way in: printed even with --quiet
                shown, probe = f"{url}/?token={token}", f"{url}/api/studies?token={token}"  # "/" redirects, without the token
            while not _answers(probe):
                if process.poll() is not None or time.time() > deadline:
                    raise ChallengeError(_did_not_start(name, process, url))
                time.sleep(0.5)
            (announce if shown != url else say)(f"{name}: {shown}")
        if not started:
            raise ChallengeError("nothing to serve: no study store and the runs are on a tracking server.")
        say("Ctrl-C stops " + ("both" if len(started) > 1 else "it"))
        while all(process.poll() is None for process, _ in started.values()):
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        for process, _ in started.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)  # the server and its workers
                process.wait(30)


def _did_not_start(name: str, process: subprocess.Popen, url: str) -> str:
    """The server's own last words when it exited; the port only when it still runs but never answered."""
    if process.poll() is None:
        process.kill()
        return (
            f"{name} did not answer on {url} within the wait; is port {url.rsplit(':', 1)[1]} taken by another program? "
            "Pass another with --mlflow-port / --dashboard-port."
        )
    process.log.seek(0)  # the temporary file its stderr went to
    last = [line for line in process.log.read().splitlines() if line.strip()][-3:]
    return (
        f"{name} stopped at start (exit {process.returncode}): "
        + (" | ".join(last) or "no message")
        + f" ({' '.join(process.args[:4])} ...)"
    )
