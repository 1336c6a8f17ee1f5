"""The A/H track on a BAH-layout fixture written apart from the demo writer (tests/fixtures/current_abaw.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from challenge.app.cli import app
from challenge.errors import ChallengeError
from submissions.bah import probability_pair, validate_trial, write_trial
from tests.fixtures.current_abaw import quirky_bah
from tracks.bah.reader import frame_labels, participant, read_annotation, read_bah, read_yaml

runner = CliRunner()


@pytest.fixture(scope="module")
def bah(tmp_path_factory):
    root = tmp_path_factory.mktemp("bah")
    made = quirky_bah(root)
    return root, made


def test_reader_keeps_participants_placeholders_and_quirks(bah, tmp_path, monkeypatch):
    monkeypatch.setenv("CHALLENGE_TRANSCRIPT_CACHE", str(tmp_path / "texts"))
    root, made = bah
    samples = read_bah(root)
    assert samples.counts() == {"train": 30, "valid": 15, "test": 9}
    test = samples.split("test")
    assert [s.id for s in test] == made["test_order"]  # the organisers' (shuffled) order, kept
    assert all(s.labels is None for s in test)  # placeholder 0s are not labels
    train = samples.split("train")
    assert [int(s.labels) for s in train] == [made["truth"][s.id] for s in train]
    assert participant(train[0].id) == "P101"
    no_crops = [s.id for s in samples if s.frames_dir is None]
    assert no_crops and all(s.endswith("Question_3_2024-01-13_09-00-00_Video.mp4") for s in no_crops)
    texts = {s.id: s.transcript.read_text().strip() for s in samples}
    quoted = [t for t in texts.values() if '"' in t and "," in t]
    assert quoted, "transcripts with commas and quotes are read whole from the split line"
    whisper = [s for s in train if "Question_1" in s.id][0]
    assert texts[whisper.id] == read_yaml(root / "transcription" / whisper.id / f"{Path(whisper.id).stem}.yml")["text"].strip()


def test_frame_labels_come_from_the_annotation(bah, tmp_path, monkeypatch):
    from challenge.media import video_frame_count

    monkeypatch.setenv("CHALLENGE_TRANSCRIPT_CACHE", str(tmp_path / "texts"))
    root, _ = bah
    samples, annotation = read_bah(root), read_annotation(root)
    assert all(s.frame_labels is None for s in samples.split("test"))  # training only
    kinds = set()
    for s in samples:
        if s.split == "test":
            continue
        entry = annotation[s.id]
        if "frame_annotation" in entry:  # every frame listed: read as listed
            kinds.add("listed")
            assert s.frame_labels.tolist() == [label for _, label in entry["frame_annotation"]]
        elif int(s.labels) == 0:  # no A/H video has no A/H frame
            kinds.add("none")
            assert s.frame_labels.tolist() == [0]
        elif entry["fr_detailed_ah"]:
            kinds.add("segments")
            (start, stop), n = entry["fr_detailed_ah"][0], video_frame_count(root / s.id)
            expected = np.zeros(n, np.int8)
            expected[start : stop + 1] = 1
            assert s.frame_labels.tolist() == expected.tolist()
        else:  # an A/H video without segments: its frames are unknown, not all A/H
            kinds.add("unknown")
            assert s.frame_labels is None
    assert kinds == {"listed", "none", "segments", "unknown"}
    # a damaged entry is named with its video and the file, not a traceback
    damaged = _copy(root, tmp_path)
    entries = read_annotation(damaged)
    broken = next(v for v, e in entries.items() if e["global_ah"] == 1 and e["fr_detailed_ah"] and "frame_annotation" not in e)
    entries[broken]["fr_detailed_ah"] = [["start", "end"]]
    (damaged / "video_annotation_transcript.yaml").write_text(yaml.safe_dump(entries))
    with pytest.raises(ChallengeError, match=f"the entry of {broken} cannot be read as frame labels"):
        read_bah(damaged)
    # frames a list leaves out are unknown (-1), never guessed
    listed = frame_labels({"global_ah": 1, "frame_annotation": [["x/frame-0.jpg", 0], ["x/frame-3.jpg", 1]]}, root / "absent.mp4")
    assert listed.tolist() == [0, -1, -1, 1]


def test_safe_loader_reads_tuples_and_refuses_other_python_tags(tmp_path):
    good = tmp_path / "a.yml"
    good.write_text("chunks:\n- timestamp: !!python/tuple\n  - 0.5\n  - 1.5\n")
    assert read_yaml(good)["chunks"][0]["timestamp"] == [0.5, 1.5]
    evil = tmp_path / "b.yml"
    evil.write_text("x: !!python/object/apply:os.system ['echo hi']\n")
    with pytest.raises(ChallengeError, match="b.yml: not readable YAML"):
        read_yaml(evil)


def _copy(root: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "bah"
    shutil.copytree(root, copy)
    return copy


def test_bad_input_is_named(bah, tmp_path, monkeypatch):
    monkeypatch.setenv("CHALLENGE_TRANSCRIPT_CACHE", str(tmp_path / "texts"))
    copy = _copy(bah[0], tmp_path)
    split = copy / "split" / "val.txt"
    original = split.read_bytes()
    split.write_bytes(original + b"Videos/P999/Visite_1/x.mp4,1\r\n")
    with pytest.raises(ChallengeError, match=r"val.txt: 1 line\(s\) cannot be read:\n.*line 16: 2 field\(s\)"):
        read_bah(copy)
    split.write_bytes(original + b"Videos/P998/Visite_1/gone.mp4,1,some text\r\n")
    with pytest.raises(ChallengeError, match="split/val.txt line 16: Videos/P998/Visite_1/gone.mp4 does not exist"):
        read_bah(copy)
    assert len(read_bah(copy, on_missing="skip").skipped) == 1
    split.write_bytes(original + b"Videos/P101/Visite_1/P101_Question_1_2024-01-11_09-00-00_Video.mp4,1,again\r\n")
    with pytest.raises(ChallengeError, match="participant P101: train.txt line 1 and val.txt line 16"):
        read_bah(copy)
    split.write_bytes(original)
    broken = next((copy / "transcription").rglob("*.yml"))
    broken.write_text("text: [unclosed\n")
    with pytest.raises(ChallengeError, match=f"{broken.name}: not readable YAML"):
        read_bah(copy)


def test_probability_pairs_sum_to_one_exactly():
    rng = np.random.default_rng(0)
    for p in [0.0, 1.0, 0.5, 0.1, 0.7, 1 / 3, *rng.uniform(size=2000)]:
        p0, p1 = probability_pair(p)
        assert float(p0) + float(p1) == 1.0, (p, p0, p1)
        assert abs(float(p1) - p) <= 3e-6


def test_trial_files_count_up_and_validation_catches_each_problem(tmp_path):
    ids = [f"Videos/P{i}/Visite_1/v{i}.mp4" for i in range(6)]
    probabilities = np.random.default_rng(1).dirichlet([1, 1], size=6)
    first = write_trial(tmp_path, tmp_path / "submissions" / "run-a", ids, probabilities)
    second = write_trial(tmp_path, tmp_path / "submissions" / "run-b", ids, probabilities)
    assert (first.name, second.name) == ("trial-1.txt", "trial-2.txt")
    assert validate_trial(second, ids) == []
    lines = first.read_text().splitlines()
    assert len(lines) == 6 and all(int(line.split(",")[3]) == int(float(line.split(",")[2]) > 0.5) for line in lines)
    bad = tmp_path / "trial-3.txt"
    bad.write_text("\n".join(["video_id,p0,p1,pred", lines[1], lines[0], "x,0.3,0.6,1", *lines[2:5]]) + "\n")
    problems = "\n".join(validate_trial(bad, ids))
    for kind in ("header", "p0 + p1 != 1.0", "missing video", "video not in the test list"):
        assert kind in problems, problems
    reordered = tmp_path / "trial-4.txt"
    reordered.write_text("\n".join([lines[1], lines[0], *lines[2:]]) + "\n")
    assert "order" in "\n".join(validate_trial(reordered, ids))
    assert "file name" in "\n".join(validate_trial(first.rename(tmp_path / "trial-9.txt"), ids))


def _ah(root, *extra) -> tuple[str, float]:
    result = runner.invoke(app, ["track", "ah", "--data", str(root), "--features", "egemaps", "--head", "logistic", "-q", *extra])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output, float(result.output.split("validation score (macro F1 over 2 classes): ")[1].split()[0])


def test_track_ah_learns_and_writes_a_valid_trial(workdir, bah):
    root, made = bah
    _, learnt = _ah(root)
    # chance level: three shuffled-label runs (one is noisy on 15 validation videos)
    control = np.mean([_ah(root, "--shuffle-labels", "--seed", str(seed))[1] for seed in range(3)])
    assert learnt > control + 0.15, (learnt, control)  # the voice's tremolo is learnt; shuffled labels are not
    output, _ = _ah(root, "--tune-threshold")
    assert "threshold (tuned on validation)" in output and "threshold out of fold (3 grouped folds of train+valid)" in output
    trials = sorted(Path("submissions/ah").glob("*/trial-*.txt"))
    assert sorted(t.name for t in trials) == ["trial-1.txt", "trial-2.txt"]  # control runs write none
    assert [line.split(",")[0] for line in trials[0].read_text().splitlines()] == made["test_order"]
    checked = runner.invoke(app, ["validate", "ah", str(trials[0]), "--data", str(root)])
    assert checked.exit_code == 0 and "valid (9 test videos" in checked.output, checked.output


def test_ensemble_ah_keeps_each_participant_on_one_side(workdir, bah):
    root, made = bah
    args = ["ensemble", "ah", "--data", str(root), "--features", "egemaps", "--head", "logistic", "--members", "3"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output + repr(result.exception)
    held = [int(line.rsplit(" on ", 1)[1]) for line in result.output.splitlines() if line.startswith("member fold")]
    assert len(held) == 3 and sum(held) == 45 and all(n % 3 == 0 for n in held)  # whole participants of 3 videos each
    trial = next(Path("submissions/ah").glob("*/trial-1.txt"))
    assert [line.split(",")[0] for line in trial.read_text().splitlines()] == made["test_order"]


def test_track_ah_learns_from_frame_labels_end_to_end(workdir, bah):
    root, made = bah
    for extra in ([], ["--shuffle-labels"]):  # the control moves frame labels with their video's label
        result = runner.invoke(
            app, ["track", "ah", "--data", str(root), "--features", "egemaps", "--head", "frame-pooled", "--epochs", "4", *extra]
        )
        assert result.exit_code == 0, result.output + repr(result.exception)
        assert "training the frame-pooled head" in result.output and "validation score (macro F1 over 2 classes)" in result.output
    trial = next(Path("submissions/ah").glob("*/trial-1.txt"))
    assert [line.split(",")[0] for line in trial.read_text().splitlines()] == made["test_order"]
