"""Fine-tuned backbone against frozen features, same split, over seeds: on the demo EMI data
(its stand-in wav2vec2, 64 wide) and on an EMI-layout set written apart from the demo
(tests/fixtures/quirky.py, 80 train / 60 valid clips, a 32-wide tiny wav2vec2), each row
`challenge track emi` with --seeds S:

    fine-tuned   --finetune (wav2vec2-lstm: the backbone and an LSTM with global context, end to end)
    frozen+lstm  --head lstm --features wav2vec2 (the same kind of head on the frozen backbone's features)
    ridge        --head ridge --features wav2vec2 (the linear baseline on the frozen features)

Random-weight backbones: what this measures is whether the engine improves a representation
on a signal that is there (pitch, bursts), not what a pretrained wav2vec2 would score. Not run by CI.

    .venv/bin/python benchmarks/finetune_vs_frozen.py [--seeds 3] [--epochs 10] [--sets demo,quirky]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(HERE))


def prepare(work: Path, name: str) -> tuple[Path, Path]:
    if name == "demo":
        from challenge.synthetic.stand_ins import write_stand_ins
        from tracks.hume.demo import write_emi_demo

        data = work / "demo"
        write_emi_demo(data)
        return data, write_stand_ins(data, [data])["audio_model"]
    from challenge.synthetic.stand_ins import tiny_wav2vec2
    from tests.fixtures.quirky import quirky_hume

    data = work / "quirky"
    quirky_hume(data, train=80, valid=60, test=20)
    return data, tiny_wav2vec2(work / "w2v-32", hidden=32)


def run(data: Path, model: Path, work: Path, seeds: int, **flags):
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
            "audio_model": str(model),
            "features": ["wav2vec2"],
            "seeds": seeds,
            "store": str(work / "store"),
            "tracking_uri": f"sqlite:///{work}/mlflow.db",
            "out": None,
            **flags,
        },
        spec,
    )
    return run_track(spec, config)


def figure(result, seeds: int) -> str:
    if seeds == 1:
        return f"{result.score:.4f}"
    return f"{result.details['score mean']:.4f} ± {result.details['score sd']:.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--sets", default="demo,quirky")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        print(f"validation mean Pearson, {args.seeds} seeds (mean ± sd), fine-tuning {args.epochs} epochs at most")
        print("| set | fine-tuned wav2vec2 + LSTM | frozen features + LSTM | ridge on frozen features |")
        print("|---|---|---|---|")
        for name in args.sets.split(","):
            data, model = prepare(work, name)
            tuned = run(data, model, work, args.seeds, head="wav2vec2-lstm", epochs=args.epochs)
            frozen = run(data, model, work, args.seeds, head="lstm")
            ridge = run(data, model, work, 1, head="ridge")
            print(f"| {name} | {figure(tuned, args.seeds)} | {figure(frozen, args.seeds)} | {ridge.score:.4f} |", flush=True)


if __name__ == "__main__":
    main()
