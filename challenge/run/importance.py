"""Which input columns a fitted clip head leans on, by name: the store records each extractor's
column names (FeatureStore.columns), and the heads with a native measure (LightGBM's gain, the
linear heads' coefficients) report it here as a table and a bar plot beside the run's other files."""

from __future__ import annotations

from pathlib import Path

import numpy as np

TABLE, PLOT = "feature_importance.csv", "feature_importance.png"
SHOWN = 20  # columns in the plot; the table holds them all


def report_importance(head, data, out: Path) -> str | None:
    """Writes the table and the plot under `out`; returns the line the run prints, or None when
    the head has no measure or its width is not the data's (then there is nothing to name)."""
    # a combined model (--select out-of-fold's average) is not a Head and has no measure
    measured = head.importance() if hasattr(head, "importance") else None
    names = data.pooled_columns() if hasattr(data, "pooled_columns") else None
    if measured is None or names is None or len(measured[0]) != len(names):
        return None
    import pandas as pd

    from challenge.plots import importance_plot

    values, measure = measured
    values = np.asarray(values, dtype=float)
    order = np.argsort(-values, kind="stable")
    share = values / values.sum() if values.sum() > 0 else np.zeros_like(values)
    table = pd.DataFrame({"column": [names[i] for i in order], "importance": values[order], "share": share[order]})
    table.to_csv(out / TABLE, index=False)
    importance_plot(table["column"][:SHOWN].tolist(), table["importance"][:SHOWN].to_numpy(), f"{head.name}: {measure}", out / PLOT)
    top = ", ".join(f"{row.column} ({100 * row.share:.0f} %)" for row in table.head(3).itertuples())
    return f"most important inputs ({head.name}, {measure}): {top}; all in {out / TABLE}"
