"""`challenge warm`: a background process that has already imported the heavy libraries (torch,
MLflow and its SQL store, Optuna, pandas, scikit-learn) and forks one child per command, so a
command starts without paying for those imports (about 4 of the 6 s before a warm-cache EMI run
reaches its first trial on a 2-core machine).

How a command travels: `challenge ...` (cli.main) finds the warm process's socket, sends its
argv, working directory and environment with its own stdin, stdout and stderr (SCM_RIGHTS), and
waits. The warm process forks; the child takes over those three descriptors, the directory and
the environment, and runs the command as `challenge` would; the warm process reports the
child's exit status back. Ctrl-C and SIGTERM on the command are passed to the child; a command
whose caller disappears is stopped.

Why a fork and not a thread: the imports cost CPU under the GIL, and only a fork shares their
result with no cost. After the imports the process holds a few idle native threads (pyarrow's
jemalloc, OpenBLAS), whose libraries register fork handlers; it never runs a torch operation
before forking, so no OpenMP pool is copied half-made (the same rule torch's DataLoader workers
follow). The warm process imports only libraries, never `challenge`'s own modules
beyond this one, so every command runs the code on disk now. Libraries read some environment
variables once, at import (thread counts, MLflow and Optuna settings, Python paths); a command
whose environment differs from the warm process's in one of them runs cold, and says why.

The socket lives in a folder only this user can enter, one per virtual environment. The
process ends after `--idle` minutes without a command, on `challenge warm --stop`, or on
SIGTERM. `CHALLENGE_WARM=0` makes a command run cold whatever is running.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import selectors
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

# the libraries whose import the warm process pays once (each is imported if installed)
PRELOAD = ("torch", "mlflow", "mlflow.store.tracking.sqlalchemy_store", "optuna", "optuna.storages", "pandas",
           "sklearn.linear_model", "sklearn.metrics", "scipy.ndimage", "lightgbm")
# environment variables that the preloaded libraries read at import: a command must agree on them
IMPORT_TIME_PREFIXES = ("OMP_", "MKL_", "OPENBLAS_", "TORCH", "PYTORCH", "CUDA", "MLFLOW_", "OPTUNA", "PYTHON", "LD_", "KMP_")
HEADER = struct.Struct("!Q")  # the length of the JSON request that follows the descriptors
SERVED = "CHALLENGE_WARM_SERVED"  # set in a served command's environment: it, and what it starts, run there and then


def folder() -> Path:
    """The sockets' folder (CHALLENGE_WARM_DIR, else the user's runtime or cache folder)."""
    base = os.environ.get("CHALLENGE_WARM_DIR") or os.environ.get("XDG_RUNTIME_DIR") or Path.home() / ".cache"
    return Path(base) / "challenge-warm"


def socket_path() -> Path:
    """One warm process per virtual environment (its interpreter's prefix)."""
    return folder() / f"{hashlib.sha256(sys.prefix.encode()).hexdigest()[:12]}.sock"


def log_path() -> Path:
    return socket_path().with_suffix(".log")


def import_time_environment(environment) -> dict[str, str]:
    return {k: v for k, v in environment.items() if k.startswith(IMPORT_TIME_PREFIXES)}


# ---- the client side: run by `challenge` before anything heavy is imported ----

def forward(argv: list[str], entry: str) -> int | None:
    """Run the command (`entry`, "module:function", with `argv`) in the warm process and return
    its exit code; None when there is no warm process to use (then the caller runs it itself)."""
    path = socket_path()
    if SERVED in os.environ or os.environ.get("CHALLENGE_WARM") == "0" or argv[:1] == ["warm"] or not path.exists():
        return None
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        connection.connect(str(path))
    except OSError:  # left behind by a process that was killed: remove it and run cold
        path.unlink(missing_ok=True)
        connection.close()
        return None
    request = json.dumps({"entry": entry, "argv": [sys.argv[0], *argv], "cwd": os.getcwd(), "env": dict(os.environ)}).encode()
    socket.send_fds(connection, [HEADER.pack(len(request))], [0, 1, 2])
    connection.sendall(request)
    reader = connection.makefile("r")
    first = reader.readline().split()
    if first[:1] != ["pid"]:  # nothing was started: the environments disagree, or the warm process is going away
        if first[:1] == ["cold"]:
            print(f"challenge warm: {' '.join(first[1:])} differs from the warm process's environment; running cold "
                  "(start `challenge warm` again in this environment to serve it).", file=sys.stderr)
        connection.close()
        return None
    child = int(first[1])

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, lambda signum, _frame: _signal(child, signum))
    status = reader.readline().split()
    connection.close()
    return int(status[1]) if status[:1] == ["exit"] else 1


# ---- the warm process ----

def start(idle_minutes: float) -> tuple[int, Path]:
    """Start the warm process in the background (its own session, output to its log) and wait
    until it answers; returns (pid, socket). An answering one is reused."""
    if not hasattr(os, "fork") or not hasattr(socket, "send_fds"):
        from challenge.errors import ChallengeError

        raise ChallengeError("challenge warm needs fork and descriptor passing (Linux, macOS); on this system commands run cold.")
    path = socket_path()
    if running():
        return int(path.with_suffix(".pid").read_text()), path
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path.parent, 0o700)
    path.unlink(missing_ok=True)
    with open(log_path(), "ab") as log:
        # `-c`, not `-m challenge.warm`: the module must be challenge.warm itself, not a second copy named __main__
        process = subprocess.Popen([sys.executable, "-c", f"from challenge.warm import serve; serve({float(idle_minutes)!r})"],
                                   stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    deadline = time.monotonic() + 120
    while not running():
        if process.poll() is not None or time.monotonic() > deadline:
            from challenge.errors import ChallengeError

            raise ChallengeError(f"the warm process did not start; its log is {log_path()}.")
        time.sleep(0.1)
    return process.pid, path


def running() -> bool:
    path = socket_path()
    if not path.exists():
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
            probe.sendall(HEADER.pack(0))  # an empty request: "are you there", answered by closing
            return True
        except OSError:
            return False


def stop() -> bool:
    """SIGTERM to the warm process; True when one was running."""
    pid_file = socket_path().with_suffix(".pid")
    if not running() or not pid_file.exists():
        return False
    os.kill(int(pid_file.read_text()), signal.SIGTERM)
    deadline = time.monotonic() + 10
    while socket_path().exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return True


def serve(idle_minutes: float) -> None:
    """Import the libraries, listen, and fork a child per command until idle for `idle_minutes`."""
    import importlib
    import importlib.util

    began = time.perf_counter()
    own_environment = import_time_environment(os.environ)  # before the imports, which set some (KMP_* by torch)
    for name in PRELOAD:
        if importlib.util.find_spec(name.split(".")[0]) is not None:
            importlib.import_module(name)
    path = socket_path()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    os.chmod(path, 0o600)
    path.with_suffix(".pid").write_text(str(os.getpid()))  # before listening: whoever can connect can also read it
    listener.listen(16)
    _log(f"ready in {time.perf_counter() - began:.1f} s: pid {os.getpid()}, socket {path}, idle limit {idle_minutes} min")
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    children: dict[int, socket.socket] = {}  # child pid -> its caller's connection (watched while the caller is there)
    last_busy = time.monotonic()
    try:
        while not stopping:
            for key, _ in selector.select(timeout=0.2):
                if key.fileobj is listener:
                    connection, _ = listener.accept()
                    pid = _accept(connection, own_environment)
                    if pid is not None:
                        children[pid] = connection
                        selector.register(connection, selectors.EVENT_READ, pid)
                else:  # the caller went away (its end closed) while its command runs: stop the command
                    _signal(key.data, signal.SIGTERM)
                    selector.unregister(key.fileobj)
            for pid in list(children):
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    connection = children.pop(pid)
                    code = os.waitstatus_to_exitcode(status)
                    code = code if code >= 0 else 128 - code  # killed by signal n: 128 + n, as a shell reports it
                    _log(f"child {pid} ended: exit {code}")
                    try:
                        connection.sendall(f"exit {code}\n".encode())
                    except OSError:
                        pass
                    with contextlib.suppress(KeyError):  # still watched, unless its caller went away first
                        selector.unregister(connection)
                    connection.close()
            if children:
                last_busy = time.monotonic()
            elif time.monotonic() - last_busy > idle_minutes * 60:
                _log(f"idle for {idle_minutes} min: ending")
                break
    finally:
        path.unlink(missing_ok=True)
        path.with_suffix(".pid").unlink(missing_ok=True)
        for pid in children:
            _signal(pid, signal.SIGTERM)


def _accept(connection: socket.socket, own_environment: dict) -> int | None:
    """Read one request; fork its child, or answer `cold` when the environments disagree.
    Returns the child's pid."""
    message, descriptors, _flags, _address = socket.recv_fds(connection, HEADER.size, 3)
    try:
        request = _read_request(connection, message)
        if request is None:  # a probe ("are you there"), or a request cut short: nothing to run
            connection.close()
            return None
        differing = sorted(k for k in set(own_environment) | set(import_time_environment(request["env"]))
                           if own_environment.get(k) != request["env"].get(k))
        if differing:
            connection.sendall(f"cold {','.join(differing)}\n".encode())
            connection.close()
            return None
        pid = os.fork()
        if pid == 0:  # the command's process: it never returns from here
            _run_command(request, descriptors)
    finally:
        for descriptor in descriptors:  # the warm process's copies of the caller's terminal
            os.close(descriptor)
    connection.sendall(f"pid {pid}\n".encode())
    _log(f"child {pid}: {' '.join(request['argv'][1:])} (in {request['cwd']})")
    return pid


def _read_request(connection: socket.socket, header: bytes) -> dict | None:
    """The JSON request after the header, or None for an empty or broken one."""
    if len(header) < HEADER.size or (length := HEADER.unpack(header)[0]) == 0:
        return None
    raw = b""
    while len(raw) < length:
        chunk = connection.recv(length - len(raw))
        if not chunk:
            return None
        raw += chunk
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _run_command(request: dict, descriptors: list[int]) -> None:
    """In the forked child: become the caller's command, run its entry point, exit with its
    code. The entry's module is imported here, after the fork, so it is the code on disk now."""
    import importlib

    code = 1
    try:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C is a KeyboardInterrupt, as in a cold run
        os.setpgid(0, 0)
        for target, descriptor in enumerate(descriptors):
            os.dup2(descriptor, target)
            os.close(descriptor)
        os.environ.clear()
        os.environ.update(request["env"])
        os.environ[SERVED] = str(os.getppid())  # never forwarded again: a served command runs here
        os.chdir(request["cwd"])
        sys.argv = request["argv"]
        module, function = request["entry"].split(":")
        getattr(importlib.import_module(module), function)()
        code = 0
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    except BaseException:  # noqa: BLE001  what the cold command would print, then its exit code
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def _log(line: str) -> None:
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}", flush=True)
