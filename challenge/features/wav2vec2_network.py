"""The wav2vec2 network (encoder plus audeering's optional regression head) and the runner that
computes its features; imported only when features are computed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn
from transformers import Wav2Vec2Model, Wav2Vec2PreTrainedModel

from challenge.features.base import Features
from challenge.errors import ChallengeError
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


def load_wav2vec2_file(path: str, heads: int | None = None, conv_stride: list[int] | None = None):
    """(Wav2Vec2WithEmotionHead, what was dropped) from a single weights file; every backbone
    tensor must be in the file."""
    from transformers import Wav2Vec2Config

    from challenge.features.checkpoints import read_weights, wav2vec2_config_from_tensors, wav2vec2_state

    raw = read_weights(Path(path))
    stripped = {k.removeprefix("wav2vec2."): v for k, v in raw.items()}
    config = Wav2Vec2Config(**wav2vec2_config_from_tensors(stripped, str(path), heads, conv_stride))
    network = Wav2Vec2WithEmotionHead(config)
    state = wav2vec2_state(raw)
    ours = network.state_dict()
    dropped = sorted(k for k in state if k not in ours)
    missing = sorted(k for k in ours if k not in state and k.startswith("wav2vec2.") and not k.endswith("masked_spec_embed"))
    if missing:
        raise ChallengeError(f"{path}: the wav2vec2 weights {', '.join(missing[:5])} are missing from the file; they are never "
                             "initialised at random. Check the file or its conv_stride / heads settings.")
    wrong = [f"{k} {tuple(state[k].shape)} where the architecture read off the file needs {tuple(ours[k].shape)}"
             for k in sorted(state) if k in ours and tuple(state[k].shape) != tuple(ours[k].shape)]
    if wrong:
        raise ChallengeError(f"{path}: {len(wrong)} tensor(s) of the wrong shape: {'; '.join(wrong[:5])}. The file is damaged or mixes two "
                             "models; check it, or its conv_stride / heads settings (extractors.wav2vec2).")
    network.load_state_dict({k: v for k, v in state.items() if k in ours}, strict=False)
    network.has_head = all(k in state for k in ours if k.startswith("classifier."))
    return network.eval(), dropped


class Wav2Vec2Runner:
    def __init__(self, config, device: str):
        from challenge.features.checkpoints import is_weights_file
        from challenge.progress import say

        self.config = config
        self.device = device
        if is_weights_file(config.model):  # a team's fine-tuned wav2vec2 saved as one state dict
            network, dropped = load_wav2vec2_file(config.model, config.heads, config.conv_stride)
            c = network.config
            say(f"{config.model}: a wav2vec2 of width {c.hidden_size}, {c.num_hidden_layers} layers, {c.num_attention_heads} heads"
                + (", with its emotion head" if network.has_head else "") + (f"; dropped {len(dropped)} tensors ({', '.join(dropped[:3])}...)" if dropped else ""))
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
