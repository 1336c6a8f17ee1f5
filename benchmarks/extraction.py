"""Extraction end to end against the bare forward pass, and the cache-hit speed-up.

Real-size architectures with random weights (wav2vec2-base, ViT-B/16 MAE), saved and loaded
back like a checkpoint. Prints audio seconds/s, frames/s, the end-to-end / bare ratio, the
cache-hit speed-up and peak memory. Not run by CI.

    .venv/bin/python benchmarks/extraction.py [--clips 16] [--seconds 6] [--faces 12] [--frames 24]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from challenge.data.samples import Sample
from challenge.features import FeatureStore, make_extractor
from challenge.features.extract import extract
from challenge.progress import set_quiet
from challenge.synthetic.draw import FaceState, burst_envelope, draw_face, voice, write_audio


def build_models(root: Path) -> dict[str, Path]:
    from transformers import ViTMAEConfig, ViTMAEModel, Wav2Vec2Config, Wav2Vec2Model

    torch.manual_seed(0)
    Wav2Vec2Model(Wav2Vec2Config()).save_pretrained(root / "wav2vec2-base")  # base: 12 layers, 768 wide
    ViTMAEModel(ViTMAEConfig()).save_pretrained(root / "vit-mae-base")  # ViT-B/16, 224 px
    return {"wav2vec2": root / "wav2vec2-base", "mae": root / "vit-mae-base"}


def build_media(root: Path, clips: int, seconds: float, faces: int, frames: int) -> list[Sample]:
    rng = np.random.default_rng(0)
    samples = []
    for i in range(max(clips, faces)):
        audio = folder = None
        if i < clips:
            audio = root / "audio" / f"{i:05d}.mp3"
            write_audio(audio, voice(seconds, rng.uniform(), burst_envelope(seconds, 1.5, rng), rng))
        if i < faces:
            folder = root / "faces" / f"{i:05d}"
            folder.mkdir(parents=True)
            for n in range(1, frames + 1):
                face = draw_face(FaceState(smile=rng.uniform()), 112, rng, (40, 60, 80))
                face.save(folder / f"{n:05d}.jpg", quality=90)
        samples.append(Sample(id=f"{i:05d}", split="train", audio=audio, frames_dir=folder))
    return samples


def bare_forward_seconds(extractor, samples) -> float:
    """Model only: inputs decoded beforehand, nothing written."""
    runner = extractor.build("cpu")
    prepared = [runner.prepare(extractor.source(s)) for s in samples if extractor.source(s)]
    runner.forward(prepared[0])  # warm-up
    start = time.perf_counter()
    for item in prepared:
        runner.forward(item)
    return time.perf_counter() - start


def measure(name: str, extractor, samples, units: float, unit: str, store_root: Path) -> dict:
    """End to end includes loading the model from disk, so its ratio to the bare forward pass
    is a lower bound."""
    bare = bare_forward_seconds(extractor, samples)
    store = FeatureStore(store_root / name)
    start = time.perf_counter()
    extract(extractor, samples, store, device="cpu")
    end_to_end = time.perf_counter() - start
    hits = []
    for _ in range(3):
        start = time.perf_counter()
        extract(extractor, samples, FeatureStore(store_root / name))
        hits.append(time.perf_counter() - start)
    hit = statistics.median(hits)
    return {"name": name, "bare": units / bare, "e2e": units / end_to_end, "unit": unit, "end_to_end_s": end_to_end, "hit_s": hit}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clips", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--faces", type=int, default=8)
    parser.add_argument("--frames", type=int, default=24)
    args = parser.parse_args()
    set_quiet(True)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        models = build_models(root / "models")
        samples = build_media(root / "media", args.clips, args.seconds, args.faces, args.frames)
        print(
            f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.clips} clips x {args.seconds:.0f} s audio, "
            f"{args.faces} folders x {args.frames} face crops"
        )
        rows = []
        for bf16 in (False, True):
            tag = "bf16" if bf16 else "fp32"
            w2v = make_extractor("wav2vec2", model=str(models["wav2vec2"]), bf16=bf16)
            rows.append(measure(f"wav2vec2-base {tag}", w2v, samples, args.clips * args.seconds, "audio s/s", root / "store"))
            mae = make_extractor("mae", model=str(models["mae"]), bf16=bf16)
            rows.append(measure(f"ViT-B/16 MAE {tag}", mae, samples, args.faces * args.frames, "frames/s", root / "store"))
        print(f"\n{'extractor':<22}{'bare forward':>16}{'end to end':>16}{'e2e/bare':>10}{'extract s':>11}{'hit s':>9}{'hit speed-up':>14}")
        for r in rows:
            print(
                f"{r['name']:<22}{r['bare']:>10.2f} {r['unit']:<5}{r['e2e']:>10.2f} {r['unit']:<5}{r['e2e'] / r['bare']:>10.2f}"
                f"{r['end_to_end_s']:>11.1f}{r['hit_s']:>9.3f}{r['end_to_end_s'] / r['hit_s']:>13.0f}x"
            )
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"\npeak RSS of this process: {peak:.0f} MiB (cache hit = digest check + metadata read, median of 3)")


if __name__ == "__main__":
    main()
