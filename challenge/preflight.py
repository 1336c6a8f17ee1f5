"""What a run checks before any work starts: settings that would otherwise fail after the
features were extracted and the head trained, or leave a FAILED run behind (a mistyped store
URL, a GPU that is not there, an --out that is a file)."""

from __future__ import annotations

from pathlib import Path

from challenge.errors import ChallengeError

# SQLAlchemy dialects Optuna's RDB storage and MLflow's SQL store take
SQL_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql", "oracle")
TRACKING_SCHEMES = ("http", "https", "file", "databricks", *SQL_SCHEMES)


def check_run_settings(config) -> None:
    check_device(config.device)
    check_out(config.out)
    if config.storage:
        check_url(config.storage, SQL_SCHEMES, "--storage", "sqlite:///optuna/studies.db or postgresql+psycopg2://user@host/db")
    if config.tracking_uri:
        check_url(config.tracking_uri, TRACKING_SCHEMES, "--tracking-uri", "sqlite:///mlflow/mlflow.db or http://host:5000")


def check_device(device: str | None) -> None:
    if not device or device in ("auto", "cpu"):
        return
    import torch

    for one in device.split(","):
        if one.startswith("cuda"):
            if not torch.cuda.is_available():
                build = f"torch {torch.__version__}, " + ("built with CUDA but no GPU is visible" if torch.version.cuda else "a CPU-only build")
                raise ChallengeError(f"--device {device}: no CUDA GPU here ({build}). Use --device cpu (or auto); on a GPU machine "
                                     "install the CUDA build of the pinned torch into .venv.")
            index = one.partition(":")[2]
            if index and (not index.isdigit() or int(index) >= torch.cuda.device_count()):
                raise ChallengeError(f"--device {one}: this machine has {torch.cuda.device_count()} GPU(s), cuda:0..cuda:{torch.cuda.device_count() - 1}.")
        elif one not in ("cpu", "mps"):
            raise ChallengeError(f"--device {one}: expected auto, cpu, cuda or cuda:N.")


def check_out(out: str | None) -> None:
    if out and Path(out).exists() and not Path(out).is_dir():
        raise ChallengeError(f"--out {out}: a file is there; the run writes a folder. Name a new or existing folder.")


def check_url(url: str, schemes: tuple[str, ...], option: str, example: str) -> None:
    scheme = url.partition("://")[0].split("+")[0].lower() if "://" in url else ""
    if scheme == "postgres":
        raise ChallengeError(f"{option} {url}: write postgresql:// (SQLAlchemy no longer accepts the postgres:// spelling), "
                             f"e.g. {url.replace('postgres://', 'postgresql+psycopg2://', 1)}")
    if scheme not in schemes:
        raise ChallengeError(f"{option} {url}: unknown kind of store {scheme or '(no scheme)'!r}; expected one of "
                             f"{', '.join(s + '://' for s in schemes)}, e.g. {example}")
