"""The `finetune:` section of the run config: how an end-to-end head trains its backbone."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt


class FinetuneSettings(BaseModel):
    """End-to-end heads (--finetune): how the backbone trains. Every field is a head parameter,
    so Optuna tunes those in the head's search space; one set here is fixed for the run."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    backbone_lr: PositiveFloat = 5e-5  # the last block's learning rate
    head_lr: PositiveFloat = 1e-3
    layer_decay: float = Field(0.75, gt=0, le=1)  # each block below the last learns at this fraction of the one above
    trainable_blocks: NonNegativeInt = 0  # only the last N transformer blocks train (0: all)
    freeze_feature_encoder: bool = True  # wav2vec2: its convolutional feature encoder stays frozen
    warmup: float = Field(0.1, ge=0, lt=1)  # fraction of the optimiser steps with a linear warm-up
    schedule: Literal["cosine", "constant"] = "cosine"  # after the warm-up
    accumulate: PositiveInt = 1  # micro-batches per optimiser step (the batch is batch_size x accumulate)
    checkpointing: bool = False  # gradient checkpointing: recompute activations in the backward pass (less memory, ~30% slower)
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"  # auto: bf16 (or fp16) autocast on CUDA, fp32 on CPU
    epochs: PositiveInt = 10
    patience: PositiveInt = 4
    batch_size: PositiveInt = 8
    weight_decay: NonNegativeFloat = 0.01
    learning_rate: PositiveFloat = 1e-3  # the rate of any parameter outside the backbone's and head's groups
