"""Joint audio-visual embeddings from Social-MAE: per segment of a video (a clip of the model's
length every `hop_seconds`), the mean-pooled joint tokens, then the audio tokens and the video
tokens each through the joint blocks alone: [segments, 3 x width]. Heads pool the segments of a
clip (smile-laugh) or of a recording as they pool any per-step features."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from challenge.errors import ChallengeError
from challenge.features.base import Extractor, Features


@dataclass(frozen=True)
class SocialMAEExtractor(Extractor):
    name = "social-mae"
    modality = "visual"  # it reads the video file: its sound and its faces
    model: str = ""  # a folder `challenge pretrain social-mae` wrote, or the authors' weights file
    heads: int | None = None  # an authors' file: attention heads (default width / 64)
    frames: int | None = None  # an authors' file: frames per clip it was trained with (default 8, the paper's)
    mel_bins: int = 128  # an authors' file: filterbank bins it was trained with
    hop_seconds: float = 0.0  # segment spacing; 0: the clip length (no overlap)
    face_rate: float = 0.0  # faces cut per second; 0: two per face slot of a clip
    margin: float = 0.25
    batch_size: int = 8

    def source(self, sample) -> Path | None:
        return sample.video

    def build(self, device: str):
        if not self.model:
            raise ChallengeError(
                "the social-mae extractor needs a model: --social-mae-model DIR (a folder `challenge pretrain social-mae` "
                "wrote, or the authors' .pth), or extractors: {social-mae: {model: ...}} in --config."
            )
        return SocialMAERunner(self, device)


class SocialMAERunner:
    def __init__(self, config: SocialMAEExtractor, device: str):
        from challenge.networks.social_mae import load_social_mae
        from challenge.progress import say
        from challenge.vision.faces import make_detector

        self.config, self.device = config, device
        self.network, origin = load_social_mae(config.model, config.heads, None, config.frames, config.mel_bins)
        say(origin)
        self.network = self.network.to(device).eval()
        self.detector = make_detector("centerface")

    def prepare(self, source: Path):
        from challenge.features.audio_visual import read_video

        c, m = self.config, self.network.config
        rate = c.face_rate or 2 * m.frames / m.clip_seconds
        return read_video(Path(source), m.mel_bins, m.image_size, rate, c.margin, self.detector)

    def forward(self, video) -> Features:
        import numpy as np
        import torch

        from challenge.features.audio_visual import clip_starts, cut_clip, scale_faces

        m = self.network.config
        hop = self.config.hop_seconds or m.clip_seconds
        starts = clip_starts(video.seconds, m.clip_seconds, hop)
        rows = []
        with torch.no_grad():
            for first in range(0, len(starts), self.config.batch_size):
                clips = [cut_clip(video, s, m.audio_frames, m.frames) for s in starts[first : first + self.config.batch_size]]
                fbank = torch.from_numpy(np.stack([c[0] for c in clips])).to(self.device)
                faces = scale_faces(torch.from_numpy(np.stack([c[1] for c in clips])), self.device)
                pooled = self.network.encode(fbank, faces)
                rows.append(torch.cat([pooled["joint"], pooled["audio"], pooled["video"]], 1).float().cpu().numpy())
        return Features(np.concatenate(rows), 1.0 / hop)
