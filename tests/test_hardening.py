"""Bad and quirky input, one row per case of the hardening issue: the input is built by the
row, the message fragment it must produce is in the row, and after every row the feature store
is checked: no entry that was sound before the row is lost or damaged by it.

The corpora come from tests/fixtures/quirky.py (written apart from the demo writers)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from challenge.app.cli import app
from challenge.errors import ChallengeError
from challenge.features import FeatureStore, make_extractor
from challenge.features.extract import extract
from challenge.stores.feature_store import check_entries
from tests.fixtures.quirky import quirky_affwild, quirky_elan, quirky_hume
from tracks.affwild2.reader import read_affwild
from tracks.hume.reader import read_hume
from tracks.smiles.elan import read_smiles_corpus


@dataclass
class World:
    """One row's copies: the EMI corpus with its egemaps entries cached, the Aff-Wild2 and ELAN
    corpora, and a store root."""

    tmp: Path
    emi: Path
    affwild: Path
    elan: Path
    store: FeatureStore

    def entries(self) -> list[Path]:
        return sorted(p.with_suffix(".npy") for p in self.store.entry_files())

    def entry_of(self, clip: str, extractor: str = "egemaps") -> Path:
        digest = extract(make_extractor(extractor), [s for s in read_hume(self.emi) if s.id == clip], self.store).digests[clip]
        return next(self.store.root.glob(f"{extractor}-*/{digest[:2]}/{digest}.npy"))


@pytest.fixture(scope="module")
def golden(tmp_path_factory):
    root = tmp_path_factory.mktemp("golden")
    quirky_hume(root / "emi")
    quirky_affwild(root / "affwild")
    quirky_elan(root / "elan")
    extract(make_extractor("egemaps"), read_hume(root / "emi"), FeatureStore(root / "store"))
    return root


@pytest.fixture
def world(golden, tmp_path, monkeypatch):
    for name in ("emi", "affwild", "elan", "store"):
        shutil.copytree(golden / name, tmp_path / name)
    monkeypatch.setenv("CHALLENGE_FEATURE_STORE", str(tmp_path / "store"))
    monkeypatch.delenv("CHALLENGE_FEATURE_STORE_SHARED", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    monkeypatch.chdir(tmp_path)
    return World(tmp_path, tmp_path / "emi", tmp_path / "affwild", tmp_path / "elan", FeatureStore(tmp_path / "store"))


def message(action: Callable[[], object]) -> str:
    """What a user reads: the ChallengeError's message, or the action's own summary."""
    try:
        return str(action())
    except ChallengeError as error:
        return f"error: {error}"


def cli(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    if isinstance(result.exception, ChallengeError):
        return f"error: {result.exception}"
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return f"exit {result.exit_code}\n{result.output}"


def _rewrite(path: Path, edit: Callable[[list[str]], list[str]]) -> None:
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    path.write_text("\n".join(edit(lines)) + "\n")


def counts(report) -> str:
    return f"computed {report.computed}, cached {report.cached}"


# ---- the cases ------------------------------------------------------------------------------
def case_model_rewritten_in_place(w: World) -> str:
    from challenge.synthetic.stand_ins import tiny_wav2vec2

    model, valid = w.tmp / "w2v", read_hume(w.emi).split("valid")
    tiny_wav2vec2(model, seed=0)
    first = extract(make_extractor("wav2vec2", model=str(model)), valid, w.store)
    tiny_wav2vec2(model, seed=1)  # new weights, same folder
    second = extract(make_extractor("wav2vec2", model=str(model)), valid, w.store)
    return f"first {counts(first)}; after new weights {counts(second)}"


def case_model_relative_and_absolute(w: World) -> str:
    from challenge.synthetic.stand_ins import tiny_wav2vec2

    valid = read_hume(w.emi).split("valid")
    tiny_wav2vec2(w.tmp / "w2v")
    extract(make_extractor("wav2vec2", model=str(w.tmp / "w2v")), valid, w.store)
    again = extract(make_extractor("wav2vec2", model="./w2v"), valid, w.store)  # cwd is w.tmp
    return f"relative path: {counts(again)}"


def _damaged_then_recomputed(w: World, damage: Callable[[Path], None]) -> str:
    entry = w.entry_of("00011")
    damage(entry)
    from challenge.training.inputs import clip_features

    samples = read_hume(w.emi).split("valid")
    extractor = make_extractor("egemaps")
    digests = {"egemaps": {s.id: w.store.media_digest(s.audio) for s in samples}}
    read = message(lambda: clip_features(samples, [extractor], w.store, digests))
    again = extract(extractor, samples, w.store)
    return f"{read}\nthen extract: {counts(again)}"


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 40])


def _bad_header(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[:8] = b"garbage!"
    path.write_bytes(bytes(data))


def _wrong_shape(path: Path) -> None:
    meta_path = path.with_suffix(".json")
    meta = json.loads(meta_path.read_text())
    meta["shape"] = [meta["shape"][0] + 1, meta["shape"][1]]
    meta_path.write_text(json.dumps(meta))


def case_flipped_bytes(w: World) -> str:
    entry = w.entry_of("00012")
    data = bytearray(entry.read_bytes())
    data[-17] ^= 0xFF  # inside the array: the structure stays valid
    entry.write_bytes(bytes(data))
    found = cli("features", "verify", "-q")
    repaired = cli("features", "verify", "--repair", "-q")
    clean = cli("features", "verify", "-q")
    return "\n".join([found, repaired, clean])


def case_umask(w: World) -> str:
    extractor = make_extractor("egemaps", feature_set="GeMAPSv01b")
    extract(extractor, read_hume(w.emi).split("valid")[:1], w.store)
    group = w.store.root / w.store.group_name(extractor)
    files = sorted({oct(p.stat().st_mode & 0o777) for p in group.rglob("*") if p.is_file() and p.suffix != ".lock"})
    folders = sorted({oct(p.stat().st_mode & 0o777) for p in [group, *group.rglob("*")] if p.is_dir()})
    return f"umask {oct(os.umask(os.umask(0o022)))}: files {files}, folders {folders}"


def case_disk_full(w: World, monkeypatch) -> str:
    import errno

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    result = message(lambda: extract(make_extractor("egemaps", feature_set="GeMAPSv01b"), read_hume(w.emi).split("valid"), w.store))
    monkeypatch.undo()
    leftovers = list(w.store.root.rglob("*.tmp"))
    return f"{result}\ntemporary files left: {len(leftovers)}"


def case_nan_pickle(w: World) -> str:
    import pickle

    array = np.ones((12, 8), np.float32)
    array[3, 5] = np.nan
    with open(w.emi / "wav2vec2" / "00011.pkl", "wb") as handle:
        pickle.dump(array, handle)
    return message(lambda: extract(make_extractor("provided", kind="wav2vec2"), read_hume(w.emi).split("valid"), w.store))


def case_float16_overflow(w: World) -> str:
    samples = read_hume(w.emi).split("valid")
    report = extract(make_extractor("provided", kind="wav2vec2"), samples, w.store)
    array, meta = w.store.load(make_extractor("provided", kind="wav2vec2"), report.digests["00010"])
    import pickle

    with open(w.emi / "wav2vec2" / "00010.pkl", "rb") as handle:
        original = pickle.load(handle)
    assert np.array_equal(np.asarray(array), original)
    return f"dtype {meta['dtype']}, max {float(np.abs(array).max()):.0f}, finite {bool(np.isfinite(array).all())}"


def case_both_provided_kinds(w: World) -> str:
    """Two feature sets of one extractor class (provided wav2vec2 and vit) once shared one
    digest table: one of them read the other's entries, or none."""
    import pickle

    from challenge.config import load_config
    from challenge.registry import get_track
    from challenge.run.prepare import extract_all
    from challenge.training.inputs import clip_features

    for number in range(16):  # each clip's vit array holds its own number, to catch a mix-up
        with open(_mkdir(w.emi / "vit") / f"{number:05d}.pkl", "wb") as handle:
            pickle.dump(np.full((5, 3), float(number), np.float32), handle)
    config = load_config(None, {"track": "emi", "data": str(w.emi), "features": ["provided-wav2vec2", "provided-vit"]}, get_track("emi"))
    valid = read_hume(w.emi).split("valid")
    store, extractors, digests, keys = extract_all(valid, config)
    data = clip_features(valid, extractors, store, digests)
    vit_means = sorted(float(data.sequence(i)[:, 8:].mean()) for i in range(len(data)))
    return f"keys {sorted(keys)}; dims {data.dims}; vit column means {vit_means}"


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def case_duplicate_filename(w: World) -> str:
    _rewrite(w.emi / "train_split.csv", lambda lines: lines + ["3,0.1,0.2,0.3,0.4,0.5,0.6"])
    return message(lambda: read_hume(w.emi))


def case_identical_duplicate(w: World, capsys) -> str:
    samples = read_hume(w.emi)
    return f"{samples.counts()}\n{capsys.readouterr().err}"


def case_clip_in_two_splits(w: World) -> str:
    _rewrite(w.emi / "valid_split.csv", lambda lines: lines + ["00002,0.1,0.2,0.3,0.4,0.5,0.6"])
    return message(lambda: read_hume(w.emi))


def case_missing_media(w: World) -> str:
    (w.emi / "raw" / "00011.mp4").unlink()
    (w.emi / "wav2vec2" / "00011.pkl").unlink()
    refused = cli("features", "extract", "--data", str(w.emi), "--track", "emi", "--extractor", "egemaps", "-q")
    skipped = cli("features", "extract", "--data", str(w.emi), "--track", "emi", "--extractor", "egemaps", "--skip-missing", "-q")
    return f"{refused}\n{skipped}"


def case_crops_past_annotation(w: World, capsys) -> str:
    samples = read_affwild(w.affwild, "expr")
    sample = next(s for s in samples if s.id == "118-30-640x480")
    return f"labels {len(sample.labels)}\n{capsys.readouterr().err}"


def case_annotation_longer_than_crops(w: World) -> str:
    for crop in sorted((w.affwild / "cropped_aligned" / "4-25-480x360_left").glob("*.jpg"))[-6:]:
        crop.unlink()
    sample = next(s for s in read_affwild(w.affwild, "va") if s.id == "4-25-480x360_left")
    return f"accepted: {len(sample.labels)} labels"


def case_frame_track_on_quirky_layout(w: World) -> str:
    from challenge.synthetic.stand_ins import tiny_mae

    model = tiny_mae(w.tmp / "mae")
    return cli(
        "track",
        "va",
        "--data",
        str(w.affwild),
        "--features",
        "mae,egemaps",
        "--visual-model",
        str(model),
        "--head",
        "lstm-frames",
        "--epochs",
        "2",
        "-q",
    )


def _expr_file(w: World) -> Path:
    return next(w.affwild.glob("5th_ABAW_Annotations/EXPR_Classification_Challenge/Train_Set/video_12.txt"))


def case_expr_not_integer(w: World) -> str:
    _rewrite(_expr_file(w), lambda lines: lines[:5] + ["2.5"] + lines[6:])
    return message(lambda: read_affwild(w.affwild, "expr"))


def case_header_names(w: World) -> str:
    path = next(w.affwild.glob("5th_ABAW_Annotations/VA_Estimation_Challenge/Train_Set/video_12.txt"))
    _rewrite(path, lambda lines: ["valence,arousel"] + lines[1:])
    return message(lambda: read_affwild(w.affwild, "va"))


def case_overlapping_segments(w: World) -> str:
    from tracks.smiles.labels import CLASSES, cut_clips

    recordings, _ = read_smiles_corpus(w.elan)
    annotation = recordings[0].annotations["coder1"]
    clip = next(c for c in cut_clips("rec0", annotation, 6.0, 1.2, 0.3) if abs(c.start - 2.7) < 1e-6)
    return f"clip 2.7-3.9 s: {CLASSES[clip.label]}; smiles {[(s.start, s.end, s.value) for s in annotation.smiles]}"


def case_past_media_end(w: World, capsys) -> str:
    recordings, _ = read_smiles_corpus(w.elan)
    laughs = recordings[0].annotations["coder1"].laughs
    return f"last laugh ends {laughs[-1].end:.2f} s\n{capsys.readouterr().err}"


def case_misspelled_role_tier(w: World) -> str:
    path = w.elan / "annotations" / "coder1" / "rec1.eaf"
    path.write_text(path.read_text().replace('TIER_ID="Speaker role"', 'TIER_ID="Speaker rle"'))
    return message(lambda: read_smiles_corpus(w.elan))


def case_split_without_eaf(w: World) -> str:
    (w.elan / "annotations" / "coder1" / "rec3.eaf").unlink()
    return message(lambda: read_smiles_corpus(w.elan))


def case_eaf_without_split(w: World) -> str:
    _rewrite(w.elan / "splits.csv", lambda lines: [line for line in lines if not line.startswith("rec2")])
    return message(lambda: read_smiles_corpus(w.elan))


def case_bom_crlf(w: World) -> str:
    raw = (w.emi / "train_split.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and b"\r\n" in raw
    return f"ids {[s.id for s in read_hume(w.emi).split('train')][:3]}"


def case_latin1(w: World) -> str:
    path = w.emi / "train_split.csv"
    path.write_bytes(path.read_bytes().replace(b"Empathic Pain", "Empathic Pain\u00e9".encode("latin-1")))
    return message(lambda: read_hume(w.emi))


def case_utf16(w: World) -> str:
    path = w.emi / "valid_split.csv"
    path.write_bytes(path.read_text(encoding="utf-8-sig").encode("utf-16"))
    return message(lambda: read_hume(w.emi))


def _affwild_submission(w: World) -> tuple[Path, Path, list[str]]:
    from tracks.affwild2.reader import LABELS, find_sample_file, read_test_names

    sample = find_sample_file(w.affwild, "expr")
    submission = w.tmp / "predictions.txt"
    shutil.copy(sample, submission)
    return submission, sample, read_test_names(w.affwild, LABELS["expr"])


def case_submission_duplicated_row(w: World) -> str:
    from submissions.affwild import validate_affwild

    submission, sample, names = _affwild_submission(w)
    _rewrite(submission, lambda lines: lines[:10] + [lines[9]] + lines[10:])
    return "\n".join(validate_affwild("expr", submission, sample, names))


def case_submission_trailing_blank(w: World) -> str:
    from submissions.affwild import validate_affwild
    from submissions.emi import validate_emi, write_emi

    submission, sample, names = _affwild_submission(w)
    submission.write_text(submission.read_text() + "\n\n")
    emi = write_emi(w.tmp / "emi.csv", ["00016", "00017"], np.full((2, 6), 0.5))
    emi.write_text(emi.read_text() + "\n")
    return f"affwild problems {validate_affwild('expr', submission, sample, names)}; emi problems {validate_emi(emi, ['00016', '00017'])}"


def case_checkpoint_not_a_model(w: World) -> str:
    from challenge.synthetic.stand_ins import tiny_wav2vec2

    model = tiny_wav2vec2(w.tmp / "broken")
    (model / "model.safetensors").write_bytes(b"this is not a tensor file" * 10)
    return message(lambda: make_extractor("wav2vec2", model=str(model)).build("cpu"))


class Payload:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def case_checkpoint_unsafe(w: World) -> str:
    import pickle

    from challenge.synthetic.stand_ins import tiny_wav2vec2

    model = tiny_wav2vec2(w.tmp / "unsafe")
    (model / "model.safetensors").unlink()
    (model / "pytorch_model.bin").write_bytes(pickle.dumps({"wav2vec2.masked_spec_embed": Payload()}))
    return message(lambda: make_extractor("wav2vec2", model=str(model)).build("cpu"))


KILLED_RUN = textwrap.dedent(
    """
    import os, signal, mlflow
    from challenge.stores import tracking
    experiment = tracking.setup(None, "emi")
    mlflow.start_run(experiment_id=experiment, run_name="doomed")
    mlflow.set_tags({"challenge.kind": "track", **tracking.process_tags()})
    print(mlflow.active_run().info.run_id, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


def case_killed_run(w: World) -> str:
    import mlflow

    from challenge.stores import tracking
    from challenge.stores.reports import best_runs

    done = subprocess.run(
        [sys.executable, "-c", KILLED_RUN], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    run_id = done.stdout.split()[0]
    before = mlflow.MlflowClient(os.environ["MLFLOW_TRACKING_URI"]).get_run(run_id).info.status
    tracking.setup(None, "emi")  # what the next command does first
    after = mlflow.MlflowClient().get_run(run_id).info.status
    listed = [row["state"] for row in best_runs("emi", None, every_state=True) if run_id.startswith(row["run"])]
    return f"before {before}, after {after}, runs --all shows {listed}"


def case_shuffled_control(w: World) -> str:
    out = cli("track", "emi", "--data", str(w.emi), "--features", "egemaps", "--head", "lightgbm", "--shuffle-labels", "-q")
    uploadable = [str(p) for p in (w.tmp / "submissions").rglob("predictions.*")]
    folders = [p.name for p in (w.tmp / "submissions" / "emi").iterdir()]
    return f"{out}\nuploadable files: {uploadable}; folders {folders}"


def case_unreachable_hub(w: World, monkeypatch) -> str:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from challenge.networks import sources as models

    models.hub_reachable.cache_clear()
    start = time.perf_counter()
    text = message(lambda: make_extractor("mae", model="hf:nobody/no-such-mae").build("cpu"))
    models.hub_reachable.cache_clear()
    return f"{text}\nafter {time.perf_counter() - start:.1f} s"


def case_demo_names_stand_ins(w: World) -> str:
    written = cli("demo-data", str(w.tmp / "demo"), "--track", "emi", "--train", "8", "--valid", "6", "--test", "2", "-q")
    assert written.startswith("exit 0"), written
    return cli("track", "emi", "--data", str(w.tmp / "demo"), "--tune", "--trials", "2", "--epochs", "2", "-q")


# ---- the held-out cases of the short-fixes issue --------------------------------------------
def case_bad_filename(w: World) -> str:
    out = []
    for name in ("", ".."):
        _rewrite(w.emi / "train_split.csv", lambda lines, name=name: [*lines, f"{name},0.1,0.2,0.3,0.4,0.5,0.6"])
        out.append(cli("track", "emi", "--data", str(w.emi), "--features", "egemaps", "--head", "ridge", "-q"))
        _rewrite(w.emi / "train_split.csv", lambda lines: lines[:-1])
    return "\n".join(out)


def case_empty_audio(w: World) -> str:
    import wave

    clip = "00002"  # a clip with its own audio file (quirky_hume writes one for even ids)
    with wave.open(str(w.emi / "audio" / f"{clip}.wav"), "wb") as handle:
        handle.setnchannels(1), handle.setsampwidth(2), handle.setframerate(16000)
        handle.writeframes(b"")
    samples = [s for s in read_hume(w.emi) if s.id == clip]
    return message(lambda: extract(make_extractor("egemaps"), samples, w.store))


def case_va_header_only(w: World) -> str:
    (path,) = [p for p in (w.affwild).rglob("VA_Estimation_Challenge/Train_Set/*.txt")][:1]
    path.write_text("valence,arousal\n")
    return cli("track", "va", "--data", str(w.affwild), "--features", "egemaps", "--head", "ridge", "-q")


def case_store_not_a_folder(w: World, monkeypatch) -> str:
    (w.tmp / "store-file").write_text("")
    monkeypatch.setenv("CHALLENGE_FEATURE_STORE", str(w.tmp / "store-file"))
    file_root = cli("features", "extract", "--data", str(w.emi), "--track", "emi", "--extractor", "egemaps", "-q")
    unwritable = cli(
        "features", "extract", "--data", str(w.emi), "--track", "emi", "--extractor", "egemaps", "--store", "/sys/challenge-store", "-q"
    )
    entry = w.entry_of("00011").with_suffix(".json")
    entry.write_text("null")
    monkeypatch.setenv("CHALLENGE_FEATURE_STORE", str(w.store.root))
    verified = cli("features", "verify", "-q")
    again = extract(make_extractor("egemaps"), [s for s in read_hume(w.emi) if s.id == "00011"], w.store)
    return f"{file_root}\n{unwritable}\n{verified}\nnull metadata, then extract: {counts(again)}"


def case_short_run_id(w: World) -> str:
    trained = cli("track", "emi", "--data", str(w.emi), "--features", "egemaps", "--head", "ridge", "-q")
    run_id = next((w.tmp / "submissions" / "emi").iterdir()).name
    short = cli("predict", run_id[:8], "--data", str(w.emi), "--out", str(w.tmp / "again"))
    unknown = cli("predict", "ffffffff", "--data", str(w.emi))
    return f"{trained.splitlines()[0]}\n{short}\n{unknown}"


def case_live_reference_without_out(w: World) -> str:
    start = time.perf_counter()
    text = cli("live", str(w.tmp / "video.mp4"), "--untrained", "--reference", str(w.tmp / "x.eaf"))
    return f"{text}\nafter {time.perf_counter() - start:.1f} s"


def case_sigint_during_tuning(w: World) -> str:
    command = [
        str(Path(sys.executable).parent / "challenge"),
        "track",
        "emi",
        "--data",
        str(w.emi),
        "--features",
        "egemaps",
        "--head",
        "lightgbm",
        "--tune",
        "--trials",
        "200",
    ]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "CHALLENGE_WARM": "0"}
    )
    deadline = time.monotonic() + 120
    lines = []
    while time.monotonic() < deadline:  # until the first trial is done: then one is running
        line = process.stderr.readline()
        lines.append(line)
        if "trial 1" in line or not line:
            break
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    err = "".join(lines) + err
    return f"exit {process.returncode}; traceback lines {err.count('Traceback')}\n{err[-400:]}"


def case_bad_store_urls(w: World) -> str:
    base = ["track", "emi", "--data", str(w.emi), "--features", "egemaps", "--head", "ridge", "-q"]
    out = [
        cli(*base, "--storage", "postgres://u@h/db"),
        cli(*base, "--storage", "notadb://x"),
        cli(*base, "--tracking-uri", "foo://bar"),
        cli(*base, "--device", "cuda"),
    ]
    (w.tmp / "train_split.csv").write_text("")
    out.append(cli(*base, "--out", str(w.tmp / "train_split.csv")))
    runs = sum(1 for _ in (w.tmp / "submissions").rglob("predictions.csv")) if (w.tmp / "submissions").exists() else 0
    return "\n".join(out) + f"\nruns written: {runs}"


def case_binary_label_file(w: World) -> str:
    (w.emi / "valid_split.csv").write_bytes(b"\x00\x01\x02\x03PK\x03\x04" + bytes(range(256)) * 4)
    return cli("track", "emi", "--data", str(w.emi), "--features", "egemaps", "-q")


# ---- the cases of the issue "what broke this round" (the server rows are in test_servers and test_live) ----
@contextmanager
def mounted(kind: str, target: Path, source: Path | None = None, size: str = "256k"):
    """A real read-only bind mount or a real small tmpfs (CI runs as root, as this machine does)."""
    target.mkdir(parents=True, exist_ok=True)
    if kind == "ro":
        subprocess.run(["mount", "--bind", str(source), str(target)], check=True)
        subprocess.run(["mount", "-o", "remount,bind,ro", str(target)], check=True)
    else:
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(target)], check=True)
    try:
        yield target
    finally:
        subprocess.run(["umount", "-l", str(target)], check=True)


def case_task_weight_nan(w: World) -> str:
    return "\n".join(
        cli("multitask", "--data", str(w.affwild), "--tasks", "expr,au", "--task-weights", weights, "-q") for weights in ("1,nan", "1,inf")
    )


def case_read_only_store_missing_entry(w: World) -> str:
    copy = w.tmp / "lab-store"  # a copy: the lab's read-only store misses an entry the world's store has
    shutil.copytree(w.store.root, copy)
    (copy / w.entry_of("00011").relative_to(w.store.root)).unlink()
    with mounted("ro", w.tmp / "ro-store", copy) as read_only:
        text = cli("features", "extract", "--data", str(w.emi), "--track", "emi", "--extractor", "egemaps", "--store", str(read_only), "-q")
    return text


def case_nul_bytes(w: World) -> str:
    path = w.emi / "valid_split.csv"
    path.write_bytes(b"\x00" * 16 + path.read_bytes())
    return message(lambda: read_hume(w.emi))


def case_checkpoint_on_full_disk(w: World) -> str:
    import torch

    from challenge.stores.atomic import write_atomically

    with mounted("tmpfs", w.tmp / "small", size="256k") as small:
        (small / "last.pt").write_bytes(b"the previous epoch")
        text = message(
            lambda: write_atomically(small / "last.pt", lambda h: torch.save({"w": torch.zeros(200_000)}, h), "training checkpoint")
        )
        left = sorted(p.name for p in small.iterdir())
        kept = (small / "last.pt").read_bytes()
    return f"{text}\nfiles left: {left}; previous kept: {kept == b'the previous epoch'}"


def case_out_read_only(w: World) -> str:
    (w.tmp / "ro-source").mkdir()
    with mounted("ro", w.tmp / "ro", w.tmp / "ro-source") as read_only:
        start = time.perf_counter()
        text = cli("track", "emi", "--data", str(w.emi), "--features", "egemaps", "--head", "ridge", "--out", str(read_only / "run"), "-q")
        return f"{text}\nafter {time.perf_counter() - start:.1f} s"


def case_out_is_a_file_for_every_command(w: World) -> str:
    taken = w.tmp / "taken.txt"
    taken.write_text("")
    return "\n".join(
        [
            cli("multitask", "--data", str(w.affwild), "--tasks", "expr,au", "--out", str(taken), "-q"),
            cli("predict", "0123abcd", "--data", str(w.emi), "--out", str(taken)),
            cli("ensemble", "emi", "--data", str(w.emi), "--features", "egemaps", "--out", str(taken), "-q"),
        ]
    )


def case_unreachable_tracking_server(w: World) -> str:
    start = time.perf_counter()
    text = cli(
        "track", "emi", "--data", str(w.emi), "--features", "egemaps", "--head", "ridge", "--tracking-uri", "http://127.0.0.1:1", "-q"
    )
    return f"{text}\nafter {time.perf_counter() - start:.1f} s"


def case_study_store_urls(w: World) -> str:
    base = ["track", "emi", "--data", str(w.emi), "--features", "egemaps", "--head", "ridge", "--tune", "--trials", "1", "-q"]
    (w.tmp / "afile").write_text("")
    out = [
        cli(*base, "--storage", "mysql://u@127.0.0.1/db"),
        cli(*base, "--storage", f"sqlite:///{w.tmp}/afile/x/studies.db"),
        cli(*base, "--storage", f"sqlite:///{w.tmp}/nonexistent-dir/studies.db"),
    ]
    return "\n".join(out) + f"\nfolder made: {(w.tmp / 'nonexistent-dir').exists()}"


HOLD_LOCK = textwrap.dedent(
    """
    import sqlite3, sys, time
    connection = sqlite3.connect(sys.argv[1])
    connection.execute("BEGIN IMMEDIATE")
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
    connection.execute("ROLLBACK")
    """
)


def case_tracking_store_locked(w: World, monkeypatch) -> str:
    from challenge.stores import checks, tracking

    database = w.tmp / "mlflow.db"
    tracking.setup(f"sqlite:///{database}", "emi")  # a store with its tables
    monkeypatch.setattr(checks, "LOCK_WAIT_SECONDS", 3)
    out = []
    for hold in (2, 30):  # released while the command waits; held past its wait
        holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(database), str(hold)], stdout=subprocess.PIPE, text=True)
        assert holder.stdout.readline().strip() == "held"
        checks._CHECKED.clear()
        start = time.perf_counter()
        text = message(lambda: checks.check_store(f"sqlite:///{database}", "--tracking-uri", "sqlite:///mlflow/mlflow.db"))
        out.append(f"held {hold} s: {text} after {time.perf_counter() - start:.0f} s")
        holder.kill()
        holder.wait()
    return "\n".join(out)


def case_damaged_databases(w: World) -> str:
    from challenge.stores import tracking

    database = w.tmp / "runs" / "mlflow.db"
    database.parent.mkdir()
    tracking.setup(f"sqlite:///{database}", "emi")
    data = database.read_bytes()
    database.write_bytes(data[: len(data) // 3])
    (w.tmp / "studies.db").write_text("not a database, a note someone saved here\n" * 100)
    base = ["track", "emi", "--data", str(w.emi), "--features", "egemaps", "--head", "ridge", "-q"]
    return "\n".join(
        [
            cli(*base, "--tracking-uri", f"sqlite:///{database}"),
            cli(
                *base,
                "--tune",
                "--trials",
                "1",
                "--storage",
                f"sqlite:///{w.tmp}/studies.db",
                "--tracking-uri",
                f"sqlite:///{w.tmp}/mlflow.db",
            ),
        ]
    )


def case_checkpoint_of_another_model(w: World) -> str:
    import torch

    from challenge.training.trainer import Trainer

    def trainer(model, checkpoint):
        return Trainer(
            model, {"epochs": 2, "learning_rate": 1e-3, "weight_decay": 0.0, "batch_size": 4, "patience": 5}, "cpu", checkpoint=checkpoint
        )

    checkpoint = w.tmp / "run" / "last.pt"
    other = trainer(torch.nn.Linear(7, 2), checkpoint)
    other._save({"epoch": 1, "best": 0.1, "best_state": None, "history": [], "stale": 0})
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
    return message(lambda: trainer(model, checkpoint).run(lambda: 0.0, lambda: 0.0))


def case_weights_file_damaged(w: World) -> str:
    import torch

    from challenge.networks.wav2vec2 import Wav2Vec2WithEmotionHead
    from challenge.synthetic.stand_ins import tiny_wav2vec2

    folder = tiny_wav2vec2(w.tmp / "w2v")
    state = Wav2Vec2WithEmotionHead.from_pretrained(folder).state_dict()
    wrong = dict(state)
    key = "wav2vec2.encoder.layers.0.attention.q_proj.weight"
    wrong[key.replace("q_proj", "k_proj")] = torch.zeros(3, 3)
    torch.save(wrong, w.tmp / "wrong-shape.pth")
    missing = {k: v for k, v in state.items() if "feed_forward" not in k}
    torch.save(missing, w.tmp / "missing.pth")
    return "\n".join(
        message(lambda name=name: make_extractor("wav2vec2", model=str(w.tmp / name)).build("cpu"))
        for name in ("wrong-shape.pth", "missing.pth")
    )


def case_asr_model_damaged(w: World) -> str:
    import pickle

    from challenge.features.speech_recognition import load_recogniser
    from tests.fixtures.tiny_whisper import tiny_whisper

    unsafe = tiny_whisper(w.tmp / "unsafe")
    (unsafe / "model.safetensors").unlink()
    (unsafe / "pytorch_model.bin").write_bytes(pickle.dumps({"x": Payload()}))
    truncated = tiny_whisper(w.tmp / "truncated")
    data = (truncated / "model.safetensors").read_bytes()
    (truncated / "model.safetensors").write_bytes(data[: len(data) // 2])
    return "\n".join(message(lambda folder=folder: load_recogniser(str(folder), "cpu", None)) for folder in (unsafe, truncated))


def case_head_json_truncated(w: World) -> str:
    trained = cli("track", "emi", "--data", str(w.emi), "--features", "egemaps", "--head", "ridge", "-q")
    assert trained.startswith("exit 0"), trained
    (head,) = [p for p in w.tmp.rglob("head.json") if "submissions" not in p.parts]  # the run's artifact, which predict reads
    head.write_text(head.read_text()[:20])
    run_id = next((w.tmp / "submissions" / "emi").iterdir()).name
    return cli("predict", run_id, "--data", str(w.emi), "--out", str(w.tmp / "again"))


def case_pretrain_patch_size(w: World) -> str:
    start = time.perf_counter()
    text = cli("pretrain", "mae", "--images", str(w.affwild / "cropped_aligned"), "--image-size", "32", "--patch-size", "7", "-q")
    return f"{text}\nafter {time.perf_counter() - start:.1f} s"


def case_transcription_killed_then_rerun(w: World) -> str:
    from challenge.features.speech_recognition import transcribe

    samples = [s for s in read_hume(w.emi) if s.audio is not None]
    out = w.tmp / "transcripts"
    out.mkdir()
    for sample in samples:
        (out / f"{sample.id}.txt").write_text("already there\n")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout.strip()
    (out / f".00004.txt.partial-{dead}").write_text("half a sent")
    report = transcribe(samples, "no-model-needed", out)
    return f"kept {len(report.kept)}; left: {sorted(p.name for p in out.iterdir() if p.name.startswith('.'))}"


def case_progress_in_a_log(w: World) -> str:
    command = [
        str(Path(sys.executable).parent / "challenge"),
        "track",
        "emi",
        "--data",
        str(w.emi),
        "--features",
        "egemaps",
        "--head",
        "lstm",
        "--epochs",
        "3",
    ]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=300, env={**os.environ, "CHALLENGE_LOG_EVERY": "0", "CHALLENGE_WARM": "0"}
    )
    lines = [line for line in (done.stdout + done.stderr).splitlines() if " elapsed" in line]
    return f"exit {done.returncode}; progress lines {len(lines) >= 3}:\n" + "\n".join(lines[:6])


@dataclass(frozen=True)
class Case:
    id: str
    run: Callable[..., str]
    expect: list[str]  # fragments the message must hold, in any order
    fixtures: tuple[str, ...] = ()


CASES = [
    Case(
        "1 new weights over the same model folder",
        case_model_rewritten_in_place,
        ["first computed 6, cached 0", "after new weights computed 6, cached 0"],
    ),
    Case("1 same model by relative and absolute path", case_model_relative_and_absolute, ["relative path: computed 0, cached 6"]),
    Case(
        "2 truncated entry",
        lambda w: _damaged_then_recomputed(w, _truncate),
        ["00011", "truncated", "key", "then extract: computed 1, cached 5"],
    ),
    Case(
        "2 entry with a bad header",
        lambda w: _damaged_then_recomputed(w, _bad_header),
        ["00011", "unreadable array header", "then extract: computed 1, cached 5"],
    ),
    Case(
        "2 entry whose shape disagrees with its metadata",
        lambda w: _damaged_then_recomputed(w, _wrong_shape),
        ["00011", "its metadata says", "then extract: computed 1, cached 5"],
    ),
    Case(
        "3 flipped bytes found by verify and repaired",
        case_flipped_bytes,
        ["exit 1", "1 damaged", "checksum differs", "00012", "repaired 1", "exit 0", "0 damaged"],
    ),
    Case("4 files honour the umask", case_umask, ["umask 0o22: files ['0o644'], folders ['0o755']"]),
    Case(
        "4 disk full",
        case_disk_full,
        ["no space left on the device", "Nothing was half-written", "temporary files left: 0"],
        ("monkeypatch",),
    ),
    Case("5 organisers' pickle with NaN", case_nan_pickle, ["00011.pkl: row 3 of 12 holds NaN or inf"]),
    Case("5 values float16 cannot hold", case_float16_overflow, ["dtype float32", "finite True"]),
    Case(
        "5 both organisers' feature sets in one run",
        case_both_provided_kinds,
        ["keys ['provided-vit', 'provided-wav2vec2']; dims [8, 3]; vit column means [10.0, 11.0, 12.0, 13.0, 14.0, 15.0]"],
    ),
    Case(
        "6 duplicate Filename with other values",
        case_duplicate_filename,
        ["train_split.csv", "clip 00003 again, with other intensities than on line 5"],
    ),
    Case(
        "6 identical duplicated row",
        case_identical_duplicate,
        ["'train': 10", "duplicated row(s) with identical values", "00000 repeats line 2"],
        ("capsys",),
    ),
    Case(
        "6 clip in two splits", case_clip_in_two_splits, ["listed in both splits", "00002: train_split.csv line 4 and valid_split.csv line"]
    ),
    Case(
        "6 missing media: the advice and the flag agree",
        case_missing_media,
        ["00011 (valid_split.csv)", "pass --skip-missing", "exit 0", "egemaps: 0 computed, 18 cached"],
    ),
    Case(
        "7 crops past the last annotation line",
        case_crops_past_annotation,
        ["labels 45", "4 crop(s) after the last annotated frame 00045", "ignored"],
        ("capsys",),
    ),
    Case("7 annotation longer than the crop folder", case_annotation_longer_than_crops, ["accepted: 36 labels"]),
    Case(
        "7 a frame track end to end on the ABAW5 layout",
        case_frame_track_on_quirky_layout,
        ["exit 0", "validation score (mean CCC", "predictions.txt (validated)"],
    ),
    Case(
        "7 EXPR value that is not an integer",
        case_expr_not_integer,
        ["video_12.txt", "line 6 (frame 00005): '2.5'; expected integers 0..7"],
    ),
    Case("7 header with a misspelled name", case_header_names, ["line 1: header 'valence,arousel' has 'arousel' where 'arousal' belongs"]),
    Case(
        "8 overlapping segments in a tier count once",
        case_overlapping_segments,
        ["clip 2.7-3.9 s: Laughs", "(2.0, 2.5, 'low'), (2.5, 3.2, 'high')"],
    ),
    Case(
        "8 annotation past the media's end",
        case_past_media_end,
        ["last laugh ends 6.00 s", "run past the media's end at 6.00 s (up to 7.50 s)"],
        ("capsys",),
    ),
    Case(
        "8 misspelled Role tier",
        case_misspelled_role_tier,
        ["rec1.eaf: tier 'Speaker rle' looks like a misspelling of the role tier 'Speaker role'"],
    ),
    Case("8 recording in splits.csv without an .eaf", case_split_without_eaf, ["rec3: in splits.csv, but no annotations/coder1/rec3.eaf"]),
    Case(
        "8 .eaf of a recording missing from splits.csv",
        case_eaf_without_split,
        ["rec2: annotations/coder1/rec2.eaf, but not in splits.csv"],
    ),
    Case("9 UTF-8 BOM and CRLF", case_bom_crlf, ["ids ['00000', '00001', '00002']"]),
    Case("9 Latin-1 byte", case_latin1, ["train_split.csv line 1: byte 0xe9 is not UTF-8", "iconv -f LATIN1"]),
    Case("9 UTF-16 file", case_utf16, ["valid_split.csv: saved as UTF-16", "iconv -f UTF-16"]),
    Case(
        "9 duplicated row in an Aff-Wild2 submission",
        case_submission_duplicated_row,
        ["duplicated frame (1)", "line 11: 7-30-320x240/00009.jpg already on line 10"],
    ),
    Case("9 trailing blank line in submissions", case_submission_trailing_blank, ["affwild problems []; emi problems []"]),
    Case("10 checkpoint that is not a model", case_checkpoint_not_a_model, ["broken: not a loadable Wav2Vec2WithEmotionHead checkpoint"]),
    Case(
        "10 pickled weights torch refuses",
        case_checkpoint_unsafe,
        ["unsafe: not a loadable Wav2Vec2WithEmotionHead checkpoint", "re-saved as safetensors"],
    ),
    Case("11 killed run marked KILLED on the next command", case_killed_run, ["before RUNNING, after KILLED, runs --all shows ['KILLED']"]),
    Case(
        "12 shuffled-label control writes nothing uploadable",
        case_shuffled_control,
        ["CONTROL RUN, shuffled labels", "uploadable files: []", "-CONTROL"],
    ),
    Case(
        "13 unreachable hub id fails at once",
        case_unreachable_hub,
        ["'nobody/no-such-mae': it is not in the local Hugging Face cache and HF_HUB_OFFLINE=1", "--visual-model /models/NAME"],
        ("monkeypatch",),
    ),
    Case(
        "13 the main job runs on demo data as printed",
        case_demo_names_stand_ins,
        ["exit 0", "selection score (validation", "mean Pearson", "(validated)"],
    ),
    Case(
        "14 EMI row with an empty Filename or ..", case_bad_filename, ["Filename '' is not a clip name", "Filename '..' is not a clip name"]
    ),
    Case("14 a 0-sample audio file", case_empty_audio, ["00002.wav: the audio stream holds no samples (0 s)", "--skip-missing"]),
    Case("14 a VA train annotation with only a header", case_va_header_only, ["only the header line, no frame is annotated"]),
    Case(
        "14 store is a file, cannot be written, metadata null",
        case_store_not_a_folder,
        [
            "store-file: the feature store is a folder, and this is a file",
            "/sys/challenge-store",
            "cannot be written there",
            "unreadable metadata (holds NoneType",
            "then extract: computed 1, cached 0",
        ],
        ("monkeypatch",),
    ),
    Case(
        "14 predict with the short id that runs prints",
        case_short_run_id,
        ["exit 0", "no retraining", "no run in", "has an id starting with it"],
    ),
    Case("14 live --reference without --out", case_live_reference_without_out, ["--reference scores the CSV of the readings: add --out"]),
    Case(
        "14 SIGINT during track --tune",
        case_sigint_during_tuning,
        ["exit 130; traceback lines 0", "interrupted: finished entries, trials and runs are kept"],
    ),
    Case(
        "14 bad store URLs, a missing GPU, --out a file",
        case_bad_store_urls,
        [
            "write postgresql://",
            "unknown kind of store 'notadb'",
            "--tracking-uri foo://bar: unknown kind of store 'foo'",
            "--device cuda: no CUDA GPU here",
            "a file is there; the run writes a folder",
            "runs written: 0",
        ],
    ),
    Case("14 a binary label file", case_binary_label_file, ["valid_split.csv: not a text file (binary data"]),
    Case(
        "15 --task-weights with nan or inf",
        case_task_weight_nan,
        ["--task-weights 1,nan: give one positive weight per task (finite)", "--task-weights 1,inf"],
    ),
    Case(
        "15 read-only store with an entry missing",
        case_read_only_store_missing_entry,
        ["cannot be written there", "CHALLENGE_FEATURE_STORE_SHARED"],
    ),
    Case(
        "15 label file starting with NUL bytes",
        case_nul_bytes,
        ["valid_split.csv: holds NUL bytes (the first at byte 0)", "Restore the file"],
    ),
    Case(
        "15 checkpoint on a full disk",
        case_checkpoint_on_full_disk,
        ["last.pt: the training checkpoint could not be written: no space left", "files left: ['last.pt']; previous kept: True"],
    ),
    Case("15 --out on a read-only folder", case_out_read_only, ["--out", "cannot be written (read-only file system", "after 0."]),
    Case(
        "15 --out a file for multitask, predict, ensemble",
        case_out_is_a_file_for_every_command,
        ["taken.txt: a file is there; the run writes a folder"],
    ),
    Case(
        "15 tracking server that does not answer",
        case_unreachable_tracking_server,
        ["--tracking-uri http://127.0.0.1:1 does not answer", "start the tracking server", "after 0."],
    ),
    Case(
        "15 study store: no driver, a file in the path, a missing folder",
        case_study_store_urls,
        [
            "mysql://u@127.0.0.1/db: the database driver for mysql is not installed",
            "pip install PyMySQL",
            "afile is a file, not a folder",
            "nonexistent-dir does not exist",
            "folder made: False",
        ],
    ),
    Case(
        "15 tracking store locked by another writer",
        case_tracking_store_locked,
        ["held 2 s: None after", "held 30 s: error: --tracking-uri", "stayed locked by another process for 3 s"],
        ("monkeypatch",),
    ),
    Case(
        "15 truncated mlflow.db, studies.db not a database",
        case_damaged_databases,
        [
            "mlflow.db is not a readable SQLite database (database disk image is malformed)",
            "mv ",
            "studies.db is not a readable SQLite database (file is not a database)",
        ],
    ),
    Case(
        "15 checkpoint of another model",
        case_checkpoint_of_another_model,
        ["last.pt: not a training checkpoint of this model", "Delete it"],
    ),
    Case(
        "15 weights file with a wrong shape, with tensors missing",
        case_weights_file_damaged,
        [
            "wrong-shape.pth: 1 tensor(s) of the wrong shape: wav2vec2.encoder.layers.0.attention.k_proj.weight (3, 3)",
            "missing.pth: the tensor",
            "feed_forward",
            "is missing from the file",
        ],
    ),
    Case(
        "15 ASR model: a code pickle, a truncated safetensors",
        case_asr_model_damaged,
        [
            "unsafe' cannot be loaded (its weights file is a pickle that holds more than tensors",
            "truncated' cannot be loaded (",
            "--asr-model",
        ],
    ),
    Case(
        "15 truncated head.json, then predict",
        case_head_json_truncated,
        ["head.json: the saved model's head is damaged", "retrain the run"],
    ),
    Case(
        "15 pretrain image size not a multiple of the patch",
        case_pretrain_patch_size,
        ["--image-size 32 is not a multiple of --patch-size 7", "Use --image-size 28 or 35", "after 0."],
    ),
    Case("15 transcription killed, then rerun", case_transcription_killed_then_rerun, ["left: []"]),
    Case("15 progress in a log file", case_progress_in_a_log, ["exit 0; progress lines True", "elapsed"]),
]


def _sound_entries(world: World) -> dict[Path, str]:
    return {entry.path: entry.meta["checksum"] for _, entry, problem in check_entries(world.store.entry_files()) if problem is None}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_case(case: Case, world: World, request):
    before = _sound_entries(world)
    extra = [request.getfixturevalue(name) for name in case.fixtures]
    text = case.run(world, *extra)
    if os.environ.get("HARDENING_MESSAGES"):  # the table of messages for a report
        with open(os.environ["HARDENING_MESSAGES"], "a") as handle:
            handle.write(json.dumps({"case": case.id, "text": text.replace(str(world.tmp), "<tmp>")}) + "\n")
    for fragment in case.expect:
        assert fragment in text, f"{fragment!r} not in:\n{text}"
    after = _sound_entries(world)
    lost = [str(path) for path, checksum in before.items() if after.get(path) != checksum]
    damaged_by_case = {"2 ", "3 "}  # rows that damage an entry on purpose (and get it recomputed)
    if case.id[:2] in damaged_by_case:
        assert len(lost) <= 1 and len(after) >= len(before), lost
    else:
        assert not lost, f"entries lost or changed: {lost}"
