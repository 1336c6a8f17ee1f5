"""Which items each ensemble member trains on, stops on and predicts.

Items are the pool's clips (EMI) or videos (frame tracks), train split first, then validation.
Every member trains on `fit`, picks its epoch on `stop` (a share of its own training items)
and predicts `heldout`, which it never saw: those predictions fill the member's column
("role") of the out-of-fold table that the combination is tuned on.

    folds       K members, role "all": fold f trains on the other folds, predicts fold f
    background  one member per background subset b, role "bg<b>": trains on the training
                items of subset b (or, with train="out", on all the others), predicts validation
    both        per fold f: the "all" member plus one per subset, trained on fold-f-excluded
                items only; every pool item then has one held-out prediction per role

Items of one source video (an Aff-Wild2 `_left`/`_right` pair) always stay together.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from challenge.errors import ChallengeError

SPLITS = ("folds", "background", "both")


@dataclass
class Member:
    name: str
    role: str  # "all" or "bg<k>": its column in the out-of-fold table
    fold: int | None
    subset: int | None
    fit: list[int]
    stop: list[int]
    heldout: list[int]


def assign_folds(groups: list[str], k: int, seed: int) -> np.ndarray:
    """Fold of each item; whole groups go to one fold, groups dealt out in a seeded order."""
    unique = sorted(set(groups))
    if k < 2 or k > len(unique):
        raise ChallengeError(f"{k} folds need between 2 and {len(unique)} (the number of source videos or clips); pass another --members.")
    order = np.random.default_rng(seed).permutation(len(unique))
    fold_of_group = {unique[g]: position % k for position, g in enumerate(order)}
    return np.array([fold_of_group[g] for g in groups])


def split_off_stop(items: list[int], groups: list[str], share: float, seed: int, name: str) -> tuple[list[int], list[int]]:
    """(fit, stop): about `share` of the groups of `items` held back for early stopping."""
    unique = sorted({groups[i] for i in items})
    if len(unique) < 2:
        raise ChallengeError(
            f"member {name} has {len(unique)} source video(s) to train on; it needs 2 (one to fit, one to stop on). "
            "Use fewer background subsets (--members), --background-train out, or --split folds."
        )
    rng = np.random.default_rng(seed)
    n_stop = min(len(unique) - 1, max(1, round(share * len(unique))))
    stop_groups = {unique[i] for i in rng.permutation(len(unique))[:n_stop]}
    return [i for i in items if groups[i] not in stop_groups], [i for i in items if groups[i] in stop_groups]


def plan_members(
    split: str,
    groups: list[str],
    n_train: int,
    *,
    folds: int = 5,
    subsets: np.ndarray | None = None,
    background_train: str = "in",
    stop_share: float = 0.2,
    seed: int = 0,
) -> list[Member]:
    """Members over a pool of len(groups) items whose first `n_train` are the training split."""
    if split not in SPLITS:
        raise ChallengeError(f"unknown --split {split!r}; choose one of {', '.join(SPLITS)}")
    if split != "folds" and subsets is None:
        raise ChallengeError("background members need the background subsets of the pool")
    if background_train not in ("in", "out"):
        raise ChallengeError(
            f"--background-train must be 'in' (train on the subset) or 'out' (on everything else), not {background_train!r}"
        )
    n = len(groups)
    members = []

    def add(name, role, fold, subset, candidates, heldout):
        fit, stop = split_off_stop(candidates, groups, stop_share, seed + len(members), name)
        members.append(Member(name, role, fold, subset, fit, stop, heldout))

    def in_subset(items, b):
        keep = (lambda i: subsets[i] == b) if background_train == "in" else (lambda i: subsets[i] != b)
        return [i for i in items if keep(i)]

    subset_ids = sorted(set(subsets.tolist())) if subsets is not None else []
    if split == "background":
        train, valid = list(range(n_train)), list(range(n_train, n))
        for b in subset_ids:
            add(f"bg{b}", f"bg{b}", None, b, in_subset(train, b), valid)
        return members
    fold_of = assign_folds(groups, folds, seed)
    for f in range(folds):
        outside, inside = [i for i in range(n) if fold_of[i] != f], [i for i in range(n) if fold_of[i] == f]
        add(f"fold{f}", "all", f, None, outside, inside)
        if split == "both":
            for b in subset_ids:
                add(f"fold{f}-bg{b}", f"bg{b}", f, b, in_subset(outside, b), inside)
    return members


def evaluation_items(members: list[Member]) -> list[int]:
    """Items with a held-out prediction, in pool order."""
    return sorted({i for m in members for i in m.heldout})
