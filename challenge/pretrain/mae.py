"""`challenge pretrain mae`: a masked autoencoder (transformers' ViTMAEForPreTraining) trained
on the team's face images, from random weights or continuing from a published checkpoint, in the
pretraining loop every pretraining shares (challenge.pretrain.loop: resumable, DDP, MLflow).

The output folder is a `save_pretrained` ViTMAEForPreTraining with its preprocessor config:
`--visual-model OUT` reads its encoder, `--init OUT` continues its pretraining."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from challenge.errors import ChallengeError
from challenge.media import IMAGENET_MEAN as MEAN  # as the published MAEs normalise
from challenge.media import IMAGENET_STD as STD
from challenge.pretrain.images import ImageLoading, PretrainImages, collate_images, cut_video_faces, image_files, video_files
from challenge.pretrain.settings import MAEPretrainSettings
from challenge.progress import say

GRID_IMAGES = 6


def build_mae(settings: MAEPretrainSettings) -> tuple[torch.nn.Module, dict, str]:
    """(ViTMAEForPreTraining, its preprocessor config, what the model was made from)."""
    from transformers import ViTMAEConfig, ViTMAEForPreTraining

    from challenge.networks.checkpoints import is_weights_file, load_vit_mae, mae_decoder_from_timm, read_weights
    from challenge.networks.sources import load_pretrained, preprocessor_config, quiet_transformers

    quiet_transformers()
    s = settings
    masking = {"mask_ratio": s.mask_ratio, "norm_pix_loss": s.norm_pix_loss}
    decoder = {
        "decoder_hidden_size": s.decoder_hidden_size,
        "decoder_num_hidden_layers": s.decoder_layers,
        "decoder_num_attention_heads": s.decoder_heads,
        "decoder_intermediate_size": 4 * s.decoder_hidden_size,
    }
    if s.init is None:
        config = ViTMAEConfig(
            image_size=s.image_size,
            patch_size=s.patch_size,
            hidden_size=s.hidden_size,
            num_hidden_layers=s.layers,
            num_attention_heads=s.heads,
            intermediate_size=4 * s.hidden_size,
            **decoder,
            **masking,
        )
        return ViTMAEForPreTraining(config), {"image_mean": MEAN, "image_std": STD}, "random weights"
    if is_weights_file(s.init):  # facebookresearch/mae and team .pth files: encoder (and decoder when saved)
        encoder, conversion = load_vit_mae(
            s.init, s.heads if "heads" in s.model_fields_set else None, s.image_size if "image_size" in s.model_fields_set else None
        )
        found = mae_decoder_from_timm(read_weights(Path(s.init)), s.init, s.decoder_heads)
        config = ViTMAEConfig(**{**conversion.config, **decoder, **(found[1] if found else {}), **masking})
        model = ViTMAEForPreTraining(config)
        encoder_state = encoder.state_dict()
        if "fc_norm.weight" in encoder_state:  # a fine-tuned file's norm after pooling: the pretraining encoder normalises every token
            encoder_state = {k: v for k, v in encoder_state.items() if not k.startswith("fc_norm")}
            encoder_state |= {"layernorm.weight": encoder.fc_norm.weight, "layernorm.bias": encoder.fc_norm.bias}
        model.vit.load_state_dict(encoder_state)
        if found:
            model.load_state_dict(found[0], strict=False)
        origin = f"{s.init}: {conversion.describe()}; decoder " + ("from the file" if found else "new, at random (the file has none)")
        return model, {"image_mean": MEAN, "image_std": STD}, origin
    model = load_pretrained(ViTMAEForPreTraining, s.init, "--init", **masking)
    processor = {"image_mean": MEAN, "image_std": STD, **preprocessor_config(s.init)}
    return model, processor, f"{s.init} (save_pretrained/hub)"


def pretrain_mae(
    images: list[Path],
    videos: list[Path],
    out: Path,
    settings: MAEPretrainSettings,
    device: str = "auto",
    tracking_uri: str | None = None,
    skip_missing: bool = False,
):
    from challenge.pretrain.loop import held_out, rank_zero_first, run_pretraining, start

    s, out = settings, Path(out)
    done, device, dist = start(out, s, device)
    if done is not None:
        return done
    if not images and not videos:
        raise ChallengeError("nothing to pretrain on: pass --images DIR (folders of face images) or --videos DIR.")
    paths = image_files(images) if images else []
    skipped_videos = 0
    if videos:
        cut = lambda: cut_video_faces(video_files(videos), out / "face-crops", s.image_size, s.frame_step, s.crop_margin, skip_missing)  # noqa: E731
        folders, skipped_videos = rank_zero_first(dist, cut)
        paths += image_files(folders)
    valid, train = held_out(len(paths), s.valid_items, s.seed)
    task = MAETask(s, [paths[i] for i in train], [paths[i] for i in valid], device, skip_missing, skipped_videos)
    c = task.model.config
    say(
        f"pretraining an MAE (width {c.hidden_size}, depth {c.num_hidden_layers}, patch {c.patch_size}, image {c.image_size}, "
        f"mask {c.mask_ratio:.0%}) from {task.origin} on {len(train)} images ({len(valid)} held out)"
    )
    result = run_pretraining(task, out, s, device, dist, tracking_uri)
    say(f"pretrained MAE: {out.resolve()} (pass it as --visual-model, or as --init to continue)")
    return result


class MAETask:
    """The MAE as a pretraining task (challenge.pretrain.loop.PretrainTask)."""

    kind = "mae"

    def __init__(
        self, settings: MAEPretrainSettings, train: list[Path], valid: list[Path], device: str, skip_missing: bool, skipped_videos: int
    ):
        self.model, processor, self.origin = build_mae(settings)
        config = self.model.config
        self.processor = processor | {"size": {"height": config.image_size, "width": config.image_size}}
        self.device, self.seed, self.skipped_sources = device, settings.seed, skipped_videos
        self.train_set = PretrainImages(
            train, ImageLoading(config.image_size, settings.flip, settings.crop_scale, settings.seed), True, skip_missing
        )
        self.valid_set = PretrainImages(valid, ImageLoading(config.image_size), False, skip_missing)
        self.mean = torch.tensor(self.processor["image_mean"], device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(self.processor["image_std"], device=device).view(1, 3, 1, 1)
        self.patches = (config.image_size // config.patch_size) ** 2

    collate = staticmethod(collate_images)

    def scale(self, batch: torch.Tensor) -> torch.Tensor:
        return (batch.to(self.device, non_blocking=True).float() / 255 - self.mean) / self.std

    def batch_size_of(self, batch: torch.Tensor) -> int:
        return len(batch)

    def loss(self, model, batch: torch.Tensor, noise: torch.Tensor | None = None) -> dict:
        x = self.scale(batch)
        return {"loss": model(pixel_values=x, noise=None if noise is None or len(noise) != len(x) else noise.to(x.device)).loss}

    def valid_noise(self) -> torch.Tensor:
        return torch.rand(len(self.valid_set), self.patches, generator=torch.Generator().manual_seed(self.seed))

    def noise_slice(self, noise: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        return noise[start:stop]

    def picture(self, model, noise: torch.Tensor):
        return reconstruction_grid(model, self.valid_set, noise, self.scale)

    def save(self, folder: Path) -> None:
        self.model.save_pretrained(folder)
        (Path(folder) / "preprocessor_config.json").write_text(json.dumps(self.processor, indent=1))


def reconstruction_grid(model, dataset, noise: torch.Tensor, scale, count: int = GRID_IMAGES):
    """A PIL image, one row per held-out image: the image, what the encoder saw (masked patches
    grey), the decoder's reconstruction, and the reconstruction with the visible patches pasted
    back. With norm_pix_loss the decoder predicts each patch standardised: it is shown at the
    true patch's mean and spread, as the MAE paper's figures show it."""
    from PIL import Image

    items = [dataset[(0, i)] for i in range(min(count, len(dataset)))]
    pixels, _ = collate_images(items)
    if not len(pixels):
        return None
    model.eval()
    with torch.no_grad():
        x = scale(pixels)
        output = model(pixel_values=x, noise=noise[: len(pixels)].to(x.device))
        target = model.patchify(x)
        predicted = output.logits.float()
        if model.config.norm_pix_loss:
            mu, var = target.mean(-1, keepdim=True), target.var(-1, keepdim=True)
            predicted = predicted * (var + 1e-6).sqrt() + mu
        mask = output.mask.unsqueeze(-1)  # 1 = hidden from the encoder
        rows = [
            x,
            model.unpatchify(target * (1 - mask)),
            model.unpatchify(predicted),
            model.unpatchify(target * (1 - mask) + predicted * mask),
        ]
    mean, std = (torch.tensor(v, device=x.device).view(1, 3, 1, 1) for v in (MEAN, STD))
    tiles = [((r * std + mean).clamp(0, 1) * 255).byte().permute(0, 2, 3, 1).cpu().numpy() for r in rows]
    masked = tiles[1].copy()
    hidden = model.unpatchify(mask.expand_as(target).float()).permute(0, 2, 3, 1).cpu().numpy() > 0.5
    masked[hidden] = 127
    tiles[1] = masked
    grid = np.concatenate([np.concatenate([t[i] for t in tiles], axis=1) for i in range(len(pixels))], axis=0)
    return Image.fromarray(grid)
