"""Start-up costs of the command: `challenge --help`, and the seconds `challenge track emi --tune`
spends on a warm feature store before its first trial starts (reading, cache look-up, MLflow
and Optuna set-up, imports), cold and in a `challenge warm` process. Prints medians over
--repeats runs. Not run by CI.

Targets (issue 11): --help under 0.5 s; first trial under 3 s on a warm cache.

    .venv/bin/python benchmarks/startup.py [--data demo_data/emi] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent / "challenge"


def seconds_until(command: list[str], marker: str, env: dict) -> float:
    """Wall seconds from the start of `command` until a line holding `marker` is printed."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    for line in process.stdout:
        if marker in line:
            elapsed = time.perf_counter() - start
            process.kill()
            process.wait()
            return elapsed
    process.wait()
    raise RuntimeError(f"{' '.join(command)} ended without printing {marker!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("demo_data/emi"))
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "CHALLENGE_WARM": "0"}
    if not (args.data / "valid_split.csv").exists():
        subprocess.run([str(BIN), "demo-data", str(args.data), "--track", "emi", "-q"], check=True, env=env)
    help_times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        subprocess.run([str(BIN), "--help"], check=True, capture_output=True, env=env)
        help_times.append(time.perf_counter() - start)
    with tempfile.TemporaryDirectory() as tmp:
        track = [
            str(BIN),
            "track",
            "emi",
            "--data",
            str(args.data),
            "--features",
            "wav2vec2,egemaps",
            "--tune",
            "--tracking-uri",
            f"sqlite:///{tmp}/mlflow.db",
            "--out",
            f"{tmp}/out",
        ]
        # warm the store, the MLflow store and the study (one trial), then time fresh processes
        subprocess.run(
            [*track, "--trials", "1", "--storage", f"sqlite:///{tmp}/studies.db", "-q"], check=True, env=env, capture_output=True
        )
        storage = f"sqlite:///{tmp}/studies.db"
        first_trial = {"cold": [], "warm": []}
        for k in range(args.repeats):
            first_trial["cold"].append(seconds_until([*track, "--trials", str(2 + k), "--storage", storage], "running until", env))
        served = {**env, "CHALLENGE_WARM": "1", "CHALLENGE_WARM_DIR": tmp}
        subprocess.run([str(BIN), "warm", "--idle", "10"], check=True, env=served, capture_output=True)
        try:
            for k in range(args.repeats):
                first_trial["warm"].append(
                    seconds_until([*track, "--trials", str(2 + args.repeats + k), "--storage", storage], "running until", served)
                )
        finally:
            subprocess.run([str(BIN), "warm", "--stop"], env=served, capture_output=True)
    print(f"challenge --help: median {statistics.median(help_times):.2f} s over {args.repeats} (target < 0.5 s)")
    for mode, times in first_trial.items():
        how = "a fresh process" if mode == "cold" else "a `challenge warm` process"
        print(
            f"track emi --tune, warm store, in {how}, until the first trial starts: median {statistics.median(times):.2f} s "
            f"over {args.repeats} (target < 3 s); runs: {', '.join(f'{t:.2f}' for t in times)}"
        )


if __name__ == "__main__":
    main()
