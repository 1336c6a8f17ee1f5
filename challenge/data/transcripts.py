"""The team's transcripts of the clips (the text stream, `--features text`), in either layout
under the dataset root:

    transcripts/<clip>.txt   one UTF-8 file per clip (the id with or without its zero padding)
    transcripts.csv          rows of id,text (a first row naming the columns is skipped; a text
                             may be quoted and hold commas or line breaks)

A CSV is split into one file per clip, each written atomically into a cache folder and named by
its text's digest (CHALLENGE_TRANSCRIPT_CACHE, default ~/.cache/challenge/transcripts), so each
clip's text has a content digest of its own in the feature store, like any medium: an edited line
gives that clip new features and leaves the others cached. Where a clip has both, its file wins.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
from pathlib import Path

from challenge.data.text import read_lines
from challenge.errors import ChallengeError, list_offenders
from challenge.stores.atomic import write_text_atomically

FOLDER, TABLE = "transcripts", "transcripts.csv"
CACHE_ENV = "CHALLENGE_TRANSCRIPT_CACHE"


def find_transcripts(root: Path, clip_id) -> dict[str, Path]:
    """clip id -> its transcript file, from both layouts; `clip_id` normalises an id as the
    split files' ids are (zero padding)."""
    found = {}
    table = Path(root) / TABLE
    if table.is_file():
        found.update(_split_table(table, clip_id))
    folder = Path(root) / FOLDER
    if folder.is_dir():
        found.update({clip_id(path.stem): path for path in sorted(folder.glob("*.txt"))})
    return found


def _split_table(table: Path, clip_id) -> dict[str, Path]:
    lines = read_lines(table)  # UTF-8 (BOM and CRLF accepted) or a named error
    rows = list(csv.reader(io.StringIO("\n".join(lines))))
    header = bool(rows) and [c.strip().lower() for c in rows[0][:2]] in (["id", "text"], ["filename", "text"], ["clip", "text"])
    texts, problems = {}, []
    for number, row in enumerate(rows[1:] if header else rows, start=2 if header else 1):  # CSV records, the header counted
        if not row or not "".join(row).strip():
            continue
        if len(row) != 2:
            problems.append(f"{table.name} record {number}: {len(row)} column(s), expected id,text (quote a text that holds commas)")
            continue
        clip, text = clip_id(row[0].strip()), row[1].strip()
        if clip in texts and texts[clip] != text:
            problems.append(f"{table.name} record {number}: clip {clip} again, with another text")
        texts[clip] = text
    if problems:
        raise ChallengeError(f"{table}: {len(problems)} row(s) cannot be read:\n{list_offenders(problems)}")
    return cached_texts(texts)


def cached_texts(texts: dict[str, str]) -> dict[str, Path]:
    """id -> a UTF-8 file holding its text, in the transcript cache: texts that arrive inside
    another file (a CSV, BAH's split lines, Whisper .yml files) become one file per clip, each
    named by the digest of its text, so it has a content digest of its own in the feature store
    and an edited text gives that clip new features only."""
    cache = Path(os.environ.get(CACHE_ENV, "~/.cache/challenge/transcripts")).expanduser()
    paths = {}
    for clip, text in texts.items():
        digest = hashlib.sha256(text.encode()).hexdigest()[:24]
        path = cache / digest[:2] / f"{digest}.txt"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomically(path, text + "\n", "transcript")  # a killed split leaves no half-written transcript
        paths[clip] = path
    return paths
