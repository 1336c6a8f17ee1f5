"""Fine-tuning throughput and memory: training samples/s of the engine's epoch
(challenge.finetune.loops.fit_clips: windows, layer-wise groups, schedule, clipping, early
stopping) against a bare torch loop of the same model and batches (AdamW, backward, step), in
one run; and peak memory of a training step with and without gradient checkpointing, each in
its own process. On a CUDA machine, also fp32 against bf16 autocast. Not run by CI.

    .venv/bin/python benchmarks/finetune.py [--size tiny|base] [--steps 12] [--batch 4] [--seconds 4]

`--size base` is wav2vec2-base's architecture (95 M parameters, random weights: speed and memory
do not depend on the values). The goal: engine / bare >= 0.9.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(HERE))

SIZES = {
    "tiny": {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 128, "conv_dim": (64,) * 7},
    "base": {},  # Wav2Vec2Config's defaults are wav2vec2-base's
}


def model_folder(size: str, work: Path) -> Path:
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    folder = work / f"wav2vec2-{size}"
    if not (folder / "config.json").exists():
        Wav2Vec2Model(Wav2Vec2Config(**SIZES[size])).save_pretrained(folder)
    return folder


def clips(work: Path, count: int, seconds: float):
    """Clips of random speech-band noise as WAV files, decoded once into the loader's RAM cache."""
    import numpy as np
    import soundfile

    from challenge.finetune.loaders import WaveformClips

    work.mkdir(parents=True, exist_ok=True)
    paths = []
    rng = np.random.default_rng(count)
    for k in range(count):
        path = work / f"clip{k}.wav"
        if not path.exists():
            soundfile.write(path, (0.1 * rng.normal(size=int(seconds * 16000))).astype("float32"), 16000)
        paths.append(path)
    data = WaveformClips([p.stem for p in paths], paths, rng.uniform(size=(count, 6)).astype("float32"))
    for i in range(count):
        data.waveform(i)
    return data


def build(folder: Path, device: str, checkpointing: bool):
    from challenge.finetune.backbones import load_backbone
    from challenge.finetune.modules import ClipRegressor
    from challenge.heads.lstm import GlobalContextLSTM

    backbone = load_backbone("wav2vec2", {"model": str(folder)})
    model = ClipRegressor(backbone, GlobalContextLSTM(backbone.width, 128, 1, 0.1, 128, 6)).to(device)
    backbone.freeze(0, True)
    backbone.checkpointing(checkpointing)
    return model


def params(batch: int, seconds: float, precision: str) -> dict:
    return {
        "epochs": 1,
        "patience": 1,
        "batch_size": batch,
        "window_seconds": seconds,
        "augment_gain_db": 0.0,
        "loss": "mse",
        "backbone_lr": 5e-5,
        "head_lr": 1e-3,
        "layer_decay": 0.75,
        "warmup": 0.1,
        "schedule": "cosine",
        "accumulate": 1,
        "precision": precision,
        "learning_rate": 1e-3,
        "weight_decay": 0.01,
        "trainable_blocks": 0,
        "freeze_feature_encoder": True,
        "checkpointing": False,
    }


def engine_epoch(model, train, valid, p: dict, device: str) -> float:
    """Seconds of one epoch of the engine, its validation pass subtracted."""
    from challenge.finetune.loops import fit_clips, predict_clips

    began = time.perf_counter()
    fit_clips(model, train, valid, p, lambda t, o: 0.0, None, 0, device)
    total = time.perf_counter() - began
    began = time.perf_counter()
    predict_clips(model, valid, p, device)
    return total - (time.perf_counter() - began)


def bare_epoch(model, train, p: dict, device: str) -> float:
    """The same batches through a plain AdamW loop: forward, MSE, backward, step."""
    import numpy as np
    import torch

    from challenge.finetune.loops import _waveform_batch

    optimiser = torch.optim.AdamW([q for q in model.parameters() if q.requires_grad], lr=1e-4)
    rng = np.random.default_rng(0)
    targets = torch.from_numpy(train.targets)
    model.train()
    began = time.perf_counter()
    order = rng.permutation(len(train))
    for start in range(0, len(order), p["batch_size"]):
        index = order[start : start + p["batch_size"]]
        x, samples = _waveform_batch([train.train_window(int(i), p["window_seconds"], rng) for i in index], device)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=p["precision"] == "bf16"):
            loss = torch.nn.functional.mse_loss(model(x, samples).float(), targets[index].to(device))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - began


def throughput(args, work: Path, device: str, precision: str) -> dict:
    import torch

    folder = model_folder(args.size, work)
    train, valid = clips(work, args.steps * args.batch, args.seconds), clips(work / "valid", 2, args.seconds)
    p = params(args.batch, args.seconds, precision)
    engine, bare = [], []
    for repeat in range(args.repeats + 1):  # the first round warms up (allocator, kernels) and is not counted
        torch.manual_seed(0)
        e = engine_epoch(build(folder, device, False), train, valid, p, device)
        torch.manual_seed(0)
        b = bare_epoch(build(folder, device, False), train, p, device)
        if repeat:
            engine.append(e)
            bare.append(b)
    samples = len(train)
    return {"engine_samples_per_s": samples / statistics.median(engine), "bare_samples_per_s": samples / statistics.median(bare)}


def memory_probe(size: str, work: str, checkpointing: bool, batch: int, seconds: float, device: str) -> None:
    """One training step in this process; prints the memory it took above what the loaded model
    held (MiB): CUDA's peak allocation, or on CPU the peak resident size (VmHWM, reset through
    /proc/self/clear_refs) minus the resident size before the step."""
    import torch

    model = build(model_folder(size, Path(work)), device, checkpointing)
    model.train()
    x = torch.randn(batch, int(seconds * 16000), device=device)
    before = _status("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # the peak resident size starts again from now
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    loss = model(x, torch.full((batch,), x.shape[1])).square().mean()
    loss.backward()
    if device.startswith("cuda"):
        print(json.dumps({"peak_mib": torch.cuda.max_memory_allocated() / 2**20}))
    else:
        print(json.dumps({"peak_mib": _status("VmHWM") - before}))


def _status(field: str) -> float:
    """A /proc/self/status figure in MiB."""
    line = next(row for row in Path("/proc/self/status").read_text().splitlines() if row.startswith(field + ":"))
    return int(line.split()[1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=sorted(SIZES), default="tiny")
    parser.add_argument("--steps", type=int, default=12, help="optimiser steps per timed epoch")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=4.0, help="window length")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--probe", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        size, work, checkpointing, batch, seconds, device = args.probe
        memory_probe(size, work, checkpointing == "1", int(batch), float(seconds), device)
        return
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model_folder(args.size, work)
        print(
            f"wav2vec2-{args.size} + LSTM head, batch {args.batch} x {args.seconds:g} s, {args.steps} steps per epoch, "
            f"median of {args.repeats}, device {device}"
        )
        for precision in ("fp32", "bf16") if device == "cuda" else ("fp32",):
            figures = throughput(args, work, device, precision)
            ratio = figures["engine_samples_per_s"] / figures["bare_samples_per_s"]
            print(
                f"  {precision}: engine {figures['engine_samples_per_s']:.2f} samples/s, bare torch loop "
                f"{figures['bare_samples_per_s']:.2f} samples/s, ratio {ratio:.3f} (goal >= 0.9)"
            )
        peaks = {}
        for checkpointing in ("0", "1"):
            out = subprocess.run(
                [sys.executable, __file__, "--probe", args.size, str(work), checkpointing, str(args.batch), str(args.seconds), device],
                capture_output=True,
                text=True,
                check=True,
            )
            peaks[checkpointing] = json.loads(out.stdout.strip().splitlines()[-1])["peak_mib"]
        print(
            f"  peak memory of one training step: {peaks['0']:.0f} MiB without gradient checkpointing, {peaks['1']:.0f} MiB with "
            f"(ratio {peaks['1'] / max(peaks['0'], 1e-9):.2f})"
        )


if __name__ == "__main__":
    main()
