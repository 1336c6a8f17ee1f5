"""A small Aff-Wild2 dataset: source videos with audio, cropped_aligned/<video>/00001.jpg...,
VA/EXPR/AU annotations with the official headers (invalid frames included), a compound (CE)
labelled set in the same layout, a `_left`/`_right` pair, test-set name lists and sample
prediction files. One set of videos serves every track, as in the real corpus."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from challenge.progress import progress_bar
from challenge.synthetic.draw import AUDIO_RATE, FaceState, draw_face, recording_setup, voice, write_video
from tracks.affwild2.reader import CE_PARTS as COMPOUNDS
from tracks.affwild2.reader import LABELS

FPS = 10
SIZE = 96
ANNOTATIONS = "6th_ABAW_Annotations"
FOLDERS = {
    "va": "VA_Estimation_Challenge",
    "expr": "EXPR_Recognition_Challenge",
    "au": "AU_Detection_Challenge",
    "ce": "CE_Classification_Challenge",
}
SAMPLE_FILES = {"va": "VA", "expr": "Expr", "au": "AU", "ce": "CE"}

# per basic expression: (smile, mouth_open, brow, brightness, loudness, valence, arousal)
TEMPLATES = {
    0: (0.5, 0.0, 0.5, 0.6, 0.2, 0.0, -0.2),  # Neutral
    1: (0.3, 0.5, 0.0, 0.5, 0.9, -0.6, 0.7),  # Anger
    2: (0.2, 0.2, 0.2, 0.4, 0.4, -0.7, 0.2),  # Disgust
    3: (0.4, 0.6, 0.9, 0.3, 0.6, -0.5, 0.6),  # Fear
    4: (1.0, 0.3, 0.6, 0.8, 0.5, 0.8, 0.4),  # Happiness
    5: (0.05, 0.0, 0.3, 0.2, 0.1, -0.6, -0.5),  # Sadness
    6: (0.6, 1.0, 1.0, 0.7, 0.7, 0.3, 0.8),  # Surprise
    7: (0.7, 0.0, 0.0, 0.9, 0.3, 0.2, 0.0),  # Other
}


def _segments(n: int, classes: list[int], rng) -> np.ndarray:
    labels, t = np.zeros(n, dtype=int), 0
    while t < n:
        length = int(rng.integers(8, 25))
        labels[t : t + length] = rng.choice(classes)
        t += length
    return labels


def _states(expr: np.ndarray, rng) -> np.ndarray:
    """Per-frame attributes: the template of each frame's class, smoothed, with noise."""
    raw = np.array([TEMPLATES[c] for c in expr], dtype=float)
    kernel = np.hanning(5) / np.hanning(5).sum()
    smooth = np.stack([np.convolve(np.pad(raw[:, j], 2, mode="edge"), kernel, "valid") for j in range(raw.shape[1])], 1)
    return smooth + rng.normal(0, 0.03, smooth.shape)


def _au_labels(states: np.ndarray) -> np.ndarray:
    smile, mouth, brow, bright = states[:, 0], states[:, 1], states[:, 2], states[:, 3]
    columns = [
        brow > 0.75,
        brow > 0.85,
        brow < 0.25,
        smile > 0.8,
        bright < 0.35,
        smile < 0.25,
        smile > 0.6,
        smile < 0.15,
        (mouth > 0.4) & (brow < 0.3),
        (mouth < 0.1) & (brow < 0.1),
        mouth > 0.45,
        mouth > 0.8,
    ]
    return np.stack(columns, 1).astype(int)


def _draw(states: np.ndarray, i: int, rng, setup: dict) -> Image.Image:
    return draw_face(
        FaceState(
            smile=float(np.clip(states[i, 0], 0, 1)),
            mouth_open=float(np.clip(states[i, 1], 0, 1)),
            brow=float(np.clip(states[i, 2], 0, 1)),
            brightness=float(np.clip(states[i, 3] * setup["light"], 0, 1)),
        ),
        SIZE,
        rng,
        setup["background"],
    )


def _video(root: Path, name: str, expr: np.ndarray, rng, pair: bool) -> dict[str, np.ndarray]:
    """Writes the video and its crops; returns each crop's per-frame attributes. In a pair the
    right-hand person is a neutral listener whose labels follow their own face, not the speaker's."""
    n = len(expr)
    people = {name + ("_left" if pair else ""): _states(expr, rng)}
    if pair:
        people[f"{name}_right"] = _states(np.zeros(n, dtype=int), rng)
    setup = recording_setup(rng)
    crops = {crop: [_draw(states, i, rng, setup) for i in range(n)] for crop, states in people.items()}
    frames = []
    for i in range(n):
        frame = Image.new("RGB", (SIZE * len(crops), SIZE))
        for k, images in enumerate(crops.values()):
            frame.paste(images[i], (SIZE * k, 0))
        frames.append(frame)
    speaker = next(iter(people.values()))  # the voice is the first person's
    envelope = np.repeat(np.clip(speaker[:, 4], 0.02, 1), AUDIO_RATE // FPS).astype(np.float32)
    pitch = float(np.clip(0.5 + 0.3 * speaker[:, 5].mean(), 0, 1))
    write_video(root / "videos" / f"{name}.mp4", frames, FPS, voice(n / FPS, pitch, envelope, rng, noise=setup["noise"]))
    for crop_name, images in crops.items():
        folder = root / "cropped_aligned" / crop_name
        folder.mkdir(parents=True, exist_ok=True)
        for i, image in enumerate(images, start=1):
            if i % 23 == 7:
                continue  # no face detected in this frame: the crop is missing, as in the real data
            image.save(folder / f"{i:05d}.jpg", quality=90)
    return people


def _annotations(states: np.ndarray, expr: np.ndarray, compound: np.ndarray, rng) -> dict[str, list[str]]:
    n = len(expr)
    invalid = rng.uniform(size=n) < 0.05
    va = np.clip(states[:, 5:7] + rng.normal(0, 0.05, (n, 2)), -1, 1)
    aus = _au_labels(states)
    return {
        "va": [("-5,-5" if bad else f"{v:.3f},{a:.3f}") for bad, (v, a) in zip(invalid, va)],
        "expr": [("-1" if bad else str(c)) for bad, c in zip(invalid, expr)],
        "au": [(",".join(["-1"] * 12) if bad else ",".join(map(str, row))) for bad, row in zip(invalid, aus)],
        "ce": [("-1" if bad else str(c)) for bad, c in zip(invalid, compound)],
    }


def write_affwild_demo(root: Path, train: int = 6, valid: int = 3, test: int = 3, frames: int = 150, seed: int = 0) -> dict[str, int]:
    root = Path(root)
    rng = np.random.default_rng(seed)
    names = {
        "train": [f"{i}-30-{SIZE}x{SIZE}" for i in range(train)],
        "valid": [f"{100 + i}-30-{SIZE}x{SIZE}" for i in range(valid)],
        "test": [f"{200 + i}-30-{SIZE}x{SIZE}" for i in range(test)],
    }
    pair_video = names["train"][-1]  # this source video holds two people
    test_frames: dict[str, int] = {}
    with progress_bar("write Aff-Wild2 demo videos", train + valid + test) as advance:
        for split, videos in names.items():
            for name in videos:
                n = int(frames * rng.uniform(0.8, 1.2))
                compound = _segments(n, list(COMPOUNDS), rng)
                # alternate the two basic expressions of each compound segment, frame by frame-run
                expr = np.array([COMPOUNDS[c][(i // 4) % 2] for i, c in enumerate(compound)])
                expr = np.where(rng.uniform(size=n) < 0.5, expr, _segments(n, list(TEMPLATES), rng))
                per_crop = _video(root, name, expr, rng, pair=name == pair_video)
                for crop, states in per_crop.items():
                    if split == "test":
                        test_frames[crop] = n
                        continue
                    own_expr = expr if not crop.endswith("_right") else np.zeros(n, dtype=int)
                    for track, lines in _annotations(states, own_expr, compound, rng).items():
                        folder = root / ANNOTATIONS / FOLDERS[track] / ("Train_Set" if split == "train" else "Validation_Set")
                        folder.mkdir(parents=True, exist_ok=True)
                        (folder / f"{crop}.txt").write_text("\n".join([",".join(LABELS[track].header), *lines]) + "\n")
                advance()
    _write_test_lists(root, test_frames)
    return {split: len(videos) for split, videos in names.items()}


def _write_test_lists(root: Path, test_frames: dict[str, int]) -> None:
    lists = root / "names_of_videos_in_each_test_set"
    samples = root / "prediction_files_format"
    lists.mkdir(parents=True, exist_ok=True)
    samples.mkdir(parents=True, exist_ok=True)
    for track, short in SAMPLE_FILES.items():
        (lists / f"{short}_test_set_release.txt").write_text("\n".join(test_frames) + "\n")
        spec = LABELS[track]
        example = "0" if spec.kind == "class" else ("0.0,0.0" if track == "va" else ",".join(["0"] * 12))
        rows = [f"{video}/{i:05d}.jpg,{example}" for video, n in test_frames.items() for i in range(1, n + 1)]
        header = "image_location," + ",".join(spec.header)
        (samples / f"CVPR_6th_ABAW_{short}_test_set_sample.txt").write_text("\n".join([header, *rows]) + "\n")
