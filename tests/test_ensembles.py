"""Ensembles: background clustering, member bookkeeping, combination rules, the command."""

import json
import os

import numpy as np
import pytest
from typer.testing import CliRunner

from challenge.app.cli import app
from challenge.errors import ChallengeError
from challenge.features.background import describe_borders
from challenge.track import Problem
from ensembles.background import cluster_backgrounds
from ensembles.combine import RULES, Context, cross_fit, score_weights
from ensembles.members import assign_folds, evaluation_items, plan_members

runner = CliRunner()


def _three_rooms(seed=0, per_room=10):
    rng = np.random.default_rng(seed)
    rooms = np.array([[0.1, 0.2, 0.5], [0.2, 0.5, 0.2], [0.5, 0.5, 0.5]])
    colours = np.repeat(rooms, per_room, 0) + rng.normal(0, 0.03, (3 * per_room, 3))
    return np.concatenate([colours, np.full((3 * per_room, 3), 0.01)], 1), np.repeat(np.arange(3), per_room)


def test_background_descriptor_sees_the_borders_not_the_face():
    frame = np.zeros((50, 50, 3), np.uint8)
    frame[:, :] = (0, 0, 255)  # a blue room
    frame[10:40, 10:40] = (255, 0, 0)  # the face fills the centre
    descriptor = describe_borders([frame, frame], share=0.1)
    assert np.allclose(descriptor[:3], [0, 0, 1]) and np.allclose(descriptor[3:6], 0)
    frame[:5] = (0, 255, 0)  # a green strip at the top shows in the top strip only
    strips = describe_borders([frame], share=0.1)[6:].reshape(4, 3)
    assert np.allclose(strips[0], [0, 1, 0]) and np.allclose(strips[1:], [[0, 0, 1]] * 3)


def test_clustering_finds_the_rooms_by_silhouette_and_is_deterministic():
    descriptors, rooms = _three_rooms()
    first, second = cluster_backgrounds(descriptors, seed=3), cluster_backgrounds(descriptors, seed=3)
    assert first.k == 3 and max(first.silhouettes, key=first.silhouettes.get) == 3
    assert np.array_equal(first.labels, second.labels)
    # the same partition as the rooms, whatever the cluster numbering
    assert len({(a, b) for a, b in zip(first.labels, rooms)}) == 3
    assert np.array_equal(first.assign(descriptors[:5]), first.labels[:5])
    assert cluster_backgrounds(descriptors, k=2, seed=0).k == 2
    with pytest.raises(ChallengeError, match="background subsets"):
        cluster_backgrounds(descriptors[:5], k=3, min_size=2)


def test_folds_keep_source_videos_together():
    groups = ["a", "a", "b", "c", "c", "d", "e", "f"]
    folds = assign_folds(groups, 3, seed=0)
    assert folds[0] == folds[1] and folds[3] == folds[4] and set(folds) == {0, 1, 2}
    assert np.array_equal(folds, assign_folds(groups, 3, seed=0))
    with pytest.raises(ChallengeError, match="folds"):
        assign_folds(groups, 7, seed=0)


@pytest.mark.parametrize(
    "split,train_mode", [("folds", "in"), ("background", "in"), ("background", "out"), ("both", "in"), ("both", "out")]
)
def test_no_member_predicts_an_item_it_trained_or_stopped_on(split, train_mode):
    n_train, n = 24, 36
    groups = [f"v{i // 2}" if i < 4 else f"v{i}" for i in range(n)]  # two pairs share a source video
    subsets = np.arange(n) % 3
    members = plan_members(split, groups, n_train, folds=4, subsets=subsets, background_train=train_mode, seed=1)
    for member in members:
        seen = set(member.fit) | set(member.stop)
        assert not seen & set(member.heldout), member.name
        assert not {groups[i] for i in seen} & {groups[i] for i in member.heldout}, member.name  # not even its pair
        assert not set(member.fit) & set(member.stop) and member.fit and member.stop
        if member.subset is not None:
            assert all((subsets[i] == member.subset) == (train_mode == "in") for i in seen)
    items = evaluation_items(members)
    assert items == (list(range(n_train, n)) if split == "background" else list(range(n)))
    for role in {m.role for m in members}:  # every evaluation item held out by exactly one member per role
        counts = np.zeros(n, int)
        for m in members:
            if m.role == role:
                counts[m.heldout] += 1
        assert all(counts[i] == 1 for i in items)
    if split == "background":
        assert all(max(m.fit + m.stop) < n_train for m in members)  # trained on the training split only


def _context(problem, roles=2, subsets=None):
    from challenge.metrics import mean_pearson

    evaluate = (lambda t, o: mean_pearson(t, o)[0]) if problem == Problem.CLIP_REGRESSION else None
    return Context(problem, evaluate, subsets or [None] * roles)


def test_weights_follow_the_scores_and_ignore_worse_than_chance():
    assert np.allclose(score_weights([0.6, 0.2, -0.3]), [0.75, 0.25, 0.0])
    assert np.allclose(score_weights([-0.1, -0.2]), [0.5, 0.5])
    rng = np.random.default_rng(0)
    truth = rng.normal(size=(200, 2))
    good, noise = truth + rng.normal(0, 0.3, truth.shape), rng.normal(size=truth.shape)
    outputs = np.stack([good, noise])
    context = _context(Problem.CLIP_REGRESSION)
    weights = RULES["weighted"].fit(outputs, truth, context)
    assert weights[0] > 0.9 and np.isclose(weights.sum(), 1)
    assert np.allclose(RULES["mean"].apply(None, outputs, None, context), (good + noise) / 2)


def test_own_subset_rule_weights_the_rows_own_members():
    outputs = np.stack([np.zeros((2, 1)), np.ones((2, 1)), np.full((2, 1), 2.0)])  # roles: all, bg0, bg1
    context = Context(Problem.CLIP_REGRESSION, None, [None, 0, 1], own_weight=2.0)
    combined = RULES["own-subset"].apply(None, outputs, np.array([0, 1]), context)
    assert np.allclose(combined[:, 0], [(0 + 2 * 1 + 2) / 4, (0 + 1 + 2 * 2) / 4])


def test_cross_fitted_stacking_beats_a_miscalibrated_member_without_seeing_its_rows():
    rng = np.random.default_rng(1)
    truth = rng.normal(size=(300, 1))
    outputs = np.stack([3 * truth + 2 + rng.normal(0, 0.1, truth.shape)])  # right signal, wrong scale
    items = np.arange(300)
    context = _context(Problem.CLIP_REGRESSION, roles=1)
    stacked = cross_fit(RULES["stacking"], outputs, truth, items, np.full(300, -1), context)
    assert np.abs(stacked - truth).mean() < 0.1 < np.abs(outputs[0] - truth).mean()
    # a rule fitted on rows whose labels are noise cannot carry that over to held-out rows
    noise = rng.normal(size=truth.shape)
    assert (
        np.corrcoef(cross_fit(RULES["stacking"], np.stack([noise]), truth, items, np.full(300, -1), context)[:, 0], truth[:, 0])[0, 1] < 0.2
    )


def test_stacking_classes_and_aus_returns_probabilities():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 3, 120)
    probs = np.stack([np.eye(3)[labels] * 0.6 + 0.1, np.full((120, 3), 1 / 3)])
    truth = labels[:, None].copy()
    truth[:5] = -1  # invalid frames are not fitted on
    state = RULES["stacking"].fit(probs, truth, _context(Problem.FRAME_CLASSIFICATION))
    out = RULES["stacking"].apply(state, probs, None, _context(Problem.FRAME_CLASSIFICATION))
    assert out.shape == (120, 3) and np.allclose(out.sum(1), 1) and (out.argmax(1) == labels).mean() > 0.95
    aus = (rng.uniform(size=(120, 2)) > 0.5).astype(int)
    au_probs = np.stack([aus * 0.7 + 0.15, np.full((120, 2), 0.5)])
    state = RULES["stacking"].fit(au_probs, aus, _context(Problem.FRAME_MULTILABEL))
    out = RULES["stacking"].apply(state, au_probs, None, _context(Problem.FRAME_MULTILABEL))
    assert ((out > 0.5) == aus).mean() > 0.95


def test_ensemble_command_emi_folds_records_members_and_validates(workdir, emi_root):
    args = ["ensemble", "emi", "--data", str(emi_root), "--features", "egemaps", "--head", "lstm", "--epochs", "2", "--members", "3", "-q"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "out of fold" in result.output and "submission:" in result.output
    summary = json.loads(next(workdir.glob("submissions/emi/*/ensemble.json")).read_text())
    assert set(summary["members"]) == {"fold0", "fold1", "fold2"} and summary["provenance"]["source"] == "defaults"
    assert summary["rule"] in summary["rules"] and summary["score"] == summary["rules"][summary["rule"]]
    submission = next(workdir.glob("submissions/emi/*/predictions.csv"))
    assert runner.invoke(app, ["validate", "emi", str(submission), "--data", str(emi_root)]).exit_code == 0

    import mlflow

    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    runs = mlflow.search_runs(experiment_names=["emi"])
    parent = runs[runs["tags.challenge.kind"] == "ensemble"].iloc[0]
    members = runs[runs["tags.challenge.kind"] == "member"]
    assert len(members) == 3 and (members["tags.mlflow.parentRunId"] == parent["run_id"]).all()
    assert np.isfinite(parent["metrics.gain.combination"]) and parent["tags.ensemble.beats_best_member"] in ("True", "False")
    table = runner.invoke(app, ["runs", "emi"])
    assert table.exit_code == 0 and "ensemble" in table.output and parent["run_id"][:8] in table.output


def test_ensemble_takes_the_tuned_runs_parameters(workdir, emi_root):
    tuned = runner.invoke(
        app, ["track", "emi", "--data", str(emi_root), "--features", "egemaps", "--head", "lightgbm", "--tune", "--trials", "2", "-q"]
    )
    assert tuned.exit_code == 0, tuned.output
    best = json.loads(next(workdir.glob("submissions/emi/*/best_params.json")).read_text())
    result = runner.invoke(
        app,
        [
            "ensemble",
            "emi",
            "--data",
            str(emi_root),
            "--features",
            "egemaps",
            "--head",
            "lightgbm",
            "--members",
            "2",
            "--out",
            str(workdir / "ens"),
            "-q",
        ],
    )
    assert result.exit_code == 0, result.output + repr(result.exception)
    summary = json.loads((workdir / "ens" / "ensemble.json").read_text())
    assert summary["provenance"]["source"] == "track run" and summary["params"] == best["params"]


@pytest.fixture(scope="module")
def affwild_nine(tmp_path_factory):
    """Nine labelled source videos: enough for folds with background members inside them."""
    from tracks.affwild2.demo import write_affwild_demo

    root = tmp_path_factory.mktemp("affwild9")
    write_affwild_demo(root, train=6, valid=3, test=1, frames=30, seed=2)
    return root


def test_ensemble_expr_both_splits_smooths_and_writes_the_official_file(workdir, affwild_nine, models):
    affwild_root = affwild_nine
    args = [
        "ensemble",
        "expr",
        "--data",
        str(affwild_root),
        "--features",
        "mae",
        "--visual-model",
        str(models["mae"]),
        "--head",
        "lstm-frames",
        "--epochs",
        "2",
        "--split",
        "both",
        "--members",
        "2",
        "--background-train",
        "out",
        "-q",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output + repr(result.exception)
    summary = json.loads(next(workdir.glob("submissions/expr/*/ensemble.json")).read_text())
    assert {"all", "bg0", "bg1"} <= set(summary["roles"]) and "smoothing" in summary["steps"]
    submission = next(workdir.glob("submissions/expr/*/predictions.txt"))
    assert runner.invoke(app, ["validate", "expr", str(submission), "--data", str(affwild_root)]).exit_code == 0
