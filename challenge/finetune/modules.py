"""The end-to-end modules: a backbone and the head that reads its output."""

from __future__ import annotations

import torch
from torch import nn

from challenge.finetune.backbones import Backbone


class ClipRegressor(nn.Module):
    """wav2vec2 steps into the LSTM with global context (Hallmen et al.): the final state of an
    LSTM over the window's steps, with their mean and std, into an MLP."""

    def __init__(self, backbone: Backbone, head: nn.Module):
        super().__init__()
        self.backbone = backbone
        self.head = head  # challenge.heads.lstm.GlobalContextLSTM over the backbone's width

    def encode(self, waveforms: torch.Tensor, samples: torch.Tensor):
        """(steps [B, T, H], their real lengths [B], the global context [B, 2H]: mean and std over the real steps)."""
        steps = self.backbone(waveforms).float()
        lengths = self.backbone.steps(samples).clamp(1, steps.shape[1])
        valid = (torch.arange(steps.shape[1], device=steps.device)[None] < lengths[:, None].to(steps.device)).unsqueeze(-1)
        count = lengths.to(steps.device)[:, None].float()
        mean = (steps * valid).sum(1) / count
        std = (((steps - mean[:, None]) ** 2 * valid).sum(1) / count).clamp_min(1e-8).sqrt()
        return steps, lengths, torch.cat([mean, std], -1)

    def forward(self, waveforms: torch.Tensor, samples: torch.Tensor) -> torch.Tensor:
        return self.head(*self.encode(waveforms, samples))


class FrameClassifier(nn.Module):
    """A ViT's pooled face embedding per frame into a linear layer (logits per label)."""

    def __init__(self, backbone: Backbone, dropout: float, outputs: int):
        super().__init__()
        self.backbone = backbone
        self.out = nn.Sequential(nn.Dropout(dropout), nn.Linear(backbone.width, outputs))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.out(self.backbone(pixels).float())


class ClipEmbeddingRegressor(nn.Module):
    """A clip's pooled audio-visual embedding (Social-MAE: joint, audio, video) into a linear
    layer, as the paper fine-tunes it (the decoder replaced by a linear layer)."""

    def __init__(self, backbone: Backbone, dropout: float, outputs: int):
        super().__init__()
        self.backbone = backbone
        self.out = nn.Sequential(nn.Dropout(dropout), nn.Linear(backbone.width, outputs))

    def forward(self, fbank: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
        return self.out(self.backbone(fbank, faces).float())
