"""The registered protocols (--protocol): grouped folds on in-memory features with groups that
must stay whole, and through the CLI on the BAH-layout fixture written apart from the demo
writer (participants of 3 videos each)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from challenge.app.cli import app
from challenge.config import load_config
from challenge.heads.linear import RidgeHead
from challenge.registry import get_track
from challenge.run.protocols import FoldModels, GroupedFolds, get_protocol
from challenge.training.inputs import ClipFeatures, ModalityEntry
from tests.fixtures.current_abaw import quirky_bah

runner = CliRunner()
SEEN: list[tuple[list[str], list[str]]] = []  # (training ids, stopping ids) of every fold fit


class RecordingRidge(RidgeHead):
    """Ridge that notes which clips each fold model trained and stopped on."""

    def fit(self, train, valid, score, report=None):
        SEEN.append((list(train.ids), list(valid.ids)))
        return super().fit(train, valid, score, report)


def clips(ids: list[str], x: np.ndarray, y: np.ndarray) -> ClipFeatures:
    entries = [[ModalityEntry(None, 4, values=np.repeat(row[None], 4, 0).astype(np.float32))] for row in x]
    return ClipFeatures(ids, entries, [x.shape[1]], y.astype(np.float32))


def speakers_set(seed: int, shuffled: int | None = None):
    """60 clips of 20 speakers (3 each); one target, linear in the features plus noise, and a
    speaker offset, so a fold model that had seen a speaker would be scored on what it learnt."""
    rng = np.random.default_rng(seed)
    ids = [f"S{s:02d}_clip{q}" for s in range(20) for q in range(3)]
    x = rng.normal(size=(60, 8))
    y = x @ rng.normal(size=8) + np.repeat(rng.normal(size=20), 3) + 0.5 * rng.normal(size=60)
    if shuffled is not None:
        y = np.random.default_rng(shuffled).permutation(y)
    y = y[:, None]
    return clips(ids[:42], x[:42], y[:42]), clips(ids[42:], x[42:], y[42:])


def speakers_spec():
    return dataclasses.replace(get_track("emi"), name="speakers", labels=["Joy"], group_of=lambda i: i.split("_")[0])


def grouped_fit(train, valid, folds: int = 4):
    spec = speakers_spec()
    config = load_config(None, {"track": "emi", "protocol": "grouped-folds", "protocol_folds": folds, "head": "ridge"}, spec)
    protocol = get_protocol("grouped-folds")(spec, config, RecordingRidge, "cpu")
    return spec, protocol, protocol.fitter(train, valid)


def test_grouped_folds_keeps_each_speaker_on_one_side_and_scores_every_clip_out_of_fold():
    train, valid = speakers_set(0)
    spec, protocol, fit = grouped_fit(train, valid)
    assert isinstance(protocol, GroupedFolds) and protocol.steps(15) == 4  # the pruner counts folds, not epochs
    SEEN.clear()
    reported = []
    score, model = fit({}, lambda step, value: reported.append((step, value)))
    assert len(SEEN) == 4 and [step for step, _ in reported] == [0, 1, 2, 3]
    held_once = []
    for trained, held in SEEN:
        assert not {i.split("_")[0] for i in trained} & {i.split("_")[0] for i in held}  # no speaker on both sides
        assert len(held) % 3 == 0  # whole speakers
        held_once += held
    assert sorted(held_once) == sorted([*train.ids, *valid.ids])  # every clip held out exactly once
    assert reported[-1][1] == pytest.approx(score)  # the running score after the last fold is the score
    # the run's validation outputs are the valid clips' held-out ones, not the averaged models' (which saw them)
    assert isinstance(model, FoldModels) and len(model.members) == 4
    held = protocol.validation_outputs(model, valid)
    in_sample = model.predict(valid)
    assert held.shape == in_sample.shape == (18, 1) and not np.allclose(held, in_sample)
    assert spec.score(valid.targets, in_sample).value > spec.score(valid.targets, held).value  # seen clips flatter the models
    with pytest.raises(ValueError, match="not the valid clips"):
        protocol.validation_outputs(model, train)


def test_grouped_folds_learns_where_signal_exists_and_not_from_shuffled_labels():
    """Out of fold, ridge finds the linear signal; with the targets permuted (5 permutations,
    averaged) it finds nothing."""
    train, valid = speakers_set(1)
    real, _ = grouped_fit(train, valid)[2]({})
    shuffled = [grouped_fit(*speakers_set(1, shuffled=k))[2]({})[0] for k in range(5)]
    assert real > 0.6 and np.mean(shuffled) < 0.2 and real > max(shuffled) + 0.3, (real, shuffled)


def test_protocols_are_registered_and_an_unknown_one_is_refused():
    from challenge.errors import ChallengeError
    from challenge.registry import entry_point_names

    assert {"hold-out", "grouped-folds"} <= set(entry_point_names("challenge.protocols"))
    assert get_protocol("hold-out").name == "hold-out"
    with pytest.raises(ChallengeError, match="unknown protocol 'k-fold'.*grouped-folds"):
        load_config(None, {"track": "emi", "protocol": "k-fold"}, get_track("emi"))


@pytest.fixture(scope="module")
def bah(tmp_path_factory):
    root = tmp_path_factory.mktemp("bah")
    return root, quirky_bah(root)


def test_track_ah_with_grouped_folds_reports_out_of_fold_beside_its_baseline_and_reloads(workdir, bah, monkeypatch):
    import mlflow

    monkeypatch.setenv("CHALLENGE_TRANSCRIPT_CACHE", str(workdir / "texts"))
    root, made = bah
    args = ["track", "ah", "--data", str(root), "--features", "egemaps", "--head", "lightgbm"]
    result = runner.invoke(app, [*args, "--protocol", "grouped-folds", "--protocol-folds", "3", "-q"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "validation videos out of fold (grouped-folds) score (macro F1 over 2 classes)" in result.output
    assert "linear baseline (logistic, the same 3 grouped folds and features)" in result.output
    trial = next(Path("submissions/ah").glob("*/trial-1.txt"))
    assert [line.split(",")[0] for line in trial.read_text().splitlines()] == made["test_order"]
    run_id = trial.parent.name
    assert mlflow.get_run(run_id).data.tags["protocol"] == "grouped-folds"
    # the saved model is the fold models, rebuilt as data: predict writes the same trial file
    again = runner.invoke(app, ["predict", run_id, "--data", str(root), "--out", str(workdir / "again")])
    assert again.exit_code == 0, again.output + repr(again.exception)
    assert (workdir / "again" / "trial-1.txt").read_text() == trial.read_text()
    saved = json.loads(next(Path("submissions/ah").glob("*/best_params.json")).read_text())
    assert saved["params"]  # the head's parameters are recorded as for a hold-out run


def test_predict_writes_the_same_ah_trial_file_as_a_hold_out_run(workdir, bah, monkeypatch):
    """`challenge predict` hands a two-class track's writer probabilities, as the run did (it
    handed it decided classes, which the A/H writer refuses)."""
    monkeypatch.setenv("CHALLENGE_TRANSCRIPT_CACHE", str(workdir / "texts"))
    root, _ = bah
    result = runner.invoke(app, ["track", "ah", "--data", str(root), "--features", "egemaps", "--head", "logistic", "-q"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    trial = next(Path("submissions/ah").glob("*/trial-1.txt"))
    again = runner.invoke(app, ["predict", trial.parent.name, "--data", str(root), "--out", str(workdir / "again")])
    assert again.exit_code == 0, again.output + repr(again.exception)
    assert (workdir / "again" / "trial-1.txt").read_text() == trial.read_text()


@pytest.mark.parametrize(
    ("track", "extra", "refusal"),
    [
        ("expr", [], "clip tracks on cached features"),
        ("emi", ["--tune", "--select", "out-of-fold"], "already out of fold"),
    ],
)
def test_grouped_folds_refuses_what_it_cannot_do_before_training(workdir, affwild_root, emi_root, track, extra, refusal):
    root = affwild_root if track == "expr" else emi_root
    args = [
        "track",
        track,
        "--data",
        str(root),
        "--protocol",
        "grouped-folds",
        "--head",
        "lightgbm" if track == "emi" else "lstm-frames",
        *extra,
    ]
    result = runner.invoke(app, args)
    assert result.exit_code != 0 and refusal in result.output + str(result.exception), result.output
    assert not Path("submissions").exists()  # refused before any extraction or training


def test_a_tuned_grouped_folds_run_claims_no_estimate_that_selected_nothing(workdir, emi_root):
    """Its tuning scored every labelled clip out of fold: refitting on those clips again is no
    estimate that selected nothing, so the run reports none (it printed one, mislabelled)."""
    args = ["track", "emi", "--data", str(emi_root), "--features", "egemaps", "--head", "lightgbm"]
    result = runner.invoke(app, [*args, "--protocol", "grouped-folds", "--protocol-folds", "3", "--tune", "--trials", "2"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    text = " ".join(result.output.split())
    assert "selection score (validation clips out of fold (grouped-folds), the best of the study's trials" in text
    assert "estimate that selected nothing" not in text


def test_the_worked_example_of_a_protocol_in_the_docs_runs():
    """docs/extending.md's protocol example, executed as written: it fits and scores a candidate."""
    from challenge.run.protocols import Protocol

    section = (Path(__file__).parents[1] / "docs" / "extending.md").read_text().split("## A protocol", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec(compile(code, "docs/extending.md", "exec"), namespace)
    example = namespace["PooledTenth"]
    assert issubclass(example, Protocol) and example.name == "pooled-tenth"
    train, valid = speakers_set(2)
    spec = speakers_spec()
    config = load_config(None, {"track": "emi", "head": "ridge"}, spec)
    score, head = example(spec, config, RidgeHead, "cpu").fitter(train, valid)({})
    assert np.isfinite(score) and head.predict(valid).shape == (18, 1)
