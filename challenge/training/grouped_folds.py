"""Grouped cross-validation folds: every recording (or every speaker, where the corpus names
them) falls in exactly one fold, so no model is scored on a recording it trained on, and model
selection rests on K held-out parts instead of one recording."""

from __future__ import annotations

import numpy as np

from challenge.errors import ChallengeError


def grouped_folds(groups: list[str], labels: np.ndarray, k: int, seed: int, what: str = "recordings") -> np.ndarray:
    """The fold (0..k-1) of each row. The seed shuffles which groups go together (GroupKFold
    with shuffle, folds of about equal size); StratifiedGroupKFold was tried first, but its
    folds hardly change with the seed, so repeated seeds measured nothing of the split."""
    from sklearn.model_selection import GroupKFold

    distinct = sorted(set(groups))
    if k < 2:
        raise ChallengeError(f"--folds {k}: cross-validation needs at least 2 folds.")
    if len(distinct) < k:
        raise ChallengeError(
            f"--folds {k}: only {len(distinct)} {what} to put in folds ({', '.join(distinct[:8])}); "
            f"pass --folds {len(distinct)} or fewer, or add {what}."
        )
    folds = np.full(len(groups), -1)
    splitter = GroupKFold(n_splits=k, shuffle=True, random_state=seed)
    for fold, (_, held) in enumerate(splitter.split(np.zeros(len(groups)), labels, groups)):
        folds[held] = fold
    empty = [f for f in range(k) if not (folds == f).any()]
    if empty:  # sklearn can leave a fold empty when groups are very unequal
        raise ChallengeError(f"--folds {k}: fold(s) {empty} got no {what}; pass fewer folds.")
    return folds


def fold_loop(folds: np.ndarray, fit_fold, report=None, running_score=None) -> tuple[list, list[dict]]:
    """The one grouped-fold loop, for every kind of data: `fit_fold(fold, held)` trains a model
    on the rows not `held` (a boolean mask), stops it early on the held rows, stores its held-out
    outputs, and returns (its held-out score, the model). After each fold, `report(fold,
    running_score())` lets the tuner prune on the out-of-fold score so far. Returns (the fold
    models, one history row per fold)."""
    members, history = [], []
    for fold in range(int(folds.max()) + 1):
        fold_score, member = fit_fold(fold, folds == fold)
        members.append(member)
        history.append({"epoch": fold, "fold_valid_score": float(fold_score)})
        if report is not None:
            report(fold, running_score())
    return members, history
