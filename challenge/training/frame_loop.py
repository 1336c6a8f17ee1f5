"""The training loop of per-frame heads: windows of W frames, a loss that follows the problem
and skips invalid frames, early stopping on the track's validation score."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from challenge.track import Problem
from challenge.training.frame_data import FrameFeatures
from challenge.training.trainer import Trainer, class_weights
from challenge.training.windows import window_starts


def activation(problem: Problem, logits: torch.Tensor) -> torch.Tensor:
    if problem == Problem.FRAME_CLASSIFICATION:
        return logits.softmax(-1)
    if problem == Problem.FRAME_MULTILABEL:
        return logits.sigmoid()
    return logits.tanh()  # valence and arousal live in [-1, 1]


def masked_loss(
    problem: Problem,
    logits: torch.Tensor,
    labels: torch.Tensor,
    present: torch.Tensor,
    weights: torch.Tensor | None = None,
    loss: str | None = None,
    gamma: float = 2.0,
) -> torch.Tensor:
    """`present` marks real frames (not window padding); invalid labels are skipped too.
    `weights`: per class (classification), e.g. inverse frequency for rare smile levels. `loss`:
    cross-entropy (default) or focal for classes, bce (default) or focal for labels, ccc
    (default) or mse for values (challenge.training.losses)."""
    from challenge.training.losses import binary_focal_loss, ccc_loss, focal_loss

    if problem == Problem.FRAME_CLASSIFICATION:
        target = torch.where(present, labels[..., 0].long(), torch.full_like(labels[..., 0].long(), -1))
        flat, target = logits.reshape(-1, logits.shape[-1]), target.reshape(-1)
        if loss == "focal":
            return focal_loss(flat, target, gamma, weights)
        return F.cross_entropy(flat, target, weight=weights, ignore_index=-1)
    if problem == Problem.FRAME_MULTILABEL:
        valid = present & ~(labels == -1).any(-1)
        if not valid.any():
            return logits.sum() * 0
        if loss == "focal":
            return binary_focal_loss(logits[valid], labels[valid], gamma)
        return F.binary_cross_entropy_with_logits(logits[valid], labels[valid])
    values, losses = logits.tanh(), []
    for j in range(labels.shape[-1]):  # per dimension over the batch's annotated frames
        valid = present & (labels[..., j] != -5)
        x, y = values[..., j][valid], labels[..., j][valid]
        if len(x) < 2:
            continue
        losses.append(F.mse_loss(x, y) if loss == "mse" else ccc_loss(x[:, None], y[:, None]))
    return torch.stack(losses).mean() if losses else logits.sum() * 0


def _windows(features: np.ndarray, labels: np.ndarray, window: int, offset: int):
    for start in range(-offset, len(features), window):
        lo, hi = max(start, 0), min(start + window, len(features))
        if hi > lo:
            yield features[lo:hi], labels[lo:hi]


def _pad(items: list[np.ndarray], window: int, fill: float) -> np.ndarray:
    out = np.full((len(items), window, *items[0].shape[1:]), fill, dtype=np.float32)
    for k, item in enumerate(items):
        out[k, : len(item)] = item
    return out


def _train_batches(data: FrameFeatures, window: int, batch_size: int, rng):
    """Each video once per epoch, cut at a random offset into windows; batches mix videos."""
    pool = []
    for i in rng.permutation(len(data)):
        features, _ = data.video(int(i))
        pool.extend(_windows(features, data.labels[i], window, int(rng.integers(0, window))))
        while len(pool) >= batch_size:
            order = rng.permutation(len(pool))
            batch, pool = [pool[k] for k in order[:batch_size]], [pool[k] for k in order[batch_size:]]
            yield batch
    if pool:
        yield pool


def batch_tensors(batch, window: int, device: str):
    """A batch of (features, labels) windows as padded tensors (x, labels, present)."""
    x = torch.from_numpy(_pad([b[0] for b in batch], window, 0.0)).to(device)
    y = torch.from_numpy(_pad([b[1] for b in batch], window, -1.0)).to(device)
    present = torch.from_numpy(_pad([np.ones(len(b[0])) for b in batch], window, 0.0)).bool().to(device)
    return x, y, present


def fit_frame_model(
    model,
    problem,
    train: FrameFeatures,
    valid: FrameFeatures,
    params: dict,
    score,
    report,
    seed: int,
    device: str,
    n_outputs: int | None = None,
    checkpoint=None,
):
    rng = np.random.default_rng(seed)
    trainer = Trainer(model, params, device, rngs=[rng], checkpoint=checkpoint)
    window = params["window"]
    truth = valid.targets()
    weights = None
    if problem == Problem.FRAME_CLASSIFICATION and params.get("class_weighted"):
        weights = class_weights(train.targets()[:, 0].astype(int), n_outputs).to(device)

    def run_epoch() -> float:
        losses = []
        for batch in _train_batches(train, window, params["batch_size"], rng):
            x, y, present = batch_tensors(batch, window, device)
            loss = masked_loss(problem, model(x, present), y, present, weights, params.get("loss"), params.get("focal_gamma", 2.0))
            losses.append(trainer.step(loss))
        return float(np.mean(losses))

    evaluate = lambda: score(truth, np.concatenate(predict_frames(model, problem, valid, window, device)))  # noqa: E731
    return trainer.run(run_epoch, evaluate, report)


@torch.inference_mode()
def predict_frames(model, problem, data: FrameFeatures, window: int, device: str) -> list[np.ndarray]:
    """Per video [n_frames, C] activations, averaged over half-overlapping windows."""
    model.eval()
    outputs = []
    for i in range(len(data)):
        features, _ = data.video(i)
        n = len(features)
        starts = window_starts(n, window)
        chunks = [features[s : s + window] for s in starts]
        x = torch.from_numpy(_pad(chunks, window, 0.0)).to(device)
        present = torch.from_numpy(_pad([np.ones(len(c)) for c in chunks], window, 0.0)).bool().to(device)
        values = activation(problem, model(x, present)).float().cpu().numpy()
        summed, counts = np.zeros((n, values.shape[-1])), np.zeros(n)
        for s, chunk, value in zip(starts, chunks, values):
            summed[s : s + len(chunk)] += value[: len(chunk)]
            counts[s : s + len(chunk)] += 1
        outputs.append((summed / counts[:, None]).astype(np.float32))
    return outputs
