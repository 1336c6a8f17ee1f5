"""Cross-modal fusion for clip tracks (after the ABAW6 EMI entry, which fuses visual, audio and
text encoders with a transformer): one token sequence per modality (audio steps, face frames,
a transcript's embedding), each tagged with a learned modality embedding and a learned
position, plus one global-context token made from the clip's whole-clip mean and std. The
encoder reads them together; a modality a clip lacks and the padding after a window's last step
are masked out of attention, so a missing modality changes nothing but its absence. The output
is read from the global token. A slower modality, repeated along the first modality's steps, gives one token
per distinct row (at the step it starts), not one per step.

It serves EMI (six intensities), A/H (two classes per video) and smile-laugh (three classes, on
each clip's window of its recording's feature sequences, `tracks.smiles.clip_windows.ClipWindows`).
`--head-param disagreement=true` adds what the strongest A/H entries fuse: |e_i - e_j| of the
modalities' pooled encodings, so the output can read where face, voice and words disagree.

As in the LSTM head, `linear_path` adds a linear map of the pooled mean and std that starts as
the linear baseline's fit (ridge for values, logistic regression for classes), with the transformer's output layer starting at zero: training starts
where the linear baseline ends."""

from __future__ import annotations

import numpy as np
import torch
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from torch import nn

from challenge.heads.base import Head
from challenge.heads.lstm import LinearPathModel, logistic_start, ridge_weights
from challenge.track import Problem
from challenge.training.loop import fit_clip_model, predict_clips


class ClipFusionTransformer(LinearPathModel):
    def __init__(
        self,
        dims: list[int],
        width: int,
        layers: int,
        heads: int,
        dropout: float,
        max_steps: int,
        outputs: int,
        linear_path: bool = False,
        classify: bool = False,
        disagreement: bool = False,
    ):
        super().__init__()
        self.dims, self.classify = list(dims), classify
        # with `disagreement`, the output also reads |e_i - e_j| for every pair of modalities,
        # e_m the mean of modality m's encoded tokens (the A/H entries' disagreement fusion)
        self.pairs = [(i, j) for i in range(len(self.dims)) for j in range(i + 1, len(self.dims))] if disagreement else []
        self.project = nn.ModuleList(nn.Linear(d, width) for d in self.dims)
        self.modality = nn.Parameter(torch.zeros(len(self.dims), width))
        self.position = nn.Parameter(torch.zeros(max_steps, width))
        nn.init.normal_(self.modality, std=0.02)
        nn.init.normal_(self.position, std=0.02)
        self.context = nn.Linear(2 * sum(self.dims), width)  # the global-context token
        layer = nn.TransformerEncoderLayer(width, heads, 2 * width, dropout, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        read = width * (1 + len(self.pairs))
        self.out = nn.Sequential(nn.LayerNorm(read), nn.Linear(read, outputs))
        self.linear = nn.Linear(2 * sum(self.dims), outputs) if linear_path else None

    def output_layer(self) -> nn.Linear:
        return self.out[-1]

    def forward(self, x: torch.Tensor, lengths: torch.Tensor, context: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        batch, steps, _ = x.shape
        padding = torch.arange(steps, device=x.device)[None] >= lengths.to(x.device)[:, None]  # [B, T]
        tokens, masks = [self.context(context)[:, None]], [torch.zeros(batch, 1, dtype=torch.bool, device=x.device)]
        for m, part in enumerate(torch.split(x, self.dims, dim=-1)):
            part, where, hidden = distinct_steps(part, padding | ~present[:, m, None])
            tokens.append(self.project[m](part) + self.modality[m] + self.position[where])
            masks.append(hidden)
        encoded = self.encoder(torch.cat(tokens, 1), src_key_padding_mask=torch.cat(masks, 1))
        read = [encoded[:, 0]]
        if self.pairs:
            starts = np.cumsum([0] + [t.shape[1] for t in tokens])
            pooled = []
            for m in range(len(self.dims)):
                part, keep = encoded[:, starts[m + 1] : starts[m + 2]], (~masks[m + 1]).float()[..., None]
                pooled.append((part * keep).sum(1) / keep.sum(1).clamp(min=1.0))
            both = lambda i, j: (present[:, i] & present[:, j]).float()[:, None]  # noqa: E731 - a missing modality disagrees with nothing
            read += [(pooled[i] - pooled[j]).abs() * both(i, j) for i, j in self.pairs]
        residual = self.out(torch.cat(read, -1))
        return self.logits(residual, context) if self.classify else self.intensities(residual, context)


def distinct_steps(part: torch.Tensor, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One token per run of equal consecutive rows of a modality, at the step the run starts.

    A slower modality is repeated along the first modality's steps (faces at 25 fps on eGeMAPS's
    100 Hz, a transcript's one embedding on every step); its repeats add attention cost and no
    content. Returns the kept rows [B, K, D], their steps [B, K] (for the position embedding)
    and the mask of what is not a token [B, K]: K is the most rows any clip of the batch keeps."""
    batch, steps, _ = part.shape
    new = torch.ones(batch, steps, dtype=torch.bool, device=part.device)
    new[:, 1:] = (part[:, 1:] != part[:, :-1]).any(-1)
    keep = new & ~hidden
    counts = keep.sum(1)
    width = max(int(counts.max()), 1)
    # kept steps first, each group in time order (a stable sort of "not kept")
    where = torch.sort((~keep).to(torch.uint8), dim=1, stable=True).indices[:, :width]
    rows = part.gather(1, where[..., None].expand(-1, -1, part.shape[-1]))
    return rows, where, torch.arange(width, device=part.device)[None] >= counts[:, None]


class ClipTransformerHead(Head):
    name = "clip-transformer"
    problems = {Problem.CLIP_REGRESSION, Problem.CLIP_CLASSIFICATION}
    sequences = True  # smile-laugh gives it each clip's feature sequences, not their pooled statistics
    defaults = {
        "width": 64,
        "layers": 2,
        "heads": 4,
        "dropout": 0.1,
        "learning_rate": 5e-4,
        "weight_decay": 1e-4,
        "batch_size": 16,
        "max_steps": 128,
        "pearson_weight": 0.0,
        "epochs": 30,
        "patience": 8,
        "linear_path": True,
        "disagreement": False,
    }
    search_space = {
        "width": CategoricalDistribution([32, 64, 128]),
        "layers": IntDistribution(1, 3),
        "dropout": FloatDistribution(0.0, 0.4),
        "learning_rate": FloatDistribution(1e-4, 2e-3, log=True),
        "weight_decay": FloatDistribution(1e-6, 1e-2, log=True),
        "max_steps": CategoricalDistribution([64, 128, 256]),
        "pearson_weight": FloatDistribution(0.0, 1.0),
        "linear_path": CategoricalDistribution([True, False]),
    }

    def fit(self, train, valid, score, report=None) -> float:
        torch.manual_seed(self.seed)  # the same parameters and seed give the same model
        self.shape = {"dims": list(train.dims)}
        self.model = self.build(**self.shape)
        classes = self.n_outputs if self.classify else None
        if self.params["linear_path"]:
            self.model.start_from(*(logistic_start(train, classes) if classes else ridge_weights(train)))
        best, self.history = fit_clip_model(self.model, train, valid, self.params, score, report, self.seed, self.device, classes)
        return best

    @property
    def classify(self) -> bool:
        return self.problem == Problem.CLIP_CLASSIFICATION

    def build(self, dims: list[int]) -> ClipFusionTransformer:
        p = self.params
        return ClipFusionTransformer(
            dims,
            p["width"],
            p["layers"],
            p["heads"],
            p["dropout"],
            p["max_steps"],
            self.n_outputs,
            p["linear_path"],
            self.classify,
            p.get("disagreement", False),  # saved before the option existed: without
        )

    def predict(self, data):
        """Intensities, or class probabilities (averaged over a clip's windows)."""
        return predict_clips(self.model, data, self.params["max_steps"], self.device, probabilities=self.classify)

    def predict_each(self, data) -> dict[str, np.ndarray]:
        """The smiles reports ask every clip classifier for its outputs by modality: one fused output."""
        return {data.output_name: self.predict(data)}
