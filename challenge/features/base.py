"""Extractor configs (each registered by its entry point in `challenge.extractors`).

An extractor is a frozen dataclass: every field, its preprocessing included, goes into the
cache key together with the schema version, so changing any setting gives new features.
`build(device)` returns the stateful part (loaded model) as a `Runner`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

if TYPE_CHECKING:  # annotations only: an extractor's module stays light enough for `--help` to read its declaration
    import numpy as np

from challenge.errors import ChallengeError

GROUP = "challenge.extractors"  # an extractor is registered by its entry point there (challenge.registry)


@dataclass(frozen=True)
class Features:
    """What a runner returns for one media item."""

    array: np.ndarray  # [T, D]
    frame_rate: float | None  # steps per second, None for per-item features
    index: list[int] | None = None  # frame numbers of the rows, for folders of frames
    # what each of the D columns is (opensmile's descriptor names, the FER classes), recorded by
    # the store for reports and importance plots; None: the columns are unnamed embedding units
    columns: tuple[str, ...] | None = None


class Runner(Protocol):
    def prepare(self, source: Path) -> Any:
        """Decode and preprocess on the CPU (runs in worker threads, overlapping forward)."""

    def forward(self, prepared: Any) -> Features:
        """Run the model; batches internally where the input allows it."""


@dataclass(frozen=True)
class Extractor:
    name: ClassVar[str]
    modality: ClassVar[str]  # "audio", "visual" or "text": which media of a sample it reads
    reads: ClassVar[str] = ""  # where that media is, for the error when no sample has it
    schema_version: ClassVar[int] = 1
    dtype: str = "float16"  # storage dtype; heads compute in float32

    def describe(self) -> dict:
        return {"name": self.name, "schema_version": self.schema_version, **dataclasses.asdict(self)}

    def identity(self) -> dict:
        """What the cache key hashes: every setting, except that a model on disk counts by the
        content digest of its weight and config files, not by its path. New weights written
        over the same folder give new features; the same folder named by a relative or an
        absolute path shares one entry. A hub id counts by its name (and revision, if in it)."""
        described = self.describe()
        if isinstance(described.get("model"), str):
            from challenge.networks.sources import model_identity

            described["model"] = model_identity(described["model"])
        return described

    def cache_key(self) -> str:
        # computed once per extractor object: digesting a model folder stats its files
        key = self.__dict__.get("_cache_key")
        if key is None:
            payload = json.dumps(self.identity(), sort_keys=True, default=str)
            key = hashlib.sha256(payload.encode()).hexdigest()
            object.__setattr__(self, "_cache_key", key)
        return key

    @property
    def label(self) -> str:
        """Unique among the feature sets of one run (two `provided` extractors differ by kind):
        the key of per-extractor tables such as digests and feature keys."""
        return self.name

    def source(self, sample) -> Path | None:
        """The media this extractor reads for a sample (None when the sample has none)."""
        return sample.audio if self.modality == "audio" else (sample.frames_dir or sample.video)

    def build(self, device: str) -> Runner:
        raise NotImplementedError


def extractor_class(name: str) -> type[Extractor]:
    """A registered extractor, loaded through its entry point."""
    from challenge.registry import registered_class

    return registered_class(GROUP, name, Extractor, "extractor")


def extractor_classes() -> dict[str, type[Extractor]]:
    """Every registered extractor, loaded (for tests over all of them)."""
    from challenge.registry import registered_classes

    return registered_classes(GROUP, Extractor, "extractor")


def make_extractor(name: str, **options) -> Extractor:
    cls = extractor_class(name)
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = set(options) - fields
    if unknown:
        raise ChallengeError(f"extractor {name!r} has no option(s) {sorted(unknown)}; it has {sorted(fields)}")
    return cls(**{k: v for k, v in options.items() if v is not None})


def resolve_device(device: str = "auto") -> str:
    import torch

    from challenge.preflight import check_device

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    check_device(device)  # a named error, not torch's "Torch not compiled with CUDA enabled"
    return device
