"""Social-MAE (Bohy et al., FG 2024): an audio-visual masked autoencoder for face and voice,
CAV-MAE (Gong et al., ICLR 2023) with several video frames instead of one.

- Audio: a log-mel filterbank (`mel_bins` x `audio_frames`, 10 ms hop; 128 x 1024 in the paper)
  read as a one-channel image and cut into `patch_size` squares.
- Video: `frames` face crops (8 in the paper) cut into tubelets of `tubelet` frames x
  `patch_size` x `patch_size` pixels.
- Modality encoders (`modality_depth` blocks each), then `joint_depth` shared blocks run three
  ways: on both modalities' tokens together (layer norm `norm`), on audio alone (the blocks'
  audio norms, `norm_a`) and on video alone (`norm_v`).
- A decoder (mask tokens at the hidden positions) reconstructs both modalities from the joint
  tokens; the loss is the reconstruction of the hidden patches plus `contrast_weight` x an
  InfoNCE loss between the mean-pooled audio and video tokens of the clips of a batch.

Parameter names follow the authors' code (patch_embed_a, blocks_a/_v/_u with norm1_a..., norm_a,
decoder_pred_v...), so their checkpoints (DataParallel `module.` state dicts) load tensor for
tensor (`load_social_mae`); the architecture is read off the tensors. The video patch embedding is
a 3-D convolution; a CAV-MAE checkpoint's 2-D one (one frame) is its tubelet-1 case. Its input
(filterbank and face frames of a clip) comes from challenge.features.audio_visual."""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from challenge.errors import ChallengeError

CONFIG_FILE, WEIGHTS_FILE = "social_mae_config.json", "model.safetensors"


@dataclass(frozen=True)
class SocialMAEConfig:
    image_size: int = 224
    frames: int = 8
    tubelet: int = 2
    patch_size: int = 16
    mel_bins: int = 128
    audio_frames: int = 1024  # filterbank frames of 10 ms: 10.24 s of audio per clip
    width: int = 768
    modality_depth: int = 11
    joint_depth: int = 1
    heads: int = 12
    decoder_width: int = 512
    decoder_depth: int = 8
    decoder_heads: int = 16
    mlp_ratio: float = 4.0
    mask_ratio_audio: float = 0.75
    mask_ratio_video: float = 0.75
    contrast_weight: float = 0.01
    norm_pix_loss: bool = False

    @property
    def audio_grid(self) -> tuple[int, int]:
        return self.mel_bins // self.patch_size, self.audio_frames // self.patch_size

    @property
    def audio_tokens(self) -> int:
        return math.prod(self.audio_grid)

    @property
    def video_grid(self) -> tuple[int, int, int]:
        side = self.image_size // self.patch_size
        return self.frames // self.tubelet, side, side

    @property
    def video_tokens(self) -> int:
        return math.prod(self.video_grid)

    @property
    def clip_seconds(self) -> float:
        return self.audio_frames / 100

    def check(self) -> SocialMAEConfig:
        problems = [
            f"{name} {value} is not a multiple of {of}"
            for name, value, of in (
                ("mel_bins", self.mel_bins, self.patch_size),
                ("audio_frames", self.audio_frames, self.patch_size),
                ("image_size", self.image_size, self.patch_size),
                ("frames", self.frames, self.tubelet),
                ("width", self.width, self.heads),
                ("decoder_width", self.decoder_width, self.decoder_heads),
            )
            if value % of
        ]
        if problems:
            raise ChallengeError("Social-MAE settings: " + "; ".join(problems) + ".")
        return self

    @classmethod
    def from_dict(cls, values: dict) -> SocialMAEConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known}).check()


class Attention(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        return self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, d))


class Mlp(nn.Module):
    def __init__(self, width: int, hidden: int):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(width, hidden), nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    """A pre-norm transformer block with a third set of layer norms per modality: the joint
    blocks run on audio alone, video alone or both, each with its own norms."""

    def __init__(self, width: int, heads: int, mlp_ratio: float):
        super().__init__()
        for name in ("norm1", "norm1_a", "norm1_v", "norm2", "norm2_a", "norm2_v"):
            setattr(self, name, nn.LayerNorm(width, eps=1e-5))
        self.attn = Attention(width, heads)
        self.mlp = Mlp(width, int(width * mlp_ratio))

    def forward(self, x: torch.Tensor, modality: str = "") -> torch.Tensor:
        suffix = f"_{modality}" if modality else ""
        x = x + self.attn(getattr(self, "norm1" + suffix)(x))
        return x + self.mlp(getattr(self, "norm2" + suffix)(x))


def sincos_positions(count: int, width: int) -> torch.Tensor:
    """[1, count, width] sine-cosine embeddings of token indices (the starting values; they train)."""
    position = torch.arange(count, dtype=torch.float32)[:, None]
    rates = torch.exp(-math.log(10000.0) * torch.arange(0, width, 2, dtype=torch.float32) / width)
    table = torch.zeros(count, width)
    table[:, 0::2] = torch.sin(position * rates)
    table[:, 1::2] = torch.cos(position * rates)[:, : width // 2]
    return table[None]


class SocialMAE(nn.Module):
    def __init__(self, config: SocialMAEConfig):
        super().__init__()
        c = self.config = config.check()
        self.patch_embed_a = _PatchEmbed(nn.Conv2d(1, c.width, c.patch_size, c.patch_size))
        self.patch_embed_v = _PatchEmbed(
            nn.Conv3d(3, c.width, (c.tubelet, c.patch_size, c.patch_size), (c.tubelet, c.patch_size, c.patch_size))
        )
        self.modality_a = nn.Parameter(torch.randn(1, 1, c.width) * 0.02)
        self.modality_v = nn.Parameter(torch.randn(1, 1, c.width) * 0.02)
        self.pos_embed_a = nn.Parameter(sincos_positions(c.audio_tokens, c.width))
        self.pos_embed_v = nn.Parameter(sincos_positions(c.video_tokens, c.width))
        block = lambda width, heads: Block(width, heads, c.mlp_ratio)  # noqa: E731
        self.blocks_a = nn.ModuleList(block(c.width, c.heads) for _ in range(c.modality_depth))
        self.blocks_v = nn.ModuleList(block(c.width, c.heads) for _ in range(c.modality_depth))
        self.blocks_u = nn.ModuleList(block(c.width, c.heads) for _ in range(c.joint_depth))
        self.norm_a, self.norm_v, self.norm = (nn.LayerNorm(c.width, eps=1e-5) for _ in range(3))
        self.decoder_embed = nn.Linear(c.width, c.decoder_width)
        self.mask_token = nn.Parameter(torch.randn(1, 1, c.decoder_width) * 0.02)
        self.decoder_modality_a = nn.Parameter(torch.randn(1, 1, c.decoder_width) * 0.02)
        self.decoder_modality_v = nn.Parameter(torch.randn(1, 1, c.decoder_width) * 0.02)
        self.decoder_pos_embed_a = nn.Parameter(sincos_positions(c.audio_tokens, c.decoder_width))
        self.decoder_pos_embed_v = nn.Parameter(sincos_positions(c.video_tokens, c.decoder_width))
        self.decoder_blocks = nn.ModuleList(block(c.decoder_width, c.decoder_heads) for _ in range(c.decoder_depth))
        self.decoder_norm = nn.LayerNorm(c.decoder_width, eps=1e-5)
        self.decoder_pred_a = nn.Linear(c.decoder_width, c.patch_size**2)
        self.decoder_pred_v = nn.Linear(c.decoder_width, c.tubelet * c.patch_size**2 * 3)

    # -- tokens ------------------------------------------------------------------------------
    def audio_tokens(self, fbank: torch.Tensor) -> torch.Tensor:
        """[B, audio_frames, mel_bins] -> [B, audio_tokens, width] (frequency-major, as CAV-MAE)."""
        return self.patch_embed_a(fbank.unsqueeze(1).transpose(2, 3)) + self.pos_embed_a + self.modality_a

    def video_tokens(self, video: torch.Tensor) -> torch.Tensor:
        """[B, frames, 3, size, size] -> [B, video_tokens, width]."""
        return self.patch_embed_v(video.transpose(1, 2)) + self.pos_embed_v + self.modality_v

    def audio_patches(self, fbank: torch.Tensor) -> torch.Tensor:
        """The reconstruction targets, in token order: [B, audio_tokens, patch²]."""
        p, (f, t) = self.config.patch_size, self.config.audio_grid
        x = fbank.transpose(1, 2).reshape(len(fbank), f, p, t, p)
        return x.permute(0, 1, 3, 2, 4).reshape(len(fbank), f * t, p * p)

    def video_patches(self, video: torch.Tensor) -> torch.Tensor:
        """[B, video_tokens, tubelet x patch² x 3]."""
        c = self.config
        (g, h, w), p = c.video_grid, c.patch_size
        x = video.reshape(len(video), g, c.tubelet, 3, h, p, w, p)
        return x.permute(0, 1, 4, 6, 2, 5, 7, 3).reshape(len(video), g * h * w, c.tubelet * p * p * 3)

    def unpatch_video(self, patches: torch.Tensor) -> torch.Tensor:
        c = self.config
        (g, h, w), p = c.video_grid, c.patch_size
        x = patches.reshape(len(patches), g, h, w, c.tubelet, p, p, 3)
        return x.permute(0, 1, 4, 7, 2, 5, 3, 6).reshape(len(patches), c.frames, 3, h * p, w * p)

    # -- encoder -----------------------------------------------------------------------------
    def encode(self, fbank: torch.Tensor, video: torch.Tensor) -> dict[str, torch.Tensor]:
        """Unmasked embeddings, mean-pooled per clip: `joint` (both modalities through the joint
        blocks, `norm`), `audio` and `video` (each alone, with its own norms), each [B, width]."""
        joint, alone_a, alone_v = self._encode_tokens(self.audio_tokens(fbank), self.video_tokens(video))
        return {"joint": self.norm(joint).mean(1), "audio": self.norm_a(alone_a).mean(1), "video": self.norm_v(alone_v).mean(1)}

    def _encode_tokens(self, a: torch.Tensor, v: torch.Tensor):
        """Modality encoders, then the joint blocks three ways: (both together, audio alone, video alone)."""
        for blk in self.blocks_a:
            a = blk(a)
        for blk in self.blocks_v:
            v = blk(v)
        joint, alone_a, alone_v = torch.cat([a, v], 1), a, v
        for blk in self.blocks_u:
            joint, alone_a, alone_v = blk(joint), blk(alone_a, "a"), blk(alone_v, "v")
        return joint, alone_a, alone_v

    @staticmethod
    def _mask(x: torch.Tensor, ratio: float, noise: torch.Tensor | None):
        """Keep the (1 - ratio) tokens of lowest noise: (kept tokens, mask 1 = hidden, restore order)."""
        n, length, d = x.shape
        keep = int(length * (1 - ratio))
        noise = torch.rand(n, length, device=x.device) if noise is None else noise.to(x.device)
        shuffle = torch.argsort(noise, dim=1)
        restore = torch.argsort(shuffle, dim=1)
        kept = torch.gather(x, 1, shuffle[:, :keep, None].expand(-1, -1, d))
        mask = torch.ones(n, length, device=x.device)
        mask[:, :keep] = 0
        return kept, torch.gather(mask, 1, restore), restore

    def forward(
        self, fbank: torch.Tensor, video: torch.Tensor, noise_audio: torch.Tensor | None = None, noise_video: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """The pretraining pass: losses (`loss`, `loss_audio`, `loss_video`, `loss_contrast`),
        the predictions of every patch and the masks."""
        c = self.config
        a, mask_a, restore_a = self._mask(self.audio_tokens(fbank), c.mask_ratio_audio, noise_audio)
        v, mask_v, restore_v = self._mask(self.video_tokens(video), c.mask_ratio_video, noise_video)
        joint, alone_a, alone_v = self._encode_tokens(a, v)
        pred_a, pred_v = self._decode(self.norm(joint), a.shape[1], restore_a, restore_v)
        loss_a = self._reconstruction(pred_a, self.audio_patches(fbank), mask_a)
        loss_v = self._reconstruction(pred_v, self.video_patches(video), mask_v)
        loss_c = contrastive_loss(self.norm_a(alone_a).mean(1), self.norm_v(alone_v).mean(1))
        return {
            "loss": loss_a + loss_v + c.contrast_weight * loss_c,
            "loss_audio": loss_a,
            "loss_video": loss_v,
            "loss_contrast": loss_c,
            "pred_audio": pred_a,
            "pred_video": pred_v,
            "mask_audio": mask_a,
            "mask_video": mask_v,
        }

    def _decode(self, joint: torch.Tensor, kept_a: int, restore_a: torch.Tensor, restore_v: torch.Tensor):
        c = self.config
        x = self.decoder_embed(joint)
        n, d = len(x), x.shape[-1]

        def unshuffle(kept: torch.Tensor, total: int, restore: torch.Tensor) -> torch.Tensor:
            filled = torch.cat([kept, self.mask_token.expand(n, total - kept.shape[1], d)], 1)
            return torch.gather(filled, 1, restore[..., None].expand(-1, -1, d))

        a = unshuffle(x[:, :kept_a], c.audio_tokens, restore_a) + self.decoder_pos_embed_a + self.decoder_modality_a
        v = unshuffle(x[:, kept_a:], c.video_tokens, restore_v) + self.decoder_pos_embed_v + self.decoder_modality_v
        x = torch.cat([a, v], 1)
        for blk in self.decoder_blocks:
            x = blk(x)
        x = self.decoder_norm(x)
        return self.decoder_pred_a(x[:, : c.audio_tokens]), self.decoder_pred_v(x[:, c.audio_tokens :])

    def _reconstruction(self, predicted: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.config.norm_pix_loss:
            target = (target - target.mean(-1, keepdim=True)) / (target.var(-1, keepdim=True) + 1e-6).sqrt()
        return (((predicted - target) ** 2).mean(-1) * mask).sum() / mask.sum()

    # -- saving ------------------------------------------------------------------------------
    def save_pretrained(self, folder: Path) -> Path:
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().contiguous() for k, v in self.state_dict().items()}, str(folder / WEIGHTS_FILE))
        (folder / CONFIG_FILE).write_text(json.dumps({"kind": "social-mae", **asdict(self.config)}, indent=1))
        return folder


class _PatchEmbed(nn.Module):
    def __init__(self, proj: nn.Module):
        super().__init__()
        self.proj = proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


def contrastive_loss(audio: torch.Tensor, video: torch.Tensor, temperature: float = 0.05) -> torch.Tensor:
    """InfoNCE between the clips of a batch: each clip's audio should pick out its own video
    among the batch's (CAV-MAE's single-direction form, softmax over the audio clips)."""
    similarity = F.normalize(audio, dim=-1) @ F.normalize(video, dim=-1).T / temperature
    return -torch.diag(F.log_softmax(similarity, dim=0)).mean()


def config_from_tensors(
    state: dict, source: str, heads: int | None = None, decoder_heads: int | None = None, frames: int | None = None, mel_bins: int = 128
) -> SocialMAEConfig:
    """The architecture of an authors' checkpoint, read off its tensors; what they cannot tell
    (attention heads, frames per clip, filterbank bins: the paper's 8 and 128 by default) comes
    from settings."""
    need = ["patch_embed_a.proj.weight", "patch_embed_v.proj.weight", "pos_embed_a", "pos_embed_v", "blocks_a.0.attn.qkv.weight"]
    absent = [k for k in need if k not in state]
    if absent:
        raise ChallengeError(
            f"{source}: not a Social-MAE / CAV-MAE checkpoint: {', '.join(absent)} missing (it has {', '.join(sorted(state)[:8])}...)."
        )
    depth = lambda prefix: 1 + max((int(m.group(1)) for k in state if (m := re.match(rf"{prefix}\.(\d+)\.", k))), default=-1)  # noqa: E731
    width = int(state["pos_embed_a"].shape[-1])
    video_weight = state["patch_embed_v.proj.weight"]
    patch = int(video_weight.shape[-1])
    tubelet = int(video_weight.shape[2]) if video_weight.dim() == 5 else 1
    frames = frames or (8 if tubelet > 1 else 1)
    per_frame_group = int(state["pos_embed_v"].shape[1]) // (frames // tubelet)
    side = math.isqrt(per_frame_group)
    if side * side * (frames // tubelet) != int(state["pos_embed_v"].shape[1]):
        raise ChallengeError(
            f"{source}: {state['pos_embed_v'].shape[1]} video tokens do not make {frames // tubelet} square grids; "
            "set the number of frames the checkpoint was trained with (--frames)."
        )
    audio_tokens = int(state["pos_embed_a"].shape[1])
    decoder = "decoder_embed.weight" in state
    decoder_width = int(state["decoder_embed.weight"].shape[0]) if decoder else 512
    return SocialMAEConfig(
        image_size=side * patch,
        frames=frames,
        tubelet=tubelet,
        patch_size=patch,
        mel_bins=mel_bins,
        audio_frames=audio_tokens * patch * patch // mel_bins,
        width=width,
        modality_depth=depth("blocks_a"),
        joint_depth=depth("blocks_u"),
        heads=heads or max(1, width // 64),
        decoder_width=decoder_width,
        decoder_depth=max(1, depth("decoder_blocks")),
        decoder_heads=decoder_heads or (16 if decoder_width % 16 == 0 else 1),
        mlp_ratio=int(state["blocks_a.0.mlp.fc1.weight"].shape[0]) / width,
    ).check()


def load_social_mae(
    model: str, heads: int | None = None, decoder_heads: int | None = None, frames: int | None = None, mel_bins: int = 128
) -> tuple[SocialMAE, str]:
    """(SocialMAE, what it was made from) from a folder this project saved or an authors'
    weights file (a DataParallel `module.` state dict, fine-tuned `mlp_head` dropped). Every
    encoder weight must be in the file; a missing decoder is started at random and said.
    `heads`, `decoder_heads`, `frames` and `mel_bins` say what an authors' file's tensors cannot."""
    from challenge.networks.checkpoints import is_weights_file, read_weights
    from challenge.networks.sources import local_path

    path = local_path(model, "--social-mae-model")
    if path.is_dir():
        if not (path / CONFIG_FILE).is_file():
            raise ChallengeError(
                f"{path}: no {CONFIG_FILE} there. Pass a folder `challenge pretrain social-mae` wrote, or the authors' .pth."
            )
        from safetensors.torch import load_file

        network = SocialMAE(SocialMAEConfig.from_dict(json.loads((path / CONFIG_FILE).read_text())))
        network.load_state_dict(load_file(str(path / WEIGHTS_FILE)))
        return network, f"{path} (saved by challenge pretrain social-mae)"
    if not is_weights_file(model):
        raise ChallengeError(f"{model}: neither a Social-MAE folder nor a weights file (.pth, .pt, .bin, .safetensors).")
    state = read_weights(path)
    config = config_from_tensors(state, str(path), heads, decoder_heads, frames, mel_bins)
    network = SocialMAE(config)
    if state["patch_embed_v.proj.weight"].dim() == 4:  # CAV-MAE: a 2-D convolution over one frame
        state = {**state, "patch_embed_v.proj.weight": state["patch_embed_v.proj.weight"].unsqueeze(2)}
    ours = network.state_dict()
    recognised = {k: v for k, v in state.items() if k in ours}
    dropped = sorted(k for k in state if k not in ours)
    missing = sorted(k for k in ours if k not in state)
    encoder_missing = [k for k in missing if not k.startswith(("decoder", "mask_token"))]
    if encoder_missing:
        raise ChallengeError(
            f"{path}: encoder weights missing from the file: {', '.join(encoder_missing[:6])}; they are never "
            "initialised at random. Check the file, or the depth and frames it was saved with."
        )
    wrong = [k for k, v in recognised.items() if tuple(v.shape) != tuple(ours[k].shape)]
    if wrong:
        raise ChallengeError(
            f"{path}: tensors of another shape than the architecture read off the file: "
            + ", ".join(f"{k} {tuple(state[k].shape)} vs {tuple(ours[k].shape)}" for k in wrong[:4])
        )
    network.load_state_dict(recognised, strict=False)
    c = config
    report = (
        f"{path}: recognised {len(recognised)} tensors as Social-MAE: width {c.width}, {c.modality_depth}+{c.joint_depth} blocks, "
        f"{c.heads} heads, audio {c.mel_bins}x{c.audio_frames}, video {c.frames}x{c.image_size}px (tubelet {c.tubelet}, patch {c.patch_size})"
        + (f"; dropped {len(dropped)} ({', '.join(sorted({k.split('.')[0] for k in dropped}))})" if dropped else "")
        + ("; decoder new, at random (the file has none)" if missing else "")
    )
    return network, report
