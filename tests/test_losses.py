"""The peers' losses against values computed by hand, and chosen per head by `head_params`."""

from __future__ import annotations

import math

import pytest
import torch

from challenge.training.losses import binary_focal_loss, ccc, ccc_loss, focal_loss


def test_ccc_equals_lins_formula_worked_by_hand():
    x, y = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([2.0, 2.0, 5.0])
    # means 2 and 3; population variances 2/3 and 2; covariance ((-1)(-1) + 0 + (1)(2)) / 3 = 1
    expected = 2 * 1 / (2 / 3 + 2 + (2 - 3) ** 2)  # = 6/11
    assert ccc(x, y).item() == pytest.approx(expected, abs=1e-6) and expected == pytest.approx(6 / 11)
    two = ccc_loss(torch.stack([x, x], 1), torch.stack([y, x], 1))  # second column: perfect agreement
    assert two.item() == pytest.approx(((1 - 6 / 11) + 0) / 2, abs=1e-6)


def test_focal_loss_by_hand_and_its_limits():
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0], [1.0, 1.0, 3.0]])
    target = torch.tensor([0, 1, -1])  # the third row is unannotated
    p0 = math.exp(2) / (math.exp(2) + 2)
    p1 = 1 / 3
    by_hand = ((1 - p0) ** 2 * -math.log(p0) + (1 - p1) ** 2 * -math.log(p1)) / 2
    assert focal_loss(logits, target, gamma=2.0).item() == pytest.approx(by_hand, abs=1e-6)
    # gamma 0 is the cross-entropy; class weights average as in torch's weighted cross-entropy
    weight = torch.tensor([2.0, 1.0, 1.0])
    assert focal_loss(logits, target, gamma=0.0, weight=weight).item() == pytest.approx(
        torch.nn.functional.cross_entropy(logits, target, weight=weight, ignore_index=-1).item(), abs=1e-6
    )
    assert focal_loss(logits, torch.tensor([-1, -1, -1])).item() == 0.0


def test_binary_focal_loss_by_hand():
    logits, target = torch.tensor([[0.0, 2.0]]), torch.tensor([[1.0, 0.0]])
    p_first, p_second = 0.5, 1 - 1 / (1 + math.exp(-2))  # probability of the true value
    by_hand = ((1 - p_first) ** 3 * -math.log(p_first) + (1 - p_second) ** 3 * -math.log(p_second)) / 2
    assert binary_focal_loss(logits, target, gamma=3.0).item() == pytest.approx(by_hand, abs=1e-6)


def test_the_loss_is_a_head_parameter_checked_against_the_problem(emi_root):
    from challenge.config import load_config
    from challenge.errors import ChallengeError
    from challenge.heads import get_head
    from challenge.registry import get_track
    from challenge.run.selection import head_overrides
    from challenge.track import Problem

    config = load_config(None, {"track": "emi", "data": str(emi_root)}, get_track("emi"))
    config.head_params = {"loss": "ccc"}
    assert head_overrides(config, get_head("lstm"), Problem.CLIP_REGRESSION)["loss"] == "ccc"
    config.head_params = {"loss": "focal"}
    with pytest.raises(ChallengeError, match="loss 'focal' is not one of the clip-regression losses: mse, ccc"):
        head_overrides(config, get_head("lstm"), Problem.CLIP_REGRESSION)
    assert head_overrides(config, get_head("gru"), Problem.FRAME_CLASSIFICATION)["loss"] == "focal"
    config.head_params = {"hiden": 3}
    with pytest.raises(ChallengeError, match="no parameter 'hiden'"):
        head_overrides(config, get_head("lstm"), Problem.CLIP_REGRESSION)


def test_epochs_or_window_for_a_head_without_them_is_refused_before_extraction(tmp_path):
    """Dropped silently, --epochs 3 on the logistic head would run something else than asked."""
    from typer.testing import CliRunner

    from challenge.app.cli import app

    missing = tmp_path / "not-a-dataset"  # never read: the refusal comes first
    result = CliRunner().invoke(app, ["track", "emi", "--data", str(missing), "--head", "ridge", "--epochs", "3"])
    assert result.exit_code != 0
    message = str(result.exception)
    assert "--epochs given, but the ridge head has no such parameter; its parameters: " in message, message
    assert "choose a head that has it: clip-transformer, lstm" in message and "lstm-frames" not in message  # heads for EMI only
    result = CliRunner().invoke(app, ["track", "expr", "--data", str(missing), "--head", "lstm-frames", "--window", "64", "--epochs", "2"])
    assert "no such parameter" not in str(result.exception) and "not-a-dataset" in str(result.exception)  # it has both: the data is next


@pytest.mark.parametrize("problem,loss", [("frame-classification", "focal"), ("frame-multilabel", "focal"), ("frame-regression", "mse")])
def test_a_frame_head_trains_with_the_chosen_loss(tmp_path, problem, loss):
    """The chosen loss is the one the loop minimises: training with it lowers it."""
    import numpy as np
    from test_frame_heads import synthetic_videos

    from challenge.heads import get_head
    from challenge.track import Problem

    train = synthetic_videos(tmp_path, 3, seed=1)
    if problem == "frame-multilabel":
        train.labels = [np.stack([(y[:, 0] == 0), (y[:, 0] == 1)], 1).astype(np.float32) for y in train.labels]
    elif problem == "frame-regression":
        train.labels = [np.where(y >= 0, y / 2 - 0.5, -5).astype(np.float32) for y in train.labels]
    outputs = 3 if problem == "frame-classification" else (2 if problem == "frame-multilabel" else 1)
    head = get_head("gru")({"epochs": 8, "patience": 8, "loss": loss}, Problem(problem), outputs, seed=0)
    head.fit(train, train, lambda t, p: 0.0)
    losses = [row["train_loss"] for row in head.history]
    assert np.isfinite(losses).all() and losses[-1] < 0.8 * losses[0], losses
