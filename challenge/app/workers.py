"""Local worker processes: one job run by K processes of this Python, each with its share of
the cores (K processes each running torch on every core slow each other down: measured, two
workers at 0.54x one). A job is data (the resolved run config, or an extraction's settings),
never a rewritten command line:

    tuning_workers(config, 4)            # 4 processes tune one study; each claims a worker index
    extraction_workers(job, 4, devices)  # 4 processes fill one store, shard k of 4 each

`python -m challenge.app.workers KIND JOB.json` is what each process runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path


def run_processes(kind: str, payloads: list[dict], names: list[str]) -> int:
    """Each payload in its own process; returns the first non-zero exit status, or 0."""
    threads = str(max(1, (os.cpu_count() or 1) // len(payloads)))
    env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    with tempfile.TemporaryDirectory(prefix="challenge-workers-") as folder:
        processes = []
        for k, payload in enumerate(payloads):
            job = Path(folder) / f"job{k}.json"
            job.write_text(json.dumps(payload))
            processes.append(subprocess.Popen([sys.executable, "-P", "-m", "challenge.app.workers", kind, str(job)], env=env))
        codes = [p.wait() for p in processes]
    failed = [(k, code) for k, code in enumerate(codes) if code]
    for k, code in failed:
        print(f"worker {k} ({names[k]}) exited with status {code}", file=sys.stderr)
    print(f"{len(codes) - len(failed)} of {len(codes)} workers finished")
    return failed[0][1] if failed else 0


def tuning_workers(config, count: int) -> int:
    """`count` processes on the run's study. With `config.worker` set, worker indices
    worker..worker+count-1; without, each claims a free index from the study's storage."""
    first = config.worker
    payloads = [config.model_dump() | ({"worker": first + k} if first is not None else {}) for k in range(count)]
    names = [f"worker {first + k}" if first is not None else "claims its index" for k in range(count)]
    return run_processes("track", payloads, names)


def extraction_workers(job: dict, count: int, devices: list[str]) -> int:
    """`count` processes, process k extracting shard k of `count` on devices[k % len(devices)]."""
    payloads = [job | {"shard": [k, count], "device": devices[k % len(devices)]} for k in range(count)]
    return run_processes("extract", payloads, [f"shard {k}/{count} on {p['device']}" for k, p in enumerate(payloads)])


def _track(payload: dict) -> None:
    from challenge.config import RunConfig
    from challenge.registry import get_track
    from challenge.run.finish import result_lines
    from challenge.run.runner import run

    config = RunConfig.model_validate(payload)
    spec = get_track(config.track)
    result = run(spec, config)
    print("\n".join(result_lines(spec, result, config.shuffle_labels)))


def _extract(payload: dict) -> None:
    from challenge.features.extract import extract_for_track

    extractor, report, _ = extract_for_track(
        payload["track"],
        Path(payload["data"]),
        payload["extractor"],
        payload["options"],
        payload.get("store"),
        payload["device"],
        tuple(payload["shard"]),
        payload.get("skip_missing", False),
    )
    print(f"{extractor.name}: {report.computed} computed, {report.cached} cached, {len(report.missing_media)} without media")


def main() -> None:
    from challenge.errors import ChallengeError

    kind, job = sys.argv[1], Path(sys.argv[2])
    try:
        {"track": _track, "extract": _extract}[kind](json.loads(job.read_text()))
    except ChallengeError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
