"""Whole-scene features: what violence detection (DVD) reads, where faces say little.

`scene`: an image backbone from transformers (ViT, ConvNeXt, CLIP's vision tower, DINOv2...)
embeds whole frames at `fps` frames per second (`--scene-fps`, default 4); its rows carry their
step rate, so a frame track samples them at every frame's time as it samples audio.
The model is a hub id (`hf:facebook/convnext-tiny-224`), a `save_pretrained` folder, or one
weights file (a state dict, `.safetensors`/`.pt`/`.bin`) with the `config.json` of its
architecture beside it.

`motion`: frame differences of small grey frames at every frame, no weights: the share of
pixels that changed and how much, overall and over a 3x3 grid of the picture; fights and
chases move, a calm scene does not."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from challenge.features.base import Extractor, Features

DEFAULT_SCENE_MODEL = "hf:facebook/convnext-tiny-224"


@dataclass(frozen=True)
class SceneExtractor(Extractor):
    name = "scene"
    modality = "scene"
    reads = "whole video frames (the sample's video)"
    model: str = DEFAULT_SCENE_MODEL
    fps: float = 4.0  # frames embedded per second of video (at most the video's own rate)
    batch_size: int = 32
    bf16: bool = False

    def source(self, sample) -> Path | None:
        return sample.video

    def build(self, device: str):
        from challenge.features.scene_runner import SceneRunner

        return SceneRunner(self, device)


@dataclass(frozen=True)
class MotionExtractor(Extractor):
    name = "motion"
    modality = "scene"
    reads = "whole video frames (the sample's video)"
    size: int = 64  # frames are shrunk to size x size grey pixels before differencing
    changed: float = 0.08  # a pixel counts as changed when it moves by more than this (grey in [0, 1])
    dtype: str = "float32"

    def source(self, sample) -> Path | None:
        return sample.video

    def build(self, device: str):
        return _MotionRunner(self)


class _MotionRunner:
    def __init__(self, config: MotionExtractor):
        self.config = config

    def prepare(self, source: Path):
        from PIL import Image

        from challenge.errors import ChallengeError
        from challenge.media import iter_video_frames, video_frame_rate

        side = self.config.size
        frames = [
            np.asarray(Image.fromarray(rgb).convert("L").resize((side, side), Image.BILINEAR), np.float32) / 255.0
            for _, rgb in iter_video_frames(source)
        ]
        if not frames:
            raise ChallengeError(f"{source}: the video has no frames.")
        return np.stack(frames), video_frame_rate(source)

    def forward(self, prepared) -> Features:
        frames, rate = prepared
        return Features(motion_descriptors(frames, self.config.changed), rate, columns=MOTION_COLUMNS)


CELLS = [f"{row} {column}" for row in ("top", "middle", "bottom") for column in ("left", "centre", "right")]
MOTION_COLUMNS = (
    ("mean difference", "std of difference", "changed share")
    + tuple(f"mean difference, {c}" for c in CELLS)
    + tuple(f"changed share, {c}" for c in CELLS)
)  # the order motion_descriptors stacks them in


def motion_descriptors(frames: np.ndarray, changed: float) -> np.ndarray:
    """[T, 21] per frame, against the frame before (the first frame against itself: no motion):
    mean and std of the absolute difference and the share of changed pixels over the whole
    picture, then the mean difference in each cell of a 3x3 grid, then the same share per cell."""
    previous = np.concatenate([frames[:1], frames[:-1]])
    diff = np.abs(frames - previous)
    side = frames.shape[1]
    edges = np.linspace(0, side, 4).astype(int)
    cells = [diff[:, edges[i] : edges[i + 1], edges[j] : edges[j + 1]] for i in range(3) for j in range(3)]
    whole = [diff.mean((1, 2)), diff.std((1, 2)), (diff > changed).mean((1, 2))]
    return np.stack(whole + [c.mean((1, 2)) for c in cells] + [(c > changed).mean((1, 2)) for c in cells], 1).astype(np.float32)
