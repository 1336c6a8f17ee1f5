"""Track smile-intensity: Neutral / Low / Medium / High per frame from windows of face frames,
compared with a second human annotator against the reference annotator."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from challenge.config import RunConfig, RunResult
from challenge.errors import ChallengeError
from challenge.progress import say
from challenge.smiles.labels import SUBTLE_MODES, frame_intensities, intensity_names


def run_smile_intensity(config: RunConfig) -> RunResult:
    import mlflow
    from sklearn.metrics import cohen_kappa_score

    from challenge import tracking
    from challenge.finish import out_dir
    from challenge.data.elan import ElanScheme, read_smiles_corpus
    from challenge.media import video_frame_count, video_frame_rate
    from challenge.seeding import seed_everything
    from tracks import get_track
    from challenge.smiles.features import frame_matrix, recording_features
    from challenge.smiles.models import IntensityGRU, fit_frames, predict_frames
    from challenge.smiles.reports import classification_table, matrices_plot, model_vs_human_plot, recall_and_precision_matrices

    if config.subtle not in SUBTLE_MODES:
        raise ChallengeError(f"--subtle must be one of {', '.join(SUBTLE_MODES)}, not {config.subtle!r}")
    seed_everything(config.seed)
    names = intensity_names(config.subtle)
    recordings, reference = read_smiles_corpus(Path(config.data), ElanScheme.load(Path(config.scheme)) if config.scheme else None)
    features, widths = recording_features(recordings, config)
    if "visual" not in widths:
        raise ChallengeError("smile-intensity reads face frames: pass a visual extractor in --features (mae).")
    data = {}
    for r in recordings:
        n, fps = video_frame_count(r.video), video_frame_rate(r.video)
        x = frame_matrix(features[r.id], n)
        data[r.id] = (x, {who: frame_intensities(a, n, fps, config.subtle) for who, a in r.annotations.items()}, r.split)
    by_split = {s: [k for k, v in data.items() if v[2] == s] for s in ("train", "valid", "test")}
    if not all(by_split.values()):
        raise ChallengeError(f"{config.data}/splits.csv: the track needs train, valid and test recordings; it has {({k: len(v) for k, v in by_split.items()})}.")
    train_x = np.concatenate([data[k][0] for k in by_split["train"]])
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    norm = lambda k: ((data[k][0] - mean) / std).astype(np.float32)  # noqa: E731
    labels = lambda k: data[k][1][reference]  # noqa: E731
    train_labels = [labels(k) for k in by_split["train"]]
    if config.shuffle_labels:  # control: each training recording gets another one's label sequence
        order = np.roll(np.arange(len(train_labels)), 1)
        train_labels = [np.resize(train_labels[j], len(train_labels[i])) for i, j in enumerate(order)]
    experiment = tracking.setup(config.tracking_uri, "smile-intensity")
    with mlflow.start_run(experiment_id=experiment, run_name=f"smile-intensity-gru-{'+'.join(config.features)}{'-shuffled' if config.shuffle_labels else ''}") as run:
        mlflow.set_tags(tracking.run_tags("track", "smile-intensity", config, "gru", reference_annotator=reference))
        mlflow.log_params({"features": ",".join(config.features), "window": config.window, "subtle": config.subtle, "tune": False})
        mlflow.log_text(yaml.safe_dump(asdict(config), sort_keys=False), "resolved_config.yaml")
        model = IntensityGRU(widths["visual"], len(names))
        fit_frames(model, [norm(k) for k in by_split["train"]], train_labels, [norm(k) for k in by_split["valid"]],
                   [labels(k) for k in by_split["valid"]], len(names), config.window, config.seed, {"epochs": config.epochs} if config.epochs else {})
        predicted = {k: predict_frames(model, norm(k), config.window).argmax(1) for k in by_split["test"]}
        truth = np.concatenate([labels(k) for k in by_split["test"]])
        decided = np.concatenate([predicted[k] for k in by_split["test"]])
        keep = truth >= 0
        out = out_dir(config, get_track("smile-intensity"), run.info.run_id)
        table = classification_table(truth[keep], decided[keep], names)
        table.to_csv(out / "test_scores.csv", index=False)
        recall, precision = recall_and_precision_matrices(truth[keep], decided[keep], len(names))
        pd.DataFrame(recall, index=names, columns=names).to_csv(out / "recall_matrix.csv")
        pd.DataFrame(precision, index=names, columns=names).to_csv(out / "precision_matrix.csv")
        matrices_plot(recall, precision, names, out / "recall_and_precision_matrices.png")
        macro = float(table.set_index("class").loc["macro", "f1"])
        kappa_model = float(cohen_kappa_score(truth[keep], decided[keep]))
        summary = {"macro_f1": macro, "kappa_model_vs_reference": kappa_model}
        # the second annotator, on the test recordings they annotated: same frames, same reference
        humans = [who for who in {w for k in by_split["test"] for w in data[k][1]} if who != reference]
        for human in sorted(humans)[:1]:
            both = [k for k in by_split["test"] if human in data[k][1]]
            ref = np.concatenate([labels(k) for k in both])
            hum = np.concatenate([data[k][1][human] for k in both])
            mod = np.concatenate([predicted[k] for k in both])
            scored = (ref >= 0) & (hum >= 0)
            model_table = classification_table(ref[scored], mod[scored], names)
            human_table = classification_table(ref[scored], hum[scored], names)
            side = pd.DataFrame({"class": names, "model precision": model_table["precision"][: len(names)],
                                 "human precision": human_table["precision"][: len(names)], "model recall": model_table["recall"][: len(names)],
                                 "human recall": human_table["recall"][: len(names)]})
            side.to_csv(out / "model_vs_human.csv", index=False)
            model_vs_human_plot(side, out / "model_vs_human.png")
            summary |= {"human": human, "frames_compared": int(scored.sum()),
                        "kappa_model_vs_reference_same_frames": float(cohen_kappa_score(ref[scored], mod[scored])),
                        "kappa_human_vs_reference": float(cohen_kappa_score(ref[scored], hum[scored]))}
        mlflow.log_metrics({"score": macro, **{k: v for k, v in summary.items() if isinstance(v, float)}})
        (out / "scores.json").write_text(json.dumps(summary, indent=1))
        mlflow.log_artifacts(str(out))
    say(f"test frames: macro F1 {macro:.4f}, kappa model-vs-reference {kappa_model:.4f}"
        + (f", human-vs-reference {summary['kappa_human_vs_reference']:.4f} ({summary['human']}, {summary['frames_compared']} frames)" if "human" in summary else ""))
    return RunResult(run.info.run_id, macro, {k: v for k, v in summary.items() if isinstance(v, float)}, {}, None)
