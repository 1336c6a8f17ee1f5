"""A trained cnn-gru run as two ONNX graphs run by onnxruntime: the encoder (the run's feature
normalisation, then the CNN) maps a batch of face crops to embeddings, the temporal half (GRU and
output layer) maps a batch of embedding windows to class probabilities at each window's last
frame. A frame's faces go through each graph in one call."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from challenge.errors import ChallengeError
from challenge.track import Problem


@dataclass
class CropSettings:
    """How the run's face crops were made (the face-crop recipe its cnn-gru cut them by): live crops must match."""

    size: int = 48
    margin: float = 0.25
    detector: str = "centerface"
    detect_every: int = 10
    detection_width: int = 320

    @classmethod
    def from_recipe(cls, recipe: dict) -> CropSettings:
        from challenge.features.face_crops import FaceCropExtractor

        settings = {
            **{f: getattr(FaceCropExtractor(), f) for f in ("size", "margin", "detector", "detect_every", "detection_width")},
            **recipe,
        }
        return cls(**{k: v for k, v in settings.items() if k in cls.__dataclass_fields__})


@dataclass
class LiveModel:
    labels: list[str]
    crops: CropSettings
    window: int
    encoder: object  # onnxruntime.InferenceSession
    temporal: object
    source: str = "untrained"  # the run id, or "untrained" (benchmarks)

    def encode(self, crops: np.ndarray) -> np.ndarray:
        """[N, size²] crops in [0, 1] to [N, E] embeddings."""
        return self.encoder.run(None, {"crops": crops.astype(np.float32, copy=False)})[0]

    def classify(self, windows: np.ndarray) -> np.ndarray:
        """[B, T, E] embedding windows (oldest first) to [B, C] probabilities at the last frame."""
        return self.temporal.run(None, {"embeddings": windows.astype(np.float32, copy=False)})[0]

    @classmethod
    def from_run(cls, run_id: str, tracking_uri: str | None = None, threads: int = 0) -> LiveModel:
        from challenge.run.saved_model import load_run_model

        saved = load_run_model(run_id, tracking_uri)
        # a run selected on grouped folds keeps its K fold models: live averages them, as its scores did
        members = getattr(saved.head, "members", [saved.head])
        networks = [getattr(m, "model", None) for m in members]
        if saved.head.name != "cnn-gru" or any(n is None for n in networks):
            raise ChallengeError(
                f"run {run_id} is a {saved.head.name!r} model of track {saved.track}; `challenge live` needs a cnn-gru "
                "run: challenge track smile-intensity --data CORPUS --head cnn-gru"
            )
        from challenge.registry import get_track

        labels = list(get_track(saved.track).labels)
        labels += ["Subtle"][: networks[0].out.out_features - len(labels)]  # smile-intensity --subtle keep adds a fifth class
        if saved.post.problem != Problem.FRAME_CLASSIFICATION:
            raise ChallengeError(f"run {run_id}: track {saved.track} is not a per-frame classification track.")
        first = members[0]
        crops = CropSettings.from_recipe(first.crop_recipe())
        # cnn-gru reads crops in [0, 1] and scales them itself: no normaliser between the crops and the CNN
        return cls.export(
            networks,
            np.zeros(crops.size**2, np.float32),
            np.ones(crops.size**2, np.float32),
            labels,
            crops,
            saved.head.params["window"],
            run_id,
            threads,
        )

    @classmethod
    def untrained(
        cls, labels: list[str], crops: CropSettings | None = None, window: int = 20, seed: int = 0, threads: int = 0
    ) -> LiveModel:
        """Default cnn-gru parameters, random weights: for timing the pipeline, never for results."""
        from challenge.heads.cnn_gru import CNNGRU, CNNGRUHead

        crops = crops or CropSettings()
        torch.manual_seed(seed)
        p = CNNGRUHead.defaults

        network = CNNGRU(crops.size, p["channels"], p["embedding"], p["units"], p["layers"], p["dropout"], len(labels))
        dim = crops.size**2
        return cls.export([network], np.zeros(dim, np.float32), np.ones(dim, np.float32), labels, crops, window, "untrained", threads)

    @classmethod
    def export(
        cls,
        networks: list,
        mean: np.ndarray,
        std: np.ndarray,
        labels: list[str],
        crops: CropSettings,
        window: int,
        source: str,
        threads: int = 0,
    ) -> LiveModel:
        """`networks`: one CNNGRU, or the K fold models of a run (their embeddings side by side,
        their probabilities averaged, each graph still one call)."""
        import onnxruntime

        networks = [n.cpu().eval() for n in networks]
        encoder = _Encoder([n.encoder for n in networks], torch.as_tensor(mean), torch.as_tensor(std))
        temporal = _LastStep(networks)
        dim, embedding = crops.size**2, sum(n.encoder.dim for n in networks)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads  # 0: onnxruntime's default (all cores)
        options.log_severity_level = 3
        sessions = []
        for module, example, name, axes in (
            (encoder, torch.zeros(2, dim), "crops", {0: "faces"}),
            (temporal, torch.zeros(2, 3, embedding), "embeddings", {0: "faces", 1: "frames"}),
        ):
            buffer = io.BytesIO()
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")  # the exporter's notes on GRU batch sizes: our batch axis is dynamic and h0 is zero
                torch.onnx.export(
                    module,
                    (example,),
                    buffer,
                    dynamo=False,
                    input_names=[name],
                    output_names=["out"],
                    dynamic_axes={name: axes, "out": {0: "faces"}},
                )
            sessions.append(onnxruntime.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"]))
        return cls(labels, crops, window, sessions[0], sessions[1], source)


class _Encoder(torch.nn.Module):
    """An optional per-pixel normalisation (identity for cnn-gru, which scales crops itself), then
    each model's CNN: raw crops in, their embeddings side by side."""

    def __init__(self, cnns, mean, std):
        super().__init__()
        self.cnns = torch.nn.ModuleList(cnns)
        self.register_buffer("mean", mean.float())
        self.register_buffer("std", std.float())

    def forward(self, crops):
        normalised = (crops - self.mean) / self.std
        return torch.cat([cnn(normalised) for cnn in self.cnns], -1)


class _LastStep(torch.nn.Module):
    """Each model's GRU and output layer over the window, on its part of the embeddings; the
    probabilities of the last frame, averaged over the models."""

    def __init__(self, networks):
        super().__init__()
        self.networks = torch.nn.ModuleList(networks)
        self.widths = [n.encoder.dim for n in networks]

    def forward(self, embeddings):
        parts = torch.split(embeddings, self.widths, dim=-1)
        return torch.stack([n.temporal(part)[:, -1].softmax(-1) for n, part in zip(self.networks, parts)]).mean(0)
