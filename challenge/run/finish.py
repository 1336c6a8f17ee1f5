"""The end of a run: score on validation, fit the post-processing (smoothing, decision rule, AU
thresholds), write the plots and the official submission file, log them to the MLflow run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from challenge.config import RunConfig, RunResult
from challenge.postprocess import PostProcess
from challenge.progress import say
from challenge.run.importance import report_importance
from challenge.track import Problem, TrackSpec


def finish(
    spec: TrackSpec, config: RunConfig, head, post: PostProcess, valid, test, run_id, params, provenance, valid_outputs=None
) -> RunResult:
    """`valid_outputs`: the protocol's outputs on the valid split (grouped folds: each clip's by
    the fold model that did not train on it); None: the head's predictions there."""
    if spec.problem.per_frame:
        return finish_frames(spec, config, head, post, valid, test, run_id, params, provenance)
    return finish_clips(spec, config, head, post, valid, test, run_id, params, provenance, valid_outputs)


def finish_clips(spec, config, head, post, valid, test, run_id, params, provenance, valid_outputs=None) -> RunResult:
    """Per-clip tracks: validation score, predictions table and scatter plot, then the test file."""
    import mlflow
    import pandas as pd

    from challenge.plots import predicted_vs_true

    prediction = head.predict(valid) if valid_outputs is None else valid_outputs
    classes = spec.problem == Problem.CLIP_CLASSIFICATION
    score = post.fit(spec, valid.targets, prediction, [1] * len(valid)) if classes else spec.score(valid.targets, prediction)
    mlflow.log_metrics({"score": score.value, **{f"r.{k.replace(' ', '_')}": v for k, v in score.details.items()}})
    out = out_dir(config, spec, run_id)
    if classes:
        _class_report(spec, post, valid, prediction, out)
        if post.score_at_half is not None:  # the summary shows what the tuned threshold changed
            score.details.update({"threshold (tuned on validation)": post.threshold, "score at 0.5": post.score_at_half})
        mlflow.log_metrics(
            {"threshold": post.threshold, **({"score_at_0.5": post.score_at_half} if post.score_at_half is not None else {})}
        )
    else:
        table = pd.DataFrame({"Filename": valid.ids})
        for j, label in enumerate(spec.labels):
            table[f"{label} true"], table[f"{label} predicted"] = valid.targets[:, j], prediction[:, j]
        table.to_csv(out / "validation_predictions.csv", index=False)
        predicted_vs_true(valid.targets, prediction, spec.labels, score.details, out / "predicted_vs_true.png")
    _record(out, params, provenance, post, score=score.value)
    if line := report_importance(head, valid, out):
        say(line)
    submission = None
    test_outputs = head.predict(test) if test is not None and len(test) else None
    save_outputs(
        out, valid.ids, [1] * len(valid), valid.targets, prediction, test, None if test_outputs is None else list(test_outputs[:, None])
    )
    if test_outputs is not None:
        decided = post.calibrate(test_outputs) if classes else post.apply(test_outputs, [1] * len(test))
        submission = submit(config, lambda: spec.write_submission(Path(config.data), out, test.ids, decided))
    else:
        say(f"[yellow]no test {spec.items} found: no submission written[/]")
    mlflow.log_artifacts(str(out))
    return RunResult(run_id, score.value, score.details, params, submission)


def _class_report(spec: TrackSpec, post: PostProcess, valid, probabilities, out: Path) -> None:
    """A clip classification run's validation table (probabilities, decision) and confusion matrix."""
    import pandas as pd

    from challenge.plots import confusion_matrix_plot

    truth = np.asarray(valid.targets).reshape(-1).astype(int)
    decided = post.decide(post.calibrate(probabilities))
    table = pd.DataFrame({"id": valid.ids, "true": truth})
    for j, label in enumerate(spec.labels):
        table[f"p {label}"] = probabilities[:, j]
    table["predicted"] = decided
    table.to_csv(out / "validation_predictions.csv", index=False)
    confusion_matrix_plot(truth, decided, spec.labels, out / "confusion_matrix.png")
    if post.score_at_half is not None:
        say(f"threshold tuned on validation: {post.threshold:.2f} (validation {spec.metric}: {post.score_at_half:.4f} at 0.5)")


def finish_frames(spec, config, head, post, valid, test, run_id, params, provenance) -> RunResult:
    """Post-processing fitted on validation, then the test file."""
    import mlflow

    from challenge.plots import confusion_matrix_plot

    if valid is None:
        return _submit_without_validation(spec, config, head, post, test, run_id, params, provenance)
    truth, outputs = valid.targets(), np.concatenate(head.predict(valid))
    raw = post.score(spec, truth, outputs)
    score = post.fit(spec, truth, outputs, valid.lengths)
    say(
        f"validation {spec.name}: {raw.value:.4f} unsmoothed, {score.value:.4f} with sigma {post.sigma:g} frames"
        + (" and per-AU thresholds" if post.thresholds is not None else "")
        + (f" and threshold {post.threshold:.2f} (tuned on these frames)" if post.score_at_half is not None else "")
    )
    mlflow.log_metrics(
        {
            "score": score.value,
            "score_unsmoothed": raw.value,
            "smoothing.sigma": post.sigma,
            **{f"smoothing.score_sigma_{k:g}": v for k, v in post.scores_by_sigma.items()},
            **{f"detail.{k}": v for k, v in score.details.items()},
        }
    )
    out = out_dir(config, spec, run_id)
    if spec.problem == Problem.FRAME_CLASSIFICATION:
        labels = truth[:, 0].astype(int)
        decided = post.apply(outputs, valid.lengths)
        confusion_matrix_plot(labels[labels >= 0], decided[labels >= 0], spec.labels, out / "confusion_matrix.png")
    _record(out, params, provenance, post, score=score.value, score_unsmoothed=raw.value)
    submission = None
    test_outputs = head.predict(test) if test is not None and len(test) else None
    save_outputs(out, valid.ids, valid.lengths, truth, outputs, test, test_outputs)
    if test_outputs is not None:
        submission = submit(config, lambda: write_frames(spec, config, test.ids, test_outputs, post, out))
    mlflow.log_artifacts(str(out))
    return RunResult(run_id, score.value, score.details | {"unsmoothed": raw.value, "sigma": post.sigma}, params, submission)


def write_frames(spec: TrackSpec, config: RunConfig, video_ids, outputs, post: PostProcess, out: Path) -> Path:
    """Per test video outputs (a head's or an ensemble's), post-processed, in the official file."""
    decisions = [post.apply(o, [len(o)]) for o in outputs]
    return spec.write_submission(Path(config.data), out, video_ids, decisions)


def _submit_without_validation(spec, config, head, post, test, run_id, params, provenance) -> RunResult:
    """No labelled validation for this track (CE zero-shot in the challenge): nothing is fitted
    (sigma 0, default thresholds) and no score is claimed."""
    import mlflow

    say("[yellow]no labelled validation videos for this track: no score, no smoothing (sigma 0)[/]")
    out = out_dir(config, spec, run_id)
    _record(out, params, provenance, post, score=None)
    submission = submit(config, lambda: write_frames(spec, config, test.ids, head.predict(test), post, out))
    mlflow.log_artifacts(str(out))
    return RunResult(run_id, float("nan"), {}, params, submission)


OUTPUTS = "outputs.npz"  # a run's raw validation and test outputs: what `challenge ensemble --runs` combines


def save_outputs(out: Path, valid_ids, valid_lengths, truth, valid_outputs, test, test_outputs) -> None:
    """The head's raw outputs (before smoothing and decisions) on the validation rows, with
    their truth, and on the test items: rows of item i follow those of item i-1.
    `test_outputs`: one [rows, C] array per test item (or None without a test split)."""
    test_ids = list(test.ids) if test_outputs is not None else []
    test_rows = [np.asarray(o, dtype=np.float32) for o in test_outputs] if test_outputs is not None else []
    np.savez(
        out / OUTPUTS,
        valid_ids=np.asarray(valid_ids, dtype=str),
        valid_lengths=np.asarray(valid_lengths, dtype=np.int64),
        truth=np.asarray(truth, dtype=np.float64),
        valid=np.asarray(valid_outputs, dtype=np.float32),
        test_ids=np.asarray(test_ids, dtype=str),
        test_lengths=np.asarray([len(r) for r in test_rows], dtype=np.int64),
        test=np.concatenate(test_rows) if test_rows else np.zeros((0, np.shape(valid_outputs)[1]), np.float32),
    )


def _record(out: Path, params, provenance, post: PostProcess, **scores) -> None:
    (out / "best_params.json").write_text(json.dumps({"params": params, "provenance": provenance, **scores}, indent=1))
    (out / "post_processing.json").write_text(json.dumps(post.state(), indent=1))


def submit(config: RunConfig, write) -> Path | None:
    """`write()` the validated submission, except for a control run: its predictions measure
    chance level and must never look uploadable."""
    if config.shuffle_labels:
        say(
            "[yellow]control run (shuffled labels): no submission file is written; its score is the chance "
            "level every real run must beat[/]"
        )
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
        (out / "CONTROL-RUN.txt").write_text(
            "Control run with shuffled training labels: its reports measure chance level. Nothing in this folder is a submission.\n"
        )
    return out


def result_lines(spec: TrackSpec, result: RunResult, control: bool = False) -> list[str]:
    """What a run's summary says of its score: the validation score (a tuned run's is labelled
    the selection score it is), each label's figure, the baseline and the estimate beside it."""
    mark = " -- CONTROL RUN, shuffled labels: chance level, not a result" if control else ""
    where = "validation" if result.protocol == "hold-out" else f"validation {spec.items} out of fold ({result.protocol})"
    if result.tuned:
        lines = [
            f"selection score ({where}, the best of the study's trials on these {spec.items}, so optimistic; {spec.metric}): "
            f"{result.score:.4f}{mark}"
        ]
    else:
        lines = [f"{where} score ({spec.metric}): {result.score:.4f}{mark}"]
    lines += [f"  {label:<14} {value:+.4f}" for label, value in result.details.items()]
    lines += [figure.describe() for figure in (result.baseline, result.estimate, result.threshold) if figure is not None]
    if result.selection:
        lines.append(result.selection)
    elif result.estimate is not None and result.estimate.winner() != "head":
        lines.append(
            f"the {result.estimate.winner_described()} wins out of fold: the same command with --select out-of-fold submits it "
            "(the study is kept: no trial runs again)"
        )
    return lines
