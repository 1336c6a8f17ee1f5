"""EMI submission: one CSV, the official header, one row per test clip, 6 values in [0, 1]."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from challenge.data.text import read_lines
from challenge.errors import ChallengeError, list_offenders

EMOTIONS = ["Admiration", "Amusement", "Determination", "Empathic Pain", "Excitement", "Joy"]
HEADER = ["Filename", *EMOTIONS]  # the label files' header and the submission's


def validate_emi(path: Path, expected_ids: list[str]) -> list[str]:
    """Every problem found (at most 10 listed per kind); empty when the file is valid."""
    path = Path(path)
    if not path.exists():
        return [f"{path}: file not found"]
    rows = list(csv.reader(read_lines(path)))
    while len(rows) > 1 and not any(cell.strip() for cell in rows[-1]):  # a trailing blank line is harmless
        rows.pop()
    if not rows:
        return [f"{path}: empty file; expected header '{','.join(HEADER)}'"]
    problems: dict[str, list[str]] = {}

    def add(kind: str, item: str) -> None:
        problems.setdefault(kind, []).append(item)

    if rows[0] != HEADER:
        add("header", f"line 1 is '{','.join(rows[0])}', expected '{','.join(HEADER)}'")
    seen: dict[str, int] = {}
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != len(HEADER):
            add("column count", f"line {number}: {len(row)} columns, expected {len(HEADER)}")
            continue
        name = row[0]
        if not (len(name) == 5 and name.isdigit()):
            add("clip id", f"line {number}: '{name}' is not a 5-digit clip id as the organisers name them (e.g. 12660)")
        if name in seen:
            add("duplicate clip", f"line {number}: {name} already on line {seen[name]}")
        seen.setdefault(name, number)
        for emotion, cell in zip(HEADER[1:], row[1:]):
            try:
                value = float(cell)
            except ValueError:
                add("non-numeric value", f"line {number}: {emotion} = '{cell}'")
                continue
            if not math.isfinite(value):
                add("non-finite value", f"line {number}: {emotion} = {cell}")
            elif not 0.0 <= value <= 1.0:
                add("value out of [0, 1]", f"line {number}: {emotion} = {cell}")
    expected = set(expected_ids)
    for clip in sorted(expected - set(seen)):
        add("missing clip", clip)
    for clip in sorted(set(seen) - expected):
        if len(clip) == 5 and clip.isdigit():
            add("clip not in the test set", f"{clip} (line {seen[clip]})")
    return [f"{kind} ({len(items)}):\n{list_offenders(items)}" for kind, items in problems.items()]


def write_emi(path: Path, ids: list[str], predictions: np.ndarray) -> Path:
    """Write the file, then validate it; a file that fails is removed, never left for upload."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        for clip, values in zip(ids, predictions):
            writer.writerow([clip, *(f"{float(v):.6f}" for v in np.clip(values, 0, 1))])
    problems = validate_emi(path, ids)
    if problems:
        path.unlink()
        raise ChallengeError(f"refused to keep {path}: it fails validation:\n" + "\n".join(problems))
    return path


# the track spec's interface: (dataset root, run folder, test ids, predictions) and
# (dataset root, file, test ids); EMI needs nothing from the root beyond the test ids
def submit_emi(root: Path, out: Path, ids: list[str], predictions: np.ndarray) -> Path:
    return write_emi(Path(out) / "predictions.csv", ids, predictions)


def check_emi(root: Path, path: Path, ids: list[str]) -> list[str]:
    return validate_emi(path, ids)
