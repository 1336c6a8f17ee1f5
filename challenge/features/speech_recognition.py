"""Speech recognition for teams without transcripts: each clip's voice, transcribed by a local
Whisper checkpoint, written as `transcripts/<clip>.txt`, the layout the text stream reads
(challenge.data.transcripts), so `--features text` embeds what was said.

The ABAW6 EMI entries transcribe the speech with Whisper and embed the text; this is that first
step, kept apart from the embedding on purpose: the transcripts are plain files a team can read
and correct, each clip's text then has its own content digest in the feature store (a corrected
file recomputes that clip only), and a team's own transcript is never overwritten. The model is
transformers' `WhisperForConditionalGeneration` with its processor, from a folder (what
`save_pretrained` writes, e.g. a copy of openai/whisper-small) or a hub id written hf:ID; long clips are read
in 30-second chunks by transformers' speech-recognition pipeline.

Each transcript is written atomically as soon as its clip is done, so a killed run resumes where
it stopped: clips that already have a file are skipped (`overwrite` redoes the ones this
command wrote, never a team's).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from challenge.errors import ChallengeError
from challenge.media import AUDIO_RATE, read_audio
from challenge.progress import progress_bar
from challenge.stores.atomic import sweep_partials, write_text_atomically

MARK = ".asr"  # beside each transcript this command wrote: tells it from a team's own file


@dataclass
class TranscriptionReport:
    written: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # already transcribed (a resumed run) or the team's own
    no_audio: list[str] = field(default_factory=list)


def load_recogniser(model: str, device: str = "cpu", language: str | None = None):
    """transformers' speech-recognition pipeline over a Whisper checkpoint; a named error when it
    cannot be read."""
    import transformers

    from challenge.networks.sources import quiet_transformers

    quiet_transformers()
    from challenge.networks.sources import hub_id, local_path, looks_local

    where = str(local_path(model, "--asr-model")) if looks_local(model) else hub_id(model)
    try:
        pipeline = transformers.pipeline("automatic-speech-recognition", model=where, device=device)
    except Exception as error:  # noqa: BLE001 - a damaged or unsafe file raises whatever its reader raises (UnpicklingError, SafetensorError)
        first = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
        unsafe = "weights only load failed" in str(error).lower()
        why = (
            "its weights file is a pickle that holds more than tensors; torch refused to run it. Re-save the model as safetensors "
            "(save_pretrained(..., safe_serialization=True)) where you trust it"
            if unsafe
            else f"{type(error).__name__}: {first}"
        )
        raise ChallengeError(
            f"speech recognition model {model!r} cannot be loaded ({why}). Give a Whisper folder (what "
            "save_pretrained writes: config.json, weights, the processor's files) or a hub id with --asr-model."
        ) from None
    kwargs = {"language": language, "task": "transcribe"} if language else {}
    return lambda signals: [
        out["text"].strip() for out in pipeline(signals, chunk_length_s=30, batch_size=len(signals), generate_kwargs=kwargs)
    ]


def transcribe(
    samples, model: str, out: Path, device: str = "cpu", language: str | None = None, overwrite: bool = False, batch_size: int = 8
) -> TranscriptionReport:
    """Every sample's audio into `out/<id>.txt`, in batches; see the module's note on resuming."""
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as error:
        raise ChallengeError(
            f"{out}: cannot write transcripts there ({error.strerror}). Pass --out with a writable folder "
            "(the text stream reads DATA/transcripts: transcribe into a writable copy of the dataset's root)."
        ) from error
    for folder in {(out / f"{sample.id}.txt").parent for sample in samples}:  # ids may hold folders (BAH)
        sweep_partials(folder)  # what a killed run was writing
    report = TranscriptionReport()
    todo = []
    for sample in samples:
        target = out / f"{sample.id}.txt"
        if sample.audio is None:
            report.no_audio.append(sample.id)
        elif target.exists() and not (overwrite and (out / f"{sample.id}{MARK}").exists()):  # a team's file is never redone
            report.kept.append(sample.id)
        else:
            todo.append(sample)
    if not todo:
        return report
    recognise = load_recogniser(model, device, language)
    with progress_bar("transcribing", len(todo)) as advance:
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            texts = recognise([{"raw": read_audio(s.audio, AUDIO_RATE), "sampling_rate": AUDIO_RATE} for s in batch])
            for sample, text in zip(batch, texts):
                (out / f"{sample.id}{MARK}").parent.mkdir(parents=True, exist_ok=True)  # BAH's ids are paths: Videos/<pid>/...
                (out / f"{sample.id}{MARK}").touch()  # first: a run killed between the two leaves a mark, and the clip is redone
                write_text_atomically(out / f"{sample.id}.txt", text + "\n", "transcript")  # a killed run leaves no half-written one
                report.written.append(sample.id)
            advance(len(batch))
    return report
