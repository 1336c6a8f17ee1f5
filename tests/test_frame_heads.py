import numpy as np
import pytest
import torch

from challenge.frame_metrics import classification_score
from challenge.heads import get_head, load_all
from challenge.heads.transformer import FusionTransformer
from challenge.features.store import StoreEntry
from challenge.training.frame_data import FrameEntry, FrameFeatures
from challenge.track import Problem

FRAME_HEADS = sorted(name for name, cls in load_all().items() if Problem.FRAME_CLASSIFICATION in cls.problems)


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
        entries.append([FrameEntry(StoreEntry.for_file(paths[0]), list(range(1, n + 1)), None), FrameEntry(StoreEntry.for_file(paths[1]), None, 20.0)])
        labels.append(label)
        lengths.append(n)
    return FrameFeatures([f"v{v}" for v in range(n_videos)], lengths, [10.0] * n_videos, entries, [6, 4], labels)


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
    params = {"epochs": 6, "window": 32}
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
