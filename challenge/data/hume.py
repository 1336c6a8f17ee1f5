"""Reader for the Hume-Vidmimic2 layout (EMI), see ABAW_FORMATS.md."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from challenge.data.samples import Sample, Samples
from challenge.errors import ChallengeError, list_offenders

EMOTIONS = ["Admiration", "Amusement", "Determination", "Empathic Pain", "Excitement", "Joy"]
HEADER = ["Filename", *EMOTIONS]
SPLIT_FILES = {"train": "train_split.csv", "valid": "valid_split.csv"}
AUDIO_SUFFIXES = (".mp3", ".wav", ".flac", ".m4a")


def clip_id(value: str) -> str:
    """Organisers name clips by a 5-digit id; tolerate a missing zero padding or extension."""
    stem = Path(value.strip()).stem
    return f"{int(stem):05d}" if stem.isdigit() else stem


def read_split_csv(path: Path) -> dict[str, np.ndarray]:
    if not path.exists():
        raise ChallengeError(f"{path}: split file not found. The EMI dataset root needs train_split.csv and valid_split.csv.")
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    if not rows or [c.strip() for c in rows[0]] != HEADER:
        found = ",".join(rows[0]) if rows else "(empty file)"
        raise ChallengeError(f"{path} line 1: header is '{found}', expected '{','.join(HEADER)}'. Fix the header line.")
    labels, problems = {}, []
    for number, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != len(HEADER):
            problems.append(f"line {number}: {len(row)} columns, expected {len(HEADER)}")
            continue
        try:
            values = np.array([float(v) for v in row[1:]], dtype=np.float32)
        except ValueError:
            problems.append(f"line {number}: non-numeric intensity in {row[1:]}")
            continue
        if not all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in values):
            problems.append(f"line {number}: intensities must be in [0, 1], found {row[1:]}")
            continue
        labels[clip_id(row[0])] = values
    if problems:
        raise ChallengeError(f"{path}: {len(problems)} bad line(s):\n{list_offenders(problems)}")
    return labels


def _media(root: Path, clip: str, raw_dir: Path, audio_dir: Path) -> tuple[Path | None, Path | None]:
    video = raw_dir / f"{clip}.mp4"
    audio = next((audio_dir / f"{clip}{s}" for s in AUDIO_SUFFIXES if (audio_dir / f"{clip}{s}").exists()), None)
    video = video if video.exists() else None
    return video, audio or video  # without an audio file the video's own track is decoded


def _sample(root: Path, clip: str, split: str, labels, raw_dir: Path, audio_dir: Path) -> Sample:
    video, audio = _media(root, clip, raw_dir, audio_dir)
    faces = root / "face_images" / str(int(clip)) if clip.isdigit() else root / "face_images" / clip
    if not faces.exists():
        faces = root / "face_images" / clip
    provided = {kind: root / kind / f"{clip}.pkl" for kind in ("wav2vec2", "vit")}
    return Sample(
        id=clip, split=split, video=video, audio=audio,
        frames_dir=faces if faces.exists() else None, labels=labels,
        provided={k: p for k, p in provided.items() if p.exists()},
    )


def read_hume(root: Path, on_missing: str = "error") -> Samples:
    """Train/valid clips with labels and test clips; `on_missing="skip"` drops clips without
    media (counted in `Samples.skipped`) instead of failing."""
    root = Path(root)
    if not root.is_dir():
        raise ChallengeError(f"{root}: dataset folder not found. Pass --data with the Hume-Vidmimic2 root.")
    samples, missing = [], []
    for split, name in SPLIT_FILES.items():
        for clip, values in read_split_csv(root / name).items():
            sample = _sample(root, clip, split, values, root / "raw", root / "audio")
            if sample.audio is None and sample.frames_dir is None and not sample.provided:
                missing.append(f"{clip} ({name}): no raw/{clip}.mp4, audio/{clip}.mp3|wav or face_images/")
                continue
            samples.append(sample)
    test_raw = root / "test_data" / "raw"
    if test_raw.exists():
        for video in sorted(test_raw.glob("*.mp4")):
            clip = clip_id(video.name)
            samples.append(_sample(root, clip, "test", None, test_raw, root / "test_data" / "audio"))
    if missing and on_missing == "error":
        raise ChallengeError(
            f"{root}: {len(missing)} labelled clip(s) have no media:\n{list_offenders(missing)}\n"
            "Restore the files, or pass --skip-missing to leave these clips out (they are counted and reported)."
        )
    return Samples(samples, skipped=missing)
