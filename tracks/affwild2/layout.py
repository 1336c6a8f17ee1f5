"""What the Aff-Wild2 tracks share: the reader, the demo writer, the submission file (one row
per frame of the organisers' sample file), the test frame counts and the default model."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from challenge.finetune.loaders import face_crops, face_frames
from challenge.track import TrackSpec
from submissions.affwild import AffWildSubmission
from tracks.affwild2.demo import write_affwild_demo
from tracks.affwild2.reader import LABELS, find_sample_file, read_affwild, sample_file_frames


def test_frames(track: str, root: Path) -> dict[str, int]:
    return sample_file_frames(find_sample_file(Path(root), track))


def affwild_track(name: str, **fields) -> TrackSpec:
    submission = AffWildSubmission(name)
    defaults = dict(
        labels=LABELS[name].header,
        read=partial(read_affwild, track=name),
        write_demo=write_affwild_demo,
        write_submission=submission.write,
        validate_submission=submission.validate,
        test_frames=partial(test_frames, name),
        default_features=("mae", "wav2vec2"),
        default_head="transformer",
        items="videos",
        media={"faces": face_frames, "face-crops": face_crops},
        finetune_head="vit-frames",
    )
    return TrackSpec(name=name, **(defaults | fields))
