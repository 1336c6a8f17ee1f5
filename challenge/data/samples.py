"""The samples table every reader produces and every track consumes."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd


@dataclass
class Sample:
    id: str  # clip id (EMI) or video name (Aff-Wild2)
    split: str  # "train", "valid" or "test"
    video: Path | None = None
    audio: Path | None = None  # audio file, or the video that carries the audio track
    frames_dir: Path | None = None  # face crops, one image per frame
    labels: np.ndarray | None = None  # [C] per clip (a class index, 0-d, for clip classes), or [T, C] per frame (row i = frame index[i])
    frame_index: np.ndarray | None = None  # 1-based frame numbers of label rows (frame tracks)
    provided: dict[str, Path] = field(default_factory=dict)  # organisers' feature files by kind
    transcript: Path | None = None  # the team's transcript of the clip (the text stream)
    # per-frame labels of an item labelled as a whole (BAH's A/H segments): a class index per
    # frame, -1 where unknown; training only (heads that learn from frames: frame-pooled)
    frame_labels: np.ndarray | None = None


class Samples(list):
    """A list of `Sample` with the few queries the pipeline needs."""

    skipped: list[str]

    def __init__(self, items=(), skipped: list[str] | None = None):
        super().__init__(items)
        self.skipped = skipped or []  # "id: reason" for every sample a reader left out

    def split(self, name: str) -> Samples:
        return Samples([s for s in self if s.split == name])

    def shard(self, index: int, count: int) -> Samples:
        """Every count-th sample in id order, starting at `index`: shards 0..count-1 of the same
        samples cover each one exactly once, whatever the order the reader listed them in."""
        ordered = sorted(self, key=lambda s: (s.id, s.split))
        return Samples(ordered[index::count], self.skipped)

    def counts(self) -> dict[str, int]:
        return {name: sum(s.split == name for s in self) for name in ("train", "valid", "test")}

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "id": s.id,
                "split": s.split,
                "video": s.video,
                "audio": s.audio,
                "frames_dir": s.frames_dir,
                "n_labels": 0 if s.labels is None else int(np.size(s.labels) if np.ndim(s.labels) < 2 else len(s.labels)),
            }
            for s in self
        )

    def fingerprint(self) -> str:
        """Digest of ids, splits and labels: two runs on the same data share it."""
        hasher = hashlib.sha256()
        for s in sorted(self, key=lambda s: (s.split, s.id)):
            hasher.update(f"{s.split}/{s.id}".encode())
            if s.labels is not None:
                hasher.update(np.ascontiguousarray(s.labels, dtype=np.float64).tobytes())
        return hasher.hexdigest()[:16]
