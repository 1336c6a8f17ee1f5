"""Files written whole or not at all: a temporary name beside the target, then a rename.

Every writer of the project that a kill or a full disk could leave half-done (training
checkpoints, transcripts, settings files) goes through `write_atomically`. On any failure the
temporary file is removed, and a full disk or a read-only folder is a named error. A process
killed with SIGKILL cannot clean up after itself: `sweep_partials` removes the temporary files
of processes that no longer run, and the writers call it before they write into a folder."""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from challenge.errors import ChallengeError

PARTIAL = re.compile(r"^\..+\.partial-(\d+)$")
FULL = (errno.ENOSPC, errno.EDQUOT)
READ_ONLY = (errno.EROFS, errno.EACCES, errno.EPERM)


def partial_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.partial-{os.getpid()}")


def write_atomically(path: Path, write: Callable[[BinaryIO], None], what: str = "file") -> Path:
    """Write `path` through `write(handle)`; readers see the old file or the whole new one."""
    path = Path(path)
    partial = partial_name(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(partial, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, path)
    except BaseException as error:
        partial.unlink(missing_ok=True)
        named = _named(path, error, what)
        if named is None:
            raise
        raise named from error
    return path


def write_text_atomically(path: Path, text: str, what: str = "file") -> Path:
    return write_atomically(path, lambda handle: handle.write(text.encode("utf-8")), what)


def _named(path: Path, error: BaseException, what: str) -> ChallengeError | None:
    """A full disk or a folder that cannot be written, as a user reads it (torch's writer
    reports a full disk as RuntimeError 'unexpected pos')."""
    code = getattr(error, "errno", None)
    torch_short_write = isinstance(error, RuntimeError) and ("unexpected pos" in str(error) or "inline_container" in str(error))
    if code in FULL or torch_short_write:
        return ChallengeError(
            f"{path}: the {what} could not be written: no space left on the device holding {path.parent}. "
            "Nothing was half-written (the previous version, if any, is kept); free space or point the "
            "output elsewhere (--out, --store), then run the same command again."
        )
    if code in READ_ONLY:
        return ChallengeError(
            f"{path}: the {what} cannot be written there ({os.strerror(code)}). Name a folder you can write "
            "(--out for a run's outputs, --store for features)."
        )
    return None


def check_writable_folder(folder: Path, option: str) -> None:
    """Before any work: a folder (existing, or to be made under an existing one) that can be written."""
    folder = Path(folder)
    existing = next((p for p in [folder, *folder.parents] if p.exists()), None)
    if existing is None:
        return
    if not existing.is_dir():
        raise ChallengeError(f"{option} {folder}: {existing} is a file, not a folder. Name a new or existing folder.")
    if not os.access(existing, os.W_OK):
        raise ChallengeError(
            f"{option} {folder}: {existing} cannot be written (read-only file system or no permission). Name a folder you can write."
        )


def sweep_partials(folder: Path) -> int:
    """Remove the temporary files that killed writers left in `folder`; returns how many."""
    removed = 0
    for path in Path(folder).glob(".*.partial-*") if Path(folder).is_dir() else []:
        match = PARTIAL.match(path.name)
        if match and not _running(int(match[1])) and path.is_file():
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
