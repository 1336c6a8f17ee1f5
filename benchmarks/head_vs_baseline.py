"""Does the EMI head beat its linear baseline? Ridge (alpha per emotion, on pooled mean+std
features) against the LSTM head with its defaults and tuned, over several seeds, on the same
split and features, on three EMI-layout sets: the demo; a set written apart from it
(tests/fixtures/quirky.py, more clips), whose intensities are nearly linear in pooled pitch; and
a set where the order of events inside a clip carries signal (tests/fixtures/ordered_events.py).
Prints mean ± sd and the gain. Not run by CI.

    .venv/bin/python benchmarks/head_vs_baseline.py [--seeds 3] [--trials 8] [--clips 80] [--sets demo,quirky,ordered]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.fixtures


def run_once(data: Path, features: list[str], head: str, seed: int, tune: bool, trials: int, work: Path, extra: dict):
    from challenge.config import load_config
    from challenge.registry import get_track
    from challenge.run.runner import run

    spec = get_track("emi")
    name = f"{head}-{seed}-{'tuned' if tune else 'defaults'}"
    config = load_config(
        None,
        {
            "track": "emi",
            "data": str(data),
            "features": features,
            "head": head,
            "seed": seed,
            "tune": tune or None,
            "trials": trials,
            "storage": f"sqlite:///{work}/{name}.db",
            "tracking_uri": f"sqlite:///{work}/mlflow.db",
            "out": str(work / name),
            **extra,
        },
        spec,
    )
    return run(spec, config)


def spread(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.4f} ± {sd:.4f}"


def compare(label: str, data: Path, features: list[str], args, work: Path, extra: dict) -> list[str]:
    ridge = run_once(data, features, "ridge", 0, False, 1, work, extra).score
    lines = [f"{label}: ridge (alpha per emotion) {ridge:.4f}"]
    for tune in (False, True):
        scores = [run_once(data, features, "lstm", seed, tune, args.trials, work, extra).score for seed in range(args.seeds)]
        gains = [s - ridge for s in scores]
        verdict = (
            "beats ridge by more than 1 sd"
            if statistics.mean(gains) > (statistics.stdev(gains) if len(gains) > 1 else 0)
            else "does NOT beat ridge by 1 sd"
        )
        what = f"lstm tuned ({args.trials} trials)" if tune else "lstm defaults"
        lines.append(
            f"  {what:<24} {spread(scores)} over {args.seeds} seeds; gain {spread(gains)}: {verdict}"
            f"; runs {', '.join(f'{s:.4f}' for s in scores)}"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--clips", type=int, default=80, help="training clips of the second set (validation: 3/4 of it)")
    parser.add_argument("--demo", type=Path, default=Path("demo_data/emi"))
    parser.add_argument("--sets", default="demo,quirky,ordered")
    args = parser.parse_args()
    from challenge.progress import set_quiet
    from challenge.synthetic.stand_ins import write_stand_ins
    from tests.fixtures.ordered_events import ordered_events_hume
    from tests.fixtures.quirky import quirky_hume
    from tracks.hume.demo import write_emi_demo

    set_quiet(True)
    report = []
    with tempfile.TemporaryDirectory() as tmp:
        work, sets = Path(tmp), args.sets.split(",")
        if "demo" in sets:
            if not (args.demo / "valid_split.csv").exists():
                write_emi_demo(args.demo)
            model = write_stand_ins(args.demo, [args.demo])["audio_model"]
            report += compare(
                f"demo ({args.demo}, wav2vec2 stand-in + egemaps)",
                args.demo,
                ["wav2vec2", "egemaps"],
                args,
                work,
                {"audio_model": str(model), "epochs": 25},
            )
        if "quirky" in sets:
            own = work / "own-emi"
            quirky_hume(own, train=args.clips, valid=args.clips * 3 // 4, test=3, seed=11)
            report += compare(
                f"own EMI-layout set (quirky fixture, {args.clips} train clips, egemaps)", own, ["egemaps"], args, work, {"epochs": 25}
            )
        if "ordered" in sets:
            ordered = work / "ordered-events"
            ordered_events_hume(ordered, train=args.clips, valid=args.clips * 3 // 4, test=3)
            report += compare(
                f"ordered-events EMI-layout set ({args.clips} train clips, egemaps)", ordered, ["egemaps"], args, work, {"epochs": 25}
            )
    print("\n".join(report))


if __name__ == "__main__":
    main()
