import numpy as np
import pytest
from scipy.stats import pearsonr
from sklearn.metrics import f1_score

from challenge.metrics import ccc, macro_f1, mean_binary_f1, mean_pearson, pearson
from tracks.emi import score as emi_score


def test_pearson_matches_scipy():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=50), rng.normal(size=50)
    assert pearson(x, y) == pytest.approx(pearsonr(x, y).statistic, abs=1e-12)
    assert pearson(x, np.ones(50)) == 0.0  # constant prediction: no correlation, not NaN


def test_emi_score_is_the_mean_of_six_pearsons():
    rng = np.random.default_rng(1)
    truth, prediction = rng.uniform(size=(40, 6)), rng.uniform(size=(40, 6))
    expected = [pearsonr(truth[:, j], prediction[:, j]).statistic for j in range(6)]
    score = emi_score(truth, prediction)
    assert score.value == pytest.approx(np.mean(expected))
    assert list(score.details.values()) == pytest.approx(expected)
    assert mean_pearson(truth, truth)[0] == pytest.approx(1.0)


def test_ccc_hand_computed_with_population_statistics():
    x, y = np.array([1.0, 2.0, 3.0, 4.0]), np.array([2.0, 2.0, 4.0, 5.0])
    # means 2.5 and 3.25; population cov 1.375, var_x 1.25, var_y 1.6875
    expected = 2 * 1.375 / (1.25 + 1.6875 + 0.75**2)
    assert ccc(x, y) == pytest.approx(expected)
    pitfall = 2 * np.cov(x, y)[0, 1] / (x.var() + y.var() + 0.75**2)  # ddof=1 covariance
    assert ccc(x, y) != pytest.approx(pitfall)
    assert ccc(x, x) == pytest.approx(1.0)


def test_macro_f1_hand_case_and_sklearn():
    truth, prediction = np.array([0, 0, 1, 1, 2]), np.array([0, 1, 1, 1, 0])
    # class 0: p 1/2 r 1/2 f 1/2; class 1: p 2/3 r 1 f 0.8; class 2: f 0
    assert macro_f1(truth, prediction, 3) == pytest.approx((0.5 + 0.8 + 0) / 3)
    assert macro_f1(truth, prediction, 8) == pytest.approx(f1_score(truth, prediction, labels=range(8), average="macro", zero_division=0))


def test_mean_binary_f1():
    truth = np.array([[1, 0], [1, 1], [0, 1]])
    prediction = np.array([[1, 0], [0, 1], [0, 0]])
    value, per_label = mean_binary_f1(truth, prediction)
    assert per_label == pytest.approx([2 / 3, 2 / 3]) and value == pytest.approx(2 / 3)
