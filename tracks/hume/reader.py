"""Reader for the Hume-Vidmimic2 layout (EMI), see docs/formats.md."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from challenge.data.samples import Sample, Samples
from challenge.data.text import read_lines
from challenge.data.transcripts import find_transcripts
from challenge.errors import ChallengeError, list_offenders
from challenge.progress import warn
from submissions.emi import EMOTIONS, HEADER  # noqa: F401 - the reader's public names too

SPLIT_FILES = {"train": "train_split.csv", "valid": "valid_split.csv"}
AUDIO_SUFFIXES = (".mp3", ".wav", ".flac", ".m4a")


def clip_id(value: str) -> str:
    """Organisers name clips by a 5-digit id; tolerate a missing zero padding or extension."""
    stem = Path(value.strip()).stem
    return f"{int(stem):05d}" if stem.isdigit() else stem


@dataclass(frozen=True)
class LabelRow:
    values: np.ndarray
    line: int  # line number in the split file, for messages


def read_split_csv(path: Path) -> dict[str, LabelRow]:
    """Clip id -> its six intensities and line. A clip listed twice with the same values is
    kept once (with a warning); listed twice with different values it is an error."""
    if not path.exists():
        raise ChallengeError(f"{path}: split file not found. The EMI dataset root needs train_split.csv and valid_split.csv.")
    rows = list(csv.reader(read_lines(path)))
    if not rows or [c.strip() for c in rows[0]] != HEADER:
        found = ",".join(rows[0]) if rows else "(empty file)"
        raise ChallengeError(f"{path} line 1: header is '{found}', expected '{','.join(HEADER)}'. Fix the header line.")
    labels: dict[str, LabelRow] = {}
    problems, repeated = [], []
    for number, row in enumerate(rows[1:], start=2):
        if not row or not any(c.strip() for c in row):
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
        name = row[0].strip()
        if not name or name in (".", "..") or "/" in name or "\\" in name:
            problems.append(f"line {number}: Filename {row[0]!r} is not a clip name (expected an id such as 00042 or 00042.mp4)")
            continue
        clip = clip_id(name)
        if clip in labels:
            first = labels[clip]
            if np.array_equal(first.values, values):
                repeated.append(f"line {number}: {clip} repeats line {first.line}")
            else:
                problems.append(
                    f"line {number}: clip {clip} again, with other intensities than on line {first.line} "
                    f"({','.join(row[1:])}); keep the row that is right and delete the other"
                )
            continue
        labels[clip] = LabelRow(values, number)
    if problems:
        raise ChallengeError(f"{path}: {len(problems)} bad line(s):\n{list_offenders(problems)}")
    if repeated:
        warn(f"{path}: {len(repeated)} duplicated row(s) with identical values, each clip kept once:\n{list_offenders(repeated)}")
    return labels


def _media(root: Path, clip: str, raw_dir: Path, audio_dir: Path) -> tuple[Path | None, Path | None]:
    video = raw_dir / f"{clip}.mp4"
    audio = next((audio_dir / f"{clip}{s}" for s in AUDIO_SUFFIXES if (audio_dir / f"{clip}{s}").exists()), None)
    video = video if video.exists() else None
    return video, audio or video  # without an audio file the video's own track is decoded


def _sample(root: Path, clip: str, split: str, labels, raw_dir: Path, audio_dir: Path, transcripts: dict[str, Path]) -> Sample:
    video, audio = _media(root, clip, raw_dir, audio_dir)
    faces = root / "face_images" / str(int(clip)) if clip.isdigit() else root / "face_images" / clip
    if not faces.exists():
        faces = root / "face_images" / clip
    provided = {kind: root / kind / f"{clip}.pkl" for kind in ("wav2vec2", "vit")}
    return Sample(
        id=clip,
        split=split,
        video=video,
        audio=audio,
        frames_dir=faces if faces.exists() else None,
        labels=labels,
        provided={k: p for k, p in provided.items() if p.exists()},
        transcript=transcripts.get(clip),
    )


def _refuse_leaks(root: Path, tables: dict[str, dict[str, LabelRow]]) -> None:
    """A clip in both split files would be trained on and scored on: refuse it, naming both lines."""
    both = sorted(set(tables["train"]) & set(tables["valid"]))
    if both:
        lines = [
            f"{clip}: {SPLIT_FILES['train']} line {tables['train'][clip].line} and {SPLIT_FILES['valid']} line {tables['valid'][clip].line}"
            for clip in both
        ]
        raise ChallengeError(
            f"{root}: {len(both)} clip(s) are listed in both splits (train/validation leakage):\n"
            f"{list_offenders(lines)}\nRemove each from one of the two files."
        )


def read_hume(root: Path, on_missing: str = "error") -> Samples:
    """Train/valid clips with labels and test clips; `on_missing="skip"` drops clips without
    media (counted in `Samples.skipped`) instead of failing."""
    root = Path(root)
    if not root.is_dir():
        raise ChallengeError(f"{root}: dataset folder not found. Pass --data with the Hume-Vidmimic2 root.")
    samples, missing = [], []
    tables = {split: read_split_csv(root / name) for split, name in SPLIT_FILES.items()}
    transcripts = find_transcripts(root, clip_id)  # the text stream's media, when the team provides it
    _refuse_leaks(root, tables)
    for split, name in SPLIT_FILES.items():
        for clip, row in tables[split].items():
            sample = _sample(root, clip, split, row.values, root / "raw", root / "audio", transcripts)
            if sample.audio is None and sample.frames_dir is None and not sample.provided:
                missing.append(f"{clip} ({name}): no raw/{clip}.mp4, audio/{clip}.mp3|wav or face_images/")
                continue
            samples.append(sample)
    test_raw = root / "test_data" / "raw"
    if test_raw.exists():
        labelled = {clip: SPLIT_FILES[split] for split, table in tables.items() for clip in table}
        leaked = [
            f"test_data/raw/{v.name} is also labelled in {labelled[clip_id(v.name)]}"
            for v in sorted(test_raw.glob("*.mp4"))
            if clip_id(v.name) in labelled
        ]
        if leaked:
            raise ChallengeError(
                f"{root}: {len(leaked)} test clip(s) carry the id of a labelled clip:\n{list_offenders(leaked)}\n"
                "Test ids continue after the validation ids; check which copy is misplaced."
            )
        for video in sorted(test_raw.glob("*.mp4")):
            clip = clip_id(video.name)
            samples.append(_sample(root, clip, "test", None, test_raw, root / "test_data" / "audio", transcripts))
    if missing and on_missing == "error":
        raise ChallengeError(
            f"{root}: {len(missing)} labelled clip(s) have no media:\n{list_offenders(missing)}\n"
            "Restore the files, or pass --skip-missing to leave these clips out (they are counted and reported)."
        )
    return Samples(samples, skipped=missing)
