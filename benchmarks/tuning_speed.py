"""Trials per minute of `challenge track emi --tune` on a held-out-style EMI set (the quirky
corpus of tests/fixtures/quirky.py: 80 train, 60 valid, 20 test clips; the tiny random-weight
wav2vec2), for this checkout and, with --before, for another one (a `git worktree` of an older
commit), in one run on the same data and warm feature store. Not run by CI.

    .venv/bin/python benchmarks/tuning_speed.py [--trials 10] [--before /tmp/before]

A trial's cost is measured as (wall of --trials N) - (wall of --trials 1), over N - 1 trials:
start-up, extraction look-ups, the final model and the submission cancel out.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(HERE))  # tests.fixtures


def prepare(work: Path) -> tuple[Path, Path]:
    from challenge.synthetic.stand_ins import tiny_wav2vec2
    from tests.fixtures.quirky import quirky_hume

    data, model = work / "hume", work / "w2v"
    if not (data / "train_split.csv").exists():
        quirky_hume(data, train=80, valid=60, test=20)
    if not model.exists():
        tiny_wav2vec2(model)
    return data, model


def run(repo: Path, work: Path, data: Path, model: Path, trials: int | None, tag: str) -> tuple[float, str]:
    args = ["track", "emi", "--data", str(data), "--features", "wav2vec2", "--audio-model", str(model), "--out", str(work / f"out-{tag}")]
    if trials is not None:
        args += ["--tune", "--trials", str(trials), "--storage", f"sqlite:///{work}/{tag}.db"]
        cli = next(p for p in (repo / "challenge" / "app" / "cli.py", repo / "challenge" / "cli.py") if p.exists())
        if "estimate-folds" in cli.read_text():
            args += ["--estimate-folds", "0"]  # the estimate is extra work after tuning, not part of a trial
    env = {
        **os.environ,
        "PYTHONPATH": str(repo),
        "CHALLENGE_WARM": "0",
        "CHALLENGE_FEATURE_STORE": str(work / "store"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{work}/mlflow-{repo.name}.db",
    }
    began = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-P", "-c", "from challenge.app.cli import main; main()", *args], cwd=work, env=env, capture_output=True, text=True
    )
    seconds = time.perf_counter() - began
    if done.returncode != 0:
        raise SystemExit(f"{repo}: {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return seconds, done.stdout + done.stderr


def measure(repo: Path, work: Path, data: Path, model: Path, trials: int) -> dict:
    run(repo, work, data, model, None, f"{repo.name}-warm")  # extraction (cached after the first checkout) and the imports' caches
    single, _ = run(repo, work, data, model, None, f"{repo.name}-single")
    one, _ = run(repo, work, data, model, 1, f"{repo.name}-t1")
    many, output = run(repo, work, data, model, trials, f"{repo.name}-t{trials}")
    per_trial = (many - one) / (trials - 1)
    pruned = len(re.findall(r"trial \d+: pruned", output))
    score = re.search(r"(?:validation|selection) score[^:]*: ([\d.]+)", output)
    return {
        "repo": str(repo),
        "single": single,
        "one": one,
        "many": many,
        "per_trial": per_trial,
        "per_minute": 60 / per_trial,
        "pruned": pruned,
        "score": score[1] if score else "?",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--before", type=Path, help="another checkout to compare (e.g. git worktree add /tmp/before <commit>)")
    parser.add_argument("--work", type=Path, help="folder for the data, store and stores (default: a temporary one)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="tuning-speed-"))
    work.mkdir(parents=True, exist_ok=True)
    data, model = prepare(work)
    results = [measure(repo, work, data, model, args.trials) for repo in ([args.before] if args.before else []) + [HERE]]
    print(f"held-out-style EMI set: 80 train / 60 valid / 20 test clips, tiny wav2vec2, {args.trials} trials; one run, this machine")
    print(
        f"{'checkout':<40} {'untuned run':>12} {'--trials 1':>11} {f'--trials {args.trials}':>12} {'s/trial':>8} {'trials/min':>11} {'pruned':>7} {'score':>7}"
    )
    for r in results:
        print(
            f"{r['repo']:<40} {r['single']:>11.1f}s {r['one']:>10.1f}s {r['many']:>11.1f}s {r['per_trial']:>8.1f} {r['per_minute']:>11.2f} "
            f"{r['pruned']:>7} {r['score']:>7}"
        )
    if len(results) == 2:
        print(f"trials per minute, this checkout / before: {results[1]['per_minute'] / results[0]['per_minute']:.2f}x")


if __name__ == "__main__":
    main()
