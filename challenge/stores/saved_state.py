"""A fitted model saved as data, never as code: a JSON description (registered head name,
parameters, the shapes it was built with) and named arrays in one safetensors file. Loading
rebuilds the head through the head registry and copies the arrays in; nothing is unpickled, so
an artifact planted in a shared MLflow store cannot run code on `challenge predict`.

Everything that can be saved registers a kind with `@saved_kind` and describes itself with
`save_state(arrays, prefix) -> dict` and the classmethod `load_state(info, arrays, prefix)`:
every head (challenge.heads.base.Head, whose heads fill in `state()` / `restore()`) and the
fold ensembles that hold several heads. This module sits at the bottom: it imports none of
them, and a kind's module is imported when a model of that kind is read."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import numpy as np

from challenge.errors import ChallengeError

FORMAT = 1  # bump when the description changes in a way old readers cannot follow
KINDS: dict[str, type] = {}
# where each kind is defined: imported when a saved model of that kind is read
KIND_MODULES = {
    "head": "challenge.heads.base",
    "frame-folds": "challenge.training.frame_folds",
    "clip-folds": "tracks.smiles.cross_validation",
    "average": "challenge.run.selection",
}


def saved_kind(name: str):
    def register(cls):
        cls.saved_kind = name
        KINDS[name] = cls
        return cls

    return register


def describe(model, arrays: dict[str, np.ndarray], prefix: str = "") -> dict:
    """The JSON description of a saveable model; its arrays go into `arrays` under names
    starting with `prefix`."""
    kind = getattr(model, "saved_kind", None)
    if kind is None:
        raise TypeError(f"{type(model).__name__} cannot be saved as data: register it with @saved_kind")
    return _plain({"kind": kind, **model.save_state(arrays, prefix)})


def rebuild(info: dict, arrays: dict[str, np.ndarray], prefix: str = ""):
    """The model `describe` described, built by its kind (heads through the head registry)."""
    if info["kind"] not in KINDS and info["kind"] in KIND_MODULES:
        importlib.import_module(KIND_MODULES[info["kind"]])
    if info["kind"] not in KINDS:
        raise ChallengeError(
            f"a saved model of kind {info['kind']!r}, which this version does not know; known: {', '.join(sorted(KIND_MODULES))}"
        )
    return KINDS[info["kind"]].load_state(info, arrays, prefix)


def write_model(model, folder: Path) -> None:
    """head.json and head.safetensors in `folder`."""
    from safetensors.numpy import save_file

    arrays: dict[str, np.ndarray] = {}
    info = {"format": FORMAT, "model": describe(model, arrays)}
    save_file(arrays, str(folder / "head.safetensors"))
    (folder / "head.json").write_text(json.dumps(info, indent=1))


def read_model(folder: Path):
    from safetensors.numpy import load_file

    info = read_json(folder / "head.json", "the saved model's head")
    if info.get("format") != FORMAT:
        raise ChallengeError(
            f"{folder / 'head.json'}: saved model format {info.get('format')!r}, this version reads {FORMAT}; "
            "retrain the run with this version."
        )
    try:
        arrays = load_file(str(folder / "head.safetensors"))
    except Exception as error:  # noqa: BLE001  (safetensors raises its own error type for a damaged file)
        raise ChallengeError(f"{folder / 'head.safetensors'}: not a readable safetensors file ({error}); retrain the run.") from error
    return rebuild(info["model"], arrays)


def module_arrays(module, prefix: str = "") -> dict[str, np.ndarray]:
    """A torch module's state_dict as float arrays (buffers included: batch-norm statistics)."""
    return {prefix + k: v.detach().cpu().numpy() for k, v in module.state_dict().items()}


def load_module(module, arrays: dict[str, np.ndarray], prefix: str = ""):
    """Copies `arrays` into `module`; every tensor of the module must be there, nothing else."""
    import torch

    state = {k[len(prefix) :]: torch.from_numpy(np.array(v)) for k, v in arrays.items() if k.startswith(prefix)}
    missing, unexpected = module.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ChallengeError(
            f"saved model: tensors missing {missing[:10]} or unexpected {unexpected[:10]} for {type(module).__name__}; "
            "the file does not belong to this head. Retrain the run."
        )
    return module.eval()


def only(arrays: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    """The arrays under `prefix`, named without it."""
    return {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}


def put(arrays: dict[str, np.ndarray], named: dict[str, np.ndarray], prefix: str) -> None:
    for name, value in named.items():
        arrays[prefix + name] = np.ascontiguousarray(value)


def _plain(value):
    """As JSON: numpy scalars (in histories, parameters) become plain numbers."""
    return json.loads(json.dumps(value, default=lambda v: v.item() if hasattr(v, "item") else float(v)))


def read_json(path: Path, what: str) -> dict:
    """A JSON object a run saved; a truncated or foreign file is a named error."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as error:  # JSONDecodeError is a ValueError
        raise ChallengeError(
            f"{path}: {what} is damaged ({error}): a truncated download or copy. Fetch the run's artifacts again "
            "(mlflow artifacts download) or retrain the run."
        ) from None
    if not isinstance(value, dict):
        raise ChallengeError(
            f"{path}: {what} holds {type(value).__name__}, not the object it was saved as; the file is damaged. "
            "Fetch the run's artifacts again or retrain the run."
        )
    return value
