import numpy as np

from challenge.smoothing import smooth_videos, tune_sigma
from challenge.training.frames import audio_on_frames, visual_on_frames


def test_missing_face_frames_take_the_nearest_neighbour_and_are_flagged():
    array = np.array([[1.0], [2.0], [5.0]])  # frames 1, 2 and 5 have crops
    features, filled = visual_on_frames(array, [1, 2, 5], n_frames=7)
    assert features[:, 0].tolist() == [1, 2, 2, 5, 5, 5, 5]  # frame 3 -> 2, 4 -> 5, 6 and 7 -> 5
    assert filled.tolist() == [False, False, True, True, False, True, True]


def test_audio_steps_follow_each_frames_time():
    audio = np.arange(100)[:, None].astype(float)  # 2 s at 50 Hz: the step number is the value
    features = audio_on_frames(audio, step_rate=50.0, n_frames=60, fps=30.0)
    assert features[0, 0] == 0 and features[30, 0] == 50  # frame 31 starts at 1.0 s = step 50
    assert features[15, 0] == 25 and features[-1, 0] == round(59 / 30 * 50)
    short = audio_on_frames(audio[:10], 50.0, 60, 30.0)
    assert short[-1, 0] == 9  # audio shorter than the video: the last step is repeated


def test_smoothing_stays_within_each_video_and_recovers_a_known_signal():
    rng = np.random.default_rng(0)
    t = np.linspace(0, 4 * np.pi, 400)
    clean = np.sin(t)[:, None]
    noisy = clean + rng.normal(0, 0.5, clean.shape)
    smoothed = smooth_videos(noisy, [400], sigma=8)
    assert np.abs(smoothed - clean).mean() < 0.5 * np.abs(noisy - clean).mean()
    two = np.concatenate([np.zeros((50, 1)), np.ones((50, 1))])
    assert np.array_equal(smooth_videos(two, [50, 50], sigma=10), two)  # no bleeding across videos
    assert not np.array_equal(smooth_videos(two, [100], sigma=10), two)


def test_tuned_sigma_prefers_smoothing_on_noisy_outputs_and_none_on_clean():
    rng = np.random.default_rng(1)
    truth = (np.sin(np.linspace(0, 6 * np.pi, 600)) > 0).astype(int)
    noisy = (truth + rng.normal(0, 0.8, 600))[:, None]
    accuracy = lambda v: float(((v[:, 0] > 0.5) == truth).mean())  # noqa: E731
    sigma, scores = tune_sigma(accuracy, noisy, [600])
    assert sigma > 0 and scores[sigma] > scores[0.0] + 0.1
    sigma_clean, _ = tune_sigma(accuracy, truth[:, None].astype(float), [600])
    assert sigma_clean == 0.0
