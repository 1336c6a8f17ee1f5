"""The training loop shared by torch clip heads: random windows, early stopping on the
validation score, the best epoch's weights restored at the end."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.nn.utils.rnn import pad_sequence

from challenge.training.inputs import ClipFeatures
from challenge.training.losses import clip_loss
from challenge.training.trainer import Trainer
from challenge.training.windows import window_starts


class ClipBatches:
    """Padded windows of clips plus each clip's whole-clip mean and std (the global context) and
    which modalities it has. A clip model is called as model(x, lengths, context, present)."""

    def __init__(self, data: ClipFeatures, max_steps: int, seed: int):
        self.data, self.max_steps = data, max_steps
        self.rng = np.random.default_rng(seed)
        self.present = data.present()

    @property
    def context(self) -> np.ndarray:
        return self.data.clip_context()

    def train_window(self, i: int) -> np.ndarray:
        steps = self.data.steps(i)
        start = int(self.rng.integers(0, steps - self.max_steps + 1)) if steps > self.max_steps else 0
        return self.data.sequence(i, start, start + self.max_steps)

    def eval_windows(self, i: int) -> list[np.ndarray]:
        """Half-overlapping windows covering the whole clip."""
        return [self.data.sequence(i, s, s + self.max_steps) for s in window_starts(self.data.steps(i), self.max_steps)]

    @staticmethod
    def collate(windows: list[np.ndarray], context: np.ndarray, present: np.ndarray, device: str):
        lengths = torch.tensor([len(w) for w in windows])
        padded = pad_sequence([torch.from_numpy(w) for w in windows], batch_first=True)
        return padded.to(device), lengths, torch.from_numpy(context).to(device), torch.from_numpy(present).to(device)


def fit_clip_model(
    model, train: ClipFeatures, valid: ClipFeatures, params: dict, score, report, seed: int, device: str, classes: int | None = None
):
    """Returns (best validation score, per-epoch history); `model` ends with the best weights.
    `classes`: the targets are class indices and the model's outputs logits (cross-entropy,
    scored on probabilities), else values (challenge.training.losses.clip_loss)."""
    batches = ClipBatches(train, params["max_steps"], seed)
    trainer = Trainer(model, params, device, steps_per_epoch=math.ceil(len(train) / params["batch_size"]), rngs=[batches.rng])
    targets = torch.from_numpy(np.asarray(train.targets, np.int64 if classes else np.float32))
    loss_of = clip_loss(params, train.targets, classes, device)

    def run_epoch() -> float:
        order = batches.rng.permutation(len(train))
        losses = []
        for start in range(0, len(order), params["batch_size"]):
            index = order[start : start + params["batch_size"]]
            x, lengths, context, present = ClipBatches.collate(
                [batches.train_window(i) for i in index], batches.context[index], batches.present[index], device
            )
            losses.append(trainer.step(loss_of(model(x, lengths, context, present), targets[index].to(device))))
        return float(np.mean(losses))

    evaluate = lambda: score(valid.targets, predict_clips(model, valid, params["max_steps"], device, probabilities=bool(classes)))  # noqa: E731
    return trainer.run(run_epoch, evaluate, report)


@torch.inference_mode()
def predict_clips(
    model, data: ClipFeatures, max_steps: int, device: str, clips_per_batch: int = 32, probabilities: bool = False
) -> np.ndarray:
    """Average of the model's outputs (with `probabilities`, of the softmax of its logits) over
    half-overlapping windows of each clip; clips are read a batch at a time so memory stays
    bounded on a full-size split."""
    model.eval()
    batches = ClipBatches(data, max_steps, 0)
    context = batches.context
    result = []
    for first in range(0, len(data), clips_per_batch):
        clips = range(first, min(first + clips_per_batch, len(data)))
        windows, owners = [], []
        for i in clips:
            clip_windows = batches.eval_windows(i)
            windows.extend(clip_windows)
            owners.extend([i - first] * len(clip_windows))
        owners = np.array(owners)
        outputs = model(*ClipBatches.collate(windows, context[owners + first], batches.present[owners + first], device)).float()
        per_window = (outputs.softmax(-1) if probabilities else outputs).cpu().numpy()
        summed = np.zeros((len(clips), per_window.shape[1]), np.float32)
        np.add.at(summed, owners, per_window)
        result.append(summed / np.bincount(owners, minlength=len(clips))[:, None])
    return np.concatenate(result)
