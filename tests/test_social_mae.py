"""Social-MAE: an authors'-layout checkpoint (CAV-MAE names, DataParallel prefixes, 3-D tubelet
patches or CAV-MAE's 2-D ones), written here with the shapes of the authors' code, loads tensor
for tensor and computes what a reference forward written in this test computes from the raw
tensors; the contrastive loss against a value by hand; and `challenge pretrain social-mae` on
videos written by the test (drawn faces whose mouths move with a tone's loudness, not the demo's
writers), whose output the social-mae extractor reads."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.fixtures.quirky import face_image, tone, write_mp4

TINY = [
    "--image-size",
    "32",
    "--frames",
    "4",
    "--tubelet",
    "2",
    "--patch-size",
    "8",
    "--mel-bins",
    "32",
    "--audio-frames",
    "64",
    "--width",
    "32",
    "--modality-depth",
    "1",
    "--joint-depth",
    "1",
    "--heads",
    "2",
    "--decoder-width",
    "32",
    "--decoder-depth",
    "1",
    "--decoder-heads",
    "2",
    "--batch-size",
    "8",
    "--valid-items",
    "4",
    "--learning-rate",
    "2e-3",
]


def _authors_state(
    width=32,
    depth=2,
    joint=1,
    decoder=16,
    decoder_depth=1,
    patch=8,
    frames=4,
    tubelet=2,
    side=32,
    mel=32,
    audio=64,
    two_d=False,
    fine_tuned=False,
    seed=0,
) -> dict:
    """Random tensors under the names and shapes of the authors' CAVMAE / Social-MAE modules."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *shape: torch.randn(*shape, generator=g) * 0.1  # noqa: E731
    video_tokens = (frames // tubelet if not two_d else 1) * (side // patch) ** 2
    state = {
        "patch_embed_a.proj.weight": r(width, 1, patch, patch),
        "patch_embed_a.proj.bias": r(width),
        "patch_embed_v.proj.weight": r(width, 3, patch, patch) if two_d else r(width, 3, tubelet, patch, patch),
        "patch_embed_v.proj.bias": r(width),
        "modality_a": r(1, 1, width),
        "modality_v": r(1, 1, width),
        "pos_embed_a": r(1, (mel // patch) * (audio // patch), width),
        "pos_embed_v": r(1, video_tokens, width),
    }

    def block(prefix: str, dim: int):
        for norm in ("norm1", "norm1_a", "norm1_v", "norm2", "norm2_a", "norm2_v"):
            state[f"{prefix}.{norm}.weight"], state[f"{prefix}.{norm}.bias"] = 1 + r(dim), r(dim)
        state[f"{prefix}.attn.qkv.weight"], state[f"{prefix}.attn.qkv.bias"] = r(3 * dim, dim), r(3 * dim)
        state[f"{prefix}.attn.proj.weight"], state[f"{prefix}.attn.proj.bias"] = r(dim, dim), r(dim)
        state[f"{prefix}.mlp.fc1.weight"], state[f"{prefix}.mlp.fc1.bias"] = r(4 * dim, dim), r(4 * dim)
        state[f"{prefix}.mlp.fc2.weight"], state[f"{prefix}.mlp.fc2.bias"] = r(dim, 4 * dim), r(dim)

    for i in range(depth):
        block(f"blocks_a.{i}", width)
        block(f"blocks_v.{i}", width)
    for i in range(joint):
        block(f"blocks_u.{i}", width)
    for norm in ("norm_a", "norm_v", "norm"):
        state[f"{norm}.weight"], state[f"{norm}.bias"] = 1 + r(width), r(width)
    if fine_tuned:  # CAVMAEFT: a classification head, no decoder
        state |= {"mlp_head.0.weight": 1 + r(width), "mlp_head.0.bias": r(width), "mlp_head.1.weight": r(3, width), "mlp_head.1.bias": r(3)}
        return state
    state |= {
        "decoder_embed.weight": r(decoder, width),
        "decoder_embed.bias": r(decoder),
        "mask_token": r(1, 1, decoder),
        "decoder_modality_a": r(1, 1, decoder),
        "decoder_modality_v": r(1, 1, decoder),
        "decoder_pos_embed_a": r(1, (mel // patch) * (audio // patch), decoder),
        "decoder_pos_embed_v": r(1, video_tokens, decoder),
        "decoder_norm.weight": 1 + r(decoder),
        "decoder_norm.bias": r(decoder),
        "decoder_pred_a.weight": r(patch * patch, decoder),
        "decoder_pred_a.bias": r(patch * patch),
        "decoder_pred_v.weight": r((tubelet if not two_d else 1) * patch * patch * 3, decoder),
        "decoder_pred_v.bias": r((tubelet if not two_d else 1) * patch * patch * 3),
    }
    for i in range(decoder_depth):
        block(f"decoder_blocks.{i}", decoder)
    return state


def _reference_audio_embedding(state: dict, fbank: torch.Tensor, depth: int, heads: int) -> torch.Tensor:
    """The audio-only pooled embedding of the authors' forward_feat, from the raw tensors."""

    def norm(x, name):
        return F.layer_norm(
            x, x.shape[-1:], state[f"{name}.weight"], state[f"{name}.bias"], eps=1e-5
        )  # nn.LayerNorm as the authors build it

    def block(x, prefix, modality=""):
        b, n, d = x.shape
        h = norm(x, f"{prefix}.norm1{modality}")
        q, k, v = (
            (h @ state[f"{prefix}.attn.qkv.weight"].T + state[f"{prefix}.attn.qkv.bias"])
            .reshape(b, n, 3, heads, d // heads)
            .permute(2, 0, 3, 1, 4)
        )
        attention = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d // heads), dim=-1)
        x = x + (
            (attention @ v).transpose(1, 2).reshape(b, n, d) @ state[f"{prefix}.attn.proj.weight"].T + state[f"{prefix}.attn.proj.bias"]
        )
        h = F.gelu(norm(x, f"{prefix}.norm2{modality}") @ state[f"{prefix}.mlp.fc1.weight"].T + state[f"{prefix}.mlp.fc1.bias"])
        return x + h @ state[f"{prefix}.mlp.fc2.weight"].T + state[f"{prefix}.mlp.fc2.bias"]

    a = F.conv2d(fbank.unsqueeze(1).transpose(2, 3), state["patch_embed_a.proj.weight"], state["patch_embed_a.proj.bias"], stride=8)
    a = a.flatten(2).transpose(1, 2) + state["pos_embed_a"] + state["modality_a"]
    for i in range(depth):
        a = block(a, f"blocks_a.{i}")
    a = block(a, "blocks_u.0", "_a")
    return norm(a, "norm_a").mean(1)


def test_an_authors_checkpoint_loads_tensor_for_tensor_and_computes_the_reference(tmp_path):
    from challenge.networks.social_mae import load_social_mae

    state = _authors_state()
    torch.save({"model": {f"module.{k}": v for k, v in state.items()}, "epoch": 24}, tmp_path / "social-mae.pth")
    from challenge.errors import ChallengeError

    with pytest.raises(
        ChallengeError, match="--frames"
    ):  # 32 tokens: 4 frames of 4x4 patches in 2 tubelets, or the paper's 8 frames? not square
        load_social_mae(str(tmp_path / "social-mae.pth"), heads=2, decoder_heads=2)
    network, report = load_social_mae(str(tmp_path / "social-mae.pth"), heads=2, decoder_heads=2, frames=4, mel_bins=32)
    c = network.config
    assert (c.width, c.modality_depth, c.joint_depth, c.patch_size, c.tubelet, c.frames, c.image_size, c.audio_frames, c.decoder_width) == (
        32,
        2,
        1,
        8,
        2,
        4,
        32,
        64,
        16,
    )
    assert "recognised" in report and "decoder new" not in report
    ours = network.state_dict()
    assert set(ours) == set(state)
    for key, tensor in state.items():
        assert torch.equal(ours[key], tensor), key
    network.eval()
    fbank, faces = torch.randn(2, 64, 32), torch.randn(2, 4, 3, 32, 32)
    embedded = network.encode(fbank, faces)
    assert torch.allclose(embedded["audio"], _reference_audio_embedding(state, fbank, depth=2, heads=2), atol=1e-5)
    assert embedded["joint"].shape == embedded["video"].shape == (2, 32)
    out = network(fbank, faces)  # the decoder came from the file too: a pretraining pass runs
    assert out["pred_video"].shape == (2, 2 * 16, 2 * 64 * 3) and torch.isfinite(out["loss"])


def test_cav_mae_two_d_patches_and_fine_tuned_files_load_and_missing_weights_are_named(tmp_path):
    from challenge.errors import ChallengeError
    from challenge.networks.social_mae import load_social_mae

    torch.save(_authors_state(two_d=True, fine_tuned=True), tmp_path / "cav-mae-ft.pth")
    network, report = load_social_mae(str(tmp_path / "cav-mae-ft.pth"), heads=2, mel_bins=32)
    assert network.config.frames == 1 and network.config.tubelet == 1
    assert "dropped 4 (mlp_head)" in report and "decoder new, at random" in report
    assert network.encode(torch.randn(1, 64, 32), torch.randn(1, 1, 3, 32, 32))["joint"].shape == (1, 32)
    broken = _authors_state()
    del broken["blocks_v.1.attn.qkv.weight"]
    torch.save(broken, tmp_path / "broken.pth")
    with pytest.raises(ChallengeError, match="blocks_v.1.attn.qkv.weight"):
        load_social_mae(str(tmp_path / "broken.pth"), heads=2, frames=4, mel_bins=32)


def test_contrastive_loss_by_hand():
    from challenge.networks.social_mae import contrastive_loss

    audio, video = torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    # cosine similarities / 0.05: [[20, 12], [0, 16]]; softmax over the audio clips (dim 0) of each video's column
    by_hand = -(math.log(math.exp(20) / (math.exp(20) + 1)) + math.log(math.exp(16) / (math.exp(12) + math.exp(16)))) / 2
    assert float(contrastive_loss(audio, video)) == pytest.approx(by_hand, rel=1e-5)


@pytest.fixture(scope="module")
def talking_faces(tmp_path_factory) -> Path:
    """Six 4-second videos: a drawn face whose mouth opens with the loudness of a tone."""
    root = tmp_path_factory.mktemp("talking")
    for k in range(6):
        rate, fps, seconds = 16000, 10, 4.0
        signal = tone(seconds, rate, 2, 180 + 40 * k, seed=k)
        envelope = 0.5 + 0.5 * np.sin(2 * np.pi * (0.5 + 0.2 * k) * np.arange(signal.shape[1]) / rate)
        signal = (signal * envelope).astype(np.float32)
        frames = [face_image(64, float(envelope[int(i / fps * rate)]), 40 + 30 * k) for i in range(int(seconds * fps))]
        write_mp4(root / f"speaker{k % 2}" / f"talk{k}.mp4", frames, fps, signal, rate)
    return root


def test_pretrain_social_mae_on_videos_lowers_the_loss_and_the_extractor_reads_its_output(talking_faces, tmp_path):
    out = tmp_path / "smae"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "challenge.app.cli",
            "pretrain",
            "social-mae",
            "--videos",
            str(talking_faces),
            "--out",
            str(out),
            *TINY,
            "--epochs",
            "4",
            "--epoch-steps",
            "8",
            "--workers",
            "2",
            "--tracking-uri",
            f"sqlite:///{tmp_path}/mlflow.db",
            "-q",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((out / "pretrain.json").read_text())
    assert summary["items"] + summary["valid_items"] == 6 * 6  # 4 s videos in 0.64 s clips
    history = [h["train_loss"] for h in summary["history"]]
    assert history[-1] < history[0] - 0.1
    assert len(list((out / "reconstructions").glob("*.png"))) == 4
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    logged = client.get_run(summary["run_id"]).data.metrics
    assert {"train_loss", "train_loss_audio", "train_loss_video", "train_loss_contrast", "valid_loss"} <= set(logged)
    # the extractor reads the folder: per segment, joint | audio | video
    from challenge.features.social_mae import SocialMAEExtractor

    runner = SocialMAEExtractor(model=str(out), hop_seconds=0.32).build("cpu")
    features = runner.forward(runner.prepare(next(talking_faces.rglob("*.mp4"))))
    assert features.array.shape == (len(np.arange(0, 4.0 - 0.64 + 1e-9, 0.32)), 3 * 32) and features.frame_rate == pytest.approx(1 / 0.32)
    assert np.isfinite(features.array).all()
    # a damaged video is named, or left out and counted
    broken = tmp_path / "videos"
    (broken / "ok").mkdir(parents=True)
    for k, path in enumerate(sorted(talking_faces.rglob("*.mp4"))[:2]):
        (broken / "ok" / f"{k}.mp4").write_bytes(path.read_bytes())
    (broken / "ok" / "damaged.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 nothing else")
    args = [
        sys.executable,
        "-m",
        "challenge.app.cli",
        "pretrain",
        "social-mae",
        "--videos",
        str(broken),
        *TINY,
        "--epochs",
        "1",
        "--epoch-steps",
        "1",
        "--workers",
        "0",
        "--tracking-uri",
        f"sqlite:///{tmp_path}/mlflow.db",
    ]
    refused = subprocess.run([*args, "--out", str(tmp_path / "r1")], capture_output=True, text=True, timeout=300, env=env)
    assert refused.returncode == 2 and "damaged.mp4" in refused.stderr and "--skip-missing" in refused.stderr
    kept = subprocess.run([*args, "--out", str(tmp_path / "r2"), "--skip-missing"], capture_output=True, text=True, timeout=300, env=env)
    assert kept.returncode == 0, kept.stderr[-3000:]
    assert json.loads((tmp_path / "r2" / "pretrain.json").read_text())["skipped"] == 1


def test_social_mae_fine_tunes_on_emi_clips_and_its_backbone_is_extracted_again(tmp_path):
    """--head social-mae-clips on an EMI-layout set written apart from the demo (separate WAV
    audio, videos at 10 fps): it trains end to end, writes the submission, logs the fine-tuned
    encoder, and that folder is a --social-mae-model the feature store extracts."""
    from challenge.networks.social_mae import SocialMAE, SocialMAEConfig
    from tests.fixtures.quirky import quirky_hume

    quirky_hume(tmp_path / "hume")
    torch.manual_seed(0)
    SocialMAE(
        SocialMAEConfig(
            image_size=32,
            frames=4,
            tubelet=2,
            patch_size=8,
            mel_bins=32,
            audio_frames=64,
            width=32,
            modality_depth=1,
            joint_depth=1,
            heads=2,
            decoder_width=16,
            decoder_depth=1,
            decoder_heads=2,
        )
    ).save_pretrained(tmp_path / "smae")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CHALLENGE_FEATURE_STORE": str(tmp_path / "store")}
    common = ["--data", str(tmp_path / "hume"), "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db", "-q"]
    tuned = subprocess.run(
        [
            sys.executable,
            "-m",
            "challenge.app.cli",
            "track",
            "emi",
            "--head",
            "social-mae-clips",
            "--social-mae-model",
            str(tmp_path / "smae"),
            "--finetune-epochs",
            "2",
            "--finetune-batch-size",
            "4",
            "--out",
            str(tmp_path / "run"),
            *common,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert tuned.returncode == 0, tuned.stderr[-3000:]
    assert (
        "validation score" in tuned.stdout and "linear baseline (ridge" in tuned.stdout and (tmp_path / "run" / "predictions.csv").is_file()
    )
    backbone = tmp_path / "run" / "backbone"
    assert (backbone / "social_mae_config.json").is_file()
    again = subprocess.run(
        [
            sys.executable,
            "-m",
            "challenge.app.cli",
            "track",
            "emi",
            "--features",
            "social-mae",
            "--social-mae-model",
            str(backbone),
            "--head",
            "ridge",
            "--out",
            str(tmp_path / "again"),
            *common,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert "validation score" in again.stdout
