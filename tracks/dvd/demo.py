"""A small DVD dataset in its layout: whole scenes (not faces), two figures in a room, with
violent segments where they move fast and erratically and the light flashes warm; calm frames
drift slowly. Annotations are per frame, from 1, with the official header; the test videos
have none."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from challenge.progress import progress_bar
from challenge.synthetic.draw import write_video

FPS = 10
SIZE = 64


def _segments(frames: int, rng: np.random.Generator) -> np.ndarray:
    """0/1 per frame: zero to two violent segments of 1.5-4 s."""
    labels = np.zeros(frames, int)
    for _ in range(int(rng.integers(0, 3))):
        length = int(rng.uniform(1.5, 4.0) * FPS)
        start = int(rng.integers(0, max(1, frames - length)))
        labels[start : start + length] = 1
    return labels


def draw_scene(labels: np.ndarray, rng: np.random.Generator) -> list[Image.Image]:
    wall = tuple(int(c) for c in rng.integers(60, 160, 3))
    positions = rng.uniform(15, 49, (2, 2))
    frames = []
    hurry = 0
    for violent in labels:
        hurry = int(rng.integers(5, 15)) if not violent and rng.uniform() < 0.04 else max(hurry - 1, 0)
        speed = 4.0 if violent else (3.0 if hurry else 1.0)  # calm scenes have their hurried moments too
        positions = np.clip(positions + rng.normal(0, speed, (2, 2)), 8, SIZE - 8)
        image = Image.new("RGB", (SIZE, SIZE), wall)
        draw = ImageDraw.Draw(image)
        draw.rectangle([0, SIZE * 0.75, SIZE, SIZE], fill=(90, 70, 50))  # the floor
        for k, (x, y) in enumerate(positions):
            colour = (30, 30, 90) if k == 0 else (90, 30, 30)
            draw.ellipse([x - 4, y - 12, x + 4, y - 4], fill=(220, 180, 150))
            draw.rectangle([x - 5, y - 4, x + 5, y + 10], fill=colour)
        if rng.uniform() < (0.25 if violent else 0.05):  # a warm flash, mostly in a fight
            image = Image.blend(image, Image.new("RGB", image.size, (230, 60, 40)), 0.3)
        frames.append(image)
    return frames


def write_dvd_demo(root: Path, seed: int = 0, train: int = 10, valid: int = 4, test: int = 3) -> dict:
    root = Path(root)
    rng = np.random.default_rng(seed)
    counts = {}
    plan = [("train", "Training", train), ("valid", "Validation", valid), ("test", "Test", test)]
    with progress_bar("writing DVD demo videos", train + valid + test) as advance:
        for split, folder, videos in plan:
            for i in range(videos):
                name = f"{folder[:2].lower()}_{seed}_{i:03d}"
                frames = int(rng.uniform(6, 10) * FPS)
                labels = _segments(frames, rng)
                write_video(root / folder / "videos" / f"{name}.mp4", draw_scene(labels, rng), FPS, None)
                if split != "test":
                    lines = ["Frame_Number,Label", *(f"{n},{label}" for n, label in enumerate(labels, start=1))]
                    (root / folder / "annotations").mkdir(parents=True, exist_ok=True)
                    (root / folder / "annotations" / f"{name}.csv").write_text("\n".join(lines) + "\n")
                advance()
            counts[split] = videos
    return counts
