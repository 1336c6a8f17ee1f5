"""Reader for the Aff-Wild2 layout (VA, EXPR, AU) and C-EXPR-DB (CE), see docs/formats.md.

Folder names drift between editions, so annotation folders are found by pattern.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from challenge.data.samples import Sample, Samples
from challenge.data.text import read_lines
from challenge.errors import ChallengeError, list_offenders
from challenge.media import IMAGE_SUFFIXES
from challenge.progress import warn
from submissions.affwild import CE_PARTS, LABELS, FrameLabels, find_sample_file, read_test_names, sample_file_frames  # noqa: F401 - the reader's public names too

VIDEO_SUFFIXES = {".mp4", ".avi", ".mkv", ".mov"}
SPLIT_FOLDERS = {"train": re.compile(r"train", re.I), "valid": re.compile(r"valid", re.I)}


def find_annotation_dirs(root: Path, spec: FrameLabels) -> dict[str, Path]:
    """{split: folder} for folders like <track folder>/Train_Set, found anywhere under root."""
    found = {}
    for folder in sorted(p for p in root.rglob("*") if p.is_dir() and spec.folder.search(p.name)):
        for child in folder.iterdir():
            for split, pattern in SPLIT_FOLDERS.items():
                if child.is_dir() and pattern.search(child.name):
                    found.setdefault(split, child)
    return found


def _header_problem(found: str, spec: FrameLabels) -> str | None:
    columns = [c.strip() for c in found.split(",")]
    if [c.lower() for c in columns] == [c.lower() for c in spec.header]:
        return None
    if len(columns) != len(spec.header):
        return f"has {len(columns)} column(s), expected {len(spec.header)}: {','.join(spec.header)}"
    wrong = [f"{got!r} where {want!r} belongs" for got, want in zip(columns, spec.header) if got.lower() != want.lower()]
    return f"has {', '.join(wrong[:5])}; expected: {','.join(spec.header)}"


def _class_value(cell: str, spec: FrameLabels) -> float | None:
    """An integer class index (or the invalid marker); None for 2.5, 'x' or out of range."""
    try:
        value = float(cell)
    except ValueError:
        return None
    if not value.is_integer() or not (value == spec.invalid or spec.low <= value <= spec.high):
        return None
    return value


def parse_annotation(path: Path, spec: FrameLabels) -> np.ndarray:
    lines = read_lines(path)
    problem = _header_problem(lines[0], spec) if lines else f"is missing (empty file); expected: {','.join(spec.header)}"
    if problem:
        raise ChallengeError(
            f"{spec.track.upper()} annotation {path.name} line 1: header '{lines[0] if lines else ''}' {problem}. "
            f"Fix the first line of {path}."
        )
    width = 1 if spec.kind == "class" else len(spec.header)
    rows, problems = [], []
    body = lines[1:]
    while body and not body[-1].strip():  # trailing blank lines from an editor or spreadsheet
        body.pop()
    for number, line in enumerate(body, start=2):
        cells = line.strip().split(",")
        if len(cells) != width:
            problems.append(f"line {number} (frame {number - 1:05d}): {len(cells)} value(s), expected {width}")
            continue
        if spec.kind in ("class", "multilabel"):
            values = [_class_value(c, spec) for c in cells]
            if any(v is None for v in values):
                allowed = f"integers {spec.low:g}..{spec.high:g}" if spec.kind == "class" else "0 or 1"
                problems.append(
                    f"line {number} (frame {number - 1:05d}): {line.strip()!r}; expected {allowed} (or {spec.invalid:g} for an unannotated frame)"
                )
                continue
        else:
            try:
                values = [float(c) for c in cells]
            except ValueError:
                problems.append(f"line {number} (frame {number - 1:05d}): not a number: {line.strip()!r}")
                continue
            if not all(v == spec.invalid or (np.isfinite(v) and spec.low <= v <= spec.high) for v in values):
                problems.append(
                    f"line {number} (frame {number - 1:05d}): {line.strip()} outside [{spec.low:g}, {spec.high:g}] (invalid marker {spec.invalid:g})"
                )
                continue
        rows.append(values)
    if problems:
        raise ChallengeError(
            f"{spec.track.upper()} annotation {path}: {len(problems)} bad line(s):\n{list_offenders(problems)}\n"
            "Fix these lines; line i annotates frame i - 1 (the header is line 1)."
        )
    if not rows:
        raise ChallengeError(
            f"{spec.track.upper()} annotation {path}: only the header line, no frame is annotated. "
            "Restore the file from the organisers' archive, or remove it to leave the video out."
        )
    return np.array(rows, dtype=np.float32).reshape(len(rows), width)


def index_videos(root: Path) -> dict[str, Path]:
    """Source videos by stem, anywhere under root except the crop folders."""
    return {
        p.stem: p
        for p in sorted(root.rglob("*"))
        if p.suffix.lower() in VIDEO_SUFFIXES and "cropped" not in str(p.relative_to(root)).lower()
    }


def source_video(name: str, videos: dict[str, Path]) -> Path | None:
    """`_left`/`_right` videos share the source video (and its audio)."""
    return videos.get(name) or videos.get(re.sub(r"_(left|right)$", "", name))


def frame_numbers(folder: Path) -> list[int]:
    return sorted(int(p.stem) for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.stem.isdigit())


def read_affwild(root: Path, track: str, on_missing: str = "skip", require_labels: bool = True) -> Samples:
    """Annotated train/valid videos and the test videos of the track's name list.
    `require_labels=False` admits a root without annotations (CE zero-shot: test videos only)."""
    root = Path(root)
    if not root.is_dir():
        raise ChallengeError(f"{root}: dataset folder not found. Pass --data with the Aff-Wild2 root.")
    spec = LABELS[track]
    folders = find_annotation_dirs(root, spec)
    if not folders and require_labels:
        raise ChallengeError(
            f"{root}: no {track.upper()} annotation folder (a folder matching {spec.folder.pattern!r} "
            "holding Train_Set/Validation_Set). Check --data points at the Aff-Wild2 root."
        )
    crops = next((p for p in root.rglob("cropped_aligned*") if p.is_dir()), root / "cropped_aligned")
    videos = index_videos(root)
    samples, skipped, extra_crops, seen = [], [], [], {}
    for split, folder in folders.items():
        for path in sorted(folder.glob("*.txt")):
            if path.stem in seen:
                raise ChallengeError(
                    f"{path}: video {path.stem} is annotated in two splits (also {seen[path.stem]}): "
                    "train/validation leakage. Remove one of the two files."
                )
            seen[path.stem] = path
            labels = parse_annotation(path, spec)
            sample = _video_sample(path.stem, split, crops, videos, labels)
            if sample.frames_dir is None and sample.video is None:
                skipped.append(f"{path.stem} ({split}): no cropped_aligned/{path.stem}/ and no source video")
                continue
            if sample.frames_dir is not None:
                frames = frame_numbers(sample.frames_dir)
                past = [f for f in frames if f > len(labels)]
                if past:  # seen in the real corpus: the annotation is the reference, these crops are unused
                    extra_crops.append(
                        f"{sample.frames_dir}: {len(past)} crop(s) after the last annotated frame "
                        f"{len(labels):05d} (from {past[0]:05d}) are ignored"
                    )
            samples.append(sample)
    if extra_crops:
        warn(f"{len(extra_crops)} video(s) have face crops past their annotation ({spec.track.upper()}):\n{list_offenders(extra_crops)}")
    if skipped and on_missing == "error":
        raise ChallengeError(
            f"{root}: {len(skipped)} annotated video(s) have neither crops nor a source video:\n{list_offenders(skipped)}\n"
            "Restore them, or pass --skip-missing to leave them out (they are counted and reported)."
        )
    for name in read_test_names(root, spec):
        samples.append(_video_sample(name, "test", crops, videos, None))
    return Samples(samples, skipped=skipped)


def _video_sample(name: str, split: str, crops: Path, videos: dict[str, Path], labels) -> Sample:
    frames_dir = crops / name
    video = source_video(name, videos)
    return Sample(
        id=name,
        split=split,
        video=video,
        audio=video,
        frames_dir=frames_dir if frames_dir.is_dir() else None,
        labels=labels,
        frame_index=None if labels is None else np.arange(1, len(labels) + 1),
    )
