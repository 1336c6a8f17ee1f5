"""Frames from a webcam index, a video file or a stream URL, read by a thread of their own.

A live source (camera or URL), and a file shown at its own pace, hands over only its newest
frame: a frame the pipeline was not ready for is dropped and counted, so readings are never
late. A file read offline hands over every frame, as fast as the pipeline takes them."""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from challenge.errors import ChallengeError

STREAM_SCHEMES = ("rtsp://", "rtmp://", "http://", "https://", "udp://", "tcp://", "srt://")


@dataclass
class Frame:
    index: int
    time: float  # seconds into the source
    rgb: np.ndarray
    captured: float  # perf_counter() when it was decoded


class FrameSource:
    def __init__(self, spec: str, paced: bool = False):
        import av

        self.spec = str(spec)
        self.live = self.spec.isdigit() or self.spec.startswith(STREAM_SCHEMES)
        try:
            if self.spec.isdigit():
                self.container = av.open(f"/dev/video{self.spec}", format="v4l2")
            elif self.live:
                self.container = av.open(self.spec, options={"rtsp_transport": "tcp"} if self.spec.startswith("rtsp") else None, timeout=10)
            else:
                if not Path(self.spec).is_file():
                    raise ChallengeError(f"{self.spec}: no such video file (SOURCE is a webcam index, a video file or an rtsp/http URL).")
                self.container = av.open(self.spec)
        except (av.error.FFmpegError, OSError) as error:
            fix = (
                "check that the camera exists and is free"
                if self.spec.isdigit()
                else "check the URL and that the stream is up"
                if self.live
                else f"re-encode it, for example `ffmpeg -i {Path(self.spec).name} fixed.mp4`"
            )
            raise ChallengeError(f"{self.spec}: cannot be opened as a video source ({error}); {fix}.") from error
        if not self.container.streams.video:
            raise ChallengeError(f"{self.spec}: has no video stream.")
        self.stream = self.container.streams.video[0]
        self.stream.thread_type = "AUTO"
        rate = self.stream.average_rate or self.stream.guessed_rate
        self.fps = float(rate) if rate else 30.0
        duration = float(self.stream.duration * self.stream.time_base) if self.stream.duration else None
        self.total = self.stream.frames or (round(duration * self.fps) if duration else None)
        self.drops = self.live or paced  # hand over only the newest frame
        self.paced = paced and not self.live
        self.dropped = 0
        self._queue: queue.Queue = queue.Queue(maxsize=1 if self.drops else 8)
        self._stop = threading.Event()
        self._error: Exception | None = None
        self._thread = threading.Thread(target=self._read, name="frame-source", daemon=True)
        self._thread.start()

    def _put(self, item) -> None:
        if not self.drops:
            while not self._stop.is_set():
                try:
                    self._queue.put(item, timeout=0.1)
                    return
                except queue.Full:
                    continue
            return
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            try:
                self._queue.get_nowait()  # the pipeline was busy: its next frame is this newer one
                self.dropped += 1
            except queue.Empty:
                pass
            self._queue.put_nowait(item)

    def _read(self) -> None:
        import av

        start = time.perf_counter()
        try:
            for index, frame in enumerate(self.container.decode(self.stream)):
                if self._stop.is_set():
                    break
                t = float(frame.time) if frame.time is not None else index / self.fps
                if self.paced:  # a file shown live plays at its own frame rate
                    delay = start + t - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
                self._put(Frame(index, t, frame.to_ndarray(format="rgb24"), time.perf_counter()))
        except av.error.FFmpegError as error:
            self._error = ChallengeError(f"{self.spec}: the video stream broke off ({error}).")
        finally:
            self._put(None)

    def __iter__(self):
        while True:
            item = self._queue.get()
            if item is None:
                if self._error is not None:
                    raise self._error
                return
            yield item

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.container.close()
