"""Per-frame dilated temporal convolution (the 10th ABAW's violence-detection winner: frame
embeddings of a 2D backbone, then a 5-layer dilated TCN). Each layer is a residual block of
a non-causal convolution whose dilation doubles, so five layers of kernel 3 see 63 frames
around each frame; any per-frame track can use it."""

from __future__ import annotations

import torch
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from torch import nn

from challenge.heads.base import Head
from challenge.heads.frame_common import FRAME_PROBLEMS, FrameHeadMixin


class TemporalBlock(nn.Module):
    def __init__(self, channels: int, kernel: int, dilation: int, dropout: float):
        super().__init__()
        padding = dilation * (kernel - 1) // 2  # centred: a frame sees as far ahead as behind
        self.conv = nn.Conv1d(channels, channels, kernel, padding=padding, dilation=dilation)
        self.norm = nn.BatchNorm1d(channels)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.drop(torch.relu(self.norm(self.conv(x))))


class DilatedTCN(nn.Module):
    def __init__(self, input_dim: int, channels: int, layers: int, kernel: int, dropout: float, outputs: int):
        super().__init__()
        self.inp = nn.Conv1d(input_dim, channels, 1)
        self.blocks = nn.Sequential(*(TemporalBlock(channels, kernel, 2**i, dropout) for i in range(layers)))
        self.out = nn.Conv1d(channels, outputs, 1)

    def forward(self, x: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        # [B, T, D] -> [B, T, outputs]; padding after a window's last frame can reach the frames
        # just before it, as the ends of a video are padded in any convolution
        return self.out(self.blocks(self.inp(x.transpose(1, 2)))).transpose(1, 2)


class TCNHead(FrameHeadMixin, Head):
    name = "tcn"
    problems = FRAME_PROBLEMS
    defaults = {
        "channels": 128,
        "layers": 5,
        "kernel": 3,
        "dropout": 0.1,
        "window": 128,
        "learning_rate": 1e-3,
        "weight_decay": 1e-4,
        "batch_size": 16,
        "epochs": 40,
        "patience": 8,
        "class_weighted": True,
    }
    search_space = {
        "channels": CategoricalDistribution([32, 64, 128, 256]),
        "layers": IntDistribution(3, 6),
        "dropout": FloatDistribution(0.0, 0.4),
        "window": CategoricalDistribution([64, 128, 256]),
        "learning_rate": FloatDistribution(1e-4, 3e-3, log=True),
        "weight_decay": FloatDistribution(1e-6, 1e-2, log=True),
    }

    def build(self, dims: list[int]):
        p = self.params
        return DilatedTCN(sum(dims), p["channels"], p["layers"], p["kernel"], p["dropout"], self.n_outputs)
