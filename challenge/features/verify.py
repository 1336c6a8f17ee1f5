"""`challenge features verify`: read every entry of the writable store in full, compare it with
the checksum recorded when it was written, and with `repair` compute damaged entries again from
their media.

Damage happens on shared lab disks: a full disk or a killed copy truncates a file, a bad sector
flips bytes. A truncated file is caught on every read (the structure check); flipped bytes only
by this full read.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from challenge.errors import ChallengeError
from challenge.features.base import make_extractor
from challenge.progress import progress_bar, say
from challenge.stores.feature_store import FeatureStore, StoreEntry, check_entries


@dataclass
class VerifyReport:
    checked: int = 0
    sound: int = 0
    damaged: list[str] = field(default_factory=list)  # "entry: problem"
    unverified: int = 0  # entries written before checksums were recorded
    repaired: int = 0
    removed: list[str] = field(default_factory=list)  # damaged entries that could not be computed again, and why


def _remove(meta_path: Path) -> None:
    meta_path.unlink(missing_ok=True)  # metadata first: the entry stops counting as complete
    meta_path.with_suffix(".npy").unlink(missing_ok=True)


def _group_extractor(folder: Path):
    """The extractor whose entries live in `folder`, rebuilt from its config.json, or the reason
    it cannot be (its model or settings changed since, so recomputing would give other features)."""
    try:
        saved = json.loads((folder / "config.json").read_text())
        options = {k: v for k, v in saved["config"].items() if k not in ("name", "schema_version")}
        extractor = make_extractor(saved["name"], **options)
    except (OSError, ValueError, KeyError, TypeError, ChallengeError) as error:
        return None, f"{folder}/config.json unreadable ({error})"
    if extractor.cache_key() != saved.get("key"):
        return None, f"the {saved['name']} settings or model files changed since these entries were written"
    return extractor, None


def verify_store(store: FeatureStore, repair: bool = False, device: str = "auto") -> VerifyReport:
    from challenge.features.extract import ExtractionReport, extract_sources

    report = VerifyReport()
    files = store.entry_files()
    broken: dict[Path, list[tuple[Path, StoreEntry | None]]] = defaultdict(list)
    with progress_bar("verify feature store", len(files)) as advance:
        for meta_path, entry, problem in check_entries(files):
            advance()
            report.checked += 1
            if problem is None:
                report.sound += 1
            elif entry is not None and problem.startswith("no checksum"):
                report.unverified += 1
            else:
                report.damaged.append(f"{entry.describe() if entry else meta_path}: {problem}")
                broken[meta_path.parent.parent].append((meta_path, entry))
    if not repair:
        return report
    # Rebuild first, each entry replaced atomically where it is; remove only what cannot be
    # rebuilt, last. A repair killed midway leaves the entries it had not reached damaged, so
    # the next verify finds them again: nothing is lost.
    for folder, items in broken.items():
        extractor, why_not = _group_extractor(folder)
        todo, hopeless = [], []
        for meta_path, entry in items:
            why = why_not or _why_media_unusable(store, entry, meta_path.stem)
            if why:
                hopeless.append((meta_path, why))
            else:
                todo.append((meta_path.stem, Path(entry.source)))
        if todo:
            say(f"{extractor.name}: computing {len(todo)} damaged entr{'y' if len(todo) == 1 else 'ies'} again")
            computed = extract_sources(extractor, todo, store, device, report=ExtractionReport(extractor.name), replace=True)
            report.repaired += computed.computed
        for meta_path, why in hopeless:
            _remove(meta_path)
            report.removed.append(f"{meta_path.with_suffix('.npy')}: {why}")
    return report


def _why_media_unusable(store: FeatureStore, entry: StoreEntry | None, digest: str) -> str | None:
    """Why an entry cannot be computed again from its media (None when it can)."""
    if entry is None or "source" not in entry.meta:
        return "its metadata is unreadable, so its media is unknown"
    source = Path(entry.source)
    if not source.is_absolute() and not source.exists():
        return (
            f"its media was recorded as the relative path {source} (by an earlier version) and is not found from here; "
            "run the repair from the folder the extraction ran in, or extract the dataset again"
        )
    if not source.exists():
        return f"its media {source} is gone"
    if store.media_digest(source) != digest:
        return f"its media {source} has changed since"
    return None
