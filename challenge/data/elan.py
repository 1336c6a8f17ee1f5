"""Smiles and laughter corpora annotated in ELAN (.eaf), read with pympi-ling.

A corpus folder holds one recording per participant and camera, and the .eaf files of one or
more annotators:

    ROOT/videos/<recording>.mp4                 video with audio, one participant
    ROOT/annotations/<annotator>/<recording>.eaf
    ROOT/splits.csv                             recording,split   (train / valid / test)

The first annotator folder in sorted order is the reference unless another is named. Tier
names and level spellings differ between corpora: an `ElanScheme` maps them (YAML-loadable).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from challenge.errors import ChallengeError

SMILE_LEVELS = ("subtle", "low", "medium", "high")
LAUGH_LEVELS = ("low", "medium", "high")


@dataclass(frozen=True)
class Segment:
    start: float  # seconds
    end: float
    value: str  # canonical level ("low", ...) or role ("SPK", "LSN")


@dataclass
class ElanScheme:
    """Tier names and level spellings of a corpus, mapped onto the canonical ones."""

    role_tier: str = "Role"
    smiles_tier: str = "Smiles"
    laughs_tier: str = "Laughs"
    # spelling in the file -> canonical level; compared case-insensitively, spaces stripped
    smile_levels: dict[str, str] = field(default_factory=lambda: {v: v for v in SMILE_LEVELS})
    laugh_levels: dict[str, str] = field(default_factory=lambda: {v: v for v in LAUGH_LEVELS})
    roles: dict[str, str] = field(default_factory=lambda: {"SPK": "SPK", "LSN": "LSN"})

    @classmethod
    def load(cls, path: Path | None) -> ElanScheme:
        if path is None:
            return cls()
        if not Path(path).exists():
            raise ChallengeError(f"{path}: ELAN scheme file not found.")
        values = yaml.safe_load(Path(path).read_text()) or {}
        unknown = set(values) - set(cls.__dataclass_fields__)
        if unknown:
            raise ChallengeError(f"{path}: unknown key(s) {sorted(unknown)}; valid: {sorted(cls.__dataclass_fields__)}")
        return cls(**values)


@dataclass
class ElanAnnotation:
    path: Path
    roles: list[Segment]
    smiles: list[Segment]
    laughs: list[Segment]

    def tier(self, name: str) -> list[Segment]:
        return {"smiles": self.smiles, "laughs": self.laughs, "role": self.roles}[name]


def read_eaf(path: Path, scheme: ElanScheme | None = None) -> ElanAnnotation:
    """Parse one .eaf; a missing tier or an unknown level is an error naming file, tier, time and value."""
    import pympi

    scheme = scheme or ElanScheme()
    path = Path(path)
    if not path.exists():
        raise ChallengeError(f"{path}: annotation file not found.")
    try:
        eaf = pympi.Elan.Eaf(str(path), suppress_version_warning=True)
    except Exception as error:  # noqa: BLE001 - pympi raises plain XML and key errors
        raise ChallengeError(f"{path}: not a readable ELAN file ({type(error).__name__}: {error}). Re-save it from ELAN.") from error
    tiers = eaf.get_tier_names()

    def segments(tier: str, spellings: dict[str, str], required: bool) -> list[Segment]:
        if tier not in tiers:
            if not required:
                return []
            raise ChallengeError(f"{path}: no tier {tier!r}; the file has {sorted(tiers)}. Set the tier names in the ELAN scheme (--scheme FILE).")
        lookup = {k.strip().lower(): v for k, v in spellings.items()}
        out = []
        for start, end, value, *_ in sorted(eaf.get_annotation_data_for_tier(tier)):
            level = lookup.get(str(value).strip().lower())
            if level is None:
                raise ChallengeError(f"{path}: tier {tier!r} at {start / 1000:.3f} s has level {value!r}; known: "
                                     f"{sorted(spellings)}. Fix the annotation or add the spelling to the ELAN scheme.")
            out.append(Segment(start / 1000, end / 1000, level))
        return out

    return ElanAnnotation(path, segments(scheme.role_tier, scheme.roles, False),
                          segments(scheme.smiles_tier, scheme.smile_levels, True), segments(scheme.laughs_tier, scheme.laugh_levels, True))


def write_eaf(path: Path, tiers: dict[str, list[Segment]], media: Path | None = None) -> None:
    """An .eaf with one tier per entry (times in seconds); used by the demo corpora."""
    import pympi

    eaf = pympi.Elan.Eaf(author="challenge demo")
    eaf.remove_tier("default")
    if media is not None:
        eaf.add_linked_file(str(media), mimetype="video/mp4")
    for name, segments in tiers.items():
        eaf.add_tier(name)
        for s in segments:
            eaf.add_annotation(name, int(round(s.start * 1000)), int(round(s.end * 1000)), s.value)
    path.parent.mkdir(parents=True, exist_ok=True)
    eaf.to_file(str(path))


@dataclass
class Recording:
    id: str
    split: str
    video: Path
    annotations: dict[str, ElanAnnotation]  # annotator -> annotation


def read_smiles_corpus(root: Path, scheme: ElanScheme | None = None, reference: str | None = None) -> tuple[list[Recording], str]:
    """All recordings with their annotations; returns them with the reference annotator's name."""
    root = Path(root)
    if scheme is None:  # a corpus may say how its tiers and levels are spelled
        scheme = ElanScheme.load(root / "elan_scheme.yaml") if (root / "elan_scheme.yaml").exists() else ElanScheme()
    folders = sorted(p for p in (root / "annotations").glob("*") if p.is_dir()) if (root / "annotations").is_dir() else []
    if not folders:
        raise ChallengeError(f"{root}: no annotations/<annotator>/ folders of .eaf files. Is --data the corpus root?")
    reference = reference or folders[0].name
    if reference not in {f.name for f in folders}:
        raise ChallengeError(f"{root}: no annotator {reference!r}; annotators: {[f.name for f in folders]}")
    splits = _read_splits(root / "splits.csv")
    recordings = []
    for eaf in sorted((root / "annotations" / reference).glob("*.eaf")):
        video = root / "videos" / f"{eaf.stem}.mp4"
        if not video.exists():
            raise ChallengeError(f"{eaf}: its video {video} is missing. Put the recording in videos/ or remove the annotation.")
        annotations = {f.name: read_eaf(f / eaf.name, scheme) for f in folders if (f / eaf.name).exists()}
        recordings.append(Recording(eaf.stem, splits.get(eaf.stem, "test" if splits else "train"), video, annotations))
    if not recordings:
        raise ChallengeError(f"{root / 'annotations' / reference}: no .eaf files.")
    return recordings, reference


def _read_splits(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    if not rows or rows[0] != ["recording", "split"]:
        raise ChallengeError(f"{path} line 1: header must be 'recording,split'.")
    bad = [f"line {i}: {row}" for i, row in enumerate(rows[1:], start=2) if len(row) != 2 or row[1] not in ("train", "valid", "test")]
    if bad:
        raise ChallengeError(f"{path}: each row must be 'recording,train|valid|test':\n" + "\n".join(bad[:10]))
    return {r: s for r, s in rows[1:]}
