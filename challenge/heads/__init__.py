"""Heads, found through the `challenge.heads` entry point group (pyproject.toml), so a team's
package adds a head as it adds a track, with one entry point:

    [project.entry-points."challenge.heads"]
    my-head = "my_package.my_head:MyHead"

A new head here is one module with `@register_head` plus its entry point. Listing names reads
package metadata only (the CLI's help stays light); a head's module (and its libraries: torch,
LightGBM, scikit-learn) is imported when that head is asked for, so a run pays for the head it
uses."""

from __future__ import annotations

import sys

GROUP = "challenge.heads"


def head_names() -> list[str]:
    from challenge.registry import entry_point_names

    registered = sys.modules["challenge.heads.base"].HEADS if "challenge.heads.base" in sys.modules else {}
    return sorted({*entry_point_names(GROUP), *registered})


def get_head(name: str):
    from challenge.errors import ChallengeError
    from challenge.heads.base import HEADS
    from challenge.registry import load_entry_point

    if name not in HEADS:
        load_entry_point(GROUP, name)  # importing the module registers the head
    if name not in HEADS:
        raise ChallengeError(f"unknown head {name!r}; choose one of: {', '.join(head_names())}")
    return HEADS[name]


def load_all() -> dict:
    from challenge.heads.base import HEADS
    from challenge.registry import entry_point_names, load_entry_point

    for name in entry_point_names(GROUP):
        load_entry_point(GROUP, name)
    return HEADS


def __getattr__(name: str):
    """HEADS, Head, register_head and suggest, imported from heads.base when first used."""
    if name in ("HEADS", "Head", "register_head", "suggest"):
        from challenge.heads import base

        return getattr(base, name)
    raise AttributeError(name)


__all__ = ["HEADS", "Head", "get_head", "head_names", "load_all", "register_head", "suggest"]
