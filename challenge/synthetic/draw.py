"""Drawing faces, synthesising voices and writing them as real media files with PyAV.

The labels of the demo datasets are functions of these drawn and heard attributes (mouth
curvature, brightness, loudness bursts, pitch), so a working pipeline can learn them and a
shuffled-label control cannot.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw

AUDIO_RATE = 16_000


@dataclass
class FaceState:
    """What one frame of a face shows; every field in [0, 1] unless said."""

    smile: float = 0.5  # mouth curvature: 0 frown, 0.5 flat, 1 smile
    brightness: float = 0.5  # lighting of the face
    mouth_open: float = 0.0
    brow: float = 0.5  # 0 lowered, 1 raised


# Recording conditions of the demo corpora: the background behind the face, a lighting gain on
# the face and the room noise in the audio. Each clip or video is recorded in one of them, so
# background-split ensembles (ensembles/background.py) have real subsets to find.
RECORDING_SETUPS = (
    {"background": (35, 45, 120), "light": 1.0, "noise": 0.005},  # blue wall, even light, quiet room
    {"background": (45, 115, 50), "light": 0.75, "noise": 0.02},  # green wall, dim light, noisy room
    {"background": (125, 120, 115), "light": 1.2, "noise": 0.01},  # grey wall, bright light
)


def recording_setup(rng: np.random.Generator) -> dict:
    """One of RECORDING_SETUPS with its background colour jittered a little."""
    setup = dict(RECORDING_SETUPS[int(rng.integers(len(RECORDING_SETUPS)))])
    setup["background"] = tuple(int(np.clip(c + rng.integers(-12, 13), 0, 255)) for c in setup["background"])
    return setup


def draw_face(state: FaceState, size: int, rng: np.random.Generator, background: tuple[int, int, int]) -> Image.Image:
    image = Image.new("RGB", (size, size), background)
    draw = ImageDraw.Draw(image)
    jitter = rng.normal(0, size * 0.01, 2)
    cx, cy = size / 2 + jitter[0], size / 2 + jitter[1]
    skin = tuple(int(c * (0.35 + 0.65 * state.brightness)) for c in (235, 190, 160))
    r = size * 0.38
    draw.ellipse([cx - r * 0.8, cy - r, cx + r * 0.8, cy + r], fill=skin)
    eye_y, brow_y = cy - r * 0.3, cy - r * (0.45 + 0.25 * state.brow)
    for side in (-1, 1):
        ex = cx + side * r * 0.35
        draw.ellipse([ex - r * 0.1, eye_y - r * 0.07, ex + r * 0.1, eye_y + r * 0.07], fill=(40, 30, 30))
        draw.line([ex - r * 0.18, brow_y + side * 0.0, ex + r * 0.18, brow_y], fill=(60, 40, 30), width=max(1, size // 40))
    # the mouth: a parabola whose curvature follows the smile, opened by mouth_open
    curve = (state.smile - 0.5) * 2 * r * 0.35
    mouth_y, half = cy + r * 0.45, r * 0.4
    xs = np.linspace(-half, half, 24)
    upper = [(cx + x, mouth_y + curve * (1 - (x / half) ** 2)) for x in xs]  # y grows downward
    lower = [(cx + x, y + state.mouth_open * r * 0.35 * (1 - (x / half) ** 2)) for (x, y), x in zip(upper, xs)]
    draw.polygon(upper + lower[::-1], fill=(120, 20, 30), outline=(90, 10, 20))
    return image


def voice(duration: float, pitch: float, loudness: np.ndarray, rng: np.random.Generator, noise: float = 0.005) -> np.ndarray:
    """A voiced tone at 110-330 Hz (pitch in [0, 1]) with per-sample loudness envelope."""
    n = int(duration * AUDIO_RATE)
    t = np.arange(n) / AUDIO_RATE
    f0 = 110 + 220 * pitch
    phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.02 * np.sin(2 * np.pi * 5 * t))) / AUDIO_RATE
    tone = sum(np.sin(k * phase) / k for k in range(1, 5))
    signal = 0.25 * loudness[:n] * tone + noise * rng.standard_normal(n)
    return np.clip(signal, -1, 1).astype(np.float32)


def burst_envelope(duration: float, rate_per_s: float, rng: np.random.Generator, base: float = 0.15) -> np.ndarray:
    """Quiet speech with loud bursts (laugh-like) at `rate_per_s` bursts per second."""
    n = int(duration * AUDIO_RATE)
    envelope = np.full(n, base, dtype=np.float32)
    count = rng.poisson(rate_per_s * duration)
    for start in rng.uniform(0, max(duration - 0.2, 0.01), count):
        a, b = int(start * AUDIO_RATE), int((start + 0.18) * AUDIO_RATE)
        envelope[a:b] = np.maximum(envelope[a:b], np.hanning(b - a)[: len(envelope[a:b])] * 1.0 + base)
    return envelope


def write_video(path: Path, frames: list[Image.Image], fps: int, audio: np.ndarray | None) -> None:
    """H.264 video with an AAC audio track (16 kHz mono), as a phone or webcam would record."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = frames[0].size
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "18"}
        audio_stream = container.add_stream("aac", rate=AUDIO_RATE, layout="mono") if audio is not None else None
        for image in frames:
            container.mux(stream.encode(av.VideoFrame.from_image(image)))
        container.mux(stream.encode(None))
        if audio_stream is not None:
            _encode_audio(container, audio_stream, audio)


def write_audio(path: Path, audio: np.ndarray) -> None:
    """Audio-only file; the codec follows the suffix (.mp3 via LAME, .wav as PCM)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    codec = {"mp3": "libmp3lame", "wav": "pcm_s16le"}[path.suffix.lstrip(".")]
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=AUDIO_RATE, layout="mono")
        _encode_audio(container, stream, audio)


def _encode_audio(container, stream, audio: np.ndarray) -> None:
    fmt = stream.codec_context.format.name if stream.codec_context.format else "fltp"
    if fmt.startswith("s16"):
        samples = (audio * 32767).astype(np.int16)
    elif fmt.startswith("s32"):
        samples = (audio.astype(np.float64) * 2147483647).astype(np.int32)
    else:
        samples = audio.astype(np.float32)
    block = 1024
    for start in range(0, len(samples), block):
        chunk = samples[start : start + block]
        frame = av.AudioFrame.from_ndarray(chunk[None], format=fmt, layout="mono")
        frame.sample_rate = AUDIO_RATE
        frame.pts = start
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))
