"""A video as Social-MAE reads it: its audio as a log-mel filterbank (transformers'
ASTFeatureExtractor, Kaldi-compatible, 25 ms Hamming windows every 10 ms, normalised with
CAV-MAE's statistics) and its faces, found by the project's detector, levelled and cut as RGB
squares at a few frames per second with their times. Clips are windows of `audio_frames`
filterbank frames with `frames` faces spread over them: the model's input.

Both the `social-mae` extractor and `challenge pretrain social-mae` read videos through here."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from challenge.errors import ChallengeError

FBANK_MEAN, FBANK_STD = -5.081, 4.4849  # CAV-MAE's AudioSet filterbank statistics


@dataclass
class VideoArrays:
    fbank: np.ndarray  # [T, mel_bins] float16, 100 frames per second
    faces: np.ndarray  # [N, size, size, 3] uint8
    times: np.ndarray  # [N] seconds of each face

    @property
    def seconds(self) -> float:
        return len(self.fbank) / 100


def filterbank(signal: np.ndarray, mel_bins: int) -> np.ndarray:
    """[frames, mel_bins] log-mel filterbank of a 16 kHz signal, normalised as CAV-MAE's input."""
    # the module itself, not transformers' lazy top level: extractors call this from worker threads
    from transformers.models.audio_spectrogram_transformer.feature_extraction_audio_spectrogram_transformer import ASTFeatureExtractor

    frames = max(1, (len(signal) - 400) // 160 + 1)
    extractor = ASTFeatureExtractor(num_mel_bins=mel_bins, max_length=frames, mean=FBANK_MEAN, std=FBANK_STD)
    return extractor(signal, sampling_rate=16000, return_tensors="np")["input_values"][0]


def read_video(
    path: Path, mel_bins: int, size: int, face_rate: float, margin: float = 0.25, detector=None, audio: Path | None = None
) -> VideoArrays:
    """The filterbank of the video's audio (or of a separate `audio` file) and its faces
    `face_rate` times per second."""
    from challenge.media import AUDIO_RATE, iter_video_frames, read_audio, video_frame_rate
    from challenge.vision.faces import largest_face_rgb, make_detector

    path = Path(path)
    fbank = filterbank(read_audio(Path(audio) if audio is not None else path, AUDIO_RATE), mel_bins).astype(np.float16)
    step = max(1, round(video_frame_rate(path) / face_rate))
    detector = detector or make_detector("centerface")
    faces, times = [], []
    for time, rgb in iter_video_frames(path, step):
        faces.append(largest_face_rgb(detector, rgb, size, margin))
        times.append(time)
    if not faces:
        raise ChallengeError(f"{path}: the video has no frames.")
    return VideoArrays(fbank, np.stack(faces), np.asarray(times, np.float32))


def clip_starts(seconds: float, clip_seconds: float, hop_seconds: float) -> np.ndarray:
    """Start times of the clips covering a video (one clip when it is shorter than a clip)."""
    if seconds <= clip_seconds:
        return np.zeros(1)
    return np.arange(0.0, seconds - clip_seconds + 1e-9, hop_seconds)


def cut_clip(video: VideoArrays, start: float, audio_frames: int, frames: int, rng: np.random.Generator | None = None):
    """(fbank [audio_frames, mel], faces [frames, size, size, 3]) of the clip at `start`: the
    filterbank rows (zero-padded past the end, as CAV-MAE pads), and one face from each of
    `frames` equal parts of the clip, at random within the part in training (rng), its middle
    otherwise; a part without a face of its own takes the nearest face."""
    first = int(round(start * 100))
    fbank = np.zeros((audio_frames, video.fbank.shape[1]), np.float32)
    rows = video.fbank[first : first + audio_frames]
    fbank[: len(rows)] = rows
    length = audio_frames / 100
    edges = start + np.linspace(0, length, frames + 1)
    picks = rng.uniform(edges[:-1], edges[1:]) if rng is not None else (edges[:-1] + edges[1:]) / 2
    nearest = np.abs(video.times[None, :] - picks[:, None]).argmin(1)
    return fbank, video.faces[nearest]


def scale_faces(faces, device: str):
    """uint8 [B, frames, size, size, 3] -> float [B, frames, 3, size, size], standardised."""
    import torch

    from challenge.media import IMAGENET_MEAN as FACE_MEAN  # as the paper normalises frames
    from challenge.media import IMAGENET_STD as FACE_STD

    mean = torch.tensor(FACE_MEAN, device=device).view(1, 1, 3, 1, 1)
    std = torch.tensor(FACE_STD, device=device).view(1, 1, 3, 1, 1)
    return (faces.to(device, non_blocking=True).permute(0, 1, 4, 2, 3).float() / 255 - mean) / std
