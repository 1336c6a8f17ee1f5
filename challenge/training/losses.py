"""The losses the peers use, chosen per head with the `loss` parameter (`head_params: {loss: ...}`
in the run config): concordance (1 - CCC) for values (VA, EMI), focal loss for classes (EXPR)
and labels (AU). Each is tested against a value computed by hand (tests/test_losses.py)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

CLIP_LOSSES = ("mse", "ccc")
CLASS_LOSSES = ("cross-entropy", "focal")
LABEL_LOSSES = ("bce", "focal")
VALUE_LOSSES = ("ccc", "mse")


def ccc(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Lin's concordance of two 1-D tensors, population statistics (ddof 0) throughout."""
    covariance = ((x - x.mean()) * (y - y.mean())).mean()
    return 2 * covariance / (x.var(unbiased=False) + y.var(unbiased=False) + (x.mean() - y.mean()) ** 2 + 1e-8)


def ccc_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - CCC per column of [N, C] tensors, averaged over the columns."""
    return torch.stack([1 - ccc(prediction[:, j], target[:, j]) for j in range(prediction.shape[1])]).mean()


def focal_loss(
    logits: torch.Tensor, target: torch.Tensor, gamma: float = 2.0, weight: torch.Tensor | None = None, ignore_index: int = -1
) -> torch.Tensor:
    """Multi-class focal loss (Lin et al.): mean over the kept rows of -w_t (1 - p_t)^gamma log p_t;
    `weight` per class plays the role of alpha; gamma 0 gives the (weighted) cross-entropy per row."""
    keep = target != ignore_index
    if not keep.any():
        return logits.sum() * 0
    logits, target = logits[keep], target[keep]
    log_p = F.log_softmax(logits, dim=-1).gather(1, target[:, None])[:, 0]
    loss = -((1 - log_p.exp()) ** gamma) * log_p
    if weight is not None:
        w = weight[target]
        return (loss * w).sum() / w.sum()
    return loss.mean()


def binary_focal_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float = 2.0) -> torch.Tensor:
    """Focal loss per label: mean of -(1 - p_t)^gamma log p_t, p_t the probability of the true value."""
    log_p = -F.binary_cross_entropy_with_logits(logits, target, reduction="none")  # log p_t
    return (-((1 - log_p.exp()) ** gamma) * log_p).mean()


def clip_loss(params: dict, targets, classes: int | None, device: str):
    """The loss of a clip model (one output row per clip): with `classes`, cross-entropy with the
    classes weighted by inverse frequency in `targets`; else `params["loss"]` (MSE by default, or
    1 - CCC) plus, with `pearson_weight`, that share of 1 - Pearson's r. Concordance and
    correlation need a few rows, so a batch of two or fewer falls back to MSE."""
    import numpy as np

    from challenge.training.trainer import class_weights

    if classes:
        weights = class_weights(np.asarray(targets, int), classes).to(device)
        return lambda prediction, y: F.cross_entropy(prediction, y, weight=weights)

    def values_loss(prediction: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        several = len(y) > 2
        loss = ccc_loss(prediction, y) if params.get("loss") == "ccc" and several else F.mse_loss(prediction, y)
        if params.get("pearson_weight", 0) > 0 and several:
            loss = loss + params["pearson_weight"] * pearson_loss(prediction, y)
        return loss

    return values_loss


def pearson_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - mean over columns of Pearson's r within the batch."""
    p, t = prediction - prediction.mean(0), target - target.mean(0)
    r = (p * t).sum(0) / (p.norm(dim=0) * t.norm(dim=0) + 1e-8)
    return 1 - r.mean()
