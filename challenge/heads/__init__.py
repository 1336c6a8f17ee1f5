"""Heads registered by name. A new head is one module with `@register_head` plus a line in
HEAD_MODULES; a head's module (and its libraries: torch, LightGBM, scikit-learn) is imported
only when that head is asked for, so a run pays for the head it uses."""

from __future__ import annotations

import importlib

from challenge.heads.base import HEADS, Head, register_head, suggest

HEAD_MODULES = {
    "lstm": "challenge.heads.lstm",
    "lightgbm": "challenge.heads.lightgbm",
    "transformer": "challenge.heads.transformer",
    "lstm-frames": "challenge.heads.frame_lstm",
    "gru": "challenge.heads.gru",
    "cnn-gru": "challenge.heads.cnn_gru",
    "mlp-late-fusion": "challenge.heads.late_fusion",
    "logistic": "challenge.heads.linear",
    "ridge": "challenge.heads.linear",
    "wav2vec2-lstm": "challenge.heads.finetune",
    "vit-frames": "challenge.heads.finetune",
}


def head_names() -> list[str]:
    return sorted({*HEAD_MODULES, *HEADS})


def get_head(name: str) -> type[Head]:
    from challenge.errors import ChallengeError

    if name not in HEADS and name in HEAD_MODULES:
        importlib.import_module(HEAD_MODULES[name])
    if name not in HEADS:
        raise ChallengeError(f"unknown head {name!r}; choose one of: {', '.join(head_names())}")
    return HEADS[name]


def load_all() -> dict[str, type[Head]]:
    for module in sorted(set(HEAD_MODULES.values())):
        importlib.import_module(module)
    return HEADS


__all__ = ["HEADS", "HEAD_MODULES", "Head", "get_head", "head_names", "load_all", "register_head", "suggest"]
