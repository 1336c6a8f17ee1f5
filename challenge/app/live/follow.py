"""Identities between detections: ByteTrack (the `trackers` library) associates each detection
round with the tracks so far; between rounds each face's box moves on at the velocity of its
last two detections, so crops follow a moving face without running the detector."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from challenge.vision.faces import Faces


@dataclass
class FollowedFace:
    track_id: int
    box: np.ndarray  # at the last detection
    angle: float
    seen_at: float  # seconds
    velocity: np.ndarray  # box corners, pixels per second

    def box_at(self, t: float, width: int, height: int) -> np.ndarray:
        box = self.box + self.velocity * (t - self.seen_at)
        return np.clip(box, [0, 0, 0, 0], [width, height, width, height]).astype(np.float32)


class FaceFollower:
    def __init__(self, lost_after_s: float = 1.0, min_iou: float = 0.1):
        import supervision as sv
        from trackers import ByteTrackTracker

        self._sv = sv
        # the lost-track budget is counted in 30 fps frames
        self.tracker = ByteTrackTracker(
            lost_track_buffer=max(1, round(lost_after_s * 30)),
            minimum_consecutive_frames=1,
            track_activation_threshold=0.5,
            minimum_iou_threshold=min_iou,
        )
        self.faces: dict[int, FollowedFace] = {}

    def update(self, faces: Faces, t: float) -> tuple[list[int], int]:
        """Associate a detection round at time t; returns (the ids of faces that were lost, the
        number of detections not yet confirmed). ByteTrack confirms a new face on its second
        round, so the pipeline detects again on the next frame while any are waiting."""
        detections = self._sv.Detections(
            xyxy=faces.boxes.astype(np.float32),
            confidence=faces.scores.astype(np.float32),
            class_id=np.zeros(len(faces), int),
            data={"angle": faces.angles},
        )
        tracked = self.tracker.update(detections, timestamp=t)
        current, waiting = {}, 0
        for box, track_id, angle in zip(tracked.xyxy, tracked.tracker_id, tracked.data.get("angle", np.zeros(len(tracked)))):
            if track_id < 0:
                waiting += 1
                continue
            before = self.faces.get(int(track_id))
            velocity = np.zeros(4, np.float32)
            if before is not None and t > before.seen_at:
                velocity = ((box - before.box) / (t - before.seen_at)).astype(np.float32)
            current[int(track_id)] = FollowedFace(int(track_id), box.astype(np.float32), float(angle), t, velocity)
        lost = sorted(set(self.faces) - set(current))
        self.faces = current
        return lost, waiting
