import numpy as np
import pytest
from scipy.stats import pearsonr
from sklearn.metrics import f1_score

from challenge.metrics import ccc, macro_f1, mean_binary_f1, mean_pearson, pearson
from tracks.hume.emi import score as emi_score


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


def test_macro_f1_of_a_set_without_smiles_counts_only_the_classes_present():
    """Laughs (0) and None (2) only: the absent Smiles class neither caps the score at 2/3 nor
    counts; the figure equals sklearn's with labels= the classes present, and the 3-class figure
    is kept beside it, labelled."""
    from sklearn.metrics import cohen_kappa_score

    from challenge.metrics import classification_figures, present_macro_f1
    from tracks.smiles.analyses import classification_table

    truth = np.array([0, 0, 0, 2, 2, 2, 2, 0])
    decided = np.array([0, 0, 2, 2, 2, 2, 0, 0])
    expected = f1_score(truth, decided, labels=[0, 2], average="macro")
    assert present_macro_f1(truth, decided) == pytest.approx(expected)
    figures = classification_figures(truth, decided, 3)
    assert figures["macro_f1"] == pytest.approx(expected) and figures["classes_present"] == 2
    assert figures["macro_f1_all_classes"] == pytest.approx(expected * 2 / 3)  # the absent class's 0 counted
    assert figures["kappa"] == pytest.approx(cohen_kappa_score(truth, decided))
    perfect = classification_figures(truth, truth, 3)
    assert perfect["macro_f1"] == 1.0 and perfect["macro_f1_all_classes"] == pytest.approx(2 / 3)
    table = classification_table(truth, decided, ["Laughs", "Smiles", "None"]).set_index("class")
    assert table.loc["macro", "f1"] == pytest.approx(expected) and not table.loc["Smiles", "present"]
    assert table.loc["micro", "f1"] == pytest.approx(f1_score(truth, decided, average="micro"))


def test_grouped_folds_keep_each_recording_in_one_fold_and_change_with_the_seed():
    from challenge.errors import ChallengeError
    from challenge.training.grouped_folds import grouped_folds

    rng = np.random.default_rng(0)
    groups = [f"rec{g}" for g in rng.integers(0, 9, 300)]
    labels = rng.integers(0, 3, 300)
    layouts = []
    for seed in range(4):
        folds = grouped_folds(groups, labels, 4, seed)
        assert set(folds) == {0, 1, 2, 3}
        for group in set(groups):
            assert len({folds[i] for i, g in enumerate(groups) if g == group}) == 1, group
        layouts.append(tuple(folds))
    assert len(set(layouts)) > 1  # seeds put other recordings together
    with pytest.raises(ChallengeError, match="only 9 recordings"):
        grouped_folds(groups, labels, 10, 0)


def test_a_seed_sweep_aggregates_mean_sd_and_gain_seed_by_seed():
    import pandas as pd

    from tracks.smiles.laughs import _gains, _summarise

    model, baseline = [0.70, 0.60, 0.80], [0.50, 0.55, 0.45]
    rows = [
        {"set": "zero-shot", "modality": "audio", "who": who, "figure": "macro_f1", "seed": seed, "value": value}
        for who, values in (("model", model), ("baseline", baseline))
        for seed, value in enumerate(values)
    ]
    table = pd.DataFrame(rows)
    summary = _summarise(table).set_index("who")
    assert summary.loc["model", "mean"] == pytest.approx(0.70) and summary.loc["model", "sd"] == pytest.approx(np.std(model, ddof=1))
    assert summary.loc["baseline", "seeds"] == 3
    gain = _gains(table).iloc[0]
    differences = np.subtract(model, baseline)
    assert gain["gain"] == pytest.approx(differences.mean()) and gain["gain_sd"] == pytest.approx(np.std(differences, ddof=1))
    assert gain["verdict"] == "beats the baseline by more than one sd"
    worse = table.assign(value=np.where(table["who"] == "model", table["value"] - 0.3, table["value"]))
    assert _gains(worse).iloc[0]["verdict"] == "DOES NOT BEAT the baseline"
