import numpy as np
import pytest

from challenge.errors import ChallengeError
from submissions.affwild import read_sample_file, validate_affwild, write_affwild


@pytest.fixture
def sample(tmp_path):
    path = tmp_path / "sample.txt"
    rows = [f"{v}/{i:05d}.jpg,0" for v in ("a", "b") for i in range(1, 4)]
    path.write_text("\n".join(["image_location,Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other", *rows]) + "\n")
    return path


HEADER = "image_location,Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other"


def _file(tmp_path, rows, header=HEADER):
    path = tmp_path / "expr.txt"
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


GOOD = ["a/00001.jpg,0", "a/00002.jpg,4", "a/00003.jpg,7", "b/00001.jpg,1", "b/00002.jpg,1", "b/00003.jpg,2"]


def test_writer_follows_the_sample_file(tmp_path, sample):
    predictions = {"a": np.array([0, 4, 7]), "b": np.array([1, 1])}  # b lacks frame 3: the last decision repeats
    path = write_affwild("expr", tmp_path / "out.txt", predictions, sample, ["a", "b"])
    assert path.read_text().splitlines() == [HEADER, *GOOD[:5], "b/00003.jpg,1"]
    assert read_sample_file(sample)[0] == "a/00001.jpg"


@pytest.mark.parametrize(
    "rows, header, expected",
    [
        (GOOD[:-1], HEADER, "missing frame (1):\n  - b/00003.jpg"),
        ([*GOOD, "b/00004.jpg,0"], HEADER, "frame not in the sample file (1):\n  - line 8: b/00004.jpg"),
        ([GOOD[1], GOOD[0], *GOOD[2:]], HEADER, "wrong order (1):\n  - line 2: a/00002.jpg, the sample file has a/00001.jpg there"),
        (GOOD, "image_location,Neutral,Anger", "header (1)"),
        (["a/00001.jpg,9", *GOOD[1:]], HEADER, "bad value (1):\n  - line 2 (a/00001.jpg): expected one class index 0..7"),
    ],
)
def test_validator_failures(tmp_path, sample, rows, header, expected):
    problems = validate_affwild("expr", _file(tmp_path, rows, header), sample, ["a", "b"])
    assert any(expected in p for p in problems), problems


def test_validator_checks_the_test_name_list(tmp_path, sample):
    problems = validate_affwild("expr", _file(tmp_path, GOOD), sample, ["a"])
    assert any("video not in the test-set list (3)" in p for p in problems)
    assert validate_affwild("expr", _file(tmp_path, GOOD), sample, ["a", "b"]) == []


def test_writer_refuses_missing_videos_and_bad_values(tmp_path, sample):
    with pytest.raises(ChallengeError, match=r"no predictions for 1 test video"):
        write_affwild("expr", tmp_path / "o.txt", {"a": np.zeros(3)}, sample, ["a", "b"])
    va_sample = tmp_path / "va.txt"
    va_sample.write_text("image_location,valence,arousal\na/00001.jpg,0,0\n")
    path = write_affwild("va", tmp_path / "va_out.txt", {"a": np.array([[2.0, -0.5]])}, va_sample, ["a"])
    assert path.read_text().splitlines()[1] == "a/00001.jpg,1.000000,-0.500000"  # clipped into [-1, 1]


def test_demo_sample_files_validate_against_themselves(affwild_root):
    from tracks.affwild2.reader import LABELS, read_test_names

    for track, short in (("va", "VA"), ("expr", "Expr"), ("au", "AU"), ("ce", "CE")):
        sample = affwild_root / "prediction_files_format" / f"CVPR_6th_ABAW_{short}_test_set_sample.txt"
        assert validate_affwild(track, sample, sample, read_test_names(affwild_root, LABELS[track])) == []


def test_a_large_submission_in_sample_order_is_validated_in_little_memory(tmp_path):
    """The 300 MB case, scaled down: a 20 MB AU file and its sample file are read side by side,
    a line at a time; Python's allocations stay far below the file's size (the old reader held
    every line and an index of them: about 10x the file, benchmarks/validate_memory.py)."""
    import tracemalloc

    header = "image_location,AU1,AU2,AU4,AU6,AU7,AU10,AU12,AU15,AU23,AU24,AU25,AU26"
    submission, sample = tmp_path / "au.txt", tmp_path / "sample.txt"
    with open(submission, "w") as out, open(sample, "w") as ref:
        out.write(header + "\n")
        ref.write(header + "\n")
        for i in range(480_000):
            location = f"video_{i // 10000:03d}/{i % 10000 + 1:05d}.jpg"
            out.write(location + ",0,1,0,0,1,0,1,0,0,0,1,0\n")
            ref.write(location + ",0,0,0,0,0,0,0,0,0,0,0,0\n")
    size = submission.stat().st_size
    assert size > 20 * 2**20
    tracemalloc.start()
    problems = validate_affwild("au", submission, sample, [])
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert problems == [] and peak < 0.05 * size, (problems, peak, size)
