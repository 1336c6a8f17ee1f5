"""The images a masked autoencoder pretrains on: every image under folders (Aff-Wild2's
cropped_aligned, any folder of face images), or the faces the project's detector finds in
videos, cut once into image folders beside the run's output. Only paths are held in memory, so a
corpus of 100,000 images costs a list of names; images are decoded by DataLoader workers.

An unreadable image or video is an error that names it, or with --skip-missing is left out and
counted. Crops of a video are written to a temporary folder renamed when the video is done, so a
killed run leaves no half-cut video behind and a rerun cuts only the videos not done yet."""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from challenge.errors import ChallengeError
from challenge.media import IMAGE_SUFFIXES
from challenge.progress import progress_bar, warn

VIDEO_SUFFIXES = {".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg"}


def image_files(folders: list[Path]) -> list[Path]:
    """Every image under the folders (recursively), in a stable order."""
    return _files(folders, IMAGE_SUFFIXES, "images", "--images")


def video_files(folders: list[Path]) -> list[Path]:
    return _files(folders, VIDEO_SUFFIXES, "videos", "--videos")


def _files(folders: list[Path], suffixes: set[str], what: str, option: str) -> list[Path]:
    found = []
    for folder in map(Path, folders):
        if not folder.is_dir():
            raise ChallengeError(f"{folder}: no such folder of {what} ({option}).")
        found += sorted(p for p in folder.rglob("*") if p.suffix.lower() in suffixes and p.is_file())
    if not found:
        raise ChallengeError(f"no {what} ({', '.join(sorted(suffixes))}) under {', '.join(map(str, folders))}.")
    return found


def cut_video_faces(
    videos: list[Path], into: Path, size: int, frame_step: int, margin: float, skip_missing: bool
) -> tuple[list[Path], int]:
    """Each video's largest face every `frame_step` frames, cut by the project's detector and
    levelled as `challenge live` cuts faces (challenge.vision.faces), saved as RGB images of
    side `size` under `into/<video>-<digest>/`. Returns the crop folders and the number of
    videos left out (unreadable, with skip_missing)."""
    from PIL import Image

    from challenge.media import iter_video_frames
    from challenge.vision.faces import largest_face_rgb, make_detector

    detector, folders, skipped = None, [], 0
    with progress_bar("cutting faces from videos", len(videos)) as advance:
        for video in videos:
            digest = hashlib.sha1(f"{video.resolve()}|{size}|{frame_step}|{margin}".encode()).hexdigest()[:10]
            folder = into / f"{video.stem}-{digest}"
            if not folder.is_dir():
                detector = detector or make_detector("centerface")
                partial = into / f".{folder.name}.partial-{os.getpid()}"
                shutil.rmtree(partial, ignore_errors=True)
                partial.mkdir(parents=True)
                try:
                    count = 0
                    for i, (_, rgb) in enumerate(iter_video_frames(video, frame_step)):
                        crop = largest_face_rgb(detector, rgb, size, margin)
                        Image.fromarray(crop).save(partial / f"{i * frame_step + 1:06d}.jpg", quality=95)
                        count += 1
                    if not count:
                        raise ChallengeError(f"{video}: the video has no frames.")
                except Exception as error:  # noqa: BLE001 - PyAV's many decoding errors, and ours
                    shutil.rmtree(partial, ignore_errors=True)
                    if not skip_missing:
                        reason = (
                            str(error)
                            if isinstance(error, ChallengeError)
                            else f"{video}: cannot decode it ({type(error).__name__}: {error})"
                        )
                        raise ChallengeError(f"{reason}. Replace or remove it, or pass --skip-missing to leave it out.") from error
                    skipped += 1
                    advance()
                    continue
                os.replace(partial, folder)
            folders.append(folder)
            advance()
    if skipped:
        warn(f"left out {skipped} unreadable video(s) (--skip-missing)")
    if not folders:
        raise ChallengeError("no video could be read: nothing to pretrain on.")
    return folders, skipped


@dataclass
class ImageLoading:
    """How a training image becomes the model's input: a random resized crop keeping at least
    `crop_scale` of its area (aspect 3/4 to 4/3), a random flip, then the model's side.
    Evaluation images are only resized."""

    size: int
    flip: bool = True
    crop_scale: float = 1.0
    seed: int = 0


@dataclass
class PretrainImages(torch.utils.data.Dataset):
    """Items are (position, image index) pairs: the augmentation of an item is drawn from
    (seed, position), so it does not depend on which worker decodes it, and a resumed run
    draws what an uninterrupted one would. An unreadable image raises, or with skip_missing
    comes back as Unreadable (the collate function drops it and passes its index on)."""

    paths: list[Path]
    loading: ImageLoading
    train: bool = True
    skip_missing: bool = False

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, item):
        from PIL import Image

        position, index = item
        path = self.paths[index]
        try:
            with Image.open(path) as image:
                image = image.convert("RGB")
                image.load()
        except (OSError, ValueError, SyntaxError) as error:  # PIL's decoding errors
            if self.skip_missing:
                return Unreadable(index)
            raise ChallengeError(
                f"{path}: unreadable image ({type(error).__name__}: {error}). Replace or delete it, or pass --skip-missing to leave it out."
            ) from error
        s = self.loading
        if self.train:
            rng = np.random.default_rng([s.seed, int(position)])
            image = _random_resized_crop(image, s.crop_scale, rng)
            if s.flip and rng.random() < 0.5:
                image = image.transpose(Image.FLIP_LEFT_RIGHT)
        pixels = np.asarray(image.resize((s.size, s.size), Image.BICUBIC), dtype=np.uint8)
        return torch.from_numpy(pixels.copy()).permute(2, 0, 1)  # [3, size, size] uint8; scaled on the model's device


def _random_resized_crop(image, scale: float, rng: np.random.Generator):
    if scale >= 1:
        return image
    width, height = image.size
    area = width * height * rng.uniform(scale, 1.0)
    aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
    w = int(round(min(width, np.sqrt(area * aspect))))
    h = int(round(min(height, np.sqrt(area / aspect))))
    x, y = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
    return image.crop((x, y, x + w, y + h))


@dataclass(frozen=True)
class Unreadable:
    index: int


def collate_images(items: list) -> tuple[torch.Tensor, list[int]]:
    """(the batch's readable images stacked, the indices of those that were unreadable)."""
    kept = [x for x in items if not isinstance(x, Unreadable)]
    batch = torch.stack(kept) if kept else torch.empty(0, dtype=torch.uint8)
    return batch, [x.index for x in items if isinstance(x, Unreadable)]
