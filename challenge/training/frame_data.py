"""Per-frame training data for Aff-Wild2 tracks: each video's features on its frame axis.

Visual features (crop folders) are indexed by frame number, audio features are sampled at each
frame's time; both are read memory-mapped at each access, so long videos stream from disk.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from challenge.errors import ChallengeError, list_offenders
from challenge.stores.feature_store import StoreEntry
from challenge.training.frames import audio_on_frames, visual_on_frames
from challenge.training.normalise import Normaliser


@dataclass
class FrameEntry:
    entry: StoreEntry | None  # the store entry; None when the video lacks this media
    index: list[int] | None  # frame numbers of the rows (visual), None for audio
    step_rate: float | None  # steps per second (audio), None for visual


@dataclass
class FrameFeatures:
    ids: list[str]
    lengths: list[int]  # frames per video (annotation lines, or the sample file's frames for test)
    fps: list[float]
    entries: list[list[FrameEntry]]
    dims: list[int]
    labels: list[np.ndarray] | None = None  # per video [n_frames, width], invalid markers kept
    normaliser: Normaliser | None = None  # fitted on the training split

    @property
    def dim(self) -> int:
        return sum(self.dims)

    def __len__(self) -> int:
        return len(self.ids)

    def video(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """([n_frames, D] normalised features, [n_frames] True where a face crop was missing)."""
        n = self.lengths[i]
        columns, filled = [], np.zeros(n, bool)
        for entry, dim in zip(self.entries[i], self.dims):
            if entry.entry is None:
                columns.append(np.zeros((n, dim), np.float32))
                continue
            array = entry.entry.array()
            if entry.index is not None:
                aligned, missing = visual_on_frames(array, entry.index, n)
                filled |= missing
            else:
                aligned = audio_on_frames(array, entry.step_rate, n, self.fps[i])
            columns.append(aligned)
        out = np.concatenate(columns, axis=1)
        return (self.normaliser(out) if self.normaliser is not None else out.astype(np.float32)), filled

    def filled_frames(self) -> int:
        """Frames without a face crop (their visual features come from a neighbour)."""
        total = 0
        for n, row in zip(self.lengths, self.entries):
            visual = [e for e in row if e.index is not None]
            if visual:
                present = np.unique([f for f in visual[0].index if 1 <= f <= n])
                total += n - len(present)
        return total

    def targets(self) -> np.ndarray:
        """All videos' labels, one after another (the order of every concatenated output)."""
        return np.concatenate(self.labels)

    def fit_normalisation(self, max_videos: int = 200) -> Normaliser:
        raw = FrameFeatures(self.ids, self.lengths, self.fps, self.entries, self.dims)
        return Normaliser.fit(raw.video(i)[0] for i in range(min(len(self), max_videos)))

    def normalise_with(self, normaliser: Normaliser) -> FrameFeatures:
        self.normaliser = normaliser
        return self

    def subset(self, indices) -> FrameFeatures:
        indices = list(indices)
        pick = lambda values: [values[i] for i in indices]  # noqa: E731
        return FrameFeatures(
            pick(self.ids),
            pick(self.lengths),
            pick(self.fps),
            pick(self.entries),
            self.dims,
            None if self.labels is None else pick(self.labels),
            self.normaliser,
        )

    @staticmethod
    def join(parts: list[FrameFeatures]) -> FrameFeatures:
        """Several splits as one pool (fold ensembles); they must share features and normalisation."""
        first = parts[0]
        labels = None if any(p.labels is None for p in parts) else [x for p in parts for x in p.labels]
        joined = lambda name: [x for p in parts for x in getattr(p, name)]  # noqa: E731
        return FrameFeatures(joined("ids"), joined("lengths"), joined("fps"), joined("entries"), first.dims, labels, first.normaliser)


def frame_features(samples, extractors, store, digests, lengths: dict[str, int], fps: dict[str, float]) -> FrameFeatures:
    """Assemble FrameFeatures; `lengths[video]` frames each, `fps[video]` for audio alignment."""
    found = {e.label: {s.id: _require(store, e, digests, s.id) for s in samples} for e in extractors}
    entries, dims, empty = [], [], []
    for extractor in extractors:
        width = next((entry.width for entry in found[extractor.label].values() if entry is not None), None)
        if width is None:
            raise ChallengeError(f"no {extractor.name} features for any video: extraction did not run or every media file is missing.")
        dims.append(width)
    for sample in samples:
        row = []
        for extractor in extractors:
            entry = found[extractor.label][sample.id]
            if entry is None:
                row.append(FrameEntry(None, None, None))
                continue
            visual = entry.meta.get("index") is not None
            row.append(FrameEntry(entry, entry.meta["index"] if visual else None, None if visual else entry.meta["frame_rate"]))
        if all(e.entry is None for e in row):
            empty.append(sample.id)
        entries.append(row)
    if empty:
        raise ChallengeError(f"{len(empty)} video(s) have no features at all:\n{list_offenders(empty)}")
    labels = [s.labels for s in samples] if samples and samples[0].labels is not None else None
    return FrameFeatures(
        [s.id for s in samples], [lengths[s.id] for s in samples], [fps.get(s.id, 30.0) for s in samples], entries, dims, labels
    )


def _require(store, extractor, digests, sample_id) -> StoreEntry | None:
    digest = digests[extractor.label].get(sample_id)
    return store.require(extractor, digest, f"video {sample_id}") if digest else None
