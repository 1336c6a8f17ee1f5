"""Small torch models of the smiles tracks and their training loop (early stopping shared with
every head through training.epochs)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from challenge.metrics import macro_f1
from challenge.training.epochs import gradient_step, optimiser_for, train_epochs

PARAMS = {"epochs": 60, "patience": 10, "learning_rate": 1e-3, "weight_decay": 1e-4}


class ClipClassifier(nn.Module):
    """Pooled clip features -> 32-d latent -> classes. The latent is what late fusion reads."""

    def __init__(self, dim: int, classes: int, hidden: int = 64, latent: int = 32):
        super().__init__()
        self.encode = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Dropout(0.2), nn.Linear(hidden, latent), nn.ReLU())
        self.out = nn.Linear(latent, classes)

    def forward(self, x):
        return self.out(self.encode(x))


class IntensityGRU(nn.Module):
    """Per-frame classes from a window of consecutive face frames (2-layer GRU, 128 units)."""

    def __init__(self, dim: int, classes: int, units: int = 128, layers: int = 2):
        super().__init__()
        self.gru = nn.GRU(dim, units, num_layers=layers, batch_first=True, dropout=0.1)
        self.out = nn.Linear(units, classes)

    def forward(self, x):
        return self.out(self.gru(x)[0])


def class_weights(labels: np.ndarray, classes: int) -> torch.Tensor:
    """Inverse frequency, normalised to mean 1 (labels < 0 ignored)."""
    counts = np.bincount(labels[labels >= 0], minlength=classes).astype(float)
    weights = np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / classes, 0.0)
    return torch.tensor(weights / max(weights[weights > 0].mean(), 1e-9), dtype=torch.float32)


def fit_clips(model: nn.Module, x: np.ndarray, y: np.ndarray, x_stop: np.ndarray, y_stop: np.ndarray, classes: int,
              seed: int, params: dict | None = None) -> tuple[float, list[dict]]:
    """Mini-batch training with class weights; the epoch with the best macro F1 on the stop set wins."""
    params = {**PARAMS, **(params or {})}
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    optimiser = optimiser_for(model, params)
    loss_fn = nn.CrossEntropyLoss(weight=class_weights(y, classes))
    xt, yt = torch.from_numpy(x), torch.from_numpy(y).long()

    def run_epoch() -> float:
        order = rng.permutation(len(x))
        return float(np.mean([gradient_step(model, optimiser, loss_fn(model(xt[b]), yt[b])) for b in np.array_split(order, max(1, len(x) // 64))]))

    def evaluate() -> float:
        return macro_f1(y_stop, predict_clips(model, x_stop).argmax(1), classes)

    return train_epochs(model, params, run_epoch, evaluate)


@torch.no_grad()
def predict_clips(model: nn.Module, x: np.ndarray) -> np.ndarray:
    model.eval()
    return torch.softmax(model(torch.from_numpy(x)), 1).numpy()


@torch.no_grad()
def embed_clips(model: ClipClassifier, x: np.ndarray) -> np.ndarray:
    model.eval()
    return model.encode(torch.from_numpy(x)).numpy()


def fit_frames(model: IntensityGRU, videos: list[np.ndarray], labels: list[np.ndarray], stop_videos, stop_labels, classes: int,
               window: int, seed: int, params: dict | None = None) -> tuple[float, list[dict]]:
    """Windows of `window` frames (hop window // 2) from every training video, masked
    class-weighted loss; early stopping on the stop videos' frame macro F1."""
    params = {**PARAMS, **(params or {})}
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for x, y in zip(videos, labels):
        for start in range(0, max(len(x) - window, 0) + 1, max(1, window // 2)):
            xs.append(x[start : start + window])
            ys.append(y[start : start + window])
    xt, yt = torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys)).long()
    loss_fn = nn.CrossEntropyLoss(weight=class_weights(np.concatenate(labels), classes), ignore_index=-1)
    optimiser = optimiser_for(model, params)
    truth = np.concatenate(stop_labels)

    def run_epoch() -> float:
        order = rng.permutation(len(xt))
        losses = [gradient_step(model, optimiser, loss_fn(model(xt[b]).reshape(-1, classes), yt[b].reshape(-1)))
                  for b in np.array_split(order, max(1, len(xt) // 32))]
        return float(np.mean(losses))

    def evaluate() -> float:
        decided = np.concatenate([predict_frames(model, v, window) for v in stop_videos]).argmax(1)
        keep = truth >= 0
        return macro_f1(truth[keep], decided[keep], classes)

    return train_epochs(model, params, run_epoch, evaluate)


@torch.no_grad()
def predict_frames(model: IntensityGRU, video: np.ndarray, window: int) -> np.ndarray:
    """[n_frames, classes] probabilities, averaged over the half-overlapping windows covering each frame."""
    model.eval()
    n = len(video)
    total, count = np.zeros((n, model.out.out_features)), np.zeros((n, 1))
    starts = sorted(set([*range(0, max(n - window, 0) + 1, max(1, window // 2)), max(n - window, 0)]))
    batch = torch.from_numpy(np.stack([video[s : s + window] for s in starts]))
    probabilities = torch.softmax(model(batch), -1).numpy()
    for s, p in zip(starts, probabilities):
        total[s : s + len(p)] += p
        count[s : s + len(p)] += 1
    return total / np.maximum(count, 1)
