"""Two small dyadic smiles-and-laughter corpora with ELAN annotations, and a second annotator.

Each session has two participants, each filmed by their own camera (one video with audio per
participant). Smiles are drawn as mouth curvature growing with their level, laughs as an open
smiling mouth with loud high-pitched bursts in the audio; the speaker talks, the listener is
quiet. Corpus "b" is recorded in another room, its faces smile a little less and its ELAN files
use other tier names and level spellings (its elan_scheme.yaml maps them), so cross-corpus
evaluation shows a real shift. A second annotator re-annotates half of the recordings with
shifted boundaries, some levels one step off, some segments missed and a few extra ones.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import yaml

from challenge.progress import progress_bar
from challenge.synthetic.draw import AUDIO_RATE, FaceState, draw_face, voice, write_video
from tracks.smiles.elan import LAUGH_LEVELS, SMILE_LEVELS, Segment, write_eaf

FPS = 10
SIZE = 64
SMILE_CURVE = {"subtle": 0.07, "low": 0.15, "medium": 0.28, "high": 0.45}
LAUGH_STRENGTH = {"low": 0.5, "medium": 0.75, "high": 1.0}
CORPORA = {
    "a": {
        "background": (40, 50, 110),
        "light": 1.0,
        "smile_gain": 1.0,
        "sessions": 8,
        "tiers": {"Role": "Role", "Smiles": "Smiles", "Laughs": "Laughs"},
        "spell": str,
    },
    "b": {
        "background": (110, 100, 60),
        "light": 0.85,
        "smile_gain": 0.8,
        "sessions": 4,
        "tiers": {"Role": "role", "Smiles": "smile", "Laughs": "laugh"},
        "spell": str.capitalize,
    },
}


def _expressions(duration: float, rng) -> tuple[list[Segment], list[Segment]]:
    smiles, laughs, t = [], [], rng.uniform(0.5, 2.0)
    while t < duration - 1.0:
        kind = rng.choice(["smile", "laugh", "none"], p=[0.5, 0.2, 0.3])
        length = rng.uniform(1.0, 4.0) if kind == "smile" else rng.uniform(0.8, 2.5)
        end = min(t + length, duration - 0.2)
        if kind == "smile":
            smiles.append(Segment(round(t, 2), round(end, 2), str(rng.choice(SMILE_LEVELS, p=[0.2, 0.35, 0.3, 0.15]))))
        elif kind == "laugh":
            laughs.append(Segment(round(t, 2), round(end, 2), str(rng.choice(LAUGH_LEVELS, p=[0.4, 0.4, 0.2]))))
        t = end + rng.uniform(0.5, 3.0)
    return smiles, laughs


def _roles(duration: float, rng, first: str) -> list[Segment]:
    roles, t, role = [], 0.0, first
    while t < duration:
        end = min(duration, t + rng.uniform(3, 8))
        roles.append(Segment(round(t, 2), round(end, 2), role))
        t, role = end, "LSN" if role == "SPK" else "SPK"
    return roles


def _at(segments: list[Segment], t: float) -> str | None:
    return next((s.value for s in segments if s.start <= t < s.end), None)


def _record(path: Path, duration: float, smiles, laughs, roles, corpus: dict, rng) -> None:
    n = int(duration * FPS)
    frames = []
    for i in range(n):
        t = (i + 0.5) / FPS
        smile, laugh = _at(smiles, t), _at(laughs, t)
        curve = SMILE_CURVE[smile] * corpus["smile_gain"] if smile else 0.0
        opening = 0.0
        if laugh:
            curve, opening = (
                0.3 + 0.15 * LAUGH_STRENGTH[laugh],
                0.25 + 0.5 * LAUGH_STRENGTH[laugh] * (0.6 + 0.4 * np.sin(2 * np.pi * 2.5 * t)),
            )
        elif _at(roles, t) == "SPK":
            opening = 0.15 * abs(np.sin(2 * np.pi * 2 * t))  # talking
        state = FaceState(
            smile=float(np.clip(0.5 + curve + rng.normal(0, 0.03), 0, 1)),
            brightness=0.6 * corpus["light"],
            mouth_open=float(np.clip(opening, 0, 1)),
        )
        frames.append(draw_face(state, SIZE, rng, corpus["background"]))
    samples = np.arange(int(duration * AUDIO_RATE)) / AUDIO_RATE
    speaking = np.array([_at(roles, t) == "SPK" for t in samples[::160]]).repeat(160)[: len(samples)]
    envelope = np.where(speaking, 0.2 + 0.15 * np.abs(np.sin(2 * np.pi * 4 * samples)), 0.03)
    audio = voice(duration, 0.3, envelope.astype(np.float32), rng)
    for s in laughs:  # laugh bursts: loud, 5 per second, higher pitched
        a, b = int(s.start * AUDIO_RATE), int(s.end * AUDIO_RATE)
        bursts = (np.sin(2 * np.pi * 5 * samples[a:b]) > 0.2) * LAUGH_STRENGTH[s.value]
        audio[a:b] = np.clip(
            0.3 * audio[a:b] + 0.5 * bursts * np.sin(2 * np.pi * 420 * samples[a:b]) + 0.05 * bursts * rng.standard_normal(b - a), -1, 1
        )
    write_video(path, frames, FPS, audio.astype(np.float32))


def _second_annotator(segments: list[Segment], levels: tuple[str, ...], duration: float, rng) -> list[Segment]:
    """Partly agreeing: boundaries moved, 25 % of levels one step off, 10 % missed, some extra."""
    out = []
    for s in segments:
        if rng.uniform() < 0.1:
            continue
        level = s.value
        if rng.uniform() < 0.25:
            k = levels.index(level) + int(rng.choice([-1, 1]))
            level = levels[min(max(k, 0), len(levels) - 1)]
        start, end = s.start + rng.normal(0, 0.15), s.end + rng.normal(0, 0.15)
        if end - start > 0.2:
            out.append(Segment(round(max(start, 0), 2), round(min(end, duration), 2), level))
    for _ in range(rng.poisson(1.0)):
        start = rng.uniform(0, duration - 1)
        extra = Segment(round(start, 2), round(start + rng.uniform(0.4, 1.0), 2), str(rng.choice(levels)))
        if all(extra.end <= s.start or extra.start >= s.end for s in out):
            out.append(extra)
    return sorted(out, key=lambda s: s.start)


def _write_annotation(path: Path, corpus: dict, roles, smiles, laughs, video: Path) -> None:
    spell, tiers = corpus["spell"], corpus["tiers"]
    respell = lambda segments: [Segment(s.start, s.end, spell(s.value) if s.value not in ("SPK", "LSN") else s.value) for s in segments]  # noqa: E731
    write_eaf(path, {tiers["Role"]: roles, tiers["Smiles"]: respell(smiles), tiers["Laughs"]: respell(laughs)}, media=video)


def write_corpus(root: Path, name: str, sessions: int | None = None, duration: float = 40.0, seed: int = 0) -> int:
    corpus = CORPORA[name]
    rng = np.random.default_rng(seed)
    sessions = sessions or corpus["sessions"]
    root.mkdir(parents=True, exist_ok=True)
    if name != "a":  # tier names and spellings differ from the defaults: say how to read them
        scheme = {
            "role_tier": corpus["tiers"]["Role"],
            "smiles_tier": corpus["tiers"]["Smiles"],
            "laughs_tier": corpus["tiers"]["Laughs"],
            "smile_levels": {corpus["spell"](v): v for v in SMILE_LEVELS},
            "laugh_levels": {corpus["spell"](v): v for v in LAUGH_LEVELS},
        }
        (root / "elan_scheme.yaml").write_text(yaml.safe_dump(scheme, sort_keys=False))
    rows, count = [], 0
    with progress_bar(f"write smiles corpus {name}", sessions * 2) as advance:
        for session in range(sessions):
            split = (
                "test"
                if session >= sessions - max(1, sessions // 4)
                else ("valid" if session == sessions - max(1, sessions // 4) - 1 else "train")
            )
            first = str(rng.choice(["SPK", "LSN"]))
            for person, role in ((0, first), (1, "LSN" if first == "SPK" else "SPK")):
                recording = f"{name}{session:02d}_p{person}"
                video = root / "videos" / f"{recording}.mp4"
                smiles, laughs = _expressions(duration, rng)
                roles = _roles(duration, np.random.default_rng(seed * 1000 + session), "SPK")
                if role == "LSN":  # the other participant listens while this one speaks
                    roles = [Segment(s.start, s.end, "LSN" if s.value == "SPK" else "SPK") for s in roles]
                _record(video, duration, smiles, laughs, roles, corpus, rng)
                _write_annotation(root / "annotations" / "annotator1" / f"{recording}.eaf", corpus, roles, smiles, laughs, video)
                if person == 0:  # the second annotator did one participant of every session
                    _write_annotation(
                        root / "annotations" / "annotator2" / f"{recording}.eaf",
                        corpus,
                        roles,
                        _second_annotator(smiles, SMILE_LEVELS, duration, rng),
                        _second_annotator(laughs, LAUGH_LEVELS, duration, rng),
                        video,
                    )
                rows.append([recording, split])
                count += 1
                advance()
    with open(root / "splits.csv", "w", newline="") as handle:
        csv.writer(handle).writerows([["recording", "split"], *rows])
    return count


def write_smiles_demo(
    root: Path, seed: int = 0, train: int | None = None, valid: int | None = None, test: int | None = None, duration: float = 40.0
) -> dict[str, int]:
    """Corpus a (train/valid/test) and corpus b (another room, other ELAN spellings) under root.
    `train` sets the number of sessions of corpus a (corpus b gets half as many)."""
    if valid is not None or test is not None:
        from challenge.errors import ChallengeError

        raise ChallengeError("the smiles corpora set their own splits (splits.csv): pass only --train (sessions of corpus a).")
    root = Path(root)
    sessions = train
    return {
        "a": write_corpus(root / "a", "a", sessions, duration, seed),
        "b": write_corpus(root / "b", "b", max(2, sessions // 2) if sessions else None, duration, seed + 1),
    }
