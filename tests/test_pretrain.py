"""`challenge pretrain mae` on photographs that ship in scikit-image (not the demo's drawn
faces): nested folders of JPEG and PNG files of several sizes. The loss falls, the output is a
backbone the feature and fine-tuning loaders read, a SIGKILL during training is resumed by the
same command to the weights an uninterrupted run ends with, a facebookresearch/mae pretraining
`.pth` (encoder and decoder, DataParallel prefixes) loads tensor for tensor, and a damaged image
is named or, with --skip-missing, left out and counted."""

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

ROOT = Path(__file__).resolve().parents[1]
TINY = [
    "--image-size",
    "32",
    "--patch-size",
    "8",
    "--hidden-size",
    "32",
    "--layers",
    "2",
    "--heads",
    "2",
    "--decoder-hidden-size",
    "32",
    "--decoder-layers",
    "1",
    "--decoder-heads",
    "2",
    "--batch-size",
    "8",
    "--valid-items",
    "8",
]


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """80 crops of scikit-image's photographs: random squares and oblongs, as JPEG and PNG, in
    two levels of folders."""
    import skimage.data
    from PIL import Image

    root = tmp_path_factory.mktemp("photos")
    sources = [skimage.data.astronaut(), skimage.data.chelsea(), skimage.data.coffee(), np.stack([skimage.data.camera()] * 3, -1)]
    rng = np.random.default_rng(5)
    for k in range(80):
        image = sources[k % len(sources)]
        h, w = int(rng.integers(60, 200)), int(rng.integers(60, 200))
        y, x = int(rng.integers(0, image.shape[0] - h)), int(rng.integers(0, image.shape[1] - w))
        folder = root / f"person{k % 3}" / ("session-a" if k % 2 else "session-b")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image[y : y + h, x : x + w]).save(folder / f"{k:05d}.{'png' if k % 5 == 0 else 'jpg'}")
    return root


def _cli(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "challenge.app.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env or {**os.environ, "OMP_NUM_THREADS": "1"},
    )


def test_pretraining_lowers_the_loss_and_its_folder_is_a_backbone(photos, tmp_path):
    out = tmp_path / "mae"
    done = _cli(
        "pretrain",
        "mae",
        "--images",
        str(photos),
        "--out",
        str(out),
        *TINY,
        "--epochs",
        "4",
        "--epoch-steps",
        "10",
        "--learning-rate",
        "3e-3",
        "--workers",
        "2",
        "--tracking-uri",
        f"sqlite:///{tmp_path}/mlflow.db",
        "-q",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((out / "pretrain.json").read_text())
    assert summary["items"] == 72 and summary["valid_items"] == 8 and summary["steps"] == 40
    history = summary["history"]
    assert history[-1]["train_loss"] < history[0]["train_loss"] - 0.05  # norm_pix targets: a model that learns nothing stays near 1
    assert max(h["valid_score"] for h in history) > history[0]["valid_score"]
    assert not (out / "checkpoint.pt").exists()
    # MLflow: the loss curve, the held-out loss and a reconstruction grid per epoch
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    run = client.get_run(summary["run_id"])
    assert len(client.get_metric_history(run.info.run_id, "train_loss")) == 40
    assert len(client.get_metric_history(run.info.run_id, "valid_loss")) == 4
    grids = sorted((out / "reconstructions").glob("*.png"))
    from PIL import Image

    assert len(grids) == 4 and Image.open(grids[-1]).size == (4 * 32, 6 * 32)  # image | masked | reconstruction | pasted, 6 rows
    # the folder is what --visual-model takes: the extractor's and the fine-tuning loaders read its encoder
    from transformers import ViTMAEForPreTraining

    from challenge.finetune.backbones import load_backbone

    backbone = load_backbone("vit-mae", {"model": str(out)})
    saved = ViTMAEForPreTraining.from_pretrained(out).vit.state_dict()
    assert saved.keys() == backbone.network.state_dict().keys()
    for name, tensor in backbone.network.state_dict().items():
        assert torch.equal(tensor, saved[name]), name
    assert backbone(torch.zeros(2, 32, 32, 3, dtype=torch.uint8)).shape == (2, 32)
    # the same command again finds it finished; other settings with the same --out are refused
    again = _cli(
        "pretrain",
        "mae",
        "--images",
        str(photos),
        "--out",
        str(out),
        *TINY,
        "--epochs",
        "4",
        "--epoch-steps",
        "10",
        "--learning-rate",
        "3e-3",
        "--workers",
        "2",
        "--tracking-uri",
        f"sqlite:///{tmp_path}/mlflow.db",
    )
    assert again.returncode == 0 and "already pretrained" in " ".join((again.stdout + again.stderr).split())
    other = _cli("pretrain", "mae", "--images", str(photos), "--out", str(out), *TINY, "--epochs", "5")
    assert other.returncode == 2 and "other settings" in other.stderr and "epochs" in other.stderr


def _epoch_of(checkpoint: Path) -> int:
    try:
        return int(torch.load(checkpoint, map_location="cpu", weights_only=True)["epoch"])
    except Exception:  # noqa: BLE001 - not written yet, or being replaced
        return 0


def test_sigkill_then_the_same_command_ends_where_an_uninterrupted_run_ends(photos, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = lambda out: [
        sys.executable,
        "-m",
        "challenge.app.cli",
        "pretrain",
        "mae",
        "--images",
        str(photos),
        "--out",
        str(out),
        *TINY,  # noqa: E731
        "--epochs",
        "10",  # 8 epochs of margin after the kill point: on an idle machine 6 could end before the test saw epoch 2
        "--epoch-steps",
        "6",
        "--workers",
        "2",
        "--tracking-uri",
        f"sqlite:///{tmp_path}/mlflow.db",
        "-q",
    ]
    killed = subprocess.Popen(
        command(tmp_path / "a"), env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 240
    while _epoch_of(tmp_path / "a" / "checkpoint.pt") < 2:
        assert killed.poll() is None, "the pretraining ended before it could be killed"
        assert time.time() < deadline
        time.sleep(0.01)
    os.killpg(killed.pid, signal.SIGKILL)  # the DataLoader workers too
    killed.wait()
    interrupted_at = _epoch_of(tmp_path / "a" / "checkpoint.pt")
    assert 2 <= interrupted_at < 10 and not (tmp_path / "a" / "pretrain.json").exists()
    first_run = (tmp_path / "a" / "mlflow_run_id").read_text()
    resumed = subprocess.run(command(tmp_path / "a")[:-1], env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    text = " ".join((resumed.stdout + resumed.stderr).split())
    assert f"after epoch {interrupted_at}" in text and f"MLflow run {first_run}" in text  # the killed run's MLflow run goes on
    whole = subprocess.run(command(tmp_path / "b"), env=env, capture_output=True, text=True, timeout=300)
    assert whole.returncode == 0, whole.stderr[-3000:]
    from safetensors.torch import load_file

    a, b = load_file(tmp_path / "a" / "model.safetensors"), load_file(tmp_path / "b" / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-6), key
    history = lambda out: [h["train_loss"] for h in json.loads((out / "pretrain.json").read_text())["history"]]  # noqa: E731
    assert np.allclose(history(tmp_path / "a"), history(tmp_path / "b"), atol=1e-6)


def _timm_layout(model) -> dict:
    """A ViTMAEForPreTraining's tensors under facebookresearch/mae's names (models_mae.py),
    written here from that repository's layout, apart from the project's converter."""
    state, out = model.state_dict(), {}
    rename = {
        "vit.embeddings.cls_token": "cls_token",
        "vit.embeddings.position_embeddings": "pos_embed",
        "vit.embeddings.patch_embeddings.projection.weight": "patch_embed.proj.weight",
        "vit.embeddings.patch_embeddings.projection.bias": "patch_embed.proj.bias",
        "vit.layernorm.weight": "norm.weight",
        "vit.layernorm.bias": "norm.bias",
        "decoder.mask_token": "mask_token",
        "decoder.decoder_pos_embed": "decoder_pos_embed",
    }
    for name, tensor in state.items():
        if name in rename:
            out[rename[name]] = tensor
        elif name.startswith("decoder.") and ".decoder_layers." not in name:
            out[name.removeprefix("decoder.")] = tensor  # decoder_embed, decoder_norm, decoder_pred
    for prefix, theirs, depth in (
        ("vit.layers.", "blocks.", model.config.num_hidden_layers),
        ("decoder.decoder_layers.", "decoder_blocks.", model.config.decoder_num_hidden_layers),
    ):
        for i in range(depth):
            ours, block = f"{prefix}{i}.", f"{theirs}{i}."
            for kind in ("weight", "bias"):
                out[f"{block}attn.qkv.{kind}"] = torch.cat([state[f"{ours}attention.{p}_proj.{kind}"] for p in "qkv"])
                for mine, timm in (
                    ("attention.o_proj", "attn.proj"),
                    ("layernorm_before", "norm1"),
                    ("layernorm_after", "norm2"),
                    ("mlp.fc1", "mlp.fc1"),
                    ("mlp.fc2", "mlp.fc2"),
                ):
                    out[f"{block}{timm}.{kind}"] = state[f"{ours}{mine}.{kind}"]
    return out


def test_a_facebookresearch_mae_pretraining_file_loads_encoder_and_decoder(tmp_path):
    from transformers import ViTMAEConfig, ViTMAEForPreTraining

    from challenge.pretrain.mae import build_mae
    from challenge.pretrain.settings import MAEPretrainSettings

    torch.manual_seed(3)
    reference = ViTMAEForPreTraining(
        ViTMAEConfig(
            image_size=32,
            patch_size=8,
            hidden_size=48,
            num_hidden_layers=2,
            num_attention_heads=3,
            intermediate_size=96,
            decoder_hidden_size=24,
            decoder_num_hidden_layers=2,
            decoder_num_attention_heads=2,
            decoder_intermediate_size=40,
            layer_norm_eps=1e-6,
        )
    )
    path = tmp_path / "mae_pretrain.pth"
    torch.save({"model": {f"module.{k}": v for k, v in _timm_layout(reference).items()}, "epoch": 799}, path)
    model, _, origin = build_mae(MAEPretrainSettings(init=str(path), heads=3, decoder_heads=2))
    assert "decoder from the file" in origin and "width 48, depth 2" in origin
    ours, theirs = model.state_dict(), reference.state_dict()
    assert ours.keys() == theirs.keys()
    for key in theirs:
        assert torch.equal(ours[key], theirs[key]), key
    pixels, noise = torch.randn(2, 3, 32, 32), torch.rand(2, 16)
    model.eval(), reference.eval()
    assert torch.allclose(model(pixel_values=pixels, noise=noise).logits, reference(pixel_values=pixels, noise=noise).logits, atol=1e-5)
    # an encoder-only file (a fine-tuned MAE) starts a new decoder, and says so
    encoder_only = {k: v for k, v in _timm_layout(reference).items() if not k.startswith(("decoder", "mask_token"))}
    torch.save(encoder_only, tmp_path / "encoder.pth")
    model, _, origin = build_mae(
        MAEPretrainSettings(init=str(tmp_path / "encoder.pth"), heads=3, decoder_hidden_size=24, decoder_layers=1, decoder_heads=2)
    )
    assert "decoder new, at random" in origin
    assert torch.equal(model.vit.embeddings.position_embeddings, reference.vit.embeddings.position_embeddings)


def test_a_damaged_image_is_named_or_left_out_and_counted(photos, tmp_path):
    import shutil

    corpus = tmp_path / "faces"
    shutil.copytree(photos, corpus)
    damaged = corpus / "person1" / "session-a" / "broken.jpg"
    damaged.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    args = [
        "pretrain",
        "mae",
        "--images",
        str(corpus),
        *TINY,
        "--epochs",
        "1",
        "--epoch-steps",
        "0",
        "--valid-items",
        "0",
        "--workers",
        "0",
        "--tracking-uri",
        f"sqlite:///{tmp_path}/mlflow.db",
    ]
    refused = _cli(*args, "--out", str(tmp_path / "a"))
    assert refused.returncode == 2 and "broken.jpg: unreadable image" in refused.stderr and "--skip-missing" in refused.stderr
    assert not (tmp_path / "a" / "pretrain.json").exists() and not (tmp_path / "a" / "model.safetensors").exists()
    kept = _cli(*args, "--out", str(tmp_path / "b"), "--skip-missing")
    assert kept.returncode == 0, kept.stderr[-3000:]
    summary = json.loads((tmp_path / "b" / "pretrain.json").read_text())
    assert summary["items"] == 81 and summary["skipped"] == 1 and "1 unreadable left out" in " ".join(kept.stdout.split())
    missing = _cli("pretrain", "mae", "--images", str(tmp_path / "nowhere"), "--out", str(tmp_path / "c"))
    assert missing.returncode == 2 and "nowhere: no such folder of images" in missing.stderr


def test_torchrun_pretrains_on_two_gloo_ranks_and_rank_zero_alone_records(photos, tmp_path):
    """`torchrun -m challenge.app.cli pretrain mae` (the fine-tuning launch): both ranks train on
    their shares of each batch; one MLflow run, one finished folder, one summary line."""
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
        "pretrain",
        "mae",
        "--images",
        str(photos),
        "--out",
        str(tmp_path / "mae"),
        *TINY,
        "--epochs",
        "2",
        "--epoch-steps",
        "3",
        "--workers",
        "0",
        "--device",
        "cpu",
        "--tracking-uri",
        uri,
    ]
    process = subprocess.Popen(
        command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        out, err = process.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        raise
    assert process.returncode == 0, out[-2000:] + err[-3000:]
    assert " ".join(out.split()).count("pretrained on 72 images, 6 steps") == 1  # rank 0 speaks for both
    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert len(runs) == 1 and runs[0].data.tags["model"] == "mae"
    summary = json.loads((tmp_path / "mae" / "pretrain.json").read_text())
    assert summary["steps"] == 6 and summary["run_id"] == runs[0].info.run_id


def test_pretraining_settings_come_from_one_loader_and_name_what_is_wrong(tmp_path):
    """Both pretraining commands read --config (top level or `pretrain:`) through config.load_settings."""
    from typer.testing import CliRunner

    from challenge.app.cli import app
    from challenge.config import load_settings
    from challenge.pretrain.settings import MAEPretrainSettings, SocialMAEPretrainSettings

    settings = tmp_path / "pretrain.yaml"
    settings.write_text("pretrain:\n  epochs: 3\n  batch_size: 8\n")
    loaded = load_settings(MAEPretrainSettings, settings, {"batch_size": 4}, "pretrain", "pretraining settings")
    assert (loaded.epochs, loaded.batch_size) == (3, 4)  # the flag wins over the file
    settings.write_text("epochs: 0\n")
    for command, schema in (("mae", MAEPretrainSettings), ("social-mae", SocialMAEPretrainSettings)):
        result = CliRunner().invoke(app, ["pretrain", command, "--videos", str(tmp_path), "--config", str(settings)])
        assert result.exit_code != 0 and str(result.exception).startswith("pretraining settings: epochs: "), result.exception
        result = CliRunner().invoke(app, ["pretrain", command, "--videos", str(tmp_path), "--config", str(tmp_path / "nope.yaml")])
        assert "nope.yaml: no such settings file (--config)." in str(result.exception)
