"""Tracks registered by name. A new track is one module defining `TRACK` plus a line here."""

from __future__ import annotations

from challenge.errors import ChallengeError
from tracks import au, ce, emi, expr, smile_intensity, smile_laugh, va
from tracks.base import Problem, Score, TrackSpec

TRACKS: dict[str, TrackSpec] = {module.TRACK.name: module.TRACK for module in (emi, expr, va, au, ce, smile_laugh, smile_intensity)}


def get_track(name: str) -> TrackSpec:
    if name not in TRACKS:
        raise ChallengeError(f"unknown track {name!r}; choose one of: {', '.join(TRACKS)}")
    return TRACKS[name]


__all__ = ["TRACKS", "Problem", "Score", "TrackSpec", "get_track"]
