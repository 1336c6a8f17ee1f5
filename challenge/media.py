"""Media decoding with PyAV: video frames with timestamps, audio as 16 kHz mono float32."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np

from challenge.errors import ChallengeError

AUDIO_RATE = 16_000
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}


def _open(path: Path):
    if not Path(path).exists():
        raise ChallengeError(f"{path}: media file not found. Check --data points at the dataset root.")
    try:
        return av.open(str(path))
    except (av.error.FFmpegError, OSError) as error:
        raise ChallengeError(
            f"{path}: cannot be decoded ({error}). Re-export the file (for example "
            f"`ffmpeg -i {Path(path).name} fixed.mp4`), or remove it together with its labels."
        ) from error


def read_audio(path: Path, rate: int = AUDIO_RATE) -> np.ndarray:
    """Decode the first audio stream, downmixed to mono and resampled to `rate` Hz."""
    with _open(path) as container:
        if not container.streams.audio:
            raise ChallengeError(f"{path}: has no audio stream. Pass an audio file or a video with sound.")
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        chunks = []
        try:
            for frame in container.decode(audio=0):
                chunks.extend(out.to_ndarray() for out in resampler.resample(frame))
            chunks.extend(out.to_ndarray() for out in resampler.resample(None))
        except av.error.FFmpegError as error:
            raise ChallengeError(f"{path}: audio stream is corrupt ({error}). Re-export the file.") from error
    signal = np.concatenate(chunks, axis=1).reshape(-1).astype(np.float32, copy=False) if chunks else np.zeros(0, np.float32)
    if not len(signal):  # padded to the model's minimum it would be trained on as silence
        raise ChallengeError(
            f"{path}: the audio stream holds no samples (0 s). Re-export the file from its source, "
            "or move it away and pass --skip-missing to leave the clip out."
        )
    return signal


def video_frame_rate(path: Path) -> float:
    with _open(path) as container:
        if not container.streams.video:
            raise ChallengeError(f"{path}: has no video stream.")
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        return float(rate) if rate else 30.0


def iter_video_frames(path: Path, step: int = 1) -> Iterator[tuple[float, np.ndarray]]:
    """Yield (timestamp in seconds, RGB uint8 [H, W, 3]) for every `step`-th frame."""
    with _open(path) as container:
        if not container.streams.video:
            raise ChallengeError(f"{path}: has no video stream.")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        try:
            for index, frame in enumerate(container.decode(stream)):
                if index % step == 0:
                    yield float(frame.time or 0.0), frame.to_ndarray(format="rgb24")
        except av.error.FFmpegError as error:
            raise ChallengeError(f"{path}: video stream is corrupt ({error}). Re-export the file.") from error


def video_frame_count(path: Path, decode: bool = False) -> int:
    """Frames in the video: the container's count when it has one, else (or with `decode`, where
    the count must be what a decoder returns) counted by decoding."""
    with _open(path) as container:
        if not container.streams.video:
            raise ChallengeError(f"{path}: has no video stream.")
        stream = container.streams.video[0]
        if stream.frames and not decode:
            return int(stream.frames)
    return sum(1 for _ in iter_video_frames(path))


def media_duration(path: Path) -> float:
    """Seconds of media: the container's duration, else the longest stream's."""
    with _open(path) as container:
        if container.duration:
            return float(container.duration / av.time_base)
        spans = [float(s.duration * s.time_base) for s in container.streams if s.duration and s.time_base]
    if not spans:
        raise ChallengeError(f"{path}: its duration cannot be read. Re-export the file.")
    return max(spans)


# the published MAEs (and Social-MAE's faces) normalise pixels with ImageNet's statistics
IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def frame_number(path: Path) -> int | None:
    """The frame number in an image's name: its stem's trailing digits (Aff-Wild2 `00042.jpg`,
    BAH `frame-42.jpg`), None without any."""
    stem = Path(path).stem
    digits = len(stem) - len(stem.rstrip("0123456789"))
    return int(stem[-digits:]) if digits else None


def frame_files(folder: Path) -> list[Path]:
    """Image files of a frame folder in frame order (numbered names sort by their number, so
    frame-10 follows frame-9)."""
    files = [p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES]
    return sorted(files, key=lambda p: (n if (n := frame_number(p)) is not None else float("inf"), p.name))


def frame_numbers(files: list[Path]) -> list[int]:
    """Each file's frame number (its position where the name has none)."""
    return [n if (n := frame_number(p)) is not None else i for i, p in enumerate(files)]
