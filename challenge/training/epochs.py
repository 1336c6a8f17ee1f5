"""Epochs with early stopping on the validation score, shared by every torch head."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import numpy as np
import torch

from challenge.progress import progress_bar


def optimiser_for(model, params: dict) -> torch.optim.Optimizer:
    return torch.optim.AdamW(model.parameters(), lr=params["learning_rate"], weight_decay=params["weight_decay"])


def class_weights(labels: np.ndarray, classes: int) -> torch.Tensor:
    """Inverse class frequency, normalised to mean 1 over the classes present (labels < 0 ignored)."""
    counts = np.bincount(labels[labels >= 0], minlength=classes).astype(float)
    weights = np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / classes, 0.0)
    return torch.tensor(weights / max(weights[weights > 0].mean(), 1e-9), dtype=torch.float32)


def gradient_step(model, optimiser, loss: torch.Tensor) -> float:
    optimiser.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimiser.step()
    return loss.item()


def train_epochs(model, params: dict, run_epoch: Callable[[], float], evaluate: Callable[[], float], report=None, keep_start: bool = False):
    """`run_epoch()` trains once over the data and returns the mean loss; `evaluate()` returns
    the validation score. Stops after `patience` epochs without improvement; the model ends
    with the best epoch's weights, or with its starting weights when `keep_start` (a model
    initialised from a fitted one) and no epoch beat them. Returns (best score, per-epoch history)."""
    # LSTM gradients decay into denormal floats, which are ~10x slower on x86 CPUs
    torch.set_flush_denormal(True)
    best, best_state, history, stale = -math.inf, None, [], 0
    if keep_start:
        model.eval()
        best, best_state = evaluate(), copy.deepcopy(model.state_dict())
    with progress_bar("train epochs", params["epochs"], transient=True) as advance:
        for epoch in range(params["epochs"]):
            model.train()
            loss = run_epoch()
            value = evaluate()
            history.append({"epoch": epoch, "train_loss": loss, "valid_score": value})
            advance()
            if value > best:
                best, best_state, stale = value, copy.deepcopy(model.state_dict()), 0
            else:
                stale += 1
            if report is not None:
                report(epoch, value)  # may raise optuna.TrialPruned
            if stale >= params.get("patience", 8):
                break
    model.load_state_dict(best_state)
    return best, history
