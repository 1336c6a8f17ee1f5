"""Aff-Wild2 / C-EXPR-DB submissions: one text file per track, the official header, one row
`<video>/<frame:05d>.jpg,<prediction>` for every frame the organisers' sample file lists, in its
order (frames without a face included)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from challenge.data.affwild import LABELS
from challenge.data.text import read_lines
from challenge.errors import ChallengeError, list_offenders


def official_header(track: str) -> str:
    return "image_location," + ",".join(LABELS[track].header)


def read_sample_file(path: Path) -> list[str]:
    """The image locations of the organisers' sample prediction file, in order."""
    lines = read_lines(path)
    if not lines:
        raise ChallengeError(f"{path}: empty sample file; use the organisers' prediction_files_format file.")
    return [line.split(",", 1)[0].strip() for line in lines[1:] if line.strip()]


def _check_value(track: str, cells: list[str]) -> str | None:
    spec = LABELS[track]
    if spec.kind == "class":
        if len(cells) != 1 or not cells[0].strip().isdigit() or not 0 <= int(cells[0]) <= spec.high:
            return f"expected one class index 0..{spec.high:g}, found {','.join(cells)}"
    elif spec.kind == "multilabel":
        if len(cells) != len(spec.header) or any(c.strip() not in ("0", "1") for c in cells):
            return f"expected {len(spec.header)} values of 0 or 1, found {','.join(cells)}"
    else:
        try:
            values = [float(c) for c in cells]
        except ValueError:
            return f"non-numeric value in {','.join(cells)}"
        if len(values) != len(spec.header) or not all(math.isfinite(v) and -1 <= v <= 1 for v in values):
            return f"expected {len(spec.header)} finite values in [-1, 1], found {','.join(cells)}"
    return None


def validate_affwild(track: str, path: Path, sample_file: Path, test_names: list[str]) -> list[str]:
    path = Path(path)
    if not path.exists():
        return [f"{path}: file not found"]
    lines = read_lines(path)
    while len(lines) > 1 and not lines[-1].strip():  # a trailing blank line is harmless
        lines.pop()
    problems: dict[str, list[str]] = {}

    def add(kind: str, item: str) -> None:
        problems.setdefault(kind, []).append(item)

    header = official_header(track)
    if not lines or lines[0].strip() != header:
        add("header", f"line 1 is '{lines[0] if lines else ''}', expected '{header}'")
    expected = read_sample_file(sample_file)
    locations, first_seen = [], {}
    for number, line in enumerate(lines[1:], start=2):
        location, _, rest = line.partition(",")
        location = location.strip()
        if location in first_seen:
            add("duplicated frame", f"line {number}: {location} already on line {first_seen[location]}")
        first_seen.setdefault(location, number)
        locations.append(location)
        problem = _check_value(track, rest.split(","))
        if problem:
            add("bad value", f"line {number} ({location}): {problem}")
        video = location.split("/", 1)[0]
        if test_names and video not in test_names:
            add("video not in the test-set list", f"line {number}: {video}")
    expected_set, found_set = set(expected), set(locations)
    for location in expected:
        if location not in found_set:
            add("missing frame", location)
    for number, location in enumerate(locations, start=2):
        if location not in expected_set:
            add("frame not in the sample file", f"line {number}: {location}")
    # with no frame missing, extra or repeated, both lists hold the same frames: only order can differ
    membership = ("missing frame", "frame not in the sample file", "duplicated frame")
    if not any(problems.get(kind) for kind in membership) and locations != expected:
        first = next(i for i, (a, b) in enumerate(zip(locations, expected)) if a != b)
        add("wrong order", f"line {first + 2}: {locations[first]}, the sample file has {expected[first]} there")
    return [f"{kind} ({len(items)}):\n{list_offenders(items)}" for kind, items in problems.items()]


def format_prediction(track: str, row: np.ndarray) -> str:
    spec = LABELS[track]
    if spec.kind == "class":
        return str(int(row))
    if spec.kind == "multilabel":
        return ",".join(str(int(v)) for v in row)
    return ",".join(f"{float(v):.6f}" for v in np.clip(row, -1, 1))


def write_affwild(track: str, path: Path, predictions: dict[str, np.ndarray], sample_file: Path, test_names: list[str]) -> Path:
    """`predictions[video]` holds one decision per frame (row i = frame i + 1); rows follow the
    sample file. A file that fails validation is removed and the problems raised."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows, absent = [official_header(track)], []
    for location in read_sample_file(sample_file):
        video, _, frame = location.partition("/")
        values = predictions.get(video)
        if values is None:
            absent.append(video)
            continue
        index = min(int(Path(frame).stem), len(values)) - 1  # frames past the last feature repeat it
        rows.append(f"{location},{format_prediction(track, values[index])}")
    if absent:
        raise ChallengeError(f"no predictions for {len(set(absent))} test video(s) of the sample file:\n{list_offenders(sorted(set(absent)))}")
    path.write_text("\n".join(rows) + "\n")
    problems = validate_affwild(track, path, sample_file, test_names)
    if problems:
        path.unlink()
        raise ChallengeError(f"refused to keep {path}: it fails validation:\n" + "\n".join(problems))
    return path


@dataclass(frozen=True)
class AffWildSubmission:
    """The track spec's writer and validator for one Aff-Wild2 track: the sample file and the
    test video names come from the dataset root."""

    track: str

    def write(self, root: Path, out: Path, video_ids: list[str], decisions: list[np.ndarray]) -> Path:
        from challenge.data.affwild import find_sample_file, read_test_names

        root = Path(root)
        return write_affwild(self.track, Path(out) / "predictions.txt", dict(zip(video_ids, decisions)),
                             find_sample_file(root, self.track), read_test_names(root, LABELS[self.track]))

    def validate(self, root: Path, path: Path, video_ids: list[str]) -> list[str]:
        from challenge.data.affwild import find_sample_file

        return validate_affwild(self.track, path, find_sample_file(Path(root), self.track), video_ids)
