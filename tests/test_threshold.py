"""The decision threshold of two-class tracks: a monotone move of the probabilities, tuned on
the rows it is given, saved with the post-processing."""

import numpy as np

from challenge.postprocess import PostProcess, shift_threshold
from challenge.track import Problem
from tracks.bah.ah import TRACK, score


def test_shift_decides_by_the_threshold_and_keeps_the_ranking():
    rng = np.random.default_rng(0)
    p1 = rng.uniform(size=500)
    outputs = np.stack([1 - p1, p1], 1)
    for t in (0.2, 0.5, 0.73):
        moved = shift_threshold(outputs, t)
        assert np.array_equal(moved.argmax(1), (p1 > t).astype(int))
        assert np.array_equal(np.argsort(moved[:, 1], kind="stable"), np.argsort(p1, kind="stable"))
        assert np.allclose(moved.sum(1), 1)


def test_tuned_threshold_finds_the_shifted_boundary_and_is_saved():
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 2, 400)
    p1 = 0.3 * truth + rng.uniform(0, 0.4, 400)  # class 1 lies above 0.3 (up to 0.7), class 0 below 0.4
    outputs = np.stack([1 - p1, p1], 1)
    post = PostProcess(Problem.CLIP_CLASSIFICATION, tune_threshold=True)
    tuned = post.fit(TRACK, truth, outputs, [1] * 400).value
    assert 0.25 <= post.threshold <= 0.55 and tuned > score(truth, outputs).value + 0.1 and post.score_at_half is not None
    again = PostProcess.from_state(post.state())
    assert again.threshold == post.threshold and np.array_equal(again.apply(outputs, [1] * 400), post.apply(outputs, [1] * 400))
    assert PostProcess(Problem.CLIP_CLASSIFICATION).calibrate(outputs) is outputs  # 0.5 unless tuned
