"""What a run checks before any work starts: settings that would otherwise fail after the
features were extracted and the head trained, or leave a FAILED run behind (a mistyped store
URL, a GPU that is not there, an --out that is a file)."""

from __future__ import annotations

from pathlib import Path

from challenge.errors import ChallengeError
from challenge.stores.atomic import check_writable_folder
from challenge.stores.checks import SQL_SCHEMES, check_store, check_url


def check_run_settings(config) -> None:
    check_device(config.device)
    check_out(config.out)
    if config.storage and not config.tune:  # its kind only: a study store is opened (and fully checked) by --tune alone
        check_url(config.storage, SQL_SCHEMES, "--storage", "sqlite:///optuna/studies.db or postgresql+psycopg2://user@host/db")
    check_stores(config.tracking_uri, config.storage if config.tune else None)


def check_stores(tracking_uri: str | None, storage: str | None) -> None:
    """The run store (always used) and the study store (when given): see `check_store`."""
    import os

    from challenge.stores.schema_lock import DEFAULT_STORAGE, DEFAULT_TRACKING_URI

    check_store(tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI, "--tracking-uri", DEFAULT_TRACKING_URI)
    if storage:
        check_store(storage, "--storage", DEFAULT_STORAGE)


def check_device(device: str | None) -> None:
    if not device or device in ("auto", "cpu"):
        return
    import torch

    for one in device.split(","):
        if one.startswith("cuda"):
            if not torch.cuda.is_available():
                build = f"torch {torch.__version__}, " + (
                    "built with CUDA but no GPU is visible" if torch.version.cuda else "a CPU-only build"
                )
                raise ChallengeError(
                    f"--device {device}: no CUDA GPU here ({build}). Use --device cpu (or auto); on a GPU machine "
                    "install the CUDA build of the pinned torch into .venv."
                )
            index = one.partition(":")[2]
            if index and (not index.isdigit() or int(index) >= torch.cuda.device_count()):
                raise ChallengeError(
                    f"--device {one}: this machine has {torch.cuda.device_count()} GPU(s), cuda:0..cuda:{torch.cuda.device_count() - 1}."
                )
        elif one not in ("cpu", "mps"):
            raise ChallengeError(f"--device {one}: expected auto, cpu, cuda or cuda:N.")


def check_out(out: str | Path | None) -> None:
    """--out names a folder a run writes into after its work: refused before the work when it
    is a file or cannot be written."""
    if not out:
        return
    if Path(out).exists() and not Path(out).is_dir():
        raise ChallengeError(f"--out {out}: a file is there; the run writes a folder. Name a new or existing folder.")
    check_writable_folder(Path(out), "--out")
