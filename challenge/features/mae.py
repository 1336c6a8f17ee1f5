"""Per-frame face embeddings from an MAE ViT encoder (transformers `ViTMAEModel`; timm optional)."""

from __future__ import annotations

from dataclasses import dataclass

from challenge.features.base import Extractor


@dataclass(frozen=True)
class MAEExtractor(Extractor):
    name = "mae"
    modality = "visual"
    model: str = "hf:facebook/vit-mae-base"  # hf:HUB_ID, a save_pretrained folder, or one weights file (.pth, .safetensors...)
    backend: str = "transformers"  # or "timm" for timm-format checkpoints (optional extra)
    image_size: int = 224  # timm backend; transformers checkpoints carry their own size
    heads: int | None = None  # a single weights file: its attention heads, which tensors cannot tell (default width / 64)
    input_size: int | None = None  # a single weights file: the image size to run at (position embeddings interpolated)
    pooling: str = "mean"  # "mean" of patch tokens or "cls"; both independent of patch order
    frame_step: int = 1  # keep every n-th frame (video input) or frame file (crop folders)
    batch_size: int = 32
    bf16: bool = False  # bfloat16 autocast: for GPUs and CPUs with AMX (slower without, see benchmarks)

    def build(self, device: str):
        # torch, PIL and transformers (or timm) load here, when features are computed
        from challenge.features.mae_runner import MAERunner, TimmRunner

        return TimmRunner(self, device) if self.backend == "timm" else MAERunner(self, device)
