"""Fine-tuning: the training engine (schedule, layer-wise rates, freezing, accumulation), the
end-to-end heads on corpora written apart from the demo (tests/fixtures/quirky.py), a real
SIGKILL and resume, two gloo ranks against one process, and the CLI from --finetune to a
backbone folder that the feature store extracts and `challenge predict` reuses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.fixtures.quirky import quirky_hume

CHILD = Path(__file__).parent / "fixtures" / "finetune_child.py"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def hume(tmp_path_factory):
    root = tmp_path_factory.mktemp("hume")
    quirky_hume(root / "data", train=24, valid=16, test=3, seed=11)
    return root


@pytest.fixture(scope="module")
def still_wav2vec2(tmp_path_factory):
    """A tiny random wav2vec2 without any randomness in training (no dropout, LayerDrop or
    SpecAugment), so runs can be compared weight for weight."""
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    folder = tmp_path_factory.mktemp("w2v") / "still"
    torch.manual_seed(0)
    config = Wav2Vec2Config(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        conv_dim=(32,) * 7,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        hidden_dropout=0.0,
        attention_dropout=0.0,
        activation_dropout=0.0,
        feat_proj_dropout=0.0,
        layerdrop=0.0,
        mask_time_prob=0.0,
    )
    Wav2Vec2Model(config).save_pretrained(folder)
    return folder


def test_warm_up_then_cosine_by_hand():
    from challenge.training.trainer import warmup_cosine

    factor = warmup_cosine(total_steps=10, warmup=0.2, schedule="cosine")  # 2 warm-up steps
    assert [round(factor(s), 6) for s in (0, 1, 2, 6, 10)] == [round(1 / 3, 6), round(2 / 3, 6), 1.0, 0.5, 0.0]
    assert warmup_cosine(10, 0.0, "constant")(7) == 1.0


def test_layer_wise_rates_and_frozen_blocks(tmp_path):
    from challenge.finetune.backbones import load_backbone
    from challenge.synthetic.stand_ins import tiny_wav2vec2

    backbone = load_backbone("wav2vec2", {"model": str(tiny_wav2vec2(tmp_path / "w", layers=3))})
    rates = {g["layer"]: g["lr"] for g in backbone.parameter_groups(1e-3, 0.5)}
    assert rates[3] == pytest.approx(1e-3) and rates[1] == pytest.approx(2.5e-4) and rates[0] == pytest.approx(1.25e-4)
    backbone.freeze(trainable_blocks=1, freeze_feature_encoder=True)
    trainable = {n for n, p in backbone.network.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("encoder.layers.2.") for n in trainable)
    assert not any(p.requires_grad for p in backbone.network.feature_extractor.parameters())
    # the run's `layer` keeps the first blocks only: fine-tuning starts from the features read there
    assert load_backbone("wav2vec2", {"model": str(tmp_path / "w")}, layer=2).depth == 2


def test_vit_blocks_get_their_own_rates_and_freeze(tmp_path):
    from challenge.finetune.backbones import load_backbone
    from challenge.synthetic.stand_ins import tiny_mae

    backbone = load_backbone("vit-mae", {"model": str(tiny_mae(tmp_path / "m"))})  # 2 blocks
    rates = {g["layer"]: g["lr"] for g in backbone.parameter_groups(1e-3, 0.5)}
    assert sorted(rates) == [0, 1, 2, 3]  # embeddings, block 0, block 1, final norm
    assert rates[2] == pytest.approx(1e-3) and rates[1] == pytest.approx(5e-4) and rates[0] == pytest.approx(2.5e-4)
    backbone.freeze(trainable_blocks=1, freeze_feature_encoder=False)
    trainable = {n.split(".")[0] + "." + n.split(".")[1] for n, p in backbone.network.named_parameters() if p.requires_grad}
    assert trainable == {"layers.1", "layernorm.weight", "layernorm.bias"}


def test_gradient_accumulation_equals_the_whole_batch():
    from challenge.training.trainer import Trainer

    x, y = torch.randn(8, 5), torch.randn(8, 2)
    params = {"learning_rate": 0.05, "weight_decay": 0.0, "epochs": 1}
    weights = []
    for accumulate, parts in ((1, [slice(0, 8)]), (2, [slice(0, 4), slice(4, 8)])):
        torch.manual_seed(0)
        model = torch.nn.Linear(5, 2)
        trainer = Trainer(model, params | {"accumulate": accumulate}, "cpu", steps_per_epoch=len(parts))
        for part in parts:
            trainer.step(torch.nn.functional.mse_loss(model(x[part]), y[part]))
        weights.append(model.weight.detach().clone())
    assert torch.allclose(weights[0], weights[1], atol=1e-6)
    assert not torch.allclose(weights[0], torch.nn.Linear(5, 2).weight)  # a step was taken


def _fit(head_name: str, train, valid, problem, n_outputs: int, score, params: dict, seed: int = 0):
    from challenge.heads import get_head

    head_cls = get_head(head_name)
    head = head_cls(head_cls.default_parameters() | params, problem, n_outputs, seed=seed)
    return head.fit(train, valid, score), head


def test_finetuned_wav2vec2_beats_shuffled_labels(hume):
    """On pitch-coded intensities (quirky_hume: the voice's pitch follows the level), the
    fine-tuned tiny wav2vec2 + LSTM beats the mean of three shuffled-label controls."""
    from challenge.finetune.loaders import waveform_clips
    from challenge.metrics import mean_pearson
    from challenge.synthetic.stand_ins import tiny_wav2vec2
    from challenge.track import Problem
    from challenge.training.control import shuffled
    from tracks.hume.reader import read_hume

    samples = read_hume(hume / "data")
    train, valid = waveform_clips(samples.split("train")), waveform_clips(samples.split("valid"))
    model = tiny_wav2vec2(hume / "tiny", hidden=32)
    params = {"epochs": 8, "patience": 8, "batch_size": 4, "window_seconds": 1.5, "backbone": {"model": str(model)}}
    score = lambda t, o: mean_pearson(t, o)[0]  # noqa: E731
    value, head = _fit("wav2vec2-lstm", train, valid, Problem.CLIP_REGRESSION, 6, score, params)
    controls = []
    for k in range(3):
        control = waveform_clips(samples.split("train"))
        control.targets = shuffled(control.targets, k)
        controls.append(_fit("wav2vec2-lstm", control, valid, Problem.CLIP_REGRESSION, 6, score, params)[0])
    print(f"fine-tuned {value:.4f}, shuffled {np.mean(controls):.4f} ± {np.std(controls):.4f}")
    assert value > np.mean(controls) + 0.1
    assert score(valid.targets, head.predict(valid)) == pytest.approx(value, abs=1e-5)  # the best epoch's weights are the model's


def _epoch_of(checkpoint: Path) -> int:
    try:
        return int(torch.load(checkpoint, weights_only=True)["epoch"])
    except Exception:  # noqa: BLE001 - not written yet, or being replaced
        return -1


def test_sigkill_then_the_same_command_ends_with_the_uninterrupted_weights(hume, tmp_path):
    from challenge.synthetic.stand_ins import tiny_wav2vec2

    model = str(tiny_wav2vec2(tmp_path / "w2v", hidden=32))  # dropout and SpecAugment on: their RNG state is checkpointed too
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    epochs = "6"
    run = lambda checkpoint, out: [sys.executable, str(CHILD), "fit", str(hume / "data"), model, str(checkpoint), str(out), epochs]  # noqa: E731
    killed = subprocess.Popen(run(tmp_path / "a" / "last.pt", tmp_path / "a.pt"), env=env)
    deadline = time.time() + 240
    while _epoch_of(tmp_path / "a" / "last.pt") < 2:
        assert killed.poll() is None, "the training ended before it could be killed"
        assert time.time() < deadline
        time.sleep(0.02)
    killed.send_signal(signal.SIGKILL)
    assert killed.wait() == -signal.SIGKILL
    interrupted_at = _epoch_of(tmp_path / "a" / "last.pt")
    assert 2 <= interrupted_at < int(epochs)
    resumed = subprocess.run(run(tmp_path / "a" / "last.pt", tmp_path / "a.pt"), env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"after epoch {interrupted_at}" in " ".join((resumed.stdout + resumed.stderr).split())  # the console wraps lines
    assert not (tmp_path / "a" / "last.pt").exists()  # a finished training leaves no checkpoint behind
    whole = subprocess.run(run(tmp_path / "b" / "last.pt", tmp_path / "b.pt"), env=env, capture_output=True, text=True, timeout=300)
    assert whole.returncode == 0, whole.stderr[-3000:]
    a, b = torch.load(tmp_path / "a.pt", weights_only=True), torch.load(tmp_path / "b.pt", weights_only=True)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-6), key


def _run_group(command: list[str], env: dict, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run torchrun in its own process group: on a timeout its ranks are killed with it."""
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise
    return subprocess.CompletedProcess(command, process.returncode, out, err)


def test_two_gloo_ranks_hold_equal_weights_and_match_one_process(hume, still_wav2vec2, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    args = lambda name: ["ddp", str(hume / "data"), str(still_wav2vec2), str(tmp_path / f"{name}.pt"), str(tmp_path / f"{name}.steps")]  # noqa: E731
    two = _run_group(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(CHILD), *args("two")], env
    )
    assert two.returncode == 0, two.stderr[-3000:]
    one = subprocess.run([sys.executable, str(CHILD), *args("one")], env=env, capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr[-3000:]
    differences = [float(d) for d in (tmp_path / "two.steps").read_text().split()]
    assert len(differences) == 12 and max(differences) == 0.0  # 24 clips, global batch 4, 2 epochs: every step, identical ranks
    a, b = torch.load(tmp_path / "two.pt", weights_only=True), torch.load(tmp_path / "one.pt", weights_only=True)
    moved = torch.load(tmp_path / "two.pt", weights_only=True)
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-5), key
    assert any(k.startswith("head.") for k in moved)


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "challenge"), *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=cwd,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return result


def test_finetune_command_logs_a_backbone_the_store_extracts_and_predict_reuses(hume, tmp_path):
    """`challenge track emi --finetune`: a validated submission, the baseline beside the score,
    the fine-tuned backbone as a save_pretrained folder; given back as --audio-model it is
    extracted under its own key; `challenge predict RUN_ID` writes the run's own predictions."""
    from challenge.synthetic.stand_ins import tiny_wav2vec2

    model = tiny_wav2vec2(tmp_path / "w2v", hidden=32)
    common = ["--data", str(hume / "data"), "--store", str(tmp_path / "store"), "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db"]
    done = _cli(
        "track", "emi", "--finetune", "--audio-model", str(model), "--epochs", "2", "--finetune-batch-size", "4", *common, cwd=tmp_path
    )
    text = " ".join(done.stdout.split())
    assert "linear baseline (ridge, same split and features)" in text and "(validated)" in text
    run_id = text.split("MLflow run ")[1].split(";")[0]
    run_folder = tmp_path / "submissions" / "emi" / run_id
    backbone = run_folder / "backbone"
    assert (backbone / "config.json").is_file() and (backbone / "model.safetensors").is_file()
    params = json.loads((run_folder / "best_params.json").read_text())["params"]
    assert params["backbone"]["model"] == str(model) and params["batch_size"] == 4 and params["epochs"] == 2

    reused = _cli("track", "emi", "--head", "ridge", "--audio-model", str(backbone), *common, cwd=tmp_path)
    assert "wav2vec2: computed 43" in " ".join(
        (reused.stdout + reused.stderr).split()
    )  # new features, under the backbone's own content digest
    predicted = _cli(
        "predict",
        run_id,
        "--data",
        str(hume / "data"),
        "--store",
        str(tmp_path / "store"),
        "--tracking-uri",
        f"sqlite:///{tmp_path}/mlflow.db",
        cwd=tmp_path,
    )
    assert "no retraining" in predicted.stdout
    import pandas as pd

    own = pd.read_csv(run_folder / "predictions.csv")
    again = pd.read_csv(tmp_path / "submissions" / "emi" / f"{run_id}-predicted" / "predictions.csv")
    assert own.columns.tolist() == again.columns.tolist()
    np.testing.assert_allclose(own.iloc[:, 1:].to_numpy(), again.iloc[:, 1:].to_numpy(), atol=1e-5)


def test_finetune_a_vit_on_aff_wild2_frames_with_the_quirks(tmp_path):
    """EXPR with --finetune on the ABAW5-layout corpus of tests/fixtures/quirky.py (first frames
    without a crop, 25 and 30 fps, a _left/_right pair): the tiny ViT reads the crop folders at
    its own input size; the submission has one row per frame of the sample file."""
    from challenge.synthetic.stand_ins import tiny_mae
    from tests.fixtures.quirky import quirky_affwild

    facts = quirky_affwild(tmp_path / "affwild")
    model = tiny_mae(tmp_path / "mae", image_size=32)
    done = _cli(
        "track",
        "expr",
        "--data",
        str(tmp_path / "affwild"),
        "--head",
        "vit-frames",
        "--visual-model",
        str(model),
        "--epochs",
        "2",
        "--store",
        str(tmp_path / "store"),
        "--tracking-uri",
        f"sqlite:///{tmp_path}/mlflow.db",
        cwd=tmp_path,
    )
    text = " ".join(done.stdout.split())
    assert "(validated)" in text and "linear baseline (logistic" in text
    run_id = text.split("MLflow run ")[1].split(";")[0]
    submission = next((tmp_path / "submissions" / "expr" / run_id).glob("*.txt"))
    rows = submission.read_text().splitlines()
    assert len(rows) == 1 + sum(facts["videos"][v][1] for v in ("7-30-320x240", "3-25-320x240"))
    assert (tmp_path / "submissions" / "expr" / run_id / "backbone" / "config.json").is_file()


def test_torchrun_runs_the_finetune_command_and_rank_zero_alone_records(hume, still_wav2vec2, tmp_path):
    """The README's torchrun command on two gloo ranks: it finishes, and there is one MLflow
    run, one submission folder and one backbone: the other rank trained without writing."""
    import mlflow

    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "challenge.app.cli",
        "track",
        "emi",
        "--finetune",
        "--audio-model",
        str(still_wav2vec2),
        "--epochs",
        "1",
        "--finetune-batch-size",
        "4",
        "--data",
        str(hume / "data"),
        "--store",
        str(tmp_path / "store"),
        "--tracking-uri",
        uri,
    ]
    process = subprocess.Popen(
        command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        out, err = process.communicate(timeout=400)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        raise
    assert process.returncode == 0, out[-2000:] + err[-3000:]
    assert out.count("(validated)") == 1  # rank 0's summary only
    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert len(runs) == 1 and runs[0].data.tags["head"] == "wav2vec2-lstm"
    folders = list((tmp_path / "submissions" / "emi").iterdir())
    assert len(folders) == 1 and (folders[0] / "backbone" / "config.json").is_file()


def test_a_single_weights_file_backbone_says_what_it_became_and_a_bad_crop_recipe_is_named(tmp_path):
    """A team's wav2vec2 saved with torch.save (DataParallel prefix) is a fine-tuning backbone
    too; what the file became is kept for the run's backbone_conversion.txt. A crop recipe with
    an unknown setting is refused by name."""
    from transformers import Wav2Vec2Model

    from challenge.errors import ChallengeError
    from challenge.finetune.backbones import load_backbone
    from challenge.heads import get_head
    from challenge.synthetic.stand_ins import tiny_wav2vec2
    from challenge.track import Problem

    folder = tiny_wav2vec2(tmp_path / "w2v", hidden=32)
    state = {f"module.{k}": v for k, v in Wav2Vec2Model.from_pretrained(folder).state_dict().items()}
    torch.save({"model": state, "epoch": 3}, tmp_path / "team.pth")
    backbone = load_backbone("wav2vec2", {"model": str(tmp_path / "team.pth"), "heads": 2})
    reference = load_backbone("wav2vec2", {"model": str(folder)})
    assert backbone.conversion.startswith(str(tmp_path / "team.pth")) and reference.conversion is None
    x = torch.randn(1, 8000)
    with torch.no_grad():
        torch.testing.assert_close(backbone.eval()(x), reference.eval()(x), rtol=1e-5, atol=1e-5)
    with pytest.raises(ChallengeError, match=r"no setting\(s\) \['margn'\]"):
        get_head("cnn-gru")({"crop": {"margn": 0.3}}, Problem.FRAME_CLASSIFICATION, 4).crop_recipe()


def test_smile_intensity_faces_are_each_frames_detected_face_not_the_whole_scene(tmp_path):
    """smile-intensity's face loader for vit-frames: its videos are scenes, so each frame gives
    the largest face CenterFace finds (a real photograph of Grace Hopper placed off-centre in a
    wide frame), and a frame without a face the centred square; the Aff-Wild2 loader, given the
    same video, resizes the whole frame."""
    from PIL import Image

    from challenge.data.samples import Sample, Samples
    from challenge.finetune.loaders import detected_face_frames, face_frames
    from tests.fixtures.face_video import photographs
    from tests.fixtures.quirky import write_mp4

    patch, _ = photographs()["grace"]
    scene = Image.new("RGB", (640, 400), (30, 90, 30))
    scene.paste(Image.fromarray(np.ascontiguousarray(patch)).resize((165, 200)), (440, 150))
    write_mp4(tmp_path / "scene.mp4", [scene] * 3 + [Image.new("RGB", (640, 400), (30, 90, 30))] * 2, 5)
    samples = Samples([Sample("scene", "train", video=tmp_path / "scene.mp4", labels=np.zeros((5, 1)))])
    faces = detected_face_frames(samples, {"scene": 5}, size=64).video(0)
    whole = face_frames(samples, {"scene": 5}, size=64).video(0)
    assert faces.shape == whole.shape == (5, 64, 64, 3)

    def background(image) -> float:  # the share of the scene's green in an image
        rgb = np.asarray(image, np.int32)
        return float(((rgb[..., 1] > rgb[..., 0] + 30) & (rgb[..., 1] > rgb[..., 2] + 30)).mean())

    assert background(whole[0]) > 0.8 and background(faces[0]) < 0.05  # the face, cut with its margin, fills the crop
    assert background(faces[4]) > 0.95  # no face: the centred square of the empty frame
