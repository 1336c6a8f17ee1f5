"""Heads, one module each, registered by their entry points (`challenge.heads` in
pyproject.toml), so a team's package adds a head as it adds a track:

    [project.entry-points."challenge.heads"]
    my-head = "my_package.my_head:MyHead"

Listing names reads package metadata only (the CLI's help stays light); a head's module (and
its libraries: torch, LightGBM, scikit-learn) is imported when that head is asked for, so a run
pays for the head it uses."""

from __future__ import annotations

GROUP = "challenge.heads"


def head_names() -> list[str]:
    from challenge.registry import entry_point_names

    return sorted(entry_point_names(GROUP))


def get_head(name: str):
    from challenge.heads.base import Head
    from challenge.registry import registered_class

    return registered_class(GROUP, name, Head, "head")


def load_all() -> dict:
    """Every registered head, loaded (for tests over all of them)."""
    from challenge.heads.base import Head
    from challenge.registry import registered_classes

    return registered_classes(GROUP, Head, "head")


def __getattr__(name: str):
    """Head and suggest, imported from heads.base when first used."""
    if name in ("Head", "suggest"):
        from challenge.heads import base

        return getattr(base, name)
    raise AttributeError(name)


__all__ = ["Head", "get_head", "head_names", "load_all", "suggest"]
