"""One training epoch of the default head over a feature store at the real EMI scale.

Builds (once, reused on later runs) a synthetic store shaped like wav2vec2-large features of
Hume-Vidmimic2: 12,660 clips (8,072 train, 4,588 valid), 200-600 steps each, 1024 dims,
float16 (about 10 GB), then times one epoch of the global-context LSTM with its default
parameters, validation pass included. Prints seconds per epoch and peak RSS (target: < 4 GiB).
Not run by CI.

    .venv/bin/python benchmarks/epoch_at_scale.py [--root /tmp/emi-scale] [--clips 12660]
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import numpy as np

from challenge.heads import get_head
from challenge.stores.feature_store import StoreEntry
from challenge.track import Problem
from challenge.training.inputs import ClipFeatures, ModalityEntry
from tracks.hume.emi import score as emi_score

DIM = 1024


def build_store(root: Path, clips: int, seed: int = 0) -> list[ModalityEntry]:
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    entries = []
    for i in range(clips):
        path = root / f"{i:05d}.npy"
        steps = int(rng.integers(200, 601))
        if not path.exists():
            np.save(path, rng.standard_normal((steps, DIM), dtype=np.float32).astype(np.float16))
        entries.append(ModalityEntry(StoreEntry.for_file(path), steps))
        if i % 1000 == 0:
            print(f"  store: {i}/{clips} clips", flush=True)
    return entries


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", type=Path, default=Path("/tmp/emi-scale-store"))
    parser.add_argument("--clips", type=int, default=12660)
    args = parser.parse_args()
    start = time.perf_counter()
    entries = build_store(args.root, args.clips)
    size = sum(e.entry.path.stat().st_size for e in entries) / 2**30
    print(f"store: {len(entries)} clips, {size:.1f} GiB on disk, ready in {time.perf_counter() - start:.0f} s")
    n_train = int(len(entries) * 8072 / 12660)
    rng = np.random.default_rng(1)
    targets = rng.uniform(size=(len(entries), 6)).astype(np.float32)
    data = ClipFeatures([f"{i:05d}" for i in range(len(entries))], [[e] for e in entries], [DIM], targets)
    data.normalise_with(np.zeros(DIM), np.ones(DIM))
    train, valid = data.subset(range(n_train)), data.subset(range(n_train, len(entries)))
    head_cls = get_head("lstm")
    params = head_cls.default_parameters() | {"epochs": 1}
    head = head_cls(params, Problem.CLIP_REGRESSION, 6, seed=0)
    print(f"one epoch of lstm {params} over {len(train)} train + {len(valid)} valid clips ...", flush=True)
    start = time.perf_counter()
    head.fit(train, valid, lambda t, p: emi_score(t, p).value)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"seconds per epoch (train + validation pass): {seconds:.0f}")
    print(f"peak RSS: {peak:.2f} GiB (target < 4 GiB; store is {size:.1f} GiB)")


if __name__ == "__main__":
    main()
