import av
import numpy as np
import pytest

from challenge.errors import ChallengeError
from challenge.media import iter_video_frames, read_audio


def test_audio_is_resampled_to_16k_mono(tmp_path):
    path = tmp_path / "stereo.wav"
    rate, seconds = 44100, 1.0
    t = np.arange(int(rate * seconds)) / rate
    left, right = np.sin(2 * np.pi * 440 * t), np.zeros_like(t)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=rate, layout="stereo")
        frame = av.AudioFrame.from_ndarray(
            (np.stack([left, right]).T.reshape(1, -1) * 16000).astype(np.int16), format="s16", layout="stereo"
        )
        frame.sample_rate = rate
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    audio = read_audio(path)
    assert audio.dtype == np.float32 and abs(len(audio) - 16000) <= 32
    spectrum = np.abs(np.fft.rfft(audio))
    assert abs(np.argmax(spectrum) * 16000 / len(audio) - 440) < 3


def test_corrupt_and_missing_media_name_the_file(tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00 ftypisom not really a video" * 10)
    with pytest.raises(ChallengeError, match=r"broken.mp4: cannot be decoded .*Re-export the file"):
        list(iter_video_frames(broken))
    with pytest.raises(ChallengeError, match="missing.mp4: media file not found"):
        read_audio(tmp_path / "missing.mp4")
