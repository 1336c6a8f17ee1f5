"""The one way to register: entry points. Tracks (`challenge.tracks`), heads (`challenge.heads`),
extractors (`challenge.extractors`) and study-track settings (`challenge.track_settings`) are
each an entry point in a `pyproject.toml`, so a team's own package adds one without editing this
repository:

    [project.entry-points."challenge.tracks"]
    my-track = "my_package.my_track:TRACK"

Loading the entry point is registering: there is no other list to keep in step. Listing names
reads package metadata only (the CLI's help stays light); a module is imported when its name is
asked for. Tracks (not classes) may also be registered for one process (`register_track`, for
tests and notebooks).
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
    """Load one entry point of a group; None when there is none of that name."""
    found = _group(group).get(name)
    return found.load() if found is not None else None


@lru_cache(maxsize=None)
def registered_class(group: str, name: str, base: type, what: str) -> type:
    """The class an entry point names, checked: a subclass of `base` whose `name` is the entry
    point's. An unknown name lists the registered ones."""
    found = _group(group).get(name)
    if found is None:
        raise ChallengeError(f"unknown {what} {name!r}; choose one of: {', '.join(sorted(_group(group)))}")
    cls = found.load()
    if not (isinstance(cls, type) and issubclass(cls, base) and getattr(cls, "name", None) == name):
        raise ChallengeError(
            f"entry point {name} = {found.value} (group {group}) must name a {base.__name__} subclass whose name is {name!r}."
        )
    return cls


def registered_classes(group: str, base: type, what: str) -> dict[str, type]:
    """Every class of a group, loaded (tests that run over all heads or all extractors)."""
    return {name: registered_class(group, name, base, what) for name in sorted(_group(group))}


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
