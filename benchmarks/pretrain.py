"""Pretraining throughput: items/s of `challenge pretrain mae` (images/s: JPEG files decoded and
augmented by DataLoader workers) and of `challenge pretrain social-mae` (clips/s: filterbank and
face frames cut from memory-mapped arrays by the workers), through the training engine's step,
checkpoints and MLflow, against a bare torch loop of the same model and batch on tensors already
in memory (plain AdamW, nothing else), in one run; and the share of the command's step time spent
waiting for data.

    .venv/bin/python benchmarks/pretrain.py [--model mae|social-mae] [--steps 40] [--device cpu|cuda] [--size small|base]

`--size base` is ViT-B/16 at 224 (the published MAE's encoder, decoder 512 x 8; Social-MAE at
the paper's sizes): for a GPU machine, where `--precision bf16` measures mixed precision."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

SIZES = {
    "tiny": dict(image_size=32, patch_size=4, hidden_size=64, layers=3, heads=4, decoder_hidden_size=32, decoder_layers=1, decoder_heads=2),
    "small": dict(
        image_size=64, patch_size=8, hidden_size=192, layers=6, heads=3, decoder_hidden_size=128, decoder_layers=2, decoder_heads=4
    ),
    "base": dict(
        image_size=224, patch_size=16, hidden_size=768, layers=12, heads=12, decoder_hidden_size=512, decoder_layers=8, decoder_heads=16
    ),
}
SOCIAL_SIZES = {
    "tiny": dict(
        image_size=32,
        frames=4,
        tubelet=2,
        patch_size=8,
        mel_bins=32,
        audio_frames=64,
        width=64,
        modality_depth=2,
        joint_depth=1,
        heads=4,
        decoder_width=32,
        decoder_depth=1,
        decoder_heads=2,
    ),
    "small": dict(
        image_size=64,
        frames=8,
        tubelet=2,
        patch_size=16,
        mel_bins=64,
        audio_frames=256,
        width=192,
        modality_depth=4,
        joint_depth=1,
        heads=3,
        decoder_width=128,
        decoder_depth=2,
        decoder_heads=4,
    ),
    "base": {},  # the paper's: the settings' defaults
}


def write_images(folder: Path, count: int, side: int) -> None:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    for k in range(count):  # noise plus a blob, as large as the model's input, saved as JPEG: decoding costs what a face crop costs
        pixels = rng.integers(0, 255, (side, side, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{k:06d}.jpg", quality=90)


def bare_loop(kind: str, settings, batch: int, steps: int, device: str, precision: str) -> float:
    """Items/s of forward, backward and AdamW on one in-memory batch, nothing else."""
    import torch

    from challenge.pretrain.mae import build_mae
    from challenge.pretrain.social import build_social_mae

    model = (build_mae(settings)[0] if kind == "mae" else build_social_mae(settings)[0]).to(device).train()
    optimiser = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay)
    if kind == "mae":
        inputs = {"pixel_values": torch.randn(batch, 3, settings.image_size, settings.image_size, device=device)}
    else:
        c = model.config
        inputs = {
            "fbank": torch.randn(batch, c.audio_frames, c.mel_bins, device=device),
            "video": torch.randn(batch, c.frames, 3, c.image_size, c.image_size, device=device),
        }
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)

    def step():
        with torch.autocast("cuda", dtype=dtype) if dtype and device.startswith("cuda") else torch.autocast("cpu", enabled=False):
            output = model(**inputs)
            loss = output.loss if kind == "mae" else output["loss"]
        loss.backward()
        optimiser.step()
        optimiser.zero_grad(set_to_none=True)

    for _ in range(3):
        step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return batch * steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", choices=("mae", "social-mae"), default="mae")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", choices=SIZES, default="small")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from challenge.pretrain.mae import pretrain_mae
    from challenge.pretrain.settings import MAEPretrainSettings, SocialMAEPretrainSettings
    from challenge.pretrain.social import pretrain_social_mae
    from challenge.progress import set_quiet

    set_quiet(True)
    root = Path(tempfile.mkdtemp(prefix="pretrain-bench-"))
    common = dict(epochs=1, epoch_steps=args.steps, batch_size=args.batch, workers=args.workers, valid_items=0, precision=args.precision)
    if args.model == "mae":
        size = SIZES[args.size]
        write_images(root / "images", max(4 * args.batch, 256), size["image_size"])
        settings = lambda k: MAEPretrainSettings(**size, **common, crop_scale=0.6, seed=k)  # noqa: E731
        run = lambda k: pretrain_mae([root / "images"], [], root / f"out-{k}", settings(k), args.device, f"sqlite:///{root}/mlflow.db")  # noqa: E731
    else:
        from tracks.smiles.demo import write_smiles_demo

        size = SOCIAL_SIZES[args.size]
        write_smiles_demo(root / "smiles")
        settings = lambda k: SocialMAEPretrainSettings(**size, **common, seed=k)  # noqa: E731
        # each repeat reads the videos (sound and faces) into its own folder first; only the training after that is timed
        run = lambda k: pretrain_social_mae(
            [root / "smiles" / "a" / "videos"],
            root / f"out-{k}",
            settings(k),
            args.device,  # noqa: E731
            f"sqlite:///{root}/mlflow.db",
        )
    engine, bare, waits = [], [], []
    for k in range(args.repeats):  # alternated, so drift of the machine falls on both
        start = time.perf_counter()
        result = run(k)
        summary = json.loads((result.out / "pretrain.json").read_text())
        engine.append(args.batch * args.steps / summary["train_seconds"])
        waits.append(summary["data_wait_share"])
        whole = time.perf_counter() - start
        bare.append(bare_loop(args.model, settings(k), args.batch, args.steps, args.device, args.precision))
        print(
            json.dumps(
                {
                    "repeat": k,
                    "engine_items_per_s": round(engine[-1], 1),
                    "bare_items_per_s": round(bare[-1], 1),
                    "data_wait_share": round(waits[-1], 3),
                    "command_seconds": round(whole, 1),
                }
            ),
            flush=True,
        )
    e, b = statistics.median(engine), statistics.median(bare)
    unit = "images" if args.model == "mae" else "clips"
    print(
        f"\n{args.model} {args.size} ({json.dumps(size)}), batch {args.batch}, "
        f"{args.steps} steps, {args.workers} workers, {args.device} {args.precision}, {os.cpu_count()} CPUs"
    )
    print(
        f"pretrain {args.model}: {e:.1f} {unit}/s   bare loop: {b:.1f} {unit}/s   ratio {e / b:.3f} (goal >= 0.9)   "
        f"waiting for data: {statistics.median(waits):.1%} of step time (medians of {args.repeats})"
    )


if __name__ == "__main__":
    main()
