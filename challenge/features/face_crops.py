"""The face-crop recipe: per frame, the detected face cut out, levelled and scaled to a small
grey square (`challenge.vision.faces.crop_face`), flattened. Not a feature set (raw pixels are
not stored in the feature store): the `fer` extractor computes its features on these crops, the
face-crops media loader (challenge.finetune.loaders.FaceCrops) gives them to cnn-gru, which learns
or fine-tunes its own face encoder on them, and `challenge live` cuts its crops by the same recipe.

The detector runs every `detect_every` frames on the largest face; the frames between keep its
box. A video where no face is ever found (or a folder of frames that are already crops) uses the
centred square of each frame."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from challenge.features.base import Extractor, Features


@dataclass(frozen=True)
class FaceCropExtractor(Extractor):
    name = "face-crops"
    modality = "visual"
    detector: str = "centerface"
    detect_every: int = 10  # frames between detections; the box is kept in between
    detection_width: int = 320  # frames are scaled to this width for the detector
    size: int = 48  # crop side in pixels: the features are size² grey values in [0, 1]
    margin: float = 0.25  # the crop widens the face box by this fraction
    frame_step: int = 1

    def build(self, device: str):
        return FaceCropRunner(self)


class FaceCropRunner:
    def __init__(self, config: FaceCropExtractor):
        from challenge.vision.faces import make_detector

        self.config = config
        self.detector = make_detector(config.detector, width=config.detection_width)

    def prepare(self, source: Path):
        from PIL import Image

        from challenge.errors import ChallengeError
        from challenge.media import frame_files, frame_numbers, iter_video_frames, video_frame_rate
        from challenge.vision.faces import crop_face, to_gray, whole_frame_box

        c = self.config
        source = Path(source)
        if source.is_dir():  # already cropped faces (e.g. Aff-Wild2's cropped_aligned folders)
            files = frame_files(source)[:: c.frame_step]
            if not files:
                raise ChallengeError(f"{source}: no face images (.jpg/.png) in this folder.")
            crops = []
            for path in files:
                gray = np.asarray(Image.open(path).convert("L"))
                crops.append(crop_face(gray, whole_frame_box(*gray.shape), c.size, 0.0))
            index = frame_numbers(files)
            return np.stack(crops).reshape(len(crops), -1), None, index
        crops, box, angle = [], None, 0.0
        for i, (_, rgb) in enumerate(iter_video_frames(source, c.frame_step)):
            if i % c.detect_every == 0:
                faces = self.detector.detect(rgb)
                k = faces.largest()
                if k is not None:
                    box, angle = faces.boxes[k], float(faces.angles[k])
            crop_box = box if box is not None else whole_frame_box(*rgb.shape[:2])
            crop = crop_face(to_gray(rgb), crop_box, c.size, c.margin if box is not None else 0.0, angle if box is not None else 0.0)
            crops.append(crop.astype(np.float16))  # the store's dtype already: an hour of video stays under 1 GB here
        if not crops:
            raise ChallengeError(f"{source}: the video has no frames.")
        index = [i * c.frame_step + 1 for i in range(len(crops))]  # as the mae extractor numbers video frames
        return np.stack(crops).reshape(len(crops), -1), video_frame_rate(source) / c.frame_step, index

    def forward(self, prepared) -> Features:
        array, rate, index = prepared
        return Features(array, rate, index)
