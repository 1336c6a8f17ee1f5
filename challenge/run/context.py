"""The one run context every pipeline runs in (leaderboard tracks, study tracks, fine-tuning,
ensembles): the seed set everywhere, the device, the MLflow experiment and run with its tags,
parameters and resolved config, the run's output folder, the record of the chosen parameters
and the saving of the model. How a candidate model is fitted and scored is the protocol's
business (challenge.run.protocols: hold-out, grouped folds, seeds as nested runs).

    with RunContext(spec, config).start(fingerprint, keys) as run:
        fit = get_protocol(config.protocol)(spec, config, head_cls, device).fitter(train, valid)
        fitted = fit_head(spec, config, head_cls, fit, fingerprint, key)
        run.record(fitted.params, fitted.provenance)
        run.save_model(head, post, normaliser, keys)
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from challenge.config import RunConfig, resolved_yaml
from challenge.track import TrackSpec


class RunContext:
    def __init__(self, spec: TrackSpec, config: RunConfig, kind: str = "track"):
        from challenge.features.base import resolve_device
        from challenge.seeding import seed_everything

        self.spec, self.config, self.kind = spec, config, kind
        seed_everything(config.seed)
        self.device = resolve_device(config.device)
        self.run_id: str | None = None
        self._out: Path | None = None

    def default_name(self, *parts: str) -> str:
        c = self.config
        return "-".join([*parts, c.head, "+".join(c.features)]) + ("-shuffled" if c.shuffle_labels else "")

    @contextlib.contextmanager
    def start(
        self,
        fingerprint: str | None,
        keys: dict[str, str],
        name: str | None = None,
        params: dict | None = None,
        sections: dict | None = None,
        **tags,
    ):
        """The MLflow run (nested under an active one: a seed of a seeds run), tagged as every
        run of its kind is, with the run's parameters and its resolved config."""
        import mlflow

        from challenge.stores import tracking

        c = self.config
        experiment = tracking.setup(c.tracking_uri, self.spec.name)
        nested = mlflow.active_run() is not None
        with mlflow.start_run(experiment_id=experiment, run_name=name or self.default_name(), nested=nested) as active:
            self.run_id = active.info.run_id
            mlflow.set_tags(tracking.run_tags(self.kind, self.spec.name, c, c.head, fingerprint, keys, **tags))
            mlflow.log_params({"features": ",".join(c.features), "head": c.head, "seed": c.seed, "tune": c.tune, **(params or {})})
            mlflow.log_text(resolved_yaml(c, **(sections or {})), "resolved_config.yaml")
            yield self

    @property
    def out(self) -> Path:
        """The run's folder (submissions/TRACK/RUN_ID, or --out)."""
        if self._out is None:
            from challenge.run.finish import out_dir

            self._out = out_dir(self.config, self.spec, self.run_id)
        return self._out

    def record(self, params: dict, provenance: dict, **scores) -> None:
        """The chosen head parameters: MLflow params (head.*) and best_params.json."""
        import mlflow

        from challenge.stores import tracking

        mlflow.log_params(tracking.flatten("head.", params))
        (self.out / "best_params.json").write_text(
            json.dumps({"params": params, "provenance": provenance, **scores}, indent=1, default=str)
        )

    def save_model(self, head, post, normaliser, keys: dict[str, str]) -> None:
        from challenge.run.saved_model import save_model

        save_model(head, post, normaliser, self.spec, self.config, keys)
