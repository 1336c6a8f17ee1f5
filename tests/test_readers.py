import shutil

import numpy as np
import pytest

from challenge.errors import ChallengeError
from tracks.affwild2.reader import read_affwild
from tracks.hume.reader import EMOTIONS, read_hume


@pytest.fixture
def emi_copy(emi_root, tmp_path):
    return shutil.copytree(emi_root, tmp_path / "emi")


@pytest.fixture
def affwild_copy(affwild_root, tmp_path):
    return shutil.copytree(affwild_root, tmp_path / "affwild")


def test_emi_reader_builds_the_samples_table(emi_root):
    samples = read_hume(emi_root)
    assert samples.counts() == {"train": 12, "valid": 6, "test": 4}
    first = samples.split("train")[0]
    assert first.id == "00000" and first.labels.shape == (len(EMOTIONS),)
    assert first.audio.name == "00000.mp3" and first.video.name == "00000.mp4"
    assert first.frames_dir.name == "00000" and set(first.provided) == {"wav2vec2", "vit"}
    test = samples.split("test")[0]
    assert test.labels is None and test.audio == test.video  # test audio comes from the video track
    assert samples.to_frame().shape[0] == 22


def _rewrite(path, transform):
    lines = path.read_text().splitlines()
    path.write_text("\n".join(transform(lines)) + "\n")


def test_emi_wrong_header_names_file_and_expected_header(emi_copy):
    _rewrite(emi_copy / "train_split.csv", lambda lines: ["Filename,Joy,Amusement"] + lines[1:])
    with pytest.raises(ChallengeError, match=r"train_split.csv line 1: header is 'Filename,Joy,Amusement', expected 'Filename,Admiration"):
        read_hume(emi_copy)


def test_emi_bad_lines_are_listed_with_line_numbers(emi_copy):
    def damage(lines):
        lines[2] = "00001,0.1,0.2"  # too few columns
        lines[3] = "00002,0.1,0.2,0.3,0.4,0.5,1.7"  # out of range
        lines[4] = "00003,0.1,x,0.3,0.4,0.5,0.6"
        return lines

    _rewrite(emi_copy / "train_split.csv", damage)
    with pytest.raises(ChallengeError) as error:
        read_hume(emi_copy)
    message = str(error.value)
    assert "3 bad line(s)" in message
    assert "line 3: 3 columns, expected 7" in message
    assert "line 4: intensities must be in [0, 1]" in message
    assert "line 5: non-numeric" in message


def test_emi_missing_media_is_an_error_or_counted_when_skipped(emi_copy):
    for folder, suffix in (("raw", ".mp4"), ("audio", ".mp3")):
        (emi_copy / folder / f"00004{suffix}").unlink()
    shutil.rmtree(emi_copy / "face_images" / "00004")
    for kind in ("wav2vec2", "vit"):
        (emi_copy / kind / "00004.pkl").unlink(missing_ok=True)
    with pytest.raises(ChallengeError, match=r"(?s)1 labelled clip\(s\) have no media:\n  - 00004 \(train_split.csv\).*--skip-missing"):
        read_hume(emi_copy)
    samples = read_hume(emi_copy, on_missing="skip")
    assert len(samples.split("train")) == 11 and samples.skipped[0].startswith("00004")


def test_emi_missing_folder(tmp_path):
    with pytest.raises(ChallengeError, match="dataset folder not found"):
        read_hume(tmp_path / "nope")


def test_affwild_reader_frames_labels_and_pairs(affwild_root):
    samples = read_affwild(affwild_root, "expr")
    counts = samples.counts()
    assert counts["train"] == 4 and counts["valid"] == 2 and counts["test"] == 2  # the pair adds one video
    left = next(s for s in samples if s.id.endswith("_left"))
    right = next(s for s in samples if s.id.endswith("_right"))
    assert left.video == right.video and left.video.stem == left.id[: -len("_left")]
    assert left.frames_dir != right.frames_dir
    sample = samples.split("train")[0]
    assert sample.labels.shape == (len(sample.frame_index), 1) and sample.frame_index[0] == 1
    assert (sample.labels == -1).any()  # invalid frames are kept, marked
    va = read_affwild(affwild_root, "va").split("train")[0]
    assert va.labels.shape[1] == 2 and (va.labels == -5).any()
    au = read_affwild(affwild_root, "au").split("valid")[0]
    assert au.labels.shape[1] == 12


def _first_annotation(root, folder):
    return sorted((root / "6th_ABAW_Annotations" / folder / "Train_Set").glob("*.txt"))[0]


def test_affwild_wrong_header(affwild_copy):
    path = _first_annotation(affwild_copy, "EXPR_Recognition_Challenge")
    _rewrite(path, lambda lines: ["Neutral,Anger"] + lines[1:])
    with pytest.raises(
        ChallengeError,
        match=rf"EXPR annotation {path.name} line 1: header 'Neutral,Anger' has 2 column\(s\), expected 8: Neutral,Anger,Disgust",
    ):
        read_affwild(affwild_copy, "expr")


def test_affwild_out_of_range_and_column_count(affwild_copy):
    path = _first_annotation(affwild_copy, "VA_Estimation_Challenge")

    def damage(lines):
        lines[1] = "1.5,0.2"
        lines[2] = "0.1"
        return lines

    _rewrite(path, damage)
    with pytest.raises(ChallengeError) as error:
        read_affwild(affwild_copy, "va")
    assert "line 2 (frame 00001): 1.5,0.2 outside [-1, 1]" in str(error.value)
    assert "line 3 (frame 00002): 1 value(s), expected 2" in str(error.value)


def test_affwild_crops_past_the_annotation_are_ignored_not_fatal(affwild_copy):
    # the real corpus has crop folders running past the last annotated line: the annotation rules
    path = _first_annotation(affwild_copy, "AU_Detection_Challenge")
    _rewrite(path, lambda lines: lines[:10])
    sample = next(s for s in read_affwild(affwild_copy, "au") if s.id == path.stem)
    assert len(sample.labels) == 9 and list(sample.frame_index) == list(range(1, 10))


def test_affwild_missing_media_is_counted(affwild_copy):
    path = _first_annotation(affwild_copy, "EXPR_Recognition_Challenge")
    shutil.rmtree(affwild_copy / "cropped_aligned" / path.stem)
    source = path.stem.removesuffix("_left").removesuffix("_right")
    (affwild_copy / "videos" / f"{source}.mp4").unlink()
    samples = read_affwild(affwild_copy, "expr")
    assert any(item.startswith(path.stem) for item in samples.skipped)
    assert path.stem not in {s.id for s in samples}


def test_affwild_without_annotations(tmp_path):
    (tmp_path / "cropped_aligned").mkdir()
    with pytest.raises(ChallengeError, match="no EXPR annotation folder"):
        read_affwild(tmp_path, "expr")


def test_demo_labels_follow_the_drawn_attributes():
    from tracks.hume.demo import emi_targets

    smiling, frowning = emi_targets(1, 0.5, 0.5, 0.5), emi_targets(0, 0.5, 0.5, 0.5)
    assert smiling[5] > frowning[5]  # Joy rises with the smile
    assert np.all((emi_targets(1, 1, 1, 1) <= 1) & (emi_targets(0, 0, 0, 0) >= 0))
