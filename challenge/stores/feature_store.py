"""Content-addressed feature store shared by every track and every trial.

An entry is addressed by (extractor config key, media content digest): changing any extractor
setting, the model's weights or the media bytes gives a new address, so stale features can
never come back.

Layout under the root:

    <extractor-name>-<config-key[:16]>/config.json     the extractor config, for `features ls`
    <extractor-name>-<config-key[:16]>/<dd>/<digest>.npy   [T, D] array, read memory-mapped
    <extractor-name>-<config-key[:16]>/<dd>/<digest>.json  metadata (shape, dtype, checksum,
                                                            source); written last, so it marks
                                                            a complete entry
    _digests/                                               cached media and model digests

Writes go to a temporary name in the same folder and are renamed into place, so a run killed
at any point leaves either a complete entry or none that loads as valid. A lock file per entry
keeps two processes from computing the same entry. Every read goes through `StoreEntry`, which
checks the array file against its metadata (header, size, shape, dtype): a truncated or
damaged file is reported with its media file and key, never read as features. The checksum
recorded at write time is checked by `challenge features verify` (a full read of every entry).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from filelock import FileLock

from challenge.errors import ChallengeError

STORE_ENV = "CHALLENGE_FEATURE_STORE"
SHARED_STORE_ENV = "CHALLENGE_FEATURE_STORE_SHARED"
DEFAULT_ROOT = Path("~/.cache/challenge/features")
_CHUNK = 1 << 20
FLOAT16_MAX = float(np.finfo(np.float16).max)


def _current_umask() -> int:
    # os.umask can only be read by setting it; done once, at import, before any thread starts
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


UMASK = _current_umask()


def default_root() -> Path:
    return Path(os.environ.get(STORE_ENV, DEFAULT_ROOT)).expanduser()


_model_digest_root: Path | None = None  # the root of the store this process opened last


def model_digest_root() -> Path:
    """Where model digests are cached: the store the run opened (--store), else the default root."""
    return _model_digest_root or default_root()


def _disk_full(path: Path, error: OSError) -> ChallengeError:
    try:
        free = shutil.disk_usage(path.parent).free
        room = f"{free / 2**20:.0f} MiB free there"
    except OSError:
        room = "free space unknown"
    return ChallengeError(
        f"{path}: no space left on the device ({error.strerror}; {room}). Nothing was half-written: "
        f"free some space or point ${STORE_ENV} (or --store) at a larger disk, then run the same command "
        "again; finished entries are kept and it resumes."
    )


def _not_writable(path: Path, error: OSError) -> ChallengeError:
    return ChallengeError(
        f"{path}: the feature store cannot be written there ({error.strerror}). Point --store (or ${STORE_ENV}) at a folder "
        f"you can write; a read-only store can still be read first by naming it in ${SHARED_STORE_ENV}."
    )


def _writable_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        if error.errno in (errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR, errno.EEXIST):
            raise _not_writable(folder, error) from error
        raise
    if not os.access(folder, os.W_OK):  # a folder that exists on a read-only mount: the lock file would fail next
        raise _not_writable(folder, OSError(errno.EROFS, "read-only file system or no write permission"))


def _atomic_write_bytes(path: Path, write) -> None:
    """Write to a temporary name beside `path`, then rename: readers see all of it or nothing.
    The file gets the permissions the umask allows (mkstemp alone would leave 0600, which shuts
    out the other users of a shared lab store)."""
    _writable_folder(path.parent)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as error:
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            raise _disk_full(path, error) from error
        raise _not_writable(path.parent, error) from error
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~UMASK)
        os.replace(tmp, path)
    except OSError as error:
        Path(tmp).unlink(missing_ok=True)
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            raise _disk_full(path, error) from error
        raise
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


def _signature(files: list[Path]) -> list:
    return sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files)


def cached_content_digest(source: Path, files: list[Path], cache_root: Path, named: bool = True) -> str:
    """Digest of the bytes of `files` (with their names when `named`), cached under
    `cache_root/_digests` by path, size and mtime so an unchanged file is not read again."""
    signature = _signature(files)
    cache = cache_root / "_digests" / (hashlib.sha1(str(Path(source).resolve()).encode()).hexdigest() + ".json")
    if cache.exists():
        try:
            cached = json.loads(cache.read_text())
            if isinstance(cached, dict) and cached.get("signature") == json.loads(json.dumps(signature)):
                return cached["digest"]
        except (OSError, ValueError):
            pass  # a damaged digest cache entry is recomputed
    hasher = hashlib.blake2b(digest_size=20)
    for path in sorted(files, key=lambda p: p.name):
        if named:
            hasher.update(path.name.encode() + b"\0")
        _hash_file(path, hasher)
    digest = hasher.hexdigest()
    try:
        atomic_write_json(cache, {"path": str(source), "signature": signature, "digest": digest})
    except (OSError, ChallengeError):
        pass  # a read-only or full cache only costs a re-read next time
    return digest


def array_checksum(array: np.ndarray) -> str:
    hasher = hashlib.blake2b(digest_size=16)
    hasher.update(np.ascontiguousarray(array).view(np.uint8).reshape(-1).data)
    return "blake2b:" + hasher.hexdigest()


# np.save writes version 1.0, or 2.0 for very large headers
_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


class DamagedEntry(Exception):
    """A store entry whose files do not match its metadata (truncated, bad header, flipped bytes)."""


def _check_against_meta(shape, dtype, meta: dict) -> None:
    if list(shape) != list(meta.get("shape", [])) or str(dtype) != meta.get("dtype"):
        raise DamagedEntry(f"array is {list(shape)} {dtype}, its metadata says {meta.get('shape')} {meta.get('dtype')}")


@dataclass(frozen=True)
class StoreEntry:
    """One cached [T, D] array and its metadata. Every read of features goes through here."""

    path: Path  # the .npy file
    meta: dict

    @classmethod
    def for_file(cls, path: Path, **meta) -> StoreEntry:
        """An array file outside any store (synthetic data in tests and benchmarks), with the
        metadata read off its own header."""
        array = np.load(path, mmap_mode="r")
        return cls(Path(path), {"shape": list(array.shape), "dtype": str(array.dtype), "source": str(path), **meta})

    @property
    def source(self) -> str:
        return str(self.meta.get("source", "?"))

    @property
    def steps(self) -> int:
        return int(self.meta["shape"][0])

    @property
    def width(self) -> int:
        return int(self.meta["shape"][1])

    def describe(self) -> str:
        return f"feature store entry {self.path} (media {self.source}, key {self.meta.get('config_key', '?')[:16]})"

    def check_structure(self) -> None:
        """Header, file size, shape and dtype against the metadata; cheap (no data read)."""
        try:
            with open(self.path, "rb") as handle:
                version = np.lib.format.read_magic(handle)
                if version not in _HEADER_READERS:
                    raise ValueError(f"unsupported .npy format version {version}")
                shape, fortran, dtype = _HEADER_READERS[version](handle)
                offset = handle.tell()
            size = self.path.stat().st_size
        except (OSError, ValueError, SyntaxError) as error:
            raise DamagedEntry(f"unreadable array header ({error})") from error
        _check_against_meta(shape, dtype, self.meta)
        if fortran:
            raise DamagedEntry("array is in Fortran order; the store writes C order")
        expected = offset + int(np.prod(shape)) * dtype.itemsize
        if size != expected:
            raise DamagedEntry(f"file holds {size} bytes, {expected} expected (truncated or padded)")

    def check_checksum(self) -> None:
        """A full read: the array's bytes against the checksum recorded when it was written."""
        recorded = self.meta.get("checksum")
        if recorded is None:
            raise DamagedEntry("no checksum recorded (written by an older version)")
        if array_checksum(np.load(self.path, mmap_mode="r")) != recorded:
            raise DamagedEntry("content checksum differs from the one recorded at write time (flipped bytes)")

    def array(self) -> np.ndarray:
        """The [T, D] array, memory-mapped; a damaged file is a named error, never features.
        One open per read (this is the training loop's path): mapping a truncated file fails,
        and the mapped shape and dtype are compared with the metadata."""
        try:
            array = np.load(self.path, mmap_mode="r")
            _check_against_meta(array.shape, array.dtype, self.meta)
            return array
        except (DamagedEntry, OSError, ValueError) as error:
            raise ChallengeError(
                f"{self.describe()} is damaged: {error}. Run `challenge features verify --repair` "
                "(or `challenge features extract` for this data) to recompute it."
            ) from error


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
        if self.root.exists() and not self.root.is_dir():
            raise ChallengeError(
                f"{self.root}: the feature store is a folder, and this is a file. Point --store (or ${STORE_ENV}) at a folder."
            )
        global _model_digest_root
        _model_digest_root = self.root  # the models' digests are cached with the features they key
        if shared_roots is None:
            shared = os.environ.get(SHARED_STORE_ENV, "")
            shared_roots = [Path(p).expanduser() for p in shared.split(os.pathsep) if p]
        # read-only stores (for example a lab-wide cache) consulted before the writable root
        self.shared_roots = [Path(p) for p in shared_roots]
        self._configs: dict[Path, dict] = {}  # group folder -> its config.json, read once

    # ---- media digests -------------------------------------------------------------------
    def media_digest(self, source: Path) -> str:
        """Content digest of a file or of a folder of frames, cached by path, size and mtime."""
        source = Path(source)
        if not source.exists():
            raise ChallengeError(f"{source}: media not found. Check the dataset layout under --data.")
        if source.is_dir():
            return cached_content_digest(source, [p for p in source.iterdir() if p.is_file()], self.root)
        # a single file is hashed without its name, so a renamed copy shares its entry
        return cached_content_digest(source, [source], self.root, named=False)

    # ---- entries -------------------------------------------------------------------------
    @staticmethod
    def group_name(extractor) -> str:
        return f"{extractor.name}-{extractor.cache_key()[:16]}"

    def _entry(self, root: Path, extractor, digest: str) -> Path:
        return root / self.group_name(extractor) / digest[:2] / digest

    def lock(self, extractor, digest: str) -> FileLock:
        path = self._entry(self.root, extractor, digest).with_suffix(".lock")
        _writable_folder(path.parent)
        # released by the writer thread, so not bound to the thread that acquired it
        return FileLock(path, thread_local=False, mode=0o666 & ~UMASK)

    @staticmethod
    def _read_entry(base: Path) -> StoreEntry | None:
        """The entry at `base` if complete (metadata and array present), else None."""
        meta_path, array_path = base.with_suffix(".json"), base.with_suffix(".npy")
        if not (meta_path.exists() and array_path.exists()):
            return None
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError):
            return None
        return StoreEntry(array_path, meta) if isinstance(meta, dict) else None  # `null` or a list: a damaged entry

    def entry(self, extractor, digest: str) -> StoreEntry | None:
        """The first sound entry among the shared roots and the writable root. A damaged one
        (truncated, bad header, shape or dtype against its metadata) is passed over, so
        extraction computes it again."""
        for root in [*self.shared_roots, self.root]:
            found = self._read_entry(self._entry(root, extractor, digest))
            if found is None or found.meta.get("config_key") != extractor.cache_key():
                continue
            try:
                found.check_structure()
            except DamagedEntry:
                continue
            return found
        return None

    def damaged(self, extractor, digest: str) -> str | None:
        """Why the writable root's entry for this digest is damaged; None when sound or absent."""
        found = self._read_entry(self._entry(self.root, extractor, digest))
        if found is None:
            return None
        try:
            found.check_structure()
        except DamagedEntry as error:
            return f"{found.describe()}: {error}"
        return None

    def has(self, extractor, digest: str) -> bool:
        return self.entry(extractor, digest) is not None

    def require(self, extractor, digest: str, what: str = "") -> StoreEntry:
        """The entry, or a named error saying how to get it."""
        found = self.entry(extractor, digest)
        if found is None:
            reason = self.damaged(extractor, digest)
            raise ChallengeError(
                f"no sound {extractor.name} features for {what or 'media digest ' + digest}"
                + (f" ({reason})" if reason else "")
                + ". Run `challenge features extract` (or the same command again) to compute them."
            )
        return found

    def load(self, extractor, digest: str) -> tuple[np.ndarray, dict]:
        """Memory-mapped array and its metadata, checked against each other."""
        found = self.require(extractor, digest)
        return found.array(), found.meta

    def write(self, extractor, digest: str, array: np.ndarray, meta: dict) -> StoreEntry:
        """Write an array that `storable` already returned (the extraction pipeline checks it on
        the main thread, where a bad file fails alone, and writes it on the writer thread)."""
        base = self._entry(self.root, extractor, digest)
        meta = dict(meta)
        self._record_group(base.parent.parent, extractor, meta.pop("columns", None))
        _atomic_write_bytes(base.with_suffix(".npy"), lambda handle: np.save(handle, array))
        full_meta = {
            **meta,
            "shape": list(array.shape),
            "dtype": str(array.dtype),
            "checksum": array_checksum(array),
            "config_key": extractor.cache_key(),
            "digest": digest,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        atomic_write_json(base.with_suffix(".json"), full_meta)  # last: marks the entry complete
        return StoreEntry(base.with_suffix(".npy"), full_meta)

    def _record_group(self, group: Path, extractor, columns: list[str] | None) -> None:
        """The group's config.json: the extractor's settings (for `features ls`) and, once an
        entry brings them, its column names (the same for every entry of one configuration).
        A group written before the store kept names gets them with its next entry."""
        path = group / "config.json"
        if path.exists() and (columns is None or "columns" in self._group_config(group)):
            return
        record = {"name": extractor.name, "config": extractor.describe(), "key": extractor.cache_key()}
        atomic_write_json(path, record | ({"columns": list(columns)} if columns is not None else {}))
        self._configs.pop(group, None)

    def _group_config(self, group: Path) -> dict:
        if group not in self._configs:
            path = group / "config.json"
            try:
                self._configs[group] = json.loads(path.read_text()) if path.exists() else {}
            except (OSError, ValueError):
                self._configs[group] = {}  # `features verify` reports a damaged group; names are not worth failing a run
        return self._configs[group]

    def columns(self, extractor, width: int) -> list[str]:
        """The names of an extractor's `width` columns, prefixed by its label ("egemaps:
        loudness_sma3"), as the group recorded them; unnamed units (an embedding) or a group
        without names get their position ("wav2vec2 17")."""
        for root in [self.root, *self.shared_roots]:
            names = self._group_config(root / self.group_name(extractor)).get("columns")
            if isinstance(names, list) and len(names) == width:
                return [f"{extractor.label}: {name}" for name in names]
        return [f"{extractor.label} {i}" for i in range(width)]

    @staticmethod
    def storable(extractor, array: np.ndarray, source) -> np.ndarray:
        """The array in the extractor's storage dtype. Non-finite values are refused (naming the
        row); values float16 cannot hold are kept in float32 rather than turned into inf."""
        array = np.asarray(array)
        finite = np.isfinite(array)
        if not finite.all():
            row = int(np.argwhere(~finite)[0][0])
            raise ChallengeError(
                f"{source}: {extractor.name} produced {int((~finite).sum())} NaN/inf value(s), first in row {row} "
                "(time step or frame). Check the media file, or the model for this input; nothing was cached for it."
            )
        dtype = np.dtype(extractor.dtype)
        if dtype == np.float16 and array.size and float(np.abs(array).max()) > FLOAT16_MAX:
            dtype = np.dtype(np.float32)  # recorded in the metadata; readers cast to float32 anyway
        return np.ascontiguousarray(array, dtype=dtype)

    # ---- listing and verifying -----------------------------------------------------------
    def groups(self) -> list[StoreGroup]:
        found = []
        for root in [self.root, *self.shared_roots]:
            for folder in _group_folders(root):
                config_path = folder / "config.json"
                config = json.loads(config_path.read_text()) if config_path.exists() else {}
                metas = list(folder.glob("*/*.json"))
                size = sum(p.stat().st_size for p in folder.glob("*/*.npy"))
                found.append(StoreGroup(folder, config, len(metas), size))
        return found

    def entry_files(self) -> list[Path]:
        """Metadata files of every entry in the writable root (what `verify` walks)."""
        return [meta for folder in _group_folders(self.root) for meta in sorted(folder.glob("*/*.json"))]


def _group_folders(root: Path) -> Iterator[Path]:
    if root.exists():
        yield from sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("_"))


def check_entries(entries: Iterable[Path]) -> Iterator[tuple[Path, StoreEntry | None, str | None]]:
    """(metadata path, entry or None, problem or None) for each entry: structure, then checksum."""
    for meta_path in entries:
        try:
            meta = json.loads(meta_path.read_text())
            if not isinstance(meta, dict):
                raise ValueError(f"holds {type(meta).__name__}, not an object")
            entry = StoreEntry(meta_path.with_suffix(".npy"), meta)
        except (OSError, ValueError) as error:
            yield meta_path, None, f"unreadable metadata ({error})"
            continue
        try:
            if not entry.path.exists():
                raise DamagedEntry("array file missing")
            entry.check_structure()
            entry.check_checksum()
        except (DamagedEntry, OSError, ValueError) as error:
            yield meta_path, entry, str(error)
            continue
        yield meta_path, entry, None
