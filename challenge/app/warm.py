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

Who may talk to whom: the socket lives in a folder only this user can enter, one per virtual
environment. Before a command sends its arguments, environment and terminal, it checks that the
folder and the socket are its user's and no one else can write into the folder, and that the process
listening runs as its user (SO_PEERCRED); the warm process checks its callers the same way. A
folder that is not the user's, or cannot be read, makes commands run cold and say why.

What code runs: the warm process starts with `python -P` and keeps no working-directory entry
on sys.path, so a child imports the installed project, never a `submissions/` or `challenge/`
folder in the directory the command was typed in (a cold `challenge` does the same).

A child leads its own process group: Ctrl-C and SIGTERM go to the group, so processes the
command started (`--workers` children) stop with it. A caller is read only once its request
has arrived, so one that connects and sends nothing holds up nobody.

The process ends after `--idle` minutes without a command, on `challenge warm --stop`, or on
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
PRELOAD = (
    "torch",
    "mlflow",
    "mlflow.store.tracking.sqlalchemy_store",
    "optuna",
    "optuna.storages",
    "pandas",
    "sklearn.linear_model",
    "sklearn.metrics",
    "scipy.ndimage",
    "lightgbm",
)
# environment variables that the preloaded libraries read at import: a command must agree on them
IMPORT_TIME_PREFIXES = ("OMP_", "MKL_", "OPENBLAS_", "TORCH", "PYTORCH", "CUDA", "MLFLOW_", "OPTUNA", "PYTHON", "LD_", "KMP_")
HEADER = struct.Struct("!Q")  # the length of the JSON request that follows the descriptors
REQUEST_SECONDS = 10  # a caller that connected sends its whole request within this, or is dropped
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


def unsafe_to_use(path: Path) -> str | None:
    """Why the socket at `path` must not be trusted with a command (None when it may): its folder
    or the socket belongs to another user, or others can write into the folder."""
    uid = os.getuid()
    try:
        where = path.parent.stat()
        if where.st_uid != uid:
            return f"{path.parent} belongs to another user (uid {where.st_uid})"
        if where.st_mode & 0o022:  # others could put a socket of their own there
            return f"{path.parent} can be written by other users (mode {where.st_mode & 0o777:o}); `chmod 700` it"
        owner = path.stat().st_uid
    except OSError as error:
        return f"{path.parent} cannot be read ({error.strerror})"
    return None if owner == uid else f"{path} belongs to another user (uid {owner})"


def peer_uid(connection: socket.socket) -> int | None:
    """The uid of the process at the other end (Linux; None where the system cannot say)."""
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None:
        return None
    _pid, uid, _gid = struct.unpack("3i", connection.getsockopt(socket.SOL_SOCKET, option, struct.calcsize("3i")))
    return uid


def import_time_environment(environment) -> dict[str, str]:
    return {k: v for k, v in environment.items() if k.startswith(IMPORT_TIME_PREFIXES)}


# ---- the client side: run by `challenge` before anything heavy is imported ----


def forward(argv: list[str], entry: str) -> int | None:
    """Run the command (`entry`, "module:function", with `argv`) in the warm process and return
    its exit code; None when there is no warm process to use (then the caller runs it itself)."""
    path = socket_path()
    if SERVED in os.environ or os.environ.get("CHALLENGE_WARM") == "0" or argv[:1] == ["warm"]:
        return None
    try:
        if not path.exists():
            return None
    except OSError as error:  # a folder this user cannot enter: there is no warm process of theirs
        return _cold(f"{path.parent} cannot be read ({error.strerror})")
    if why := unsafe_to_use(path):
        return _cold(why)
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        connection.connect(str(path))
    except OSError:  # left behind by a process that was killed: remove it and run cold
        with contextlib.suppress(OSError):
            path.unlink()
        connection.close()
        return None
    if (uid := peer_uid(connection)) is not None and uid != os.getuid():
        connection.close()
        return _cold(f"the process listening on {path} runs as another user (uid {uid})")
    request = json.dumps({"entry": entry, "argv": [sys.argv[0], *argv], "cwd": os.getcwd(), "env": dict(os.environ)}).encode()
    # signals are caught before the command starts: one that arrives before its pid is known
    # is passed on as soon as it is
    child, early = [], []
    handlers = {
        signum: signal.signal(signum, lambda signum, _frame: _signal(child[0], signum) if child else early.append(signum))
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    }
    socket.send_fds(connection, [HEADER.pack(len(request))], [0, 1, 2])
    connection.sendall(request)
    reader = connection.makefile("r")
    first = reader.readline().split()
    if first[:1] != ["pid"]:  # nothing was started: the environments disagree, or the warm process is going away
        if first[:1] == ["cold"]:
            print(
                f"challenge warm: {' '.join(first[1:])} differs from the warm process's environment; running cold "
                "(start `challenge warm` again in this environment to serve it).",
                file=sys.stderr,
            )
        connection.close()
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
        for signum in early:  # the cold command gets them as if it had been running
            os.kill(os.getpid(), signum)
        return None
    child.append(int(first[1]))
    for signum in early:
        _signal(child[0], signum)
    status = reader.readline().split()
    connection.close()
    return int(status[1]) if status[:1] == ["exit"] else 1


def _cold(why: str) -> None:
    print(f"challenge warm: {why}; not using it, running cold.", file=sys.stderr)
    return None


# ---- the warm process ----


def start(idle_minutes: float) -> tuple[int, Path]:
    """Start the warm process in the background (its own session, output to its log) and wait
    until it answers; returns (pid, socket). An answering one is reused."""
    if not hasattr(os, "fork") or not hasattr(socket, "send_fds"):
        from challenge.errors import ChallengeError

        raise ChallengeError("challenge warm needs fork and descriptor passing (Linux, macOS); on this system commands run cold.")
    from challenge.errors import ChallengeError

    path = socket_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if path.parent.stat().st_uid != os.getuid():
            raise ChallengeError(f"{path.parent} belongs to another user: set CHALLENGE_WARM_DIR to a folder of your own.")
        os.chmod(path.parent, 0o700)
        if running():
            return int(path.with_suffix(".pid").read_text()), path
        path.unlink(missing_ok=True)
        log = open(log_path(), "ab")  # noqa: SIM115  (handed to the process, closed below)
    except OSError as error:
        raise ChallengeError(
            f"{path.parent}: cannot keep the warm process's socket there ({error.strerror}); "
            "set CHALLENGE_WARM_DIR to a folder you can write."
        ) from error
    with log:
        # `-c`, not `-m challenge.app.warm`: the module must be challenge.app.warm itself, not a second copy
        # named __main__; `-P`: no working-directory entry on sys.path (see the module docstring)
        process = subprocess.Popen(
            [sys.executable, "-P", "-c", f"from challenge.app.warm import serve; serve({float(idle_minutes)!r})"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    deadline = time.monotonic() + 120
    while not running():
        if process.poll() is not None or time.monotonic() > deadline:
            raise ChallengeError(f"the warm process did not start; its log is {log_path()}.")
        time.sleep(0.1)
    return process.pid, path


def running() -> bool:
    path = socket_path()
    try:
        if not path.exists() or unsafe_to_use(path):
            return False
    except OSError:
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

    sys.path[:] = [p for p in sys.path if os.path.isabs(p)]  # a relative entry would resolve in each caller's directory
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
    waiting: dict[socket.socket, float] = {}  # connected callers whose request has not arrived, since when
    last_busy = time.monotonic()
    try:
        while not stopping:
            for key, _ in selector.select(timeout=0.2):
                if key.fileobj is listener:
                    connection, _ = listener.accept()
                    waiting[connection] = time.monotonic()
                    selector.register(connection, selectors.EVENT_READ, None)
                elif key.data is None:  # a waiting caller's request has arrived (or it hung up)
                    connection = key.fileobj
                    selector.unregister(connection)
                    del waiting[connection]
                    pid = _accept(connection, own_environment)
                    if pid is not None:
                        children[pid] = connection
                        selector.register(connection, selectors.EVENT_READ, pid)
                else:  # the caller went away (its end closed) while its command runs: stop the command
                    _signal(key.data, signal.SIGTERM)
                    selector.unregister(key.fileobj)
            for connection, since in list(waiting.items()):
                if time.monotonic() - since > REQUEST_SECONDS:  # connected and silent: let it go
                    selector.unregister(connection)
                    del waiting[connection]
                    connection.close()
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
    connection.settimeout(REQUEST_SECONDS)  # it has begun to send: the rest follows at once from a real caller
    try:
        message, descriptors, _flags, _address = socket.recv_fds(connection, HEADER.size, 3)
    except OSError:
        connection.close()
        return None
    try:
        if (uid := peer_uid(connection)) is not None and uid != os.getuid():
            _log(f"refused a caller running as uid {uid}")
            connection.close()
            return None
        request = _read_request(connection, message)
        if request is None:  # a probe ("are you there"), or a request cut short: nothing to run
            connection.close()
            return None
        differing = sorted(
            k
            for k in set(own_environment) | set(import_time_environment(request["env"]))
            if own_environment.get(k) != request["env"].get(k)
        )
        if differing:
            connection.sendall(f"cold {','.join(differing)}\n".encode())
            connection.close()
            return None
        pid = os.fork()
        if pid == 0:  # the command's process: it never returns from here
            _run_command(request, descriptors)
        with contextlib.suppress(OSError):  # here too, so the group exists before the caller can signal it
            os.setpgid(pid, pid)
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
        try:
            chunk = connection.recv(length - len(raw))
        except OSError:  # too slow (timeout) or gone
            return None
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
    """To the command's process group (it leads one): what it started stops with it."""
    try:
        os.killpg(pid, signum)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


def _log(line: str) -> None:
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}", flush=True)
