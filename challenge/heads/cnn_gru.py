"""CNN-GRU on face crops (the live smile-intensity model of the seed paper): a small CNN encodes
each frame's face crop, a GRU (2 layers, 128 units by default) runs over a window of the last
frames, a linear layer gives the classes. It reads the pixels of the face-crops features, so it
learns its own face encoder; `challenge live` runs its two halves (encoder per frame, GRU over
the window) with onnxruntime, every face of a frame in one call."""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from torch import nn

from challenge.errors import ChallengeError
from challenge.heads.base import Head, register_head
from challenge.heads.frame_common import FRAME_PROBLEMS, FrameHeadMixin


class FaceEncoder(nn.Module):
    """Three conv blocks (3x3 conv, batch norm, ReLU, 2x2 max-pool), then a linear layer over the
    whole (size/8)² map: where a feature sits on the face (mouth corners, cheeks) matters, so it
    is not averaged away. [N, size²] normalised crops to [N, embedding] vectors."""

    def __init__(self, size: int, channels: int, embedding: int, dropout: float):
        super().__init__()
        self.size = size
        blocks, width = [], 1
        for out in (channels, channels * 2, channels * 4):
            blocks += [nn.Conv2d(width, out, 3, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            width = out
        cells = (size // 8) ** 2
        self.blocks = nn.Sequential(*blocks, nn.Flatten(), nn.Dropout(dropout), nn.Linear(width * cells, embedding), nn.ReLU(inplace=True))
        self.dim = embedding

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        # a pixel that never changed in training (std ~ 0) would turn any later change into a huge value
        return self.blocks(pixels.clamp(-6, 6).reshape(-1, 1, self.size, self.size))


class CNNGRU(nn.Module):
    def __init__(self, size: int, channels: int, embedding: int, units: int, layers: int, dropout: float, outputs: int):
        super().__init__()
        self.encoder = FaceEncoder(size, channels, embedding, dropout)
        self.gru = nn.GRU(self.encoder.dim, units, num_layers=layers, batch_first=True, dropout=dropout if layers > 1 else 0.0)
        self.out = nn.Linear(units, outputs)

    def temporal(self, embeddings: torch.Tensor) -> torch.Tensor:
        """[B, T, E] embeddings to [B, T, C] logits; causal, so padding after a window's last real
        frame never reaches a real frame's output."""
        return self.out(self.gru(embeddings)[0])

    def forward(self, x: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        return self.temporal(self.encoder(x.reshape(b * t, d)).reshape(b, t, -1))


@register_head
class CNNGRUHead(FrameHeadMixin, Head):
    name = "cnn-gru"
    problems = FRAME_PROBLEMS
    features: ClassVar[tuple[str, ...]] = ("face-crops",)  # what a run uses when --features is not given
    defaults = {
        "channels": 16, "embedding": 128, "units": 128, "layers": 2, "dropout": 0.1, "window": 20, "learning_rate": 1e-3, "weight_decay": 1e-4,
        "batch_size": 16, "epochs": 30, "patience": 6, "class_weighted": True,
    }
    search_space = {
        "channels": CategoricalDistribution([8, 16, 32]),
        "embedding": CategoricalDistribution([64, 128, 256]),
        "units": CategoricalDistribution([64, 128]),
        "layers": IntDistribution(1, 2),
        "dropout": FloatDistribution(0.0, 0.4),
        "learning_rate": FloatDistribution(3e-4, 3e-3, log=True),
        "weight_decay": FloatDistribution(1e-6, 1e-2, log=True),
    }

    def build(self, dims: list[int]):
        size = math.isqrt(dims[0]) if len(dims) == 1 else 0
        if len(dims) != 1 or size * size != dims[0]:
            raise ChallengeError(f"head cnn-gru reads face crops only (--features face-crops); it got feature sets of widths {dims}.")
        p = self.params
        return CNNGRU(size, p["channels"], p["embedding"], p["units"], p["layers"], p["dropout"], self.n_outputs)
