"""`challenge multitask`: one model for EXPR, AU and VA on one Aff-Wild2 root, three validated
submissions, a nested MLflow run per task; it learns beyond a shuffled-label control."""

from __future__ import annotations

import json
import os
import re

import pytest
from typer.testing import CliRunner

from challenge.app.cli import app
from challenge.errors import ChallengeError
from tests.fixtures.quirky import quirky_affwild

runner = CliRunner()


def _multitask(root, models, *extra: str):
    return runner.invoke(app, ["multitask", "--data", str(root), "--features", "mae", "--visual-model", str(models["mae"]), "-q", *extra])


def test_one_model_for_three_tasks_writes_three_validated_files_and_beats_shuffled_labels(workdir, affwild_root, models):
    result = _multitask(affwild_root, models, "--epochs", "10", "--out", str(workdir / "mt"))
    assert result.exit_code == 0, result.output + repr(result.exception)
    summary = json.loads((workdir / "mt" / "multitask.json").read_text())
    assert [t["task"] for t in summary["tasks"]] == ["expr", "au", "va"]
    files = {"expr": "predictions.txt", "au": "predictions.txt", "va": "predictions.txt"}
    for task, name in files.items():
        submission = workdir / "mt" / task / name
        assert submission.exists(), result.output
        assert runner.invoke(app, ["validate", task, str(submission), "--data", str(affwild_root)]).exit_code == 0
        assert (workdir / "mt" / task / "outputs.npz").exists()  # so its runs can join cross-run ensembles

    import mlflow

    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    runs = mlflow.search_runs(experiment_names=["affwild-multitask"])
    (parent,) = runs[runs["tags.challenge.kind"] == "multitask"]["run_id"]
    nested = runs[runs["tags.challenge.kind"] == "multitask-task"]
    assert sorted(nested["tags.task"]) == ["au", "expr", "va"] and (nested["tags.mlflow.parentRunId"] == parent).all()
    assert nested["metrics.baseline.score"].notna().all()  # the linear baseline beside each task's score

    control = _multitask(affwild_root, models, "--epochs", "10", "--shuffle-labels", "--out", str(workdir / "control"))
    assert control.exit_code == 0, control.output
    assert "none (control run)" in control.output
    shuffled = json.loads((workdir / "control" / "multitask.json").read_text())
    print(f"weighted validation score: {summary['score']:.4f}, shuffled labels {shuffled['score']:.4f}")
    assert summary["score"] > shuffled["score"] + 0.08, (summary["score"], shuffled["score"])


def test_two_tasks_with_weights_on_the_abaw5_layout_and_bad_options_named(workdir, tmp_path, models):
    root = tmp_path / "abaw5"
    quirky_affwild(root)  # EXPR and VA in the ABAW5 folder names, 25 and 30 fps, missing crops
    result = _multitask(root, models, "--tasks", "expr,va", "--task-weights", "1,0.5", "--epochs", "2", "--out", str(workdir / "mt"))
    assert result.exit_code == 0, result.output + repr(result.exception)
    tasks = {t["task"]: t for t in json.loads((workdir / "mt" / "multitask.json").read_text())["tasks"]}
    assert set(tasks) == {"expr", "va"}

    # the multi-task run's EXPR run joins a cross-run ensemble beside a single-task EXPR run on the same data
    single = runner.invoke(
        app, ["track", "expr", "--data", str(root), "--features", "mae", "--visual-model", str(models["mae"]), "--head", "logistic", "-q"]
    )
    assert single.exit_code == 0, single.output + repr(single.exception)
    single_id = re.search(r"MLflow run (\w+)", single.output).group(1)
    listed = runner.invoke(app, ["runs", "expr"])
    assert tasks["expr"]["run_id"][:8] in listed.output and "multi-task" in listed.output, listed.output
    # the short ids `challenge runs` prints are taken
    combined = runner.invoke(
        app,
        ["ensemble", "expr", "--data", str(root), "--runs", f"{tasks['expr']['run_id'][:8]},{single_id}", "--out", str(workdir / "ens")],
    )
    assert combined.exit_code == 0, combined.output + repr(combined.exception)
    assert runner.invoke(app, ["validate", "expr", str(workdir / "ens" / "predictions.txt"), "--data", str(root)]).exit_code == 0
    wrong_task = runner.invoke(app, ["ensemble", "va", "--data", str(root), "--runs", f"{tasks['expr']['run_id']},{tasks['va']['run_id']}"])
    assert isinstance(wrong_task.exception, ChallengeError) and "it is a run of track 'expr', not va" in str(wrong_task.exception)
    for options, message in (
        (["--tasks", "expr,ce"], "choose distinct tasks among expr, au, va"),
        (["--tasks", "expr,va", "--task-weights", "1"], "one positive weight per task"),
    ):
        refused = _multitask(root, models, *options)
        assert isinstance(refused.exception, ChallengeError) and message in str(refused.exception), refused.output


def test_a_multitask_training_that_dies_resumes_from_its_last_epoch_and_ends_as_an_uninterrupted_one(
    workdir, affwild_root, models, store_root, monkeypatch
):
    """Each epoch is checkpointed beside the feature store; a training that dies in its third
    epoch (here: an error raised in-process while scoring it, not a SIGKILL) leaves the second
    epoch's checkpoint, and the same command continues from it to the weights and scores of a
    run that was never interrupted."""
    import challenge.training.multitask_model as training

    common = ("--tasks", "expr,va", "--epochs", "4")
    whole = _multitask(affwild_root, models, *common, "--out", str(workdir / "whole"))
    assert whole.exit_code == 0, whole.output + repr(whole.exception)
    assert not list(store_root.rglob("last.pt"))  # a finished training removes its checkpoint

    scored = training.validation_scores
    calls = []

    def dies_in_the_third_epoch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("the machine went away")
        return scored(*args, **kwargs)

    monkeypatch.setattr(training, "validation_scores", dies_in_the_third_epoch)
    died = _multitask(affwild_root, models, *common, "--out", str(workdir / "died"))
    assert died.exit_code != 0 and "the machine went away" in repr(died.exception)
    (checkpoint,) = store_root.rglob("last.pt")
    assert checkpoint.parent.name.startswith("multitask-")
    resumed_epochs = []
    monkeypatch.setattr(training, "validation_scores", lambda *args, **kwargs: resumed_epochs.append(1) or scored(*args, **kwargs))

    resumed = _multitask(affwild_root, models, *common, "--out", str(workdir / "resumed"))
    assert resumed.exit_code == 0, resumed.output + repr(resumed.exception)
    assert len(resumed_epochs) == 2  # epochs 3 and 4 only: the first two came from the checkpoint
    first, second = (json.loads((workdir / name / "multitask.json").read_text()) for name in ("whole", "resumed"))
    assert second["score"] == pytest.approx(first["score"], abs=1e-6)
    assert [t["score"] for t in second["tasks"]] == pytest.approx([t["score"] for t in first["tasks"]], abs=1e-6)
    assert not checkpoint.exists()
