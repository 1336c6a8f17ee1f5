"""Single weights files in the layouts teams hold (facebookresearch/mae: timm names under `model`,
fused qkv, `norm` or `fc_norm`; DataParallel prefixes; other image sizes) load into the MAE
extractor, and the converted model computes what the raw tensors say: a small ViT forward pass
written here from the tensors alone, independent of transformers, agrees to 1e-5."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from challenge.errors import ChallengeError
from challenge.networks.checkpoints import load_vit_mae, read_weights

WIDTH, DEPTH, HEADS, PATCH, IMAGE, MLP = 32, 2, 4, 8, 32, 48


def mae_checkpoint(seed: int = 0, fc_norm: bool = False, decoder: bool = True) -> dict:
    """Random tensors under facebookresearch/mae's names (pretraining layout: with the decoder)."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *shape: torch.randn(*shape, generator=g) * 0.2  # noqa: E731
    tokens = (IMAGE // PATCH) ** 2 + 1
    state = {
        "cls_token": r(1, 1, WIDTH),
        "pos_embed": r(1, tokens, WIDTH),
        "patch_embed.proj.weight": r(WIDTH, 3, PATCH, PATCH),
        "patch_embed.proj.bias": r(WIDTH),
    }
    for i in range(DEPTH):
        b = f"blocks.{i}."
        state |= {
            b + "norm1.weight": 1 + r(WIDTH),
            b + "norm1.bias": r(WIDTH),
            b + "attn.qkv.weight": r(3 * WIDTH, WIDTH),
            b + "attn.qkv.bias": r(3 * WIDTH),
            b + "attn.proj.weight": r(WIDTH, WIDTH),
            b + "attn.proj.bias": r(WIDTH),
            b + "norm2.weight": 1 + r(WIDTH),
            b + "norm2.bias": r(WIDTH),
            b + "mlp.fc1.weight": r(MLP, WIDTH),
            b + "mlp.fc1.bias": r(MLP),
            b + "mlp.fc2.weight": r(WIDTH, MLP),
            b + "mlp.fc2.bias": r(WIDTH),
        }
    final = "fc_norm" if fc_norm else "norm"
    state |= {f"{final}.weight": 1 + r(WIDTH), f"{final}.bias": r(WIDTH)}
    if decoder:
        state |= {
            "mask_token": r(1, 1, 16),
            "decoder_embed.weight": r(16, WIDTH),
            "decoder_blocks.0.norm1.weight": r(16),
            "decoder_pred.weight": r(PATCH * PATCH * 3, 16),
        }
    return state


def reference_tokens(state: dict, pixels: torch.Tensor, positions: torch.Tensor | None = None) -> torch.Tensor:
    """The ViT encoder of the MAE paper, from the raw tensors: patchify, add positions, pre-norm
    blocks (fused qkv, softmax attention, GELU MLP), LayerNorm eps 1e-6. Returns the tokens before
    the final norm."""
    x = F.conv2d(pixels, state["patch_embed.proj.weight"], state["patch_embed.proj.bias"], stride=PATCH).flatten(2).transpose(1, 2)
    pos = state["pos_embed"] if positions is None else positions
    x = torch.cat([state["cls_token"].expand(len(x), -1, -1) + pos[:, :1], x + pos[:, 1:]], dim=1)
    for i in range(DEPTH):
        b = f"blocks.{i}."
        h = F.layer_norm(x, (WIDTH,), state[b + "norm1.weight"], state[b + "norm1.bias"], 1e-6)
        q, k, v = (h @ state[b + "attn.qkv.weight"].T + state[b + "attn.qkv.bias"]).chunk(3, dim=-1)
        split = lambda t: t.reshape(len(t), -1, HEADS, WIDTH // HEADS).transpose(1, 2)  # noqa: E731
        attention = torch.softmax(split(q) @ split(k).transpose(-1, -2) / math.sqrt(WIDTH // HEADS), dim=-1)
        mixed = (attention @ split(v)).transpose(1, 2).reshape(len(x), -1, WIDTH)
        x = x + mixed @ state[b + "attn.proj.weight"].T + state[b + "attn.proj.bias"]
        h = F.layer_norm(x, (WIDTH,), state[b + "norm2.weight"], state[b + "norm2.bias"], 1e-6)
        x = (
            x
            + F.gelu(h @ state[b + "mlp.fc1.weight"].T + state[b + "mlp.fc1.bias"]) @ state[b + "mlp.fc2.weight"].T
            + state[b + "mlp.fc2.bias"]
        )
    return x


def converted_tokens(network, pixels: torch.Tensor) -> torch.Tensor:
    patches = (pixels.shape[-1] // PATCH) ** 2
    noise = torch.arange(patches, dtype=torch.float32).expand(len(pixels), -1)  # keeps patch order (the runner does the same)
    with torch.no_grad():
        return network(pixel_values=pixels, noise=noise).last_hidden_state


@pytest.mark.parametrize("layout", ["facebookresearch", "dataparallel", "safetensors"])
def test_a_mae_pth_converts_and_equals_the_reference_forward(tmp_path, layout):
    state = mae_checkpoint()
    if layout == "facebookresearch":
        path = tmp_path / "mae_pretrain_vit.pth"
        torch.save({"model": state, "optimizer": {}, "epoch": 799}, path)  # the published layout (optimizer omitted there)
    elif layout == "dataparallel":
        path = tmp_path / "team.pt"
        torch.save({"state_dict": {f"module.main.{k}": v for k, v in state.items()}}, path)
    else:
        from safetensors.torch import save_file

        path = tmp_path / "encoder.safetensors"
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    network, conversion = load_vit_mae(str(path), heads=HEADS)
    pixels = torch.randn(2, 3, IMAGE, IMAGE, generator=torch.Generator().manual_seed(1))
    expected = F.layer_norm(reference_tokens(state, pixels), (WIDTH,), state["norm.weight"], state["norm.bias"], 1e-6)
    torch.testing.assert_close(converted_tokens(network, pixels), expected, atol=1e-5, rtol=1e-5)
    assert conversion.config | {"image_size": IMAGE} == conversion.config and conversion.config["num_hidden_layers"] == DEPTH
    assert conversion.final_norm == "norm" and {k.split(".")[0] for k in conversion.dropped} == {
        "mask_token",
        "decoder_embed",
        "decoder_blocks",
        "decoder_pred",
    }
    assert "width 32, depth 2, 4 heads, patch 8, image 32" in conversion.describe()


def test_fc_norm_after_global_pooling_and_other_image_sizes(tmp_path):
    state = mae_checkpoint(seed=2, fc_norm=True, decoder=False)  # a fine-tuned encoder-only file
    path = tmp_path / "finetuned.pth"
    torch.save({"model": state}, path)
    network, conversion = load_vit_mae(str(path), heads=HEADS)
    assert conversion.final_norm == "fc_norm" and not conversion.dropped
    pixels = torch.randn(3, 3, IMAGE, IMAGE, generator=torch.Generator().manual_seed(3))
    pooled = network.fc_norm(converted_tokens(network, pixels)[:, 1:].mean(1))
    tokens = reference_tokens(state, pixels)
    torch.testing.assert_close(
        pooled, F.layer_norm(tokens[:, 1:].mean(1), (WIDTH,), state["fc_norm.weight"], state["fc_norm.bias"], 1e-6), atol=1e-5, rtol=1e-5
    )

    # run at 48 pixels: the 4x4 position grid is resized to 6x6 (bicubic), the class position kept
    bigger, conversion = load_vit_mae(str(path), heads=HEADS, image_size=48)
    assert "interpolated from 4x4 to 6x6" in conversion.describe()
    grid = state["pos_embed"][:, 1:].reshape(1, 4, 4, WIDTH).permute(0, 3, 1, 2)
    resized = F.interpolate(grid, size=(6, 6), mode="bicubic", align_corners=False).permute(0, 2, 3, 1).reshape(1, 36, WIDTH)
    positions = torch.cat([state["pos_embed"][:, :1], resized], dim=1)
    pixels = torch.randn(1, 3, 48, 48, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(converted_tokens(bigger, pixels), reference_tokens(state, pixels, positions), atol=1e-5, rtol=1e-5)


def test_a_missing_encoder_weight_is_an_error_and_pickled_code_is_refused(tmp_path):
    state = mae_checkpoint()
    del state["blocks.1.mlp.fc2.weight"]
    torch.save({"model": state}, tmp_path / "broken.pth")
    with pytest.raises(ChallengeError, match=r"blocks.1.mlp.fc2.weight is missing .* never initialised at random"):
        load_vit_mae(str(tmp_path / "broken.pth"), heads=HEADS)
    torch.save({"model": mae_checkpoint(), "note": np.dtype("float32")}, tmp_path / "pickled.pth")  # an object weights_only refuses
    with pytest.raises(ChallengeError, match=r"weights_only=True"):
        read_weights(tmp_path / "pickled.pth")
    with pytest.raises(ChallengeError, match="not divisible by 5 heads"):
        torch.save({"model": mae_checkpoint()}, tmp_path / "ok.pth")
        load_vit_mae(str(tmp_path / "ok.pth"), heads=5)


def test_the_mae_extractor_takes_a_pth_as_visual_model(tmp_path, store_root):
    """End to end: `--visual-model file.pth` extracts face features through the converter, keyed
    by the file's content."""
    from PIL import Image

    from challenge.data.samples import Sample
    from challenge.features import FeatureStore, make_extractor
    from challenge.features.extract import extract

    torch.save({"model": mae_checkpoint()}, tmp_path / "mae.pth")
    faces = tmp_path / "faces"
    faces.mkdir()
    rng = np.random.default_rng(0)
    for i in range(1, 4):
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(faces / f"{i:05d}.jpg")
    extractor = make_extractor("mae", model=str(tmp_path / "mae.pth"), heads=HEADS)
    store = FeatureStore(store_root)
    report = extract(extractor, [Sample(id="v", split="train", frames_dir=faces)], store)
    array, meta = store.load(extractor, report.digests["v"])
    assert array.shape == (3, WIDTH) and np.isfinite(array).all() and meta["index"] == [1, 2, 3]


@pytest.mark.parametrize("emotion_head", [False, True])
def test_a_wav2vec2_state_dict_file_loads_with_its_architecture_read_off_the_tensors(tmp_path, emotion_head):
    """A team's fine-tuned wav2vec2 saved as torch.save(model.state_dict()) from DataParallel
    (`module.` + transformers' names): the extractor's network built from the file alone gives
    the outputs of the model that was saved, and a missing tensor is an error."""
    from challenge.networks.wav2vec2 import load_wav2vec2, load_wav2vec2_file
    from challenge.synthetic.stand_ins import tiny_wav2vec2

    folder = tiny_wav2vec2(tmp_path / "w2v", emotion_head=emotion_head, seed=3)
    original = load_wav2vec2(str(folder))
    saved = {k: v for k, v in original.state_dict().items() if emotion_head or not k.startswith("classifier.")}
    torch.save({"state_dict": {f"module.{k}": v for k, v in saved.items()}}, tmp_path / "w2v.pt")
    network, _ = load_wav2vec2_file(str(tmp_path / "w2v.pt"), heads=2)
    assert network.config.num_hidden_layers == 2 and network.config.hidden_size == 32 and network.has_head == emotion_head
    audio = torch.randn(1, 8000, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected, got = original.wav2vec2(audio).last_hidden_state, network.wav2vec2(audio).last_hidden_state
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    state = {k: v for k, v in original.state_dict().items() if "layers.1.feed_forward.output_dense.weight" not in k}
    torch.save(state, tmp_path / "broken.pt")
    with pytest.raises(ChallengeError, match="missing from the file"):
        load_wav2vec2_file(str(tmp_path / "broken.pt"), heads=2)
