"""`challenge pretrain social-mae`: Social-MAE (challenge.networks.social_mae) pretrained
on clips of the team's videos, their sound and their faces, in the loop every pretraining shares
(challenge.pretrain.loop: resumable, DDP, MLflow).

Each video is read once (challenge.features.audio_visual: its filterbank, its faces cut by the
detector a few times per second) into OUT/clips/<video>-<digest>/, written to a temporary folder
renamed when the video is done; training items are the clips of those arrays, read from memory
maps, so the corpus does not have to fit in memory. A clip's faces are drawn at random within
each of its `frames` parts, from (seed, stream position). The output folder is what
`--social-mae-model` (the social-mae extractor) and `--init` take."""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from challenge.errors import ChallengeError
from challenge.pretrain.images import Unreadable, video_files
from challenge.pretrain.settings import SocialMAEPretrainSettings
from challenge.progress import progress_bar, say

GRID_CLIPS = 3


def social_config(settings: SocialMAEPretrainSettings):
    from challenge.networks.social_mae import SocialMAEConfig

    return SocialMAEConfig.from_dict(settings.model_dump())


def build_social_mae(settings: SocialMAEPretrainSettings):
    """(SocialMAE, what it was made from): random weights, or --init (a folder or the authors'
    file) with this run's masking and loss weights."""
    import dataclasses

    from challenge.networks.social_mae import SocialMAE, load_social_mae

    if settings.init is None:
        return SocialMAE(social_config(settings)), "random weights"
    network, origin = load_social_mae(
        settings.init,
        settings.heads if "heads" in settings.model_fields_set else None,
        settings.decoder_heads if "decoder_heads" in settings.model_fields_set else None,
        settings.frames if "frames" in settings.model_fields_set else None,
        settings.mel_bins,
    )
    s = settings
    network.config = dataclasses.replace(
        network.config, mask_ratio_audio=s.mask_ratio_audio, mask_ratio_video=s.mask_ratio_video, contrast_weight=s.contrast_weight
    )
    return network, origin


def read_videos(videos: list[Path], into: Path, config, margin: float, skip_missing: bool) -> tuple[list[Path], int]:
    """Each video's arrays under `into` (once): (their folders, videos left out)."""
    from challenge.features.audio_visual import read_video
    from challenge.vision.faces import make_detector

    rate = 2 * config.frames / config.clip_seconds
    detector, folders, skipped = None, [], 0
    with progress_bar("reading videos (sound and faces)", len(videos)) as advance:
        for video in videos:
            digest = hashlib.sha1(f"{video.resolve()}|{config.mel_bins}|{config.image_size}|{rate}|{margin}".encode()).hexdigest()[:10]
            folder = into / f"{video.stem}-{digest}"
            if not folder.is_dir():
                detector = detector or make_detector("centerface")
                try:
                    arrays = read_video(video, config.mel_bins, config.image_size, rate, margin, detector)
                except Exception as error:  # noqa: BLE001 - PyAV's decoding errors, and ours
                    if not skip_missing:
                        reason = (
                            str(error)
                            if isinstance(error, ChallengeError)
                            else f"{video}: cannot decode it ({type(error).__name__}: {error})"
                        )
                        raise ChallengeError(f"{reason} Replace or remove it, or pass --skip-missing to leave it out.") from error
                    skipped += 1
                    advance()
                    continue
                partial = into / f".{folder.name}.partial-{os.getpid()}"
                shutil.rmtree(partial, ignore_errors=True)
                partial.mkdir(parents=True)
                for name in ("fbank", "faces", "times"):
                    np.save(partial / f"{name}.npy", getattr(arrays, name))
                os.replace(partial, folder)
            folders.append(folder)
            advance()
    if not folders:
        raise ChallengeError("no video could be read: nothing to pretrain on.")
    return folders, skipped


@dataclass
class ClipIndex:
    folder: Path
    start: float


class AudioVisualClips(torch.utils.data.Dataset):
    """Items (position, clip index) -> (filterbank [audio_frames, mel], faces [frames, size, size, 3]
    uint8); in training the faces are drawn from (seed, position)."""

    def __init__(self, clips: list[ClipIndex], config, train: bool, seed: int):
        self.clips, self.config, self.train, self.seed = clips, config, train, seed

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, item):
        from challenge.features.audio_visual import VideoArrays, cut_clip

        position, index = item
        clip = self.clips[index]
        try:
            arrays = VideoArrays(*(np.load(clip.folder / f"{name}.npy", mmap_mode="r") for name in ("fbank", "faces", "times")))
        except (OSError, ValueError):  # a damaged array file
            return Unreadable(index)
        rng = np.random.default_rng([self.seed, int(position)]) if self.train else None
        fbank, faces = cut_clip(arrays, clip.start, self.config.audio_frames, self.config.frames, rng)
        return torch.from_numpy(np.ascontiguousarray(fbank)), torch.from_numpy(np.ascontiguousarray(faces))


def collate_clips(items: list):
    kept = [x for x in items if not isinstance(x, Unreadable)]
    bad = [x.index for x in items if isinstance(x, Unreadable)]
    if not kept:
        return (torch.empty(0), torch.empty(0)), bad
    return (torch.stack([k[0] for k in kept]), torch.stack([k[1] for k in kept])), bad


class SocialMAETask:
    """Social-MAE as a pretraining task (challenge.pretrain.loop.PretrainTask)."""

    kind = "social-mae"
    collate = staticmethod(collate_clips)

    def __init__(
        self, settings: SocialMAEPretrainSettings, train: list[ClipIndex], valid: list[ClipIndex], device: str, skipped_videos: int
    ):
        self.model, self.origin = build_social_mae(settings)
        config = self.model.config
        self.device, self.seed, self.skipped_sources = device, settings.seed, skipped_videos
        self.train_set = AudioVisualClips(train, config, True, settings.seed)
        self.valid_set = AudioVisualClips(valid, config, False, settings.seed)

    def batch_size_of(self, batch) -> int:
        return len(batch[0])

    def inputs(self, batch):
        from challenge.features.audio_visual import scale_faces

        return batch[0].to(self.device, non_blocking=True).float(), scale_faces(batch[1], self.device)

    def loss(self, model, batch, noise=None) -> dict:
        fbank, faces = self.inputs(batch)
        fits = noise is not None and len(noise[0]) == len(fbank)
        out = model(fbank, faces, *(noise if fits else (None, None)))
        return {k: v for k, v in out.items() if k.startswith("loss")}

    def valid_noise(self):
        c, generator = self.model.config, torch.Generator().manual_seed(self.seed)
        n = len(self.valid_set)
        return torch.rand(n, c.audio_tokens, generator=generator), torch.rand(n, c.video_tokens, generator=generator)

    def noise_slice(self, noise, start: int, stop: int):
        return noise[0][start:stop], noise[1][start:stop]

    def picture(self, model, noise):
        return clip_grid(model, self.valid_set, noise, self.inputs)

    def save(self, folder: Path) -> None:
        self.model.save_pretrained(folder)


def clip_grid(model, dataset, noise, inputs, count: int = GRID_CLIPS):
    """A PIL image per held-out clip: its face frames, what the encoder saw of them (hidden
    patches grey) and their reconstruction; then its filterbank, masked and reconstructed."""
    from PIL import Image

    from challenge.media import IMAGENET_MEAN as FACE_MEAN
    from challenge.media import IMAGENET_STD as FACE_STD

    n = min(count, len(dataset))
    batch, _ = collate_clips([dataset[(0, i)] for i in range(n)])
    if not len(batch[0]):
        return None
    model.eval()
    with torch.no_grad():
        fbank, faces = inputs(batch)
        out = model(fbank, faces, noise[0][:n].to(fbank.device), noise[1][:n].to(fbank.device))
        target = model.video_patches(faces)
        predicted = out["pred_video"].float()
        if model.config.norm_pix_loss:
            predicted = predicted * (target.var(-1, keepdim=True) + 1e-6).sqrt() + target.mean(-1, keepdim=True)
        hidden = out["mask_video"][..., None]
        video_rows = [faces, model.unpatch_video(target * (1 - hidden)), model.unpatch_video(predicted)]
        hidden_pixels = model.unpatch_video(hidden.expand_as(target).float()) > 0.5
        audio_target = model.audio_patches(fbank)
        audio_hidden = out["mask_audio"][..., None]
        audio_rows = [audio_target, audio_target * (1 - audio_hidden), out["pred_audio"].float()]
    mean, std = (torch.tensor(v, device=faces.device).view(1, 1, 3, 1, 1) for v in (FACE_MEAN, FACE_STD))
    pictures = []
    for k in range(len(faces)):
        strips = []
        for r, row in enumerate(video_rows):
            pixels = ((row[k : k + 1] * std + mean).clamp(0, 1) * 255).byte()[0]  # [frames, 3, s, s]
            if r == 1:
                pixels[hidden_pixels[k]] = 127
            strips.append(np.concatenate(list(pixels.permute(0, 2, 3, 1).cpu().numpy()), axis=1))
        width = strips[0].shape[1]
        for row in audio_rows:
            spectrum = _unpatch_audio(model, row[k])
            grey = np.clip((spectrum + 2) / 4 * 255, 0, 255).astype(np.uint8)  # the filterbank is normalised to about [-1, 1]
            image = Image.fromarray(grey[::-1]).resize((width, max(8, grey.shape[0])), Image.NEAREST)
            strips.append(np.repeat(np.asarray(image)[..., None], 3, axis=2))
        pictures.append(np.concatenate(strips, axis=0))
    return Image.fromarray(np.concatenate(pictures, axis=0))


def _unpatch_audio(model, patches: torch.Tensor) -> np.ndarray:
    """[audio_tokens, patch²] -> [mel_bins, audio_frames]."""
    c = model.config
    (f, t), p = c.audio_grid, c.patch_size
    return patches.reshape(f, t, p, p).permute(0, 2, 1, 3).reshape(f * p, t * p).cpu().numpy()


def pretrain_social_mae(
    videos: list[Path],
    out: Path,
    settings: SocialMAEPretrainSettings,
    device: str = "auto",
    tracking_uri: str | None = None,
    skip_missing: bool = False,
):
    from challenge.pretrain.loop import held_out, rank_zero_first, run_pretraining, start

    s, out = settings, Path(out)
    done, device, dist = start(out, s, device)
    if done is not None:
        return done
    if not videos:
        raise ChallengeError("nothing to pretrain on: pass --videos DIR (folders of videos with sound and faces).")
    config = social_config(s) if s.init is None else build_social_mae(s)[0].config
    folders, skipped = rank_zero_first(dist, lambda: read_videos(video_files(videos), out / "clips", config, s.crop_margin, skip_missing))
    from challenge.features.audio_visual import clip_starts

    clips = []
    for folder in folders:
        seconds = len(np.load(folder / "fbank.npy", mmap_mode="r")) / 100
        clips += [ClipIndex(folder, float(t)) for t in clip_starts(seconds, config.clip_seconds, config.clip_seconds)]
    valid, train = held_out(len(clips), s.valid_items, s.seed)
    task = SocialMAETask(s, [clips[i] for i in train], [clips[i] for i in valid], device, skipped)
    c = task.model.config
    say(
        f"pretraining Social-MAE (width {c.width}, {c.modality_depth}+{c.joint_depth} blocks; audio {c.mel_bins}x{c.audio_frames}, "
        f"video {c.frames}x{c.image_size}px) from {task.origin} on {len(train)} clips of {c.clip_seconds:g} s ({len(valid)} held out)"
    )
    result = run_pretraining(task, out, s, device, dist, tracking_uri)
    say(f"pretrained Social-MAE: {out.resolve()} (pass it as --social-mae-model with --features social-mae, or as --init to continue)")
    return result
