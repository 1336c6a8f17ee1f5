"""The `finetune:` section of the run config: how an end-to-end head trains its backbone."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt


class FinetuneSettings(BaseModel):
    """End-to-end heads (--finetune): how the backbone trains. Every field is a head parameter,
    so Optuna tunes those in the head's search space; one set here is fixed for the run."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)
    option_prefix: ClassVar[str] = "finetune_"
    panel: ClassVar[str] = "fine-tuning (end-to-end heads, --finetune)"

    backbone_lr: PositiveFloat = Field(5e-5, description="the last block's learning rate")
    head_lr: PositiveFloat = Field(1e-3, description="The head's learning rate.")
    layer_decay: float = Field(0.75, gt=0, le=1, description="each block below the last learns at this fraction of the one above")
    trainable_blocks: NonNegativeInt = Field(0, description="only the last N transformer blocks train (0: all)")
    freeze_feature_encoder: bool = Field(True, description="wav2vec2: its convolutional feature encoder stays frozen")
    warmup: float = Field(0.1, ge=0, lt=1, description="fraction of the optimiser steps with a linear warm-up")
    schedule: Literal["cosine", "constant"] = Field("cosine", description="The learning rate after the warm-up.")
    accumulate: PositiveInt = Field(1, description="micro-batches per optimiser step (the batch is batch_size x accumulate)")
    checkpointing: bool = Field(
        False, description="gradient checkpointing: recompute activations in the backward pass (less memory, ~30% slower)"
    )
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field("auto", description="auto: bf16 (or fp16) autocast on CUDA, fp32 on CPU")
    epochs: PositiveInt = Field(10, description="Epoch budget (--epochs overrides it too).")
    patience: PositiveInt = Field(4, description="Epochs without a better validation score before stopping.")
    batch_size: PositiveInt = Field(8, description="Items per micro-batch (all ranks together under torchrun).")
    weight_decay: NonNegativeFloat = Field(0.01, description="AdamW weight decay.")
    learning_rate: PositiveFloat = Field(1e-3, description="the rate of any parameter outside the backbone's and head's groups")
