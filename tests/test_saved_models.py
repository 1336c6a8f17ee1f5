"""A saved model is data: every head (and the fold ensembles) written as JSON plus safetensors
and rebuilt through the head registry predicts what it predicted before; a pickle planted in a
run's artifacts is refused by `challenge predict` without ever being unpickled."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from test_frame_heads import synthetic_crops, synthetic_videos
from test_heads import synthetic_clips
from typer.testing import CliRunner

from challenge.app.cli import app
from challenge.heads import get_head
from challenge.stores.saved_state import read_model, write_model
from challenge.track import Problem
from challenge.training.frame_folds import cross_validate_frames
from tracks.smiles.clip_windows import PooledClips
from tracks.smiles.cross_validation import cross_validate

runner = CliRunner()


def _outputs(model, data):
    outputs = model.predict(data)
    return np.concatenate(outputs) if isinstance(outputs, list) else np.asarray(outputs)


def _round_trip(model, tmp_path: Path):
    folder = tmp_path / "saved"
    folder.mkdir(parents=True)
    write_model(model, folder)
    assert not list(folder.glob("*.pt")) and not list(folder.glob("*.pkl"))
    return read_model(folder)


def _pooled(n: int, seed: int) -> PooledClips:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    audio, visual = rng.normal(0, 1, (n, 6)), rng.normal(0, 1, (n, 4))
    audio[np.arange(n), y] += 1.5
    data = PooledClips.side_by_side({"audio": audio.astype(np.float32), "visual": visual.astype(np.float32)}, y)
    data.normalise_with(data.fit_normalisation())
    return data


def _macro(truth, outputs):
    from sklearn.metrics import f1_score

    return f1_score(truth, np.asarray(outputs).argmax(1), average="macro")


@pytest.mark.parametrize("name", ["lstm", "lightgbm", "ridge"])
def test_clip_regression_heads_round_trip(tmp_path, name):
    train, valid = synthetic_clips(tmp_path, 24, seed=1), synthetic_clips(tmp_path, 8, seed=2)
    head = get_head(name)({"epochs": 2} if name == "lstm" else {}, Problem.CLIP_REGRESSION, 6, seed=0)
    head.fit(train, valid, lambda t, p: float(np.mean((t - p) ** 2)))
    again = _round_trip(head, tmp_path)
    assert type(again) is type(head) and again.params == head.params
    np.testing.assert_allclose(_outputs(again, valid), _outputs(head, valid), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", ["gru", "transformer", "lstm-frames", "logistic"])
def test_frame_heads_round_trip(tmp_path, name):
    train, valid = synthetic_videos(tmp_path, 3, seed=1), synthetic_videos(tmp_path, 2, seed=2)
    head = get_head(name)({"epochs": 1} if name != "logistic" else {}, Problem.FRAME_CLASSIFICATION, 3, seed=0)
    head.fit(train, valid, lambda t, p: 0.0)
    np.testing.assert_allclose(_outputs(_round_trip(head, tmp_path), valid), _outputs(head, valid), rtol=1e-5, atol=1e-6)


def test_au_logistic_with_a_constant_unit_and_cnn_gru_fold_models_round_trip(tmp_path):
    train, valid = synthetic_videos(tmp_path, 3, seed=1), synthetic_videos(tmp_path, 2, seed=2)
    for data in (train, valid):  # three AUs: two from the class, one never active (kept as its rate)
        data.labels = [np.stack([(y[:, 0] == 0), (y[:, 0] == 1), np.zeros(len(y), bool)], 1).astype(np.float32) for y in data.labels]
    head = get_head("logistic")({}, Problem.FRAME_MULTILABEL, 3, seed=0)
    head.fit(train, valid, lambda t, p: 0.0)
    assert isinstance(head.models[2], float)
    np.testing.assert_allclose(_outputs(_round_trip(head, tmp_path), valid), _outputs(head, valid), rtol=1e-6, atol=1e-7)

    crops = synthetic_crops(tmp_path, 4, seed=3)
    _, ensemble = cross_validate_frames(
        get_head("cnn-gru"),
        {"epochs": 1, "window": 8},
        Problem.FRAME_CLASSIFICATION,
        3,
        crops,
        crops.labels,
        np.array([0, 0, 1, 1]),
        0,
        lambda t, p: 0.0,
    )
    again = _round_trip(ensemble, tmp_path / "folds")
    assert len(again.members) == 2 and again.name == "cnn-gru"
    np.testing.assert_allclose(_outputs(again, crops), _outputs(ensemble, crops), rtol=1e-5, atol=1e-6)


def test_clip_classifiers_and_their_fold_ensemble_round_trip(tmp_path):
    dev = _pooled(60, seed=1)
    for name in ("mlp-late-fusion", "logistic"):
        head = get_head(name)({"epochs": 3} if name != "logistic" else {}, Problem.CLIP_CLASSIFICATION, 3, seed=0)
        head.fit(dev, dev, _macro)
        again = _round_trip(head, tmp_path / name)
        for modality, outputs in head.predict_each(dev).items():
            np.testing.assert_allclose(again.predict_each(dev)[modality], outputs, rtol=1e-5, atol=1e-6)
    raw = _pooled(60, seed=1)
    _, ensemble = cross_validate(get_head("mlp-late-fusion"), {"epochs": 2}, raw, np.arange(60) % 3, 0, _macro, 3)
    again = _round_trip(ensemble, tmp_path / "folds")
    np.testing.assert_allclose(again.predict(raw), ensemble.predict(raw), rtol=1e-5, atol=1e-6)


class _Payload:
    """What an attacker plants: unpickling it writes a marker file (it could do anything)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "the pickle ran"))


def test_predict_refuses_a_planted_pickle_and_never_unpickles_it(workdir, emi_root):
    import torch

    result = runner.invoke(app, ["track", "emi", "--data", str(emi_root), "--features", "egemaps", "--head", "ridge", "-q"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    official = next(workdir.glob("submissions/emi/*/predictions.csv"))
    run_id = official.parent.name
    (state,) = workdir.glob("artifacts/emi/models/*/artifacts/artifacts/state")  # the logged model's files in the store
    assert json.loads((state / "head.json").read_text())["model"]["name"] == "ridge"
    assert not list(state.parent.parent.rglob("*.pkl")), "the pyfunc wrapper is logged from code, not pickled"

    # a run saved the old way (a pickled head) is refused with the way out, and converted on request
    torch.save(read_model(state), state / "head.pt")
    (state / "head.json").unlink()
    (state / "head.safetensors").unlink()
    old = runner.invoke(app, ["predict", run_id, "--data", str(emi_root), "--out", str(workdir / "old")])
    assert old.exit_code != 0 and "challenge reexport" in str(old.exception) and "--trust-pickle" in str(old.exception)
    assert runner.invoke(app, ["reexport", run_id]).exit_code != 0  # never without the explicit flag
    converted = runner.invoke(app, ["reexport", run_id, "--trust-pickle"])
    assert converted.exit_code == 0, converted.output + repr(converted.exception)
    again = runner.invoke(app, ["predict", run_id, "--data", str(emi_root), "--out", str(workdir / "again")])
    assert again.exit_code == 0, again.output + repr(again.exception)
    assert (workdir / "again" / "predictions.csv").read_text() == official.read_text()

    # an attacker who can write artifacts replaces the model's head with a pickle payload
    (new,) = set(workdir.glob("artifacts/emi/models/*/artifacts/artifacts/state")) - {state}
    marker = workdir / "pwned"
    (new / "head.pt").write_bytes(pickle.dumps(_Payload(marker)))
    (new / "head.json").unlink()
    refused = runner.invoke(app, ["predict", run_id, "--data", str(emi_root), "--out", str(workdir / "p")])
    assert refused.exit_code != 0 and "pickle" in str(refused.exception)
    live = runner.invoke(app, ["live", str(workdir / "none.mp4"), "--model", run_id])
    assert live.exit_code != 0 and "pickle" in str(live.exception)
    assert not marker.exists() and not (workdir / "p").exists()
