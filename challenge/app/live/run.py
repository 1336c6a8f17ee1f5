"""`challenge live`: a source through the pipeline, to the web view and/or the CSV.

Offline (a file with --out and no --port): every frame, as fast as the machine goes, with a
progress bar. Served (a camera, a URL, or --port): frames come at the source's pace, the newest
one is taken whenever the pipeline is free (the rest are dropped and counted) and every reading
goes to the page at once."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from challenge.app.live.model import LiveModel
from challenge.app.live.output import FacesCsv, annotate, jpeg, update_message
from challenge.app.live.pipeline import STAGES, LivePipeline
from challenge.app.live.source import FrameSource
from challenge.progress import announce, progress_bar, say, warn


@dataclass
class LiveSummary:
    frames: int = 0
    dropped: int = 0
    faces: int = 0  # face readings, all frames together
    tracks: set = field(default_factory=set)
    seconds: float = 0.0  # wall time from the first frame to the last reading
    media_seconds: float = 0.0
    latencies: list = field(default_factory=list)
    stage_seconds: dict = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))

    def add(self, reading) -> None:
        self.frames += 1
        self.faces += len(reading.faces)
        self.tracks.update(f.track_id for f in reading.faces)
        self.latencies.append(reading.latency)
        self.media_seconds = reading.time
        for stage, spent in reading.timings.items():
            self.stage_seconds[stage] += spent

    def describe(self) -> str:
        fps = self.frames / self.seconds if self.seconds else 0.0
        p50, p95 = (np.percentile(self.latencies, [50, 95]) * 1000) if self.latencies else (0.0, 0.0)
        per_frame = ", ".join(f"{stage} {1000 * spent / max(self.frames, 1):.1f}" for stage, spent in self.stage_seconds.items())
        speed = f", {self.media_seconds / self.seconds:.1f}x real time" if self.seconds and self.media_seconds else ""
        return (
            f"{self.frames} frames in {self.seconds:.1f} s ({fps:.1f} fps{speed}), {self.dropped} dropped; "
            f"{self.faces} face readings ({self.faces / self.seconds if self.seconds else 0:.0f} faces/s), {len(self.tracks)} track ids; "
            f"latency p50 {p50:.1f} ms, p95 {p95:.1f} ms; ms per frame: {per_frame}"
        )


def run_live(
    source: str,
    model: LiveModel,
    out: Path | None = None,
    port: int | None = None,
    host: str = "127.0.0.1",
    detect_every: int | None = None,
    detector: str | None = None,
    batched: bool = True,
    detection_width: int | None = None,
    require_token: bool = False,
) -> LiveSummary:
    """`require_token`: ask for the printed token on loopback too (off loopback it always is)."""
    from challenge.vision.faces import make_detector

    crops = model.crops
    serve = port is not None or source.isdigit() or "://" in source
    # served sources detect on a thread of their own, so no reading waits for the detector
    pipeline = LivePipeline(
        model,
        make_detector(detector or crops.detector, width=detection_width or crops.detection_width),
        detect_every,
        batched,
        background=serve,
    )
    pipeline.warm_up()
    frames = FrameSource(source, paced=serve)
    table = FacesCsv(out, model.labels) if out else None
    summary = LiveSummary()
    server = latest = None
    if serve:
        server, latest, url = _start_server(host, port or 8000, require_token)
        # the address is the only way in when it carries a token: printed even with --quiet
        (announce if "token=" in url else say)(f"live view: {url}  (Ctrl-C to stop)")
    recent = deque(maxlen=60)  # finish times of the last readings: the page's fps
    start = time.perf_counter()
    try:
        with progress_bar(f"live {Path(source).name if not serve else source}", (frames.total or 0) if not serve else 0) as advance:
            for frame in frames:
                reading = pipeline.step(frame.index, frame.time, frame.rgb, frame.captured)
                summary.add(reading)
                if table is not None:
                    table.write(reading)
                if latest is not None:
                    recent.append(reading.finished)
                    fps = (len(recent) - 1) / (recent[-1] - recent[0]) if len(recent) > 1 and recent[-1] > recent[0] else 0.0
                    image = jpeg(annotate(frame.rgb, reading, model.labels)) if latest.clients else None
                    latest.publish(
                        update_message(reading, model.labels, image, fps, 1000 * float(np.median(summary.latencies[-30:])), frames.dropped)
                    )
                advance()
        summary.seconds, summary.dropped = time.perf_counter() - start, frames.dropped
        if latest is not None and latest.message is not None:  # the last frame stays on the page, drawn even if no one watched it live
            latest.publish(
                update_message(
                    reading,
                    model.labels,
                    jpeg(annotate(frame.rgb, reading, model.labels)),
                    fps,
                    latest.message["latency_ms"],
                    frames.dropped,
                    ended=True,
                )
            )
            say("the source ended; the page keeps the last frame until Ctrl-C")
            while True:
                time.sleep(0.5)
    except KeyboardInterrupt:
        summary.seconds = summary.seconds or time.perf_counter() - start
        summary.dropped = frames.dropped
    finally:
        frames.close()
        pipeline.close()
        if table is not None:
            table.close()
        if server is not None:
            server.should_exit = True
    return summary


def _start_server(host: str, port: int, require_token: bool = False):
    import uvicorn

    from challenge.app.guard import Guard, is_loopback, new_token
    from challenge.app.live.web import COOKIE, Latest, make_app
    from challenge.errors import ChallengeError

    latest = Latest()
    guard = Guard(host, port, new_token() if require_token or not is_loopback(host) else None, cookie=COOKIE)
    url = f"http://{host}:{port}/" + (f"?token={guard.token}" if guard.token else "")
    if not is_loopback(host):
        warn(f"the live view of the camera is open to every machine that can reach {host}:{port}; only the token in the URL lets one in")
    server = uvicorn.Server(uvicorn.Config(make_app(latest, guard), host=host, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="live-web", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise ChallengeError(f"the live view could not listen on {host}:{port} (in use?); pass another --port.")
        time.sleep(0.05)
    return server, latest, url
