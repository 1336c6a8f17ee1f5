"""What trained cnn-gru runs read on real photographs that ship in wheels (scikit-image's
astronaut and cameraman, matplotlib's Grace Hopper): each face found by CenterFace, cut by the
run's own crop recipe, held for a full window of frames, through the run's live model (the
ONNX graphs `challenge live` runs). Beside it, the FER2013 network's P(happy) and P(neutral).
Not run by CI.

    .venv/bin/python benchmarks/photo_readings.py RUN_ID [RUN_ID ...] --tracking-uri sqlite:///mlflow/mlflow.db
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def photographs() -> dict[str, np.ndarray]:
    import matplotlib.cbook as cbook
    import skimage.data
    from PIL import Image

    return {
        "astronaut": skimage.data.astronaut(),
        "grace": np.asarray(Image.open(cbook.get_sample_data("grace_hopper.jpg")).convert("RGB")),
        "cameraman": np.stack([skimage.data.camera()] * 3, -1),
    }


def crops_of(size: int, margin: float) -> dict[str, np.ndarray]:
    from challenge.vision.faces import crop_face, make_detector, to_gray

    detector, out = make_detector("centerface", width=640), {}
    for name, rgb in photographs().items():
        found = detector.detect(rgb)
        k = found.largest()
        out[name] = crop_face(to_gray(rgb), found.boxes[k], size, margin, float(found.angles[k]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--tracking-uri", default=None)
    args = parser.parse_args()
    import torch

    from challenge.app.live.model import LiveModel
    from challenge.networks.fer import LABELS, fer_inputs, load_fer_network

    fer = load_fer_network()
    with torch.no_grad():
        probabilities = fer(fer_inputs(np.stack(list(crops_of(64, 0.25).values()))))[0].softmax(-1).numpy()
    for name, p in zip(photographs(), probabilities):
        print(f"FER {name}: happy {p[LABELS.index('happy')]:.3f}, neutral {p[LABELS.index('neutral')]:.3f}")
    for run in args.runs:
        model = LiveModel.from_run(run, args.tracking_uri)
        crops = crops_of(model.crops.size, model.crops.margin)
        for name, crop in crops.items():
            embedding = model.encode(crop.reshape(1, -1))
            reading = model.classify(np.repeat(embedding[None], model.window, axis=1))[0]
            top = np.argsort(reading)[::-1][:2]
            print(f"run {run[:8]} {name}: " + ", ".join(f"{model.labels[k]} {reading[k]:.3f}" for k in top))


if __name__ == "__main__":
    main()
