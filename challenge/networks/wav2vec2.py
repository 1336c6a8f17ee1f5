"""The wav2vec2 network (encoder plus audeering's optional regression head) and its loaders (a
save_pretrained folder, a hub id, or one weights file); imported only when a model is built."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from transformers import Wav2Vec2Model, Wav2Vec2PreTrainedModel

from challenge.errors import ChallengeError
from challenge.networks.sources import load_pretrained


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

    from challenge.networks.checkpoints import read_weights, wav2vec2_config_from_tensors, wav2vec2_state

    raw = read_weights(Path(path))
    stripped = {k.removeprefix("wav2vec2."): v for k, v in raw.items()}
    config = Wav2Vec2Config(**wav2vec2_config_from_tensors(stripped, str(path), heads, conv_stride))
    network = Wav2Vec2WithEmotionHead(config)
    state = wav2vec2_state(raw)
    ours = network.state_dict()
    dropped = sorted(k for k in state if k not in ours)
    missing = sorted(k for k in ours if k not in state and k.startswith("wav2vec2.") and not k.endswith("masked_spec_embed"))
    if missing:
        raise ChallengeError(
            f"{path}: the wav2vec2 weights {', '.join(missing[:5])} are missing from the file; they are never "
            "initialised at random. Check the file or its conv_stride / heads settings."
        )
    wrong = [
        f"{k} {tuple(state[k].shape)} where the architecture read off the file needs {tuple(ours[k].shape)}"
        for k in sorted(state)
        if k in ours and tuple(state[k].shape) != tuple(ours[k].shape)
    ]
    if wrong:
        raise ChallengeError(
            f"{path}: {len(wrong)} tensor(s) of the wrong shape: {'; '.join(wrong[:5])}. The file is damaged or mixes two "
            "models; check it, or its conv_stride / heads settings (extractors.wav2vec2)."
        )
    network.load_state_dict({k: v for k, v in state.items() if k in ours}, strict=False)
    network.has_head = all(k in state for k in ours if k.startswith("classifier."))
    return network.eval(), dropped
