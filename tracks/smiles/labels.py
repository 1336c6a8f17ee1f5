"""Labels from ELAN segments: 1.2 s clips (Laughs / Smiles / None) and per-frame smile intensity."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tracks.smiles.elan import ElanAnnotation, Segment

CLASSES = ["Laughs", "Smiles", "None"]
# rows of the intensity heatmap: expression and level, for analysis only (never a model input)
INTENSITY_ROWS = ["Laughs high", "Laughs medium", "Laughs low", "Smiles high", "Smiles medium", "Smiles low", "Smiles subtle", "None"]
INTENSITY_CLASSES = ["Neutral", "Low", "Medium", "High"]
SUBTLE_MODES = ("drop", "keep", "merge")


@dataclass(frozen=True)
class Clip:
    recording: str
    start: float
    end: float
    label: int  # index into CLASSES
    intensity: str  # a row of INTENSITY_ROWS
    role: str  # SPK / LSN covering most of the clip, "" when the file has no role tier


def _cover(segments: list[Segment], start: float, end: float) -> dict[str, float]:
    """Seconds of [start, end) covered by each level."""
    covered: dict[str, float] = {}
    for s in segments:
        overlap = min(end, s.end) - max(start, s.start)
        if overlap > 0:
            covered[s.value] = covered.get(s.value, 0.0) + overlap
    return covered


def cut_clips(recording: str, annotation: ElanAnnotation, duration: float, length: float = 1.2, hop: float = 0.6) -> list[Clip]:
    """Windows of `length` s every `hop` s; a clip's class is the expression covering most of it
    (none counts as an expression; ties go to laughs, then smiles); its intensity is the level
    covering most of it within that class."""
    clips = []
    for start in np.arange(0.0, duration - length + 1e-9, hop):
        start, end = float(round(start, 3)), float(round(start + length, 3))
        laughs, smiles = _cover(annotation.laughs, start, end), _cover(annotation.smiles, start, end)
        covered = [sum(laughs.values()), sum(smiles.values())]
        covered.append(length - sum(covered))
        label = int(np.argmax(covered))  # argmax keeps the first of equal values
        levels = (laughs, smiles, {})[label]
        intensity = f"{CLASSES[label]} {max(levels, key=levels.get)}" if levels else "None"
        roles = _cover(annotation.roles, start, end)
        clips.append(Clip(recording, start, end, label, intensity, max(roles, key=roles.get) if roles else ""))
    return clips


def frame_intensities(annotation: ElanAnnotation, n_frames: int, fps: float, subtle: str = "drop") -> np.ndarray:
    """Per video frame: 0 Neutral, 1 Low, 2 Medium, 3 High (4 Subtle with subtle="keep"), -1 not
    scored (inside a laugh, or subtle when dropped). A frame takes the level at its centre."""
    times = (np.arange(n_frames) + 0.5) / fps
    labels = np.zeros(n_frames, dtype=int)
    code = {"low": 1, "medium": 2, "high": 3, "subtle": {"drop": -1, "keep": 4, "merge": 1}[subtle]}
    for s in annotation.smiles:
        labels[(times >= s.start) & (times < s.end)] = code[s.value]
    for s in annotation.laughs:
        labels[(times >= s.start) & (times < s.end)] = -1
    return labels


def intensity_names(subtle: str) -> list[str]:
    return INTENSITY_CLASSES + (["Subtle"] if subtle == "keep" else [])
