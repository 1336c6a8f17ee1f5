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
    _check_head(path, raw)
    raw = raw.removeprefix(b"\xef\xbb\xbf")  # the BOM a spreadsheet writes; offsets below count without it
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise _not_utf8(path, line, raw[error.start]) from error
    return text.splitlines()


def iter_lines(path: Path):
    """The same lines as read_lines, one at a time: a file of any size in little memory."""
    path = Path(path)
    try:
        handle = open(path, "rb")
    except OSError as error:
        raise ChallengeError(f"{path}: cannot be read ({error.strerror}).") from error
    with handle:
        _check_head(path, handle.read(4096))
        handle.seek(0)
        for number, raw in enumerate(handle, start=1):
            if number == 1:
                raw = raw.removeprefix(b"\xef\xbb\xbf")
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise _not_utf8(path, number, raw[error.start]) from error
            yield line.rstrip("\r\n")


def _not_utf8(path: Path, line: int, byte: int) -> ChallengeError:
    return ChallengeError(
        f"{path} line {line}: byte 0x{byte:02x} is not UTF-8 (the file looks Latin-1 / Windows-1252). "
        f"Re-save it as UTF-8, or convert it: iconv -f LATIN1 -t UTF-8 {path.name} > {path.stem}.utf8{path.suffix}"
    )


def _check_head(path: Path, raw: bytes) -> None:
    """Binary data and UTF-16 are named by the first bytes."""
    if _binary(raw):
        raise ChallengeError(
            f"{path}: not a text file (binary data: {_control_share(raw[:4096]):.0%} control bytes, first bytes {raw[:8].hex(' ')}). "
            "Is this the right file? Expected a text file (CSV or one value a line); restore it from the organisers' archive."
        )
    if b"\x00" in raw[:200] and not raw.startswith((b"\xff\xfe", b"\xfe\xff")) and not _looks_utf16(raw[:200]):
        first = raw.index(b"\x00")
        raise ChallengeError(
            f"{path}: holds NUL bytes (the first at byte {first}), which no text file has: a copy or download cut short, or a disk "
            "that filled while it was written, leaves them. Restore the file from the organisers' archive."
        )
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in raw[:200]:
        raise ChallengeError(
            f"{path}: saved as UTF-16 (a spreadsheet's 'Unicode text'); it must be UTF-8. Re-save it as "
            f"'CSV UTF-8', or convert it: iconv -f UTF-16 -t UTF-8 {path.name} > {path.stem}.utf8{path.suffix}"
        )


def _control_share(head: bytes) -> float:
    """The share of bytes that no text encoding of a label file uses (NUL and C0 controls but
    tab, line ends and form feed), UTF-16's NULs excluded."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) or _looks_utf16(head):
        head = head.replace(b"\x00", b"")
    if not head:
        return 0.0
    controls = sum(1 for b in head if b < 0x20 and b not in (0x09, 0x0A, 0x0C, 0x0D))
    return controls / len(head)


def _looks_utf16(head: bytes) -> bool:
    """ASCII text in UTF-16 without a BOM: a NUL in every other byte."""
    pairs = head[: len(head) // 2 * 2]
    return bool(pairs) and (pairs[1::2].count(0) > 0.9 * len(pairs) // 2 or pairs[0::2].count(0) > 0.9 * len(pairs) // 2)


def _binary(raw: bytes) -> bool:
    return _control_share(raw[:4096]) > 0.05
