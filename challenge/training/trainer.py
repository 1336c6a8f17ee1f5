"""The one training engine of every torch model, frozen-feature heads and fine-tuned backbones
alike: AdamW over parameter groups (layer-wise learning rates), warm-up then cosine decay,
gradient accumulation, mixed precision on CUDA (bf16, or fp16 with a loss scaler) and fp32 on
CPU, gradient clipping, early stopping on the validation score, and a checkpoint after each
epoch from which the same command resumes after a crash or a SIGKILL.

Several processes (torchrun, any backend) train one model with DistributedDataParallel: each
rank takes its share of every global batch (`shard`), gradients are averaged, and only rank 0
writes checkpoints. The training loops (challenge.training.loop, frame_loop, finetune) decide
what a batch is; this module decides how a loss becomes a step.
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch

from challenge.progress import progress_bar, say
from challenge.stores.atomic import sweep_partials, write_atomically

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def class_weights(labels: np.ndarray, classes: int) -> torch.Tensor:
    """Inverse class frequency, normalised to mean 1 over the classes present (labels < 0 ignored)."""
    counts = np.bincount(labels[labels >= 0], minlength=classes).astype(float)
    weights = np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / classes, 0.0)
    return torch.tensor(weights / max(weights[weights > 0].mean(), 1e-9), dtype=torch.float32)


def autocast_dtype(precision: str, device: str) -> torch.dtype | None:
    """The autocast dtype, or None for fp32. Mixed precision is for CUDA; on CPU a run is fp32."""
    if not device.startswith("cuda") or precision == "fp32":
        return None
    if precision == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def warmup_cosine(total_steps: int, warmup: float, schedule: str) -> Callable[[int], float]:
    """Learning-rate factor per optimiser step: linear warm-up over the first `warmup` fraction of
    the steps, then cosine decay to 0 (`schedule` "cosine"), or flat ("constant")."""
    warm = int(round(warmup * total_steps))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / (warm + 1)
        if schedule == "constant":
            return 1.0
        progress = (step - warm) / max(1, total_steps - warm)
        return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    return factor


class Distributed:
    """This process's place among the ranks torchrun started (one rank when not under torchrun)."""

    def __init__(self):
        import torch.distributed as dist

        self.active = dist.is_available() and dist.is_initialized()
        self.rank = dist.get_rank() if self.active else 0
        self.world = dist.get_world_size() if self.active else 1

    def shard(self, index: np.ndarray) -> np.ndarray:
        """This rank's share of a global batch. Every rank gets the same number of items, so the
        mean of the ranks' mean losses is the global batch's mean loss: the items past the last
        multiple of the world size are left out (an empty share: every rank skips the batch)."""
        if self.world == 1:
            return index
        usable = len(index) - len(index) % self.world
        return index[:usable][self.rank :: self.world]


def init_distributed(device: str) -> Distributed:
    """Join the process group torchrun describes in the environment (WORLD_SIZE > 1); gloo on
    CPU, nccl on CUDA. Idempotent."""
    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
        if device.startswith("cuda"):
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    return Distributed()


def _global_rngs() -> dict:
    """NumPy's and Python's global generators (wav2vec2's SpecAugment masks draw from NumPy's),
    as plain values a weights-only checkpoint can hold."""
    import random

    kind, keys, position, has_gauss, gauss = np.random.get_state()
    return {
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(position), int(has_gauss), float(gauss)],
        "python": random.getstate(),
    }


def _set_global_rngs(state: dict) -> None:
    import random

    kind, keys, position, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, gauss))
    random.setstate(state["python"])


class Trainer:
    """Optimiser, schedule, precision, accumulation and checkpoints for one model.

    `params` are the head's parameters: learning_rate, weight_decay, and optionally warmup
    (fraction of steps), schedule (constant|cosine), accumulate (micro-batches per step),
    precision (auto|fp32|bf16|fp16), epochs and patience. `groups` are optimiser parameter groups
    (each may carry its own "lr"; layer-wise decay builds them); default: all parameters.
    `rngs` are the NumPy generators that decide the data order: checkpointed with the weights,
    so a resumed run draws the same batches an uninterrupted one would."""

    def __init__(
        self,
        model: torch.nn.Module,
        params: dict,
        device: str,
        steps_per_epoch: int = 1,
        groups: list[dict] | None = None,
        rngs: Iterable[np.random.Generator] = (),
        checkpoint: Path | None = None,
        keep_checkpoint: bool = False,
    ):
        self.params, self.device, self.rngs = params, device, list(rngs)
        self.checkpoint = Path(checkpoint) if checkpoint else None
        # kept after training when the caller still has to save its result from it (pretraining)
        self.keep_checkpoint = keep_checkpoint
        self.epoch = 0  # the epoch being trained (run_epoch may read it: pretraining's data order does)
        self.model = model.to(device)
        self.dist = Distributed()
        if self.checkpoint is not None and self.dist.rank == 0:
            sweep_partials(self.checkpoint.parent)  # once: what a SIGKILLed run of this training was writing
        if self.dist.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            # frozen blocks and masked-step embeddings can go unused in a step: DDP must not wait for their gradients
            self.forward = DistributedDataParallel(
                model, device_ids=[torch.device(device).index] if device.startswith("cuda") else None, find_unused_parameters=True
            )
        else:
            self.forward = model
        groups = groups if groups is not None else [{"params": [p for p in model.parameters() if p.requires_grad]}]
        for group in groups:
            group.setdefault("lr", params["learning_rate"])
        self.optimiser = torch.optim.AdamW(groups, lr=params["learning_rate"], weight_decay=params["weight_decay"])
        self.accumulate = int(params.get("accumulate", 1))
        total = max(1, math.ceil(steps_per_epoch / self.accumulate)) * int(params.get("epochs", 1))
        schedule, warmup = params.get("schedule", "constant"), float(params.get("warmup", 0.0))
        self.scheduler = (
            torch.optim.lr_scheduler.LambdaLR(self.optimiser, warmup_cosine(total, warmup, schedule))
            if schedule != "constant" or warmup > 0
            else None
        )
        self.dtype = autocast_dtype(params.get("precision", "auto"), device)
        self.scaler = torch.amp.GradScaler("cuda") if self.dtype == torch.float16 else None
        self.pending = 0  # micro-batches whose gradients wait for the next optimiser step

    def autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast("cuda", dtype=self.dtype)

    def step(self, loss: torch.Tensor) -> float:
        """Backward for one micro-batch; an optimiser step every `accumulate` of them."""
        scaled = loss / self.accumulate
        (self.scaler.scale(scaled) if self.scaler else scaled).backward()
        self.pending += 1
        if self.pending >= self.accumulate:
            self._apply()
        return loss.item()

    def _apply(self) -> None:
        if self.scaler:
            self.scaler.unscale_(self.optimiser)
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        if self.scaler:
            self.scaler.step(self.optimiser)
            self.scaler.update()
        else:
            self.optimiser.step()
        self.optimiser.zero_grad(set_to_none=True)
        if self.scheduler is not None:
            self.scheduler.step()
        self.pending = 0

    def end_epoch(self) -> None:
        if self.pending:  # the epoch's last micro-batches: their step is not carried into the next epoch
            self._apply()

    # -- epochs, early stopping, checkpoints ---------------------------------------------------
    def run(self, run_epoch: Callable[[], float], evaluate: Callable[[], float], report=None, keep_start: bool = False):
        """`run_epoch()` trains once over the data (calling `step`) and returns the mean loss;
        `evaluate()` returns the validation score. Stops after `patience` epochs without
        improvement; the model ends with the best epoch's weights, or with its starting weights
        when `keep_start` (a model initialised from a fitted one) and no epoch beat them.
        Resumes from the checkpoint when one is there. Returns (best score, per-epoch history)."""
        # LSTM gradients decay into denormal floats, which are ~10x slower on x86 CPUs
        torch.set_flush_denormal(True)
        state = {"epoch": 0, "best": -math.inf, "best_state": None, "history": [], "stale": 0}
        if self._resume(state):
            say(f"resuming from {self.checkpoint} after epoch {state['epoch']} (best score so far {state['best']:.4f})")
        elif keep_start:
            self.model.eval()
            state["best"], state["best_state"] = evaluate(), copy.deepcopy(self.model.state_dict())
        epochs = int(self.params["epochs"])
        try:
            self._epochs(state, epochs, run_epoch, evaluate, report)
        except Exception as error:
            import optuna

            if isinstance(error, optuna.TrialPruned):
                self.finished()  # a pruned trial is never resumed; a crash is
            raise
        self.finished()
        if state["best_state"] is not None:
            self.model.load_state_dict(state["best_state"])
        return state["best"], state["history"]

    def _epochs(self, state: dict, epochs: int, run_epoch, evaluate, report) -> None:
        with progress_bar("train epochs", epochs, transient=True) as advance:
            for _ in range(state["epoch"]):
                advance()
            while state["epoch"] < epochs and state["stale"] < self.params.get("patience", 8):
                self.epoch = state["epoch"]
                self.model.train()
                loss = run_epoch()
                self.end_epoch()
                value = evaluate()
                state["history"].append({"epoch": state["epoch"], "train_loss": loss, "valid_score": value})
                if value > state["best"]:
                    state["best"], state["best_state"], state["stale"] = value, copy.deepcopy(self.model.state_dict()), 0
                else:
                    state["stale"] += 1
                state["epoch"] += 1
                self._save(state)
                advance()
                if report is not None:
                    report(state["epoch"] - 1, value)  # may raise optuna.TrialPruned

    def _save(self, state: dict) -> None:
        if self.checkpoint is None or self.dist.rank != 0:
            return
        payload = {
            **state,
            "model": self.model.state_dict(),
            "optimiser": self.optimiser.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler else None,
            "scaler": self.scaler.state_dict() if self.scaler else None,
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "data_order": [g.bit_generator.state for g in self.rngs],
            "global_rngs": _global_rngs(),
        }
        # a kill or a full disk during the write leaves the previous epoch's checkpoint whole
        write_atomically(self.checkpoint, lambda handle: torch.save(payload, handle), "training checkpoint")

    def _read_checkpoint(self) -> dict | None:
        if self.checkpoint is None or not self.checkpoint.is_file():
            return None
        from challenge.errors import ChallengeError

        try:
            return torch.load(self.checkpoint, map_location="cpu", weights_only=True)
        except Exception as error:  # noqa: BLE001 - a truncated or foreign file
            raise ChallengeError(
                f"{self.checkpoint}: unreadable training checkpoint ({type(error).__name__}: {error}). "
                "Delete it to start this training from the beginning."
            ) from error

    def _resume(self, state: dict) -> bool:
        """Continue from the checkpoint. Under torchrun, rank 0 reads it and sends it to every
        rank (the other machines need not see the file), so all resume from the same epoch."""
        saved = self._read_checkpoint() if self.dist.rank == 0 else None
        if self.dist.world > 1:
            import torch.distributed as dist

            shared = [saved]
            dist.broadcast_object_list(shared, src=0)
            saved = shared[0]
        if saved is None:
            return False
        try:
            self._restore(saved, state)
        except (KeyError, RuntimeError, ValueError, TypeError, IndexError) as error:
            from challenge.errors import ChallengeError

            first = " ".join(line.strip() for line in str(error).strip().splitlines()[:3])[:300] or repr(error)
            raise ChallengeError(
                f"{self.checkpoint}: not a training checkpoint of this model ({type(error).__name__}: {first}). It was "
                "written by another model, other settings or another program. Delete it to start this training "
                "from the beginning, or run with the settings that wrote it."
            ) from None
        return True

    def _restore(self, saved: dict, state: dict) -> None:
        self.model.load_state_dict(saved["model"])
        self.optimiser.load_state_dict(saved["optimiser"])
        if self.scheduler and saved["scheduler"]:
            self.scheduler.load_state_dict(saved["scheduler"])
        if self.scaler and saved["scaler"]:
            self.scaler.load_state_dict(saved["scaler"])
        torch.set_rng_state(saved["torch_rng"].cpu())
        if saved["cuda_rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([s.cpu() for s in saved["cuda_rng"]])
        for generator, order in zip(self.rngs, saved["data_order"]):
            generator.bit_generator.state = order
        _set_global_rngs(saved["global_rngs"])
        state.update({k: saved[k] for k in state})

    def finished(self) -> None:
        """Training ended (or was pruned): its checkpoint is no longer needed."""
        if self.checkpoint is not None and self.dist.rank == 0 and not self.keep_checkpoint:
            self.checkpoint.unlink(missing_ok=True)
