"""Aff-Wild2 / C-EXPR-DB: the official label vocabularies (annotation headers, invalid values), the
organisers' test name lists and sample prediction files, and the submissions: one text file per track, the official header, one row
`<video>/<frame:05d>.jpg,<prediction>` for every frame the organisers' sample file lists, in its
order (frames without a face included)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from challenge.data.text import iter_lines, read_lines
from challenge.errors import ChallengeError, list_offenders


@dataclass(frozen=True)
class FrameLabels:
    """What one track's annotation files look like."""

    track: str
    folder: re.Pattern  # annotation folder name
    test_list: re.Pattern  # test-set name list file name
    header: list[str]
    kind: str  # "class" (one int a line), "multilabel" (0/1 each) or "regression"
    invalid: float  # the value that marks an unannotated frame
    low: float = 0.0
    high: float = 1.0


LABELS = {
    "va": FrameLabels(
        "va", re.compile(r"^VA", re.I), re.compile(r"(^|_)VA(_|\.)|Valence", re.I), ["valence", "arousal"], "regression", -5, -1.0, 1.0
    ),
    "expr": FrameLabels(
        "expr",
        re.compile(r"^EXPR|^Expr", re.I),
        re.compile(r"Expr", re.I),
        ["Neutral", "Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise", "Other"],
        "class",
        -1,
        0,
        7,
    ),
    "au": FrameLabels(
        "au",
        re.compile(r"^AU", re.I),
        re.compile(r"(^|_)AU(_|\.)|Action_Unit", re.I),
        ["AU1", "AU2", "AU4", "AU6", "AU7", "AU10", "AU12", "AU15", "AU23", "AU24", "AU25", "AU26"],
        "multilabel",
        -1,
        0,
        1,
    ),
    "ce": FrameLabels(
        "ce",
        re.compile(r"^CE|Compound", re.I),
        re.compile(r"(^|_)CE(_|\.)|Compound", re.I),
        [
            "Fearfully_Surprised",
            "Happily_Surprised",
            "Sadly_Surprised",
            "Disgustedly_Surprised",
            "Angrily_Surprised",
            "Sadly_Fearful",
            "Sadly_Angry",
        ],
        "class",
        -1,
        0,
        6,
    ),
}


# each compound class of C-EXPR-DB as its two basic expressions (EXPR class indices)
CE_PARTS = {0: (3, 6), 1: (4, 6), 2: (5, 6), 3: (2, 6), 4: (1, 6), 5: (5, 3), 6: (5, 1)}


def read_test_names(root: Path, spec: FrameLabels) -> list[str]:
    lists = [p for p in root.rglob("*.txt") if "names_of_videos" in str(p.parent).lower() or "test_set" in p.name.lower()]
    lists = [p for p in lists if spec.test_list.search(p.name) and "prediction" not in str(p).lower()]
    if not lists:
        return []
    return [line.strip() for line in read_lines(sorted(lists)[0]) if line.strip()]


def find_sample_file(root: Path, track: str) -> Path:
    """The organisers' sample prediction file for a track: the reference list of test frames."""
    spec = LABELS[track]
    found = [p for p in Path(root).rglob("*.txt") if "prediction" in str(p.parent).lower() and spec.test_list.search(p.name)]
    if not found:
        raise ChallengeError(
            f"{root}: no sample prediction file for {track.upper()} (prediction_files_format/*{track.upper()}*test_set_sample.txt). "
            "Copy the organisers' prediction_files_format folder into the dataset root: it lists every test frame."
        )
    return sorted(found)[0]


def sample_file_frames(path: Path) -> dict[str, int]:
    """Frames per test video as the sample file lists them (its highest frame number)."""
    frames: dict[str, int] = {}
    for line in read_lines(path)[1:]:
        location = line.split(",", 1)[0].strip()
        if "/" in location:
            video, name = location.split("/", 1)
            frames[video] = max(frames.get(video, 0), int(Path(name).stem))
    return frames


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
    """Every problem of a submission file against the sample file. Both files are first read
    side by side, a line at a time: a file whose frames follow the sample file's (a file this
    project wrote, or a well-formed one) is checked in constant memory. Only when the frames
    part ways is the sample file indexed, each frame kept as its position in it."""
    path = Path(path)
    if not path.exists():
        return [f"{path}: file not found"]
    side_by_side = _in_sample_order(track, path, sample_file, set(test_names))
    return side_by_side if side_by_side is not None else _against_index(track, path, sample_file, test_names)


def _in_sample_order(track: str, path: Path, sample_file: Path, tests: set[str]) -> list[str] | None:
    """The problems of a file whose rows follow the sample file frame by frame, or None as soon
    as they part ways (then the indexed check finds what is missing, extra or out of order)."""
    problems: dict[str, list[str]] = {}
    header = official_header(track)
    ours, reference = iter_lines(path), iter_lines(sample_file)
    first = next(ours, None)
    if next(reference, None) is None:
        raise ChallengeError(f"{sample_file}: empty sample file; use the organisers' prediction_files_format file.")
    if first is None or first.strip() != header:
        problems.setdefault("header", []).append(f"line 1 is '{first or ''}', expected '{header}'")
    expected_rows = (line for line in reference if line.strip())
    blank_tail = 0
    for number, line in enumerate(ours, start=2):
        if not line.strip():
            blank_tail += 1
            continue
        expected = next(expected_rows, None)
        location, _, rest = line.partition(",")
        if blank_tail or expected is None or expected.split(",", 1)[0].strip() != location.strip():
            return None
        problem = _check_value(track, rest.split(","))
        if problem:
            problems.setdefault("bad value", []).append(f"line {number} ({location.strip()}): {problem}")
        if tests and location.split("/", 1)[0].strip() not in tests:
            problems.setdefault("video not in the test-set list", []).append(f"line {number}: {location.split('/', 1)[0].strip()}")
    if next(expected_rows, None) is not None:
        return None
    return [f"{kind} ({len(items)}):\n{list_offenders(items)}" for kind, items in problems.items()]


def _against_index(track: str, path: Path, sample_file: Path, test_names: list[str]) -> list[str]:
    from array import array

    problems: dict[str, list[str]] = {}

    def add(kind: str, item: str) -> None:
        problems.setdefault(kind, []).append(item)

    header = official_header(track)
    expected = read_sample_file(sample_file)
    position = {location: i for i, location in enumerate(expected)}
    first_line = array("l", [0]) * len(expected)  # the line each expected frame was first seen on
    extras: dict[str, int] = {}  # frames not in the sample file -> first line
    tests = set(test_names)
    order_break, count, blank_tail = None, 0, []
    lines = iter_lines(path)
    first = next(lines, None)
    if first is None or first.strip() != header:
        add("header", f"line 1 is '{first or ''}', expected '{header}'")
    for number, line in enumerate(lines, start=2):
        if not line.strip():  # blank lines at the end are harmless; inside the file they are rows
            blank_tail.append(number)
            continue
        for blank in blank_tail:
            _check_row(track, "", blank, add, position, first_line, extras, tests)
        count += len(blank_tail)
        blank_tail = []
        location = _check_row(track, line, number, add, position, first_line, extras, tests)
        if order_break is None and (count >= len(expected) or expected[count] != location):
            order_break = (number, location, expected[count] if count < len(expected) else "no line")
        count += 1
    for i in (i for i in range(len(expected)) if first_line[i] == 0):
        add("missing frame", expected[i])
    # with no frame missing, extra or repeated, both lists hold the same frames: only order can differ
    membership = ("missing frame", "frame not in the sample file", "duplicated frame")
    if not any(problems.get(kind) for kind in membership) and order_break is not None:
        number, found, wanted = order_break
        add("wrong order", f"line {number}: {found}, the sample file has {wanted} there")
    return [f"{kind} ({len(items)}):\n{list_offenders(items)}" for kind, items in problems.items()]


def _check_row(track, line, number, add, position, first_line, extras, tests) -> str:
    """One row's problems; returns its frame location."""
    location, _, rest = line.partition(",")
    location = location.strip()
    index = position.get(location)
    seen = (first_line[index] or None) if index is not None else extras.get(location)
    if seen is not None:
        add("duplicated frame", f"line {number}: {location} already on line {seen}")
    elif index is not None:
        first_line[index] = number
    else:
        extras[location] = number
        add("frame not in the sample file", f"line {number}: {location}")
    problem = _check_value(track, rest.split(","))
    if problem:
        add("bad value", f"line {number} ({location}): {problem}")
    video = location.split("/", 1)[0]
    if tests and video not in tests:
        add("video not in the test-set list", f"line {number}: {video}")
    return location


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
        raise ChallengeError(
            f"no predictions for {len(set(absent))} test video(s) of the sample file:\n{list_offenders(sorted(set(absent)))}"
        )
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

        root = Path(root)
        return write_affwild(
            self.track,
            Path(out) / "predictions.txt",
            dict(zip(video_ids, decisions)),
            find_sample_file(root, self.track),
            read_test_names(root, LABELS[self.track]),
        )

    def validate(self, root: Path, path: Path, video_ids: list[str]) -> list[str]:

        return validate_affwild(self.track, path, find_sample_file(Path(root), self.track), video_ids)
