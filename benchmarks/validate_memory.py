"""Peak memory of validating a large Aff-Wild2 AU submission (default 300 MB) against its sample
file, for this checkout and, with --before, another one (a `git worktree` of an older commit),
each in a fresh process. Not run by CI.

    .venv/bin/python benchmarks/validate_memory.py [--megabytes 300] [--before /tmp/before]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
HEADER = "image_location,AU1,AU2,AU4,AU6,AU7,AU10,AU12,AU15,AU23,AU24,AU25,AU26"
MEASURE = """
import resource, sys, time
from pathlib import Path
from submissions.affwild import validate_affwild
began = time.perf_counter()
problems = validate_affwild("au", Path(sys.argv[1]), Path(sys.argv[2]), [])
print(len(problems), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, time.perf_counter() - began)
"""


def write_files(folder: Path, megabytes: float) -> tuple[Path, Path]:
    submission, sample = folder / "predictions.txt", folder / "sample.txt"
    row = ",0,1,0,0,1,0,1,0,0,0,1,0\n"
    rows = int(megabytes * 2**20 / (len("video_0000/00001.jpg") + len(row)))
    with open(submission, "w") as out, open(sample, "w") as ref:
        out.write(HEADER + "\n")
        ref.write(HEADER + "\n")
        for i in range(rows):
            location = f"video_{i // 10000:04d}/{i % 10000 + 1:05d}.jpg"
            out.write(location + row)
            ref.write(location + ",0,0,0,0,0,0,0,0,0,0,0,0\n")
    return submission, sample


def measure(repo: Path, submission: Path, sample: Path) -> tuple[int, float, float]:
    done = subprocess.run(
        [sys.executable, "-P", "-c", MEASURE, str(submission), str(sample)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(repo)},
        check=True,
    )
    problems, peak, seconds = done.stdout.split()
    return int(problems), float(peak), float(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--megabytes", type=float, default=300)
    parser.add_argument("--before", type=Path)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="validate-memory-"))
    submission, sample = write_files(folder, args.megabytes)
    size = submission.stat().st_size / 2**20
    print(
        f"AU submission of {size:.0f} MiB ({sum(1 for _ in open(sample)) - 1} frames), sample file {sample.stat().st_size / 2**20:.0f} MiB; one run"
    )
    for repo in ([args.before] if args.before else []) + [HERE]:
        problems, peak, seconds = measure(repo, submission, sample)
        print(f"{str(repo):<40} peak RSS {peak:>8.0f} MiB ({peak / size:.1f}x the file), {seconds:.1f} s, {problems} problem kind(s)")


if __name__ == "__main__":
    main()
