"""Track smile-intensity: Neutral / Low / Medium / High per frame from the face (and voice)
features of each recording, through the shared per-frame pipeline (any per-frame head, GRU by
default; post-processing fitted on validation), scored on the held-out test recordings and
compared with a second human annotator against the reference annotator."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from challenge.config import RunConfig, RunResult
from challenge.errors import ChallengeError
from challenge.progress import say
from tracks.smiles.labels import SUBTLE_MODES, frame_intensities, intensity_names


def intensity_samples(root: Path, config: RunConfig):
    """(samples with per-frame reference labels [frames, 1], every annotator's labels by
    recording, reference annotator, cross-validation group by recording: its speaker where
    splits.csv names one, else the recording)."""
    from challenge.data.samples import Sample, Samples
    from challenge.media import video_frame_count, video_frame_rate
    from tracks.smiles.elan import ElanScheme, read_smiles_corpus

    recordings, reference = read_smiles_corpus(root, ElanScheme.load(Path(config.smiles.scheme)) if config.smiles.scheme else None)
    samples, annotators = Samples(), {}
    for r in recordings:
        n, fps = video_frame_count(r.video), video_frame_rate(r.video)
        annotators[r.id] = {who: frame_intensities(a, n, fps, config.smiles.subtle) for who, a in r.annotations.items()}
        samples.append(Sample(r.id, r.split, video=r.video, audio=r.video, labels=annotators[r.id][reference][:, None].astype(np.float32)))
    return samples, annotators, reference, {r.id: r.speaker or r.id for r in recordings}


def run_smile_intensity(spec, config: RunConfig) -> RunResult:
    """The run repeated over --seeds (default 3): one nested MLflow run per seed, and a parent run
    holding mean ± sd of every figure (challenge.run.protocols.over_seeds)."""
    from challenge.run.protocols import over_seeds

    return over_seeds(spec, config, lambda seeded: _run_seed(spec, seeded), primary="macro_f1")


def _run_seed(spec, config: RunConfig) -> RunResult:
    import mlflow
    from sklearn.metrics import cohen_kappa_score

    from challenge.frame_metrics import classification_score
    from challenge.heads import get_head
    from challenge.run.context import RunContext
    from challenge.run.prepare import prepare_features, prepare_media
    from challenge.run.protocols import checkpoint_root, hold_out
    from challenge.run.selection import fit_head
    from challenge.stores.tuning import tuning_key
    from tracks.smiles.analyses import classification_table, matrices_plot, model_vs_human_plot, recall_and_precision_matrices

    if config.smiles.subtle not in SUBTLE_MODES:
        raise ChallengeError(f"--subtle must be one of {', '.join(SUBTLE_MODES)}, not {config.smiles.subtle!r}")
    names = intensity_names(config.smiles.subtle)
    spec = dataclasses.replace(spec, labels=names, score=partial(classification_score, names=names))  # --subtle keep adds a class
    head_cls = get_head(config.head)
    context = RunContext(spec, config)
    samples, annotators, reference, groups = intensity_samples(Path(config.data), config)
    counts = samples.counts()
    if not all(counts.values()):
        raise ChallengeError(f"{config.data}/splits.csv: the track needs train, valid and test recordings; it has {counts}.")
    if head_cls.reads == "media":  # cnn-gru: detected crops through the track's loader; the frozen FER features beside it
        samples, splits, keys, features = prepare_media(spec, config, head_cls, samples)
    else:
        samples, splits, keys, extractors = prepare_features(spec, config, samples)
        if not any(e.modality != "audio" for e in extractors):
            raise ChallengeError("smile-intensity reads face frames: pass a visual extractor in --features (mae, fer).")
        features = splits
    train, valid, test = splits["train"], splits["valid"], splits["test"]
    protocol = f"{config.smiles.folds} grouped folds" if config.smiles.folds >= 2 else ""
    fingerprint, key = samples.fingerprint(), tuning_key(keys, head_cls, protocol)
    device = context.device
    with context.start(
        fingerprint,
        keys,
        name=context.default_name(spec.name) + f"-seed{config.seed}",
        params={"subtle": config.smiles.subtle, "folds": config.smiles.folds},
        tuning_key=key,
        reference_annotator=reference,
    ) as run:
        # selection, early stopping and the post-processing: on grouped folds of the train and
        # valid recordings, or with --folds 1 on the corpus's valid recordings
        cv = _dev_folds(config, train, valid, annotators, reference, groups) if config.smiles.folds >= 2 else None
        checkpoints = checkpoint_root(config) if head_cls.reads == "media" else None
        fitted = fit_head(
            spec,
            config,
            head_cls,
            _fold_fit(spec, config, head_cls, cv) if cv else hold_out(spec, config, head_cls, train, valid, device, checkpoints),
            fingerprint,
            key,
        )
        head, post = fitted.head, _fit_post(spec, fitted.head, cv, valid)
        if cv:
            mlflow.log_metric("cross_validated_macro_f1", float(fitted.value))
        predicted = {vid: post.apply(o, [len(o)]) for vid, o in zip(test.ids, head.predict(test))}
        test_ids = list(test.ids)
        truth = np.concatenate([annotators[k][reference] for k in test_ids])
        decided = np.concatenate([predicted[k] for k in test_ids])
        keep = truth >= 0
        out = run.out
        table = classification_table(truth[keep], decided[keep], names)
        table.to_csv(out / "test_scores.csv", index=False)
        recall, precision = recall_and_precision_matrices(truth[keep], decided[keep], len(names))
        pd.DataFrame(recall, index=names, columns=names).to_csv(out / "recall_matrix.csv")
        pd.DataFrame(precision, index=names, columns=names).to_csv(out / "precision_matrix.csv")
        matrices_plot(recall, precision, names, out / "recall_and_precision_matrices.png")
        macro = float(table.set_index("class").loc["macro", "f1"])
        kappa_model = float(cohen_kappa_score(truth[keep], decided[keep]))
        summary = {"macro_f1": macro, "kappa_model_vs_reference": kappa_model, "smoothing_sigma": post.sigma}
        # the second annotator, on the test recordings they annotated: same frames, same reference
        humans = sorted({w for k in test_ids for w in annotators[k]} - {reference})
        for human in humans[:1]:
            both = [k for k in test_ids if human in annotators[k]]
            ref = np.concatenate([annotators[k][reference] for k in both])
            hum = np.concatenate([annotators[k][human] for k in both])
            mod = np.concatenate([predicted[k] for k in both])
            scored = (ref >= 0) & (hum >= 0)
            model_table = classification_table(ref[scored], mod[scored], names)
            human_table = classification_table(ref[scored], hum[scored], names)
            side = pd.DataFrame(
                {
                    "class": names,
                    "model precision": model_table["precision"][: len(names)],
                    "human precision": human_table["precision"][: len(names)],
                    "model recall": model_table["recall"][: len(names)],
                    "human recall": human_table["recall"][: len(names)],
                }
            )
            side.to_csv(out / "model_vs_human.csv", index=False)
            model_vs_human_plot(side, out / "model_vs_human.png")
            summary |= {
                "human": human,
                "frames_compared": int(scored.sum()),
                "kappa_model_vs_reference_same_frames": float(cohen_kappa_score(ref[scored], mod[scored])),
                "kappa_human_vs_reference": float(cohen_kappa_score(ref[scored], hum[scored])),
            }
        # the baseline on features: the run's own, or beside cnn-gru the frozen FER network's, on the same folds and frames
        feature_cv = (
            cv
            if features is splits or cv is None
            else _dev_folds(config, features["train"], features["valid"], annotators, reference, groups)
        )
        baseline = _baseline_on_test(
            spec, config, macro, features["train"], features["valid"], features["test"], truth[keep], keep, names, feature_cv
        )
        if baseline is not None:
            summary |= {"baseline_macro_f1": baseline.score, "gain_over_baseline": baseline.gain}
        mlflow.log_metrics({"score": macro, **{k: v for k, v in summary.items() if isinstance(v, float)}})
        run.record(fitted.params, fitted.provenance)
        (out / "scores.json").write_text(json.dumps(summary, indent=1))
        (out / "post_processing.json").write_text(json.dumps(post.state(), indent=1))
        mlflow.log_artifacts(str(out))
        run.save_model(head, post, train.normaliser, keys)
    say(
        f"test frames: macro F1 {macro:.4f}, kappa model-vs-reference {kappa_model:.4f}"
        + (
            f", human-vs-reference {summary['kappa_human_vs_reference']:.4f} ({summary['human']}, {summary['frames_compared']} frames)"
            if "human" in summary
            else ""
        )
    )
    result = RunResult(run.run_id, macro, {k: v for k, v in summary.items() if isinstance(v, float)}, fitted.params, None)
    result.trials_run, result.tuned, result.baseline = fitted.ran, fitted.from_study, baseline
    return result


@dataclass
class DevFolds:
    """The train and valid recordings pooled, the truth they are scored on, and each one's fold."""

    dev: object  # FrameFeatures; its labels are what models learn from (another recording's in a control run)
    truth: list[np.ndarray]
    folds: np.ndarray


def _dev_folds(config: RunConfig, train, valid, annotators: dict, reference: str, groups: dict) -> DevFolds:
    from challenge.training.control import shuffled
    from challenge.training.grouped_folds import grouped_folds

    dev = type(train).join([train, valid])  # features (FrameFeatures) or cnn-gru's crops (FaceCrops)
    truth = [annotators[k][reference][:, None].astype(np.float32) for k in dev.ids]
    dev.labels = shuffled(truth, config.seed) if config.shuffle_labels else truth
    what = "speakers" if any(groups[k] != k for k in dev.ids) else "recordings"
    folds = grouped_folds([groups[k] for k in dev.ids], np.zeros(len(dev)), config.smiles.folds, config.seed, what)
    say(f"{len(dev)} train+valid recordings of {len(set(groups[k] for k in dev.ids))} {what} in {config.smiles.folds} grouped folds")
    return DevFolds(dev, truth, folds)


def _fold_fit(spec, config: RunConfig, head_cls, cv: DevFolds):
    """fit(params, report) -> (out-of-fold score, the K fold models), what fit_head tunes."""
    from challenge.features.base import resolve_device
    from challenge.training.frame_folds import cross_validate_frames

    device = resolve_device(config.device)
    score_value = lambda t, o: spec.score(t, o).value  # noqa: E731

    def fit(params: dict, report=None):
        return cross_validate_frames(
            head_cls, params, spec.problem, len(spec.labels), cv.dev, cv.truth, cv.folds, config.seed, score_value, device, report
        )

    return fit


def _fit_post(spec, head, cv: DevFolds | None, valid):
    """Smoothing fitted on the out-of-fold outputs (folds) or on the valid recordings."""
    from challenge.postprocess import PostProcess

    post = PostProcess.for_track(spec)
    if cv is not None:
        post.fit(spec, np.concatenate(cv.truth), np.concatenate(head.out_of_fold), cv.dev.lengths)
    else:
        post.fit(spec, valid.targets(), np.concatenate(head.predict(valid)), valid.lengths)
    return post


def _baseline_on_test(
    spec,
    config: RunConfig,
    head_macro: float,
    train,
    valid,
    test,
    truth: np.ndarray,
    keep: np.ndarray,
    names: list[str],
    cv: DevFolds | None,
):
    """Logistic regression on the same frame features, fitted and post-processed as the head is
    (the same grouped folds, or train and valid), scored on the same test frames; None when the
    head is that baseline."""
    from challenge.heads import get_head
    from challenge.run.baseline import fit_baseline, record_baseline
    from tracks.smiles.analyses import classification_table

    if config.head == "logistic":
        return None
    if cv is not None:
        _, head = _fold_fit(spec, config, get_head("logistic"), cv)({})
        post = _fit_post(spec, head, cv, valid)
    else:
        head, post, _ = fit_baseline(spec, train, valid, config.seed)
    decided = np.concatenate([post.apply(o, [len(o)]) for o in head.predict(test)])
    macro = float(classification_table(truth, decided[keep], names).set_index("class").loc["macro", "f1"])
    return record_baseline("logistic", head_macro, macro)
