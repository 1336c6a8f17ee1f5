import pickle

import numpy as np
import pytest
import torch

from challenge.errors import ChallengeError
from challenge.features import FeatureStore, make_extractor
from challenge.features.extract import extract
from challenge.features.provided import load_numpy_pickle
from challenge.media import read_audio
from challenge.networks.wav2vec2 import load_wav2vec2
from tracks.hume.reader import read_hume


def _features(extractor, samples):
    store = FeatureStore()
    report = extract(extractor, samples, store, device="cpu")
    return {sid: store.load(extractor, digest)[0] for sid, digest in report.digests.items()}


def test_wav2vec2_steps_at_50_hz_from_a_local_checkpoint(emi_root, models, store_root):
    samples = read_hume(emi_root).split("valid")
    features = _features(make_extractor("wav2vec2", model=str(models["wav2vec2"])), samples)
    sample = samples[0]
    seconds = len(read_audio(sample.audio)) / 16000
    assert abs(len(features[sample.id]) - 50 * seconds) <= 2
    assert features[sample.id].shape[1] == 32 and np.isfinite(features[sample.id]).all()


def test_wav2vec2_emotion_head_adds_three_outputs(emi_root, models, store_root):
    samples = read_hume(emi_root).split("valid")[:2]
    plain = _features(make_extractor("wav2vec2", model=str(models["wav2vec2-emotion"]), emotion_head=False), samples)
    with_head = _features(make_extractor("wav2vec2", model=str(models["wav2vec2-emotion"])), samples)
    sid = samples[0].id
    assert with_head[sid].shape[1] == plain[sid].shape[1] + 3
    np.testing.assert_allclose(with_head[sid][:, :-3], plain[sid], atol=1e-3)


def test_plain_wav2vec2_checkpoint_loads_its_encoder_weights(models):
    from transformers import Wav2Vec2Model

    loaded = load_wav2vec2(str(models["wav2vec2"]))
    reference = Wav2Vec2Model.from_pretrained(str(models["wav2vec2"]))
    assert not loaded.has_head
    for name, tensor in reference.state_dict().items():
        torch.testing.assert_close(loaded.wav2vec2.state_dict()[name], tensor)


def test_layer_choice_changes_features(emi_root, models, store_root):
    samples = read_hume(emi_root).split("valid")[:1]
    last = _features(make_extractor("wav2vec2", model=str(models["wav2vec2"])), samples)
    mean = _features(make_extractor("wav2vec2", model=str(models["wav2vec2"]), average_layers=True), samples)
    assert not np.allclose(last[samples[0].id], mean[samples[0].id])


def test_mae_embedding_does_not_depend_on_the_patch_shuffle(emi_root, models, store_root):
    samples = read_hume(emi_root).split("valid")[:1]
    extractor = make_extractor("mae", model=str(models["mae"]), bf16=False)
    runner = extractor.build("cpu")
    prepared = runner.prepare(samples[0].frames_dir)
    torch.manual_seed(0)
    first = runner.forward(prepared).array
    torch.manual_seed(123)
    second = runner.forward(prepared).array
    np.testing.assert_array_equal(first, second)
    assert first.shape == (len(list(samples[0].frames_dir.iterdir())), 32)
    assert runner.forward(prepared).index[0] == 1


def test_mae_reads_video_frames_when_there_are_no_crops(emi_root, models):
    runner = make_extractor("mae", model=str(models["mae"])).build("cpu")
    video = read_hume(emi_root).split("test")[0].video
    result = runner.forward(runner.prepare(video))
    assert result.frame_rate == 10.0 and len(result.array) >= 20


def test_timm_backend_fails_with_a_clear_message_when_timm_is_missing(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_timm(name, *args, **kwargs):
        if name == "timm":
            raise ImportError("No module named 'timm'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_timm)
    with pytest.raises(ChallengeError, match=r"timm backend needs timm.*pip install 'challenge\[timm\]'"):
        make_extractor("mae", backend="timm").build("cpu")


def test_provided_features_and_missing_files_are_reported(emi_root, store_root):
    samples = read_hume(emi_root)
    report = extract(make_extractor("provided", kind="vit"), samples, FeatureStore())
    test_ids = {s.id for s in samples.split("test")}  # the organisers ship no test pickles here
    assert set(report.missing_media) == test_ids | {"00003", "00013"}  # demo leaves out vit of clips ending in 3
    assert report.computed == len(samples) - len(report.missing_media)


class Evil:
    def __reduce__(self):
        import os

        return (os.system, ("echo owned",))


def test_restricted_unpickler_refuses_anything_but_numpy(tmp_path):
    good, bad = tmp_path / "good.pkl", tmp_path / "bad.pkl"
    good.write_bytes(pickle.dumps(np.ones((4, 3), np.float32)))
    bad.write_bytes(pickle.dumps(Evil()))
    assert load_numpy_pickle(good).shape == (4, 3)
    with pytest.raises(ChallengeError, match=r"bad.pkl: refused to load posix.system"):
        load_numpy_pickle(bad)


@pytest.mark.parametrize("name, width", [("egemaps", 25), ("compare", 65)])
def test_opensmile_low_level_descriptors(emi_root, store_root, name, width):
    """eGeMAPS (25 descriptors) and ComParE 2016 (65), both at 100 rows a second, with distinct
    cache keys."""
    samples = read_hume(emi_root).split("valid")[:1]
    features = _features(make_extractor(name), samples)[samples[0].id]
    seconds = len(read_audio(samples[0].audio)) / 16000
    assert features.shape[1] == width and abs(len(features) - 100 * seconds) < 10
    assert make_extractor("compare").cache_key() != make_extractor("egemaps").cache_key()
