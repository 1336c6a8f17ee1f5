"""Reading the organisers' text files (split CSVs, annotations, name lists, sample files).

These files travel through spreadsheets: a UTF-8 byte-order mark and CRLF line ends are
accepted; a file saved as Latin-1 or UTF-16 is a named error with the line and the fix, never a
raw UnicodeDecodeError (and never a silently mangled clip name).
"""

from __future__ import annotations

from pathlib import Path

from challenge.errors import ChallengeError


def read_lines(path: Path) -> list[str]:
    """The file's lines (BOM and line ends removed); UTF-8 or an error naming the fix."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise ChallengeError(f"{path}: cannot be read ({error.strerror}).") from error
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in raw[:200]:
        raise ChallengeError(
            f"{path}: saved as UTF-16 (a spreadsheet's 'Unicode text'); it must be UTF-8. Re-save it as "
            f"'CSV UTF-8', or convert it: iconv -f UTF-16 -t UTF-8 {path.name} > {path.stem}.utf8{path.suffix}"
        )
    raw = raw.removeprefix(b"\xef\xbb\xbf")  # the BOM a spreadsheet writes; offsets below count without it
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise ChallengeError(
            f"{path} line {line}: byte 0x{raw[error.start]:02x} is not UTF-8 (the file looks Latin-1 / Windows-1252). "
            f"Re-save it as UTF-8, or convert it: iconv -f LATIN1 -t UTF-8 {path.name} > {path.stem}.utf8{path.suffix}"
        ) from error
    return text.splitlines()
