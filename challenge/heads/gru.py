"""Per-frame GRU over windows of consecutive face frames (the smile-intensity model: 2 layers,
128 units, class-weighted loss); any per-frame track can use it."""

from __future__ import annotations

import torch
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from torch import nn

from challenge.heads.base import Head
from challenge.heads.frame_common import FRAME_PROBLEMS, FrameHeadMixin


class FrameGRU(nn.Module):
    def __init__(self, input_dim: int, units: int, layers: int, dropout: float, outputs: int):
        super().__init__()
        self.gru = nn.GRU(input_dim, units, num_layers=layers, batch_first=True, dropout=dropout if layers > 1 else 0.0)
        self.out = nn.Linear(units, outputs)

    def forward(self, x: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        # padding sits after each window's last real frame, so it never reaches a real frame's output
        return self.out(self.gru(x)[0])


class GRUHead(FrameHeadMixin, Head):
    name = "gru"
    problems = FRAME_PROBLEMS
    defaults = {
        "units": 128,
        "layers": 2,
        "dropout": 0.1,
        "window": 20,
        "learning_rate": 1e-3,
        "weight_decay": 1e-4,
        "batch_size": 32,
        "epochs": 60,
        "patience": 10,
        "class_weighted": True,
    }
    search_space = {
        "units": CategoricalDistribution([32, 64, 128]),
        "layers": IntDistribution(1, 2),
        "dropout": FloatDistribution(0.0, 0.4),
        "window": CategoricalDistribution([10, 20, 40]),
        "learning_rate": FloatDistribution(1e-4, 3e-3, log=True),
        "weight_decay": FloatDistribution(1e-6, 1e-2, log=True),
    }

    def build(self, dims: list[int]):
        p = self.params
        return FrameGRU(sum(dims), p["units"], p["layers"], p["dropout"], self.n_outputs)
