"""Whether a store a command will use can be used, checked once per process before any work:
its kind, its database driver, a tracking server that answers, a sqlite file that is a
database and not locked for long, in a folder that exists."""

from __future__ import annotations

from pathlib import Path

from challenge.errors import ChallengeError

SQL_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql", "oracle")
TRACKING_SCHEMES = ("http", "https", "file", "databricks", *SQL_SCHEMES)

LOCK_WAIT_SECONDS = 60  # how long a command waits for a sqlite store another process is writing
_CHECKED: set[str] = set()


def check_store(url: str, option: str, default: str) -> None:
    """A study store (--storage) or a run store (--tracking-uri) that the command can use, checked
    once per process before any work: its kind, its database driver, a tracking server that
    answers, a sqlite file that is a database, not locked for long, in a folder that exists
    (only the project's default folder is made; a mistyped path never makes folders)."""
    key = _checked_key(url)
    if key in _CHECKED:
        return
    schemes = SQL_SCHEMES if option == "--storage" else TRACKING_SCHEMES
    check_url(
        url,
        schemes,
        option,
        "sqlite:///optuna/studies.db or postgresql+psycopg2://user@host/db"
        if option == "--storage"
        else "sqlite:///mlflow/mlflow.db or http://host:5000",
    )
    if url.startswith(("http://", "https://")):
        check_server_answers(url, option)
    elif url.partition("://")[0].split("+")[0].lower() in SQL_SCHEMES:
        _check_driver(url, option)
        _check_sqlite(url, option, url == default)
    _CHECKED.add(_checked_key(url))


def _checked_key(url: str) -> str:
    """Once per process and store; a sqlite file that changed since (replaced, truncated) is checked again."""
    from challenge.stores.schema_lock import sqlite_path

    path = sqlite_path(url)
    if path is None or not path.is_file():
        return url
    stat = path.stat()
    return f"{url}@{stat.st_size}:{stat.st_mtime_ns}"


def check_server_answers(url: str, option: str, timeout: float = 5.0) -> None:
    import time
    import urllib.error
    import urllib.request

    start = time.monotonic()
    try:
        urllib.request.urlopen(url.rstrip("/") + "/health", timeout=timeout)
    except urllib.error.HTTPError:
        pass  # it answers (a proxy or an older server without /health)
    except (OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        raise ChallengeError(
            f"{option} {url} does not answer ({reason}, after {time.monotonic() - start:.1f} s): start the "
            "tracking server (mlflow server --host ... --port ...), or correct the address."
        ) from None


def _check_driver(url: str, option: str) -> None:
    import sqlalchemy

    try:
        sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool).dispose()  # imports the driver, connects to nothing
    except ImportError as error:
        dialect = url.partition("://")[0]
        hint = " (for MySQL: pip install PyMySQL into .venv and write mysql+pymysql://...)" if dialect.startswith("mysql") else ""
        raise ChallengeError(
            f"{option} {url}: the database driver for {dialect} is not installed ({error}). Install it{hint}, "
            "or use sqlite:/// or postgresql:// (both work as installed)."
        ) from None
    except sqlalchemy.exc.ArgumentError as error:
        raise ChallengeError(f"{option} {url}: not a database URL SQLAlchemy can read ({error}).") from None


def _check_sqlite(url: str, option: str, is_default: bool) -> None:
    from challenge.stores.schema_lock import sqlite_path

    path = sqlite_path(url)
    if path is None:
        return
    blocking = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise ChallengeError(f"{option} {url}: {blocking} is a file, not a folder. Name a database under an existing folder.")
    if not path.parent.exists():
        if not is_default:
            raise ChallengeError(
                f"{option} {url}: the folder {path.parent} does not exist. Create it (mkdir -p {path.parent}) "
                "or correct the path; folders are not made for a path you name."
            )
        path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        _check_database(path, option, url)


def _check_database(path: Path, option: str, url: str) -> None:
    import sqlite3

    from challenge.progress import say

    if path.is_dir():
        raise ChallengeError(f"{option} {url}: {path} is a folder, not a database file.")
    try:
        connection = sqlite3.connect(path, timeout=2)
    except sqlite3.Error as error:
        raise ChallengeError(f"{option} {url}: {path} cannot be opened ({error}).") from None
    try:
        problem = connection.execute("PRAGMA quick_check(1)").fetchone()[0]
        if problem != "ok":
            raise sqlite3.DatabaseError(problem)
        try:
            _take_write_lock(connection)
        except sqlite3.OperationalError as error:
            if "locked" not in str(error):
                raise
            say(f"[yellow]waiting for {path}: another process is writing to it (up to {LOCK_WAIT_SECONDS} s)[/]")
            connection.execute(f"PRAGMA busy_timeout = {LOCK_WAIT_SECONDS * 1000}")
            try:
                _take_write_lock(connection)
            except sqlite3.OperationalError:
                raise ChallengeError(
                    f"{option} {url}: {path} stayed locked by another process for {LOCK_WAIT_SECONDS} s. Wait for it to finish, "
                    "or, for several commands at once, use a server (a PostgreSQL URL, or a tracking server: see `challenge serve`)."
                ) from None
    except sqlite3.DatabaseError as error:
        raise ChallengeError(
            f"{option} {url}: {path} is not a readable SQLite database ({error}): a truncated copy, a full disk or another kind of "
            f"file. Restore it from a backup, or move it away (mv {path} {path}.broken) and the next command starts an empty one."
        ) from None
    finally:
        connection.close()


def _take_write_lock(connection) -> None:
    connection.execute("BEGIN IMMEDIATE")
    connection.execute("ROLLBACK")


def check_url(url: str, schemes: tuple[str, ...], option: str, example: str) -> None:
    scheme = url.partition("://")[0].split("+")[0].lower() if "://" in url else ""
    if scheme == "postgres":
        raise ChallengeError(
            f"{option} {url}: write postgresql:// (SQLAlchemy no longer accepts the postgres:// spelling), "
            f"e.g. {url.replace('postgres://', 'postgresql+psycopg2://', 1)}"
        )
    if scheme not in schemes:
        raise ChallengeError(
            f"{option} {url}: unknown kind of store {scheme or '(no scheme)'!r}; expected one of "
            f"{', '.join(s + '://' for s in schemes)}, e.g. {example}"
        )
