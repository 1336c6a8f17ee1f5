"""A live CSV scored against an ELAN annotation of the same video: the reference level of each
frame (as the smile-intensity track reads it) against the intensity of one track id (by default
the one seen on most frames), on the frames where that face was read."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from challenge.errors import ChallengeError


@dataclass
class CsvScore:
    track_id: int
    frames_scored: int
    coverage: float  # scored frames / frames with a scored reference level
    macro_f1: float  # over the classes present in the reference
    kappa: float
    table: pd.DataFrame

    def describe(self) -> str:
        return (
            f"track {self.track_id} against the annotation: macro F1 {self.macro_f1:.4f}, kappa {self.kappa:.4f} "
            f"over {self.frames_scored} frames ({self.coverage:.0%} of the annotated frames)"
        )


def score_csv(
    csv_path: Path, eaf: Path, n_frames: int, fps: float, track_id: int | None = None, subtle: str = "drop", scheme: Path | None = None
) -> CsvScore:
    from tracks.smiles.analyses import classification_table
    from tracks.smiles.elan import ElanScheme, read_eaf
    from tracks.smiles.labels import frame_intensities, intensity_names

    names = intensity_names(subtle)
    rows = pd.read_csv(csv_path)
    if rows.empty:
        raise ChallengeError(f"{csv_path}: no face was read in this video, so nothing can be scored.")
    unknown = sorted(set(rows["intensity"]) - set(names))
    if unknown:
        raise ChallengeError(
            f"{csv_path}: intensities {unknown} are not levels of the annotation ({names}); pass the same --subtle as the run."
        )
    if track_id is None:
        track_id = int(rows["track_id"].value_counts().idxmax())
    face = rows[rows["track_id"] == track_id]
    if face.empty:
        raise ChallengeError(f"{csv_path}: no rows for track {track_id}; tracks in the file: {sorted(rows['track_id'].unique())}")
    reference = frame_intensities(read_eaf(eaf, ElanScheme.load(scheme) if scheme else None), n_frames, fps, subtle)
    frames = face["frame"].to_numpy()
    frames = frames[frames < n_frames]
    predicted = np.full(n_frames, -1)
    predicted[frames] = face.set_index("frame").loc[frames, "intensity"].map(names.index).to_numpy()
    scored = (reference >= 0) & (predicted >= 0)
    if not scored.any():
        raise ChallengeError(f"{csv_path}: track {track_id} was read on no frame with an annotated level in {eaf}.")
    table = classification_table(reference[scored], predicted[scored], names).set_index("class")
    return CsvScore(
        track_id,
        int(scored.sum()),
        float(scored.sum() / max((reference >= 0).sum(), 1)),
        float(table.loc["macro", "f1"]),
        float(table.loc["kappa", "f1"]),
        table,
    )
