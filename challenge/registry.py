"""The track registry: tracks are found through the `challenge.tracks` entry point group, so a
team's own package adds a track by declaring one entry point, without editing this repository:

    [project.entry-points."challenge.tracks"]
    my-track = "my_package.my_track:TRACK"

Listing names reads package metadata only; a track's module is imported when it is asked for.
"""

from __future__ import annotations

from functools import lru_cache
from importlib.metadata import EntryPoint, entry_points

from challenge.errors import ChallengeError
from challenge.track import TrackSpec

GROUP = "challenge.tracks"
_REGISTERED: dict[str, TrackSpec] = {}  # tracks registered in this process (tests, notebooks)


@lru_cache(maxsize=1)
def _entry_points() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=GROUP)}


@lru_cache(maxsize=None)
def _group(group: str) -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=group)}


def entry_point_names(group: str) -> list[str]:
    """The names registered in an entry point group (heads, extractors), from metadata only."""
    return list(_group(group))


def load_entry_point(group: str, name: str):
    """Load one entry point of a group (importing its module registers what it defines); None
    when there is none of that name."""
    found = _group(group).get(name)
    return found.load() if found is not None else None


def track_names() -> list[str]:
    names = [*_entry_points(), *_REGISTERED]
    return list(dict.fromkeys(names))


def register_track(spec: TrackSpec) -> TrackSpec:
    """Register a track for this process (an entry point does it for installed packages)."""
    _REGISTERED[spec.name] = spec
    return spec


def get_track(name: str) -> TrackSpec:
    if name in _REGISTERED:
        return _REGISTERED[name]
    found = _entry_points().get(name)
    if found is None:
        hint = "" if _entry_points() else " (no track entry points at all: is the project installed? run `pip install -e .`)"
        raise ChallengeError(f"unknown track {name!r}; choose one of: {', '.join(track_names())}{hint}")
    spec = found.load()
    if not isinstance(spec, TrackSpec) or spec.name != name:
        raise ChallengeError(f"entry point {name} = {found.value} must name a TrackSpec called {name!r}.")
    return spec
