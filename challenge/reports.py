"""Reading runs back from the MLflow store."""

from __future__ import annotations


def best_runs(track: str, tracking_uri: str | None, limit: int = 10) -> list[dict]:
    import mlflow

    from challenge import tracking

    experiment = tracking.setup(tracking_uri, track)
    runs = mlflow.search_runs(
        experiment_ids=[experiment], filter_string="tags.`challenge.kind` = 'track' and attributes.status = 'FINISHED'",
        order_by=["metrics.score DESC"], max_results=limit,
    )
    rows = []
    for _, run in runs.iterrows():
        params = {k.removeprefix("params.head."): v for k, v in run.items() if str(k).startswith("params.head.") and v is not None}
        key = ", ".join(f"{k}={_short(v)}" for k, v in sorted(params.items()) if k not in ("epochs", "patience", "batch_size"))
        rows.append({
            "run": run["run_id"][:8],
            "date": run["start_time"].strftime("%Y-%m-%d %H:%M") if run["start_time"] is not None else "",
            "score": f"{run.get('metrics.score', float('nan')):.4f}",
            "head": run.get("tags.head", ""),
            "features": run.get("tags.features", ""),
            "tuned": run.get("params.tune", ""),
            "shuffled": run.get("tags.shuffled_labels", ""),
            "key params": key,
        })
    return rows


def _short(value: str) -> str:
    """Parameters come back as strings; floats shown with 3 significant digits."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return str(int(number)) if number.is_integer() and "." not in str(value) else f"{number:.3g}"
