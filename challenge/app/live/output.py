"""What a reading becomes: rows of the per-face CSV, a frame with boxes drawn on it, and the
web page's update message."""

from __future__ import annotations

import base64
import csv
from pathlib import Path

import numpy as np

from challenge.app.live.pipeline import FrameReading

# a face's colour follows its level, Neutral to High (RGB)
LEVEL_COLOURS = [(160, 160, 160), (120, 200, 255), (255, 200, 60), (255, 90, 90), (200, 120, 255)]


def csv_columns(labels: list[str]) -> list[str]:
    return ["frame", "time", "track_id", "x1", "y1", "x2", "y2", *[f"p_{label}" for label in labels], "intensity"]


class FacesCsv:
    """One row per face per processed frame; written through, so a killed run keeps its rows."""

    def __init__(self, path: Path, labels: list[str]):
        self.path, self.labels = Path(path), labels
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.handle = open(self.path, "w", newline="", buffering=1)  # line-buffered
        self.writer = csv.writer(self.handle)
        self.writer.writerow(csv_columns(labels))

    def write(self, reading: FrameReading) -> None:
        for face in reading.faces:
            self.writer.writerow(
                [
                    reading.index,
                    f"{reading.time:.3f}",
                    face.track_id,
                    *(f"{v:.1f}" for v in face.box),
                    *(f"{p:.4f}" for p in face.probabilities),
                    self.labels[face.level],
                ]
            )

    def close(self) -> None:
        self.handle.close()


def annotate(rgb: np.ndarray, reading: FrameReading, labels: list[str]) -> np.ndarray:
    import cv2

    out = rgb.copy()
    for face in reading.faces:
        x1, y1, x2, y2 = (int(round(v)) for v in face.box)
        colour = LEVEL_COLOURS[face.level % len(LEVEL_COLOURS)]
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, 2)
        text = f"#{face.track_id} {labels[face.level]} {face.probabilities[face.level]:.2f}"
        (w, h), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
        cv2.rectangle(out, (x1, max(0, y1 - h - 6)), (x1 + w + 4, y1), colour, -1)
        cv2.putText(out, text, (x1 + 2, max(h, y1 - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return out


def jpeg(rgb: np.ndarray, quality: int = 80) -> bytes:
    import cv2

    ok, data = cv2.imencode(".jpg", rgb[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    return data.tobytes() if ok else b""


def expected_level(probabilities: np.ndarray) -> float:
    """0 (surely Neutral) to 1 (surely the top level): the bar on the page."""
    levels = np.arange(len(probabilities))
    return float((probabilities * levels).sum() / max(len(probabilities) - 1, 1))


def update_message(
    reading: FrameReading, labels: list[str], image: bytes | None, fps: float, latency_ms: float, dropped: int, ended: bool = False
) -> dict:
    return {
        "frame": reading.index,
        "time": round(reading.time, 3),
        "fps": round(fps, 1),
        "latency_ms": round(latency_ms, 1),
        "dropped": dropped,
        "ended": ended,
        "labels": labels,
        "image": "data:image/jpeg;base64," + base64.b64encode(image).decode() if image else None,
        "faces": [
            {
                "id": f.track_id,
                "box": [round(float(v), 1) for v in f.box],
                "level": f.level,
                "label": labels[f.level],
                "probabilities": [round(float(p), 4) for p in f.probabilities],
                "bar": round(expected_level(f.probabilities), 3),
            }
            for f in reading.faces
        ],
    }
