"""A small Hume-Vidmimic2 (EMI) dataset: raw/*.mp4 with audio, audio/*.mp3, face_images/,
the organisers' feature pickles, split CSVs with the official header and test_data/raw/."""

from __future__ import annotations

import csv
import pickle
from pathlib import Path

import numpy as np

from challenge.progress import progress_bar
from challenge.synthetic.draw import FaceState, burst_envelope, draw_face, recording_setup, voice, write_audio, write_video
from tracks.hume.reader import HEADER

FPS = 10
FRAME_SIZE = 96


def emi_targets(smile: float, brightness: float, bursts: float, pitch: float) -> np.ndarray:
    """The six intensities as functions of what is drawn (smile, brightness) and heard (bursts,
    pitch); half of the signal is audible, so audio-only models score well above chance."""
    return np.array(
        [
            0.7 * pitch + 0.3 * brightness,  # Admiration
            0.5 * smile + 0.5 * bursts,  # Amusement
            0.8 * (1 - pitch) + 0.2 * (1 - smile),  # Determination
            0.6 * (1 - brightness) + 0.4 * (1 - bursts),  # Empathic Pain
            0.8 * bursts + 0.2 * pitch,  # Excitement
            0.6 * smile + 0.4 * brightness,  # Joy
        ]
    )


def _clip(root: Path, clip: str, rng: np.random.Generator, test: bool, provided: bool) -> np.ndarray:
    smile, brightness, bursts, pitch = rng.uniform(0, 1, 4)
    duration = rng.uniform(2.0, 4.0)
    n_frames = int(duration * FPS)
    setup = recording_setup(rng)  # the labels follow the true brightness, the camera sees it through the light
    lit = float(np.clip(brightness * setup["light"], 0, 1))
    frames = [
        draw_face(
            FaceState(smile=np.clip(smile + rng.normal(0, 0.05), 0, 1), brightness=lit, mouth_open=0.3 * bursts * rng.uniform()),
            FRAME_SIZE,
            rng,
            setup["background"],
        )
        for _ in range(n_frames)
    ]
    envelope = burst_envelope(duration, 0.3 + 3.0 * bursts, rng)
    audio = voice(duration, pitch, envelope, rng, noise=setup["noise"])
    base = root / "test_data" if test else root
    write_video(base / "raw" / f"{clip}.mp4", frames, FPS, audio)
    if not test:
        write_audio(root / "audio" / f"{clip}.mp3", audio)
        faces = root / "face_images" / clip
        faces.mkdir(parents=True, exist_ok=True)
        margin = FRAME_SIZE // 8
        for number, frame in enumerate(frames[::2], start=1):  # crops at 5 fps, as a face tracker might
            frame.crop((margin, margin, FRAME_SIZE - margin, FRAME_SIZE - margin)).save(faces / f"{number:05d}.jpg", quality=90)
    if provided:
        _write_provided(root, clip, envelope, pitch, smile, brightness, n_frames, rng)
    noise = rng.normal(0, 0.03, 6)
    return np.clip(emi_targets(smile, brightness, bursts, pitch) + noise, 0, 1)


def _write_provided(root, clip, envelope, pitch, smile, brightness, n_frames, rng) -> None:
    """Stand-ins for the organisers' [T, D] pickles: noisy projections of the attributes."""
    steps = len(envelope) // 320
    loud = envelope[: steps * 320].reshape(steps, 320).mean(1)
    audio_basis = np.random.default_rng(7).normal(size=(2, 32))
    audio_feats = np.stack([loud, np.full(steps, pitch)], 1) @ audio_basis + rng.normal(0, 0.1, (steps, 32))
    visual_basis = np.random.default_rng(8).normal(size=(2, 32))
    visual_feats = np.tile([smile, brightness], (n_frames, 1)) @ visual_basis + rng.normal(0, 0.1, (n_frames, 32))
    for kind, array in (("wav2vec2", audio_feats), ("vit", visual_feats)):
        if kind == "vit" and clip.endswith("3"):
            continue  # as in the real data, vit features are missing for some clips
        (root / kind).mkdir(parents=True, exist_ok=True)
        with open(root / kind / f"{clip}.pkl", "wb") as handle:
            pickle.dump(array.astype(np.float32), handle)


def write_emi_demo(root: Path, train: int = 120, valid: int = 60, test: int = 30, seed: int = 0) -> dict[str, int]:
    root = Path(root)
    rng = np.random.default_rng(seed)
    splits = {"train": range(0, train), "valid": range(train, train + valid), "test": range(train + valid, train + valid + test)}
    with progress_bar("write EMI demo clips", train + valid + test) as advance:
        for split, ids in splits.items():
            rows = []
            for number in ids:
                clip = f"{number:05d}"
                values = _clip(root, clip, rng, test=split == "test", provided=split != "test")
                rows.append([clip, *(f"{v:.4f}" for v in values)])
                advance()
            if split != "test":
                with open(root / f"{split}_split.csv", "w", newline="") as handle:
                    csv.writer(handle).writerows([HEADER, *rows])
    return {name: len(ids) for name, ids in splits.items()}
