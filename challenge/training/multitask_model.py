"""One model for several Aff-Wild2 tasks: a shared per-frame encoder (the LSTM with global
context of `lstm-frames`: each frame's bidirectional LSTM output beside the window's mean input)
and one output layer per task.

Each task trains on the videos that carry its labels, with the loss of its problem (cross-entropy
for EXPR, binary cross-entropy for AU, CCC for VA; invalid frames skipped, as single-task heads
do) times its weight. An epoch takes every task's windows once, a task's batch at a time in
turn, so the shared encoder sees all tasks in every stretch of steps. Early stopping on the
weighted mean of the tasks' validation scores (each track's own metric)."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import zip_longest

import numpy as np
import torch
from torch import nn

from challenge.postprocess import PostProcess
from challenge.track import TrackSpec
from challenge.training.frame_data import FrameFeatures
from challenge.training.frame_loop import _train_batches, batch_tensors, masked_loss, predict_frames
from challenge.training.trainer import Trainer

DEFAULTS = {
    "hidden": 128,
    "layers": 1,
    "dropout": 0.2,
    "learning_rate": 1e-3,
    "weight_decay": 1e-4,
    "window": 64,
    "batch_size": 16,
    "epochs": 20,
    "patience": 6,
}


class MultiTaskFrameModel(nn.Module):
    def __init__(self, input_dim: int, hidden: int, layers: int, dropout: float, outputs: dict[str, int]):
        super().__init__()
        self.lstm = nn.LSTM(input_dim, hidden, layers, batch_first=True, bidirectional=True, dropout=dropout if layers > 1 else 0.0)
        width = 2 * hidden + input_dim
        self.shared = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Dropout(dropout))
        self.heads = nn.ModuleDict({task: nn.Linear(hidden, n) for task, n in outputs.items()})

    def forward(self, x: torch.Tensor, present: torch.Tensor, task: str) -> torch.Tensor:
        weights = present.unsqueeze(-1).float()
        context = (x * weights).sum(1) / weights.sum(1).clamp(min=1)  # mean over real frames only
        steps, _ = self.lstm(x * weights)
        return self.heads[task](self.shared(torch.cat([steps, context[:, None].expand(-1, x.shape[1], -1)], dim=-1)))


class TaskView(nn.Module):
    """The shared model as one task's per-frame model: model(x, present), as predict_frames calls it."""

    def __init__(self, model: MultiTaskFrameModel, task: str):
        super().__init__()
        self.model, self.task = model, task

    def forward(self, x, present):
        return self.model(x, present, self.task)


@dataclass
class Task:
    spec: TrackSpec
    weight: float
    train: FrameFeatures
    valid: FrameFeatures

    @property
    def name(self) -> str:
        return self.spec.name


def validation_scores(model: MultiTaskFrameModel, tasks: list[Task], window: int, device: str) -> dict[str, float]:
    """Each task's track score on its validation videos (AU thresholds tuned on them, as a run does)."""
    scores = {}
    for task in tasks:
        outputs = np.concatenate(predict_frames(TaskView(model, task.name), task.spec.problem, task.valid, window, device))
        scores[task.name] = PostProcess.for_track(task.spec).score(task.spec, task.valid.targets(), outputs).value
    return scores


def _task_batches(task: Task, window: int, batch_size: int, rng):
    for batch in _train_batches(task.train, window, batch_size, rng):
        yield task, batch


def fit_multitask(model: MultiTaskFrameModel, tasks: list[Task], params: dict, seed: int, device: str, report=None, checkpoint=None):
    """Returns (best weighted validation score, per-epoch history); the model ends with the best
    weights. With `checkpoint` each epoch is kept there, and a killed training resumes from it."""
    rng = np.random.default_rng(seed)
    trainer = Trainer(model, params, device, rngs=[rng], checkpoint=checkpoint)
    window, total = params["window"], sum(t.weight for t in tasks)

    def run_epoch() -> float:
        losses = []
        for turn in zip_longest(*(_task_batches(task, window, params["batch_size"], rng) for task in tasks)):
            for item in turn:
                if item is None:  # this task's windows are used up for the epoch
                    continue
                task, batch = item
                x, y, present = batch_tensors(batch, window, device)
                loss = masked_loss(task.spec.problem, model(x, present, task.name), y, present)
                losses.append(trainer.step(task.weight / total * len(tasks) * loss))
        return float(np.mean(losses))

    def evaluate() -> float:
        scores = validation_scores(model, tasks, window, device)
        return sum(t.weight * scores[t.name] for t in tasks) / total

    return trainer.run(run_epoch, evaluate, report)
