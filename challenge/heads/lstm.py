"""LSTM with global context (Hallmen et al., ABAW6): the final state of an LSTM over the
per-step features, concatenated with the mean and std of the input over the whole clip, into
an MLP.

With `linear_path` (the default) the MLP learns a residual on top of a linear map of the
pooled mean and std that starts as the ridge baseline's fit (alpha per emotion), so training
starts where the linear baseline ends and early stopping keeps the better of the two. Without
it the head is the original sigmoid MLP."""

from __future__ import annotations

import numpy as np
import torch
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from torch import nn

from challenge.heads.base import Head
from challenge.track import Problem
from challenge.training.loop import fit_clip_model, predict_clips


class LinearPathModel(nn.Module):
    """A clip model with an optional linear map of the pooled mean and std beside it, started at
    a fitted linear model (the ridge baseline) while the model's own output layer starts at zero:
    the untrained model predicts exactly what that linear model predicts. Subclasses set
    `self.linear` (None without the path) and name their output layer."""

    linear: nn.Linear | None

    def output_layer(self) -> nn.Linear:
        raise NotImplementedError

    def start_from(self, weights: np.ndarray, bias: np.ndarray) -> None:
        with torch.no_grad():
            self.linear.weight.copy_(torch.from_numpy(weights))
            self.linear.bias.copy_(torch.from_numpy(bias))
            self.output_layer().weight.zero_()
            self.output_layer().bias.zero_()

    def logits(self, residual: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """Class logits (clip classification): the linear path's plus the model's residual."""
        return residual if self.linear is None else self.linear(context) + residual

    def intensities(self, residual: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        if self.linear is None:
            return torch.sigmoid(residual)  # intensities in [0, 1]
        values = self.linear(context) + residual
        # trained unclipped (a clamp has no gradient outside [0, 1]); predicts within the range
        return values if self.training else values.clamp(0, 1)


class GlobalContextLSTM(LinearPathModel):
    def __init__(
        self,
        input_dim: int,
        hidden: int,
        layers: int,
        dropout: float,
        mlp_hidden: int,
        outputs: int,
        linear_path: bool = False,
        classify: bool = False,
    ):
        super().__init__()
        self.classify = classify
        self.lstm = nn.LSTM(input_dim, hidden, num_layers=layers, batch_first=True, dropout=dropout if layers > 1 else 0.0)
        self.mlp = nn.Sequential(
            nn.Linear(hidden + 2 * input_dim, mlp_hidden),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(mlp_hidden, outputs),
        )
        self.linear = nn.Linear(2 * input_dim, outputs) if linear_path else None

    def output_layer(self) -> nn.Linear:
        return self.mlp[-1]

    def forward(self, x: torch.Tensor, lengths: torch.Tensor, context: torch.Tensor, present: torch.Tensor | None = None) -> torch.Tensor:
        """`present` (which modalities a clip has) is not read: a missing one is zeros here."""
        # padding sits after each clip's last step, so the output there is the clip's own final
        # state: padding never reaches it (equal to a packed sequence's h_n, and on CPU the
        # backward pass is 2x faster than through a PackedSequence)
        outputs, _ = self.lstm(x)
        final = outputs[torch.arange(len(x), device=x.device), lengths.to(x.device) - 1]
        residual = self.mlp(torch.cat([final, context], dim=-1))
        return self.logits(residual, context) if self.classify else self.intensities(residual, context)


class LSTMHead(Head):
    name = "lstm"
    problems = {Problem.CLIP_REGRESSION, Problem.CLIP_CLASSIFICATION}
    defaults = {
        "hidden": 256,
        "layers": 1,
        "dropout": 0.2,
        "mlp_hidden": 128,
        "learning_rate": 1e-3,
        "weight_decay": 1e-4,
        "batch_size": 32,
        "max_steps": 300,
        "pearson_weight": 0.0,
        "epochs": 30,
        "patience": 8,
        "linear_path": True,
    }
    search_space = {
        "hidden": CategoricalDistribution([64, 128, 256, 512]),
        "layers": IntDistribution(1, 2),
        "dropout": FloatDistribution(0.0, 0.5),
        "mlp_hidden": CategoricalDistribution([64, 128, 256]),
        "learning_rate": FloatDistribution(1e-4, 3e-3, log=True),
        "weight_decay": FloatDistribution(1e-6, 1e-2, log=True),
        "max_steps": CategoricalDistribution([100, 200, 300, 500]),
        "pearson_weight": FloatDistribution(0.0, 1.0),
        "linear_path": CategoricalDistribution([True, False]),
    }

    def fit(self, train, valid, score, report=None) -> float:
        p = self.params
        torch.manual_seed(self.seed)  # the same parameters and seed give the same model
        self.shape = {"input_dim": train.dim}
        self.model = self.build(**self.shape)
        classes = self.n_outputs if self.classify else None
        if p["linear_path"]:
            self.model.start_from(*(logistic_start(train, classes) if classes else ridge_weights(train)))
        best, self.history = fit_clip_model(self.model, train, valid, p, score, report, self.seed, self.device, classes)
        return best

    @property
    def classify(self) -> bool:
        return self.problem == Problem.CLIP_CLASSIFICATION

    def build(self, input_dim: int) -> GlobalContextLSTM:
        p = self.params
        return GlobalContextLSTM(
            input_dim, p["hidden"], p["layers"], p["dropout"], p["mlp_hidden"], self.n_outputs, p["linear_path"], self.classify
        )

    def predict(self, data):
        return predict_clips(self.model, data, self.params["max_steps"], self.device, probabilities=self.classify)


def logistic_start(train, classes: int) -> tuple[np.ndarray, np.ndarray]:
    """The linear path's start for classes: the logistic baseline (C=1, balanced classes) on the
    clips' pooled mean and std."""
    from challenge.heads.linear import logistic_weights

    return logistic_weights(train.clip_context(), np.asarray(train.targets).reshape(-1).astype(int), classes, 1.0)


def ridge_weights(train) -> tuple[np.ndarray, np.ndarray]:
    """[C, 2D] weights and [C] biases of the ridge baseline on the clips' pooled mean and std
    (alpha per output by leave-one-out), as float32 for the linear path."""
    from challenge.heads.linear import fit_ridge

    weights, biases, _ = fit_ridge(train.clip_context(), train.targets)
    return weights.astype(np.float32), biases.astype(np.float32)
