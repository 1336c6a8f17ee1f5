"""The VD track on a DVD-layout fixture written apart from the demo writer, and the scene features."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from challenge.app.cli import app
from challenge.errors import ChallengeError
from challenge.features.scene import MotionExtractor, SceneExtractor
from challenge.synthetic.stand_ins import tiny_convnext
from submissions.dvd import validate_zip, write_zip
from tests.fixtures.current_abaw import quirky_dvd
from tracks.dvd.reader import read_dvd
from tracks.dvd.reader import test_frames as decoded_test_frames

runner = CliRunner()


@pytest.fixture(scope="module")
def dvd(tmp_path_factory):
    root = tmp_path_factory.mktemp("dvd")
    return root, quirky_dvd(root)


def test_reader_takes_the_annotation_as_the_frame_axis_and_says_so(dvd, capsys):
    root, made = dvd
    samples = read_dvd(root)
    assert samples.counts() == {"train": 8, "valid": 4, "test": 3}
    for sample in samples:
        folder, frames, labels = made[sample.id]
        if sample.labels is not None:
            rows = len(sample.labels)
            assert abs(rows - frames) <= 1 and np.array_equal(sample.labels[: min(rows, frames), 0], labels[: min(rows, frames)])
    warned = capsys.readouterr().err
    assert "differ from their video by at most 2 frames" in warned and "rows, the video has" in warned
    assert decoded_test_frames(root) == {name: n for name, (folder, n, _) in made.items() if folder == "Test"}


def test_bad_annotations_and_videos_are_named(dvd, tmp_path):
    copy = tmp_path / "dvd"
    shutil.copytree(dvd[0], copy)
    annotation = sorted((copy / "Training" / "annotations").glob("*.csv"))[0]
    original = annotation.read_bytes()
    annotation.write_bytes(b"Frame,Predicted_Label\r\n1,0\r\n")
    with pytest.raises(ChallengeError, match=f"{annotation.name} line 1: header is 'Frame,Predicted_Label'"):
        read_dvd(copy)
    annotation.write_bytes(original + b"".join(f"{i},0\r\n".encode() for i in range(5000, 5010)))
    with pytest.raises(ChallengeError, match="Frame_Number 5000, expected"):
        read_dvd(copy)
    lines = original.decode().splitlines()
    annotation.write_text("\n".join(lines[:-10]) + "\n")
    with pytest.raises(ChallengeError, match="differ from their video by more than 2 frames"):
        read_dvd(copy)
    annotation.write_bytes(original)
    broken = sorted((copy / "Test" / "videos").glob("*.mp4"))[0]
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 200)
    with pytest.raises(ChallengeError, match=f"{broken.name}: cannot be decoded"):
        decoded_test_frames(copy)


def test_zip_holds_one_file_per_video_with_every_decoded_frame(tmp_path):
    frames = {"a": 5, "b": 3}
    path = write_zip(tmp_path, tmp_path / "run", ["a", "b"], [np.array([0, 1, 1, 0, 0]), np.array([1, 1, 1])])
    assert validate_zip(path, frames) == []
    with zipfile.ZipFile(path) as archive:
        assert archive.read("a.csv").decode().splitlines()[:3] == ["Frame_Number,Label", "1,0", "2,1"]
    problems = "\n".join(validate_zip(path, {"a": 6, "c": 1}))
    assert "row count" in problems and "missing video" in problems and "video not in Test/videos" in problems


def test_motion_moves_where_the_scene_does(dvd, tmp_path):
    root, made = dvd
    name = next(n for n, (folder, _, labels) in made.items() if folder == "Training" and labels.any())
    runner_ = MotionExtractor().build("cpu")
    features = runner_.forward(runner_.prepare(root / "Training" / "videos" / f"{name}.mp4"))
    labels = made[name][2]
    assert features.array.shape == (len(labels), 21) and features.frame_rate in (24.0, 30.0)
    changed = features.array[:, 2]
    assert changed[1:][labels[1:] == 1].mean() > 5 * changed[1:][labels[1:] == 0].mean() + 0.01


def test_scene_embeds_frames_at_the_chosen_rate_from_a_folder_or_a_weights_file(dvd, tmp_path):
    root, made = dvd
    video = sorted((root / "Training" / "videos").glob("*.mp4"))[0]
    folder = tiny_convnext(tmp_path / "convnext")
    runner_ = SceneExtractor(model=str(folder), fps=5).build("cpu")
    features = runner_.forward(runner_.prepare(video))
    frames = made[video.stem][1]
    fps = 24 if video.stem.endswith(("1", "3", "5", "7")) else 30
    step = round(fps / 5)
    assert features.frame_rate == pytest.approx(fps / step) and len(features.array) == -(-frames // step)
    assert features.array.shape[1] == 32 and np.isfinite(features.array).all()
    # one weights file (a classifier's checkpoint, its keys under `convnext.`) with the config beside it
    import torch
    from transformers import ConvNextConfig, ConvNextForImageClassification

    single = tmp_path / "single"
    single.mkdir()
    config = ConvNextConfig.from_pretrained(folder)
    torch.save(ConvNextForImageClassification(config).state_dict(), single / "fine-tuned.pt")
    (single / "config.json").write_text(json.dumps(config.to_dict()))
    other = SceneExtractor(model=str(single / "fine-tuned.pt"), fps=5).build("cpu")
    assert other.forward(other.prepare(video)).array.shape == features.array.shape
    (single / "config.json").unlink()
    with pytest.raises(ChallengeError, match="needs the config.json of its architecture beside it"):
        SceneExtractor(model=str(single / "fine-tuned.pt")).build("cpu")


def _vd(root, *extra) -> float:
    args = ["track", "vd", "--data", str(root), "--features", "motion", "--head", "tcn", "--epochs", "8", "-q", *extra]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output + repr(result.exception)
    return float(result.output.split("validation score (macro F1 over 2 classes, all frames): ")[1].split()[0])


def test_track_vd_learns_and_writes_a_valid_zip(workdir, dvd):
    root, made = dvd
    learnt = _vd(root)
    control = np.mean([_vd(root, "--shuffle-labels", "--seed", str(seed)) for seed in range(2)])
    assert learnt > control + 0.2, (learnt, control)
    archive = next(Path("submissions/vd").glob("*/predictions.zip"))
    with zipfile.ZipFile(archive) as z:
        assert sorted(z.namelist()) == sorted(f"{n}.csv" for n, (f, _, _) in made.items() if f == "Test")
    checked = runner.invoke(app, ["validate", "vd", str(archive), "--data", str(root)])
    assert checked.exit_code == 0, checked.output
