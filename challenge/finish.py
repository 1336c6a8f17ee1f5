"""The end of a run: score on validation, tune what is tuned after training (smoothing, AU
thresholds), write the plots and the official submission file, log them to the MLflow run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from challenge.config import RunConfig, RunResult
from challenge.progress import say
from tracks.base import Problem, TrackSpec


def finish_clips(spec, config, head, valid, test, run_id, params, provenance) -> RunResult:
    """Per-clip tracks: validation score, predictions table and scatter plot, then the test file."""
    import mlflow
    import pandas as pd

    from challenge.plots import predicted_vs_true

    prediction = head.predict(valid)
    score = spec.score(valid.targets, prediction)
    mlflow.log_metrics({"score": score.value, **{f"r.{k.replace(' ', '_')}": v for k, v in score.details.items()}})
    out = out_dir(config, spec, run_id)
    table = pd.DataFrame({"Filename": valid.ids})
    for j, label in enumerate(spec.labels):
        table[f"{label} true"], table[f"{label} predicted"] = valid.targets[:, j], prediction[:, j]
    table.to_csv(out / "validation_predictions.csv", index=False)
    predicted_vs_true(valid.targets, prediction, spec.labels, score.details, out / "predicted_vs_true.png")
    (out / "best_params.json").write_text(json.dumps({"params": params, "provenance": provenance, "score": score.value}, indent=1))
    submission = None
    if test is not None and len(test):
        submission = submit(config, lambda: spec.write_submission(out / "predictions.csv", test.ids, head.predict(test)))
    else:
        say("[yellow]no test clips found (test_data/raw/*.mp4): no submission written[/]")
    mlflow.log_artifacts(str(out))
    return RunResult(run_id, score.value, score.details, params, submission)


def submit(config: RunConfig, write) -> Path | None:
    """`write()` the validated submission, except for a control run: its predictions measure
    chance level and must never look uploadable."""
    if config.shuffle_labels:
        say("[yellow]control run (shuffled labels): no submission file is written; its score is the chance "
            "level every real run must beat[/]")
        return None
    path = write()
    say(f"submission validated: {path}")
    return path


def out_dir(config: RunConfig, spec: TrackSpec, run_id: str) -> Path:
    """The run's folder. A control run's is marked as such and holds no file to upload."""
    default = Path("submissions") / spec.name / (f"{run_id}-CONTROL" if config.shuffle_labels else run_id)
    out = Path(config.out) if config.out else default
    out.mkdir(parents=True, exist_ok=True)
    if config.shuffle_labels:
        (out / "CONTROL-RUN.txt").write_text("Control run with shuffled training labels: its reports measure chance level. "
                                             "Nothing in this folder is a submission.\n")
    return out


def finish_frames(spec, config, head, valid, test, run_id, params, provenance) -> RunResult:
    """Smoothing sigma (and AU thresholds) tuned on validation, then the test file."""
    import mlflow

    from challenge.frame_metrics import au_score_tuned
    from challenge.plots import confusion_matrix_plot
    from ensembles.smoothing import smooth_videos, tune_sigma

    if valid is None:
        return _submit_without_validation(spec, config, head, test, run_id, params, provenance)
    truth, outputs = valid.targets(), np.concatenate(head.predict(valid))
    if spec.problem == Problem.FRAME_MULTILABEL:  # thresholds tuned per AU for every candidate
        evaluate = lambda v: au_score_tuned(truth, v, spec.labels)  # noqa: E731
    else:
        evaluate = lambda v: (spec.score(truth, v), None)  # noqa: E731
    raw = evaluate(outputs)[0]
    sigma, by_sigma = tune_sigma(lambda v: evaluate(v)[0].value, outputs, valid.lengths)
    smoothed = smooth_videos(outputs, valid.lengths, sigma)
    score, thresholds = evaluate(smoothed)
    say(f"validation {spec.name}: {raw.value:.4f} unsmoothed, {score.value:.4f} with sigma {sigma:g} frames"
        + (" and per-AU thresholds" if thresholds is not None else ""))
    mlflow.log_metrics({"score": score.value, "score_unsmoothed": raw.value, "smoothing.sigma": sigma,
                        **{f"smoothing.score_sigma_{k:g}": v for k, v in by_sigma.items()},
                        **{f"detail.{k}": v for k, v in score.details.items()}})
    out = out_dir(config, spec, run_id)
    decide = decision(spec.problem, thresholds)
    if spec.problem == Problem.FRAME_CLASSIFICATION:
        labels = truth[:, 0].astype(int)
        confusion_matrix_plot(labels[labels >= 0], decide(smoothed)[labels >= 0], spec.labels, out / "confusion_matrix.png")
    (out / "best_params.json").write_text(json.dumps({
        "params": params, "provenance": provenance, "score": score.value, "score_unsmoothed": raw.value,
        "smoothing_sigma": sigma, "au_thresholds": None if thresholds is None else thresholds.tolist(),
    }, indent=1))
    submission = None
    if test is not None and len(test):
        submission = submit(config, lambda: write_frames_submission(spec, config, test.ids, head.predict(test), sigma, decide, out))
    mlflow.log_artifacts(str(out))
    return RunResult(run_id, score.value, score.details | {"unsmoothed": raw.value, "sigma": sigma}, params, submission)


def write_frames_submission(spec, config, video_ids, outputs, sigma, decide, out) -> Path:
    """Per test video outputs (a head's or an ensemble's), smoothed and decided, in the official file."""
    from challenge.data.affwild import LABELS, find_sample_file, read_test_names
    from ensembles.smoothing import smooth_videos
    from submissions.affwild import write_affwild

    decisions = {vid: decide(smooth_videos(o, [len(o)], sigma)) for vid, o in zip(video_ids, outputs)}
    root = Path(config.data)
    return write_affwild(spec.name, out / "predictions.txt", decisions, find_sample_file(root, spec.name), read_test_names(root, LABELS[spec.name]))


def _submit_without_validation(spec, config, head, test, run_id, params, provenance) -> RunResult:
    """No labelled validation for this track (CE zero-shot in the challenge): no smoothing is
    tuned and no score is claimed."""
    import mlflow

    say("[yellow]no labelled validation videos for this track: no score, no smoothing (sigma 0)[/]")
    out = out_dir(config, spec, run_id)
    (out / "best_params.json").write_text(json.dumps({"params": params, "provenance": provenance, "score": None}, indent=1))
    submission = submit(config, lambda: write_frames_submission(spec, config, test.ids, head.predict(test), 0.0, decision(spec.problem, None), out))
    mlflow.log_artifacts(str(out))
    return RunResult(run_id, float("nan"), {}, params, submission)


def decision(problem: Problem, thresholds):
    if problem == Problem.FRAME_CLASSIFICATION:
        return lambda outputs: outputs.argmax(1)
    if problem == Problem.FRAME_MULTILABEL:
        return lambda outputs: (outputs >= thresholds).astype(int)
    return lambda outputs: outputs
