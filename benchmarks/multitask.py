"""One multi-task model for EXPR, AU and VA against the same model trained on each task alone
(`challenge multitask --tasks T`: the same encoder, one head), and the linear baseline, on the
same features and splits, over seeds. Validation scores after each task's smoothing and
thresholds, as the runs report them.

    demo     `challenge demo-data DIR --track expr` (drawn faces, the stand-in MAE)
    quirky   the ABAW5-layout set of tests/fixtures/quirky.py (EXPR and VA only)

Not run by CI.

    .venv/bin/python benchmarks/multitask.py [--seeds 3] [--epochs 20] [--sets demo,quirky]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(HERE))


def prepare(work: Path, name: str) -> tuple[Path, list[str]]:
    from challenge.synthetic.stand_ins import write_stand_ins

    data = work / name
    if name == "demo":
        from tracks.affwild2.demo import write_affwild_demo

        write_affwild_demo(data)
        tasks = ["expr", "au", "va"]
    else:
        from tests.fixtures.quirky import quirky_affwild

        quirky_affwild(data)
        tasks = ["expr", "va"]
    write_stand_ins(work, [data])
    return data, tasks


def run(data: Path, work: Path, tasks: list[str], seed: int, epochs: int) -> dict[str, tuple[float, float]]:
    """task -> (validation score, linear baseline)."""
    from challenge.config import load_config
    from challenge.progress import set_quiet
    from challenge.registry import get_track
    from challenge.run.multitask import run_multitask

    set_quiet(True)
    config = load_config(
        None,
        {
            "track": tasks[0],
            "data": str(data),
            "features": ["mae"],
            "seed": seed,
            "epochs": epochs,
            "store": str(work / "store"),
            "tracking_uri": f"sqlite:///{work}/mlflow.db",
            "out": str(work / "out" / f"{'+'.join(tasks)}-{seed}"),
        },
        get_track(tasks[0]),
    )
    result = run_multitask(config, tasks, [1.0] * len(tasks))
    return {t.task: (t.score, t.baseline) for t in result.tasks}


def spread(values: list[float]) -> str:
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}" if len(values) > 1 else f"{values[0]:.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--sets", default="demo,quirky")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        print(f"validation score per task, {args.seeds} seeds (mean ± sd), {args.epochs} epochs at most, features mae (stand-in)")
        print("| set | task | multi-task model | same model, this task alone | linear baseline |")
        print("|---|---|---|---|---|")
        for name in args.sets.split(","):
            data, tasks = prepare(work, name)
            joint = [run(data, work, tasks, seed, args.epochs) for seed in range(args.seeds)]
            alone = {t: [run(data, work, [t], seed, args.epochs)[t] for seed in range(args.seeds)] for t in tasks}
            for t in tasks:
                print(
                    f"| {name} | {t} | {spread([r[t][0] for r in joint])} | {spread([r[0] for r in alone[t]])} | {joint[0][t][1]:.4f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
