"""Does tuning find something? On EMI-layout sets, per seed and trial budget: finished and pruned
trials, wall time, the selection score (validation, optimistic) and the estimate that selected
nothing (3 folds of train+valid, out of fold) for
  (a) the head's defaults (the study's enqueued first trial alone),
  (b) the head tuned with --pruner median (median of 5 finished trials, warm-up 40 % of epochs),
  (b') the head tuned with the earlier pruner (median of 1 finished trial, warm-up 1 epoch),
  (b'') the head tuned with --pruner hyperband, the default (Optuna's successive halving over the epochs),
  (c) ridge, the linear baseline (out of fold over the same folds),
  (d) random search without pruning, given the wall time (b'') took.
Prints a markdown table with mean ± sd over seeds. Not run by CI.

    .venv/bin/python benchmarks/tuning_quality.py [--seeds 3] [--first-seed 0] [--trials 10,30] [--sets quirky,ordered,bursts,demo] [--clips 80] [--epochs 15]
        [--methods defaults,median,hyperband,earlier,random]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.fixtures

METHODS = ("defaults", "tuned, median pruner", "tuned, Hyperband pruner", "tuned, earlier pruner", "random, no pruning, same time")
SHORT = dict(zip(("defaults", "median", "hyperband", "earlier", "random"), METHODS))
DEFAULT_PRUNER = "tuned, Hyperband pruner"  # what `--tune` uses without --pruner; random search gets its wall time


def tune_once(data: Path, features: list[str], seed: int, trials: int, method: str, work: Path, extra: dict, timeout=None):
    """One `challenge track emi --tune` run; returns (result, finished, pruned, seconds)."""
    import optuna

    from challenge.config import load_config
    from challenge.registry import get_track
    from challenge.run.runner import run
    from challenge.stores import tuning

    spec = get_track("emi")
    name = f"{data.name}-{seed}-{trials}-{method.replace(' ', '_').replace(',', '')}"
    storage = f"sqlite:///{work}/{name}.db"
    flags = {
        "track": "emi",
        "data": str(data),
        "features": features,
        "head": "lstm",
        "seed": seed,
        "tune": True,
        "trials": trials,
        "timeout": timeout,
        "storage": storage,
        "tracking_uri": f"sqlite:///{work}/mlflow.db",
        "out": str(work / name),
        **extra,
    }
    original_pruner, original_sampler = tuning.pruner, optuna.samplers.TPESampler
    if method == "tuned, earlier pruner":  # no longer an option: rebuilt here to compare
        tuning.pruner = lambda epochs=None, kind=None: optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=1)
    elif method == "tuned, Hyperband pruner":
        flags["pruner"] = "hyperband"
    elif method == "tuned, median pruner":
        flags["pruner"] = "median"
    elif method.startswith("random"):
        flags["pruner"] = "none"
        # another seed: TPE's first 10 proposals are random draws from its own seed, which would repeat them
        optuna.samplers.TPESampler = lambda seed=None, **_: optuna.samplers.RandomSampler(seed=None if seed is None else seed + 7919)
    try:
        began = time.perf_counter()
        result = run(spec, load_config(None, flags, spec))
        seconds = time.perf_counter() - began
    finally:
        tuning.pruner, optuna.samplers.TPESampler = original_pruner, original_sampler
    (study_name,) = optuna.get_all_study_names(storage)
    states = [t.state for t in optuna.load_study(study_name=study_name, storage=storage).trials]
    return result, states.count(optuna.trial.TrialState.COMPLETE), states.count(optuna.trial.TrialState.PRUNED), seconds


def spread(values: list[float], digits: int = 4) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.{digits}f} ± {sd:.{digits}f}"


def measure(label: str, data: Path, features: list[str], args, work: Path, extra: dict) -> list[str]:
    rows = []
    for trials in args.trials:
        methods = [m for m in METHODS if m in args.methods]
        figures = {m: {"finished": [], "pruned": [], "seconds": [], "selection": [], "oof": []} for m in (*methods, "ridge")}
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            tuned_seconds = None
            for method in methods:
                budget = 1 if method == "defaults" else (10_000 if method.startswith("random") else trials)
                result, finished, pruned, seconds = tune_once(
                    data, features, seed, budget, method, work, extra, timeout=tuned_seconds if method.startswith("random") else None
                )
                if method == DEFAULT_PRUNER:
                    tuned_seconds = seconds
                f = figures[method]
                f["finished"].append(finished), f["pruned"].append(pruned), f["seconds"].append(seconds)
                f["selection"].append(result.score), f["oof"].append(result.estimate.score)
                if len(figures["ridge"]["oof"]) == seed - args.first_seed:  # the baseline once per seed
                    figures["ridge"]["oof"].append(result.estimate.baseline_score)
                print(
                    f"{label} trials={trials} seed={seed} {method}: {finished} finished, {pruned} pruned, {seconds:.0f} s, "
                    f"selection {result.score:.4f}, out of fold {result.estimate.score:.4f}, chosen {result.params}",
                    file=sys.stderr,
                    flush=True,
                )
        for method in (*methods, "ridge"):
            f = figures[method]
            if method == "ridge":
                rows.append(f"| {label} | {trials} | ridge (linear baseline) | | | | | {spread(f['oof'])} |")
                continue
            rows.append(
                f"| {label} | {trials if method != 'defaults' else 1} | {method} | {spread(f['finished'], 1)} | "
                f"{spread(f['pruned'], 1)} | {spread(f['seconds'], 0)} s | {spread(f['selection'])} | {spread(f['oof'])} |"
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0, help="to split the seeds over processes (one core each)")
    parser.add_argument("--trials", default="10,30")
    parser.add_argument("--clips", type=int, default=80, help="training clips of the fixture sets (validation: 3/4 of it)")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--sets", default="quirky,ordered,bursts,demo")
    parser.add_argument("--methods", default="defaults,median,hyperband,earlier,random", help="any of " + ",".join(SHORT))
    parser.add_argument("--demo", type=Path, default=Path("demo_data/emi"))
    args = parser.parse_args()
    args.trials = [int(t) for t in args.trials.split(",")]
    args.methods = [SHORT[m] for m in args.methods.split(",")]
    from challenge.progress import set_quiet
    from challenge.synthetic.stand_ins import write_stand_ins
    from tests.fixtures.bursts import bursts_hume
    from tests.fixtures.ordered_events import ordered_events_hume
    from tests.fixtures.quirky import quirky_hume
    from tracks.hume.demo import write_emi_demo

    set_quiet(True)
    rows = [
        "| set | --trials | method | finished | pruned | wall time | selection score (validation) | out of fold |",
        "|---|---|---|---|---|---|---|---|",
    ]
    extra = {"epochs": args.epochs}
    with tempfile.TemporaryDirectory() as tmp:
        work, sets = Path(tmp), args.sets.split(",")
        if "quirky" in sets:
            own = work / "quirky"
            quirky_hume(own, train=args.clips, valid=args.clips * 3 // 4, test=3, seed=11)
            rows += measure(f"quirky ({args.clips} train clips, egemaps)", own, ["egemaps"], args, work, extra)
        if "ordered" in sets:
            ordered = work / "ordered"
            ordered_events_hume(ordered, train=args.clips, valid=args.clips * 3 // 4, test=3)
            rows += measure(f"ordered events ({args.clips} train clips, egemaps)", ordered, ["egemaps"], args, work, extra)
        if "bursts" in sets:
            bursts = work / "bursts"
            bursts_hume(bursts, train=args.clips, valid=args.clips * 3 // 4, test=3)
            rows += measure(f"bursts, a fourth set ({args.clips} train clips, egemaps)", bursts, ["egemaps"], args, work, extra)
        if "demo" in sets:
            if not (args.demo / "valid_split.csv").exists():
                write_emi_demo(args.demo)
            model = write_stand_ins(args.demo, [args.demo])["audio_model"]
            rows += measure(
                "demo (wav2vec2 stand-in + egemaps)", args.demo, ["wav2vec2", "egemaps"], args, work, {**extra, "audio_model": str(model)}
            )
    print("\n".join(rows))


if __name__ == "__main__":
    main()
