"""The media loaders tracks supply to end-to-end models, in the spirit of pyannote's Task: a
split's samples become items (input, target) at the size the backbone expects.

- `WaveformClips` (clip tracks with audio): each clip's waveform at 16 kHz, standardised as
  wav2vec2's feature extractor does; training reads a random window of `window_seconds`,
  evaluation half-overlapping windows covering the clip.
- `FaceFrames` (per-frame tracks): each video's face frames (the crop folder's images, or the
  video's frames) as RGB squares of the backbone's size, aligned with the label rows.

Decoded media stay in RAM up to a budget (CHALLENGE_MEDIA_RAM_MB, 2048 MiB by default) so the
epochs after the first decode nothing; past it, media are decoded at each access. Nothing is
written to the feature store: raw pixels and waveforms are not features."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from challenge.errors import ChallengeError
from challenge.media import AUDIO_RATE, read_audio
from challenge.training.windows import window_starts


class MediaCache:
    """Decoded media by key, until `budget` bytes are held."""

    def __init__(self, budget: int):
        self.budget, self.held, self.items = budget, 0, {}

    def get(self, key, decode):
        found = self.items.get(key)
        if found is not None:
            return found
        value = decode()
        if self.held + value.nbytes <= self.budget:
            self.items[key] = value
            self.held += value.nbytes
        return value


MEDIA_RAM = MediaCache(int(float(os.environ.get("CHALLENGE_MEDIA_RAM_MB", "2048")) * 2**20))


class ClipSet:
    """What the clip loaders share: `spans` (start, end seconds) cut each item out of a longer
    recording (smile-laugh's clips of a dialogue); without them an item is its whole file (EMI).
    `take`, `fit_normalisation` and `own_normaliser` let the grouped-fold protocol treat them as
    it treats pooled features (media are standardised per item, never with training statistics)."""

    normaliser = None
    own_normaliser = None

    def __len__(self) -> int:
        return len(self.ids)

    def normalise_with(self, normaliser):
        return self

    def fit_normalisation(self):
        return None

    def take(self, rows, normaliser=None):
        """The given rows (a mask, indices or a slice) as their own set."""
        return self.subset(np.arange(len(self))[rows])

    def subset(self, indices):
        indices = list(indices)
        pick = lambda values: None if values is None else [values[i] for i in indices]  # noqa: E731
        changed = {name: pick(getattr(self, name)) for name in self.per_item}
        return dataclasses.replace(self, **changed, targets=None if self.targets is None else self.targets[indices])

    def span(self, i: int, total: float) -> tuple[float, float]:
        """(start, end) seconds of item i inside its file of `total` seconds."""
        if self.spans is None:
            return 0.0, total
        start, end = self.spans[i]
        return max(0.0, min(start, total)), max(0.0, min(end, total))


@dataclass
class WaveformClips(ClipSet):
    medium = "audio"
    per_item = ("ids", "sources", "spans")
    ids: list[str]
    sources: list[Path]
    targets: np.ndarray | None = None  # [N, C] (regression) or [N] class indices
    spans: list[tuple[float, float]] | None = None

    def waveform(self, i: int) -> np.ndarray:
        """Item i's samples, zero mean and unit variance as wav2vec2's feature extractor makes
        them (do_normalize): the whole file, or the item's span of it standardised on its own."""

        def decode():
            try:
                signal = read_audio(self.sources[i], AUDIO_RATE)
            except ChallengeError:
                raise
            except Exception as error:  # noqa: BLE001 - PyAV's many kinds of decoding error
                raise ChallengeError(f"{self.sources[i]}: cannot decode its audio ({type(error).__name__}: {error}).") from error
            if signal.size == 0:
                raise ChallengeError(f"{self.sources[i]}: no audio samples in the file (clip {self.ids[i]}).")
            return _standardised(signal)

        signal = MEDIA_RAM.get(("audio", str(self.sources[i])), decode)
        if self.spans is None:
            return signal
        start, end = self.span(i, len(signal) / AUDIO_RATE)
        piece = signal[int(start * AUDIO_RATE) : max(int(end * AUDIO_RATE), int(start * AUDIO_RATE) + 1)]
        return _standardised(piece)

    def train_window(self, i: int, seconds: float, rng: np.random.Generator, gain_db: float = 0.0) -> np.ndarray:
        """A random window of the clip (the whole clip when shorter), with a random gain of up
        to ±gain_db decibels (augmentation)."""
        signal, size = self.waveform(i), int(seconds * AUDIO_RATE)
        start = int(rng.integers(0, len(signal) - size + 1)) if len(signal) > size else 0
        window = signal[start : start + size]
        if gain_db > 0:
            window = window * np.float32(10 ** (rng.uniform(-gain_db, gain_db) / 20))
        return window

    def eval_windows(self, i: int, seconds: float) -> list[np.ndarray]:
        signal, size = self.waveform(i), int(seconds * AUDIO_RATE)
        return [signal[s : s + size] for s in window_starts(len(signal), size)]


def _standardised(signal: np.ndarray) -> np.ndarray:
    return ((signal - signal.mean()) / np.sqrt(signal.var() + 1e-7)).astype(np.float32)


def waveform_clips(samples, lengths=None) -> WaveformClips:
    """The loader of clip tracks with audio (EMI): a sample's audio file, or its video's audio."""
    missing = [s.id for s in samples if s.audio is None]
    if missing:
        raise ChallengeError(
            f"{len(missing)} clip(s) have no audio to fine-tune on (first: {missing[:5]}); pass --skip-missing to leave them out."
        )
    targets = np.stack([s.labels for s in samples]).astype(np.float32) if samples and samples[0].labels is not None else None
    return WaveformClips([s.id for s in samples], [Path(s.audio) for s in samples], targets)


@dataclass
class VideoMedia:
    """What the per-frame loaders share: videos (or crop folders) with their label rows."""

    ids: list[str]
    lengths: list[int]  # frames per video: its label rows (the sample file's frame count for test videos)
    sources: list[Path]  # a folder of face crops (numbered images) or a video file
    labels: list[np.ndarray] | None = None  # per video [frames, width], invalid markers kept
    normaliser = None  # media are scaled by the model, not with training statistics

    def __len__(self) -> int:
        return len(self.ids)

    def targets(self) -> np.ndarray:
        return np.concatenate(self.labels)

    def normalise_with(self, normaliser):
        return self

    def subset(self, indices):
        indices = list(indices)
        pick = lambda values: [values[i] for i in indices]  # noqa: E731
        return dataclasses.replace(
            self,
            ids=pick(self.ids),
            lengths=pick(self.lengths),
            sources=pick(self.sources),
            labels=None if self.labels is None else pick(self.labels),
        )

    @classmethod
    def join(cls, parts: list):
        """Several splits as one pool (grouped folds over train and valid)."""
        labels = None if any(p.labels is None for p in parts) else [x for p in parts for x in p.labels]
        joined = lambda name: [x for p in parts for x in getattr(p, name)]  # noqa: E731
        return dataclasses.replace(parts[0], ids=joined("ids"), lengths=joined("lengths"), sources=joined("sources"), labels=labels)


@dataclass
class FaceFrames(VideoMedia):
    medium = "faces"
    size: int = 224  # the backbone's input side
    # a video's frames are whole scenes (smile-intensity's dyadic recordings): each frame's
    # largest face found by this detector, in colour (challenge.vision.faces.largest_face_rgb)
    detector: str | None = None
    margin: float = 0.25

    def video(self, i: int) -> np.ndarray:
        """[frames, size, size, 3] uint8, one per label row; a frame without a crop (Aff-Wild2
        drops frames where no face was found) takes the nearest frame that has one."""

        def decode():
            pixels, numbers = _decode_faces(self.sources[i], self.size, self.detector, self.margin)
            rows = np.arange(1, self.lengths[i] + 1)
            nearest = np.clip(np.searchsorted(numbers, rows), 0, len(numbers) - 1)
            before = np.clip(nearest - 1, 0, len(numbers) - 1)
            pick = np.where(np.abs(numbers[before] - rows) <= np.abs(numbers[nearest] - rows), before, nearest)
            return pixels[pick]

        return MEDIA_RAM.get(("faces", str(self.sources[i]), self.size, self.detector, self.margin), decode)


def _decode_faces(source: Path, size: int, detector: str | None = None, margin: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    """(pixels [n, size, size, 3] uint8, their 1-based frame numbers, ascending): a crop folder's
    images, or a video's frames (with `detector`, each frame's largest face)."""
    from PIL import Image

    from challenge.media import frame_files, iter_video_frames

    source = Path(source)
    if source.is_dir():
        files = frame_files(source)
        if not files:
            raise ChallengeError(f"{source}: no face images (.jpg/.png) in this folder.")
        frames, numbers = [], []
        for k, path in enumerate(files):
            try:
                with Image.open(path) as image:
                    frames.append(np.asarray(image.convert("RGB").resize((size, size), Image.BILINEAR)))
            except OSError as error:
                raise ChallengeError(f"{path}: unreadable image ({error}). Replace or delete it.") from error
            numbers.append(int(path.stem) if path.stem.isdigit() else k + 1)
        return np.stack(frames), np.asarray(numbers)
    if detector is not None:
        from challenge.vision.faces import largest_face_rgb, make_detector

        finder = make_detector(detector)
        frames = [largest_face_rgb(finder, rgb, size, margin) for _, rgb in iter_video_frames(source, 1)]
    else:
        frames = [np.asarray(Image.fromarray(rgb).resize((size, size), Image.BILINEAR)) for _, rgb in iter_video_frames(source, 1)]
    if not frames:
        raise ChallengeError(f"{source}: the video has no frames.")
    return np.stack(frames), np.arange(1, len(frames) + 1)


def face_frames(samples, lengths: dict[str, int], size: int = 224) -> FaceFrames:
    """The loader of per-frame tracks: each video's crop folder (Aff-Wild2's cropped_aligned), or
    the video itself when there is none. The end-to-end head sets `size` to its backbone's input."""
    return _per_video(FaceFrames, samples, lengths, size=size)


def detected_face_frames(samples, lengths: dict[str, int], size: int = 224) -> FaceFrames:
    """The loader of per-frame tracks whose videos are scenes, not crops (smile-intensity): each
    frame's largest face, found by CenterFace, in colour at the backbone's size."""
    return _per_video(FaceFrames, samples, lengths, size=size, detector="centerface")


def _per_video(kind, samples, lengths: dict[str, int], **settings):
    """A VideoMedia of `kind` over the samples: each one's crop folder, else its video."""
    sources = [s.frames_dir if s.frames_dir is not None else s.video for s in samples]
    missing = [s.id for s, source in zip(samples, sources) if source is None]
    if missing:
        raise ChallengeError(f"{len(missing)} video(s) have neither face crops nor a video file (first: {missing[:5]}).")
    labels = [s.labels for s in samples] if samples and samples[0].labels is not None else None
    return kind([s.id for s in samples], [lengths[s.id] for s in samples], [Path(p) for p in sources], labels, **settings)


@dataclass
class FaceCrops(VideoMedia):
    """Per-frame tracks' detected face crops: each video's faces found by the project's detector
    and cut, levelled and scaled to a grey square as `challenge live` cuts them
    (challenge.vision.faces.crop_face), flattened to [frames, size²] in [0, 1], one row per label
    row (a frame without a crop takes the nearest one's). What cnn-gru reads; `recipe` (the
    detector, its interval, the margin and the side) is set by the head, so its saved parameters
    say how live crops must be made."""

    medium = "face-crops"
    recipe: dict = field(default_factory=dict)  # FaceCropExtractor settings

    @property
    def dims(self) -> list[int]:
        from challenge.features.face_crops import FaceCropExtractor

        return [FaceCropExtractor(**self.recipe).size ** 2]

    def video(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """([frames, size²] float32 crops, [frames] True where the frame had no crop of its own)."""
        from challenge.training.frames import visual_on_frames

        def decode():
            from challenge.features.face_crops import FaceCropExtractor, FaceCropRunner

            array, _, index = FaceCropRunner(FaceCropExtractor(**self.recipe)).prepare(self.sources[i])
            return array.astype(np.float16), np.asarray(index)

        key = ("face-crops", str(self.sources[i]), tuple(sorted(self.recipe.items())))
        array, index = MEDIA_RAM.get(key, lambda: _Decoded(decode()))
        aligned, missing = visual_on_frames(array, list(index), self.lengths[i])
        return aligned.astype(np.float32), missing


class _Decoded(tuple):
    """(crops, frame numbers) as one cache item: its size is the crops'."""

    @property
    def nbytes(self) -> int:
        return self[0].nbytes + self[1].nbytes


def face_crops(samples, lengths: dict[str, int]) -> FaceCrops:
    """The loader of detected face crops: a sample's crop folder (already cut faces) or its video."""
    return _per_video(FaceCrops, samples, lengths)


@dataclass
class AudioVisualClips(ClipSet):
    """Clip tracks' videos as Social-MAE reads them (challenge.features.audio_visual): each
    sample's filterbank and faces, decoded once per file (kept in RAM up to the budget). Training
    reads a random window of the model's length inside the item with a random face from each
    part of it; evaluation half-overlapping windows covering the item (one centred window when
    the item is shorter than the model's). `model` (the Social-MAE config: bins, side, frames,
    clip length) is set by the head, as its backbone reads."""

    medium = "audio-visual"
    per_item = ("ids", "videos", "audios", "spans")
    ids: list[str]
    videos: list[Path]
    audios: list[Path | None]  # a separate audio file (EMI's), else the video's own sound
    targets: np.ndarray | None = None
    model: object = None  # SocialMAEConfig
    spans: list[tuple[float, float]] | None = None

    def arrays(self, i: int):
        from challenge.features.audio_visual import read_video

        c = self.model
        rate = 2 * c.frames / c.clip_seconds

        def decode():
            try:
                return _Arrays(read_video(self.videos[i], c.mel_bins, c.image_size, rate, audio=self.audios[i]))
            except ChallengeError:
                raise
            except Exception as error:  # noqa: BLE001 - PyAV's many kinds of decoding error
                raise ChallengeError(f"{self.videos[i]}: cannot decode it ({type(error).__name__}: {error}).") from error

        return MEDIA_RAM.get(("audio-visual", str(self.videos[i]), c.mel_bins, c.image_size, rate), decode).value

    def _window(self, i: int, video) -> tuple[float, float]:
        """(first, last) start time of the model's window inside item i: anywhere in its span, or
        for an item shorter than the window one start, the window centred on the item."""
        start, end = self.span(i, video.seconds)
        if end - start <= self.model.clip_seconds:
            centred = max(0.0, (start + end - self.model.clip_seconds) / 2)
            return centred, centred
        return start, end - self.model.clip_seconds

    def train_clip(self, i: int, rng: np.random.Generator):
        from challenge.features.audio_visual import cut_clip

        video, c = self.arrays(i), self.model
        first, last = self._window(i, video)
        return cut_clip(video, rng.uniform(first, last), c.audio_frames, c.frames, rng)

    def eval_clips(self, i: int) -> list:
        from challenge.features.audio_visual import clip_starts, cut_clip

        video, c = self.arrays(i), self.model
        first, last = self._window(i, video)
        starts = [first] if first == last else first + clip_starts(last - first + c.clip_seconds, c.clip_seconds, c.clip_seconds / 2)
        return [cut_clip(video, s, c.audio_frames, c.frames) for s in starts]


class _Arrays:
    """A decoded video as one cache item: its size is its arrays'."""

    def __init__(self, value):
        self.value = value

    @property
    def nbytes(self) -> int:
        return self.value.fbank.nbytes + self.value.faces.nbytes


def audio_visual_clips(samples, lengths=None) -> AudioVisualClips:
    """The loader of clip tracks with video: a sample's video for its faces, its audio file (or
    the video's own sound) for the filterbank."""
    missing = [s.id for s in samples if s.video is None]
    if missing:
        raise ChallengeError(
            f"{len(missing)} clip(s) have no video to read faces from (first: {missing[:5]}); pass --skip-missing to leave them out."
        )
    targets = np.stack([s.labels for s in samples]).astype(np.float32) if samples and samples[0].labels is not None else None
    return AudioVisualClips(
        [s.id for s in samples],
        [Path(s.video) for s in samples],
        [Path(s.audio) if s.audio is not None else None for s in samples],
        targets,
    )
