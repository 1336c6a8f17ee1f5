"""`challenge transcribe`: each clip's voice through a (tiny, random) Whisper checkpoint into
transcripts/<clip>.txt, which the text stream then reads. The quirky EMI writer's media, not the demo's."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.fixtures.quirky import quirky_hume
from tests.fixtures.tiny_whisper import tiny_whisper

CHALLENGE = str(Path(sys.executable).parent / "challenge")


def _transcribe(root: Path, model: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CHALLENGE, "transcribe", "--data", str(root), "--asr-model", str(model), "-q", *extra], capture_output=True, text=True, timeout=300
    )


def test_transcribe_writes_each_clip_keeps_the_teams_own_resumes_and_feeds_the_text_stream(tmp_path):
    root = tmp_path / "data"
    ids = quirky_hume(root, train=4, valid=2, test=1)
    clips = [clip for split in ("train", "valid", "test") for clip in ids[split]]
    (root / "transcripts").mkdir()
    (root / "transcripts" / f"{clips[0]}.txt").write_text("what the team wrote\n")
    model = tiny_whisper(tmp_path / "whisper")

    first = _transcribe(root, model)
    assert first.returncode == 0, first.stderr
    assert f"transcripts: {len(clips) - 1} written, 1 already there (kept)" in first.stdout
    assert sorted(p.stem for p in (root / "transcripts").glob("*.txt")) == sorted(clips)
    assert (root / "transcripts" / f"{clips[0]}.txt").read_text() == "what the team wrote\n"
    assert not list((root / "transcripts").glob(".*.partial"))

    # a killed run's missing files are done again, the rest kept; --overwrite redoes ours, never the team's
    for clip in clips[1:3]:
        (root / "transcripts" / f"{clip}.txt").unlink()
    again = _transcribe(root, model)
    assert "transcripts: 2 written, 5 already there (kept)" in again.stdout, again.stdout + again.stderr
    redo = _transcribe(root, model, "--overwrite")
    assert "transcripts: 6 written, 1 already there (kept)" in redo.stdout, redo.stdout + redo.stderr
    assert (root / "transcripts" / f"{clips[0]}.txt").read_text() == "what the team wrote\n"

    extracted = subprocess.run(
        [
            CHALLENGE,
            "features",
            "extract",
            "--data",
            str(root),
            "--track",
            "emi",
            "--extractor",
            "text",
            "-q",
            "--store",
            str(tmp_path / "store"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert extracted.returncode == 0, extracted.stderr
    # the store keys each transcript by its content: the random model's identical outputs share one entry
    distinct = len({p.read_text() for p in (root / "transcripts").glob("*.txt")})
    assert f"text: {distinct} computed, 0 cached, 0 without media" in extracted.stdout, extracted.stdout


def test_a_model_that_cannot_be_read_and_an_unwritable_folder_are_named(tmp_path):
    root = tmp_path / "data"
    quirky_hume(root, train=2, valid=1, test=1)
    (tmp_path / "empty").mkdir()
    missing = _transcribe(root, tmp_path / "empty")
    assert missing.returncode != 0
    assert "speech recognition model" in missing.stderr and "cannot be loaded" in missing.stderr and "--asr-model" in missing.stderr
    assert "Traceback" not in missing.stderr
    (tmp_path / "a-file").write_text("")
    unwritable = _transcribe(root, tiny_whisper(tmp_path / "whisper"), "--out", str(tmp_path / "a-file"))
    assert unwritable.returncode != 0 and "cannot write transcripts there" in unwritable.stderr and "--out" in unwritable.stderr


def test_transcribe_on_bah_writes_under_the_video_paths_and_the_reader_prefers_them(tmp_path, monkeypatch):
    """BAH's ids are paths (Videos/<pid>/Visite_1/<video>.mp4): the transcripts go into those
    folders, and the A/H reader takes a team's own transcript over Whisper's and the split line's."""
    from tests.fixtures.current_abaw import quirky_bah
    from tracks.bah.reader import read_bah

    root = tmp_path / "bah"
    quirky_bah(root, participants=(2, 1, 1), videos=2)
    monkeypatch.setenv("CHALLENGE_TRANSCRIPT_CACHE", str(tmp_path / "texts"))
    videos = [s.id for s in read_bah(root)]
    own = root / "transcripts" / f"{videos[0]}.txt"
    own.parent.mkdir(parents=True)
    own.write_text("what the team wrote\n")
    done = subprocess.run(
        [CHALLENGE, "transcribe", "--data", str(root), "--track", "ah", "--asr-model", str(tiny_whisper(tmp_path / "whisper")), "-q"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert f"transcripts: {len(videos) - 1} written, 1 already there (kept)" in done.stdout, done.stdout
    assert all((root / "transcripts" / f"{video}.txt").is_file() for video in videos)
    read = {s.id: s.transcript.read_text().strip() for s in read_bah(root)}
    assert read[videos[0]] == "what the team wrote"
    assert all(read[v] == (root / "transcripts" / f"{v}.txt").read_text().strip() for v in videos)
