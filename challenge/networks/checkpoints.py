"""Single weights files in the layouts teams hold, turned into the framework's model classes.

A face MAE usually comes as one `.pth`: facebookresearch/mae's (the weights under `model`, timm
names: `patch_embed.proj`, `blocks.N.attn.qkv` fused, `norm`, or `fc_norm` when fine-tuned with
global pooling), often saved from DataParallel (`module.` prefixes) or by a team's trainer
(`main.`, `encoder.`), with or without the decoder. `read_weights` reads any of them without
unpickling code (`torch.load(weights_only=True)`, or safetensors); `vit_mae_from_timm` maps the
tensors onto transformers' `ViTMAEModel`, taking the architecture from the tensors (width,
depth, patch size, MLP width, image size) and the one thing they cannot tell, the number of
attention heads, from a setting. It says what it recognised, dropped and missed, and a missing
encoder weight is an error, never a random initialisation."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from challenge.errors import ChallengeError

WEIGHT_FILES = (".pth", ".pt", ".bin", ".safetensors", ".ckpt")
PREFIXES = ("module.", "main.", "model.", "encoder.", "backbone.")  # DataParallel, trainers' wrappers
CONTAINERS = ("model", "state_dict", "model_state", "module", "net")  # where trainers nest the weights
# parts of a pretraining or fine-tuning checkpoint that the encoder does not use
DROPPED = re.compile(r"^(decoder|mask_token|head\.|fc\.|classifier|pred|decoder_pred|decoder_norm)")


def is_weights_file(model: str) -> bool:
    path = Path(model).expanduser()
    return path.is_file() and path.suffix.lower() in WEIGHT_FILES


def read_weights(path: Path) -> dict:
    """The tensors of a weights file, unwrapped from a trainer's dict and stripped of
    DataParallel and wrapper prefixes; nothing in it is run."""
    import torch

    path = Path(path).expanduser()
    try:
        if path.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001  (unpickling refused, a damaged file, not a checkpoint at all)
        raise ChallengeError(
            f"{path}: not a readable weights file ({type(error).__name__}: {str(error)[:200]}). It is read with "
            "torch.load(weights_only=True), which refuses pickled code: re-save it as a plain state dict "
            "(torch.save(model.state_dict(), ...)) or as safetensors."
        ) from error
    for key in CONTAINERS:
        if isinstance(state, dict) and isinstance(state.get(key), dict) and not any(hasattr(v, "shape") for v in state.values()):
            state = state[key]
    if not isinstance(state, dict) or not any(hasattr(v, "shape") for v in state.values()):
        raise ChallengeError(f"{path}: holds no tensors under any of {', '.join(CONTAINERS)} or at the top level.")
    state = {k: v for k, v in state.items() if hasattr(v, "shape")}
    changed = True
    while changed:  # `module.encoder.blocks...`: strip every wrapper prefix the keys share
        changed = False
        for prefix in PREFIXES:
            if all(k.startswith(prefix) for k in state):
                state = {k[len(prefix) :]: v for k, v in state.items()}
                changed = True
    return state


@dataclass
class Conversion:
    """What a checkpoint became: the model's tensors under its own names, its architecture,
    and an account of every tensor of the file."""

    state: dict
    config: dict  # ViTMAEConfig arguments
    final_norm: str  # "norm" (every token) or "fc_norm" (after global pooling)
    recognised: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        dropped = (
            f"; dropped {len(self.dropped)} not used by the encoder ({', '.join(sorted({k.split('.')[0] for k in self.dropped}))})"
            if self.dropped
            else ""
        )
        c = self.config
        return (
            f"recognised {len(self.recognised)} tensors as a ViT encoder: width {c['hidden_size']}, depth {c['num_hidden_layers']}, "
            f"{c['num_attention_heads']} heads, patch {c['patch_size']}, image {c['image_size']}, {self.final_norm}{dropped}"
            + ("; " + "; ".join(self.notes) if self.notes else "")
        )


def vit_mae_from_timm(state: dict, source: str, heads: int | None = None, image_size: int | None = None) -> Conversion:
    """A timm-named ViT (facebookresearch/mae) as ViTMAEModel tensors."""

    need = ["cls_token", "pos_embed", "patch_embed.proj.weight", "patch_embed.proj.bias"]
    absent = [k for k in need if k not in state]
    if absent:
        raise ChallengeError(
            f"{source}: not a ViT checkpoint in timm/facebookresearch-mae names: {', '.join(absent)} missing "
            f"(it has {', '.join(sorted(state)[:8])}...). Pass a transformers folder, or a file with these names."
        )
    width = int(state["cls_token"].shape[-1])
    patch = int(state["patch_embed.proj.weight"].shape[-1])
    depth = 1 + max((int(m.group(1)) for k in state if (m := re.match(r"blocks\.(\d+)\.", k))), default=-1)
    if depth == 0:
        raise ChallengeError(f"{source}: no transformer blocks (blocks.N.*) in the file.")
    grid = math.isqrt(int(state["pos_embed"].shape[1]) - 1)
    heads = heads or max(1, width // 64)
    if width % heads:
        raise ChallengeError(
            f"{source}: width {width} is not divisible by {heads} heads; set extractors.mae.heads to the model's head count."
        )
    norm = "fc_norm" if "fc_norm.weight" in state else "norm"
    config = {
        "hidden_size": width,
        "num_hidden_layers": depth,
        "num_attention_heads": heads,
        "patch_size": patch,
        "intermediate_size": int(state["blocks.0.mlp.fc1.weight"].shape[0]),
        "image_size": (image_size or grid * patch),
        "layer_norm_eps": 1e-6,
        "hidden_act": "gelu",
        "qkv_bias": "blocks.0.attn.qkv.bias" in state,
        "mask_ratio": 0.0,
    }
    out, used = {}, set()

    def take(name: str, key: str):
        if key not in state:
            raise ChallengeError(
                f"{source}: the encoder weight {key} is missing from the file (an encoder-only or damaged "
                "checkpoint?); it is never initialised at random. Check the file, or the depth it was saved with."
            )
        used.add(key)
        out[name] = state[key]
        return state[key]

    conversion = Conversion(out, config, norm)
    take("embeddings.cls_token", "cls_token")
    take("embeddings.patch_embeddings.projection.weight", "patch_embed.proj.weight")
    take("embeddings.patch_embeddings.projection.bias", "patch_embed.proj.bias")
    position = take("embeddings.position_embeddings", "pos_embed")
    target = config["image_size"] // patch
    if target != grid:
        out["embeddings.position_embeddings"] = resample_positions(position, target)
        conversion.notes.append(f"position embeddings interpolated from {grid}x{grid} to {target}x{target} patches")
    for i in range(depth):
        _timm_block(take, out, f"blocks.{i}.", f"layers.{i}.", config["qkv_bias"])
    take("layernorm.weight", f"{norm}.weight")
    take("layernorm.bias", f"{norm}.bias")
    conversion.recognised = sorted(used)
    conversion.dropped = sorted(k for k in state if k not in used)
    unexpected = [k for k in conversion.dropped if not DROPPED.match(k) and not (norm == "fc_norm" and k.startswith("norm."))]
    if unexpected:
        conversion.notes.append(f"{len(unexpected)} tensor(s) of no known part left unused: {', '.join(unexpected[:10])}")
    return conversion


def _timm_block(take, out: dict, block: str, layer: str, qkv_bias: bool) -> None:
    """One timm transformer block (fused qkv, norm1/norm2) as a transformers ViTMAE layer."""
    import torch

    qkv = take(f"{layer}_qkv", block + "attn.qkv.weight")
    del out[f"{layer}_qkv"]
    for name, part in zip(("q_proj", "k_proj", "v_proj"), torch.chunk(qkv, 3, dim=0)):
        out[f"{layer}attention.{name}.weight"] = part.clone()
    if qkv_bias:
        bias = take(f"{layer}_qkv_bias", block + "attn.qkv.bias")
        del out[f"{layer}_qkv_bias"]
        for name, part in zip(("q_proj", "k_proj", "v_proj"), torch.chunk(bias, 3, dim=0)):
            out[f"{layer}attention.{name}.bias"] = part.clone()
    for ours, theirs in (
        ("attention.o_proj", "attn.proj"),
        ("layernorm_before", "norm1"),
        ("layernorm_after", "norm2"),
        ("mlp.fc1", "mlp.fc1"),
        ("mlp.fc2", "mlp.fc2"),
    ):
        take(f"{layer}{ours}.weight", f"{block}{theirs}.weight")
        take(f"{layer}{ours}.bias", f"{block}{theirs}.bias")


def mae_decoder_from_timm(state: dict, source: str, heads: int) -> tuple[dict, dict] | None:
    """The decoder of a facebookresearch/mae pretraining checkpoint (decoder_embed,
    decoder_blocks.N, decoder_norm, decoder_pred, mask_token, decoder_pos_embed) as
    ViTMAEForPreTraining's `decoder.*` tensors, with the ViTMAEConfig arguments it implies;
    None when the file holds no decoder (a fine-tuned or encoder-only file)."""
    if "decoder_embed.weight" not in state:
        return None
    width = int(state["decoder_embed.weight"].shape[0])
    depth = 1 + max((int(m.group(1)) for k in state if (m := re.match(r"decoder_blocks\.(\d+)\.", k))), default=-1)
    if width % heads:
        raise ChallengeError(f"{source}: decoder width {width} is not divisible by {heads} heads; set --decoder-heads to the checkpoint's.")
    out: dict = {}

    def take(name: str, key: str):
        if key not in state:
            raise ChallengeError(f"{source}: the decoder weight {key} is missing from the file (a damaged checkpoint?).")
        out[name] = state[key]
        return state[key]

    for name, key in (
        ("decoder.mask_token", "mask_token"),
        ("decoder.decoder_pos_embed", "decoder_pos_embed"),
        ("decoder.decoder_embed.weight", "decoder_embed.weight"),
        ("decoder.decoder_embed.bias", "decoder_embed.bias"),
        ("decoder.decoder_norm.weight", "decoder_norm.weight"),
        ("decoder.decoder_norm.bias", "decoder_norm.bias"),
        ("decoder.decoder_pred.weight", "decoder_pred.weight"),
        ("decoder.decoder_pred.bias", "decoder_pred.bias"),
    ):
        take(name, key)
    for i in range(depth):
        _timm_block(take, out, f"decoder_blocks.{i}.", f"decoder.decoder_layers.{i}.", "decoder_blocks.0.attn.qkv.bias" in state)
    config = {
        "decoder_hidden_size": width,
        "decoder_num_hidden_layers": depth,
        "decoder_num_attention_heads": heads,
        "decoder_intermediate_size": int(state["decoder_blocks.0.mlp.fc1.weight"].shape[0]),
    }
    return out, config


def resample_positions(position, grid: int):
    """[1, 1 + n*n, D] position embeddings (class token first) bicubically resized to grid x grid."""
    import torch
    import torch.nn.functional as F

    cls, patches = position[:, :1], position[:, 1:]
    old = math.isqrt(patches.shape[1])
    square = patches.reshape(1, old, old, -1).permute(0, 3, 1, 2)
    resized = F.interpolate(square.float(), size=(grid, grid), mode="bicubic", align_corners=False)
    return torch.cat([cls, resized.permute(0, 2, 3, 1).reshape(1, grid * grid, -1).to(position.dtype)], dim=1)


def load_vit_mae(path: str, heads: int | None = None, image_size: int | None = None):
    """(ViTMAEModel, Conversion) from a single weights file."""
    import torch
    from transformers import ViTMAEConfig, ViTMAEModel

    conversion = vit_mae_from_timm(read_weights(Path(path)), str(path), heads, image_size)
    network = ViTMAEModel(ViTMAEConfig(**conversion.config))
    missing, unexpected = network.load_state_dict(conversion.state, strict=False)
    if missing or unexpected:
        raise ChallengeError(f"{path}: converted tensors do not fit ViTMAEModel (missing {missing[:5]}, unexpected {unexpected[:5]}).")
    if conversion.final_norm == "fc_norm":  # applied after pooling by the runner, not to every token
        fc_norm = torch.nn.LayerNorm(conversion.config["hidden_size"], eps=conversion.config["layer_norm_eps"])
        fc_norm.load_state_dict({"weight": network.layernorm.weight.detach().clone(), "bias": network.layernorm.bias.detach().clone()})
        network.layernorm = torch.nn.Identity()
        network.fc_norm = fc_norm
    return network, conversion


def wav2vec2_config_from_tensors(state: dict, source: str, heads: int | None = None, conv_stride: list[int] | None = None) -> dict:
    """Wav2Vec2Config arguments read off a state dict in transformers' names (a team's fine-tuned
    wav2vec2 saved with torch.save, DataParallel prefixes stripped). The conv strides and the
    head count are not in the tensors: the standard (5, 2, 2, 2, 2, 2, 2) and width / 64, unless
    set (extractors.wav2vec2.conv_stride, .heads)."""
    conv = sorted(int(m.group(1)) for k in state if (m := re.match(r"feature_extractor\.conv_layers\.(\d+)\.conv\.weight$", k)))
    layers = 1 + max((int(m.group(1)) for k in state if (m := re.match(r"encoder\.layers\.(\d+)\.", k))), default=-1)
    if not conv or not layers or "encoder.layers.0.attention.q_proj.weight" not in state:
        raise ChallengeError(
            f"{source}: not a wav2vec2 state dict in transformers' names (feature_extractor.conv_layers.N, "
            "encoder.layers.N.attention.q_proj...): pass a save_pretrained folder or a hub id instead."
        )
    width = int(state["encoder.layers.0.attention.q_proj.weight"].shape[0])
    stride = conv_stride or ([5] + [2] * (len(conv) - 1) if len(conv) == 7 else None)
    if stride is None or len(stride) != len(conv):
        raise ChallengeError(f"{source}: {len(conv)} conv layers; set extractors.wav2vec2.conv_stride to their {len(conv)} strides.")
    try:
        return _wav2vec2_config(state, conv, layers, width, stride, heads)
    except (KeyError, AttributeError, IndexError) as error:
        name = (
            error.args[0] if isinstance(error, KeyError) else "encoder.pos_conv_embed.conv (weight_v or parametrizations.weight.original1)"
        )
        raise ChallengeError(
            f"{source}: the tensor {name} is missing from the file; the architecture is read off it, and no weight is "
            "ever initialised at random. The file is damaged or encoder-only in other names: pass a save_pretrained "
            "folder or a complete state dict."
        ) from None


def _wav2vec2_config(state: dict, conv: list[int], layers: int, width: int, stride: list[int], heads: int | None) -> dict:
    position = state.get("encoder.pos_conv_embed.conv.parametrizations.weight.original1", state.get("encoder.pos_conv_embed.conv.weight_v"))
    layer_norm_convs = "feature_extractor.conv_layers.1.layer_norm.weight" in state
    return {
        "hidden_size": width,
        "num_hidden_layers": layers,
        "num_attention_heads": heads or max(1, width // 64),
        "intermediate_size": int(state["encoder.layers.0.feed_forward.intermediate_dense.weight"].shape[0]),
        "conv_dim": [int(state[f"feature_extractor.conv_layers.{i}.conv.weight"].shape[0]) for i in conv],
        "conv_kernel": [int(state[f"feature_extractor.conv_layers.{i}.conv.weight"].shape[-1]) for i in conv],
        "conv_stride": list(stride),
        "conv_bias": "feature_extractor.conv_layers.0.conv.bias" in state,
        "num_conv_pos_embeddings": int(position.shape[-1]),
        "num_conv_pos_embedding_groups": width // int(position.shape[1]),
        # the "layer" convolutions come with the stable layer norm (large, robust models): the tensors cannot tell it apart otherwise
        "feat_extract_norm": "layer" if layer_norm_convs else "group",
        "do_stable_layer_norm": layer_norm_convs,
        "num_labels": int(state["classifier.out_proj.weight"].shape[0]) if "classifier.out_proj.weight" in state else 3,
    }


def wav2vec2_state(state: dict) -> dict:
    """The tensors under Wav2Vec2WithEmotionHead's names: the backbone under `wav2vec2.`, an
    emotion head (audeering's) under `classifier.`, old weight-norm names mapped to the new."""
    renamed = {}
    for key, value in state.items():
        key = key.removeprefix("wav2vec2.")
        key = key.replace("pos_conv_embed.conv.weight_g", "pos_conv_embed.conv.parametrizations.weight.original0")
        key = key.replace("pos_conv_embed.conv.weight_v", "pos_conv_embed.conv.parametrizations.weight.original1")
        renamed[key if key.startswith("classifier.") else f"wav2vec2.{key}"] = value
    return renamed
