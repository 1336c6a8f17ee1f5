import numpy as np
import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

from challenge.errors import ChallengeError
from challenge.heads import get_head, load_all
from challenge.heads.lstm import GlobalContextLSTM
from challenge.stores.feature_store import StoreEntry
from challenge.track import Problem
from challenge.training.inputs import ClipFeatures, ModalityEntry
from tracks.hume.emi import score as emi_score


def synthetic_clips(tmp_path, n: int, seed: int, dim: int = 8) -> ClipFeatures:
    """Clips whose targets are functions of per-step features (a burst rate and a level)."""
    rng = np.random.default_rng(seed)
    entries, targets = [], []
    for i in range(n):
        steps = int(rng.integers(30, 90))
        level, bursts = rng.uniform(size=2)
        x = rng.normal(0, 1, (steps, dim)).astype(np.float32)
        x[:, 0] += 2 * level
        x[:, 1] += 3 * (rng.uniform(size=steps) < bursts)
        path = tmp_path / f"{seed}-{i}.npy"
        np.save(path, x.astype(np.float16))
        entries.append([ModalityEntry(StoreEntry.for_file(path), steps)])
        targets.append([level, bursts, 1 - level, (level + bursts) / 2, bursts, level])
    data = ClipFeatures([f"{i:05d}" for i in range(n)], entries, [dim], np.array(targets, np.float32))
    return data


def test_final_state_ignores_padding_and_equals_packed_state():
    torch.manual_seed(0)
    model = GlobalContextLSTM(5, 16, 1, 0.0, 8, 6).eval()
    x, lengths = torch.randn(3, 12, 5), torch.tensor([12, 7, 3])
    x_dirty = x.clone()
    x_dirty[1, 7:] = 100.0  # garbage in the padding must not change anything
    x_dirty[2, 3:] = -100.0
    context = torch.randn(3, 10)  # the clip's mean and std
    torch.testing.assert_close(model(x, lengths, context), model(x_dirty, lengths, context))
    alone = model(x[1:2, :7], torch.tensor([7]), context[1:2])
    torch.testing.assert_close(model(x, lengths, context)[1:2], alone)
    _, (h_n, _) = model.lstm(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))
    outputs, _ = model.lstm(x)
    torch.testing.assert_close(outputs[torch.arange(3), lengths - 1], h_n[-1])


def test_fusion_transformer_masks_a_missing_modality_and_the_padding():
    """clip-transformer: what sits in a modality a clip lacks, or after its last step, changes
    nothing; a modality that is there does."""
    from challenge.heads.clip_transformer import ClipFusionTransformer

    torch.manual_seed(0)
    model = ClipFusionTransformer([5, 3], 16, 2, 4, 0.0, 12, 6).eval()
    x, lengths, context = torch.randn(3, 12, 8), torch.tensor([12, 7, 4]), torch.randn(3, 16)
    present = torch.tensor([[True, True], [True, False], [False, True]])
    dirty = x.clone()
    dirty[1, :, 5:] = 50.0  # clip 1 has no second modality
    dirty[2, :, :5] = -50.0  # clip 2 has no first
    dirty[1, 7:], dirty[2, 4:] = 100.0, -100.0  # padding
    torch.testing.assert_close(model(x, lengths, context, present), model(dirty, lengths, context, present))
    changed = x.clone()
    changed[0, :, 5:] += 1.0  # clip 0 has both: its second modality is read
    assert not torch.allclose(model(x, lengths, context, present)[0], model(changed, lengths, context, present)[0])


def test_fusion_transformer_reads_a_repeated_modality_once_per_distinct_row():
    """A slower modality repeated along the first one's steps (faces at 25 fps on 100 Hz audio)
    becomes one token per distinct row, at the step it starts: the output is the one attention
    gives when the repeats are masked out of the full sequence, written out here by hand."""
    from challenge.heads.clip_transformer import ClipFusionTransformer, distinct_steps

    torch.manual_seed(0)
    model = ClipFusionTransformer([5, 3], 16, 2, 4, 0.0, 24, 6).eval()
    x, lengths, context = torch.randn(3, 24, 8), torch.tensor([24, 13, 6]), torch.randn(3, 16)
    x[:, :, 5:] = x[:, ::4, 5:].repeat_interleave(4, dim=1)  # the second modality at a quarter of the rate
    present = torch.tensor([[True, True], [True, True], [True, False]])

    rows, where, hidden = distinct_steps(x[:, :, 5:], torch.arange(24)[None] >= lengths[:, None])
    assert rows.shape[1] == 6 and (~hidden).sum(1).tolist() == [6, 4, 2]
    assert where[1, :4].tolist() == [0, 4, 8, 12]  # clip 1 ends after step 12: its last run is one step long
    torch.testing.assert_close(rows[0], x[0, ::4, 5:])

    padding = torch.arange(24)[None] >= lengths[:, None]
    repeated = torch.zeros(3, 24, dtype=torch.bool)
    repeated[:, 1:] = (x[:, 1:, 5:] == x[:, :-1, 5:]).all(-1)
    tokens, masks = [model.context(context)[:, None]], [torch.zeros(3, 1, dtype=torch.bool)]
    for m, (part, extra) in enumerate(zip(torch.split(x, [5, 3], -1), (torch.zeros_like(repeated), repeated))):
        tokens.append(model.project[m](part) + model.modality[m] + model.position[:24])
        masks.append(padding | ~present[:, m, None] | extra)
    by_hand = model.out(model.encoder(torch.cat(tokens, 1), src_key_padding_mask=torch.cat(masks, 1))[:, 0])
    by_hand = model.intensities(by_hand, context)
    torch.testing.assert_close(model(x, lengths, context, present), by_hand)


def test_windowed_prediction_covers_long_clips(tmp_path):
    data = synthetic_clips(tmp_path, 4, seed=3)
    from challenge.training.loop import ClipBatches

    batches = ClipBatches(data, max_steps=20, seed=0)
    for i in range(len(data)):
        windows = batches.eval_windows(i)
        assert sum(len(w) for w in windows) >= data.steps(i) and all(len(w) <= 20 for w in windows)


CLIP_HEADS = sorted(
    name for name, cls in load_all().items() if Problem.CLIP_REGRESSION in cls.problems and cls.reads == "features"
)  # media heads: tests/test_finetune.py


@pytest.mark.parametrize("name", CLIP_HEADS)
def test_head_beats_shuffled_labels(tmp_path, name):
    train, valid = synthetic_clips(tmp_path, 80, seed=1), synthetic_clips(tmp_path, 60, seed=2)
    normaliser = train.fit_normalisation()
    train.normalise_with(normaliser), valid.normalise_with(normaliser)
    head_cls = get_head(name)
    fast = {"lightgbm": {"n_estimators": 100}}.get(name, {"epochs": 15, "max_steps": 60})
    fast = {k: v for k, v in fast.items() if k in head_cls.defaults}  # ridge has neither: it would refuse them
    score = lambda t, p: emi_score(t, p).value  # noqa: E731
    head = head_cls(fast, Problem.CLIP_REGRESSION, 6, seed=0)
    head.fit(train, valid, score)
    real = score(valid.targets, head.predict(valid))
    shuffled = []
    for seed in range(3):  # one permutation is noisy on 60 clips: average several
        control = train.subset(range(len(train)))
        control.targets = train.targets[np.random.default_rng(seed).permutation(len(train))]
        shuffled_head = head_cls(fast, Problem.CLIP_REGRESSION, 6, seed=0)
        shuffled_head.fit(control, synthetic_clips(tmp_path, 60, seed=10 + seed).normalise_with(normaliser), score)
        shuffled.append(score(valid.targets, shuffled_head.predict(valid)))
    assert real > 0.6, real
    assert real - np.mean(shuffled) > 0.4, (real, shuffled)


def test_same_parameters_and_seed_give_the_same_model(tmp_path):
    train, valid = synthetic_clips(tmp_path, 20, seed=1), synthetic_clips(tmp_path, 10, seed=2)
    score = lambda t, p: emi_score(t, p).value  # noqa: E731
    head_cls = get_head("lstm")
    first, second = (head_cls({"epochs": 2, "hidden": 64}, Problem.CLIP_REGRESSION, 6, seed=5) for _ in range(2))
    first.fit(train, valid, score), second.fit(train, valid, score)
    np.testing.assert_allclose(first.predict(valid), second.predict(valid), atol=1e-6)


def test_the_shuffled_label_control_never_leaves_an_item_its_own_labels():
    """One control for every track: a derangement, for any number of items and any seed."""
    from challenge.training.control import derangement, shuffled

    for n in range(2, 40):
        for seed in range(5):
            source = derangement(n, seed)
            assert sorted(source) == list(range(n)) and (source != np.arange(n)).all()
    sequences = [np.full(3, 0), np.full(5, 1), np.full(2, 2)]
    moved = shuffled(sequences, seed=0)
    assert [len(m) for m in moved] == [3, 5, 2] and all(m[0] != k for k, m in enumerate(moved))


def test_ridge_chooses_alpha_per_emotion_and_the_lstm_starts_from_it(tmp_path):
    """Ridge picks one penalty per output (a pure-noise output gets a heavier one than a clean
    one), and the LSTM's linear path, before any training, predicts exactly what ridge predicts."""
    from challenge.heads.linear import RidgeHead
    from challenge.heads.lstm import ridge_weights

    train, valid = synthetic_clips(tmp_path, 60, seed=1), synthetic_clips(tmp_path, 30, seed=2)
    normaliser = train.fit_normalisation()
    train.normalise_with(normaliser), valid.normalise_with(normaliser)
    train.targets[:, 3] = np.random.default_rng(0).uniform(size=len(train))  # one emotion without signal
    ridge = RidgeHead({}, Problem.CLIP_REGRESSION, 6)
    ridge.fit(train, valid, lambda t, p: emi_score(t, p).value)
    assert ridge.alphas[3] > ridge.alphas[0], ridge.alphas

    model = GlobalContextLSTM(train.dim, 16, 1, 0.0, 8, 6, linear_path=True)
    model.start_from(*ridge_weights(train))
    from challenge.training.loop import predict_clips

    np.testing.assert_allclose(predict_clips(model, valid, 300, "cpu"), ridge.predict(valid), atol=1e-4)


@pytest.mark.parametrize("present", [[0, 2], [0, 1, 2]])
def test_the_clip_classifier_starts_as_logistic_regression_and_keeps_that_start_unless_an_epoch_beats_it(present):
    """The smiles clip classifier's linear path, before any training, gives sklearn's logistic
    regression probabilities, with two classes present (sklearn's one-logit binary fit, as on
    the real-laughter corpora that hold no smiles) and with three. When no epoch beats that
    start on the stop set, training ends with it."""
    from sklearn.linear_model import LogisticRegression

    from challenge.heads.linear import logistic_weights
    from challenge.training.clip_classifier import ClipClassifier, fit_clips, predict_clips

    rng = np.random.default_rng(0)
    y = rng.choice(present, size=120)
    x = (rng.normal(size=(120, 6)) + np.eye(6)[y] * 1.5).astype(np.float32)
    model = ClipClassifier(6, 3, hidden=16, latent=8, linear=True)
    logistic = logistic_weights(x, y, 3, 0.5)
    model.start_from(*logistic)
    expected = np.zeros((120, 3))
    reference = LogisticRegression(C=0.5, max_iter=3000, class_weight="balanced").fit(x, y)
    expected[:, reference.classes_] = reference.predict_proba(x)
    np.testing.assert_allclose(predict_clips(model, x), expected, atol=1e-4)

    start = predict_clips(model, x)
    never_better = lambda truth, probabilities: 0.0  # noqa: E731  every epoch ties the start, none beats it
    params = {"learning_rate": 1e-2, "weight_decay": 0.0, "epochs": 3, "patience": 3}
    best, history = fit_clips(model, x, y, x, y, never_better, 0, params, start=logistic)
    assert len(history) == 3 and best == 0.0
    np.testing.assert_allclose(predict_clips(model, x), start, atol=1e-5)


def two_class_clips(tmp_path, n: int, seed: int) -> ClipFeatures:
    """Two modalities per clip; class 1 when the clip's burst rate (modality 0) is high or its
    level (modality 1) is, each seen through noise: an A/H-like video label."""
    rng = np.random.default_rng(seed)
    entries, labels = [], []
    for i in range(n):
        steps = int(rng.integers(20, 60))
        bursts, level = rng.uniform(size=2)
        a = rng.normal(0, 1, (steps, 4)).astype(np.float32)
        a[:, 0] += 3 * (rng.uniform(size=steps) < bursts)
        b = rng.normal(0, 1, (max(steps // 4, 1), 3)).astype(np.float32)
        b[:, 0] += 2 * level
        row = []
        for m, x in enumerate((a, b)):
            path = tmp_path / f"{seed}-{i}-{m}.npy"
            np.save(path, x.astype(np.float16))
            row.append(ModalityEntry(StoreEntry.for_file(path), len(x)))
        entries.append(row)
        labels.append(int(bursts + level > 1.0))
    return ClipFeatures([f"v{i}" for i in range(n)], entries, [4, 3], np.array(labels, np.float32))


CLASS_HEADS = {
    "logistic": {},
    "lightgbm": {"n_estimators": 100},
    "lstm": {"epochs": 15, "max_steps": 60},
    "clip-transformer": {"epochs": 15, "max_steps": 60, "disagreement": True},
}


@pytest.mark.parametrize("name", sorted(CLASS_HEADS))
def test_video_class_heads_beat_shuffled_labels(tmp_path, name):
    from tracks.bah.ah import score as ah_score

    train, valid = two_class_clips(tmp_path, 120, seed=1), two_class_clips(tmp_path, 80, seed=2)
    normaliser = train.fit_normalisation()
    train.normalise_with(normaliser), valid.normalise_with(normaliser)
    score = lambda t, p: ah_score(t, p).value  # noqa: E731
    head = get_head(name)(CLASS_HEADS[name], Problem.CLIP_CLASSIFICATION, 2, seed=0)
    head.fit(train, valid, score)
    predicted = head.predict(valid)
    assert predicted.shape == (80, 2) and np.allclose(predicted.sum(1), 1, atol=1e-5)
    real, shuffled = score(valid.targets, predicted), []
    for seed in range(3):
        control = train.subset(range(len(train)))
        control.targets = train.targets[np.random.default_rng(seed).permutation(len(train))]
        other = get_head(name)(CLASS_HEADS[name], Problem.CLIP_CLASSIFICATION, 2, seed=0)
        other.fit(control, two_class_clips(tmp_path, 40, seed=10 + seed).normalise_with(normaliser), score)
        shuffled.append(score(valid.targets, other.predict(valid)))
    assert real > 0.7 and real - np.mean(shuffled) > 0.2, (real, shuffled)


def segment_clips(tmp_path, n: int, seed: int) -> ClipFeatures:
    """One modality; an A/H clip holds one segment (20-40 % of its steps) where feature 0 rises,
    and its frame labels mark that segment; a clip without A/H has a weaker rise somewhere, and
    frame labels of 0. Pooled over the whole clip the two overlap; step by step they do not."""
    rng = np.random.default_rng(seed)
    entries, labels, frames = [], [], []
    for i in range(n):
        steps, label = int(rng.integers(40, 90)), int(rng.uniform() < 0.5)
        x = rng.normal(0, 1, (steps, 4)).astype(np.float32)
        length = int(rng.uniform(0.2, 0.4) * steps)
        start = int(rng.integers(0, steps - length))
        x[start : start + length, 0] += 2.0 if label else 0.0
        x[:, 1] += 0.6 * rng.normal()  # a per-clip offset the frames do not explain
        frame = np.zeros(steps * 2, np.int8)  # two frames per feature step
        frame[2 * start : 2 * (start + length)] = label
        path = tmp_path / f"seg-{seed}-{i}.npy"
        np.save(path, x.astype(np.float16))
        entries.append([ModalityEntry(StoreEntry.for_file(path), steps)])
        labels.append(label), frames.append(frame)
    return ClipFeatures([f"v{i}" for i in range(n)], entries, [4], np.array(labels, np.float32), frame_targets=frames)


def test_frame_pooled_learns_from_frame_labels_and_beats_shuffled_labels(tmp_path):
    from tracks.bah.ah import score as ah_score

    train, valid = segment_clips(tmp_path, 100, seed=1), segment_clips(tmp_path, 60, seed=2)
    normaliser = train.fit_normalisation()
    train.normalise_with(normaliser), valid.normalise_with(normaliser)
    assert train.frame_targets_at(0, np.arange(train.steps(0)))[::1].tolist() == train.frame_targets[0][::2].tolist()
    score = lambda t, p: ah_score(t, p).value  # noqa: E731
    params = {"epochs": 12, "channels": 32, "layers": 3}
    head = get_head("frame-pooled")(params, Problem.CLIP_CLASSIFICATION, 2, seed=0)
    head.fit(train, valid, score)
    predicted = head.predict(valid)
    assert predicted.shape == (60, 2) and np.allclose(predicted.sum(1), 1, atol=1e-6)
    real, shuffled = score(valid.targets, predicted), []
    for seed in range(3):  # video and frame labels move together to another video, as the run's control does
        source = np.random.default_rng(seed).permutation(len(train))
        control = train.subset(source)
        control.ids, control.entries = train.ids, train.entries
        other = get_head("frame-pooled")(params, Problem.CLIP_CLASSIFICATION, 2, seed=0)
        other.fit(control, valid, score)
        shuffled.append(score(valid.targets, other.predict(valid)))
    assert real > 0.8 and real - np.mean(shuffled) > 0.25, (real, shuffled)


def test_frame_pooled_refuses_more_than_two_classes():
    head = get_head("frame-pooled")({}, Problem.CLIP_CLASSIFICATION, 3, seed=0)
    with pytest.raises(ChallengeError, match="pools one positive class"):
        head.fit(None, None, None)
