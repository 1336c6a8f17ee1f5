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
import difflib
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from challenge.data.text import read_lines
from challenge.errors import ChallengeError, list_offenders

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
    notes: list[str] = field(default_factory=list)  # what was repaired or ignored, reported by the corpus reader

    def tier(self, name: str) -> list[Segment]:
        return {"smiles": self.smiles, "laughs": self.laughs, "role": self.roles}[name]


def flatten(segments: list[Segment], order: tuple[str, ...]) -> tuple[list[Segment], list[Segment]]:
    """Non-overlapping segments covering the same time: where segments of one tier overlap, the
    time counts once and goes to the level latest in `order` (the higher intensity); touching
    pieces of one level merge. Returns them with the segments that started inside an earlier one."""
    ordered = sorted(segments, key=lambda s: (s.start, s.end))
    overlapping, reach = [], float("-inf")
    for s in ordered:
        if s.start < reach:
            overlapping.append(s)
        reach = max(reach, s.end)
    if not overlapping:
        return ordered, []
    rank = {level: i for i, level in enumerate(order)}
    bounds = sorted({t for s in ordered for t in (s.start, s.end)})
    out: list[Segment] = []
    for start, end in zip(bounds, bounds[1:]):
        covering = [s.value for s in ordered if s.start <= start and s.end >= end]
        if not covering:
            continue
        level = max(covering, key=lambda v: rank.get(v, -1))
        if out and out[-1].value == level and abs(out[-1].end - start) < 1e-9:
            out[-1] = Segment(out[-1].start, end, level)
        else:
            out.append(Segment(start, end, level))
    return out, overlapping


def read_eaf(path: Path, scheme: ElanScheme | None = None) -> ElanAnnotation:
    """Parse one .eaf; a missing tier, a tier name that looks like a misspelling of one the
    scheme expects, or an unknown level is an error naming file, tier, time and value. Overlapping
    segments within a tier are flattened (see `flatten`) and noted."""
    import pympi

    scheme = scheme or ElanScheme()
    path = Path(path)
    if not path.exists():
        raise ChallengeError(f"{path}: annotation file not found.")
    try:
        eaf = pympi.Elan.Eaf(str(path), suppress_version_warning=True)
    except Exception as error:  # noqa: BLE001 - pympi raises plain XML and key errors
        raise ChallengeError(f"{path}: not a readable ELAN file ({type(error).__name__}: {error}). Re-save it from ELAN.") from error
    tiers = set(eaf.get_tier_names())
    expected = {"role_tier": scheme.role_tier, "smiles_tier": scheme.smiles_tier, "laughs_tier": scheme.laughs_tier}
    others = sorted(tiers - set(expected.values()))
    for key, name in expected.items():
        if name in tiers:
            continue
        close = difflib.get_close_matches(name.lower(), [t.lower() for t in others], n=1, cutoff=0.6)
        if close:
            found = next(t for t in others if t.lower() == close[0])
            raise ChallengeError(
                f"{path}: tier {found!r} looks like a misspelling of the {key.removesuffix('_tier')} tier {name!r}, "
                f"which is missing. Rename the tier in ELAN, or set {key}: {found!r} in the ELAN scheme (--scheme FILE)."
            )
    notes = [f"{path.name}: tier(s) {others} are not in the ELAN scheme and are ignored"] if others else []

    def segments(tier: str, spellings: dict[str, str], required: bool, order: tuple[str, ...]) -> list[Segment]:
        if tier not in tiers:
            if not required:
                return []
            raise ChallengeError(
                f"{path}: no tier {tier!r}; the file has {sorted(tiers)}. Set the tier names in the ELAN scheme (--scheme FILE)."
            )
        lookup = {k.strip().lower(): v for k, v in spellings.items()}
        out = []
        for start, end, value, *_ in sorted(eaf.get_annotation_data_for_tier(tier)):
            level = lookup.get(str(value).strip().lower())
            if level is None:
                raise ChallengeError(
                    f"{path}: tier {tier!r} at {start / 1000:.3f} s has level {value!r}; known: "
                    f"{sorted(spellings)}. Fix the annotation or add the spelling to the ELAN scheme."
                )
            out.append(Segment(start / 1000, end / 1000, level))
        flat, overlapping = flatten(out, order)
        if overlapping:
            notes.append(
                f"{path.name}: tier {tier!r} has {len(overlapping)} overlapping segment(s) (first at {overlapping[0].start:.3f} s); "
                "their time counts once, the higher level wins"
            )
        return flat

    return ElanAnnotation(
        path,
        segments(scheme.role_tier, scheme.roles, False, ("LSN", "SPK")),
        segments(scheme.smiles_tier, scheme.smile_levels, True, SMILE_LEVELS),
        segments(scheme.laughs_tier, scheme.laugh_levels, True, LAUGH_LEVELS),
        notes,
    )


def clip_to_media(annotation: ElanAnnotation, duration: float) -> None:
    """Segments running past the media's end are cut at it (those starting after it dropped),
    and noted: a long overrun usually means the .eaf belongs to another recording."""
    for name in ("roles", "smiles", "laughs"):
        kept, past = [], []
        for s in getattr(annotation, name):
            if s.end > duration + 1e-3:
                past.append(s)
            if s.start < duration:
                kept.append(Segment(s.start, min(s.end, duration), s.value))
        if past:
            annotation.notes.append(
                f"{annotation.path.name}: {len(past)} {name} segment(s) run past the media's end at "
                f"{duration:.2f} s (up to {max(s.end for s in past):.2f} s); cut at the end"
            )
        setattr(annotation, name, kept)


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
    speaker: str = ""  # splits.csv's optional third column: cross-validation keeps a speaker in one fold


def read_smiles_corpus(root: Path, scheme: ElanScheme | None = None, reference: str | None = None) -> tuple[list[Recording], str]:
    """All recordings with their annotations; returns them with the reference annotator's name.
    Problems that lose data are errors; repairs (overlaps flattened, overruns cut, tiers
    ignored) are reported once per corpus."""
    from challenge.media import media_duration
    from challenge.progress import warn

    root = Path(root)
    if scheme is None:  # a corpus may say how its tiers and levels are spelled
        scheme = ElanScheme.load(root / "elan_scheme.yaml") if (root / "elan_scheme.yaml").exists() else ElanScheme()
    folders = sorted(p for p in (root / "annotations").glob("*") if p.is_dir()) if (root / "annotations").is_dir() else []
    if not folders:
        raise ChallengeError(f"{root}: no annotations/<annotator>/ folders of .eaf files. Is --data the corpus root?")
    reference = reference or folders[0].name
    if reference not in {f.name for f in folders}:
        raise ChallengeError(f"{root}: no annotator {reference!r}; annotators: {[f.name for f in folders]}")
    splits, speakers = _read_splits(root / "splits.csv")
    files = sorted((root / "annotations" / reference).glob("*.eaf"))
    _check_split_coverage(root, reference, splits, [f.stem for f in files])
    recordings, notes = [], []
    for eaf in files:
        video = root / "videos" / f"{eaf.stem}.mp4"
        if not video.exists():
            raise ChallengeError(f"{eaf}: its video {video} is missing. Put the recording in videos/ or remove the annotation.")
        duration = media_duration(video)
        annotations = {}
        for folder in folders:
            if (folder / eaf.name).exists():
                annotation = read_eaf(folder / eaf.name, scheme)
                clip_to_media(annotation, duration)
                notes.extend(f"{folder.name}/{note}" for note in annotation.notes)
                annotations[folder.name] = annotation
        recordings.append(Recording(eaf.stem, splits.get(eaf.stem, "train"), video, annotations, speakers.get(eaf.stem, "")))
    if not recordings:
        raise ChallengeError(f"{root / 'annotations' / reference}: no .eaf files.")
    if notes:
        warn(f"{root}: {len(notes)} annotation repair(s):\n{list_offenders(notes)}")
    return recordings, reference


def _check_split_coverage(root: Path, reference: str, splits: dict[str, str], annotated: list[str]) -> None:
    """Every recording in splits.csv has a reference annotation, and every annotated recording a
    split: otherwise a recording would be left out, or land in a split nobody chose."""
    if not splits:
        return
    unannotated = sorted(set(splits) - set(annotated))
    unsplit = sorted(set(annotated) - set(splits))
    problems = [f"{r}: in splits.csv, but no annotations/{reference}/{r}.eaf" for r in unannotated]
    problems += [f"{r}: annotations/{reference}/{r}.eaf, but not in splits.csv" for r in unsplit]
    if problems:
        raise ChallengeError(
            f"{root}: splits.csv and the reference annotations disagree:\n{list_offenders(problems)}\n"
            "Add the missing rows to splits.csv, or the missing .eaf files (or remove the rows)."
        )


def _read_splits(path: Path) -> tuple[dict[str, str], dict[str, str]]:
    """recording -> split, and recording -> speaker where the optional third column names one."""
    if not path.exists():
        return {}, {}
    rows = [row for row in csv.reader(read_lines(path)) if any(cell.strip() for cell in row)]
    header = [c.strip() for c in rows[0]] if rows else []
    if header not in (["recording", "split"], ["recording", "split", "speaker"]):
        raise ChallengeError(f"{path} line 1: header must be 'recording,split' or 'recording,split,speaker'.")
    bad = [
        f"line {i}: {row}"
        for i, row in enumerate(rows[1:], start=2)
        if len(row) != len(header) or row[1].strip() not in ("train", "valid", "test")
    ]
    if bad:
        raise ChallengeError(f"{path}: each row must be '{','.join(header).replace('split', 'train|valid|test')}':\n" + list_offenders(bad))
    splits, speakers, twice = {}, {}, []
    for number, row in enumerate(rows[1:], start=2):
        recording, split = row[0].strip(), row[1].strip()
        if recording in splits and splits[recording] != split:
            twice.append(f"line {number}: {recording} is {split}, but {splits[recording]} on an earlier line")
        splits[recording] = split
        if len(row) > 2 and row[2].strip():
            speakers[recording] = row[2].strip()
    if twice:
        raise ChallengeError(f"{path}: recording(s) listed in two splits (train/test leakage):\n{list_offenders(twice)}")
    return splits, speakers
