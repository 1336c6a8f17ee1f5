"""The runner that computes wav2vec2 features (hidden states, optionally the emotion head's
outputs) with a network of challenge.networks.wav2vec2; imported only when features are computed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from challenge.features.base import Features
from challenge.media import AUDIO_RATE, read_audio
from challenge.networks.sources import preprocessor_config
from challenge.networks.wav2vec2 import load_wav2vec2, load_wav2vec2_file

FRAME_RATE = 50.0  # wav2vec2's convolutional encoder hops 320 samples at 16 kHz


class Wav2Vec2Runner:
    def __init__(self, config, device: str):
        from challenge.networks.checkpoints import is_weights_file
        from challenge.progress import say

        self.config = config
        self.device = device
        if is_weights_file(config.model):  # a team's fine-tuned wav2vec2 saved as one state dict
            network, dropped = load_wav2vec2_file(config.model, config.heads, config.conv_stride)
            c = network.config
            say(
                f"{config.model}: a wav2vec2 of width {c.hidden_size}, {c.num_hidden_layers} layers, {c.num_attention_heads} heads"
                + (", with its emotion head" if network.has_head else "")
                + (f"; dropped {len(dropped)} tensors ({', '.join(dropped[:3])}...)" if dropped else "")
            )
            self.network, self.normalize = network.to(device), True
        else:
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
