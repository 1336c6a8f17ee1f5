"""Content-addressed feature store shared by every track and every trial.

An entry is addressed by (extractor config key, media content digest): changing any extractor
setting or the media bytes gives a new address, so stale features can never come back.

Layout under the root:

    <extractor-name>-<config-key[:16]>/config.json     the extractor config, for `features ls`
    <extractor-name>-<config-key[:16]>/<dd>/<digest>.npy   [T, D] array, read memory-mapped
    <extractor-name>-<config-key[:16]>/<dd>/<digest>.json  metadata; written last, so it marks
                                                            a complete entry
    _digests/                                               cached media digests

Writes go to a temporary name in the same folder and are renamed into place, so a run killed
at any point leaves either a complete entry or none that loads as valid. A lock file per entry
keeps two processes from computing the same entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from filelock import FileLock

from challenge.errors import ChallengeError

STORE_ENV = "CHALLENGE_FEATURE_STORE"
SHARED_STORE_ENV = "CHALLENGE_FEATURE_STORE_SHARED"
DEFAULT_ROOT = Path("~/.cache/challenge/features")
_CHUNK = 1 << 20


def default_root() -> Path:
    return Path(os.environ.get(STORE_ENV, DEFAULT_ROOT)).expanduser()


def _atomic_write_bytes(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, payload: dict) -> None:
    data = json.dumps(payload, indent=1, sort_keys=True, default=str).encode()
    _atomic_write_bytes(path, lambda handle: handle.write(data))


def _hash_file(path: Path, hasher) -> None:
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            hasher.update(chunk)


@dataclass(frozen=True)
class StoreGroup:
    """One extractor configuration's entries, as `features ls` shows them."""

    folder: Path
    config: dict
    entries: int
    bytes: int


class FeatureStore:
    def __init__(self, root: Path | str | None = None, shared_roots: list[Path] | None = None):
        self.root = Path(root).expanduser() if root else default_root()
        if shared_roots is None:
            shared = os.environ.get(SHARED_STORE_ENV, "")
            shared_roots = [Path(p).expanduser() for p in shared.split(os.pathsep) if p]
        # read-only stores (for example a lab-wide cache) consulted before the writable root
        self.shared_roots = [Path(p) for p in shared_roots]

    # ---- media digests -------------------------------------------------------------------
    def media_digest(self, source: Path) -> str:
        """Content digest of a file or of a folder of frames, cached by path, size and mtime."""
        source = Path(source)
        if not source.exists():
            raise ChallengeError(f"{source}: media not found. Check the dataset layout under --data.")
        signature = self._signature(source)
        cache = self.root / "_digests" / (hashlib.sha1(str(source.resolve()).encode()).hexdigest() + ".json")
        if cache.exists():
            try:
                cached = json.loads(cache.read_text())
                if cached.get("signature") == signature:
                    return cached["digest"]
            except (OSError, ValueError):
                pass  # a damaged digest cache entry is recomputed
        digest = self._content_digest(source)
        atomic_write_json(cache, {"path": str(source), "signature": signature, "digest": digest})
        return digest

    @staticmethod
    def _signature(source: Path) -> list:
        if source.is_dir():
            return sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in source.iterdir() if p.is_file())
        stat = source.stat()
        return [stat.st_size, stat.st_mtime_ns]

    @staticmethod
    def _content_digest(source: Path) -> str:
        hasher = hashlib.blake2b(digest_size=20)
        if source.is_dir():
            for path in sorted(p for p in source.iterdir() if p.is_file()):
                hasher.update(path.name.encode() + b"\0")
                _hash_file(path, hasher)
        else:
            _hash_file(source, hasher)
        return hasher.hexdigest()

    # ---- entries -------------------------------------------------------------------------
    @staticmethod
    def group_name(extractor) -> str:
        return f"{extractor.name}-{extractor.cache_key()[:16]}"

    def _entry(self, root: Path, extractor, digest: str) -> Path:
        return root / self.group_name(extractor) / digest[:2] / digest

    def lock(self, extractor, digest: str) -> FileLock:
        path = self._entry(self.root, extractor, digest).with_suffix(".lock")
        path.parent.mkdir(parents=True, exist_ok=True)
        # released by the writer thread, so not bound to the thread that acquired it
        return FileLock(path, thread_local=False)

    def _complete(self, base: Path) -> dict | None:
        meta_path, array_path = base.with_suffix(".json"), base.with_suffix(".npy")
        if not (meta_path.exists() and array_path.exists()):
            return None
        try:
            return json.loads(meta_path.read_text())
        except (OSError, ValueError):
            return None

    def locate(self, extractor, digest: str) -> Path | None:
        for root in [*self.shared_roots, self.root]:
            base = self._entry(root, extractor, digest)
            if self._complete(base) is not None:
                return base
        return None

    def has(self, extractor, digest: str) -> bool:
        return self.locate(extractor, digest) is not None

    def load(self, extractor, digest: str) -> tuple[np.ndarray, dict]:
        """Memory-mapped array and its metadata; the metadata is checked against the array."""
        base = self.locate(extractor, digest)
        if base is None:
            raise KeyError(f"no {extractor.name} features for media digest {digest}")
        meta = self._complete(base)
        array = np.load(base.with_suffix(".npy"), mmap_mode="r")
        if list(array.shape) != meta["shape"] or str(array.dtype) != meta["dtype"] or meta["config_key"] != extractor.cache_key():
            raise ChallengeError(
                f"{base}.npy: cache entry does not match its metadata (shape {list(array.shape)} vs "
                f"{meta['shape']}). Delete {base}.* and run `challenge features extract` again."
            )
        return array, meta

    def put(self, extractor, digest: str, array: np.ndarray, meta: dict) -> Path:
        base = self._entry(self.root, extractor, digest)
        array = np.ascontiguousarray(array, dtype=extractor.dtype)
        group = base.parent.parent
        if not (group / "config.json").exists():
            atomic_write_json(group / "config.json", {"name": extractor.name, "config": extractor.describe(), "key": extractor.cache_key()})
        _atomic_write_bytes(base.with_suffix(".npy"), lambda handle: np.save(handle, array))
        full_meta = {
            **meta,
            "shape": list(array.shape),
            "dtype": str(array.dtype),
            "config_key": extractor.cache_key(),
            "digest": digest,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        atomic_write_json(base.with_suffix(".json"), full_meta)  # last: marks the entry complete
        return base

    def groups(self) -> list[StoreGroup]:
        found = []
        for root in [self.root, *self.shared_roots]:
            if not root.exists():
                continue
            for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("_")):
                config_path = folder / "config.json"
                config = json.loads(config_path.read_text()) if config_path.exists() else {}
                metas = list(folder.glob("*/*.json"))
                size = sum(p.stat().st_size for p in folder.glob("*/*.npy"))
                found.append(StoreGroup(folder, config, len(metas), size))
        return found
