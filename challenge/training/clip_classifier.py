"""The clip classifier of the smiles-and-laughter study (pooled features in, classes out) and its
training loop (early stopping shared with every head through training.trainer). The registered
heads in challenge.heads (mlp-late-fusion) build on it."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from challenge.training.trainer import Trainer, class_weights


class ClipClassifier(nn.Module):
    """Pooled clip features -> latent -> classes, and with `linear` a path straight from the
    features to the classes beside the MLP. The latent (with the linear path's logits) is what
    late fusion reads."""

    def __init__(self, dim: int, classes: int, hidden: int = 64, latent: int = 32, dropout: float = 0.2, linear: bool = False):
        super().__init__()
        self.encode = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, latent), nn.ReLU())
        self.out = nn.Linear(latent, classes)
        self.linear = nn.Linear(dim, classes) if linear else None

    def forward(self, x):
        logits = self.out(self.encode(x))
        return logits if self.linear is None else logits + self.linear(x)

    def latents(self, x):
        latent = self.encode(x)
        return latent if self.linear is None else torch.cat([latent, self.linear(x)], 1)

    @torch.no_grad()
    def start_from(self, weights: np.ndarray, bias: np.ndarray) -> None:
        """The linear path takes a fitted linear model and the MLP's output starts at zero, so the
        untrained model predicts what that linear model predicts (as the LSTM's linear path does)."""
        self.linear.weight.copy_(torch.from_numpy(weights))
        self.linear.bias.copy_(torch.from_numpy(bias))
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)


def fit_clips(
    model: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    x_stop: np.ndarray,
    y_stop: np.ndarray,
    score,
    seed: int,
    params: dict,
    report=None,
    start: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[float, list[dict]]:
    """Mini-batch training with class weights; the epoch with the best `score(y_stop, probabilities)`
    on the stop set wins. With `start` (a linear model's weights and biases) the linear path
    starts from it, and that starting point competes with the epochs."""
    torch.manual_seed(seed)
    if start is not None:
        model.start_from(*start)
    rng = np.random.default_rng(seed)
    trainer = Trainer(model, params, "cpu", rngs=[rng])
    classes = model.out.out_features
    loss_fn = nn.CrossEntropyLoss(weight=class_weights(y, classes))
    xt, yt = torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(y).long()

    def run_epoch() -> float:
        order = rng.permutation(len(x))
        return float(np.mean([trainer.step(loss_fn(model(xt[b]), yt[b])) for b in np.array_split(order, max(1, len(x) // 64))]))

    return trainer.run(run_epoch, lambda: score(y_stop, predict_clips(model, x_stop)), report, keep_start=start is not None)


@torch.no_grad()
def predict_clips(model: nn.Module, x: np.ndarray) -> np.ndarray:
    model.eval()
    return torch.softmax(model(torch.from_numpy(np.ascontiguousarray(x))), 1).numpy()


@torch.no_grad()
def embed_clips(model: ClipClassifier, x: np.ndarray) -> np.ndarray:
    model.eval()
    return model.latents(torch.from_numpy(np.ascontiguousarray(x))).numpy()
