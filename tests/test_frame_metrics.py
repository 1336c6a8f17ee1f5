import numpy as np
import pytest
from sklearn.metrics import f1_score

from challenge.frame_metrics import au_score, classification_score, tune_au_thresholds, va_score
from challenge.metrics import ccc
from tracks.affwild2.ce import zero_shot_from_expr
from tracks.affwild2.expr import score as expr_score


def one_hot(classes, n):
    return np.eye(n)[classes]


def test_expr_excludes_invalid_frames_hand_case():
    truth = np.array([0, 0, 1, -1, -1, 2])[:, None]
    decisions = np.array([0, 1, 1, 2, 2, 2])
    # valid frames: 0->0, 0->1, 1->1, 2->2: F1 class0 = 2/3, class1 = 2/3, class2 = 1; classes 3-7 have none: 0
    assert expr_score(truth, one_hot(decisions, 8)).value == pytest.approx((2 / 3 + 2 / 3 + 1) / 8)
    valid = truth[:, 0] >= 0
    sk = f1_score(truth[valid, 0], decisions[valid], labels=range(8), average="macro", zero_division=0)
    assert classification_score(truth, one_hot(decisions, 8), list("abcdefgh")).value == pytest.approx(sk)


def test_va_uses_population_ccc_and_skips_minus_five():
    rng = np.random.default_rng(0)
    truth = rng.uniform(-1, 1, (50, 2))
    prediction = truth * 0.5 + rng.normal(0, 0.1, (50, 2))
    marked = truth.copy()
    marked[:5, 0] = -5  # five frames without valence
    value = va_score(marked, prediction).value
    assert value == pytest.approx((ccc(truth[5:, 0], prediction[5:, 0]) + ccc(truth[:, 1], prediction[:, 1])) / 2)


def test_au_rows_with_minus_one_are_excluded_and_thresholds_tuned():
    truth = np.array([[1, 0], [0, 1], [1, 1], [-1, -1]])
    probabilities = np.array([[0.4, 0.1], [0.2, 0.9], [0.45, 0.8], [0.9, 0.9]])
    names = ["AU1", "AU2"]
    assert au_score(truth, probabilities, names).details == {"AU1": 0.0, "AU2": 1.0}
    thresholds = tune_au_thresholds(truth, probabilities)
    assert thresholds[0] <= 0.4 and au_score(truth, probabilities, names, thresholds).value == pytest.approx(1.0)


def test_zero_shot_compound_rule():
    expr = np.full((1, 8), 0.01)
    expr[0, 4], expr[0, 6] = 0.5, 0.4  # Happiness and Surprise
    compound = zero_shot_from_expr(expr)
    assert compound.argmax() == 1 and compound.sum() == pytest.approx(1.0)  # Happily_Surprised
