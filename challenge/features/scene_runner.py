"""The scene extractor's model: loaded from transformers, run on batches of whole frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from challenge.errors import ChallengeError
from challenge.features.base import Features
from challenge.media import IMAGENET_MEAN, IMAGENET_STD, iter_video_frames, video_frame_rate
from challenge.networks.sources import load_pretrained, preprocessor_config


def load_scene_model(model: str):
    """(network, preprocessor settings) from a hub id, a folder, or a weights file with its
    architecture's config.json beside it."""
    from transformers import AutoConfig, AutoModel

    from challenge.networks.checkpoints import is_weights_file, read_weights

    if not is_weights_file(model):
        return load_pretrained(AutoModel, model, "--scene-model"), preprocessor_config(model)
    folder = Path(model).expanduser().parent
    if not (folder / "config.json").exists():
        raise ChallengeError(
            f"{model}: a single weights file needs the config.json of its architecture beside it ({folder}/config.json), "
            "for example the one of the hub model it was fine-tuned from."
        )
    network = AutoModel.from_config(AutoConfig.from_pretrained(folder))
    state = read_weights(Path(model))
    own = network.state_dict()
    # a classifier's checkpoint holds the backbone under a prefix (`convnext.`, `vit.`): drop it
    prefix = next((p for p in {k.split(".")[0] + "." for k in state} if any(k.removeprefix(p) in own for k in state)), "")
    state = {k.removeprefix(prefix): v for k, v in state.items() if k.removeprefix(prefix) in own}
    wrong = [k for k, v in state.items() if tuple(v.shape) != tuple(own[k].shape)]
    if not state or wrong or len(state) < len(own) // 2:
        raise ChallengeError(
            f"{model}: its tensors do not fit the architecture of {folder}/config.json "
            f"({len(state)} of {len(own)} matched, {len(wrong)} with other shapes). Put the right config.json beside it."
        )
    network.load_state_dict(state, strict=False)
    return network, preprocessor_config(str(folder))


class SceneRunner:
    def __init__(self, config, device: str):
        self.config, self.device = config, device
        network, processor = load_scene_model(config.model)
        self.clip = hasattr(network, "get_image_features")  # CLIPModel, SiglipModel: their image tower's embedding
        self.network = network.to(device).eval()
        vision = getattr(network.config, "vision_config", network.config)
        size = processor.get("crop_size") or processor.get("size") or getattr(vision, "image_size", 224)
        if isinstance(size, dict):
            size = size.get("height") or size.get("shortest_edge") or 224
        self.size = int(size)
        self.mean = torch.tensor(processor.get("image_mean", IMAGENET_MEAN)).view(1, 3, 1, 1)
        self.std = torch.tensor(processor.get("image_std", IMAGENET_STD)).view(1, 3, 1, 1)

    def prepare(self, source: Path):
        from PIL import Image

        rate = video_frame_rate(source)
        step = max(1, round(rate / self.config.fps))
        frames = [
            np.asarray(Image.fromarray(rgb).resize((self.size, self.size), Image.BILINEAR)) for _, rgb in iter_video_frames(source, step)
        ]
        if not frames:
            raise ChallengeError(f"{source}: the video has no frames.")
        return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2), rate / step

    @torch.inference_mode()
    def forward(self, prepared) -> Features:
        pixels, rate = prepared
        rows = []
        for start in range(0, len(pixels), self.config.batch_size):
            batch = ((pixels[start : start + self.config.batch_size].float() / 255 - self.mean) / self.std).to(self.device)
            with torch.autocast(self.device.split(":")[0], dtype=torch.bfloat16, enabled=self.config.bf16):
                rows.append(self._embed(batch).float().cpu().numpy())
        return Features(np.concatenate(rows), rate)

    def _embed(self, batch: torch.Tensor) -> torch.Tensor:
        if self.clip:
            return self.network.get_image_features(pixel_values=batch)
        out = self.network(pixel_values=batch)
        pooled = getattr(out, "pooler_output", None)
        if pooled is not None:
            return pooled.reshape(len(batch), -1)
        hidden = out.last_hidden_state
        return hidden.mean(1) if hidden.dim() == 3 else hidden.mean((2, 3))  # tokens, or a conv map [B, C, H, W]
