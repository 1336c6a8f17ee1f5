"""The settings of `challenge pretrain mae`: the architecture (when training from scratch), the
masking, the optimiser and schedule, and the data loading. Each field is a command-line option
(challenge.app.cli_options) and a key of the `pretrain:` section of a --config YAML."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt, model_validator


class PretrainSettings(BaseModel):
    """What every pretraining shares: the optimiser and schedule, the epochs and the loading."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    init: str | None = Field(
        None,
        description="Start from this model (a folder this command wrote, a hub id or a weights file) "
        "instead of random weights; the architecture settings are then read from it.",
    )
    epochs: PositiveInt = Field(10, description="Epochs (an epoch is --epoch-steps steps, or one pass over the data).")
    epoch_steps: NonNegativeInt = Field(0, description="Optimiser steps per epoch, and so between checkpoints (0: one pass over the data).")
    batch_size: PositiveInt = Field(64, description="Items per micro-batch (all ranks together under torchrun).")
    accumulate: PositiveInt = Field(1, description="Micro-batches per optimiser step.")
    learning_rate: PositiveFloat = Field(1.5e-4, description="Peak learning rate (MAE: 1.5e-4 x batch / 256).")
    weight_decay: NonNegativeFloat = Field(0.05, description="AdamW weight decay.")
    warmup: float = Field(0.05, ge=0, lt=1, description="Fraction of the optimiser steps with a linear warm-up, then cosine decay.")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field("auto", description="auto: bf16 (or fp16) autocast on CUDA, fp32 on CPU.")
    workers: NonNegativeInt = Field(2, description="DataLoader processes that decode the data (0: decode in the training process).")
    valid_items: NonNegativeInt = Field(64, description="Items held out to score reconstruction each epoch (the best epoch is kept).")
    grid_every: NonNegativeInt = Field(
        0, description="Log a grid of masked inputs and reconstructions every N steps (0: at each epoch's end only)."
    )
    frame_step: PositiveInt = Field(10, description="--videos: crop a face from every Nth frame.")
    crop_margin: float = Field(0.25, ge=0, description="--videos: the crop widens the detected face box by this fraction.")
    seed: int = Field(0, description="Seeds the weights, the data order, the augmentation and the masks.")


class MAEPretrainSettings(PretrainSettings):
    """`challenge pretrain mae`: a ViT masked autoencoder on face images."""

    image_size: PositiveInt = Field(224, description="Side of the square input in pixels.")
    patch_size: PositiveInt = Field(16, description="Side of a patch in pixels.")
    hidden_size: PositiveInt = Field(768, description="Encoder width (ViT-B: 768).")
    layers: PositiveInt = Field(12, description="Encoder blocks.")
    heads: PositiveInt = Field(12, description="Attention heads per encoder block.")
    decoder_hidden_size: PositiveInt = Field(512, description="Decoder width.")
    decoder_layers: PositiveInt = Field(8, description="Decoder blocks.")
    decoder_heads: PositiveInt = Field(16, description="Attention heads per decoder block.")
    mask_ratio: float = Field(0.75, gt=0, lt=1, description="Fraction of the patches hidden from the encoder.")
    norm_pix_loss: bool = Field(
        True, description="Reconstruct each patch's pixels standardised by its own mean and variance (MAE's default)."
    )
    flip: bool = Field(True, description="Random horizontal flips.")
    crop_scale: float = Field(0.6, gt=0, le=1, description="Random resized crops keep at least this fraction of the image (1: none).")

    @model_validator(mode="after")
    def _architecture_fits(self):
        if self.init is None:  # with --init the architecture is read from the model
            _divides(("image_size", self.image_size), ("patch_size", self.patch_size))
            _divides(("hidden_size", self.hidden_size), ("heads", self.heads))
            _divides(("decoder_hidden_size", self.decoder_hidden_size), ("decoder_heads", self.decoder_heads))
        return self


class SocialMAEPretrainSettings(PretrainSettings):
    """`challenge pretrain social-mae`: the audio-visual Social-MAE on clips of videos (their
    audio as a log-mel filterbank, their faces as frames). Defaults are the paper's sizes."""

    learning_rate: PositiveFloat = Field(1e-4, description="Peak learning rate (the paper: 1e-4).")
    batch_size: PositiveInt = Field(16, description="Clips per micro-batch (all ranks together under torchrun).")
    valid_items: NonNegativeInt = Field(16, description="Clips held out to score reconstruction each epoch (the best epoch is kept).")
    image_size: PositiveInt = Field(224, description="Side of a face frame in pixels.")
    frames: PositiveInt = Field(8, description="Face frames per clip.")
    tubelet: PositiveInt = Field(2, description="Frames per video patch.")
    patch_size: PositiveInt = Field(16, description="Side of a patch (pixels, filterbank bins and frames).")
    mel_bins: PositiveInt = Field(128, description="Log-mel filterbank bins.")
    audio_frames: PositiveInt = Field(1024, description="Filterbank frames (10 ms each) per clip: its length.")
    width: PositiveInt = Field(768, description="Encoder width.")
    modality_depth: PositiveInt = Field(11, description="Blocks of each modality's encoder.")
    joint_depth: PositiveInt = Field(1, description="Joint blocks on top of them.")
    heads: PositiveInt = Field(12, description="Attention heads of the encoder's blocks.")
    decoder_width: PositiveInt = Field(512, description="Decoder width.")
    decoder_depth: PositiveInt = Field(8, description="Decoder blocks.")
    decoder_heads: PositiveInt = Field(16, description="Attention heads of the decoder's blocks.")
    mask_ratio_audio: float = Field(0.75, gt=0, lt=1, description="Fraction of the audio patches hidden.")
    mask_ratio_video: float = Field(0.75, gt=0, lt=1, description="Fraction of the video patches hidden.")
    contrast_weight: NonNegativeFloat = Field(0.01, description="Weight of the audio-video contrastive loss beside reconstruction.")

    @model_validator(mode="after")
    def _architecture_fits(self):
        if self.init is None:
            for size in ("image_size", "mel_bins", "audio_frames"):
                _divides((size, getattr(self, size)), ("patch_size", self.patch_size))
            _divides(("frames", self.frames), ("tubelet", self.tubelet))
            _divides(("width", self.width), ("heads", self.heads))
            _divides(("decoder_width", self.decoder_width), ("decoder_heads", self.decoder_heads))
        return self


def _divides(whole: tuple[str, int], part: tuple[str, int]) -> None:
    """Checked before any data is read: the network would refuse the sizes only at its first batch."""
    (name, value), (part_name, part_value) = whole, part
    if value % part_value:
        option, part_option = (f"--{n.replace('_', '-')}" for n in (name, part_name))
        below, above = value - value % part_value, value - value % part_value + part_value
        raise ValueError(
            f"{option} {value} is not a multiple of {part_option} {part_value}: a ViT cuts it into whole pieces. "
            f"Use {option} {below or above} or {above}, or another {part_option}."
        )
