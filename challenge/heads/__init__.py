"""Heads registered by name. A new head is one module with `@register_head` plus an import here."""

from challenge.heads.base import HEADS, Head, get_head, register_head, suggest
from challenge.heads import frame_lstm, gru, late_fusion, lightgbm, lstm, transformer  # noqa: E402,F401  (registers the heads)

__all__ = ["HEADS", "Head", "get_head", "register_head", "suggest"]
