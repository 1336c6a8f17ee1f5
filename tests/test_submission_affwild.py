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
    from challenge.data.affwild import read_test_names, LABELS

    for track, short in (("va", "VA"), ("expr", "Expr"), ("au", "AU"), ("ce", "CE")):
        sample = affwild_root / "prediction_files_format" / f"CVPR_6th_ABAW_{short}_test_set_sample.txt"
        assert validate_affwild(track, sample, sample, read_test_names(affwild_root, LABELS[track])) == []
