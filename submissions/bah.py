"""A/H (BAH) submission: `trial-<n>.txt`, no header, one line per test video in the order of the
organisers' test list, `video_id,p0,p1,pred`. The organisers' validator checks p0 + p1 == 1.0
with ==, so each pair is written as decimals whose float sum is exactly 1; pred is 0 or 1 and
agrees with the probabilities. Up to 5 trials are accepted: the writer takes the next free
number among the track's submission folders and says how many are left."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from challenge.data.text import read_lines
from challenge.errors import list_offenders
from challenge.progress import say, warn

TRIALS = 5
TRIAL_NAME = re.compile(r"^trial-(\d+)\.txt$")


def probability_pair(p1: float) -> tuple[str, str]:
    """(p0, p1) as decimal strings whose floats sum to exactly 1.0 (6 decimals, nudged by 1e-6
    where the rounding of the two would miss 1.0 by one ulp)."""
    value = min(max(float(p1), 0.0), 1.0)
    for nudge in (0, 1, -1, 2, -2):
        one = min(max(round(value + nudge * 1e-6, 6), 0.0), 1.0)
        text1, text0 = f"{one:.6f}", f"{1.0 - one:.6f}"
        if float(text0) + float(text1) == 1.0:
            return text0, text1
    return ("0.000000", "1.000000") if value >= 0.5 else ("1.000000", "0.000000")


def validate_trial(path: Path, expected_ids: list[str], name: str | None = None) -> list[str]:
    """Every problem found (at most 10 listed per kind); empty when the file is valid. `name`:
    the name the file will be uploaded under, when it is checked before being renamed."""
    path = Path(path)
    if not path.exists():
        return [f"{path}: file not found"]
    problems: dict[str, list[str]] = {}
    add = lambda kind, item: problems.setdefault(kind, []).append(item)  # noqa: E731
    name = name or path.name
    match = TRIAL_NAME.match(name)
    if not match or not 1 <= int(match.group(1)) <= TRIALS:
        add("file name", f"{name}: the organisers take trial-1.txt .. trial-{TRIALS}.txt")
    lines = read_lines(path)
    while lines and not lines[-1].strip():
        lines.pop()
    if lines and lines[0].split(",")[0].strip().lower() in ("video_id", "video", "video_path", "video-path"):
        add("header", f"line 1 is '{lines[0]}': the file has no header line")
    ids = []
    for number, line in enumerate(lines, start=1):
        cells = [c.strip() for c in line.split(",")]
        if len(cells) not in (2, 4):
            add("field count", f"line {number}: {len(cells)} fields, expected video_id,p0,p1,pred (or video_id,pred)")
            continue
        ids.append(cells[0])
        if cells[-1] not in ("0", "1"):
            add("prediction", f"line {number}: pred is '{cells[-1]}', expected 0 or 1")
        if len(cells) == 4:
            try:
                p0, p1 = float(cells[1]), float(cells[2])
            except ValueError:
                add("probability", f"line {number}: p0,p1 = '{cells[1]},{cells[2]}' are not numbers")
                continue
            if not (math.isfinite(p0) and math.isfinite(p1) and 0 <= p0 <= 1 and 0 <= p1 <= 1):
                add("probability", f"line {number}: p0,p1 = {cells[1]},{cells[2]} are not probabilities")
            elif p0 + p1 != 1.0:  # exactly as the organisers' validator compares
                add("p0 + p1 != 1.0", f"line {number}: {cells[1]} + {cells[2]} = {p0 + p1!r}")
            elif cells[-1] in ("0", "1") and p0 != p1 and int(cells[-1]) != int(p1 > p0):
                add("prediction disagrees", f"line {number}: pred {cells[-1]} with p0={cells[1]}, p1={cells[2]}")
    if ids != list(expected_ids):
        missing, extra = set(expected_ids) - set(ids), set(ids) - set(expected_ids)
        for video in sorted(missing):
            add("missing video", video)
        for video in sorted(extra):
            add("video not in the test list", video)
        if not missing and not extra:
            first = next(i for i, (a, b) in enumerate(zip(ids, expected_ids)) if a != b)
            add("order", f"line {first + 1} is {ids[first]}; the test list has {expected_ids[first]} there (keep its order)")
    return [f"{kind} ({len(items)}):\n{list_offenders(items)}" for kind, items in problems.items()]


def next_trial(out: Path) -> int:
    """1 + the highest trial number among this track's run folders (out's siblings)."""
    numbers = [int(m.group(1)) for p in Path(out).parent.glob("*/trial-*.txt") if (m := TRIAL_NAME.match(p.name))]
    return max(numbers, default=0) + 1


def write_trial(root: Path, out: Path, ids: list[str], probabilities: np.ndarray) -> Path:
    """The next trial file of the run folder `out`, validated before it is kept. `probabilities`
    [N, 2] come after the decision rule, so pred is the argmax (class 1 when p1 > p0)."""
    from challenge.errors import ChallengeError
    from challenge.stores.atomic import write_text_atomically

    probabilities = np.asarray(probabilities, np.float64)
    if probabilities.shape != (len(ids), 2):
        raise ChallengeError(f"A/H submission: expected [videos, 2] probabilities, got {probabilities.shape}")
    trial = next_trial(out)
    path = Path(out) / f"trial-{trial}.txt"
    rows = []
    for video, (q0, q1) in zip(ids, probabilities):
        p0, p1 = probability_pair(q1 / max(q0 + q1, 1e-12))
        rows.append(f"{video},{p0},{p1},{int(float(p1) > float(p0))}")
    candidate = path.with_name(f".{path.name}.check")
    Path(out).mkdir(parents=True, exist_ok=True)
    write_text_atomically(candidate, "\n".join(rows) + "\n", "submission")
    problems = [p for p in validate_trial(candidate, ids, path.name) if trial <= TRIALS or not p.startswith("file name")]
    if problems:
        candidate.unlink()
        raise ChallengeError("refused to keep the A/H trial file: it fails validation:\n" + "\n".join(problems))
    candidate.replace(path)
    left = TRIALS - trial
    if left >= 0:
        say(f"A/H trial {trial} of {TRIALS}: {left} left (counted over {Path(out).parent}/*/trial-*.txt)")
    else:
        warn(f"{path.name}: more trial files than the {TRIALS} the organisers accept: upload at most {TRIALS} of them, renamed trial-1..5")
    return path


def check_trial(root: Path, path: Path, ids: list[str]) -> list[str]:
    return validate_trial(path, ids)
