"""The EMI fusion transformer (`--head clip-transformer`) against the LSTM with global context and
the ridge baseline, same split and features, over seeds, each row `challenge track emi`:

    demo        the demo EMI data, wav2vec2 + mae (its random stand-in models)
    quirky      an EMI-layout set written apart from the demo (tests/fixtures/quirky.py,
                80 train / 60 valid clips; the voice's pitch and the drawn mouth follow the level)
    transcripts the quirky media with targets set by what each clip says (tests/fixtures/transcripts.py,
                36 / 24 clips), wav2vec2 + mae + text (the real all-MiniLM-L6-v2)

Random-weight audio and face backbones: what this measures is whether fusion uses the signal
that is there, not what pretrained encoders would score. Not run by CI.

    .venv/bin/python benchmarks/emi_fusion.py [--seeds 3] [--epochs 15] [--sets demo,quirky,transcripts]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(HERE))


def prepare(work: Path, name: str) -> tuple[Path, list[str]]:
    """The dataset root (with a challenge.yaml naming stand-in models) and its feature sets."""
    from challenge.synthetic.stand_ins import write_stand_ins

    data = work / name
    if name == "demo":
        from tracks.hume.demo import write_emi_demo

        write_emi_demo(data)
    elif name == "quirky":
        from tests.fixtures.quirky import quirky_hume

        quirky_hume(data, train=80, valid=60, test=20)
    else:
        from tests.fixtures.transcripts import text_corpus

        text_corpus(data)
    write_stand_ins(work, [data])
    return data, ["wav2vec2", "mae"] + (["text"] if name == "transcripts" else [])


def run(data: Path, features: list[str], work: Path, seeds: int, **flags):
    from challenge.config import load_config
    from challenge.progress import set_quiet
    from challenge.registry import get_track
    from challenge.run.runner import run as run_track

    set_quiet(True)
    spec = get_track("emi")
    config = load_config(
        None,
        {
            "track": "emi",
            "data": str(data),
            "features": features,
            "seeds": seeds,
            "store": str(work / "store"),
            "tracking_uri": f"sqlite:///{work}/mlflow.db",
            **flags,
        },
        spec,
    )
    return run_track(spec, config)


def main() -> None:
    from benchmarks.finetune_vs_frozen import figure

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--sets", default="demo,quirky,transcripts")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        print(f"validation mean Pearson, {args.seeds} seeds (mean ± sd), {args.epochs} epochs at most, head defaults (untuned)")
        print("| set | features | clip-transformer | lstm | ridge (baseline) |")
        print("|---|---|---|---|---|")
        for name in args.sets.split(","):
            data, features = prepare(work, name)
            fusion = run(data, features, work, args.seeds, head="clip-transformer", epochs=args.epochs)
            lstm = run(data, features, work, args.seeds, head="lstm", epochs=args.epochs)
            ridge = run(data, features, work, 1, head="ridge")
            print(
                f"| {name} | {'+'.join(features)} | {figure(fusion, args.seeds)} | {figure(lstm, args.seeds)} | {ridge.score:.4f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
