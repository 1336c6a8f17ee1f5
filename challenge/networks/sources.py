"""Where a model comes from: a path (a `save_pretrained` folder or a weights file), or a
Hugging Face hub id written `hf:ORG/NAME`. The rule is explicit, never guessed.

A local checkpoint is identified by the content of its weight and config files (for the
feature cache key); a hub id that is neither cached nor reachable fails at once, without the
hub client's retries, and says how to pass a local directory instead.
"""

from __future__ import annotations

import functools
import json
import os
import socket
import threading
from pathlib import Path
from urllib.parse import urlparse

from challenge.errors import ChallengeError

# files that decide what a checkpoint computes: weights and configs (not READMEs or licences)
WEIGHT_SUFFIXES = {".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".msgpack", ".h5", ".onnx", ".json", ".model"}


HUB_PREFIX = "hf:"  # the one way to name a Hugging Face hub model: hf:facebook/wav2vec2-base


def looks_local(model: str) -> bool:
    """The rule a user can read: a model is a path (a folder or a weights file) unless it starts
    with `hf:`, which names a hub id. Nothing is guessed from whether a path happens to exist."""
    return not model.startswith(HUB_PREFIX)


def hub_id(model: str) -> str:
    return model.removeprefix(HUB_PREFIX)


def local_path(model: str, option: str) -> Path:
    """A model given as a path: it must exist (a mistyped path never becomes a hub id)."""
    path = Path(model).expanduser()
    if not path.exists():
        raise ChallengeError(
            f"{option} {model}: no such file or folder ({path.resolve()}). A model is a path (a save_pretrained folder or a "
            f"weights file) unless it starts with {HUB_PREFIX}, which names a Hugging Face hub id: e.g. {HUB_PREFIX}{model}"
            if "/" in model and not model.startswith((".", "/", "~"))
            else f"{option} {model}: no such file or folder ({path.resolve()}). A model is a path (a save_pretrained folder or "
            f"a weights file) unless it starts with {HUB_PREFIX} (a Hugging Face hub id)."
        )
    return path


def model_identity(model: str) -> str:
    """`sha:<digest>` of a local checkpoint's weight and config files, `hub:<id>` for `hf:<id>`."""
    if not looks_local(model):
        return f"hub:{hub_id(model)}"
    from challenge.stores.feature_store import cached_content_digest, model_digest_root

    path = Path(model).expanduser().resolve()
    if not path.exists():
        return f"missing:{path}"  # loading it will say so; no entry can be found under this key
    files = [path] if path.is_file() else [p for p in path.iterdir() if p.is_file() and p.suffix.lower() in WEIGHT_SUFFIXES]
    return "sha:" + cached_content_digest(path, files, model_digest_root())


def quiet_transformers() -> None:
    # their per-load progress bars and "newly initialized" notes would bury our own progress
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()


def _hub_host() -> tuple[str, int]:
    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)
    return url.hostname or "huggingface.co", url.port or (443 if url.scheme == "https" else 80)


@functools.lru_cache(maxsize=1)
def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the hub answers a TCP connection within `timeout` seconds (name lookup included,
    which a socket timeout does not bound: hence the thread)."""
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        return False
    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection(_hub_host(), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout + 1)
    return bool(result and result[0])


def _in_hub_cache(model: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(model, "config.json"), str)
    except Exception:  # noqa: BLE001 - an invalid repo id is simply not cached
        return False


def _unreachable(model: str, option: str) -> ChallengeError:
    why = "HF_HUB_OFFLINE=1 is set" if os.environ.get("HF_HUB_OFFLINE") == "1" else f"the hub ({_hub_host()[0]}) does not answer"
    return ChallengeError(
        f"cannot load model {model!r}: it is not in the local Hugging Face cache and {why}. "
        f"Download it on a machine with network access (`hf download {model} --local-dir /models/NAME`), "
        f"copy the folder here and pass it: {option} /models/NAME."
    )


def load_pretrained(cls, model: str, option: str = "--audio-model", **kwargs):
    """`cls.from_pretrained(model)` with errors that name the checkpoint and say what to do:
    a folder that is not a checkpoint, weights torch refuses to unpickle, an unreachable hub."""
    quiet_transformers()
    if looks_local(model):
        path = local_path(model, option)
        if not (path / "config.json").exists():
            raise ChallengeError(f"{path}: no config.json there. Pass a directory written by `save_pretrained` with {option}.")
        model = str(path)
    elif not _in_hub_cache(model := hub_id(model)):
        if not hub_reachable():
            raise _unreachable(model, option)
    elif not hub_reachable():
        kwargs.setdefault("local_files_only", True)  # cached: load it without waiting on the network
    try:
        return cls.from_pretrained(model, **kwargs)
    except OSError as error:
        raise ChallengeError(
            f"cannot load model {model!r}: {error}\nPass a local directory written by `save_pretrained` "
            f"(config.json plus model.safetensors or pytorch_model.bin) with {option}."
        ) from error
    except Exception as error:  # noqa: BLE001 - safetensors, unpickling and shape errors all mean "not this model"
        raise ChallengeError(
            f"{model}: not a loadable {cls.__name__} checkpoint ({type(error).__name__}: {str(error)[:300]}). "
            "Pass the folder that `save_pretrained` wrote for this kind of model; pickled weights that torch "
            "refuses as unsafe must be re-saved as safetensors by whoever trusts their source."
        ) from error


def preprocessor_config(model: str) -> dict:
    """The checkpoint's preprocessor_config.json (normalisation, mean/std), {} when absent."""
    if looks_local(model):
        path = Path(model).expanduser() / "preprocessor_config.json"
        return json.loads(path.read_text()) if path.exists() else {}
    try:
        from huggingface_hub import hf_hub_download

        local_only = not hub_reachable()
        return json.loads(Path(hf_hub_download(hub_id(model), "preprocessor_config.json", local_files_only=local_only)).read_text())
    except Exception:  # noqa: BLE001 - absent file or offline: fall back to the model defaults
        return {}
