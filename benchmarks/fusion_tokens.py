"""What one training step of the fusion transformer (`--head clip-transformer`) costs when a slower
modality is read once per distinct row instead of once per step: eGeMAPS-sized audio at 100 Hz
with face features at 25 fps (each face row repeated over 4 audio steps), a smile-laugh clip of
1.2 s (121 steps), batch 16, the head's default sizes. Medians of alternated repeats, one run.
Not run by CI.

    .venv/bin/python benchmarks/fusion_tokens.py [--repeats 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10, help="training steps per repeat")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    import torch

    import challenge.heads.clip_transformer as fusion

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    audio, faces, steps, batch = 25, 64, 121, 16
    model = fusion.ClipFusionTransformer([audio, faces], 64, 2, 4, 0.1, 128, 3, linear_path=True, classify=True)
    x = torch.randn(batch, steps, audio + faces)
    x[:, :, audio:] = x[:, ::4, audio:].repeat_interleave(4, dim=1)[:, :steps]
    lengths, context, present = torch.full((batch,), steps), torch.randn(batch, 2 * (audio + faces)), torch.ones(batch, 2, dtype=torch.bool)
    optimiser = torch.optim.AdamW(model.parameters())
    distinct = fusion.distinct_steps

    def every_step(part, hidden):  # the head before: one token per step
        return part, torch.arange(part.shape[1])[None].expand(part.shape[0], -1), hidden

    def seconds_per_step(compact) -> float:
        fusion.distinct_steps = compact
        try:
            start = time.perf_counter()
            for _ in range(args.steps):
                optimiser.zero_grad()
                model(x, lengths, context, present).sum().backward()
                optimiser.step()
            return (time.perf_counter() - start) / args.steps
        finally:
            fusion.distinct_steps = distinct

    seconds_per_step(distinct), seconds_per_step(every_step)  # warm-up
    times = {"distinct rows": [], "every step": []}
    for _ in range(args.repeats):
        times["distinct rows"].append(seconds_per_step(distinct))
        times["every step"].append(seconds_per_step(every_step))
    medians = {k: statistics.median(v) for k, v in times.items()}
    print(
        f"fusion transformer training step: batch {batch}, {steps} audio steps, faces at a quarter of the rate, "
        f"{args.threads} thread(s), median of {args.repeats} x {args.steps} steps"
    )
    for name, value in medians.items():
        print(f"  {name:14s} {value * 1000:8.1f} ms")
    print(f"  ratio (every step / distinct rows): {medians['every step'] / medians['distinct rows']:.2f}")


if __name__ == "__main__":
    main()
