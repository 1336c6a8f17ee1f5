"""The clip classifier of the smiles-and-laughter study (pooled features in, classes out) and its
training loop (early stopping shared with every head through training.epochs). The registered
heads in challenge.heads (mlp-late-fusion) build on it."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from challenge.training.epochs import class_weights, gradient_step, optimiser_for, train_epochs


class ClipClassifier(nn.Module):
    """Pooled clip features -> latent -> classes. The latent is what late fusion reads."""

    def __init__(self, dim: int, classes: int, hidden: int = 64, latent: int = 32, dropout: float = 0.2):
        super().__init__()
        self.encode = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, latent), nn.ReLU())
        self.out = nn.Linear(latent, classes)

    def forward(self, x):
        return self.out(self.encode(x))


def fit_clips(model: nn.Module, x: np.ndarray, y: np.ndarray, x_stop: np.ndarray, y_stop: np.ndarray, score, seed: int,
              params: dict, report=None) -> tuple[float, list[dict]]:
    """Mini-batch training with class weights; the epoch with the best `score(y_stop, probabilities)`
    on the stop set wins."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    optimiser = optimiser_for(model, params)
    classes = model.out.out_features
    loss_fn = nn.CrossEntropyLoss(weight=class_weights(y, classes))
    xt, yt = torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(y).long()

    def run_epoch() -> float:
        order = rng.permutation(len(x))
        return float(np.mean([gradient_step(model, optimiser, loss_fn(model(xt[b]), yt[b])) for b in np.array_split(order, max(1, len(x) // 64))]))

    return train_epochs(model, params, run_epoch, lambda: score(y_stop, predict_clips(model, x_stop)), report)


@torch.no_grad()
def predict_clips(model: nn.Module, x: np.ndarray) -> np.ndarray:
    model.eval()
    return torch.softmax(model(torch.from_numpy(np.ascontiguousarray(x))), 1).numpy()


@torch.no_grad()
def embed_clips(model: ClipClassifier, x: np.ndarray) -> np.ndarray:
    model.eval()
    return model.encode(torch.from_numpy(np.ascontiguousarray(x))).numpy()
