"""`challenge warm`: commands run in a forked child of a process that has the heavy libraries
imported, with the caller's arguments, directory, environment, terminal and exit code; Ctrl-C
reaches them; a caller that disappears takes its command with it; environments that disagree
on import-time settings, and sockets left behind, run cold. A real warm process, real sockets."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent / "challenge"
CLIENT = "import sys; from challenge.app import warm; code = warm.forward(sys.argv[1:], 'tests.fixtures.warm_probe:main'); print('cold' if code is None else '', end=''); sys.exit(code or 0)"


@pytest.fixture(scope="module")
def warm_env(tmp_path_factory):
    """A warm process of its own (its socket in a temporary folder), ended after the module."""
    folder = tmp_path_factory.mktemp("warm")
    env = {k: v for k, v in os.environ.items() if k != "CHALLENGE_WARM"} | {"CHALLENGE_WARM_DIR": str(folder), "PYTHONPATH": str(ROOT)}
    try:
        started = subprocess.run([str(BIN), "warm", "--idle", "5"], env=env, capture_output=True, text=True, timeout=180)
        assert started.returncode == 0 and "ready" in started.stderr, started.stdout + started.stderr
        yield env
    finally:
        subprocess.run([str(BIN), "warm", "--stop"], env=env, timeout=30)


def log_of(env) -> str:
    return "".join(path.read_text() for path in Path(env["CHALLENGE_WARM_DIR"]).glob("challenge-warm/*.log"))


def probe(env, *args, cwd=ROOT, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", CLIENT, *args], env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs
    )


def test_a_cli_command_runs_in_the_warm_process_and_prints_and_exits_as_a_cold_one(warm_env, tmp_path):
    command = [str(BIN), "validate", "emi", "missing.csv", "--data", str(tmp_path)]
    served = subprocess.run(command, env=warm_env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    cold = subprocess.run(command, env=warm_env | {"CHALLENGE_WARM": "0"}, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert served.returncode == cold.returncode == 2
    assert served.stderr == cold.stderr and "train_split.csv: split file not found" in served.stderr
    assert f"validate emi missing.csv --data {tmp_path} (in {tmp_path})" in log_of(warm_env)


def test_the_child_gets_the_callers_arguments_directory_environment_stdin_and_its_exit_code_comes_back(warm_env, tmp_path):
    process = probe(warm_env | {"PROBE": "seen"}, "read", "exit", "7", cwd=tmp_path, stdin=subprocess.PIPE)
    out, err = process.communicate("a line from the caller\n", timeout=60)
    seen = json.loads(out.splitlines()[0])
    assert process.returncode == 7, err
    assert seen["argv"] == ["read", "exit", "7"] and seen["cwd"] == str(tmp_path) and seen["probe"] == "seen"
    assert seen["stdin"] == "a line from the caller"
    assert seen["pid"] != process.pid and seen["served_by"]  # another process: the warm one's child


def test_ctrl_c_reaches_the_command_and_a_vanished_caller_stops_it(warm_env):
    process = probe(warm_env, "sleep")
    seen = json.loads(process.stdout.readline())
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=30) == 130 and "interrupted" in process.stdout.read()

    process = probe(warm_env, "sleep")
    child = json.loads(process.stdout.readline())["pid"]
    assert child != seen["pid"]
    process.kill()  # SIGKILL: the caller cannot pass anything on; the warm process notices its end
    deadline = time.monotonic() + 15
    while Path(f"/proc/{child}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not Path(f"/proc/{child}").exists(), "the command outlived its caller"


def test_a_different_import_time_environment_runs_cold_and_says_why(warm_env):
    process = probe(warm_env | {"OMP_NUM_THREADS": "3"}, "exit", "0")
    out, err = process.communicate(timeout=60)
    assert out == "cold" and "OMP_NUM_THREADS differs from the warm process's environment; running cold" in err


def test_a_socket_left_behind_runs_cold_and_is_removed(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "CHALLENGE_WARM"} | {"CHALLENGE_WARM_DIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    from challenge.app import warm

    os.environ["CHALLENGE_WARM_DIR"] = str(tmp_path)
    try:
        stale = warm.socket_path()
    finally:
        del os.environ["CHALLENGE_WARM_DIR"]
    stale.parent.mkdir(parents=True)
    stale.write_text("")  # a killed warm process leaves its socket file: nothing listens on it
    process = probe(env, "exit", "0")
    out, _ = process.communicate(timeout=60)
    assert out == "cold" and not stale.exists()
    stopped = subprocess.run([str(BIN), "warm", "--stop"], env=env, capture_output=True, text=True, timeout=30)
    assert "no warm process was running" in stopped.stderr


def test_a_request_cut_short_leaves_the_warm_process_serving(warm_env):
    """A caller that dies half-way through its request (header sent, JSON cut off) costs nothing:
    the next command is served."""
    import socket

    from challenge.app import warm

    os.environ["CHALLENGE_WARM_DIR"] = warm_env["CHALLENGE_WARM_DIR"]
    try:
        path = warm.socket_path()
    finally:
        del os.environ["CHALLENGE_WARM_DIR"]
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as broken:
        broken.connect(str(path))
        socket.send_fds(broken, [warm.HEADER.pack(1000)], [0, 1, 2])
        broken.sendall(b'{"entry": "tests.fix')
    process = probe(warm_env, "exit", "3")
    out, err = process.communicate(timeout=60)
    assert process.returncode == 3 and json.loads(out.splitlines()[0])["argv"] == ["exit", "3"], err


def _warm_socket(env) -> Path:
    from challenge.app import warm

    os.environ["CHALLENGE_WARM_DIR"] = env["CHALLENGE_WARM_DIR"]
    try:
        return warm.socket_path()
    finally:
        del os.environ["CHALLENGE_WARM_DIR"]


def test_a_command_never_imports_from_the_directory_it_was_typed_in(warm_env, tmp_path):
    """`challenge track` writes submissions/ into the working directory; a folder named like one
    of the project's packages there must not shadow it (nor run its __init__)."""
    marker = tmp_path / "ran"
    for package in ("submissions", "challenge"):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text(f"open({str(marker)!r}, 'w').write('{package}')\n")
    (tmp_path / "submissions" / "emi.py").write_text("")
    command = [str(BIN), "validate", "emi", "missing.csv", "--data", str(tmp_path)]
    served = subprocess.run(command, env=warm_env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert served.returncode == 2 and "split file not found" in served.stderr, served.stderr
    assert "ImportError" not in served.stderr and not marker.exists()
    assert f"(in {tmp_path})" in log_of(warm_env)  # it was served warm, not cold


def test_ctrl_c_reaches_what_the_command_started(warm_env):
    process = probe(warm_env, "spawn", "sleep")
    spawned = json.loads(process.stdout.readline())["spawned"]
    assert Path(f"/proc/{spawned}").exists()
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=30) == 130
    deadline = time.monotonic() + 10
    while (
        Path(f"/proc/{spawned}").exists()
        and "Z" not in Path(f"/proc/{spawned}/stat").read_text().split()[2]
        and time.monotonic() < deadline
    ):
        time.sleep(0.1)
    state = Path(f"/proc/{spawned}/stat").read_text().split()[2] if Path(f"/proc/{spawned}").exists() else "gone"
    assert state in ("gone", "Z"), f"the command's own process survived Ctrl-C (state {state})"


def test_a_caller_that_connects_and_sends_nothing_holds_up_nobody(warm_env):
    import socket

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as silent:
        silent.connect(str(_warm_socket(warm_env)))
        began = time.monotonic()
        process = probe(warm_env, "exit", "4")
        out, err = process.communicate(timeout=60)
        assert process.returncode == 4 and out.strip() != "cold", err
        assert time.monotonic() - began < 8  # served at once, not after the silent caller's time-out


NOBODY = 65534
SYSTEM_PYTHON = "/usr/bin/python3"  # one that another user can run (the venv's may sit in a folder only we can enter)
as_root = pytest.mark.skipif(
    os.geteuid() != 0 or not Path(SYSTEM_PYTHON).exists(),
    reason="planting another user's socket needs root and a system python (CI runs as root)",
)
LISTENER = """
import os, socket, sys
path, seen = sys.argv[1], sys.argv[2]
listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
listener.bind(path)
os.chmod(path, 0o777)
listener.listen(1)
print("listening", flush=True)
listener.settimeout(20)
try:
    connection, _ = listener.accept()
    connection.settimeout(5)
    open(seen, "w").write(repr(connection.recv(65536)))
except OSError:
    pass
"""


@as_root
def test_a_socket_planted_by_another_user_receives_nothing(tmp_path):
    """In a shared CHALLENGE_WARM_DIR another user creates the folder and a socket where ours
    would be: the command runs cold and sends it neither its arguments, environment nor terminal.
    Moved into a folder of ours and given our owner, the socket is still refused: the process
    listening is not ours (SO_PEERCRED)."""
    import tempfile

    shared = Path(tempfile.mkdtemp(dir="/tmp"))
    try:
        os.chmod(shared, 0o777)
        env = {k: v for k, v in os.environ.items() if k != "CHALLENGE_WARM"} | {"CHALLENGE_WARM_DIR": str(shared), "PYTHONPATH": str(ROOT)}
        path = _warm_socket(env)
        path.parent.mkdir(mode=0o755)
        os.chown(path.parent, NOBODY, NOBODY)
        seen = shared / "seen"

        def plant(at: Path) -> subprocess.Popen:
            listener = subprocess.Popen(
                [SYSTEM_PYTHON, "-c", LISTENER, str(at), str(seen)], user=NOBODY, group=NOBODY, stdout=subprocess.PIPE, text=True
            )
            assert listener.stdout.readline().strip() == "listening"
            return listener

        listener = plant(path)
        process = probe(env | {"SECRET": "s3cret"}, "exit", "0")
        out, err = process.communicate(timeout=60)
        assert out == "cold" and "belongs to another user" in err, err
        listener.kill()
        assert not seen.exists()

        # the same socket file inside a folder of ours, owned by us: its listener still runs as nobody
        os.chown(path.parent, 0, 0)
        os.chmod(path.parent, 0o700)
        path.unlink()
        elsewhere = shared / "elsewhere.sock"
        listener = plant(elsewhere)
        os.rename(elsewhere, path)
        os.chown(path, 0, 0)
        out, err = probe(env | {"SECRET": "s3cret"}, "exit", "0").communicate(timeout=60)
        assert out == "cold" and "runs as another user" in err, err
        listener.kill()
        assert not seen.exists() or "s3cret" not in seen.read_text()
    finally:
        subprocess.run(["rm", "-rf", str(shared)])


@as_root
def test_a_folder_that_is_not_the_users_runs_cold_and_warm_says_what_to_do(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "CHALLENGE_WARM"} | {"CHALLENGE_WARM_DIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    path = _warm_socket(env)
    path.parent.mkdir(mode=0o700)
    path.write_text("")
    os.chown(path.parent, NOBODY, NOBODY)
    out, err = probe(env, "exit", "0").communicate(timeout=60)
    assert out == "cold" and "belongs to another user" in err and "Traceback" not in err
    started = subprocess.run([str(BIN), "warm"], env=env, capture_output=True, text=True, timeout=60)
    assert started.returncode != 0 and "CHALLENGE_WARM_DIR" in started.stderr and "Traceback" not in started.stderr, started.stderr

    blocked = tmp_path / "a-file"
    blocked.write_text("")
    env["CHALLENGE_WARM_DIR"] = str(blocked)
    out, err = probe(env, "exit", "5").communicate(timeout=60)
    assert out == "cold" and not err  # nothing there to use: cold, silently
    started = subprocess.run([str(BIN), "warm"], env=env, capture_output=True, text=True, timeout=60)
    assert started.returncode != 0 and "set CHALLENGE_WARM_DIR to a folder you can write" in started.stderr, started.stderr
