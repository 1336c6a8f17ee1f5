"""smile-laugh's media loaders for end-to-end heads: each 1.2 s clip is a span of its
recording's video, whose sound and faces are decoded once per recording (challenge.finetune.loaders
keeps them in RAM), so fine-tuning reads the same clips, labels and folds as the feature heads."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from challenge.finetune.loaders import AudioVisualClips, WaveformClips


def _clip_items(corpus, clips) -> tuple[list[str], list[Path], list[tuple[float, float]], np.ndarray]:
    video = {r.id: Path(r.video) for r in corpus.recordings}
    ids = [f"{c.recording}@{c.start:.2f}" for c in clips]
    return ids, [video[c.recording] for c in clips], [(c.start, c.end) for c in clips], np.array([c.label for c in clips])


def clip_waveforms(corpus, clips) -> WaveformClips:
    """The clips' sound (the recording's audio track at 16 kHz, each clip standardised on its own)."""
    ids, videos, spans, labels = _clip_items(corpus, clips)
    return WaveformClips(ids, videos, labels, spans)


def clip_audio_visual(corpus, clips) -> AudioVisualClips:
    """The clips' filterbank and faces as Social-MAE reads them."""
    ids, videos, spans, labels = _clip_items(corpus, clips)
    return AudioVisualClips(ids, videos, [None] * len(ids), labels, spans=spans)
