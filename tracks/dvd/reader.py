"""Reader for the DVD layout (see docs/tracks/dvd.md):

    Training/videos/<video>.mp4      Training/annotations/<video>.csv   Frame_Number,Label (from 1)
    Validation/videos/<video>.mp4    Validation/annotations/<video>.csv
    Test/videos/<video>.mp4          no annotations: one row per decoded frame is predicted

The annotation is the frame axis of a labelled video. Its length is checked against the
video's frame count; the stated rule for a difference:
- up to MAX_DRIFT frames (an encoder's extra or dropped last frame): kept, with a warning naming
  the video and both counts; features are sampled at each annotated frame's time, so a row past
  the video's end takes its last frame's features, and decoded frames past the last row are
  not trained on;
- more: an error naming the file, since the labels would then describe another cut of the video.
Nothing is ever shifted."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from challenge.data.samples import Sample, Samples
from challenge.data.text import read_lines
from challenge.errors import ChallengeError, list_offenders
from challenge.media import video_frame_count
from challenge.progress import warn

FOLDERS = {"train": "Training", "valid": "Validation", "test": "Test"}
HEADER = ["Frame_Number", "Label"]
LABELS = ["non-violent", "violent"]
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov")
MAX_DRIFT = 2  # frames an annotation may differ from its video's count (warned), see above


def read_annotation(path: Path) -> np.ndarray:
    """[frames, 1] labels 0/1 of Frame_Number 1..n, or an error naming the file and the line."""
    lines = [line for line in read_lines(path) if line.strip()]
    if not lines or [c.strip() for c in lines[0].split(",")] != HEADER:
        found = lines[0] if lines else "(empty file)"
        raise ChallengeError(f"{path} line 1: header is '{found}', expected '{','.join(HEADER)}'. Fix the header line.")
    labels, problems = [], []
    for number, line in enumerate(lines[1:], start=2):
        cells = [c.strip() for c in line.split(",")]
        if len(cells) != 2 or not cells[0].isdigit() or cells[1] not in ("0", "1"):
            problems.append(f"line {number}: {line!r}, expected FRAME,0|1")
            continue
        if int(cells[0]) != len(labels) + 1:
            problems.append(f"line {number}: Frame_Number {cells[0]}, expected {len(labels) + 1} (frames count from 1 without gaps)")
            break
        labels.append(int(cells[1]))
    if problems:
        raise ChallengeError(f"{path}: {len(problems)} bad line(s):\n{list_offenders(problems)}")
    if not labels:
        raise ChallengeError(f"{path}: no annotated frames below the header.")
    return np.asarray(labels, np.float32)[:, None]


def _videos(folder: Path) -> dict[str, Path]:
    return {p.stem: p for p in sorted(folder.glob("*")) if p.suffix.lower() in VIDEO_SUFFIXES} if folder.is_dir() else {}


def read_dvd(root: Path, on_missing: str = "error") -> Samples:
    root = Path(root)
    if not (root / "Training").is_dir():
        raise ChallengeError(f"{root}: no Training/ folder. Pass --data with the DVD root (holding Training/, Validation/, Test/).")
    samples, missing, drift, far = [], [], [], []
    for split, folder in FOLDERS.items():
        videos = _videos(root / folder / "videos")
        if split == "test":
            samples += [Sample(id=name, split="test", video=path, audio=path) for name, path in videos.items()]
            continue
        annotations = {p.stem: p for p in sorted((root / folder / "annotations").glob("*.csv"))}
        for name in sorted(set(videos) | set(annotations)):
            if name not in videos or name not in annotations:
                what = "video" if name not in videos else "annotation"
                missing.append(f"{folder}/{name}: no {what} ({folder}/{'videos' if what == 'video' else 'annotations'}/{name}.*)")
                continue
            labels = read_annotation(annotations[name])
            frames = video_frame_count(videos[name])
            if frames != len(labels):
                line = f"{folder}/annotations/{name}.csv: {len(labels)} rows, the video has {frames} frames"
                (drift if abs(frames - len(labels)) <= MAX_DRIFT else far).append(line)
            samples.append(
                Sample(
                    id=name,
                    split=split,
                    video=videos[name],
                    audio=videos[name],
                    labels=labels,
                    frame_index=np.arange(1, len(labels) + 1),
                )
            )
    if far:
        raise ChallengeError(
            f"{len(far)} annotation(s) differ from their video by more than {MAX_DRIFT} frames:\n{list_offenders(far)}\n"
            "The labels would describe another cut of the video: re-export the video or the annotation from the same source."
        )
    if drift:
        warn(
            f"{len(drift)} annotation(s) differ from their video by at most {MAX_DRIFT} frames; the annotation is the frame axis "
            f"(rows past the video's end take its last frame's features):\n{list_offenders(drift)}"
        )
    if missing and on_missing == "error":
        raise ChallengeError(
            f"{root}: {len(missing)} video(s) lack their annotation or video:\n{list_offenders(missing)}\n"
            "Restore the files, or pass --skip-missing to leave them out (counted and reported)."
        )
    return Samples(samples, skipped=missing)


def test_frames(root: Path) -> dict[str, int]:
    """Decoded frames of every test video: the rows its submission file must hold (decoded, not
    the container's count, which can differ by a frame)."""
    return {name: video_frame_count(path, decode=True) for name, path in _videos(Path(root) / FOLDERS["test"] / "videos").items()}
