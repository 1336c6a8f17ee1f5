"""wav2vec2 hidden states at 50 Hz, plus audeering's arousal/dominance/valence head when present."""

from __future__ import annotations

from dataclasses import dataclass

from challenge.features.base import Extractor


@dataclass(frozen=True)
class Wav2Vec2Extractor(Extractor):
    name = "wav2vec2"
    modality = "audio"
    model: str = "hf:facebook/wav2vec2-base"  # hf:HUB_ID, a save_pretrained folder, or one weights file in transformers' names
    layer: int = -1  # hidden state index (0 = CNN projection, -1 = last transformer layer)
    average_layers: bool = False  # mean over all transformer layers instead of one
    emotion_head: bool = True  # append the checkpoint's 3 regression outputs when it has them
    max_chunk_seconds: float = 30.0  # long clips are cut so memory stays bounded
    bf16: bool = False  # bfloat16 autocast: for GPUs and CPUs with AMX (slower without, see benchmarks)
    heads: int | None = None  # a single weights file: its attention heads (default width / 64)
    conv_stride: list[int] | None = None  # a single weights file: its conv strides (default 5, 2, 2, 2, 2, 2, 2)

    def __post_init__(self):
        if isinstance(self.conv_stride, list):  # from YAML; a frozen config holds a tuple
            object.__setattr__(self, "conv_stride", tuple(self.conv_stride))

    def build(self, device: str):
        # torch and transformers load here, when features are computed, not when a cached
        # entry is looked up or a command's help is drawn
        from challenge.features.wav2vec2_runner import Wav2Vec2Runner

        return Wav2Vec2Runner(self, device)
