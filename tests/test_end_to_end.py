"""The main job through the CLI on tiny data: tune 2 trials, validate, record in MLflow."""

import json
import os

import numpy as np
import pytest
from typer.testing import CliRunner

from challenge.app.cli import app

runner = CliRunner()


def test_track_emi_tunes_writes_validates_and_tracks(workdir, emi_root, models):
    args = [
        "track",
        "emi",
        "--data",
        str(emi_root),
        "--features",
        "wav2vec2,egemaps",
        "--audio-model",
        str(models["wav2vec2-emotion"]),
        "--tune",
        "--trials",
        "2",
        "--epochs",
        "2",
        "-q",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output + repr(result.exception)
    # a tuned run's validation score chose the trial: it is labelled so, with figures that chose nothing beside it
    assert (
        "selection score (validation, the best of the study's trials on these clips, so optimistic; mean Pearson over 6 emotions)"
        in result.output
    )
    assert "estimate that selected nothing (3 folds of train+valid, out of fold): lstm" in result.output and "submission:" in result.output
    assert f"browse with: mlflow ui --backend-store-uri {os.environ['MLFLOW_TRACKING_URI']}" in result.output  # the store it was logged to
    submission = next(workdir.glob("submissions/emi/*/predictions.csv"))
    assert (submission.parent / "predicted_vs_true.png").exists()
    assert (submission.parent / "validation_predictions.csv").exists()
    valid = runner.invoke(app, ["validate", "emi", str(submission), "--data", str(emi_root)])
    assert valid.exit_code == 0 and "valid (4 test clips" in valid.output

    import mlflow

    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    runs = mlflow.search_runs(experiment_names=["emi"])
    assert (runs["tags.challenge.kind"] == "track").sum() == 1 and (runs["tags.challenge.kind"] == "trial").sum() == 2
    parent = runs[runs["tags.challenge.kind"] == "track"].iloc[0]
    assert parent["tags.feature_key.wav2vec2"] and parent["tags.data_fingerprint"] and np.isfinite(parent["metrics.score"])
    # the linear baseline on the same split and features, beside the head's score
    assert "linear baseline (ridge, same split and features)" in result.output and parent["tags.baseline.head"] == "ridge"
    assert parent["metrics.gain_over_baseline"] == pytest.approx(parent["metrics.score"] - parent["metrics.baseline.score"])
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(parent["run_id"])}
    assert {"predictions.csv", "resolved_config.yaml", "best_params.json", "predicted_vs_true.png"} <= artifacts

    table = runner.invoke(app, ["runs", "emi"])
    assert table.exit_code == 0 and parent["run_id"][:8] in table.output

    # the same command again resumes the study: it already holds 2 finished trials
    again = runner.invoke(app, args)
    assert again.exit_code == 0
    runs = mlflow.search_runs(experiment_names=["emi"])
    assert (runs["tags.challenge.kind"] == "trial").sum() == 2


def test_validate_reports_a_broken_file(workdir, emi_root):
    broken = workdir / "p.csv"
    broken.write_text("Filename,Joy\n00018,0.5\n")
    result = runner.invoke(app, ["validate", "emi", str(broken), "--data", str(emi_root)])
    assert result.exit_code == 1 and "INVALID" in result.output and "header" in result.output and "missing clip" in result.output


def test_lightgbm_head_and_yaml_config(workdir, emi_root):
    config = workdir / "run.yaml"
    config.write_text("head: lightgbm\nfeatures: [egemaps]\nseed: 3\n")
    result = runner.invoke(app, ["track", "emi", "--data", str(emi_root), "--config", str(config), "--out", "out", "-q"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    best = json.loads((workdir / "out" / "best_params.json").read_text())
    assert "num_leaves" in best["params"] and best["provenance"] == {"source": "defaults"}
    assert (workdir / "out" / "predictions.csv").exists()


def test_bad_feature_name_is_rejected(workdir, emi_root):
    from challenge.errors import ChallengeError

    result = runner.invoke(app, ["track", "emi", "--data", str(emi_root), "--features", "wav2vec3"])
    assert isinstance(result.exception, ChallengeError) and "wav2vec3" in str(result.exception)


@pytest.fixture
def frame_args(affwild_root, models):
    return ["--data", str(affwild_root), "--features", "mae,egemaps", "--visual-model", str(models["mae"]), "-q"]


def test_track_expr_tunes_smooths_and_writes_the_official_file(workdir, frame_args, affwild_root):
    result = runner.invoke(app, ["track", "expr", *frame_args, "--tune", "--trials", "2", "--epochs", "2"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert (
        "selection score (validation, the best of the study's trials on these videos, so optimistic; macro F1 over 8 classes)"
        in result.output
    )
    submission = next(workdir.glob("submissions/expr/*/predictions.txt"))
    sample = affwild_root / "prediction_files_format" / "CVPR_6th_ABAW_Expr_test_set_sample.txt"
    assert [line.split(",")[0] for line in submission.read_text().splitlines()] == [
        line.split(",")[0] for line in sample.read_text().splitlines()
    ]
    assert (submission.parent / "confusion_matrix.png").exists()
    valid = runner.invoke(app, ["validate", "expr", str(submission), "--data", str(affwild_root)])
    assert valid.exit_code == 0, valid.output
    best = json.loads((submission.parent / "best_params.json").read_text())
    assert best["provenance"]["source"] == "optuna" and best["score"] >= best["score_unsmoothed"]

    import mlflow

    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    runs = mlflow.search_runs(experiment_names=["expr"])
    parent = runs[runs["tags.challenge.kind"] == "track"].iloc[0]
    assert np.isfinite(parent["metrics.score_unsmoothed"]) and "metrics.smoothing.sigma" in runs


@pytest.mark.parametrize("track", ["va", "au"])
def test_va_and_au_tracks(workdir, frame_args, track):
    result = runner.invoke(app, ["track", track, *frame_args, "--epochs", "2", "--head", "lstm-frames"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    baseline = {"va": "ridge", "au": "logistic"}[track]
    assert f"linear baseline ({baseline}, same split and features)" in result.output, result.output
    post = json.loads(next(workdir.glob(f"submissions/{track}/*/post_processing.json")).read_text())
    assert (post["thresholds"] is not None) == (track == "au") and post["sigma"] in map(float, post["scores_by_sigma"])


def test_ce_zero_shot_without_compound_labels(workdir, frame_args, affwild_root, tmp_path):
    import shutil

    root = shutil.copytree(affwild_root, tmp_path / "no_ce_labels")
    shutil.rmtree(root / "6th_ABAW_Annotations" / "CE_Classification_Challenge")
    args = [a if a != str(affwild_root) else str(root) for a in frame_args]
    result = runner.invoke(app, ["track", "ce", *args, "--epochs", "2", "--zero-shot"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    submission = next(workdir.glob("submissions/ce/*/predictions.txt"))
    assert submission.read_text().startswith("image_location,Fearfully_Surprised,")
    assert json.loads((submission.parent / "best_params.json").read_text())["score"] is None
