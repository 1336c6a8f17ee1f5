"""The organisers' pre-extracted per-clip arrays (Hume-Vidmimic2 `wav2vec2/*.pkl`, `vit/*.pkl`).

Pickles can run code when loaded; the restricted unpickler admits only what a NumPy array
needs and refuses anything else by name.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from challenge.errors import ChallengeError
from challenge.features.base import Extractor, Features

_ALLOWED = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy.core.numeric", "_frombuffer"),
}


class NumpyOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refused to load {module}.{name}: only NumPy arrays are admitted")


def load_numpy_pickle(path: Path) -> np.ndarray:
    try:
        with open(path, "rb") as handle:
            value = NumpyOnlyUnpickler(handle).load()
    except pickle.UnpicklingError as error:
        raise ChallengeError(f"{path}: {error}. Convert it to a plain NumPy array pickle or .npy.") from error
    except (EOFError, OSError, ValueError) as error:
        raise ChallengeError(f"{path}: not a readable pickle ({error}). Re-copy it from the organisers' archive.") from error
    array = np.asarray(value)
    if array.ndim == 1:
        array = array[None]
    if array.ndim != 2 or not np.issubdtype(array.dtype, np.number):
        raise ChallengeError(f"{path}: expected a numeric [T, D] array, found shape {array.shape} dtype {array.dtype}.")
    finite = np.isfinite(array)
    if not finite.all():
        rows = np.unique(np.argwhere(~finite)[:, 0])
        raise ChallengeError(
            f"{path}: row {rows[0]} of {len(array)} holds NaN or inf ({int((~finite).sum())} value(s) in "
            f"{len(rows)} row(s)). Re-copy the file from the organisers' archive, or delete it: the clip then "
            "counts as having no provided features."
        )
    return array


@dataclass(frozen=True)
class ProvidedExtractor(Extractor):
    """`kind` names the organisers' folder under the dataset root: wav2vec2 or vit."""

    name = "provided"
    modality = "provided"
    kind: str = "wav2vec2"
    frame_rate: float = 0.0
    dtype: str = "float32"  # the organisers' values are kept as they are (float16 would overflow large ones)  # unknown for the organisers' arrays: steps are used as they are

    @property
    def label(self) -> str:
        return f"provided-{self.kind}"

    def source(self, sample) -> Path | None:
        path = sample.provided.get(self.kind) if sample.provided else None
        return path if path is not None and Path(path).exists() else None

    def build(self, device: str):
        return _ProvidedRunner(self)


class _ProvidedRunner:
    def __init__(self, config: ProvidedExtractor):
        self.config = config

    def prepare(self, source: Path) -> np.ndarray:
        return load_numpy_pickle(source)

    def forward(self, array: np.ndarray) -> Features:
        return Features(array.astype(np.float32), self.config.frame_rate or None)
