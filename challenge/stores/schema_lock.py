"""One process at a time creates or migrates a store's tables. MLflow and Optuna both create
their tables (and run alembic migrations) on first use; workers started together raced there
and died: on sqlite "duplicate column name: step", on PostgreSQL "duplicate key value ...
pg_type_typname_nsp_index" from two concurrent CREATE TYPE. A sqlite database is guarded by a
lock file beside it, a PostgreSQL database by an advisory lock held in the server, so workers
on several machines are serialised too. A tracking server (http://) serialises by itself."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock

DEFAULT_STORAGE = "sqlite:///optuna/studies.db"  # the project's own stores: the only sqlite folders a command makes
DEFAULT_TRACKING_URI = "sqlite:///mlflow/mlflow.db"
ADVISORY_KEY = 0x43484C47  # any fixed 32-bit number: the same key in every worker


def sqlite_path(url: str) -> Path | None:
    """The database file of a sqlite URL (relative or absolute), None for any other store."""
    return Path(url.removeprefix("sqlite:///")) if url.startswith("sqlite:///") else None


@contextmanager
def schema_lock(url: str):
    path = sqlite_path(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(f"{path}.lock", thread_local=False):
            yield
    elif url.startswith("postgresql"):
        with _advisory_lock(url):
            yield
    else:
        yield


@contextmanager
def _advisory_lock(url: str):
    import sqlalchemy

    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    with engine.connect() as connection:
        connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": ADVISORY_KEY})
        try:
            yield
        finally:
            connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), {"key": ADVISORY_KEY})
    engine.dispose()
