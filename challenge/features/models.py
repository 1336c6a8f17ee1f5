"""Loading pretrained checkpoints from a hub id or a local `save_pretrained` directory."""

from __future__ import annotations

import json
import os
from pathlib import Path

from challenge.errors import ChallengeError


def _looks_local(model: str) -> bool:
    return model.startswith((".", "/", "~")) or Path(model).expanduser().exists()


def quiet_transformers() -> None:
    # their per-load progress bars and "newly initialized" notes would bury our own progress
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()


def load_pretrained(cls, model: str, **kwargs):
    """`cls.from_pretrained(model)` with an error that says what to do when offline."""
    quiet_transformers()
    if _looks_local(model):
        path = Path(model).expanduser()
        if not (path / "config.json").exists():
            raise ChallengeError(f"{path}: no config.json there. Pass a directory written by `save_pretrained`.")
        model = str(path)
    try:
        return cls.from_pretrained(model, **kwargs)
    except OSError as error:
        offline = os.environ.get("HF_HUB_OFFLINE") == "1"
        raise ChallengeError(
            f"cannot load model {model!r}{' (HF_HUB_OFFLINE=1)' if offline else ''}: {error}\n"
            "Without network access, download the checkpoint elsewhere, copy it here and pass its "
            "local directory, for example --model /models/wav2vec2-base."
        ) from error


def preprocessor_config(model: str) -> dict:
    """The checkpoint's preprocessor_config.json (normalisation, mean/std), {} when absent."""
    if _looks_local(model):
        path = Path(model).expanduser() / "preprocessor_config.json"
        return json.loads(path.read_text()) if path.exists() else {}
    try:
        from huggingface_hub import hf_hub_download

        return json.loads(Path(hf_hub_download(model, "preprocessor_config.json")).read_text())
    except Exception:  # noqa: BLE001 - absent file or offline: fall back to the model defaults
        return {}
