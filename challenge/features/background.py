"""A background descriptor per video: colour statistics of the frame borders.

The face sits inside the frame, so the border strips show the room, the wall and the light:
the recording conditions that background-split ensembles group videos by. The descriptor is
cached in the feature store like any feature (one row per video).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from challenge.features.base import Extractor, Features
from challenge.media import iter_video_frames


@dataclass(frozen=True)
class BackgroundExtractor(Extractor):
    name = "background"
    modality = "scene"
    frames: int = 16  # frames sampled evenly over the video
    border: float = 0.1  # width of each border strip, as a share of the frame side
    dtype: str = "float32"

    def source(self, sample) -> Path | None:
        return sample.video  # the full frame: face crops have cut the background away

    def build(self, device: str):
        return _BackgroundRunner(self)


class _BackgroundRunner:
    def __init__(self, config: BackgroundExtractor):
        self.config = config

    def prepare(self, source: Path) -> list[np.ndarray]:
        """RGB frames spread evenly over the whole video."""
        frames = [image for _, image in iter_video_frames(source)]
        picks = np.unique(np.linspace(0, len(frames) - 1, self.config.frames).round().astype(int))
        return [frames[i] for i in picks]

    def forward(self, frames: list[np.ndarray]) -> Features:
        return Features(describe_borders(frames, self.config.border)[None], None)


def border_strips(image: np.ndarray, share: float) -> list[np.ndarray]:
    """The top, bottom, left and right strips of an RGB frame as [n, 3] float pixels in [0, 1]."""
    height, width = image.shape[:2]
    dy, dx = max(1, int(height * share)), max(1, int(width * share))
    strips = (image[:dy], image[-dy:], image[dy:-dy, :dx], image[dy:-dy, -dx:])
    return [strip.reshape(-1, 3).astype(np.float32) / 255.0 for strip in strips]


def describe_borders(frames: list[np.ndarray], share: float) -> np.ndarray:
    """[18]: colour mean and std over all border pixels, then each strip's mean colour (where
    the window or the lamp is). Every value is in colour units in [0, 1], so distances between
    descriptors need no rescaling (standardising would blow up the near-constant spreads)."""
    strips = [border_strips(frame, share) for frame in frames]
    pixels = np.concatenate([p for per_frame in strips for p in per_frame])
    per_strip = [np.concatenate([per_frame[k] for per_frame in strips]).mean(0) for k in range(4)]
    return np.concatenate([pixels.mean(0), pixels.std(0), *per_strip]).astype(np.float32)
