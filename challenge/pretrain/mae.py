"""`challenge pretrain mae`: a masked autoencoder (transformers' ViTMAEForPreTraining) trained
on the team's face images, from random weights or continuing from a published checkpoint.

The run goes through the one training engine (challenge.training.trainer): AdamW, warm-up then
cosine, accumulation, bf16/fp16 autocast on CUDA, a checkpoint each epoch that the same command
resumes from after a SIGKILL, DDP under torchrun. An epoch is `epoch_steps` optimiser steps (one
pass over the images when 0), so a corpus of any size is checkpointed as often as one asks.
Images are decoded by DataLoader workers; the image order and each image's augmentation are
functions of the seed and the position in the stream (challenge.pretrain.images), and the masks
come from torch's generator, which the checkpoint holds, so a resumed run ends with the weights
an uninterrupted one ends with.

MLflow (experiment "pretrain-mae"): the training loss every step, the held-out reconstruction
loss each epoch, and a grid of held-out images, their masked inputs and their reconstructions.
The output folder is a `save_pretrained` ViTMAEForPreTraining with its preprocessor config:
`--visual-model OUT` reads its encoder, `--init OUT` continues its pretraining."""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from challenge.errors import ChallengeError
from challenge.pretrain.images import (ImageLoading, PretrainImages, collate_images, cut_video_faces, image_files, image_order,
                                       video_files)
from challenge.pretrain.settings import MAEPretrainSettings
from challenge.progress import say, warn

EXPERIMENT = "pretrain-mae"
MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]  # ImageNet's, as the published MAEs normalise
GRID_IMAGES = 6


@dataclass
class PretrainResult:
    out: Path
    run_id: str | None
    images: int
    steps: int
    first_loss: float
    last_loss: float
    best_valid_loss: float
    skipped: int


def build_mae(settings: MAEPretrainSettings) -> tuple[torch.nn.Module, dict, str]:
    """(ViTMAEForPreTraining, its preprocessor config, what the model was made from)."""
    from transformers import ViTMAEConfig, ViTMAEForPreTraining

    from challenge.features.checkpoints import is_weights_file, load_vit_mae, mae_decoder_from_timm, read_weights
    from challenge.features.models import load_pretrained, preprocessor_config, quiet_transformers

    quiet_transformers()
    s = settings
    masking = {"mask_ratio": s.mask_ratio, "norm_pix_loss": s.norm_pix_loss}
    decoder = {"decoder_hidden_size": s.decoder_hidden_size, "decoder_num_hidden_layers": s.decoder_layers,
               "decoder_num_attention_heads": s.decoder_heads, "decoder_intermediate_size": 4 * s.decoder_hidden_size}
    if s.init is None:
        config = ViTMAEConfig(image_size=s.image_size, patch_size=s.patch_size, hidden_size=s.hidden_size, num_hidden_layers=s.layers,
                              num_attention_heads=s.heads, intermediate_size=4 * s.hidden_size, **decoder, **masking)
        return ViTMAEForPreTraining(config), {"image_mean": MEAN, "image_std": STD}, "random weights"
    if is_weights_file(s.init):  # facebookresearch/mae and team .pth files: encoder (and decoder when saved)
        encoder, conversion = load_vit_mae(s.init, s.heads if "heads" in s.model_fields_set else None,
                                           s.image_size if "image_size" in s.model_fields_set else None)
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


def default_out(images: list[Path], videos: list[Path], settings: MAEPretrainSettings) -> Path:
    """pretrained/mae-<digest of the inputs and settings>: the same command finds its own folder again."""
    text = json.dumps({"images": [str(Path(p).resolve()) for p in images], "videos": [str(Path(p).resolve()) for p in videos],
                       "settings": settings.model_dump()}, sort_keys=True)
    return Path("pretrained") / f"mae-{hashlib.sha1(text.encode()).hexdigest()[:10]}"


def pretrain_mae(images: list[Path], videos: list[Path], out: Path, settings: MAEPretrainSettings, device: str = "auto",
                 tracking_uri: str | None = None, skip_missing: bool = False) -> PretrainResult:
    from challenge.features.base import resolve_device
    from challenge.seeding import seed_everything
    from challenge.training.trainer import Distributed, Trainer, init_distributed

    s, out = settings, Path(out)
    _same_settings(out, s)
    done = out / "pretrain.json"
    if done.is_file():
        summary = json.loads(done.read_text())
        say(f"{out}: already pretrained ({summary['steps']} steps on {summary['images']} images); delete the folder to train again")
        return PretrainResult(out, summary.get("run_id"), summary["images"], summary["steps"], summary["first_loss"], summary["last_loss"],
                              summary["best_valid_loss"], summary["skipped"])
    if not images and not videos:
        raise ChallengeError("nothing to pretrain on: pass --images DIR (folders of face images) or --videos DIR.")
    device = resolve_device(device)
    dist = init_distributed(device)
    if dist.world > 1 and device.startswith("cuda"):
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    seed_everything(s.seed)
    out.mkdir(parents=True, exist_ok=True)
    paths = image_files(images) if images else []
    skipped_videos = 0
    if videos:
        folders, skipped_videos = cut_video_faces(video_files(videos), out / "face-crops", s.image_size, s.frame_step, s.crop_margin, skip_missing)
        paths += image_files(folders)
    held = min(s.valid_images, len(paths) // 10)
    order = np.random.default_rng([s.seed, 99]).permutation(len(paths))
    valid_paths, train_paths = [paths[i] for i in sorted(order[:held])], [paths[i] for i in sorted(order[held:])]
    model, processor, origin = build_mae(s)
    config = model.config
    processor |= {"size": {"height": config.image_size, "width": config.image_size}}
    say(f"pretraining an MAE (width {config.hidden_size}, depth {config.num_hidden_layers}, patch {config.patch_size}, image "
        f"{config.image_size}, mask {config.mask_ratio:.0%}) from {origin} on {len(train_paths)} images ({held} held out)")
    per_epoch = s.epoch_steps * s.accumulate if s.epoch_steps else math.ceil(len(train_paths) / s.batch_size)  # micro-batches
    params = {"learning_rate": s.learning_rate, "weight_decay": s.weight_decay, "warmup": s.warmup, "schedule": "cosine",
              "accumulate": s.accumulate, "precision": s.precision, "epochs": s.epochs, "patience": s.epochs + 1}
    trainer = Trainer(model, params, device, steps_per_epoch=per_epoch, checkpoint=out / "checkpoint.pt", keep_checkpoint=True)
    mean = torch.tensor(processor["image_mean"], device=device).view(1, 3, 1, 1)
    std = torch.tensor(processor["image_std"], device=device).view(1, 3, 1, 1)
    scale = lambda batch: (batch.to(device, non_blocking=True).float() / 255 - mean) / std  # noqa: E731
    train_set = PretrainImages(train_paths, ImageLoading(config.image_size, s.flip, s.crop_scale, s.seed), True, skip_missing)
    valid_set = PretrainImages(valid_paths, ImageLoading(config.image_size), False, skip_missing)
    patches = (config.image_size // config.patch_size) ** 2
    valid_noise = torch.rand(len(valid_paths), patches, generator=torch.Generator().manual_seed(s.seed))  # the same masks every epoch
    counters = {"step": 0, "unreadable": set(), "wait": 0.0, "busy": 0.0, "first_loss": math.nan, "last_loss": math.nan}
    logger = _Tracking(out, tracking_uri, dist, s, len(train_paths), held, origin)

    def run_epoch() -> float:
        epoch = trainer.epoch
        counters["step"] = epoch * per_epoch
        start = epoch * per_epoch * s.batch_size
        stream = image_order(len(train_paths), s.seed, start, start + per_epoch * s.batch_size).reshape(per_epoch, s.batch_size)
        positions = np.arange(start, start + per_epoch * s.batch_size).reshape(per_epoch, s.batch_size)
        batches = [[(int(p), int(i)) for p, i in zip(dist.shard(pos), dist.shard(idx))] for pos, idx in zip(positions, stream)]
        loader = _loader(train_set, batches, s.workers, device)
        losses, clock = [], time.perf_counter()
        for pixels, bad in loader:
            now = time.perf_counter()
            counters["wait"] += now - clock
            counters["unreadable"].update(bad)
            if len(pixels):
                with trainer.autocast():
                    loss = trainer.forward(pixel_values=scale(pixels)).loss
                losses.append(trainer.step(loss))
                counters["last_loss"] = losses[-1]
                if math.isnan(counters["first_loss"]):
                    counters["first_loss"] = losses[-1]
                logger.step(counters["step"], losses[-1])
            counters["step"] += 1
            if s.grid_every and counters["step"] % s.grid_every == 0:
                logger.grid(model, valid_set, valid_noise, scale, counters["step"])
                model.train()
            clock = time.perf_counter()
            counters["busy"] += clock - now
        return float(np.mean(losses)) if losses else math.nan

    def evaluate() -> float:
        return -_valid_loss(model, valid_set, valid_noise, scale, s.batch_size) if held else -counters["last_loss"]

    def report(epoch: int, value: float) -> None:
        logger.epoch(epoch, -value, counters["step"])
        logger.grid(model, valid_set, valid_noise, scale, counters["step"])

    with logger:
        best, history = trainer.run(run_epoch, evaluate, report)
        first = history[0]["train_loss"] if history else counters["first_loss"]
        summary = {"images": len(train_paths), "valid_images": held, "steps": per_epoch * s.epochs // s.accumulate,
                   "micro_batches": per_epoch * s.epochs, "batch_size": s.batch_size, "epochs": s.epochs,
                   "first_loss": counters["first_loss"], "first_epoch_loss": first, "last_loss": counters["last_loss"],
                   "best_valid_loss": -best, "skipped": len(counters["unreadable"]) + skipped_videos, "origin": origin,
                   "data_wait_share": counters["wait"] / max(1e-9, counters["wait"] + counters["busy"]),
                   "train_seconds": counters["wait"] + counters["busy"],  # this command's share (after a resume: the resumed epochs)
                   "history": history, "run_id": logger.run_id, "settings": s.model_dump()}
        if summary["skipped"]:
            warn(f"left out {len(counters['unreadable'])} unreadable image(s) (--skip-missing)"
                 + (f" and {skipped_videos} video(s)" if skipped_videos else ""))
        if dist.rank == 0:
            _save(model, processor, out, summary)
            logger.finish(out, summary)
    if dist.rank == 0:
        (out / "checkpoint.pt").unlink(missing_ok=True)
    say(f"pretrained MAE: {out.resolve()} (pass it as --visual-model, or as --init to continue)")
    return PretrainResult(out, logger.run_id, len(train_paths), summary["steps"], counters["first_loss"], counters["last_loss"], -best,
                          summary["skipped"])


def _same_settings(out: Path, settings: MAEPretrainSettings) -> None:
    """A folder holds one pretraining: continuing it (or finding it done) with other settings
    would mix two runs, so that is an error; the first run writes its settings there."""
    written = out / "pretrain_settings.json"
    wanted = settings.model_dump(mode="json")
    if written.is_file():
        held = json.loads(written.read_text())
        differ = sorted(k for k in set(held) | set(wanted) if held.get(k) != wanted.get(k))
        if differ:
            raise ChallengeError(f"{out} holds a pretraining with other settings ({', '.join(f'{k}: {held.get(k)} there, {wanted.get(k)} now' for k in differ[:4])}). "
                                 "Pass another --out, the same settings, or delete the folder to start again.")
        return
    out.mkdir(parents=True, exist_ok=True)
    partial = out / f".pretrain_settings.json.partial-{os.getpid()}"
    partial.write_text(json.dumps(wanted, indent=1))
    os.replace(partial, written)


def _loader(dataset, batches: list[list], workers: int, device: str):
    return torch.utils.data.DataLoader(dataset, batch_sampler=batches, num_workers=workers, collate_fn=collate_images,
                                       pin_memory=device.startswith("cuda"), prefetch_factor=4 if workers else None)


@torch.no_grad()
def _valid_loss(model, dataset, noise: torch.Tensor, scale, batch_size: int) -> float:
    model.eval()
    total, count = 0.0, 0
    for start in range(0, len(dataset), batch_size):
        items = [dataset[(0, i)] for i in range(start, min(len(dataset), start + batch_size))]
        pixels, _ = collate_images(items)
        if not len(pixels):
            continue
        x = scale(pixels)
        loss = model(pixel_values=x, noise=noise[start : start + len(pixels)].to(x.device)).loss
        total, count = total + float(loss) * len(pixels), count + len(pixels)
    return total / max(1, count)


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
        rows = [x, model.unpatchify(target * (1 - mask)), model.unpatchify(predicted), model.unpatchify(target * (1 - mask) + predicted * mask)]
    mean, std = (torch.tensor(v, device=x.device).view(1, 3, 1, 1) for v in (MEAN, STD))
    tiles = [((r * std + mean).clamp(0, 1) * 255).byte().permute(0, 2, 3, 1).cpu().numpy() for r in rows]
    masked = tiles[1].copy()
    hidden = model.unpatchify(mask.expand_as(target).float()).permute(0, 2, 3, 1).cpu().numpy() > 0.5
    masked[hidden] = 127
    tiles[1] = masked
    grid = np.concatenate([np.concatenate([t[i] for t in tiles], axis=1) for i in range(len(pixels))], axis=0)
    return Image.fromarray(grid)


def _save(model, processor: dict, out: Path, summary: dict) -> None:
    """The weights and configs first, then pretrain.json (written last, atomically): its
    presence says the folder is complete."""
    model.save_pretrained(out)
    (out / "preprocessor_config.json").write_text(json.dumps(processor, indent=1))
    partial = out / f".pretrain.json.partial-{os.getpid()}"
    partial.write_text(json.dumps(summary, indent=1, default=float))
    os.replace(partial, out / "pretrain.json")


class _Tracking:
    """The MLflow run of a pretraining (rank 0 only). A resumed command continues the run its
    killed predecessor started (its id is kept in the output folder)."""

    def __init__(self, out: Path, tracking_uri: str | None, dist, settings: MAEPretrainSettings, images: int, held: int, origin: str):
        self.out, self.uri, self.active = out, tracking_uri, dist.rank == 0
        self.settings, self.images, self.held, self.origin = settings, images, held, origin
        self.run_id: str | None = None
        self.logged_step = -1

    def __enter__(self):
        if not self.active:
            return self
        import mlflow

        from challenge import tracking

        experiment = tracking.setup(self.uri, EXPERIMENT)
        marker = self.out / "mlflow_run_id"
        previous = marker.read_text().strip() if marker.is_file() and (self.out / "checkpoint.pt").is_file() else None
        run = mlflow.start_run(run_id=previous) if previous else mlflow.start_run(experiment_id=experiment, run_name=f"mae-{self.out.name}")
        self.run_id = run.info.run_id
        if not previous:
            marker.write_text(self.run_id)
            mlflow.set_tags({"challenge.kind": "pretrain", "model": "mae", "origin": self.origin[:500], **tracking.process_tags()})
            mlflow.log_params({**{k: ("" if v is None else v) for k, v in self.settings.model_dump().items()},
                               "train_images": self.images, "valid_images": self.held, "out": str(self.out)})
        else:
            say(f"continuing MLflow run {previous}")
        return self

    def step(self, step: int, loss: float) -> None:
        if self.active and step > self.logged_step:
            import mlflow

            mlflow.log_metric("train_loss", loss, step=step)
            self.logged_step = step

    def epoch(self, epoch: int, valid_loss: float, step: int) -> None:
        if self.active:
            import mlflow

            mlflow.log_metrics({"valid_loss": valid_loss, "epoch": epoch}, step=step)

    def grid(self, model, dataset, noise, scale, step: int) -> None:
        if not self.active or not len(dataset):
            return
        import mlflow

        image = reconstruction_grid(model, dataset, noise, scale)
        if image is not None:
            folder = self.out / "reconstructions"
            folder.mkdir(exist_ok=True)
            image.save(folder / f"step-{step:07d}.png")
            mlflow.log_image(image, f"reconstructions/step-{step:07d}.png")

    def finish(self, out: Path, summary: dict) -> None:
        if self.active:
            import mlflow

            mlflow.log_metrics({"first_loss": summary["first_loss"], "last_loss": summary["last_loss"],
                                "best_valid_loss": summary["best_valid_loss"], "skipped_images": summary["skipped"],
                                "data_wait_share": summary["data_wait_share"]})
            mlflow.log_dict(summary, "pretrain.json")

    def __exit__(self, *exc):
        if self.active:
            import mlflow

            mlflow.end_run("FAILED" if exc[0] is not None else "FINISHED")
        return False
