"""Reader for the BAH layout as registered teams receive it (see docs/tracks/bah.md):

    split/{train,val,test}.txt        no header; video_path,label,transcript (the transcript is
                                      free text with commas and quotes: split on the first two commas)
    Videos/<pid>/Visite_1/<video>.mp4                     the video, with its sound
    cropped-aligned-faces/Videos/<pid>/Visite_1/<video>.mp4/frame-<i>.jpg   face crops, i from 0
    transcription/Videos/<pid>/Visite_1/<video>.mp4/<video>.yml             Whisper output
    transcripts/Videos/<pid>/Visite_1/<video>.mp4.txt                       the team's own (optional, preferred)
    video_annotation_transcript.yaml, meta_data.yml       annotations and participants (optional)

A sample's id is its video path as the split files write it (the submission's video_id); its
group is the participant, and the split check, folds and estimates keep a participant whole.
The test list's labels are placeholders (0) in the private test package: they are never read
as labels."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import numpy as np
import yaml

from challenge.data.samples import Sample, Samples
from challenge.data.text import read_lines
from challenge.data.transcripts import cached_texts
from challenge.errors import ChallengeError, list_offenders
from challenge.media import IMAGE_SUFFIXES
from challenge.progress import warn

SPLITS = {"train": "train.txt", "valid": "val.txt", "test": "test.txt"}
LABELS = ["no A/H", "A/H"]  # class_id.yaml: "No A-H: 0", "With A-H: 1"


class TranscriptLoader(yaml.SafeLoader):
    """A safe loader that also knows the one Python tag Whisper's .yml files carry
    (`!!python/tuple` timestamps), as a list; any other Python tag is still refused."""


TranscriptLoader.add_constructor("tag:yaml.org,2002:python/tuple", lambda loader, node: loader.construct_sequence(node))


def read_yaml(path: Path):
    try:
        return yaml.load(Path(path).read_text(encoding="utf-8-sig"), Loader=TranscriptLoader)  # noqa: S506 - a SafeLoader subclass
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise ChallengeError(
            f"{path}: not readable YAML ({str(error).splitlines()[0]}). Restore the file from the dataset package."
        ) from error


def participant(video_id: str) -> str:
    """`Videos/<pid>/Visite_1/<file>.mp4` -> `<pid>`."""
    parts = PurePosixPath(video_id).parts
    return parts[1] if len(parts) >= 3 and parts[0] == "Videos" else str(PurePosixPath(video_id).parent.parent)


def whisper_text(path: Path) -> str:
    data = read_yaml(path)
    if isinstance(data, dict) and isinstance(data.get("text"), str):
        return data["text"].strip()
    if isinstance(data, dict) and isinstance(data.get("chunks"), list):
        return " ".join(str(c.get("text", "")).strip() for c in data["chunks"] if isinstance(c, dict)).strip()
    raise ChallengeError(f"{path}: a Whisper transcript holds `text` or `chunks`; this file has neither.")


def read_split(path: Path) -> list[tuple[int, str, int, str]]:
    """(line number, video path, label, transcript) per line."""
    if not path.is_file():
        raise ChallengeError(f"{path}: split file not found. The BAH root needs split/train.txt, split/val.txt and split/test.txt.")
    rows, problems = [], []
    for number, line in enumerate(read_lines(path), start=1):
        if not line.strip():
            continue
        parts = line.split(",", 2)
        if len(parts) < 3:
            problems.append(f"line {number}: {len(parts)} field(s) in {line[:80]!r}, expected video_path,label,transcript")
            continue
        video, label, text = parts[0].strip().replace("\\", "/"), parts[1].strip(), parts[2].strip()
        if label not in ("0", "1"):
            problems.append(f"line {number}: label {label!r}, expected 0 or 1")
            continue
        if len(text) >= 2 and text[0] == text[-1] == '"':
            text = text[1:-1].replace('""', '"')
        rows.append((number, video, int(label), text))
    if problems:
        raise ChallengeError(f"{path}: {len(problems)} line(s) cannot be read:\n{list_offenders(problems)}")
    return rows


def _crops(root: Path, video: str) -> Path | None:
    folder = root / "cropped-aligned-faces" / video
    return folder if folder.is_dir() and any(p.suffix.lower() in IMAGE_SUFFIXES for p in folder.iterdir()) else None


def _transcript_file(root: Path, video: str) -> Path | None:
    path = root / "transcription" / video / f"{PurePosixPath(video).stem}.yml"
    return path if path.is_file() else None


def _check_groups(tables: dict[str, list]) -> None:
    """A participant in two splits would be trained on and scored on: the split is by participant."""
    where: dict[str, tuple[str, int]] = {}
    leaks = []
    for split, rows in tables.items():
        for number, video, _, _ in rows:
            pid = participant(video)
            first = where.setdefault(pid, (split, number))
            if first[0] != split:
                leaks.append(f"participant {pid}: {SPLITS[first[0]]} line {first[1]} and {SPLITS[split]} line {number}")
                where[pid] = (split, number)
    if leaks:
        raise ChallengeError(
            f"{len(leaks)} participant(s) appear in two splits (BAH splits by participant):\n{list_offenders(leaks)}\n"
            "Move each participant's videos into one split."
        )


def read_annotation(root: Path) -> dict[str, dict]:
    """video -> its entry of video_annotation_transcript.yaml (global_ah, frame_annotation,
    fr_detailed_ah, ...), {} without the file."""
    path = root / "video_annotation_transcript.yaml"
    if not path.is_file():
        return {}
    data = read_yaml(path) or {}
    if not isinstance(data, dict):
        raise ChallengeError(f"{path}: expected one entry per video, found {type(data).__name__}.")
    return {str(k).replace("\\", "/"): v for k, v in data.items() if isinstance(v, dict)}


def _frame_number(name) -> int | None:
    digits = "".join(c for c in PurePosixPath(str(name)).stem.rsplit("-", 1)[-1] if c.isdigit())
    return int(digits) if digits else None


def frame_labels(entry: dict, video: Path) -> np.ndarray | None:
    """A video's label per frame (0/1, -1 where unknown) from its annotation entry: the
    `frame_annotation` list ([frame path, label] ...) when it has one, else the A/H segments
    `fr_detailed_ah` (frame ranges, taken as 0-based and inclusive, as the crops are numbered)
    over the video's frame count. A video without A/H has no A/H frame, so one 0 stands for all
    of them (labels map onto frames by position); an A/H video without segments has none known."""
    listed = entry.get("frame_annotation")
    if isinstance(listed, list) and listed:
        pairs = [(_frame_number(item[0]), item[1]) for item in listed if isinstance(item, (list, tuple)) and len(item) == 2]
        pairs = [(i, int(label)) for i, label in pairs if i is not None and str(label) in ("0", "1")]
        if pairs:
            labels = np.full(max(i for i, _ in pairs) + 1, -1, np.int8)
            for i, label in pairs:
                labels[i] = label
            return labels
    if int(entry.get("global_ah", -1)) == 0:
        return np.zeros(1, np.int8)
    segments = entry.get("fr_detailed_ah") or []
    if not segments:
        return None
    from challenge.media import video_frame_count

    labels = np.zeros(video_frame_count(video), np.int8)
    for segment in segments:
        start, stop = (int(v) for v in segment[:2])
        labels[max(start, 0) : stop + 1] = 1
    return labels


def _read_frame_labels(root: Path, video: str, entry: dict, path: Path) -> np.ndarray | None:
    try:
        return frame_labels(entry, path)
    except (TypeError, ValueError, IndexError) as error:
        raise ChallengeError(
            f"{root / 'video_annotation_transcript.yaml'}: the entry of {video} cannot be read as frame labels ({error}); "
            "expected global_ah 0/1, fr_detailed_ah as [[start, end], ...] frame numbers and frame_annotation as "
            "[[frame path, 0/1], ...]. Restore the file from the dataset package."
        ) from None


def read_bah(root: Path, on_missing: str = "error") -> Samples:
    root = Path(root)
    if not root.is_dir():
        raise ChallengeError(f"{root}: dataset folder not found. Pass --data with the BAH root (the folder holding split/ and Videos/).")
    tables = {split: read_split(root / "split" / name) for split, name in SPLITS.items()}
    _check_groups(tables)
    if (root / "meta_data.yml").is_file():
        read_yaml(root / "meta_data.yml")  # a damaged file is named now, not when someone reads it
    annotation = read_annotation(root)
    samples, missing, disagree, texts = [], [], [], {}
    for split, rows in tables.items():
        seen = {}
        for number, video, label, text in rows:
            if video in seen:
                raise ChallengeError(f"{root / 'split' / SPLITS[split]} line {number}: {video} again (first on line {seen[video]}).")
            seen[video] = number
            path = root / video
            if not path.is_file():
                missing.append(f"split/{SPLITS[split]} line {number}: {video} does not exist under {root}")
                continue
            own, whisper = root / "transcripts" / f"{video}.txt", _transcript_file(root, video)
            # the team's own (`challenge transcribe --track ah` writes there), else the organisers' Whisper output, else the split line's
            texts[video] = own.read_text(encoding="utf-8").strip() if own.is_file() else whisper_text(whisper) if whisper else text
            labelled = split != "test"
            entry = annotation.get(video) or annotation.get(PurePosixPath(video).name) or {}
            agrees = int(entry.get("global_ah", label)) == label
            if labelled and not agrees:
                disagree.append(f"{video}: split says {label}, video_annotation_transcript.yaml says {1 - label}")
            samples.append(
                Sample(
                    id=video,
                    split=split,
                    video=path,
                    audio=path,
                    frames_dir=_crops(root, video),
                    labels=np.asarray(label, np.float32) if labelled else None,  # the test list's labels are placeholders
                    # frame labels only where the annotation tells the same story as the split file
                    frame_labels=_read_frame_labels(root, video, entry, path) if labelled and entry and agrees else None,
                )
            )
    if missing and on_missing == "error":
        raise ChallengeError(
            f"{root}: {len(missing)} video(s) of the split files are missing:\n{list_offenders(missing)}\n"
            "Restore them, or pass --skip-missing to leave them out (counted and reported)."
        )
    if disagree:
        warn(
            f"{len(disagree)} video label(s) differ between the split files and the annotation (the split files are used):\n{list_offenders(disagree)}"
        )
    paths = cached_texts({k: v for k, v in texts.items() if v})
    for sample in samples:
        sample.transcript = paths.get(sample.id)
    return Samples(samples, skipped=missing)
