"""Does tuning find something? On EMI-layout sets, per seed and trial budget: finished and pruned
trials, wall time, the selection score (validation, optimistic) and the estimate that selected
nothing (3 folds of train+valid, out of fold) for
  (a) the head's defaults (the study's enqueued first trial alone),
  (b) the head tuned with --pruner median (median of 5 finished trials, warm-up 40 % of epochs),
  (b') the head tuned with the earlier pruner (median of 1 finished trial, warm-up 1 epoch),
  (b'') the head tuned with --pruner hyperband, the default (Optuna's successive halving over the epochs),
  (c) ridge, the linear baseline (out of fold over the same folds),
  (d) random search without pruning, given the wall time (b'') took,
  (e) (b'') submitted with --select out-of-fold (the same study, resumed: no trial runs again),
  (f) the head tuned with Hyperband under --protocol grouped-folds (3 folds: selection out of fold
      over train+valid, the fold models averaged on test; it has no estimate that selected nothing),
  (g) the ridge head (--head ridge, nothing to tune).
With --held N, N more validation clips of each fixture set are written and held back as test
clips whose labels the benchmark keeps: "unseen" is each run's submission scored on them, a
figure no selection saw, and the only one that compares (f) with the others.
Prints a markdown table with mean ± sd over seeds. Not run by CI.

    .venv/bin/python benchmarks/tuning_quality.py [--seeds 3] [--first-seed 0] [--trials 10,30] [--sets quirky,ordered,bursts,demo] [--clips 80] [--epochs 15]
        [--methods defaults,median,hyperband,earlier,random,select,folds,ridge] [--held 0]
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.fixtures

METHODS = (
    "defaults",
    "tuned, median pruner",
    "tuned, Hyperband pruner",
    "tuned, earlier pruner",
    "random, no pruning, same time",
    "tuned, Hyperband, --select out-of-fold",
    "tuned, Hyperband, --protocol grouped-folds",
    "ridge head",
)
SHORT = dict(zip(("defaults", "median", "hyperband", "earlier", "random", "select", "folds", "ridge"), METHODS))
DEFAULT_PRUNER = "tuned, Hyperband pruner"  # what `--tune` uses without --pruner; random search gets its wall time
SELECT, FOLDS = SHORT["select"], SHORT["folds"]


def tune_once(data: Path, features: list[str], seed: int, trials: int, method: str, work: Path, extra: dict, timeout=None):
    """One `challenge track emi --tune` run; returns (result, finished, pruned, seconds)."""
    import optuna

    from challenge.config import load_config
    from challenge.registry import get_track
    from challenge.run.runner import run
    from challenge.stores import tuning

    spec = get_track("emi")
    slug = lambda m: f"{data.name}-{seed}-{trials}-{m.replace(' ', '_').replace(',', '')}"  # noqa: E731
    name = slug(method)
    # --select out-of-fold resumes the Hyperband study: what a team does after reading the estimate
    storage = f"sqlite:///{work}/{slug(DEFAULT_PRUNER) if method == SELECT else name}.db"
    flags = {
        "track": "emi",
        "data": str(data),
        "features": features,
        "head": "ridge" if method == "ridge head" else "lstm",
        "seed": seed,
        "tune": True,
        "trials": trials,
        "timeout": timeout,
        "storage": storage,
        "tracking_uri": f"sqlite:///{work}/mlflow.db",
        "out": str(work / name),
        **extra,
    }
    if method == "ridge head":  # nothing to tune, and no epochs
        flags.pop("epochs", None)
    original_pruner, original_sampler = tuning.pruner, optuna.samplers.TPESampler
    if method == "tuned, earlier pruner":  # no longer an option: rebuilt here to compare
        tuning.pruner = lambda epochs=None, kind=None: optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=1)
    elif method in ("tuned, Hyperband pruner", SELECT, FOLDS):
        flags["pruner"] = "hyperband"
        if method == SELECT:
            flags["select"] = "out-of-fold"
        if method == FOLDS:
            flags["protocol"], flags["protocol_folds"] = "grouped-folds", 3
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
    names = optuna.get_all_study_names(storage)  # none for the ridge head: nothing to tune
    states = [t.state for t in optuna.load_study(study_name=names[0], storage=storage).trials] if names else []
    if method == SELECT:  # resumed, finished: its trials are the Hyperband row's
        states = []
    return result, states.count(optuna.trial.TrialState.COMPLETE), states.count(optuna.trial.TrialState.PRUNED), seconds


def hold_back(root: Path, count: int) -> dict[str, np.ndarray]:
    """Move the last `count` validation clips of an EMI-layout set to test_data/raw (their audio
    and feature files go) and return their labels: clips a run predicts and no selection saw."""
    from tracks.hume.reader import HEADER, read_split_csv

    table = read_split_csv(root / "valid_split.csv")
    clips = list(table)
    kept, held = clips[:-count], clips[-count:]
    rows = [",".join(HEADER), *(f"{clip}," + ",".join(f"{v:.4f}" for v in table[clip].values) for clip in kept)]
    (root / "valid_split.csv").write_text("\n".join(rows) + "\n")
    (root / "test_data" / "raw").mkdir(parents=True, exist_ok=True)
    for clip in held:
        (root / "raw" / f"{clip}.mp4").rename(root / "test_data" / "raw" / f"{clip}.mp4")
        for stale in (root / "audio" / f"{clip}.wav", root / "wav2vec2" / f"{clip}.pkl"):
            stale.unlink(missing_ok=True)
    return {clip: table[clip].values for clip in held}


def unseen_score(submission: Path | None, labels: dict[str, np.ndarray]) -> float:
    """Mean Pearson over the six emotions of a run's submission on the held-back clips."""
    import pandas as pd

    from challenge.metrics import mean_pearson
    from tracks.hume.reader import clip_id

    if not labels or submission is None:
        return float("nan")
    path = submission / "predictions.csv" if Path(submission).is_dir() else Path(submission)
    table = pd.read_csv(path, dtype={"Filename": str})
    outputs = {clip_id(str(row[0])): np.asarray(row[1:], float) for row in table.itertuples(index=False)}
    clips = sorted(labels)
    return mean_pearson(np.stack([labels[c] for c in clips]), np.stack([outputs[c] for c in clips]))[0]


def spread(values: list[float], digits: int = 4) -> str:
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return ""
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.{digits}f} ± {sd:.{digits}f}"


def measure(label: str, data: Path, features: list[str], args, work: Path, extra: dict, held: dict | None = None) -> list[str]:
    rows = []
    for trials in args.trials:
        methods = [m for m in METHODS if m in args.methods]
        figures = {m: {"finished": [], "pruned": [], "seconds": [], "selection": [], "oof": [], "unseen": []} for m in (*methods, "ridge")}
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
                oof = result.estimate.score if result.estimate is not None else float("nan")
                unseen = unseen_score(result.submission, held or {})
                f["selection"].append(result.score), f["oof"].append(oof), f["unseen"].append(unseen)
                if result.estimate is not None and len(figures["ridge"]["oof"]) == seed - args.first_seed:  # the baseline once per seed
                    figures["ridge"]["oof"].append(result.estimate.baseline_score)
                print(
                    f"{label} trials={trials} seed={seed} {method}: {finished} finished, {pruned} pruned, {seconds:.0f} s, "
                    f"selection {result.score:.4f}, out of fold {oof:.4f}, unseen {unseen:.4f}, chosen {result.params}"
                    + (f"; {result.selection}" if result.selection else ""),
                    file=sys.stderr,
                    flush=True,
                )
        for method in (*methods, "ridge"):
            f = figures[method]
            if method == "ridge":
                rows.append(f"| {label} | {trials} | ridge (linear baseline) | | | | | {spread(f['oof'])} |" + (" |" if held else ""))
                continue
            rows.append(
                f"| {label} | {trials if method != 'defaults' else 1} | {method} | {spread(f['finished'], 1)} | "
                f"{spread(f['pruned'], 1)} | {spread(f['seconds'], 0)} s | {spread(f['selection'])} | {spread(f['oof'])} |"
                + (f" {spread(f['unseen'])} |" if held else "")
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
    parser.add_argument("--held", type=int, default=0, help="validation clips of each fixture set held back as labelled unseen test clips")
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
        "| set | --trials | method | finished | pruned | wall time | selection score (validation) | out of fold |"
        + (f" unseen ({args.held} clips) |" if args.held else ""),
        "|---|---|---|---|---|---|---|---|" + ("---|" if args.held else ""),
    ]
    extra = {"epochs": args.epochs}
    with tempfile.TemporaryDirectory() as tmp:
        work, sets = Path(tmp), args.sets.split(",")
        if "quirky" in sets:
            own = work / "quirky"
            quirky_hume(own, train=args.clips, valid=args.clips * 3 // 4 + args.held, test=3, seed=11)
            held = hold_back(own, args.held) if args.held else None
            rows += measure(f"quirky ({args.clips} train clips, egemaps)", own, ["egemaps"], args, work, extra, held)
        if "ordered" in sets:
            ordered = work / "ordered"
            ordered_events_hume(ordered, train=args.clips, valid=args.clips * 3 // 4 + args.held, test=3)
            held = hold_back(ordered, args.held) if args.held else None
            rows += measure(f"ordered events ({args.clips} train clips, egemaps)", ordered, ["egemaps"], args, work, extra, held)
        if "bursts" in sets:
            bursts = work / "bursts"
            bursts_hume(bursts, train=args.clips, valid=args.clips * 3 // 4 + args.held, test=3)
            held = hold_back(bursts, args.held) if args.held else None
            rows += measure(f"bursts, a fourth set ({args.clips} train clips, egemaps)", bursts, ["egemaps"], args, work, extra, held)
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
