"""One frame in, every face's smile intensity out: detect every N frames (and on the next frame
while a new face waits to be confirmed), follow the faces in between, crop them all the way the
training crops were made, then one encoder call and one GRU call for all faces of the frame
(`batched=False` makes one call per face: the comparison of benchmarks/live.py).

Each track id keeps the embeddings of its last `window` frames; the GRU runs over that window,
as it was trained, and the probabilities of its last frame are the face's reading. A lost track's
window is dropped with it."""

from __future__ import annotations

import time
from collections import defaultdict, deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from challenge.app.live.follow import FaceFollower
from challenge.app.live.model import LiveModel
from challenge.vision.faces import crop_face, make_detector, to_gray

STAGES = ("detect", "track", "crop", "encode", "classify")


@dataclass
class FaceReading:
    track_id: int
    box: np.ndarray  # x1, y1, x2, y2 in frame pixels
    probabilities: np.ndarray
    level: int  # the most probable class


@dataclass
class FrameReading:
    index: int
    time: float  # seconds into the source
    faces: list[FaceReading]
    captured: float  # perf_counter() when the frame was read
    finished: float
    timings: dict[str, float] = field(default_factory=dict)  # stage -> seconds

    @property
    def latency(self) -> float:
        return self.finished - self.captured


class LivePipeline:
    """`background=True` (live sources) runs the detector on a thread of its own: the frames that
    arrive while it works get their readings at once, from the boxes carried forward, and its
    result is associated at the time of the frame it saw. Offline runs detect in line, so the same
    file always gives the same CSV."""

    def __init__(
        self,
        model: LiveModel,
        detector=None,
        detect_every: int | None = None,
        batched: bool = True,
        lost_after_s: float = 1.0,
        background: bool = False,
    ):
        self.model = model
        self.detector = detector or make_detector(model.crops.detector, width=model.crops.detection_width)
        self.detect_every = detect_every or model.crops.detect_every
        self.batched = batched
        self.follower = FaceFollower(lost_after_s)
        self.windows: dict[int, deque] = {}
        self.next_detection = 0
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="face-detector") if background else None
        self.pending: tuple[Future, int, float] | None = None  # detection in flight: (result, frame index, frame time)

    def warm_up(self) -> None:
        """One pass of each model on a blank frame: onnxruntime's first call is slow, and a live
        source would drop the frames that arrive meanwhile."""
        self.detector.detect(np.zeros((240, 320, 3), np.uint8))
        embedding = self.model.encode(np.zeros((1, self.model.crops.size**2), np.float32))
        self.model.classify(embedding[None])

    def step(self, index: int, t: float, rgb: np.ndarray, captured: float | None = None) -> FrameReading:
        captured = time.perf_counter() if captured is None else captured
        timings, clock = dict.fromkeys(STAGES, 0.0), time.perf_counter()

        def lap(stage: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            timings[stage] += now - clock
            clock = now

        detected = index >= self.next_detection and self.pending is None
        if self.executor is not None:
            if self.pending is not None and self.pending[0].done():
                future, seen_index, seen_t = self.pending
                self.pending = None
                self._associate(future.result(), seen_index, seen_t)
                lap("track")
            if detected:
                self.pending = (self.executor.submit(self.detector.detect, rgb), index, t)
                self.next_detection = index + self.detect_every
                lap("detect")
        elif detected:
            faces = self.detector.detect(rgb)
            lap("detect")
            self.next_detection = index + self.detect_every
            self._associate(faces, index, t)
            lap("track")
        followed = sorted(self.follower.faces.values(), key=lambda f: f.track_id)
        readings = []
        if followed:
            height, width = rgb.shape[:2]
            gray, crops = to_gray(rgb), self.model.crops
            boxes = [f.box_at(t, width, height) for f in followed]
            pixels = np.stack([crop_face(gray, box, crops.size, crops.margin, f.angle).ravel() for f, box in zip(followed, boxes)])
            lap("crop")
            if self.batched:
                embeddings = self.model.encode(pixels)
            else:
                embeddings = np.concatenate([self.model.encode(pixels[k : k + 1]) for k in range(len(pixels))])
            for f, embedding in zip(followed, embeddings):
                self.windows.setdefault(f.track_id, deque(maxlen=self.model.window)).append(embedding)
            lap("encode")
            probabilities = self._classify([self.windows[f.track_id] for f in followed])
            lap("classify")
            readings = [FaceReading(f.track_id, box, p, int(p.argmax())) for f, box, p in zip(followed, boxes, probabilities)]
        return FrameReading(index, t, readings, captured, time.perf_counter(), timings)

    def _associate(self, faces, index: int, t: float) -> None:
        lost, waiting = self.follower.update(faces, t)
        for track_id in lost:
            self.windows.pop(track_id, None)
        if waiting:  # a new face: detect again on the next frame to confirm it
            self.next_detection = index + 1

    def close(self) -> None:
        if self.executor is not None:
            self.executor.shutdown(wait=True, cancel_futures=True)

    def _classify(self, windows: list[deque]) -> np.ndarray:
        """Windows of one length go through the GRU together (new faces have shorter ones)."""
        out = np.zeros((len(windows), len(self.model.labels)), np.float32)
        if not self.batched:
            for k, w in enumerate(windows):
                out[k] = self.model.classify(np.stack(w)[None])[0]
            return out
        by_length = defaultdict(list)
        for k, w in enumerate(windows):
            by_length[len(w)].append(k)
        for members in by_length.values():
            out[members] = self.model.classify(np.stack([np.stack(windows[k]) for k in members]))
        return out
