"""Does pretraining on the team's own data help? A linear probe (the project's logistic head on
the frozen encoder's features) of a pretrained tiny model against the same architecture at its
random initialisation (the weights pretraining starts from), per seed: the MAE on demo Aff-Wild2
EXPR (pretrained on its cropped_aligned images) and on the smile-intensity demo (pretrained on
faces the detector cuts from its videos, `--videos`); Social-MAE on the smile-laugh demo
(pretrained on corpus a's videos, sound and faces; `social-mae` features every 0.32 s).

Pretraining uses no labels; it sees every video's frames (train, validation and test), as a team
pretraining on its whole unlabelled corpus would. Tiny models on drawn faces: the figures say
whether the machinery learns something a probe can use, not what a ViT-B learns from Aff-Wild2.

    .venv/bin/python benchmarks/pretrain_probe.py [--seeds 3] [--epochs 10]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

SOCIAL = dict(
    image_size=32,
    frames=4,
    tubelet=2,
    patch_size=8,
    mel_bins=32,
    audio_frames=64,
    width=64,
    modality_depth=2,
    joint_depth=1,
    heads=4,
    decoder_width=32,
    decoder_depth=1,
    decoder_heads=2,
    batch_size=32,
    learning_rate=2e-3,
    workers=2,
    valid_items=32,
)
TINY = dict(
    image_size=32,
    patch_size=4,
    hidden_size=64,
    layers=3,
    heads=4,
    decoder_hidden_size=32,
    decoder_layers=1,
    decoder_heads=2,
    batch_size=64,
    learning_rate=2e-3,
    workers=2,
    valid_items=64,
)


def probe(track: str, data: Path, model: Path, seed: int, root: Path) -> float:
    from challenge.config import load_config
    from challenge.registry import get_track
    from challenge.run.runner import run

    spec = get_track(track)
    extractor = "social-mae" if track == "smile-laugh" else "mae"
    options = {"model": str(model)} | ({"hop_seconds": 0.32} if extractor == "social-mae" else {})
    flags = {
        "track": track,
        "data": str(data),
        "features": [extractor],
        "head": "logistic",
        "seed": seed,
        "extractors": {extractor: options},
        "tracking_uri": f"sqlite:///{root}/mlflow.db",
        "out": str(root / "runs" / f"{track}-{model.name}-{seed}"),
    }
    return float(run(spec, load_config(None, flags, spec)).score)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--epoch-steps", type=int, default=30)
    parser.add_argument("--no-norm-pix-loss", action="store_true", help="reconstruct raw pixels (MAE's norm_pix_loss off)")
    parser.add_argument("--crop-scale", type=float, default=0.6)
    parser.add_argument("--tracks", default="expr,smile-intensity,smile-laugh")
    args = parser.parse_args()
    from challenge.pretrain.mae import build_mae, pretrain_mae
    from challenge.pretrain.settings import MAEPretrainSettings, SocialMAEPretrainSettings
    from challenge.pretrain.social import build_social_mae, pretrain_social_mae
    from challenge.progress import set_quiet
    from challenge.seeding import seed_everything
    from tracks.affwild2.demo import write_affwild_demo
    from tracks.smiles.demo import write_smiles_demo

    set_quiet(True)
    root = Path(tempfile.mkdtemp(prefix="pretrain-probe-"))
    os.environ["CHALLENGE_FEATURE_STORE"] = str(root / "store")
    affwild, smiles = root / "affwild", root / "smiles"
    write_affwild_demo(affwild)
    write_smiles_demo(smiles)
    corpora = {
        "expr": (affwild, {"images": [affwild / "cropped_aligned"], "videos": []}),
        "smile-intensity": (smiles / "a", {"images": [], "videos": [smiles / "a" / "videos"]}),
        "smile-laugh": (smiles / "a", {"images": [], "videos": [smiles / "a" / "videos"]}),
    }
    corpora = {k: v for k, v in corpora.items() if k in args.tracks.split(",")}
    rows = []
    for track, (data, inputs) in corpora.items():
        for seed in range(args.seeds):
            start = time.perf_counter()
            random_folder = root / f"random-{track}-{seed}"
            if track == "smile-laugh":
                social = SocialMAEPretrainSettings(**SOCIAL, epochs=args.epochs, epoch_steps=args.epoch_steps, seed=seed)
                result = pretrain_social_mae(inputs["videos"], root / f"social-{seed}", social, "cpu", f"sqlite:///{root}/mlflow.db")
                seed_everything(seed)  # the pretraining's starting weights: seeded the same way before they are drawn
                build_social_mae(social)[0].save_pretrained(random_folder)
            else:
                settings = MAEPretrainSettings(
                    **TINY,
                    epochs=args.epochs,
                    epoch_steps=args.epoch_steps,
                    seed=seed,
                    norm_pix_loss=not args.no_norm_pix_loss,
                    crop_scale=args.crop_scale,
                )
                result = pretrain_mae(
                    inputs["images"], inputs["videos"], root / f"mae-{track}-{seed}", settings, "cpu", f"sqlite:///{root}/mlflow.db"
                )
                seed_everything(seed)
                model, processor, _ = build_mae(settings)  # the same seed's starting weights
                model.save_pretrained(random_folder)
                (random_folder / "preprocessor_config.json").write_text(json.dumps(processor | {"size": {"height": 32, "width": 32}}))
            seconds = time.perf_counter() - start
            pretrained, random = probe(track, data, result.out, seed, root), probe(track, data, random_folder, seed, root)
            rows.append(
                {
                    "track": track,
                    "seed": seed,
                    "pretrained": pretrained,
                    "random": random,
                    "images": result.items,
                    "steps": result.steps,
                    "loss": f"{result.first_loss:.3f}->{result.last_loss:.3f}",
                    "seconds": seconds,
                }
            )
            print(json.dumps(rows[-1], default=lambda v: round(v, 4)), flush=True)
    print(
        f"\ntiny Social-MAE ({SOCIAL['width']} wide, {SOCIAL['modality_depth']}+{SOCIAL['joint_depth']} blocks, {SOCIAL['frames']} frames of "
        f"{SOCIAL['image_size']} px, {SOCIAL['mel_bins']}x{SOCIAL['audio_frames']} filterbank), batch {SOCIAL['batch_size']}"
    )
    print(
        f"tiny MAE ({TINY['hidden_size']} wide, {TINY['layers']} blocks, {TINY['image_size']} px, patch {TINY['patch_size']}), "
        f"{args.epochs} x {args.epoch_steps} steps of {TINY['batch_size']} images, norm_pix_loss {not args.no_norm_pix_loss}, "
        f"crop_scale {args.crop_scale}; linear probe = logistic head on the mae features"
    )
    for track in corpora:
        part = [r for r in rows if r["track"] == track]
        stats = {
            k: (statistics.mean(r[k] for r in part), statistics.stdev(r[k] for r in part) if len(part) > 1 else 0.0)
            for k in ("pretrained", "random")
        }
        gains = [r["pretrained"] - r["random"] for r in part]
        gain_sd = statistics.stdev(gains) if len(gains) > 1 else 0.0
        print(
            f"{track:16s} pretrained {stats['pretrained'][0]:.4f} +- {stats['pretrained'][1]:.4f}   random init {stats['random'][0]:.4f} +- "
            f"{stats['random'][1]:.4f}   gain {statistics.mean(gains):+.4f} +- {gain_sd:.4f}   ({part[0]['images']} images, {part[0]['steps']} steps)"
        )
    print(f"files: {root}")


if __name__ == "__main__":
    main()
