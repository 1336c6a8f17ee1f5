"""A run's fitted model, saved as an MLflow model: the head (weights and parameters), the
post-processing, the normalisation and the features it was trained on (their settings and
cache keys). `challenge predict RUN_ID --data DIR` reloads it and writes a validated
submission without retraining; `mlflow.pyfunc.load_model("runs:/RUN_ID/model")` gives the
same predictions as a table.

The model is data, never code (challenge.stores.saved_state): JSON and safetensors, rebuilt through
the head registry. The pyfunc wrapper is logged as MLflow's "model from code"
(challenge/run/pyfunc_model.py), so nothing in the run's artifacts is unpickled. Runs saved by
earlier versions hold a pickled `head.pt`: they are refused, and `challenge reexport RUN_ID
--trust-pickle` converts one whose origin the user trusts."""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd

from challenge.errors import ChallengeError
from challenge.postprocess import PostProcess
from challenge.track import Problem
from challenge.training.normalise import Normaliser

ARTIFACT = "model"  # the run's artifact path of the model
OLD_FORMAT = (
    "{where}: this model was saved by an earlier version as a pickle (head.pt), and loading a pickle can run any code "
    "that was put in it. It is not loaded. Retrain the run, or, if you trust everyone who could write to this run's "
    "artifacts, convert it once: `challenge reexport RUN_ID --trust-pickle`."
)
PYFUNC_CODE = Path(__file__).with_name("pyfunc_model.py")
FEATURE_SETTINGS = ("features", "extractors")


@dataclass
class SavedModel:
    track: str
    head: object  # a fitted challenge.heads.Head (or a zero-shot wrapper around one)
    post: PostProcess
    normaliser: Normaliser | None  # None for an end-to-end head: it reads media, not normalised features
    features: dict  # the run's feature settings (FEATURE_SETTINGS)
    feature_keys: dict[str, str]  # extractor label -> cache key the head was trained on
    zero_shot: bool = False

    def write(self, folder: Path) -> None:
        from challenge.stores.saved_state import write_model

        folder.mkdir(parents=True, exist_ok=True)
        write_model(getattr(self.head, "source_head", self.head), folder)  # a zero-shot head is saved as its source head
        (folder / "model.json").write_text(
            json.dumps(
                {
                    "track": self.track,
                    "post_processing": self.post.state(),
                    "normaliser": self.normaliser.state() if self.normaliser is not None else None,
                    "features": self.features,
                    "feature_keys": self.feature_keys,
                    "zero_shot": self.zero_shot,
                },
                indent=1,
            )
        )

    @classmethod
    def read(cls, folder: Path, trust_pickle: bool = False) -> SavedModel:
        """The saved model in `folder`. A pickled head (earlier versions) is read only with
        `trust_pickle`, which `challenge reexport --trust-pickle` alone passes."""
        from challenge.stores.saved_state import read_json, read_model

        if not (folder / "model.json").is_file():
            raise ChallengeError(f"{folder}: not a saved challenge model (model.json expected).")
        meta = read_json(folder / "model.json", "the saved model's description")
        if (folder / "head.json").is_file():
            head = read_model(folder)
        elif (folder / "head.pt").is_file() and trust_pickle:
            import torch

            head = torch.load(folder / "head.pt", weights_only=False, map_location="cpu")  # the user vouched for this file
        elif (folder / "head.pt").is_file():
            raise ChallengeError(OLD_FORMAT.format(where=folder))
        else:
            raise ChallengeError(f"{folder}: the saved model has no head.json: the artifact is incomplete; retrain the run.")
        if meta.get("zero_shot") and not hasattr(head, "source_head"):
            from challenge.registry import get_track

            head = get_track(meta["track"]).zero_shot.wrap(head)
        return cls(
            meta["track"],
            head,
            PostProcess.from_state(meta["post_processing"]),
            Normaliser.from_state(meta["normaliser"]) if meta["normaliser"] is not None else None,
            meta["features"],
            meta["feature_keys"],
            meta.get("zero_shot", False),
        )


class ChallengeModel(mlflow.pyfunc.PythonModel):
    """pyfunc face of a run's model: input a table with a `data` column (dataset roots), output
    one row per test clip or video with what its submission file is written from: decided
    predictions (per-frame tracks: a list per video), class probabilities for a two-class clip
    track (ah), whose decision is their argmax."""

    def load_context(self, context):
        self.saved = SavedModel.read(Path(context.artifacts["model"]))

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        from challenge.registry import get_track

        spec = get_track(self.saved.track)
        rows = []
        for root in model_input["data"]:
            ids, decisions = predict_test(spec, self.saved, Path(root))
            rows.extend({"data": root, "id": i, "prediction": d.tolist()} for i, d in zip(ids, decisions))
        return pd.DataFrame(rows)


def save_model(head, post: PostProcess, normaliser: Normaliser, spec, config, keys: dict[str, str]) -> None:
    """Log the run's model to the active MLflow run."""
    log_saved(
        SavedModel(spec.name, head, post, normaliser, {k: getattr(config, k) for k in FEATURE_SETTINGS}, keys, bool(config.zero_shot))
    )


def log_saved(saved: SavedModel) -> None:
    import mlflow

    pyfunc_log = logging.getLogger("mlflow.pyfunc")
    level = pyfunc_log.level
    pyfunc_log.setLevel(logging.ERROR)  # its note that a DataFrame type hint gives no signature is about the wrapper
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "state"
        saved.write(folder)
        mlflow.pyfunc.log_model(
            name=ARTIFACT, python_model=str(PYFUNC_CODE), artifacts={"model": str(folder)}, pip_requirements=["challenge"]
        )
    pyfunc_log.setLevel(level)
    mlflow.set_tag("model", f"runs:/{mlflow.active_run().info.run_id}/{ARTIFACT}")


def full_run_id(run_id: str, tracking_uri: str | None) -> str:
    """The run an id names: a whole MLflow id, or the first characters that `challenge runs`
    prints, when exactly one run starts with them."""
    import mlflow

    if len(run_id) == 32:
        return run_id
    matches = sorted(
        {r.info.run_id for r in mlflow.search_runs(search_all_experiments=True, output_format="list") if r.info.run_id.startswith(run_id)}
    )
    if len(matches) == 1:
        return matches[0]
    where = tracking_uri or "sqlite:///mlflow/mlflow.db"
    if not matches:
        raise ChallengeError(
            f"run {run_id}: no run in {where} has an id starting with it; `challenge runs TRACK` lists them "
            "(pass --tracking-uri if the run is in another store)."
        )
    raise ChallengeError(
        f"run {run_id}: {len(matches)} runs start with it ({', '.join(m[:12] for m in matches[:10])}); give more of the id."
    )


def reexport(run_id: str, tracking_uri: str | None) -> str:
    """Convert a run saved with a pickled head (earlier versions) into the data format, logged
    to the same run; only for runs whose artifacts the user trusts. Returns the model URI."""
    import mlflow

    folder = _download_state(run_id, tracking_uri)
    saved = SavedModel.read(folder, trust_pickle=True)
    run_id = full_run_id(run_id, tracking_uri)
    with mlflow.start_run(run_id=run_id):
        log_saved(saved)
    return mlflow.get_run(run_id).data.tags["model"]


def load_run_model(run_id: str, tracking_uri: str | None) -> SavedModel:
    return SavedModel.read(_download_state(run_id, tracking_uri))


def _download_state(run_id: str, tracking_uri: str | None) -> Path:
    import mlflow

    from challenge.stores import tracking

    tracking_uri = tracking.connect(tracking_uri)  # the store it resolves to names it in messages
    run_id = full_run_id(run_id, tracking_uri)
    model_uri = f"runs:/{run_id}/{ARTIFACT}"
    try:  # a run over several seeds names the model it stands for (its first seed's) in its `model` tag
        model_uri = mlflow.get_run(run_id).data.tags.get("model", model_uri)
    except Exception:  # noqa: BLE001  (an unknown run: the download below says so)
        pass
    try:
        return Path(mlflow.artifacts.download_artifacts(f"{model_uri}/artifacts/state"))
    except Exception as error:  # noqa: BLE001  (MLflow raises several kinds for an absent run or artifact)
        raise ChallengeError(
            f"run {run_id}: no saved model in {tracking_uri or 'sqlite:///mlflow/mlflow.db'} ({type(error).__name__}); "
            "runs log their model since this version, and control runs too: check the id with `challenge runs TRACK`."
        ) from error


def predict_test(spec, saved: SavedModel, root: Path, store: str | None = None, device: str = "auto"):
    """(test ids, predictions per id as the track's writer takes them) of a saved model on a
    dataset's test split."""
    from challenge.config import RunConfig
    from challenge.run.prepare import extract_all, split_builder

    config = RunConfig(track=spec.name, data=str(root), store=store, device=device, **saved.features)
    read = spec.zero_shot.read if saved.zero_shot else spec.read
    samples = read(root)
    test = samples.split("test")
    if not test:
        raise ChallengeError(f"{root}: no test {spec.items} found: nothing to predict.")
    if getattr(saved.head, "reads", "features") == "media":  # an end-to-end head: the track's loader, its own backbone
        from challenge.run.prepare import frame_lengths

        data = spec.media[saved.head.medium](test, frame_lengths(spec, config, test) if spec.problem.per_frame else None)
        return _decided(spec, saved, data)
    store_, extractors, digests, keys = extract_all(test, config)
    changed = {label: (keys.get(label), key) for label, key in saved.feature_keys.items() if keys.get(label) != key}
    if changed:
        raise ChallengeError(
            "the features differ from those the model was trained on (extractor: now vs then): "
            + ", ".join(f"{k}: {a} vs {b}" for k, (a, b) in changed.items())
            + ". Pass the same models (the run's resolved_config.yaml names them)."
        )
    data = split_builder(spec, config, samples)(test, extractors, store_, digests).normalise_with(saved.normaliser)
    return _decided(spec, saved, data)


def _decided(spec, saved: SavedModel, data):
    outputs = saved.head.predict(data)
    if spec.problem.per_frame:
        return data.ids, [saved.post.apply(o, [len(o)]) for o in outputs]
    if spec.problem == Problem.CLIP_CLASSIFICATION:  # as the run wrote them: probabilities after the decision rule (their argmax)
        return data.ids, list(saved.post.calibrate(np.asarray(outputs)))
    return data.ids, list(saved.post.apply(outputs, [1] * len(outputs)))
