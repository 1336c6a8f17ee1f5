"""A small BAH dataset in the layout teams receive: videos with sound, face crops, Whisper
transcripts (with their `!!python/tuple` timestamps), the split lists (commas and quotes inside
transcripts), the annotation and participant files, and a test list with placeholder labels.

Ambivalence shows in each modality on its own: a face whose smile comes and goes, speech in
short bursts with long pauses, and hedging words. An A/H video shows each cue with probability
0.8, a video without A/H with 0.2, independently per modality, so every single modality learns
something and fusing them learns more."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from challenge.progress import progress_bar
from challenge.synthetic.draw import FaceState, burst_envelope, draw_face, recording_setup, voice, write_video

FPS = 12
SIZE = 64
VIDEOS_PER_PARTICIPANT = 3
HEDGES = ["um, I don't know", "maybe, I guess", "well, sort of", "I'm not sure, really", "kind of, on the other hand", "I suppose, but"]
FIRM = ["definitely", "I'm sure of it", "absolutely, yes", "I always do", "clearly", "without any doubt"]
TOPICS = ["exercise more", "eat less sugar", "sleep earlier", "quit smoking", "walk to work", "drink more water"]


def _transcript(rng: np.random.Generator, hesitant: bool) -> str:
    words = HEDGES if hesitant else FIRM
    picks = rng.choice(len(words), size=2, replace=False)
    topic = TOPICS[int(rng.integers(len(TOPICS)))]
    return f'About whether I will {topic}: {words[picks[0]]}. My doctor said "{topic}", and {words[picks[1]]}.'


def _video(root: Path, video: str, rng: np.random.Generator, cues: np.ndarray, text: str) -> int:
    duration = rng.uniform(2.5, 4.0)
    n = int(duration * FPS)
    setup = recording_setup(rng)
    base = rng.uniform(0.3, 0.7)
    if cues[0]:  # the smile comes and goes
        smiles = np.where((np.arange(n) // rng.integers(3, 6)) % 2 == 0, 0.95, 0.1)
    else:
        smiles = np.full(n, base)
    frames = [draw_face(FaceState(smile=float(s), brightness=0.8), SIZE, rng, setup["background"]) for s in smiles]
    envelope = burst_envelope(duration, 0.6 if cues[1] else 4.0, rng, base=0.02 if cues[1] else 0.15)
    write_video(root / video, frames, FPS, voice(duration, rng.uniform(0.3, 0.7), envelope, rng, noise=setup["noise"]))
    crops = root / "cropped-aligned-faces" / video
    crops.mkdir(parents=True, exist_ok=True)
    margin = SIZE // 8
    for i, frame in enumerate(frames):
        frame.crop((margin, margin, SIZE - margin, SIZE - margin)).save(crops / f"frame-{i}.jpg", quality=90)
    transcript = root / "transcription" / video / f"{Path(video).stem}.yml"
    transcript.parent.mkdir(parents=True, exist_ok=True)
    half = round(duration / 2, 2)
    chunks = [
        {"language": "english", "text": part, "timestamp": span}
        for part, span in zip(text.split(": ", 1), [(0.0, half), (half, round(duration, 2))])
    ]
    transcript.write_text(yaml.dump({"text": text, "chunks": chunks}, sort_keys=False))  # tuples become !!python/tuple, as Whisper's files
    return n


def write_bah_demo(root: Path, seed: int = 0, train: int = 14, valid: int = 5, test: int = 5) -> dict:
    """Participants per split (3 videos each); returns videos per split."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    counts, annotation, meta, listing = {}, {}, {}, ["video-path,label"]
    number = 0
    plan = [("train", train), ("val", valid), ("test", test)]
    with progress_bar("writing BAH demo videos", sum(k for _, k in plan) * VIDEOS_PER_PARTICIPANT) as advance:
        for split, participants in plan:
            lines = []
            for _ in range(participants):
                number += 1
                pid = f"{number:02d}{rng.integers(100, 999)}"
                meta[pid] = {"age": int(rng.integers(20, 70)), "gender": str(rng.choice(["F", "M"])), "province": "QC"}
                for q in range(1, VIDEOS_PER_PARTICIPANT + 1):
                    video = f"Videos/{pid}/Visite_1/{pid}_Question_{q}_2023-05-0{q}_10-1{q}-00_Video.mp4"
                    label = int(rng.uniform() < 0.5)
                    cues = rng.uniform(size=3) < (0.8 if label else 0.2)
                    text = _transcript(rng, bool(cues[2]))
                    frames = _video(root, video, rng, cues, text)
                    start, stop = sorted(rng.integers(0, frames, 2))
                    annotation[video] = {
                        "global_ah": label,
                        "fr_detailed_ah": [[int(start), int(stop)]] if label else [],
                        "certainty_ah": 1,
                        "annotator_id": "demo",
                        "transcript": text,
                    }
                    lines.append(f"{video},{label if split != 'test' else 0},{text}")  # the test list's labels are placeholders
                    listing.append(f"{video},{label}")
                    advance()
            (root / "split").mkdir(parents=True, exist_ok=True)
            (root / "split" / f"{split}.txt").write_text("\n".join(lines) + "\n")
            counts[{"val": "valid"}.get(split, split)] = len(lines)
    (root / "video_annotation_transcript.yaml").write_text(yaml.safe_dump(annotation, sort_keys=True))
    (root / "meta_data.yml").write_text(yaml.safe_dump(meta, sort_keys=True))
    (root / "class_id.yaml").write_text("No A-H: 0\nWith A-H: 1\n")
    (root / "bah-video.csv").write_text("\n".join(listing) + "\n")
    return counts
