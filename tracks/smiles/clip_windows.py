"""Per-recording features from the shared store, cut into clip windows or read per frame.

Each recording is extracted once (audio and visual extractors, cached like every feature);
clips are time windows into those sequences, so changing the clip length or hop costs nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from challenge.errors import ChallengeError
from challenge.training.inputs import ClipFeatures, ModalityEntry
from challenge.training.normalise import Normaliser


@dataclass
class RecordingFeatures:
    arrays: dict[str, np.ndarray]  # modality ("audio", "visual") -> [T, D]
    times: dict[str, np.ndarray]  # modality -> [T] time of each row in seconds
    frame_index: np.ndarray | None = None  # 1-based video frame of each visual row


def recording_samples(recordings):
    """The recordings as samples (one video carries both the faces and the voice), for the store."""
    from challenge.data.samples import Sample, Samples

    return Samples([Sample(r.id, r.split, video=r.video, audio=r.video) for r in recordings])


def recording_features(recordings, config):
    """Features of every recording, the width of each modality, and the features' cache keys."""
    from challenge.run.prepare import extract_all

    store, extractors, digests, keys = extract_all(recording_samples(recordings), config)
    out, widths = {}, {}
    for r in recordings:
        arrays, times, frame_index = {}, {}, None
        for extractor in extractors:
            modality = "audio" if extractor.modality == "audio" else "visual"
            entry = store.require(extractor, digests[extractor.label][r.id], f"recording {r.id}")
            array, meta = np.asarray(entry.array(), dtype=np.float32), entry.meta
            rate = meta["frame_rate"]
            index = np.asarray(meta["index"]) if meta.get("index") is not None else np.arange(1, len(array) + 1)
            stamps = (index - 0.5) / rate
            if modality in arrays:  # two extractors of one modality: side by side on the first one's rows
                nearest = np.searchsorted(stamps, times[modality]).clip(0, len(array) - 1)
                arrays[modality] = np.concatenate([arrays[modality], array[nearest]], 1)
            else:
                arrays[modality], times[modality] = array, stamps
                frame_index = index if modality == "visual" else frame_index
            widths[modality] = arrays[modality].shape[1]
        out[r.id] = RecordingFeatures(arrays, times, frame_index)
    return out, widths, keys


@dataclass
class PooledClips:
    """Pooled clip features of every modality side by side, with each modality's columns: the
    data of the clip classification heads."""

    raw: np.ndarray  # [clips, D]
    blocks: dict[str, slice]  # modality -> its columns
    targets: np.ndarray | None = None  # [clips] class index
    normaliser: Normaliser | None = None
    # a corpus scored zero-shot with its own feature statistics (--corpus-norm): fitted on its
    # features alone, never its labels; models then use it instead of their training statistics
    own_normaliser: Normaliser | None = None

    @classmethod
    def of(cls, features: dict[str, RecordingFeatures], clips, modalities: list[str], statistics=("mean", "std")) -> PooledClips:
        return cls.side_by_side({m: pooled_clips(features, clips, m, statistics) for m in modalities}, np.array([c.label for c in clips]))

    @classmethod
    def side_by_side(cls, parts: dict[str, np.ndarray], targets: np.ndarray | None, own: Normaliser | None = None) -> PooledClips:
        """Each modality's [clips, D_m] columns, in the given order, as one set."""
        edges = np.cumsum([0, *(p.shape[1] for p in parts.values())])
        blocks = {m: slice(int(edges[k]), int(edges[k + 1])) for k, m in enumerate(parts)}
        return cls(np.concatenate(list(parts.values()), 1), blocks, targets, None, own)

    def __len__(self) -> int:
        return len(self.raw)

    @property
    def matrix(self) -> np.ndarray:
        return self.normaliser(self.raw) if self.normaliser is not None else self.raw

    def block(self, modality: str) -> np.ndarray:
        return self.matrix[:, self.blocks[modality]]

    def fit_normalisation(self) -> Normaliser:
        return Normaliser.fit([self.raw])

    def normalise_with(self, normaliser: Normaliser) -> PooledClips:
        self.normaliser = normaliser
        return self

    def take(self, rows: np.ndarray, normaliser: Normaliser | None = None) -> PooledClips:
        """The given rows (a mask or indices) as their own set, normalised with `normaliser`."""
        return PooledClips(self.raw[rows], self.blocks, None if self.targets is None else self.targets[rows], normaliser)

    def only(self, modalities: list[str]) -> PooledClips:
        """The same clips with only these modalities' columns."""
        columns = np.concatenate([np.arange(self.raw.shape[1])[self.blocks[m]] for m in modalities])
        own = None if self.own_normaliser is None else Normaliser(self.own_normaliser.mean[columns], self.own_normaliser.std[columns])
        return PooledClips.side_by_side({m: self.raw[:, self.blocks[m]] for m in modalities}, self.targets, own)


POOLING = {
    "mean": lambda window: window.mean(0),
    "std": lambda window: window.std(0),
    # the quieter and louder ends of a clip: a laugh's bursts and gaps, which mean and std blur
    "p10": lambda window: np.percentile(window, 10, axis=0),
    "p90": lambda window: np.percentile(window, 90, axis=0),
}


def pooled_clips(features: dict[str, RecordingFeatures], clips, modality: str, statistics=("mean", "std")) -> np.ndarray:
    """[clips, len(statistics) * D]: each statistic (POOLING) of the modality's rows inside each
    clip's window, side by side."""
    rows = []
    for clip in clips:
        window = _clip_rows(features[clip.recording], clip, modality)
        rows.append(np.concatenate([POOLING[name](window) for name in statistics]))
    return np.stack(rows).astype(np.float32)


def _clip_rows(recording: RecordingFeatures, clip, modality: str) -> np.ndarray:
    """[T, D] float32: the modality's rows inside the clip's window; the row nearest its middle
    when none falls inside (a clip shorter than the modality's step)."""
    if modality not in recording.arrays:
        raise ChallengeError(f"recording {clip.recording} has no {modality} features; pass --features with a {modality} extractor.")
    times, array = recording.times[modality], recording.arrays[modality]
    inside = (times >= clip.start) & (times < clip.end)
    window = array[inside] if inside.any() else array[[int(np.abs(times - (clip.start + clip.end) / 2).argmin())]]
    return np.asarray(window, np.float32)


@dataclass
class ClipWindows(ClipFeatures):
    """Each clip's rows of its recording's feature sequences, one sequence per modality (the
    first modality's steps set the clip's time axis, as for EMI's clips): the data of heads that
    read sequences (`Head.sequences`), such as the fusion transformer. `take`, `own_normaliser`
    and `modalities` let the grouped-fold protocol and the reports treat it as pooled clips."""

    modalities: list[str] = field(default_factory=list)
    own_normaliser: Normaliser | None = None

    @classmethod
    def of(cls, features: dict[str, RecordingFeatures], clips, modalities: list[str]) -> ClipWindows:
        entries = []
        for clip in clips:
            row = []
            for modality in modalities:
                window = _clip_rows(features[clip.recording], clip, modality)
                row.append(ModalityEntry(None, len(window), window))
            entries.append(row)
        dims = [features[clips[0].recording].arrays[m].shape[1] for m in modalities] if clips else [0] * len(modalities)
        return cls(
            [f"{c.recording}@{c.start:.3f}" for c in clips], entries, dims, np.array([c.label for c in clips]), modalities=list(modalities)
        )

    def take(self, rows, normaliser: Normaliser | None = None) -> ClipWindows:
        index = np.arange(len(self))[rows]
        return ClipWindows(
            [self.ids[i] for i in index],
            [self.entries[i] for i in index],
            self.dims,
            None if self.targets is None else self.targets[index],
            normaliser,
            modalities=self.modalities,
        )

    @property
    def output_name(self) -> str:
        """What the reports call a model's output on these clips ("audio+visual": audiovisual)."""
        return "+".join(self.modalities)
