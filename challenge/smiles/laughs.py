"""Track smile-laugh: Laughs / Smiles / None per 1.2 s clip, audio-only, visual-only and late
fusion of the two, trained on one corpus, scored on its held-out part and zero-shot on another."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from challenge.config import RunConfig, RunResult, resolved_yaml
from challenge.errors import ChallengeError
from challenge.progress import say
from challenge.smiles.labels import CLASSES, INTENSITY_ROWS, cut_clips


def corpus_clips(root: Path, config: RunConfig):
    """(recordings, reference annotator, clips by split, features, widths, feature keys) of one corpus."""
    from challenge.data.elan import ElanScheme, read_smiles_corpus
    from challenge.media import video_frame_count, video_frame_rate
    from challenge.smiles.features import recording_features

    recordings, reference = read_smiles_corpus(root, ElanScheme.load(Path(config.smiles.scheme)) if config.smiles.scheme else None)
    clips = {}
    for r in recordings:
        duration = video_frame_count(r.video) / video_frame_rate(r.video)
        clips.setdefault(r.split, []).extend(cut_clips(r.id, r.annotations[reference], duration, config.smiles.clip_length, config.smiles.clip_hop))
    features, widths, keys = recording_features(recordings, config)
    return recordings, reference, clips, features, widths, keys


def read_recordings(root: Path, on_missing: str = "error"):
    """The corpus's recordings as samples (for `challenge features extract`)."""
    from challenge.data.elan import read_smiles_corpus
    from challenge.smiles.features import recording_samples

    return recording_samples(read_smiles_corpus(Path(root))[0])


def run_smile_laugh(spec, config: RunConfig) -> RunResult:
    import mlflow

    from challenge import tracking
    from challenge.features.base import resolve_device
    from challenge.finish import out_dir
    from challenge.heads import get_head
    from challenge.postprocess import PostProcess
    from challenge.runner import fit_head
    from challenge.saved_model import save_model
    from challenge.seeding import seed_everything
    from challenge.smiles.features import PooledClips
    from challenge.training.control import shuffled
    from challenge.tuning import tuning_key

    head_cls = get_head(config.head)
    seed_everything(config.seed)
    recordings, reference, clips, features, widths, keys = corpus_clips(Path(config.data), config)
    for split in ("train", "valid", "test"):
        if not clips.get(split):
            raise ChallengeError(f"{config.data}/splits.csv: no {split} recordings; the track needs train, valid (early stopping) and test (held-out scores).")
    modalities = [m for m in ("audio", "visual") if m in widths]
    evaluation = {"held-out": (clips["test"], features)}
    if config.smiles.eval_data:
        _, _, other_clips, other_features, _, _ = corpus_clips(Path(config.smiles.eval_data), config)
        evaluation["zero-shot"] = ([c for split in other_clips.values() for c in split], other_features)
    # every clip set's pooled features, read once: training, tuning and the reports reuse them
    sets = {"train": (clips["train"], features), "valid": (clips["valid"], features), **evaluation}
    data = {name: PooledClips.of(feats, cs, modalities) for name, (cs, feats) in sets.items()}
    normaliser = data["train"].fit_normalisation()
    for part in data.values():
        part.normalise_with(normaliser)
    fingerprint = _clips_fingerprint(recordings, data, config)
    if config.shuffle_labels:  # control: each training clip takes another clip's label
        data["train"].targets = shuffled(data["train"].targets, config.seed)
    key = tuning_key(keys, head_cls)
    experiment = tracking.setup(config.tracking_uri, spec.name)
    with mlflow.start_run(experiment_id=experiment, run_name=f"{spec.name}-{config.head}-{'+'.join(config.features)}{'-shuffled' if config.shuffle_labels else ''}") as run:
        mlflow.set_tags(tracking.run_tags("track", spec.name, config, config.head, fingerprint, keys, tuning_key=key, reference_annotator=reference))
        mlflow.log_params({"features": ",".join(config.features), "head": config.head, "seed": config.seed, "tune": config.tune,
                           "clip_length": config.smiles.clip_length, "clip_hop": config.smiles.clip_hop,
                           "eval_data": config.smiles.eval_data or "", **{f"clips.{s}": len(c) for s, c in clips.items()}})
        mlflow.log_text(resolved_yaml(config), "resolved_config.yaml")
        fitted = fit_head(spec, config, head_cls, data["train"], data["valid"], fingerprint, key, resolve_device(config.device))
        head = fitted.head
        out = out_dir(config, spec, run.info.run_id)
        summary = {}
        for where, (eval_clips, _) in evaluation.items():
            outputs = head.predict_each(data[where])
            embeddings = head.embed(data[where]) if hasattr(head, "embed") and len(outputs) > 1 else None
            summary[where] = _report(where, data[where].targets, outputs, eval_clips, embeddings, out, config.seed)
        (out / "scores.json").write_text(json.dumps(summary, indent=1))
        (out / "best_params.json").write_text(json.dumps({"params": fitted.params, "provenance": fitted.provenance}, indent=1))
        mlflow.log_params(tracking.flatten("head.", fitted.params))
        main = summary["held-out"]
        final = list(main)[-1]  # the fusion when there is one
        mlflow.log_metric("score", main[final]["macro_f1"])
        mlflow.log_artifacts(str(out))
        save_model(head, PostProcess.for_track(spec), normaliser, spec, config, keys)
    details = {f"{where} {m}": v["macro_f1"] for where, s in summary.items() for m, v in s.items()}
    result = RunResult(run.info.run_id, main[final]["macro_f1"], details, fitted.params, None)
    result.trials_run = fitted.ran
    return result


def _clips_fingerprint(recordings, data, config: RunConfig) -> str:
    """The data a study tunes on: the recordings, the clip windows and the labels."""
    import hashlib

    from challenge.smiles.features import recording_samples

    hasher = hashlib.sha256(f"{recording_samples(recordings).fingerprint()}/{config.smiles.clip_length}/{config.smiles.clip_hop}".encode())
    for name in ("train", "valid"):
        hasher.update(np.ascontiguousarray(data[name].targets, dtype=np.int64).tobytes())
    return hasher.hexdigest()[:16]


def _report(where: str, truth, outputs: dict, clips, embeddings, out: Path, seed: int) -> dict:
    import mlflow

    from challenge.plots import confusion_matrix_plot
    from challenge.smiles.reports import classification_table, intensity_heatmap, tsne_plot

    scores = {}
    tag = where.replace("-", "_")
    for modality, probabilities in outputs.items():
        decided = probabilities.argmax(1)
        table = classification_table(truth, decided, CLASSES)
        table.to_csv(out / f"{tag}_{modality}_scores.csv", index=False)
        macro, micro = table.set_index("class").loc["macro", "f1"], table.set_index("class").loc["micro", "f1"]
        scores[modality] = {"macro_f1": float(macro), "micro_f1": float(micro)}
        mlflow.log_metrics({f"{tag}.{modality}.macro_f1": macro, f"{tag}.{modality}.micro_f1": micro})
        say(f"{where} {modality:<12} macro F1 {macro:.4f}  micro F1 {micro:.4f}  ({len(truth)} clips)")
    final = "audiovisual" if "audiovisual" in outputs else next(iter(outputs))
    decided = outputs[final].argmax(1)
    confusion_matrix_plot(truth, decided, CLASSES, out / f"{tag}_{final}_confusion.png")
    intensities = [c.intensity for c in clips]
    intensity_heatmap(intensities, decided, INTENSITY_ROWS, CLASSES, out / f"{tag}_{final}_intensity_heatmap.png").to_csv(out / f"{tag}_{final}_intensity_heatmap.csv")
    if embeddings is not None:
        tsne_plot(embeddings, intensities, out / f"{tag}_tsne.png", seed)
    return scores
