"""Pretrained backbones as trainable modules: loading (hub id, save_pretrained folder, or one
weights file, through the same loaders as the feature extractors), rebuilding from a saved
config, freezing (wav2vec2's convolutional feature encoder; all but the last N blocks),
gradient checkpointing, parameter groups with layer-wise learning-rate decay, and
`save_pretrained` of the fine-tuned weights (a folder `--audio-model`/`--visual-model` take)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from torch import nn

from challenge.errors import ChallengeError
from challenge.progress import say


class Backbone(nn.Module):
    """A transformers encoder plus what fine-tuning needs to know of it. `forward` gives
    [B, T, H] hidden states (wav2vec2: steps; ViT: patch tokens)."""

    kind: str
    layer_pattern: str  # the name of a transformer block's parameters, its index as group 1
    conversion: str | None = None  # what a single weights file became (recognised, dropped): logged with the run

    def __init__(self, network, preprocessor: dict):
        super().__init__()
        self.network, self.preprocessor = network, preprocessor

    @property
    def depth(self) -> int:
        return self.network.config.num_hidden_layers

    @property
    def width(self) -> int:
        return self.network.config.hidden_size

    def config_dict(self) -> dict:
        return {"kind": self.kind, "config": self.network.config.to_dict(), "preprocessor": self.preprocessor}

    def layer_of(self, name: str) -> int:
        """0 for the embeddings, i + 1 for block i, depth + 1 for what follows the last block."""
        match = re.search(self.layer_pattern, name)
        if match:
            return int(match.group(1)) + 1
        return self.depth + 1 if self.after_blocks(name) else 0

    def after_blocks(self, name: str) -> bool:
        return False

    def freeze(self, trainable_blocks: int, freeze_feature_encoder: bool) -> None:
        """Only the last `trainable_blocks` blocks (and what follows them) train; 0 = all."""
        if trainable_blocks:
            first = self.depth - trainable_blocks + 1
            for name, parameter in self.network.named_parameters():
                if self.layer_of(name) < first:
                    parameter.requires_grad_(False)

    def parameter_groups(self, backbone_lr: float, layer_decay: float) -> list[dict]:
        """Each layer its own learning rate: backbone_lr at the last block, times layer_decay per
        block below it (Clark et al.'s layer-wise decay; 1.0 = one rate for all)."""
        groups: dict[int, list] = {}
        for name, parameter in self.network.named_parameters():
            if parameter.requires_grad:
                groups.setdefault(self.layer_of(name), []).append(parameter)
        top = self.depth
        return [
            {"params": params, "lr": backbone_lr * layer_decay ** max(0, top - layer), "layer": layer}
            for layer, params in sorted(groups.items())
        ]

    def checkpointing(self, enabled: bool) -> None:
        if enabled:
            self.network.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})

    def save_pretrained(self, folder: Path) -> Path:
        folder = Path(folder)
        self.network.save_pretrained(folder)
        (folder / "preprocessor_config.json").write_text(json.dumps(self.preprocessor, indent=1))
        return folder


class Wav2Vec2Backbone(Backbone):
    kind = "wav2vec2"
    layer_pattern = r"^encoder\.layers\.(\d+)\."

    def after_blocks(self, name: str) -> bool:
        # the final layer norm of stable-layer-norm models (large, robust) follows the blocks
        return name.startswith("encoder.layer_norm") and self.network.config.do_stable_layer_norm

    def freeze(self, trainable_blocks: int, freeze_feature_encoder: bool) -> None:
        if freeze_feature_encoder:
            self.network.freeze_feature_encoder()
        super().freeze(trainable_blocks, freeze_feature_encoder)

    def keep_blocks(self, layer: int | None) -> None:
        """Drop the blocks above `layer` (a hidden-state index, as the extractor's `layer`: -1 or
        None = all, k = the first k blocks)."""
        if layer is None or layer < 0 or layer >= self.depth:
            return
        if layer == 0:
            raise ChallengeError(
                "extractors.wav2vec2.layer 0 is the convolutional projection: fine-tuning needs at least one "
                "transformer block (layer >= 1, or -1 for all)."
            )
        self.network.encoder.layers = self.network.encoder.layers[:layer]
        self.network.config.num_hidden_layers = layer

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        return self.network(waveforms).last_hidden_state

    def steps(self, samples: torch.Tensor) -> torch.Tensor:
        """Output steps of inputs of `samples` samples (the convolutions' receptive field)."""
        return self.network._get_feat_extract_output_lengths(samples).long()


class ViTBackbone(Backbone):
    kind = "vit-mae"
    # transformers 5 names ViTMAE's blocks layers.N; 4.x named them encoder.layer.N
    layer_pattern = r"^(?:encoder\.layer|layers)\.(\d+)\."

    def after_blocks(self, name: str) -> bool:
        return name.startswith(("layernorm", "fc_norm"))

    def __init__(self, network, preprocessor: dict):
        super().__init__(network, preprocessor)
        self.register_buffer("mean", torch.tensor(preprocessor.get("image_mean", [0.485, 0.456, 0.406])).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(preprocessor.get("image_std", [0.229, 0.224, 0.225])).view(1, 3, 1, 1), persistent=False)

    def config_dict(self) -> dict:
        return super().config_dict() | {"fc_norm": getattr(self.network, "fc_norm", None) is not None}

    @property
    def size(self) -> int:
        return self.network.config.image_size

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """[B, size, size, 3] uint8 frames -> [B, H] pooled patch tokens (mean, then fc_norm when
        the checkpoint has one, as the mae extractor pools)."""
        x = (pixels.permute(0, 3, 1, 2).float() / 255 - self.mean) / self.std
        patches = (self.size // self.network.config.patch_size) ** 2
        # a fixed ascending noise keeps ViTMAE's patch order (it shuffles by argsort(noise) even unmasked)
        noise = torch.arange(patches, device=x.device, dtype=torch.float32).expand(len(x), -1)
        pooled = self.network(pixel_values=x, noise=noise).last_hidden_state[:, 1:].mean(1)
        fc_norm = getattr(self.network, "fc_norm", None)
        return fc_norm(pooled) if fc_norm is not None else pooled


class SocialMAEBackbone(Backbone):
    """Social-MAE's encoder (challenge.networks.social_mae): a clip's filterbank and face
    frames -> [B, 3 x width], its pooled joint, audio and video embeddings (as the social-mae
    extractor stores them). The decoder stays out of fine-tuning (frozen, never run). Layers for
    the rates: block i of either modality encoder is layer i + 1, the joint blocks follow."""

    kind = "social-mae"
    layer_pattern = r"^blocks_[av]\.(\d+)\."

    def __init__(self, network, preprocessor: dict | None = None):
        super().__init__(network, preprocessor or {})
        for name, parameter in network.named_parameters():
            if name.startswith(("decoder", "mask_token")):
                parameter.requires_grad_(False)

    @property
    def depth(self) -> int:
        return self.network.config.modality_depth + self.network.config.joint_depth

    @property
    def width(self) -> int:
        return 3 * self.network.config.width

    def layer_of(self, name: str) -> int:
        match = re.match(r"^blocks_u\.(\d+)\.", name)
        if match:
            return self.network.config.modality_depth + int(match.group(1)) + 1
        return super().layer_of(name)

    def after_blocks(self, name: str) -> bool:
        return name.startswith(("norm.", "norm_a.", "norm_v."))

    def config_dict(self) -> dict:
        import dataclasses

        return {"kind": self.kind, "config": dataclasses.asdict(self.network.config), "preprocessor": {}}

    def checkpointing(self, enabled: bool) -> None:
        if enabled:
            raise ChallengeError("gradient checkpointing is not available for Social-MAE yet: leave finetune.checkpointing off.")

    def save_pretrained(self, folder: Path) -> Path:
        return self.network.save_pretrained(folder)

    def forward(self, fbank: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
        pooled = self.network.encode(fbank, faces)
        return torch.cat([pooled["joint"], pooled["audio"], pooled["video"]], -1)


def load_backbone(kind: str, settings: dict, layer: int | None = None) -> Backbone:
    """The pretrained backbone named by an extractor's settings (`model`, and for single weights
    files `heads`, `conv_stride`, `input_size`). wav2vec2 keeps its first `layer` blocks (the
    layer the frozen features are read at), so fine-tuning starts from those features."""
    from challenge.networks.checkpoints import is_weights_file
    from challenge.networks.sources import load_pretrained, preprocessor_config

    model = settings["model"]
    if kind == "wav2vec2":
        from challenge.networks.wav2vec2 import load_wav2vec2, load_wav2vec2_file

        if is_weights_file(model):
            network, dropped = load_wav2vec2_file(model, settings.get("heads"), settings.get("conv_stride"))
            conversion = f"{model}: a wav2vec2 state dict; dropped {len(dropped)} tensors not in wav2vec2" + (
                f" ({', '.join(dropped)})" if dropped else ""
            )
            say(conversion)
        else:
            network = load_wav2vec2(model)
        backbone = Wav2Vec2Backbone(
            network.wav2vec2,
            {"do_normalize": True, "sampling_rate": 16000, **preprocessor_config(model)}
            if not is_weights_file(model)
            else {"do_normalize": True, "sampling_rate": 16000},
        )
        backbone.keep_blocks(layer)
        if is_weights_file(model):
            backbone.conversion = conversion
        return backbone
    if kind == "vit-mae":
        from transformers import ViTMAEModel

        from challenge.networks.checkpoints import load_vit_mae

        if is_weights_file(model):
            network, conversion = load_vit_mae(model, settings.get("heads"), settings.get("input_size"))
            say(f"{model}: {conversion.describe()}")
            backbone = ViTBackbone(network, {})
            backbone.conversion = f"{model}: {conversion.describe()}"
            return backbone
        return ViTBackbone(load_pretrained(ViTMAEModel, model, "--visual-model", mask_ratio=0.0), preprocessor_config(model))
    if kind == "social-mae":
        from challenge.networks.social_mae import load_social_mae

        if not settings.get("model"):
            raise ChallengeError(
                "a Social-MAE head needs its model: --social-mae-model DIR (challenge pretrain social-mae) or the authors' .pth."
            )
        network, origin = load_social_mae(
            settings["model"], settings.get("heads"), None, settings.get("frames"), settings.get("mel_bins", 128)
        )
        say(origin)
        backbone = SocialMAEBackbone(network)
        backbone.conversion = origin
        return backbone
    raise ChallengeError(f"no backbone kind {kind!r}; kinds: wav2vec2, vit-mae, social-mae")


def rebuild_backbone(saved: dict) -> Backbone:
    """The architecture of a saved backbone (config_dict), at random weights: its tensors come
    from the saved model."""
    from challenge.networks.sources import quiet_transformers

    quiet_transformers()
    if saved["kind"] == "social-mae":
        from challenge.networks.social_mae import SocialMAE, SocialMAEConfig

        return SocialMAEBackbone(SocialMAE(SocialMAEConfig.from_dict(saved["config"])))
    if saved["kind"] == "wav2vec2":
        from transformers import Wav2Vec2Config, Wav2Vec2Model

        return Wav2Vec2Backbone(Wav2Vec2Model(Wav2Vec2Config.from_dict(saved["config"])), saved["preprocessor"])
    from transformers import ViTMAEConfig, ViTMAEModel

    network = ViTMAEModel(ViTMAEConfig.from_dict(saved["config"]))
    if saved.get("fc_norm"):  # a fine-tuned MAE's norm after pooling (challenge.networks.checkpoints.load_vit_mae)
        network.fc_norm = nn.LayerNorm(network.config.hidden_size, eps=network.config.layer_norm_eps)
        network.layernorm = nn.Identity()
    return ViTBackbone(network, saved["preprocessor"])
