"""Per-clip feature sequences read from the store, aligned across modalities and normalised.

Arrays are kept in RAM once read, up to a budget (`RESIDENT`, CHALLENGE_FEATURE_RAM_MB, 1024 MiB
by default), so the epochs and trials after the first read no file again; past the budget an
array is opened memory-mapped at each access and dropped after it, so a corpus larger than RAM
streams from disk: only the windows a batch needs are read.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from challenge.errors import ChallengeError, list_offenders
from challenge.stores.feature_store import StoreEntry
from challenge.training.normalise import Normaliser


class ResidentArrays:
    """Store arrays read whole, kept by path until `budget` bytes are held (then new ones are
    mapped per access, as before). Whole copies, never long-lived mappings: a file truncated
    under a mapping would kill the process (SIGBUS) on a later read."""

    def __init__(self, budget: int):
        self.budget, self.held, self.arrays = budget, 0, {}

    def get(self, entry: StoreEntry) -> np.ndarray:
        found = self.arrays.get(entry.path)
        if found is not None:
            return found
        array = entry.array()
        if self.held + array.nbytes > self.budget:
            return array
        array = np.array(array)
        self.arrays[entry.path] = array
        self.held += array.nbytes
        return array


RESIDENT = ResidentArrays(int(float(os.environ.get("CHALLENGE_FEATURE_RAM_MB", "1024")) * 2**20))


@dataclass
class ModalityEntry:
    entry: StoreEntry | None  # the store entry; None when the sample has no such media
    steps: int
    # rows already in memory instead of a store entry: a clip's window of a longer recording's
    # features (smile-laugh's clips are windows of one dialogue's cached sequence)
    values: np.ndarray | None = None

    @property
    def present(self) -> bool:
        return self.entry is not None or self.values is not None

    def array(self) -> np.ndarray:
        return self.values if self.values is not None else RESIDENT.get(self.entry)


@dataclass
class ClipFeatures:
    """Feature sequences for a list of samples: `entries[i][m]` is sample i's modality m."""

    ids: list[str]
    entries: list[list[ModalityEntry]]
    dims: list[int]  # feature width per modality
    targets: np.ndarray | None = None  # [N, C]
    normaliser: Normaliser | None = None  # fitted on the training split
    # per sample, its per-frame labels when the corpus has them (Sample.frame_labels), else None;
    # they map onto the clip's time axis by position, as the modalities do (frame_targets_at)
    frame_targets: list[np.ndarray | None] | None = None
    columns: list[str] | None = None  # the D column names across modalities (FeatureStore.columns), for reports
    _clip_context: np.ndarray | None = field(default=None, repr=False)

    @property
    def dim(self) -> int:
        return sum(self.dims)

    def __len__(self) -> int:
        return len(self.ids)

    def steps(self, i: int) -> int:
        """Sequence length of sample i: the first modality it has sets the time axis."""
        return next((e.steps for e in self.entries[i] if e.present), 1)

    def sequence(self, i: int, start: int = 0, stop: int | None = None) -> np.ndarray:
        """[stop - start, D] float32, modalities resampled onto one time axis and concatenated."""
        total = self.steps(i)
        stop = total if stop is None else min(stop, total)
        columns = []
        for entry, dim in zip(self.entries[i], self.dims):
            if not entry.present:
                columns.append(np.zeros((stop - start, dim), np.float32))  # missing modality
                continue
            # nearest step of this modality for each step of the clip's time axis
            rows = np.minimum((np.arange(start, stop) * entry.steps) // total, entry.steps - 1)
            array = entry.array()
            columns.append(np.asarray(array[rows[0] : rows[-1] + 1], dtype=np.float32)[rows - rows[0]])
        out = np.concatenate(columns, axis=1)
        return self.normaliser(out) if self.normaliser is not None else out

    def present(self) -> np.ndarray:
        """[N, M] bool: which modalities each clip has (a missing one reads as zeros)."""
        return np.array([[e.present for e in row] for row in self.entries], dtype=bool).reshape(len(self), len(self.dims))

    def clip_context(self) -> np.ndarray:
        """[N, 2D] mean and std of each whole clip over time (the global context, and what the
        pooled heads see), read once and kept: every epoch and every trial reuses it."""
        if self._clip_context is None:
            rows = []
            for i in range(len(self)):
                sequence = self.sequence(i)
                rows.append(np.concatenate([sequence.mean(0), sequence.std(0)]))
            self._clip_context = np.stack(rows).astype(np.float32)
        return self._clip_context

    def pooled_columns(self) -> list[str]:
        """Names of clip_context's 2D columns: the mean of each feature column, then its std."""
        names = self.columns or [f"feature {j}" for j in range(self.dim)]
        return [f"mean of {name}" for name in names] + [f"std of {name}" for name in names]

    def normalise_with(self, normaliser: Normaliser) -> ClipFeatures:
        self.normaliser = normaliser
        self._clip_context = None  # it depends on the normalisation
        return self

    def fit_normalisation(self, max_clips: int = 2000, seed: int = 0) -> Normaliser:
        """Fitted over the steps of (a sample of) these clips, before any normalisation."""
        order = np.random.default_rng(seed).permutation(len(self))[:max_clips]
        raw = ClipFeatures(self.ids, self.entries, self.dims)
        return Normaliser.fit(raw.sequence(int(i)) for i in order)

    def frame_targets_at(self, i: int, steps: np.ndarray) -> np.ndarray | None:
        """Sample i's frame labels at the given steps of its time axis (the nearest frame by
        position), or None when it has none."""
        labels = None if self.frame_targets is None else self.frame_targets[i]
        if labels is None or len(labels) == 0:
            return None
        return np.asarray(labels)[np.minimum((np.asarray(steps) * len(labels)) // self.steps(i), len(labels) - 1)]

    def subset(self, indices) -> ClipFeatures:
        indices = list(indices)
        return ClipFeatures(
            [self.ids[i] for i in indices],
            [self.entries[i] for i in indices],
            self.dims,
            None if self.targets is None else self.targets[indices],
            self.normaliser,
            None if self.frame_targets is None else [self.frame_targets[i] for i in indices],
            self.columns,
        )

    @staticmethod
    def join(parts: list[ClipFeatures]) -> ClipFeatures:
        """Several splits as one pool (fold ensembles); they must share features and normalisation."""
        first = parts[0]
        targets = None if any(p.targets is None for p in parts) else np.concatenate([p.targets for p in parts])
        frames = None if all(p.frame_targets is None for p in parts) else [f for p in parts for f in (p.frame_targets or [None] * len(p))]
        return ClipFeatures(
            [i for p in parts for i in p.ids],
            [e for p in parts for e in p.entries],
            first.dims,
            targets,
            first.normaliser,
            frames,
            first.columns,
        )


def clip_features(samples, extractors, store, digests: dict[str, dict[str, str]]) -> ClipFeatures:
    """Assemble `ClipFeatures` for samples; digests[extractor label][sample id] from extraction.

    A sample without any modality is an error naming it; a sample missing some modalities gets
    zeros there (the count is reported by the caller)."""
    entries, dims, empty = [], [], []
    found_by_extractor = []
    for extractor in extractors:
        found = {}
        for sample in samples:
            digest = digests[extractor.label].get(sample.id)
            if digest:
                found[sample.id] = store.require(extractor, digest, f"sample {sample.id}")
        found_by_extractor.append(found)
        dims.append(_width(found, extractor, samples))
    for sample in samples:
        row = []
        for found in found_by_extractor:
            entry = found.get(sample.id)
            row.append(ModalityEntry(entry, entry.steps if entry else 0))
        if all(e.entry is None for e in row):
            empty.append(sample.id)
        entries.append(row)
    if empty:
        raise ChallengeError(
            f"{len(empty)} sample(s) have no features at all:\n{list_offenders(empty)}\nRun `challenge features extract` for them or check their media."
        )
    targets = np.stack([s.labels for s in samples]).astype(np.float32) if samples and samples[0].labels is not None else None
    frames = [s.frame_labels for s in samples] if any(s.frame_labels is not None for s in samples) else None
    columns = [name for extractor, dim in zip(extractors, dims) for name in store.columns(extractor, dim)]
    return ClipFeatures([s.id for s in samples], entries, dims, targets, frame_targets=frames, columns=columns)


def _width(found: dict, extractor, samples) -> int:
    for entry in found.values():
        return entry.width
    split = samples[0].split if samples else "?"
    hint = (
        " The organisers' pickles cover only some splits: use an extractor that runs on the media (wav2vec2, mae, egemaps) for this split."
        if extractor.name == "provided"
        else f" It reads {extractor.reads}."
        if extractor.reads
        else ""
    )
    raise ChallengeError(
        f"no {extractor.label} features for any of the {len(samples)} {split} sample(s): extraction did not run "
        f"or every media file is missing.{hint}"
    )


def pooled(data: ClipFeatures) -> np.ndarray:
    """[N, 2D] mean and std over time per clip, for heads on pooled features."""
    return data.clip_context()
