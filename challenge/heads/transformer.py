"""Transformer fusion of modalities per frame (after the ABAW6 MAE + transformer recipe):
each frame gives one token per modality, tagged with a learned modality embedding and a
learned position; a window of W frames is encoded together and each frame's tokens are
pooled into its output."""

from __future__ import annotations

import torch
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from torch import nn

from challenge.heads.base import Head
from challenge.heads.frame_common import FRAME_PROBLEMS, FrameHeadMixin


class FusionTransformer(nn.Module):
    def __init__(self, dims: list[int], width: int, layers: int, heads: int, dropout: float, window: int, outputs: int):
        super().__init__()
        self.dims = dims
        self.project = nn.ModuleList(nn.Linear(d, width) for d in dims)
        self.modality = nn.Parameter(torch.zeros(len(dims), width))
        self.position = nn.Parameter(torch.zeros(window, width))
        nn.init.normal_(self.modality, std=0.02)
        nn.init.normal_(self.position, std=0.02)
        layer = nn.TransformerEncoderLayer(width, heads, 2 * width, dropout, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.out = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, outputs))

    def forward(self, x: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        batch, window, _ = x.shape
        parts = torch.split(x, self.dims, dim=-1)
        tokens = torch.stack([p(part) + self.modality[m] for m, (p, part) in enumerate(zip(self.project, parts))], dim=2)
        tokens = tokens + self.position[:window, None]  # [B, W, M, width]
        flat = tokens.reshape(batch, window * len(self.dims), -1)
        padding = ~present.repeat_interleave(len(self.dims), dim=1)  # padded frames are never attended to
        encoded = self.encoder(flat, src_key_padding_mask=padding).reshape(batch, window, len(self.dims), -1)
        return self.out(encoded.mean(2))


class TransformerFusionHead(FrameHeadMixin, Head):
    name = "transformer"
    problems = FRAME_PROBLEMS
    defaults = {
        "width": 128,
        "layers": 2,
        "heads": 4,
        "dropout": 0.1,
        "learning_rate": 5e-4,
        "weight_decay": 1e-4,
        "window": 64,
        "batch_size": 16,
        "epochs": 20,
        "patience": 6,
    }
    search_space = {
        "width": CategoricalDistribution([64, 128, 256]),
        "layers": IntDistribution(1, 4),
        "dropout": FloatDistribution(0.0, 0.4),
        "learning_rate": FloatDistribution(1e-4, 2e-3, log=True),
        "weight_decay": FloatDistribution(1e-6, 1e-2, log=True),
        "window": CategoricalDistribution([32, 64, 128]),
    }

    def build(self, dims):
        p = self.params
        return FusionTransformer(dims, p["width"], p["layers"], p["heads"], p["dropout"], p["window"], self.n_outputs)
