"""`challenge ensemble TRACK --runs`: finished runs of different heads and feature sets combined,
on corpora written apart from the demo (tests/fixtures/quirky.py). What each member scores is
checked against the run's own logged score, and the mean rule against a mean computed here from
the runs' validation tables."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from challenge.app.cli import app
from challenge.errors import ChallengeError
from challenge.metrics import mean_pearson
from tests.fixtures.quirky import EMOTIONS, quirky_affwild, quirky_hume

runner = CliRunner()


@pytest.fixture(scope="module")
def hume(tmp_path_factory):
    root = tmp_path_factory.mktemp("quirky-hume") / "data"
    quirky_hume(root, train=24, valid=16, test=3, seed=11)
    return root


def _track(*args: str) -> str:
    result = runner.invoke(app, ["track", *args, "-q"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return re.search(r"MLflow run (\w+)", result.output).group(1)


def _ensemble(track: str, data, runs: list[str], *extra: str):
    return runner.invoke(app, ["ensemble", track, "--data", str(data), "--runs", ",".join(runs), *extra])


def _logged(run_id: str, metric: str) -> float:
    import mlflow

    return mlflow.get_run(run_id).data.metrics[metric]


def test_runs_of_three_heads_and_feature_sets_combine_into_one_validated_file(workdir, hume, emi_root):
    runs = [
        _track("emi", "--data", str(hume), "--features", "egemaps", "--head", "ridge"),
        _track("emi", "--data", str(hume), "--features", "egemaps", "--head", "lightgbm"),
        _track("emi", "--data", str(hume), "--features", "compare", "--head", "ridge"),
    ]
    result = _ensemble("emi", hume, runs, "--out", str(workdir / "ens"))
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "gain over the best member" in result.output and "submission:" in result.output
    summary = json.loads((workdir / "ens" / "ensemble.json").read_text())
    assert summary["split"] == "runs" and summary["runs"] == runs
    # each member's score is its run's own validation score: the outputs were read and aligned right
    for run_id in runs:
        (role,) = [r for r in summary["roles"] if r.startswith(run_id[:8])]
        assert summary["roles"][role] == pytest.approx(_logged(run_id, "score"), abs=1e-6)
    # the mean rule, recomputed from the runs' own validation tables
    tables = [pd.read_csv(next(workdir.glob(f"submissions/emi/{run_id}/validation_predictions.csv"))) for run_id in runs]
    truth = tables[0][[f"{e} true" for e in EMOTIONS]].to_numpy()
    mean = np.mean([t[[f"{e} predicted" for e in EMOTIONS]].to_numpy() for t in tables], axis=0)
    assert summary["rules"]["mean"] == pytest.approx(mean_pearson(truth, mean)[0], abs=1e-5)
    assert summary["steps"]["best_member"] == pytest.approx(max(summary["roles"].values()))
    assert runner.invoke(app, ["validate", "emi", str(workdir / "ens" / "predictions.csv"), "--data", str(hume)]).exit_code == 0

    import mlflow

    ensemble = mlflow.search_runs(experiment_names=["emi"], filter_string="tags.`challenge.kind` = 'ensemble'").iloc[0]
    assert ensemble["tags.head"] == "ridge+lightgbm" and ensemble["tags.features"] == "egemaps,compare"
    assert ensemble["metrics.gain.combination"] == pytest.approx(summary["steps"]["combination"] - summary["steps"]["best_member"])

    # refused, each named: a control run, a run on other data, a run that is not there, one run alone
    control = _track("emi", "--data", str(hume), "--features", "egemaps", "--head", "ridge", "--shuffle-labels")
    other = _track("emi", "--data", str(emi_root), "--features", "egemaps", "--head", "ridge")
    for members, message in (
        ([runs[0], control], f"run {control}: cannot be an ensemble member: it is a control run"),
        ([runs[0], other], f"{other}: data fingerprint"),
        ([runs[0], "0" * 32], f"run {'0' * 32}: not found"),
        ([runs[0]], "--runs needs at least two run ids"),
    ):
        refused = _ensemble("emi", hume, members)
        assert isinstance(refused.exception, ChallengeError) and message in str(refused.exception), (message, refused.output)

    # members found by an MLflow search: this track's finished runs on this data, controls left out
    searched = runner.invoke(
        app, ["ensemble", "emi", "--data", str(hume), "--runs", "search:tags.head = 'ridge'", "--out", str(workdir / "s")]
    )
    assert searched.exit_code == 0, searched.output + repr(searched.exception)
    assert sorted(json.loads((workdir / "s" / "ensemble.json").read_text())["runs"]) == sorted([runs[0], runs[2]])
    # --max-runs keeps the best by each run's logged validation score, and says what it left out
    best = sorted(runs, key=lambda r: _logged(r, "score"), reverse=True)
    capped = runner.invoke(
        app, ["ensemble", "emi", "--data", str(hume), "--runs", "search:", "--max-runs", "2", "--out", str(workdir / "m")]
    )
    assert capped.exit_code == 0, capped.output + repr(capped.exception)
    assert json.loads((workdir / "m" / "ensemble.json").read_text())["runs"] == best[:2]
    assert f"left out {best[2][:8]}" in " ".join(capped.output.split()), capped.output  # rich wraps long lines
    listed = runner.invoke(app, ["ensemble", "emi", "--data", str(hume), "--runs", ",".join(runs), "--max-runs", "2"])
    assert isinstance(listed.exception, ChallengeError) and "--max-runs limits the members of --runs" in str(listed.exception)
    bad = runner.invoke(app, ["ensemble", "emi", "--data", str(hume), "--runs", "search:head is ridge"])
    assert isinstance(bad.exception, ChallengeError) and "MLflow cannot read this filter" in str(bad.exception), bad.output


def test_frame_runs_combine_per_frame_and_smooth(workdir, tmp_path, models):
    root = tmp_path / "affwild"
    quirky_affwild(root)
    data = ["--data", str(root), "--features", "mae", "--visual-model", str(models["mae"])]
    runs = [_track("expr", *data, "--head", "logistic"), _track("expr", *data, "--head", "lstm-frames", "--epochs", "2")]
    result = _ensemble("expr", root, runs, "--out", str(workdir / "ens"))
    assert result.exit_code == 0, result.output + repr(result.exception)
    summary = json.loads((workdir / "ens" / "ensemble.json").read_text())
    for run_id in runs:  # unsmoothed, as the run scored its raw outputs
        (role,) = [r for r in summary["roles"] if r.startswith(run_id[:8])]
        assert summary["roles"][role] == pytest.approx(_logged(run_id, "score_unsmoothed"), abs=1e-6)
    assert "smoothing" in summary["steps"]
    assert runner.invoke(app, ["validate", "expr", str(workdir / "ens" / "predictions.txt"), "--data", str(root)]).exit_code == 0
