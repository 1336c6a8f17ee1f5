"""The wav2vec2 network (encoder plus audeering's optional regression head) and the runner that
computes its features; imported only when features are computed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn
from transformers import Wav2Vec2Model, Wav2Vec2PreTrainedModel

from challenge.features.base import Features
from challenge.features.models import load_pretrained, preprocessor_config
from challenge.media import AUDIO_RATE, read_audio

FRAME_RATE = 50.0  # wav2vec2's convolutional encoder hops 320 samples at 16 kHz


class RegressionHead(nn.Module):
    """audeering's head (module names match their checkpoints so its weights load)."""

    def __init__(self, config):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout = nn.Dropout(config.final_dropout)
        self.out_proj = nn.Linear(config.hidden_size, config.num_labels)

    def forward(self, features):
        return self.out_proj(torch.tanh(self.dense(self.dropout(features))))


class Wav2Vec2WithEmotionHead(Wav2Vec2PreTrainedModel):
    """wav2vec2 encoder with an optional per-step regression head (arousal, dominance, valence
    in audeering/wav2vec2-large-robust-12-ft-emotion-msp-dim). Checkpoints without the head load
    too; `has_head` tells which."""

    def __init__(self, config):
        super().__init__(config)
        self.wav2vec2 = Wav2Vec2Model(config)
        self.classifier = RegressionHead(config)
        self.has_head = True
        self.post_init()


def load_wav2vec2(model: str) -> Wav2Vec2WithEmotionHead:
    network, info = load_pretrained(Wav2Vec2WithEmotionHead, model, "--audio-model", output_loading_info=True)
    missing = set(info.get("missing_keys", []))
    # a plain Wav2Vec2Model checkpoint loads too (transformers maps it onto the "wav2vec2."
    # prefix); only the regression head is then missing
    network.has_head = not any(key.startswith("classifier.") for key in missing)
    return network.eval()


class Wav2Vec2Runner:
    def __init__(self, config, device: str):
        self.config = config
        self.device = device
        self.network = load_wav2vec2(config.model).to(device)
        self.normalize = preprocessor_config(config.model).get("do_normalize", True)

    def prepare(self, source: Path) -> np.ndarray:
        signal = read_audio(source, AUDIO_RATE)
        if self.normalize and signal.size:
            # zero mean, unit variance after the downmix, as the checkpoint's feature extractor does
            signal = (signal - signal.mean()) / np.sqrt(signal.var() + 1e-7)
        return signal

    @torch.inference_mode()
    def forward(self, signal: np.ndarray) -> Features:
        chunk = int(self.config.max_chunk_seconds * AUDIO_RATE)
        minimum = 400  # one receptive field of the CNN encoder
        pieces = [signal[i : i + chunk] for i in range(0, max(len(signal), 1), chunk)]
        outputs = [self._forward_piece(np.pad(p, (0, max(0, minimum - len(p))))) for p in pieces]
        return Features(np.concatenate(outputs, axis=0), FRAME_RATE)

    def _forward_piece(self, piece: np.ndarray) -> np.ndarray:
        inputs = torch.from_numpy(piece).float()[None].to(self.device)
        with torch.autocast(self.device.split(":")[0], dtype=torch.bfloat16, enabled=self.config.bf16):
            out = self.network.wav2vec2(inputs, output_hidden_states=True)
        hidden = out.hidden_states
        steps = (torch.stack(hidden[1:]).mean(0) if self.config.average_layers else hidden[self.config.layer])[0]
        columns = [steps.float()]
        if self.config.emotion_head and self.network.has_head:
            columns.append(self.network.classifier(out.last_hidden_state[0].float()))
        return torch.cat(columns, dim=-1).cpu().numpy()
