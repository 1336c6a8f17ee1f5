"""VD (DVD) submission: one `<video>.csv` per test video, header `Frame_Number,Label`, one row per
decoded frame (Frame_Number from 1, Label 0 or 1), zipped into one file for upload."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np

from challenge.errors import ChallengeError, list_offenders

HEADER = "Frame_Number,Label"
ZIP_NAME = "predictions.zip"


def validate_zip(path: Path, frames: dict[str, int]) -> list[str]:
    """Problems of the zip against each test video's decoded frame count; empty when valid."""
    path = Path(path)
    if not path.exists():
        return [f"{path}: file not found"]
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        return [f"{path}: not a zip file"]
    problems: dict[str, list[str]] = {}
    add = lambda kind, item: problems.setdefault(kind, []).append(item)  # noqa: E731
    with archive:
        names = {Path(n).stem: n for n in archive.namelist() if n.endswith(".csv")}
        for video in sorted(set(frames) - set(names)):
            add("missing video", f"{video}.csv")
        for video in sorted(set(names) - set(frames)):
            add("video not in Test/videos", names[video])
        for video in sorted(set(names) & set(frames)):
            lines = archive.read(names[video]).decode("utf-8-sig").splitlines()
            if not lines or lines[0].strip() != HEADER:
                add("header", f"{names[video]}: line 1 is '{lines[0] if lines else ''}', expected '{HEADER}'")
                continue
            rows = [line.split(",") for line in lines[1:] if line.strip()]
            if len(rows) != frames[video]:
                add("row count", f"{names[video]}: {len(rows)} rows, the video decodes to {frames[video]} frames")
            bad = next((i for i, r in enumerate(rows) if len(r) != 2 or r[0].strip() != str(i + 1) or r[1].strip() not in ("0", "1")), None)
            if bad is not None:
                add("row", f"{names[video]} line {bad + 2}: {','.join(rows[bad])!r}, expected {bad + 1},0|1")
    return [f"{kind} ({len(items)}):\n{list_offenders(items)}" for kind, items in problems.items()]


def write_zip(root: Path, out: Path, ids: list[str], decisions) -> Path:
    """Each video's decided labels as its CSV, all in one zip, validated before it is kept."""
    from challenge.stores.atomic import write_atomically

    def write(handle) -> None:
        with zipfile.ZipFile(handle, "w", zipfile.ZIP_DEFLATED) as archive:
            for video, labels in zip(ids, decisions):
                text = io.StringIO()
                text.write(HEADER + "\n")
                for number, label in enumerate(np.asarray(labels).reshape(-1).astype(int), start=1):
                    text.write(f"{number},{label}\n")
                archive.writestr(f"{video}.csv", text.getvalue())

    path = Path(out) / ZIP_NAME
    Path(out).mkdir(parents=True, exist_ok=True)
    write_atomically(path, write, "submission")
    problems = validate_zip(path, {video: len(np.asarray(labels).reshape(-1)) for video, labels in zip(ids, decisions)})
    if problems:
        path.unlink()
        raise ChallengeError(f"refused to keep {path}: it fails validation:\n" + "\n".join(problems))
    return path
