"""The loop every pretraining runs in (challenge.pretrain.mae, challenge.pretrain.social): a
task supplies the model, its training and held-out items and how a batch becomes a loss; this
module does the rest, the same way for each.

- The one training engine (challenge.training.trainer): AdamW, warm-up then cosine,
  accumulation, bf16/fp16 autocast on CUDA, a checkpoint each epoch that the same command resumes
  from after a SIGKILL, DDP under torchrun (each rank its share of every batch; rank 0 writes).
- An epoch is `epoch_steps` optimiser steps (one pass over the items when 0), so a corpus of any
  size is checkpointed as often as one asks.
- Items are decoded by DataLoader workers. The item order and each item's augmentation are
  functions of the seed and the position in the stream (`stream_order`), and the masks come from
  torch's generator, which the checkpoint holds: a resumed run ends with the weights an
  uninterrupted one ends with.
- MLflow: the training loss every step, the held-out loss each epoch, the task's picture of
  masked inputs and reconstructions each epoch (or every `grid_every` steps). A resumed command
  continues the MLflow run its killed predecessor started.
- The output folder holds the task's saved model; `pretrain.json`, written last and atomically,
  says it is complete. Other settings on the same folder are refused."""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from challenge.errors import ChallengeError
from challenge.pretrain.settings import PretrainSettings
from challenge.progress import say, warn
from challenge.stores.atomic import write_text_atomically


class PretrainTask(Protocol):
    kind: str  # "mae", "social-mae": the MLflow experiment is pretrain-<kind>
    model: torch.nn.Module
    train_set: torch.utils.data.Dataset  # items (position, index) -> a sample, or Unreadable
    valid_set: torch.utils.data.Dataset
    origin: str  # what the model was made from
    skipped_sources: int  # videos left out before training (unreadable, --skip-missing)

    def collate(self, items: list) -> tuple[Any, list[int]]:
        """(the batch, the indices of the unreadable items left out of it)."""

    def loss(self, model: torch.nn.Module, batch: Any, noise: Any = None) -> dict[str, torch.Tensor]:
        """The batch's losses ("loss" is minimised; the others are logged)."""

    def batch_size_of(self, batch: Any) -> int: ...

    def valid_noise(self) -> Any:
        """Fixed masks for the held-out items: every epoch is scored on the same ones."""

    def noise_slice(self, noise: Any, start: int, stop: int) -> Any: ...

    def picture(self, model: torch.nn.Module, noise: Any):
        """A PIL image of held-out inputs, their masked versions and reconstructions, or None."""

    def save(self, folder: Path) -> None: ...


@dataclass
class PretrainResult:
    out: Path
    run_id: str | None
    items: int
    steps: int
    first_loss: float
    last_loss: float
    best_valid_loss: float
    skipped: int


def stream_order(count: int, seed: int, start: int, stop: int) -> np.ndarray:
    """The item indices at positions start..stop of the training stream: pass p over the items is
    the permutation drawn from (seed, p). A function of the position alone, so an epoch of any
    length resumes where it stopped with nothing but the step count."""
    positions = np.arange(start, stop)
    out = np.empty(len(positions), dtype=np.int64)
    for p in np.unique(positions // count):
        where = positions // count == p
        out[where] = np.random.default_rng([seed, int(p), 7]).permutation(count)[positions[where] % count]
    return out


def default_out(kind: str, inputs: dict[str, list[Path]], settings: PretrainSettings) -> Path:
    """pretrained/<kind>-<digest of the inputs and settings>: the same command finds its own folder again."""
    import hashlib

    text = json.dumps(
        {name: [str(Path(p).resolve()) for p in paths] for name, paths in inputs.items()} | {"settings": settings.model_dump()},
        sort_keys=True,
        default=str,
    )
    return Path("pretrained") / f"{kind}-{hashlib.sha1(text.encode()).hexdigest()[:10]}"


def held_out(count: int, wanted: int, seed: int) -> tuple[list[int], list[int]]:
    """(held-out indices, training indices): at most a tenth of the items are held out."""
    held = min(wanted, count // 10)
    order = np.random.default_rng([seed, 99]).permutation(count)
    return sorted(order[:held].tolist()), sorted(order[held:].tolist())


def finished(out: Path) -> PretrainResult | None:
    done = Path(out) / "pretrain.json"
    if not done.is_file():
        return None
    summary = json.loads(done.read_text())
    say(f"{out}: already pretrained ({summary['steps']} steps on {summary['items']} items); delete the folder to train again")
    return PretrainResult(
        Path(out),
        summary.get("run_id"),
        summary["items"],
        summary["steps"],
        summary["first_loss"],
        summary["last_loss"],
        summary["best_valid_loss"],
        summary["skipped"],
    )


def same_settings(out: Path, settings: PretrainSettings) -> None:
    """A folder holds one pretraining: continuing it (or finding it done) with other settings
    would mix two runs, so that is an error; the first run writes its settings there."""
    written = out / "pretrain_settings.json"
    wanted = settings.model_dump(mode="json")
    if written.is_file():
        held = json.loads(written.read_text())
        differ = sorted(k for k in set(held) | set(wanted) if held.get(k) != wanted.get(k))
        if differ:
            raise ChallengeError(
                f"{out} holds a pretraining with other settings ({', '.join(f'{k}: {held.get(k)} there, {wanted.get(k)} now' for k in differ[:4])}). "
                "Pass another --out, the same settings, or delete the folder to start again."
            )
        return
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomically(written, json.dumps(wanted, indent=1), "pretraining settings file")


def run_pretraining(
    task: PretrainTask, out: Path, settings: PretrainSettings, device: str, dist, tracking_uri: str | None
) -> PretrainResult:
    from challenge.training.trainer import Trainer

    s, out = settings, Path(out)
    items = len(task.train_set)
    per_epoch = s.epoch_steps * s.accumulate if s.epoch_steps else math.ceil(items / s.batch_size)  # micro-batches
    params = {
        "learning_rate": s.learning_rate,
        "weight_decay": s.weight_decay,
        "warmup": s.warmup,
        "schedule": "cosine",
        "accumulate": s.accumulate,
        "precision": s.precision,
        "epochs": s.epochs,
        "patience": s.epochs + 1,
    }
    trainer = Trainer(task.model, params, device, steps_per_epoch=per_epoch, checkpoint=out / "checkpoint.pt", keep_checkpoint=True)
    valid_noise = task.valid_noise()
    counters = {"step": 0, "unreadable": set(), "wait": 0.0, "busy": 0.0, "first_loss": math.nan, "last_loss": math.nan}
    logger = _Tracking(task, out, tracking_uri, dist, s, items, len(task.valid_set))

    def run_epoch() -> float:
        counters["step"] = trainer.epoch * per_epoch
        start = trainer.epoch * per_epoch * s.batch_size
        positions = np.arange(start, start + per_epoch * s.batch_size).reshape(per_epoch, s.batch_size)
        stream = stream_order(items, s.seed, start, start + per_epoch * s.batch_size).reshape(per_epoch, s.batch_size)
        batches = [[(int(p), int(i)) for p, i in zip(dist.shard(pos), dist.shard(idx))] for pos, idx in zip(positions, stream)]
        loader = torch.utils.data.DataLoader(
            task.train_set,
            batch_sampler=batches,
            num_workers=s.workers,
            collate_fn=task.collate,
            pin_memory=device.startswith("cuda"),
            prefetch_factor=4 if s.workers else None,
        )
        losses, clock = [], time.perf_counter()
        for batch, bad in loader:
            now = time.perf_counter()
            counters["wait"] += now - clock
            counters["unreadable"].update(bad)
            if task.batch_size_of(batch):
                with trainer.autocast():
                    parts = task.loss(trainer.forward, batch)
                losses.append(trainer.step(parts["loss"]))
                counters["last_loss"] = losses[-1]
                if math.isnan(counters["first_loss"]):
                    counters["first_loss"] = losses[-1]
                logger.step(counters["step"], {k: float(v.detach()) for k, v in parts.items() if k.startswith("loss")})
            counters["step"] += 1
            if s.grid_every and counters["step"] % s.grid_every == 0:
                logger.picture(task, valid_noise, counters["step"])
                task.model.train()
            clock = time.perf_counter()
            counters["busy"] += clock - now
        return float(np.mean(losses)) if losses else math.nan

    @torch.no_grad()
    def evaluate() -> float:
        if not len(task.valid_set):
            return -counters["last_loss"]
        task.model.eval()
        total, count = 0.0, 0
        for start in range(0, len(task.valid_set), s.batch_size):
            stop = min(len(task.valid_set), start + s.batch_size)
            batch, _ = task.collate([task.valid_set[(0, i)] for i in range(start, stop)])
            n = task.batch_size_of(batch)
            if n:
                total += float(task.loss(task.model, batch, task.noise_slice(valid_noise, start, stop))["loss"]) * n
                count += n
        return -total / max(1, count)

    def report(epoch: int, value: float) -> None:
        logger.epoch(-value, counters["step"])
        logger.picture(task, valid_noise, counters["step"])

    with logger:
        best, history = trainer.run(run_epoch, evaluate, report)
        skipped = len(counters["unreadable"]) + task.skipped_sources
        summary = {
            "kind": task.kind,
            "items": items,
            "valid_items": len(task.valid_set),
            "steps": per_epoch * s.epochs // s.accumulate,
            "micro_batches": per_epoch * s.epochs,
            "batch_size": s.batch_size,
            "epochs": s.epochs,
            "first_loss": counters["first_loss"],
            "last_loss": counters["last_loss"],
            "best_valid_loss": -best,
            "skipped": skipped,
            "origin": task.origin,
            "data_wait_share": counters["wait"] / max(1e-9, counters["wait"] + counters["busy"]),
            "train_seconds": counters["wait"] + counters["busy"],  # this command's share (after a resume: the resumed epochs)
            "history": history,
            "run_id": logger.run_id,
            "settings": s.model_dump(),
        }
        if skipped:
            warn(
                f"left out {len(counters['unreadable'])} unreadable item(s)"
                + (f" and {task.skipped_sources} video(s)" if task.skipped_sources else "")
                + " (--skip-missing)"
            )
        if dist.rank == 0:
            task.save(out)  # the weights and configs first; pretrain.json last says the folder is complete
            write_text_atomically(out / "pretrain.json", json.dumps(summary, indent=1, default=float), "pretraining summary")
            logger.finish(summary)
    if dist.rank == 0:
        (out / "checkpoint.pt").unlink(missing_ok=True)
    return PretrainResult(out, logger.run_id, items, summary["steps"], counters["first_loss"], counters["last_loss"], -best, skipped)


class _Tracking:
    """The MLflow run of a pretraining (rank 0 only). A resumed command continues the run its
    killed predecessor started (its id is kept in the output folder)."""

    def __init__(self, task, out: Path, tracking_uri: str | None, dist, settings: PretrainSettings, items: int, held: int):
        self.task, self.out, self.uri, self.active = task, out, tracking_uri, dist.rank == 0
        self.settings, self.items, self.held = settings, items, held
        self.run_id: str | None = None
        self.logged_step = -1

    def __enter__(self):
        if not self.active:
            return self
        import mlflow

        from challenge.stores import tracking

        experiment = tracking.setup(self.uri, f"pretrain-{self.task.kind}")
        marker = self.out / "mlflow_run_id"
        previous = marker.read_text().strip() if marker.is_file() and (self.out / "checkpoint.pt").is_file() else None
        run = (
            mlflow.start_run(run_id=previous)
            if previous
            else mlflow.start_run(experiment_id=experiment, run_name=f"{self.task.kind}-{self.out.name}")
        )
        self.run_id = run.info.run_id
        if not previous:
            marker.write_text(self.run_id)
            mlflow.set_tags(
                {"challenge.kind": "pretrain", "model": self.task.kind, "origin": self.task.origin[:500], **tracking.process_tags()}
            )
            mlflow.log_params(
                {
                    **{k: ("" if v is None else v) for k, v in self.settings.model_dump().items()},
                    "train_items": self.items,
                    "valid_items": self.held,
                    "out": str(self.out),
                }
            )
        else:
            say(f"continuing MLflow run {previous}")
        return self

    def step(self, step: int, losses: dict[str, float]) -> None:
        if self.active and step > self.logged_step:
            import mlflow

            mlflow.log_metrics({("train_loss" if k == "loss" else f"train_{k}"): v for k, v in losses.items()}, step=step)
            self.logged_step = step

    def epoch(self, valid_loss: float, step: int) -> None:
        if self.active:
            import mlflow

            mlflow.log_metric("valid_loss", valid_loss, step=step)

    def picture(self, task, noise, step: int) -> None:
        if not self.active or not len(task.valid_set):
            return
        import mlflow

        image = task.picture(task.model, noise)
        if image is not None:
            folder = self.out / "reconstructions"
            folder.mkdir(exist_ok=True)
            image.save(folder / f"step-{step:07d}.png")
            mlflow.log_image(image, f"reconstructions/step-{step:07d}.png")

    def finish(self, summary: dict) -> None:
        if self.active:
            import mlflow

            mlflow.log_metrics(
                {
                    "first_loss": summary["first_loss"],
                    "last_loss": summary["last_loss"],
                    "best_valid_loss": summary["best_valid_loss"],
                    "skipped_items": summary["skipped"],
                    "data_wait_share": summary["data_wait_share"],
                }
            )
            mlflow.log_dict(summary, "pretrain.json")

    def __exit__(self, *exc):
        if self.active:
            import mlflow

            mlflow.end_run("FAILED" if exc[0] is not None else "FINISHED")
        return False


def rank_zero_first(dist, prepare):
    """`prepare()` on rank 0 first, then on the others (which find its files done): the data a
    pretraining cuts once (faces, clips) is written by one process, not raced for."""
    if dist.world == 1:
        return prepare()
    import torch.distributed

    result = prepare() if dist.rank == 0 else None
    torch.distributed.barrier()
    return result if dist.rank == 0 else prepare()


def start(out: Path, settings: PretrainSettings, device: str):
    """(finished result or None, device, distributed context): the common start of a pretraining."""
    from challenge.features.base import resolve_device
    from challenge.seeding import seed_everything
    from challenge.training.trainer import init_distributed

    out = Path(out)
    same_settings(out, settings)
    done = finished(out)
    if done is not None:
        return done, device, None
    device = resolve_device(device)
    dist = init_distributed(device)
    if dist.world > 1 and device.startswith("cuda"):
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    seed_everything(settings.seed)
    return None, device, dist
