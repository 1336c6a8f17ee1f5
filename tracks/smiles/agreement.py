"""Inter-annotator agreement on ELAN tiers (`challenge agree`).

Per tier, between annotators A and B of the same recordings:

- kappa_levels / kappa_presence: Cohen's kappa over frames (default 25 per second) labelled with
  the level of the segment covering them ("none" outside any), or only present/absent;
- overlap_perc: share of all segments of both annotators that overlap a segment of the other;
- mean_iou: mean IoU of the overlapping pairs;
- overlap_levels: share of overlapping pairs whose levels agree.

Two segments overlap only when their IoU exceeds `min_iou` (10 %).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tracks.smiles.elan import Segment

MIN_IOU = 0.10
FRAME_RATE = 25.0


def iou(a: Segment, b: Segment) -> float:
    inter = max(0.0, min(a.end, b.end) - max(a.start, b.start))
    union = max(a.end, b.end) - min(a.start, b.start)
    return inter / union if union > 0 else 0.0


def overlapping_pairs(first: Sequence[Segment], second: Sequence[Segment], min_iou: float = MIN_IOU) -> list[tuple[int, int, float]]:
    """(i, j, IoU) for every pair above `min_iou`."""
    return [(i, j, v) for i, a in enumerate(first) for j, b in enumerate(second) if (v := iou(a, b)) > min_iou]


def frame_labels(segments: Sequence[Segment], duration: float, rate: float = FRAME_RATE) -> np.ndarray:
    """The level covering each frame's centre, "none" where no segment does."""
    times = (np.arange(int(np.ceil(duration * rate))) + 0.5) / rate
    labels = np.full(len(times), "none", dtype=object)
    for s in segments:
        labels[(times >= s.start) & (times < s.end)] = s.value
    return labels


@dataclass
class TierAgreement:
    tier: str
    segments_a: int
    segments_b: int
    kappa_levels: float
    kappa_presence: float
    overlap_perc: float
    mean_iou: float
    overlap_levels: float

    def row(self) -> dict:
        return dict(self.__dict__)


def agreement(
    tier: str, pairs: Sequence[tuple[Sequence[Segment], Sequence[Segment], float]], min_iou: float = MIN_IOU, rate: float = FRAME_RATE
) -> TierAgreement:
    """Agreement over recordings: `pairs` holds (A's segments, B's segments, duration) each."""
    from sklearn.metrics import cohen_kappa_score

    frames_a, frames_b, ious, same_level = [], [], [], []
    n_a = n_b = overlapping_a = overlapping_b = 0
    for first, second, duration in pairs:
        frames_a.append(frame_labels(first, duration, rate))
        frames_b.append(frame_labels(second, duration, rate))
        found = overlapping_pairs(first, second, min_iou)
        overlapping_a += len({i for i, _, _ in found})
        overlapping_b += len({j for _, j, _ in found})
        n_a, n_b = n_a + len(first), n_b + len(second)
        ious += [v for _, _, v in found]
        same_level += [first[i].value == second[j].value for i, j, _ in found]
    a, b = np.concatenate(frames_a), np.concatenate(frames_b)
    return TierAgreement(
        tier,
        n_a,
        n_b,
        _kappa(cohen_kappa_score, a, b),
        _kappa(cohen_kappa_score, a != "none", b != "none"),
        (overlapping_a + overlapping_b) / max(n_a + n_b, 1),
        float(np.mean(ious)) if ious else float("nan"),
        float(np.mean(same_level)) if same_level else float("nan"),
    )


def _kappa(score, a, b) -> float:
    """Cohen's kappa; 1.0 when both annotators used one and the same label throughout."""
    if len(set(a.tolist()) | set(b.tolist())) == 1:
        return 1.0
    return float(score(a, b))


def compare_annotations(
    first: dict, second: dict, tiers: Sequence[str] = ("smiles", "laughs"), durations: dict | None = None, min_iou: float = MIN_IOU
) -> list[TierAgreement]:
    """`first`/`second`: recording -> ElanAnnotation, paired by recording name."""
    from challenge.errors import ChallengeError

    common = sorted(set(first) & set(second))
    if not common:
        raise ChallengeError(f"no recording annotated by both: {sorted(first)[:5]} vs {sorted(second)[:5]}. Files are paired by name.")
    results = []
    for tier in tiers:
        pairs = []
        for name in common:
            a, b = first[name].tier(tier), second[name].tier(tier)
            ends = [
                s.end for s in (*first[name].smiles, *first[name].laughs, *second[name].smiles, *second[name].laughs, *first[name].roles)
            ]
            duration = (durations or {}).get(name) or max(ends, default=0.0)
            pairs.append((a, b, duration))
        results.append(agreement(tier, pairs, min_iou))
    return results
