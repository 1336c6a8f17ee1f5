"""The main job through the CLI on tiny data: tune 2 trials, validate, record in MLflow."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from challenge.cli import app

runner = CliRunner()


@pytest.fixture
def workdir(tmp_path, monkeypatch, store_root):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_track_emi_tunes_writes_validates_and_tracks(workdir, emi_root, models):
    args = ["track", "emi", "--data", str(emi_root), "--features", "wav2vec2,egemaps", "--audio-model", str(models["wav2vec2-emotion"]),
            "--tune", "--trials", "2", "--epochs", "2", "-q"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "validation score (mean Pearson)" in result.output and "submission:" in result.output
    submission = next(workdir.glob("submissions/emi/*/predictions.csv"))
    assert (submission.parent / "predicted_vs_true.png").exists()
    assert (submission.parent / "validation_predictions.csv").exists()
    valid = runner.invoke(app, ["validate", "emi", str(submission), "--data", str(emi_root)])
    assert valid.exit_code == 0 and "valid (4 test clips" in valid.output

    import mlflow

    mlflow.set_tracking_uri("sqlite:///mlflow/mlflow.db")
    runs = mlflow.search_runs(experiment_names=["emi"])
    assert (runs["tags.challenge.kind"] == "track").sum() == 1 and (runs["tags.challenge.kind"] == "trial").sum() == 2
    parent = runs[runs["tags.challenge.kind"] == "track"].iloc[0]
    assert parent["tags.feature_key.wav2vec2"] and parent["tags.data_fingerprint"] and np.isfinite(parent["metrics.score"])
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
