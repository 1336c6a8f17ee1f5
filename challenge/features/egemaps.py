"""openSMILE low-level descriptors (real feature sets shipped in its wheel, offline): eGeMAPS,
the minimalistic set every smiles baseline uses, and ComParE 2016, the larger set of the
paralinguistics challenges (65 descriptors: spectral bands, MFCCs, voicing, auditory energy),
which carries more of what separates laughter from speech."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from challenge.features.base import Extractor, Features
from challenge.media import AUDIO_RATE, read_audio

LLD_RATE = 100.0  # openSMILE's eGeMAPS LLDs use a 10 ms hop


@dataclass(frozen=True)
class EGeMAPSExtractor(Extractor):
    name = "egemaps"
    modality = "audio"
    feature_set: str = "eGeMAPSv02"
    dtype: str = "float32"  # loudness and F0 values need more than float16's precision

    def build(self, device: str):
        return _EGeMAPSRunner(self)


@dataclass(frozen=True)
class ComParEExtractor(EGeMAPSExtractor):
    name = "compare"
    feature_set: str = "ComParE_2016"


class _EGeMAPSRunner:
    def __init__(self, config: EGeMAPSExtractor):
        import opensmile

        self.smile = opensmile.Smile(
            feature_set=getattr(opensmile.FeatureSet, config.feature_set),
            feature_level=opensmile.FeatureLevel.LowLevelDescriptors,
        )

    def prepare(self, source: Path) -> np.ndarray:
        return read_audio(source, AUDIO_RATE)

    def forward(self, signal: np.ndarray) -> Features:
        # shorter than one analysis window: pad so every clip has at least one step
        signal = np.pad(signal, (0, max(0, AUDIO_RATE // 10 - len(signal))))
        frame = self.smile.process_signal(signal, AUDIO_RATE)
        return Features(np.nan_to_num(frame.to_numpy(dtype=np.float32)), LLD_RATE, columns=tuple(frame.columns))
