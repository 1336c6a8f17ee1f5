"""Background subsets: videos grouped by their recording conditions.

Each video's background descriptor (challenge.features.background, colour values in [0, 1]) is
clustered with k-means as it is; unless the user fixes K, the K with the best silhouette wins among
those that leave every subset at least `min_size` videos to train on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from challenge.errors import ChallengeError


@dataclass
class BackgroundSubsets:
    k: int
    labels: np.ndarray  # subset of each fitted video
    silhouettes: dict[int, float]  # K -> silhouette, for every K tried
    model: object  # the fitted k-means, to place videos that were not clustered

    def assign(self, descriptors: np.ndarray) -> np.ndarray:
        return self.model.predict(descriptors)


def cluster_backgrounds(
    descriptors: np.ndarray, k: int | None = None, seed: int = 0, min_size: int = 2, max_k: int = 8
) -> BackgroundSubsets:
    """Cluster [videos, D] descriptors into K subsets (K by silhouette when None)."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    n = len(descriptors)
    candidates = [k] if k is not None else list(range(2, min(max_k, n // max(min_size, 1)) + 1))
    if not candidates or (k is not None and (k < 1 or k * min_size > n)):
        raise ChallengeError(
            f"cannot split {n} videos into {k or 2}+ background subsets of at least {min_size} each; "
            "pass a smaller --members, or use --split folds."
        )
    fitted, silhouettes = {}, {}
    for candidate in candidates:
        model = KMeans(n_clusters=candidate, n_init=10, random_state=seed)
        labels = model.fit_predict(descriptors)
        sizes = np.bincount(labels, minlength=candidate)
        silhouettes[candidate] = float(silhouette_score(descriptors, labels)) if 1 < candidate < n else 0.0
        if sizes.min() >= min_size:
            fitted[candidate] = (model, labels)
    if not fitted:
        raise ChallengeError(
            f"no K in {candidates} leaves every background subset {min_size}+ videos "
            f"(silhouettes {silhouettes}); pass --members with a smaller K or use --split folds."
        )
    best = max(fitted, key=lambda c: (silhouettes[c], -c))  # ties go to fewer subsets
    model, labels = fitted[best]
    return BackgroundSubsets(best, labels, silhouettes, model)
