"""The clip classifier of the smiles-and-laughter study (pooled features in, classes out) and its
training loop (early stopping shared with every head through training.epochs). The registered
heads in challenge.heads (mlp-late-fusion) build on it."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from challenge.training.epochs import class_weights, gradient_step, optimiser_for, train_epochs


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
    def start_from_logistic(self, x: np.ndarray, y: np.ndarray, c: float) -> None:
        """The linear path becomes a logistic regression fitted on (x, y) (balanced classes,
        penalty 1/c) and the MLP's output starts at zero, so training starts from the linear
        model and keeps only what the MLP adds on the stop set. On a hundred clips an MLP alone
        reads corpus-specific cues that a linear model ignores (it scored well below logistic
        regression across corpora), and this keeps that from costing anything."""
        from sklearn.linear_model import LogisticRegression

        classes = self.out.out_features
        fitted = LogisticRegression(C=c, max_iter=3000, class_weight="balanced").fit(x, y)
        weights = np.zeros((classes, x.shape[1]), np.float32)
        biases = np.full(classes, -20.0, np.float32)  # a class absent from the training clips is never chosen at the start
        present = fitted.classes_
        if len(present) == 2:  # sklearn's binary fit is one logit: the second class's against the first
            weights[present[1]], biases[present[1]], biases[present[0]] = fitted.coef_[0], fitted.intercept_[0], 0.0
        else:
            weights[present], biases[present] = fitted.coef_, fitted.intercept_
        self.linear.weight.copy_(torch.from_numpy(weights))
        self.linear.bias.copy_(torch.from_numpy(biases))
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)


def fit_clips(model: nn.Module, x: np.ndarray, y: np.ndarray, x_stop: np.ndarray, y_stop: np.ndarray, score, seed: int,
              params: dict, report=None) -> tuple[float, list[dict]]:
    """Mini-batch training with class weights; the epoch with the best `score(y_stop, probabilities)`
    on the stop set wins. A model with a linear path starts from logistic regression
    (`params["linear_C"]`), and that starting point competes with the epochs."""
    torch.manual_seed(seed)
    from_logistic = getattr(model, "linear", None) is not None and len(np.unique(y)) > 1
    if from_logistic:
        model.start_from_logistic(x, y, params["linear_C"])
    rng = np.random.default_rng(seed)
    optimiser = optimiser_for(model, params)
    classes = model.out.out_features
    loss_fn = nn.CrossEntropyLoss(weight=class_weights(y, classes))
    xt, yt = torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(y).long()

    def run_epoch() -> float:
        order = rng.permutation(len(x))
        return float(np.mean([gradient_step(model, optimiser, loss_fn(model(xt[b]), yt[b])) for b in np.array_split(order, max(1, len(x) // 64))]))

    return train_epochs(model, params, run_epoch, lambda: score(y_stop, predict_clips(model, x_stop)), report, keep_start=from_logistic)


@torch.no_grad()
def predict_clips(model: nn.Module, x: np.ndarray) -> np.ndarray:
    model.eval()
    return torch.softmax(model(torch.from_numpy(np.ascontiguousarray(x))), 1).numpy()


@torch.no_grad()
def embed_clips(model: ClipClassifier, x: np.ndarray) -> np.ndarray:
    model.eval()
    return model.latents(torch.from_numpy(np.ascontiguousarray(x))).numpy()
