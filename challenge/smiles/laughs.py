"""Track smile-laugh: Laughs / Smiles / None per 1.2 s clip, audio-only, visual-only and late
fusion of the two, trained on one corpus, scored on its held-out part and zero-shot on another."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import yaml

from challenge.config import RunConfig, RunResult
from challenge.errors import ChallengeError
from challenge.progress import say
from challenge.smiles.labels import CLASSES, INTENSITY_ROWS, cut_clips


def corpus_clips(root: Path, config: RunConfig):
    """(recordings, reference annotator, clips by split, features, widths) of one corpus."""
    from challenge.data.elan import ElanScheme, read_smiles_corpus
    from challenge.media import video_frame_count, video_frame_rate
    from challenge.smiles.features import recording_features

    recordings, reference = read_smiles_corpus(root, ElanScheme.load(Path(config.scheme)) if config.scheme else None)
    clips = {}
    for r in recordings:
        duration = video_frame_count(r.video) / video_frame_rate(r.video)
        clips.setdefault(r.split, []).extend(cut_clips(r.id, r.annotations[reference], duration, config.clip_length, config.clip_hop))
    features, widths = recording_features(recordings, config)
    return recordings, reference, clips, features, widths


class Normaliser:
    def __init__(self, x: np.ndarray):
        self.mean, self.std = x.mean(0), x.std(0) + 1e-6

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean) / self.std).astype(np.float32)


def run_smile_laugh(config: RunConfig) -> RunResult:
    import mlflow

    from challenge import tracking
    from challenge.finish import out_dir
    from challenge.seeding import seed_everything
    from tracks import get_track
    from challenge.smiles.features import pooled_clips
    from challenge.smiles.models import ClipClassifier, embed_clips, fit_clips, predict_clips

    seed_everything(config.seed)
    recordings, reference, clips, features, widths = corpus_clips(Path(config.data), config)
    for split in ("train", "valid", "test"):
        if not clips.get(split):
            raise ChallengeError(f"{config.data}/splits.csv: no {split} recordings; the track needs train, valid (early stopping) and test (held-out scores).")
    modalities = [m for m in ("audio", "visual") if m in widths]
    y = {s: np.array([c.label for c in clips[s]]) for s in clips}
    if config.shuffle_labels:  # control: training clips get the labels of other clips
        y["train"] = np.random.default_rng(config.seed).permutation(y["train"])
    evaluation = {"held-out": (clips["test"], features)}
    if config.eval_data:
        _, _, other_clips, other_features, _ = corpus_clips(Path(config.eval_data), config)
        evaluation["zero-shot"] = ([c for split in other_clips.values() for c in split], other_features)
    params = {"epochs": config.epochs} if config.epochs else {}
    experiment = tracking.setup(config.tracking_uri, "smile-laugh")
    with mlflow.start_run(experiment_id=experiment, run_name=f"smile-laugh-{'+'.join(config.features)}{'-shuffled' if config.shuffle_labels else ''}") as run:
        mlflow.set_tags(tracking.run_tags("track", "smile-laugh", config, "mlp-late-fusion", reference_annotator=reference))
        mlflow.log_params({"features": ",".join(config.features), "clip_length": config.clip_length, "clip_hop": config.clip_hop, "tune": False,
                           "eval_data": config.eval_data or "", **{f"clips.{s}": len(c) for s, c in clips.items()}})
        mlflow.log_text(yaml.safe_dump(asdict(config), sort_keys=False), "resolved_config.yaml")
        # every clip set's pooled features, read once: each model, the fusion and the reports reuse them
        sets = {"train": (clips["train"], features), "valid": (clips["valid"], features), **evaluation}
        pooled = {name: {m: pooled_clips(feats, cs, m) for m in modalities} for name, (cs, feats) in sets.items()}
        models = {}
        for modality in modalities:
            normalise = Normaliser(pooled["train"][modality])
            for name in pooled:
                pooled[name][modality] = normalise(pooled[name][modality])
            model = ClipClassifier(pooled["train"][modality].shape[1], len(CLASSES))
            fit_clips(model, pooled["train"][modality], y["train"], pooled["valid"][modality], y["valid"], len(CLASSES), config.seed, params)
            models[modality] = model
        fused = len(modalities) == 2
        if fused:  # late fusion: an MLP over the two trained models' last-layer latents
            latents = {name: np.concatenate([embed_clips(models[m], x[m]) for m in modalities], 1) for name, x in pooled.items()}
            normalise = Normaliser(latents["train"])
            latents = {name: normalise(z) for name, z in latents.items()}
            fusion = ClipClassifier(latents["train"].shape[1], len(CLASSES), hidden=32, latent=16)
            fit_clips(fusion, latents["train"], y["train"], latents["valid"], y["valid"], len(CLASSES), config.seed, params)
        out = out_dir(config, get_track("smile-laugh"), run.info.run_id)
        summary = {}
        for where, (eval_clips, _) in evaluation.items():
            truth = np.array([c.label for c in eval_clips])
            outputs = {m: predict_clips(models[m], pooled[where][m]) for m in modalities}
            if fused:
                outputs["audiovisual"] = predict_clips(fusion, latents[where])
            summary[where] = _report(where, truth, outputs, eval_clips, latents[where] if fused else None, out, config.seed)
        (out / "scores.json").write_text(json.dumps(summary, indent=1))
        mlflow.log_artifacts(str(out))
    main = summary["held-out"]
    best = "audiovisual" if "audiovisual" in main else modalities[0]
    details = {f"{where} {m}": v["macro_f1"] for where, s in summary.items() for m, v in s.items()}
    return RunResult(run.info.run_id, main[best]["macro_f1"], details, {}, None)


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
