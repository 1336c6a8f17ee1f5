"""The LSTM with global context in its per-frame form: each frame's (bidirectional) LSTM output
concatenated with the mean of the window's input features, through an MLP."""

from __future__ import annotations

import torch
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from torch import nn

from challenge.heads.base import Head
from challenge.heads.frame_common import FRAME_PROBLEMS, FrameHeadMixin


class FrameGlobalContextLSTM(nn.Module):
    def __init__(self, input_dim: int, hidden: int, layers: int, dropout: float, outputs: int):
        super().__init__()
        self.lstm = nn.LSTM(input_dim, hidden, layers, batch_first=True, bidirectional=True, dropout=dropout if layers > 1 else 0.0)
        self.mlp = nn.Sequential(nn.Linear(2 * hidden + input_dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, outputs))

    def forward(self, x: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        weights = present.unsqueeze(-1).float()
        context = (x * weights).sum(1) / weights.sum(1).clamp(min=1)  # mean over real frames only
        steps, _ = self.lstm(x * weights)
        return self.mlp(torch.cat([steps, context[:, None].expand(-1, x.shape[1], -1)], dim=-1))


class FrameLSTMHead(FrameHeadMixin, Head):
    name = "lstm-frames"
    problems = FRAME_PROBLEMS
    defaults = {
        "hidden": 128,
        "layers": 1,
        "dropout": 0.2,
        "learning_rate": 1e-3,
        "weight_decay": 1e-4,
        "window": 64,
        "batch_size": 16,
        "epochs": 20,
        "patience": 6,
    }
    search_space = {
        "hidden": CategoricalDistribution([64, 128, 256]),
        "layers": IntDistribution(1, 2),
        "dropout": FloatDistribution(0.0, 0.5),
        "learning_rate": FloatDistribution(1e-4, 3e-3, log=True),
        "weight_decay": FloatDistribution(1e-6, 1e-2, log=True),
        "window": CategoricalDistribution([32, 64, 128]),
    }

    def build(self, dims):
        p = self.params
        return FrameGlobalContextLSTM(sum(dims), p["hidden"], p["layers"], p["dropout"], self.n_outputs)
