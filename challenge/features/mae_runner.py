"""The MAE ViT runners (transformers or timm checkpoints) that compute face features; imported
only when features are computed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from challenge.errors import ChallengeError
from challenge.features.base import Features
from challenge.media import IMAGENET_MEAN, IMAGENET_STD, frame_files, frame_numbers, iter_video_frames, video_frame_rate
from challenge.networks.sources import load_pretrained, preprocessor_config


class MAERunner:
    def __init__(self, config, device: str):
        from transformers import ViTMAEModel

        from challenge.networks.checkpoints import is_weights_file, load_vit_mae
        from challenge.progress import say

        self.config = config
        self.device = device
        if is_weights_file(config.model):  # facebookresearch/mae and team checkpoints: one .pth
            network, conversion = load_vit_mae(config.model, config.heads, config.input_size)
            say(f"{config.model}: {conversion.describe()}")
            processor = {}
        else:
            network = load_pretrained(ViTMAEModel, config.model, "--visual-model", mask_ratio=0.0)
            processor = preprocessor_config(config.model)
        self.network = network.to(device).eval()
        self.fc_norm = getattr(self.network, "fc_norm", None)  # a fine-tuned MAE normalises after pooling
        self.mean = torch.tensor(processor.get("image_mean", IMAGENET_MEAN)).view(1, 3, 1, 1)
        self.std = torch.tensor(processor.get("image_std", IMAGENET_STD)).view(1, 3, 1, 1)
        self.size = self.network.config.image_size

    def prepare(self, source: Path):
        source = Path(source)
        if source.is_dir():
            files = frame_files(source)[:: self.config.frame_step]
            if not files:
                raise ChallengeError(f"{source}: no face images (.jpg/.png) in this folder.")
            index = frame_numbers(files)
            frames = [self._load_image(p) for p in files]
            rate = None
        else:
            decoded = list(iter_video_frames(source, self.config.frame_step))
            if not decoded:
                raise ChallengeError(f"{source}: the video has no frames.")
            frames = [self._resize(Image.fromarray(rgb)) for _, rgb in decoded]
            index = [i * self.config.frame_step + 1 for i in range(len(frames))]
            rate = video_frame_rate(source) / self.config.frame_step
        # kept as uint8 until its batch runs: a long video's frames stay 4x smaller in memory
        return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2), index, rate

    def _normalized(self, pixels: torch.Tensor) -> torch.Tensor:
        return ((pixels.float().div_(255) - self.mean) / self.std).to(self.device)

    def _load_image(self, path: Path) -> np.ndarray:
        try:
            with Image.open(path) as image:
                return self._resize(image.convert("RGB"))
        except OSError as error:
            raise ChallengeError(f"{path}: unreadable image ({error}). Replace or delete it.") from error

    def _resize(self, image: Image.Image) -> np.ndarray:
        return np.asarray(image.convert("RGB").resize((self.size, self.size), Image.BILINEAR))

    @torch.inference_mode()
    def forward(self, prepared) -> Features:
        pixels, index, rate = prepared
        patches = (self.size // self.network.config.patch_size) ** 2
        outputs = []
        for start in range(0, len(pixels), self.config.batch_size):
            batch = self._normalized(pixels[start : start + self.config.batch_size])
            # ViTMAE shuffles patches by argsort(noise) even at mask_ratio 0: a fixed ascending
            # noise keeps the original order, so the embedding never depends on a random draw
            noise = torch.arange(patches, device=self.device, dtype=torch.float32).expand(len(batch), -1)
            with torch.autocast(self.device.split(":")[0], dtype=torch.bfloat16, enabled=self.config.bf16):
                hidden = self.network(pixel_values=batch, noise=noise).last_hidden_state
            pooled = hidden[:, 1:].mean(1) if self.config.pooling == "mean" else hidden[:, 0]
            if self.fc_norm is not None:
                pooled = self.fc_norm(pooled)
            outputs.append(pooled.float().cpu().numpy())
        return Features(np.concatenate(outputs), rate, index)


class TimmRunner(MAERunner):
    """timm-format MAE checkpoints (for example face-pretrained ViTs shipped as .pth)."""

    def __init__(self, config, device: str):
        try:
            import timm
        except Exception as error:  # ImportError, or torchvision failing to import
            raise ChallengeError(
                f"the timm backend needs timm, which failed to import ({error}). Install it with "
                "`pip install 'challenge[timm]'` on a machine where torchvision works, or use "
                "--backend transformers with a ViTMAEModel checkpoint."
            ) from error
        self.config, self.device, self.size = config, device, config.image_size
        self.network = timm.create_model(config.model, pretrained=True, num_classes=0).to(device).eval()
        data = timm.data.resolve_data_config({}, model=self.network)
        self.mean = torch.tensor(data["mean"]).view(1, 3, 1, 1)
        self.std = torch.tensor(data["std"]).view(1, 3, 1, 1)

    @torch.inference_mode()
    def forward(self, prepared) -> Features:
        pixels, index, rate = prepared
        outputs = [
            self.network(self._normalized(pixels[i : i + self.config.batch_size])).float().cpu().numpy()
            for i in range(0, len(pixels), self.config.batch_size)
        ]
        return Features(np.concatenate(outputs), rate, index)
