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
    from challenge.seeding import seed_everything
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
        mlflow.set_tags({"challenge.kind": "track", "track": "smile-laugh", "head": "mlp-late-fusion", "features": ",".join(config.features),
                         "git_commit": tracking.git_commit(), "seed": config.seed, "shuffled_labels": config.shuffle_labels, "reference_annotator": reference})
        mlflow.log_params({"features": ",".join(config.features), "clip_length": config.clip_length, "clip_hop": config.clip_hop, "tune": False,
                           "eval_data": config.eval_data or "", **{f"clips.{s}": len(c) for s, c in clips.items()}})
        mlflow.log_text(yaml.safe_dump(asdict(config), sort_keys=False), "resolved_config.yaml")
        models, normalisers = {}, {}
        for modality in modalities:
            x = {s: pooled_clips(features, clips[s], modality) for s in ("train", "valid")}
            normalisers[modality] = Normaliser(x["train"])
            model = ClipClassifier(x["train"].shape[1], len(CLASSES))
            fit_clips(model, normalisers[modality](x["train"]), y["train"], normalisers[modality](x["valid"]), y["valid"], len(CLASSES), config.seed, params)
            models[modality] = model
        latent = lambda feats, cs: np.concatenate([embed_clips(models[m], normalisers[m](pooled_clips(feats, cs, m))) for m in modalities], 1)  # noqa: E731
        if len(modalities) == 2:  # late fusion: an MLP over the two trained models' last-layer latents
            z = {s: latent(features, clips[s]) for s in ("train", "valid")}
            fusion_norm = Normaliser(z["train"])
            fusion = ClipClassifier(z["train"].shape[1], len(CLASSES), hidden=32, latent=16)
            fit_clips(fusion, fusion_norm(z["train"]), y["train"], fusion_norm(z["valid"]), y["valid"], len(CLASSES), config.seed, params)
        out = Path(config.out) if config.out else Path("submissions") / "smile-laugh" / run.info.run_id
        out.mkdir(parents=True, exist_ok=True)
        summary = {}
        for where, (eval_clips, eval_features) in evaluation.items():
            truth = np.array([c.label for c in eval_clips])
            outputs = {m: predict_clips(models[m], normalisers[m](pooled_clips(eval_features, eval_clips, m))) for m in modalities}
            embeddings = None
            if len(modalities) == 2:
                embeddings = fusion_norm(latent(eval_features, eval_clips))
                outputs["audiovisual"] = predict_clips(fusion, embeddings)
            summary[where] = _report(where, truth, outputs, eval_clips, embeddings, out, config.seed)
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
