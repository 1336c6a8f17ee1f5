"""Tiny randomly initialised checkpoints in the real formats.

No weights can be downloaded in CI or on offline machines; these exercise the real loading code
(`save_pretrained` then `from_pretrained` from a local directory). Their features are random
projections, not pretrained representations: scores with them say nothing about real models.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


def tiny_wav2vec2(directory: Path, emotion_head: bool = False, hidden: int = 32, layers: int = 2, seed: int = 0) -> Path:
    import torch

    from challenge.networks.sources import quiet_transformers

    quiet_transformers()
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    from challenge.networks.wav2vec2 import Wav2Vec2WithEmotionHead

    torch.manual_seed(seed)
    config = Wav2Vec2Config(
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=2 * hidden,
        conv_dim=(32, 32, 32, 32, 32, 32, 32),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        num_labels=3,
        do_stable_layer_norm=False,
        feat_extract_norm="group",
    )
    model = Wav2Vec2WithEmotionHead(config) if emotion_head else Wav2Vec2Model(config)
    model.save_pretrained(directory)
    (Path(directory) / "preprocessor_config.json").write_text(json.dumps({"do_normalize": True, "sampling_rate": 16000}))
    return Path(directory)


def tiny_mae(directory: Path, image_size: int = 32, hidden: int = 32, seed: int = 0) -> Path:
    import torch

    from challenge.networks.sources import quiet_transformers

    quiet_transformers()
    from transformers import ViTMAEConfig, ViTMAEModel

    torch.manual_seed(seed)
    config = ViTMAEConfig(
        image_size=image_size,
        patch_size=8,
        hidden_size=hidden,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=2 * hidden,
        decoder_hidden_size=16,
        decoder_num_hidden_layers=1,
        decoder_num_attention_heads=2,
        decoder_intermediate_size=32,
    )
    ViTMAEModel(config).save_pretrained(directory)
    (Path(directory) / "preprocessor_config.json").write_text(
        json.dumps({"image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], "size": {"height": image_size, "width": image_size}})
    )
    return Path(directory)


def tiny_convnext(directory: Path, image_size: int = 32, seed: int = 0) -> Path:
    """A ConvNeXt (the VD winner's frame encoder family) with random weights, for `scene`."""
    import torch

    from challenge.networks.sources import quiet_transformers

    quiet_transformers()
    from transformers import ConvNextConfig, ConvNextModel

    torch.manual_seed(seed)
    config = ConvNextConfig(num_channels=3, patch_size=4, num_stages=2, hidden_sizes=[16, 32], depths=[1, 1], image_size=image_size)
    ConvNextModel(config).save_pretrained(directory)
    (Path(directory) / "preprocessor_config.json").write_text(
        json.dumps({"image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225], "crop_size": image_size})
    )
    return Path(directory)


STAND_INS = "stand-in-models"


def write_stand_ins(directory: Path, dataset_roots: list[Path]) -> dict[str, Path]:
    """Random-weight wav2vec2 and MAE in `directory/stand-in-models/` (once), and a
    `challenge.yaml` in each dataset root naming them, so every command the README shows on demo
    data runs offline as printed. They exercise the real loading and extraction code; their
    features are random projections (the demo's signal comes from eGeMAPS and the drawn faces)."""
    import yaml

    models = Path(directory) / STAND_INS
    paths = {"audio_model": models / "wav2vec2-random", "visual_model": models / "mae-random", "scene_model": models / "convnext-random"}
    if not (paths["audio_model"] / "config.json").exists():
        tiny_wav2vec2(paths["audio_model"], hidden=64)
    if not (paths["visual_model"] / "config.json").exists():
        tiny_mae(paths["visual_model"])
    if not (paths["scene_model"] / "config.json").exists():
        tiny_convnext(paths["scene_model"])
    for root in dataset_roots:
        settings = {
            "extractors": {
                "wav2vec2": {"model": os.path.relpath(paths["audio_model"], root)},
                "mae": {"model": os.path.relpath(paths["visual_model"], root)},
                "scene": {"model": os.path.relpath(paths["scene_model"], root)},
            }
        }
        text = (
            "# Demo dataset: its runs use random-weight stand-in models, since none can be downloaded here.\n"
            "# Flags (--audio-model, --visual-model) override these; real datasets need no such file.\n"
        )
        (Path(root) / "challenge.yaml").write_text(text + yaml.safe_dump(settings, sort_keys=True))
    return paths
