"""Filling the store: decoding overlaps the forward pass, writing happens in the background.

    worker threads: prepare (decode, resample, resize)  ──▶ main thread: forward ──▶ writer thread

A per-entry lock is taken before the forward pass and released by the writer after the atomic
write, so two processes never compute the same entry; an entry another process holds is left
for last, by which time it is usually a hit.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from filelock import Timeout

from challenge.errors import ChallengeError, list_offenders
from challenge.features.base import Extractor, resolve_device
from challenge.progress import progress_bar, say, warn
from challenge.stores.feature_store import FeatureStore


@dataclass
class ExtractionReport:
    extractor: str
    computed: int = 0
    cached: int = 0
    missing_media: list[str] = field(default_factory=list)  # sample ids without this media
    failed: list[str] = field(default_factory=list)  # "path: reason" for media that failed
    digests: dict[str, str] = field(default_factory=dict)  # sample id -> media digest


def media_digests(extractor: Extractor, samples, store: FeatureStore, report: ExtractionReport) -> dict[str, Path]:
    """Map digest -> source for every sample that has this extractor's media."""
    sources = {}
    for sample in samples:
        source = extractor.source(sample)
        if source is None:
            report.missing_media.append(sample.id)
            continue
        digest = store.media_digest(source)
        report.digests[sample.id] = digest
        sources.setdefault(digest, source)
    return sources


def extract(extractor: Extractor, samples, store: FeatureStore, device: str = "auto", workers: int = 2) -> ExtractionReport:
    report = ExtractionReport(extractor.name)
    sources = media_digests(extractor, samples, store, report)
    todo = [(d, s) for d, s in sources.items() if not store.has(extractor, d)]
    report.cached = len(sources) - len(todo)
    if samples and not sources:
        raise ChallengeError(
            f"{extractor.name}: none of the {len(samples)} sample(s) has the media it reads"
            f"{f' ({extractor.reads})' if extractor.reads else ''}. Drop it from --features, or add that media."
        )
    if report.missing_media:
        say(
            f"[yellow]{extractor.name}: {len(report.missing_media)} sample(s) have no media for this extractor "
            f"(for example {', '.join(report.missing_media[:5])}); they get no {extractor.name} features.[/]"
        )
    damaged = [reason for digest, _ in todo if (reason := store.damaged(extractor, digest))]
    if damaged:
        warn(
            f"{extractor.name}: {len(damaged)} damaged cache entr{'y' if len(damaged) == 1 else 'ies'} "
            f"will be computed again:\n{list_offenders(damaged)}"
        )
    if not todo:
        say(f"{extractor.name}: all {len(sources)} entries cached")
        return report
    extract_sources(extractor, todo, store, device, workers, report)
    say(f"{extractor.name}: computed {report.computed}, cached {report.cached}")
    return report


def extract_sources(
    extractor: Extractor,
    todo: list[tuple[str, Path]],
    store: FeatureStore,
    device: str = "auto",
    workers: int = 2,
    report: ExtractionReport | None = None,
    replace: bool = False,
) -> ExtractionReport:
    """Compute and store the entries of (media digest, media path) pairs. `replace`: write over
    entries already there (a repair: each is replaced atomically, never removed first)."""
    report = report or ExtractionReport(extractor.name)
    runner = extractor.build(resolve_device(device))
    _run_pipeline(extractor, runner, todo, store, workers, report, replace)
    return report


def _run_pipeline(extractor, runner, todo, store, workers, report, replace=False) -> None:
    writes: queue.Queue = queue.Queue(maxsize=8)
    errors: list[BaseException] = []
    writer = threading.Thread(target=_write_loop, args=(extractor, store, writes, errors), daemon=True)
    writer.start()
    deferred = []
    try:
        with ThreadPoolExecutor(max_workers=workers) as pool, progress_bar(f"extract {extractor.name}", len(todo)) as advance:
            pending = deque()
            items = iter(todo)
            for digest, source in items:  # keep a few decodes ahead of the model
                pending.append((digest, source, pool.submit(runner.prepare, source)))
                if len(pending) >= workers + 1:
                    break
            while pending:
                digest, source, future = pending.popleft()
                nxt = next(items, None)
                if nxt is not None:
                    pending.append((nxt[0], nxt[1], pool.submit(runner.prepare, nxt[1])))
                if errors:
                    raise errors[0]
                lock = store.lock(extractor, digest)
                try:
                    lock.acquire(timeout=0)
                except Timeout:
                    deferred.append((digest, source, future))
                    continue
                _compute_one(extractor, runner, store, digest, source, future, lock, writes, report, replace)
                advance()
            for digest, source, future in deferred:  # another process held these: wait for it
                lock = store.lock(extractor, digest)
                lock.acquire()
                _compute_one(extractor, runner, store, digest, source, future, lock, writes, report, replace)
                advance()
    finally:
        writes.put(None)
        writer.join()
    if errors:
        raise errors[0]
    if report.failed:
        # every good entry is already written: a rerun after fixing these resumes from here
        raise ChallengeError(
            f"{extractor.name}: {len(report.failed)} media file(s) could not be processed "
            f"({report.computed} others were extracted and cached):\n{list_offenders(report.failed)}"
        )


def _compute_one(extractor, runner, store, digest, source, future, lock, writes, report, replace=False) -> None:
    if not replace and store.has(extractor, digest):
        lock.release()
        report.cached += 1
        return
    try:
        features = runner.forward(future.result())
    except ChallengeError as error:
        lock.release()
        report.failed.append(str(error))
        return
    except BaseException:
        lock.release()
        raise
    if features.array.ndim != 2 or len(features.array) == 0:
        lock.release()
        raise ChallengeError(f"{source}: {extractor.name} produced no features (shape {features.array.shape}).")
    try:
        array = store.storable(extractor, features.array, source)
    except ChallengeError as error:  # NaN/inf: this file fails, the others go on
        lock.release()
        report.failed.append(str(error))
        return
    # absolute: a repair or a reader started in another directory finds the media again
    meta = {"source": str(Path(source).resolve()), "frame_rate": features.frame_rate, "index": features.index}
    if features.columns is not None:
        meta["columns"] = list(features.columns)  # the store moves them to the group's config.json
    writes.put((digest, array, meta, lock))
    report.computed += 1


def _write_loop(extractor, store, writes, errors) -> None:
    while (item := writes.get()) is not None:
        digest, array, meta, lock = item
        try:
            if not errors:
                store.write(extractor, digest, array, meta)  # checked by storable in _compute_one
        except BaseException as error:  # noqa: BLE001 - surfaced by the main thread
            errors.append(error)
        finally:
            lock.release()


def extract_for_track(
    track: str,
    data: Path,
    extractor: str,
    options: dict,
    store: str | None = None,
    device: str = "auto",
    shard: tuple[int, int] | None = None,
    skip_missing: bool = False,
) -> tuple[Extractor, ExtractionReport, list[str]]:
    """`challenge features extract`: one extractor over the media a track's reader lists (shard
    I of N of them), into the store. Returns (extractor, report, samples skipped for lack of media)."""
    from challenge.features.base import make_extractor
    from challenge.registry import get_track

    samples = get_track(track).read(Path(data), on_missing="skip" if skip_missing else "error")
    if shard is not None:
        samples = samples.shard(*shard)
    config = make_extractor(extractor, **{k: v for k, v in options.items() if v is not None})
    return config, extract(config, samples, FeatureStore(store), device=device), samples.skipped
