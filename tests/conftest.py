"""Tiny models and tiny demo datasets, built once per test session (no downloads)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from challenge.progress import set_quiet
from challenge.synthetic.stand_ins import tiny_mae, tiny_wav2vec2
from tracks.affwild2.demo import write_affwild_demo
from tracks.hume.demo import write_emi_demo

set_quiet(True)
os.environ["CHALLENGE_WARM"] = "0"  # a developer's own `challenge warm` process never runs the tests' commands (test_warm starts its own)
if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs two pytest workers on a 2-core machine: one thread each (and in every
    # command a test starts) keeps them from fighting over both cores, as `--workers K` does.
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    # a shell without job control starts a background `make test` (`make test &` in a CI script)
    # with SIGINT ignored, and every command a test starts would inherit that: the Ctrl-C tests
    # (track --tune, live, serve) would wait for an exit that never comes. A handled SIGINT is
    # reset to the default in each child, as in a terminal.
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {
        "wav2vec2": tiny_wav2vec2(root / "wav2vec2"),
        "wav2vec2-emotion": tiny_wav2vec2(root / "wav2vec2-emotion", emotion_head=True),
        "mae": tiny_mae(root / "mae"),
    }


@pytest.fixture(scope="session")
def emi_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("emi")
    write_emi_demo(root, train=12, valid=6, test=4, seed=1)
    return root


@pytest.fixture(scope="session")
def affwild_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("affwild")
    write_affwild_demo(root, train=3, valid=2, test=2, frames=40, seed=1)
    return root


@pytest.fixture
def store_root(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "store"
    monkeypatch.setenv("CHALLENGE_FEATURE_STORE", str(root))
    monkeypatch.delenv("CHALLENGE_FEATURE_STORE_SHARED", raising=False)
    return root


@pytest.fixture
def workdir(tmp_path, monkeypatch, store_root) -> Path:
    """A fresh working directory with its own MLflow store. The store is named by absolute
    path: MLflow caches one database engine per URI, so a relative URI shared by several tests
    would keep pointing at the first test's database."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    return tmp_path
