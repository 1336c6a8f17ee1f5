"""One process at a time creates or migrates a local sqlite store. MLflow and Optuna both create
their tables (and run alembic migrations) on first use; two commands started together on a
fresh working directory raced there and one died ("duplicate column name: step"). Servers
(PostgreSQL, an MLflow tracking server) serialise this themselves: no lock for them."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock


def sqlite_path(url: str) -> Path | None:
    """The database file of a sqlite URL (relative or absolute), None for any other store."""
    return Path(url.removeprefix("sqlite:///")) if url.startswith("sqlite:///") else None


@contextmanager
def schema_lock(url: str):
    path = sqlite_path(url)
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{path}.lock", thread_local=False):
        yield
