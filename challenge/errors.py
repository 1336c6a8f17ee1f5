"""Errors a user can cause. The CLI prints them without a traceback."""

from __future__ import annotations

MAX_LISTED = 10


class ChallengeError(Exception):
    """Bad input or configuration: the message names the file or value and the fix."""


def list_offenders(items: list[str], limit: int = MAX_LISTED) -> str:
    """Format at most `limit` offenders, saying how many more there are."""
    shown = "\n".join(f"  - {item}" for item in items[:limit])
    rest = len(items) - limit
    return shown + (f"\n  ... and {rest} more" if rest > 0 else "")


def validation_problems(error, prefix: str = "", empty: str = "", tidy: bool = False) -> str:
    """A pydantic ValidationError as `location: message; ...` (each location after `prefix`; an
    empty one reads `empty`, or the message alone); `tidy` drops pydantic's "Value error, "."""
    problems = []
    for e in error.errors():
        where = ".".join(str(p) for p in ([prefix] if prefix else []) + list(e["loc"])) or empty
        message = e["msg"].removeprefix("Value error, ") if tidy else e["msg"]
        problems.append(f"{where}: {message}" if where else message)
    return "; ".join(problems)
