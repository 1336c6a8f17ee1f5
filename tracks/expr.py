"""Expression recognition (8 classes, macro F1) on the Aff-Wild2 layout. Data and labels only so far: heads, metric and submission
for the frame-level tracks arrive with the Aff-Wild2 issue."""

from __future__ import annotations

from functools import partial

from challenge.data.affwild import LABELS, read_affwild
from challenge.demo.affwild import write_affwild_demo
from tracks.base import Problem, TrackSpec

TRACK = TrackSpec(
    name="expr",
    title="Expression recognition (8 classes, macro F1)",
    problem=Problem.FRAME_CLASSIFICATION,
    labels=LABELS["expr"].header,
    read=partial(read_affwild, track="expr"),
    write_demo=write_affwild_demo,
    default_features=("mae", "wav2vec2"),
)
