"""Reading runs back from the MLflow store."""

from __future__ import annotations

MULTITASK_EXPERIMENT = "affwild-multitask"  # challenge.run.multitask's runs' experiment (defined here, read by both)


def best_runs(track: str, tracking_uri: str | None, limit: int = 10, every_state: bool = False) -> list[dict]:
    """The best finished runs, or with `every_state` the latest runs whatever became of them
    (RUNNING, FAILED, KILLED: the state is a column)."""
    import mlflow

    runs = mlflow.search_runs(
        experiment_ids=track_experiments(track, tracking_uri),
        filter_string="" if every_state else "attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"] if every_state else ["metrics.score DESC"],
    )
    if runs.empty or "tags.challenge.kind" not in runs:
        return []
    runs = runs[runs_of_track(runs, track, ("track", "ensemble"))].head(limit)  # not trials or members
    rows = []
    for _, run in runs.iterrows():
        ensemble = run.get("tags.challenge.kind") == "ensemble"
        multitask = run.get("tags.challenge.kind") == "multitask-task"
        params = {
            k.removeprefix("params.head."): v for k, v in run.items() if str(k).startswith("params.head.") and isinstance(v, str)
        }  # NaN: a run without that parameter
        key = ", ".join(f"{k}={_short(v)}" for k, v in sorted(params.items()) if k not in ("epochs", "patience", "batch_size"))
        state = {"state": run["status"]} if every_state else {}
        rows.append(
            {
                "run": run["run_id"][:8],
                **state,
                "date": run["start_time"].strftime("%Y-%m-%d %H:%M") if run["start_time"] is not None else "",
                "kind": (
                    f"ensemble ({run.get('tags.ensemble.split')}, {run.get('tags.ensemble.rule')})"
                    if ensemble
                    else "multi-task"
                    if multitask
                    else "single"
                ),
                "score": f"{run.get('metrics.score', float('nan')):.4f}" + (" oof" if ensemble else ""),
                "head": run.get("tags.head", ""),
                "features": run.get("tags.features", ""),
                "tuned": run.get("params.tune", ""),
                "shuffled": run.get("tags.shuffled_labels", ""),
                "key params": key,
            }
        )
    return rows


def counted_track(tags: dict) -> str | None:
    """The track a run counts for: a `challenge multitask` task run (kind multitask-task) for
    its task, every other run for its `track` tag."""
    return tags.get("task") if tags.get("challenge.kind") == "multitask-task" else tags.get("track")


def runs_of_track(runs, track: str, kinds: tuple[str, ...]):
    """Mask of the rows of an `mlflow.search_runs` table over `track_experiments(track)` that
    are `kinds` runs (only the track's own experiment holds those; a run killed early may lack
    its track tag) or task runs of `challenge multitask` for this track."""
    own = runs["tags.challenge.kind"].isin(kinds)
    if "tags.task" in runs:
        own |= (runs["tags.challenge.kind"] == "multitask-task") & (runs["tags.task"] == track)
    return own


def track_experiments(track: str, tracking_uri: str | None) -> list[str]:
    """The experiments that hold a track's runs: its own, and for the Aff-Wild2 tasks the
    `challenge multitask` experiment, whose task runs are tagged with their task."""
    import mlflow

    from challenge.stores import tracking

    ids = [tracking.setup(tracking_uri, track)]
    multitask = mlflow.get_experiment_by_name(MULTITASK_EXPERIMENT)
    if multitask is not None:
        ids.append(multitask.experiment_id)
    return ids


def _short(value: str) -> str:
    """Parameters come back as strings; floats shown with 3 significant digits."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return str(int(number)) if number.is_integer() and "." not in str(value) else f"{number:.3g}"


def best_tuned_parameters(track: str, tuning_key: str, fingerprint: str, tracking_uri: str | None):
    """(params, provenance) of the best finished, tuned, unshuffled `challenge track` run with
    this tuning key (features' cache keys, head, search space; see challenge.stores.tuning) on this
    data, or None."""
    import mlflow

    from challenge.stores import tracking

    experiment = tracking.setup(tracking_uri, track)
    runs = mlflow.search_runs(
        experiment_ids=[experiment],
        order_by=["metrics.score DESC"],
        max_results=1,
        filter_string=(
            f"tags.`challenge.kind` = 'track' and attributes.status = 'FINISHED' and params.tune = 'True' "
            f"and tags.tuning_key = '{tuning_key}' "
            f"and tags.data_fingerprint = '{fingerprint}' and tags.shuffled_labels = 'False'"
        ),
    )
    if runs.empty:
        return None
    run = runs.iloc[0]
    saved = mlflow.artifacts.load_dict(f"runs:/{run['run_id']}/best_params.json")
    return saved["params"], {**saved.get("provenance", {}), "source": "track run", "run": run["run_id"], "score": saved.get("score")}
