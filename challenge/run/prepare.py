"""Data preparation shared by runs, ensembles and prediction: read the samples, extract every
feature once through the store, build each split's training data (clip sequences or frame
axes), normalise it, and apply the shuffled-label control."""

from __future__ import annotations

from pathlib import Path

from challenge.config import RunConfig
from challenge.errors import ChallengeError
from challenge.progress import say
from challenge.track import TrackSpec


def make_extractors(config: RunConfig):
    from challenge.features import make_extractor

    built = []
    for name in config.features:
        if name.startswith("provided-"):  # the organisers' two feature sets: one extractor, two kinds
            built.append(make_extractor("provided", **{**config.extractor_settings("provided"), "kind": name.removeprefix("provided-")}))
        else:
            built.append(make_extractor(name, **config.extractor_settings(name)))
    return built


def extract_all(samples, config: RunConfig, extractors=None):
    """Every configured extractor (or those given) over every sample, once; returns
    (store, extractors, digests, keys)."""
    from challenge.features import FeatureStore
    from challenge.features.extract import extract

    store = FeatureStore(config.store)
    extractors = make_extractors(config) if extractors is None else extractors
    digests = {}
    for extractor in extractors:
        digests[extractor.label] = extract(extractor, samples, store, device=config.device).digests
    return store, extractors, digests, feature_keys(extractors)


def feature_keys(extractors) -> dict[str, str]:
    """Extractor label -> its cache key (model content included), as runs are tagged with it."""
    return {extractor.label: extractor.cache_key()[:16] for extractor in extractors}


def read_samples(spec: TrackSpec, config: RunConfig):
    samples = spec.read(Path(config.data), on_missing="skip" if config.skip_missing else "error")
    if samples.skipped:
        say(f"[yellow]skipped {len(samples.skipped)} sample(s) without media (listed in the run's skipped.txt)[/]")
    return samples


def prepare_features(spec: TrackSpec, config: RunConfig, samples=None):
    """Samples, normalised per-split training data and the features' keys; extraction happens
    here, once. Returns (samples, splits, keys, extractors)."""
    samples = samples if samples is not None else read_samples(spec, config)
    store, extractors, digests, keys = extract_all(samples, config)
    build = split_builder(spec, config, samples)
    splits = {}
    for split in ("train", "valid", "test"):
        part = samples.split(split)
        if not part and split != "test":
            raise ChallengeError(f"{config.data}: the {split} split is empty.")
        splits[split] = build(part, extractors, store, digests) if part else None
    normaliser = splits["train"].fit_normalisation()
    for data in splits.values():
        if data is not None:
            data.normalise_with(normaliser)
    if config.shuffle_labels:
        shuffle_training_labels(spec, splits["train"], config.seed)
    return samples, splits, keys, extractors


def shuffle_training_labels(spec: TrackSpec, train, seed: int) -> None:
    """The control run: every training clip or video learns another one's labels."""
    from challenge.training.control import derangement, shuffled

    if spec.problem.per_frame:
        train.labels = shuffled(train.labels, seed)
    else:
        train.targets = shuffled(train.targets, seed)
        if getattr(train, "frame_targets", None) is not None:  # a video's frame labels go where its label went
            source = derangement(len(train.frame_targets), seed)
            train.frame_targets = [train.frame_targets[j] for j in source]


def prepare_media(spec: TrackSpec, config: RunConfig, head_cls, samples=None):
    """For an end-to-end head: each split's media through the loader the track supplies for the
    head's medium (waveform windows, face frames), and the frozen backbone's features through the
    store, for the linear baseline beside the fine-tuned model. Returns (samples, media splits,
    keys, feature splits)."""
    loader = spec.media.get(head_cls.medium)
    if loader is None:
        media = ", ".join(sorted(spec.media)) or "none"
        raise ChallengeError(
            f"head {head_cls.name} reads {head_cls.medium} media, and the {spec.name} track supplies no {head_cls.medium} "
            f"loader (it supplies: {media})."
        )
    frozen = config.model_copy(update={"features": [head_cls.extractor]})
    samples, features, keys, _ = prepare_features(spec, frozen, samples)
    lengths = frame_lengths(spec, config, samples) if spec.problem.per_frame else None
    splits = {split: loader(samples.split(split), lengths) if samples.split(split) else None for split in ("train", "valid", "test")}
    if config.shuffle_labels:
        shuffle_training_labels(spec, splits["train"], config.seed)
    return samples, splits, keys, features


def frame_lengths(spec: TrackSpec, config: RunConfig, samples) -> dict[str, int]:
    """Frames per video: its label rows, or for an unlabelled test video the organisers' sample file's count."""
    unlabelled = [s for s in samples if s.labels is None]
    test_frames = spec.test_frames(Path(config.data)) if unlabelled and spec.test_frames is not None else {}
    lengths = {s.id: len(s.labels) if s.labels is not None else test_frames.get(s.id, 0) for s in samples}
    missing = [s.id for s in samples if lengths[s.id] == 0]
    if missing:
        raise ChallengeError(
            f"test video(s) {missing[:10]} have no frame count: they are not in the organisers' sample file "
            "(check names_of_videos_in_each_test_set)."
        )
    return lengths


def split_builder(spec: TrackSpec, config: RunConfig, samples):
    """(part, extractors, store, digests) -> the head's data: clip sequences or frame axes."""
    if not spec.problem.per_frame:
        from challenge.training.inputs import clip_features

        return clip_features
    from challenge.media import video_frame_rate
    from challenge.training.frame_data import frame_features

    all_lengths = frame_lengths(spec, config, samples)
    rates = {s.video: video_frame_rate(s.video) for s in samples if s.video is not None}

    def build(part, extractors, store, digests):
        lengths = {s.id: all_lengths[s.id] for s in part}
        fps = {s.id: rates.get(s.video, 30.0) for s in part}
        data = frame_features(part, extractors, store, digests, lengths, fps)
        filled = data.filled_frames()
        if filled:
            say(f"{part[0].split}: {filled} of {sum(data.lengths)} frames have no face crop; they take the nearest frame's features")
        return data

    return build
