"""One label per video learnt from its frames (BAH's A/H): a dilated temporal convolution gives
every step of a video a probability of the positive class, trained on the frame labels the
corpus ships (Sample.frame_labels, mapped onto the video's feature steps by position); a video
without frame labels lends its own label to each of its steps. The video's probability is the
mean of its most confident `pool_share` of steps, so a short A/H segment in a long video still
decides it, as the video label does (a video is A/H when any segment is).

Binary clip classification only. Whether this beats a video-level head on the same split and
features is measured in benchmarks/new_tracks.py --part frames (docs/tracks/bah.md)."""

from __future__ import annotations

import math

import numpy as np
import torch
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from challenge.errors import ChallengeError
from challenge.heads.base import Head
from challenge.heads.tcn import DilatedTCN
from challenge.track import Problem


class FramePooledHead(Head):
    name = "frame-pooled"
    problems = {Problem.CLIP_CLASSIFICATION}
    defaults = {
        "channels": 64,
        "layers": 4,
        "kernel": 3,
        "dropout": 0.1,
        "pool_share": 0.25,
        "max_steps": 256,
        "learning_rate": 1e-3,
        "weight_decay": 1e-4,
        "batch_size": 16,
        "epochs": 30,
        "patience": 8,
    }
    search_space = {
        "channels": CategoricalDistribution([32, 64, 128]),
        "layers": IntDistribution(2, 5),
        "dropout": FloatDistribution(0.0, 0.4),
        "pool_share": FloatDistribution(0.05, 1.0),
        "learning_rate": FloatDistribution(1e-4, 3e-3, log=True),
        "weight_decay": FloatDistribution(1e-6, 1e-2, log=True),
    }

    def fit(self, train, valid, score, report=None) -> float:
        from challenge.training.trainer import Trainer

        if self.n_outputs != 2:
            raise ChallengeError(
                f"head 'frame-pooled' pools one positive class over frames; this track has {self.n_outputs} classes. "
                "Use lstm, clip-transformer or logistic."
            )
        p = self.params
        torch.manual_seed(self.seed)
        self.shape = {"dims": [int(d) for d in train.dims]}
        self.model = self.build(**self.shape)
        steps, targets = self._steps(train), []
        for i, chosen in enumerate(steps):
            frames = train.frame_targets_at(i, chosen)
            targets.append(frames if frames is not None else np.full(len(chosen), int(np.asarray(train.targets[i]).reshape(-1)[0])))
        known = np.concatenate([t[t >= 0] for t in targets])
        positive = max(float(known.mean()) if known.size else 0.5, 1e-3)
        weight = torch.tensor([(1 - positive) / positive])  # balanced steps: A/H segments are a minority of frames
        rng = np.random.default_rng(self.seed)
        trainer = Trainer(self.model, p, self.device, steps_per_epoch=math.ceil(len(train) / p["batch_size"]), rngs=[rng])
        loss_of = torch.nn.BCEWithLogitsLoss(pos_weight=weight.to(self.device), reduction="none")

        def run_epoch() -> float:
            losses = []
            order = rng.permutation(len(train))
            for start in range(0, len(order), p["batch_size"]):
                index = order[start : start + p["batch_size"]]
                x, mask = _batch([train.sequence(int(i))[steps[i]] for i in index], self.device)
                y, _ = _batch([targets[i][:, None].astype(np.float32) for i in index], self.device)
                y = y[..., 0]
                counted = mask & (y >= 0)
                logits = self.model(x, None)[..., 0]
                loss = (loss_of(logits, y.clamp(min=0)) * counted).sum() / counted.sum().clamp(min=1)
                losses.append(trainer.step(loss))
            return float(np.mean(losses))

        best, self.history = trainer.run(run_epoch, lambda: score(valid.targets, self.predict(valid)), report)
        return best

    def _steps(self, data) -> list[np.ndarray]:
        """The steps each video is read at: all of them, or `max_steps` spread evenly over it."""
        limit = int(self.params["max_steps"])
        return [np.unique(np.linspace(0, data.steps(i) - 1, min(limit, data.steps(i))).round().astype(int)) for i in range(len(data))]

    def build(self, dims: list[int]) -> DilatedTCN:
        p = self.params
        return DilatedTCN(sum(dims), p["channels"], p["layers"], p["kernel"], p["dropout"], 1)

    def step_probabilities(self, data) -> list[np.ndarray]:
        """Per video, the positive class's probability at each step read."""
        self.model.eval()
        out = []
        with torch.inference_mode():
            for i, chosen in enumerate(self._steps(data)):
                x, _ = _batch([data.sequence(i)[chosen]], self.device)
                out.append(torch.sigmoid(self.model(x, None)[0, :, 0]).cpu().numpy())
        return out

    def predict(self, data) -> np.ndarray:
        share = float(self.params["pool_share"])
        pooled = [np.sort(p)[::-1][: max(1, math.ceil(share * len(p)))].mean() for p in self.step_probabilities(data)]
        positive = np.asarray(pooled, np.float64)
        return np.stack([1 - positive, positive], axis=1).astype(np.float32)


def _batch(sequences: list[np.ndarray], device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded [B, T, D] and the [B, T] mask of real steps."""
    longest = max(len(s) for s in sequences)
    x = np.zeros((len(sequences), longest, sequences[0].shape[1]), np.float32)
    mask = np.zeros((len(sequences), longest), bool)
    for row, sequence in enumerate(sequences):
        x[row, : len(sequence)], mask[row, : len(sequence)] = sequence, True
    return torch.from_numpy(x).to(device), torch.from_numpy(mask).to(device)
