"""Training and prediction loops of the end-to-end models, on the shared engine
(challenge.training.trainer: layer-wise learning rates, warm-up then cosine, accumulation,
mixed precision on CUDA, resumable checkpoints, DDP shards)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch.nn.utils.rnn import pad_sequence

from challenge.finetune.loaders import FaceFrames, WaveformClips
from challenge.training.trainer import Trainer, class_weights


def parameter_groups(model, params: dict) -> list[dict]:
    """The backbone's layers at decaying rates below backbone_lr; the head at head_lr."""
    groups = model.backbone.parameter_groups(params["backbone_lr"], params["layer_decay"])
    head = [p for name, p in model.named_parameters() if not name.startswith("backbone.") and p.requires_grad]
    return groups + [{"params": head, "lr": params["head_lr"], "layer": "head"}]


def prepare_backbone(model, params: dict) -> None:
    model.backbone.freeze(params["trainable_blocks"], params.get("freeze_feature_encoder", False))
    model.backbone.checkpointing(params["checkpointing"])


def _waveform_batch(windows: list[np.ndarray], device: str):
    samples = torch.tensor([max(len(w), 400) for w in windows])  # 400: one receptive field of the CNN encoder
    padded = pad_sequence([torch.from_numpy(np.pad(w, (0, max(0, 400 - len(w))))) for w in windows], batch_first=True)
    return padded.to(device), samples


def fit_clips(
    model,
    train: WaveformClips,
    valid: WaveformClips,
    params: dict,
    score,
    report,
    seed: int,
    device: str,
    checkpoint: Path | None = None,
    keep_start: bool = False,
    classes: int | None = None,
):
    """Random windows of each clip (random gain), the clip's targets; selection on the validation
    score. `keep_start`: the model's starting point (a head initialised from a fitted linear
    model) competes with the epochs. `classes`: the targets are class indices (cross-entropy,
    classes weighted by inverse frequency; scored on probabilities), else values (MSE or CCC)."""
    draw = lambda i, rng: train.train_window(i, params["window_seconds"], rng, params["augment_gain_db"])  # noqa: E731
    return _fit_clip_model(
        model,
        train,
        valid,
        params,
        score,
        report,
        seed,
        device,
        checkpoint,
        keep_start,
        draw,
        lambda windows: _waveform_batch(windows, device),
        lambda: predict_clips(model, valid, params, device),
        classes,
    )


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(1, keepdims=True))
    return shifted / shifted.sum(1, keepdims=True)


def _fit_clip_model(
    model,
    train,
    valid,
    params: dict,
    score,
    report,
    seed: int,
    device: str,
    checkpoint,
    keep_start: bool,
    draw,
    inputs,
    predict,
    classes: int | None = None,
):
    """What the clip models' training shares: `draw(i, rng)` one training item of clip i,
    `inputs(items)` the model's arguments, `predict()` the validation outputs (logits when
    `classes`, scored as probabilities)."""
    from challenge.training.losses import clip_loss

    prepare_backbone(model, params)
    rng = np.random.default_rng(seed)
    trainer = Trainer(
        model,
        params,
        device,
        steps_per_epoch=math.ceil(len(train) / params["batch_size"]),
        groups=parameter_groups(model, params),
        rngs=[rng],
        checkpoint=checkpoint,
    )
    targets = torch.from_numpy(np.asarray(train.targets, np.int64 if classes else np.float32))
    loss_of = clip_loss(params, train.targets, classes, device)

    def run_epoch() -> float:
        order, losses = rng.permutation(len(train)), []
        for start in range(0, len(order), params["batch_size"]):
            batch = order[start : start + params["batch_size"]]
            # the whole global batch's items are drawn on every rank, then each takes its share:
            # the data order and the augmentation are those of a single process, whatever the world size
            items = [draw(int(i), rng) for i in batch]
            mine = trainer.dist.shard(np.arange(len(batch)))
            if not len(mine):
                continue
            with trainer.autocast():
                prediction = trainer.forward(*inputs([items[k] for k in mine])).float()
            losses.append(trainer.step(loss_of(prediction, targets[batch[mine]].to(device))))
        return float(np.mean(losses))

    evaluate = lambda: score(valid.targets, softmax(predict()) if classes else predict())  # noqa: E731
    return trainer.run(run_epoch, evaluate, report, keep_start=keep_start)


@torch.inference_mode()
def predict_clips(model, data: WaveformClips, params: dict, device: str) -> np.ndarray:
    """Mean of the model's outputs over half-overlapping windows of each clip."""
    return _per_clip(lambda x, samples: model(x, samples), model, data, params, device)


@torch.inference_mode()
def clip_contexts(model, data: WaveformClips, params: dict, device: str) -> np.ndarray:
    """[clips, 2H]: each clip's global context (mean and std of the backbone's steps), averaged
    over its evaluation windows: what the linear path reads, so its prediction is linear in it."""
    return _per_clip(lambda x, samples: model.encode(x, samples)[2], model, data, params, device)


def _per_clip(compute, model, data: WaveformClips, params: dict, device: str, batch: int = 16) -> np.ndarray:
    model.eval()
    windows, owners = [], []
    for i in range(len(data)):
        pieces = data.eval_windows(i, params["window_seconds"])
        windows += pieces
        owners += [i] * len(pieces)
    outputs = []
    for start in range(0, len(windows), batch):
        x, samples = _waveform_batch(windows[start : start + batch], device)
        outputs.append(compute(x, samples).float().cpu().numpy())
    per_window, owners = np.concatenate(outputs), np.array(owners)
    summed = np.zeros((len(data), per_window.shape[1]), np.float32)
    np.add.at(summed, owners, per_window)
    return summed / np.bincount(owners, minlength=len(data))[:, None]


def _valid_rows(problem, labels: np.ndarray) -> np.ndarray:
    from challenge.track import Problem

    if problem == Problem.FRAME_CLASSIFICATION:
        return np.flatnonzero(labels[:, 0] >= 0)
    if problem == Problem.FRAME_MULTILABEL:
        return np.flatnonzero(~(labels == -1).any(1))
    return np.flatnonzero(~(labels == -5).any(1))


def _flip(pixels: np.ndarray, flipped: np.ndarray) -> np.ndarray:
    """Horizontal flips, the augmentation (faces are near symmetric; expressions read on both sides)."""
    if flipped.any():
        pixels = pixels.copy()
        pixels[flipped] = pixels[flipped, :, ::-1]
    return pixels


def fit_frames(
    model,
    problem,
    train: FaceFrames,
    valid: FaceFrames,
    params: dict,
    score,
    report,
    seed: int,
    device: str,
    n_outputs: int,
    checkpoint: Path | None = None,
):
    """Each epoch `frames_per_video` labelled frames of every video at random, in mixed batches."""
    from challenge.track import Problem
    from challenge.training.frame_loop import masked_loss

    prepare_backbone(model, params)
    rng = np.random.default_rng(seed)
    rows = [_valid_rows(problem, labels) for labels in train.labels]
    per_epoch = sum(min(len(r), params["frames_per_video"]) for r in rows)
    trainer = Trainer(
        model,
        params,
        device,
        steps_per_epoch=math.ceil(per_epoch / params["batch_size"]),
        groups=parameter_groups(model, params),
        rngs=[rng],
        checkpoint=checkpoint,
    )
    weights = None
    if problem == Problem.FRAME_CLASSIFICATION and params.get("class_weighted"):
        weights = class_weights(train.targets()[:, 0].astype(int), n_outputs).to(device)

    def run_epoch() -> float:
        picks = [(v, int(f)) for v, r in enumerate(rows) for f in rng.permutation(r)[: params["frames_per_video"]]]
        picks = [picks[k] for k in rng.permutation(len(picks))]
        losses = []
        for start in range(0, len(picks), params["batch_size"]):
            batch = picks[start : start + params["batch_size"]]
            flips = rng.uniform(size=len(batch)) < params["augment_flip"]  # drawn for the global batch, as one process would
            mine = trainer.dist.shard(np.arange(len(batch)))
            if not len(mine):
                continue
            batch, flips = [batch[k] for k in mine], flips[mine]
            pixels = _flip(np.stack([train.video(v)[f] for v, f in batch]), flips)
            labels = torch.from_numpy(np.stack([train.labels[v][f] for v, f in batch]).astype(np.float32)).to(device)
            with trainer.autocast():
                logits = trainer.forward(torch.from_numpy(np.ascontiguousarray(pixels)).to(device)).float()
            present = torch.ones(len(batch), 1, dtype=torch.bool, device=device)
            loss = masked_loss(
                problem, logits[:, None], labels[:, None], present, weights, params.get("loss"), params.get("focal_gamma", 2.0)
            )
            losses.append(trainer.step(loss))
        return float(np.mean(losses))

    truth = valid.targets()
    evaluate = lambda: score(truth, np.concatenate(predict_frames(model, problem, valid, device)))  # noqa: E731
    return trainer.run(run_epoch, evaluate, report)


@torch.inference_mode()
def predict_frames(model, problem, data: FaceFrames, device: str, batch: int = 64) -> list[np.ndarray]:
    from challenge.training.frame_loop import activation

    model.eval()
    outputs = []
    for i in range(len(data)):
        pixels = data.video(i)
        logits = [
            model(torch.from_numpy(np.ascontiguousarray(pixels[s : s + batch])).to(device)).float() for s in range(0, len(pixels), batch)
        ]
        outputs.append(activation(problem, torch.cat(logits)).cpu().numpy())
    return outputs


def _av_batch(clips: list, device: str):
    from challenge.features.audio_visual import scale_faces

    fbank = torch.from_numpy(np.stack([c[0] for c in clips])).to(device)
    return fbank, scale_faces(torch.from_numpy(np.stack([np.asarray(c[1]) for c in clips])), device)


def fit_av_clips(
    model,
    train,
    valid,
    params: dict,
    score,
    report,
    seed: int,
    device: str,
    checkpoint: Path | None = None,
    keep_start: bool = False,
    classes: int | None = None,
):
    """Audio-visual clips (challenge.finetune.loaders.AudioVisualClips): a random window of each
    clip with random faces from its parts, the clip's targets; selection on the validation score."""
    return _fit_clip_model(
        model,
        train,
        valid,
        params,
        score,
        report,
        seed,
        device,
        checkpoint,
        keep_start,
        train.train_clip,
        lambda clips: _av_batch(clips, device),
        lambda: predict_av_clips(model, valid, device),
        classes,
    )


@torch.inference_mode()
def predict_av_clips(model, data, device: str) -> np.ndarray:
    """Mean of the model's outputs over half-overlapping windows of each clip."""
    return _per_av_clip(model, model, data, device)


@torch.inference_mode()
def av_embeddings(model, data, device: str) -> np.ndarray:
    """[clips, 3W]: each clip's backbone embedding averaged over its evaluation windows (what the linear layer reads)."""
    return _per_av_clip(model.backbone, model, data, device)


def _per_av_clip(compute, model, data, device: str, batch: int = 8) -> np.ndarray:
    model.eval()
    rows = []
    for i in range(len(data)):
        clips = data.eval_clips(i)
        outputs = [compute(*_av_batch(clips[s : s + batch], device)).float() for s in range(0, len(clips), batch)]
        rows.append(torch.cat(outputs).mean(0).cpu().numpy())
    return np.stack(rows)
