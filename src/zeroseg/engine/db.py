"""Database location, engines and schema migrations.

Where the store lives is one rule, :func:`resolve_url`, used by ``zeroseg serve`` and every
``zeroseg engine`` command alike; first match wins: an explicit SQLAlchemy URL (``sqlite:///...``,
``postgresql+psycopg://user@host/db``); an explicit folder (the SQLite file ``zeroseg.db`` inside it);
``$ZEROSEG_DB``; ``zeroseg.db`` in zeroseg's home (``$ZEROSEG_HOME``, see :func:`zeroseg.hub.cache_dir`).
One store holds many datasets, each with its own root folder, so a dataset made by the app is found
by the engine commands (by name, or by its folder) without naming the database.

SQLite connections run in WAL mode (readers never block the writer) with foreign keys on and a
busy timeout, and every transaction starts with an explicit ``BEGIN`` (``BEGIN IMMEDIATE`` for
writes, so a write transaction holds the write lock from its first read and cannot fail halfway on a
lock). :func:`upgrade` brings a database to the newest schema with Alembic; the Alembic settings live
here, not in an ini file, so they work from an installed package.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from zeroseg import hub
from zeroseg.errors import ConfigError, DatasetError

DB_ENV = "ZEROSEG_DB"
DB_FILENAME = "zeroseg.db"
SQLITE_BUSY_TIMEOUT_MS = 30_000
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
WRITE = {"zeroseg_write": True}
"""Execution options of a connection that will write (see :func:`writer`)."""

_MIGRATION_LOCK = 0x7A65_726F_7365_67  # PostgreSQL advisory lock key held while migrating


def resolve_url(location: str | os.PathLike[str] | None = None) -> str:
    """The database URL for ``location``: a URL, a folder (SQLite file inside it) or None (the default).

    The one rule for where a dataset's database lives (see the module docstring).
    """
    if location is None:
        location = os.environ.get(DB_ENV) or hub.cache_dir()
    text = os.fspath(location)
    if "://" in text:
        return text
    folder = Path(text).expanduser()
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{folder} is not a folder: give a dataset folder or a database URL")
    return f"sqlite:///{(folder / DB_FILENAME).resolve()}"


def exists(url: str) -> bool:
    """Whether the database at ``url`` is there already (a server database is taken to be)."""
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError as err:
        raise ConfigError(f"not a database URL: {url!r} ({err})") from None
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return True
    return Path(parsed.database).exists()


def display_url(url: str) -> str:
    """``url`` as it can be shown to a user: any password masked."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return url


def create_engine(url: str) -> sa.Engine:
    """An engine for ``url``; SQLite files get their folder created and the pragmas described above."""
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError as err:
        raise ConfigError(f"not a database URL: {url!r} ({err})") from None
    if parsed.get_backend_name() != "sqlite":
        try:
            return sa.create_engine(parsed, pool_pre_ping=True)
        except (sa.exc.ArgumentError, ImportError) as err:
            raise ConfigError(f"cannot use database URL {parsed!r}: {err}") from None
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(parsed)
    sa.event.listen(engine, "connect", _sqlite_connect)
    sa.event.listen(engine, "begin", _sqlite_begin)
    return engine


def writer(engine: sa.Engine) -> sa.Engine:
    """A view of ``engine`` whose transactions are write transactions (``BEGIN IMMEDIATE`` on SQLite)."""
    return engine.execution_options(**WRITE)


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # we issue BEGIN ourselves (see _sqlite_begin)
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.close()


def _sqlite_begin(connection: sa.Connection) -> None:
    write = connection.get_execution_options().get("zeroseg_write", False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


# --- migrations ---------------------------------------------------------------------------
def alembic_config(connection: sa.Connection | None = None, url: str | None = None) -> Config:
    """Alembic settings for zeroseg's migrations, run on ``connection`` (or a new one to ``url``).

    To write a new revision after changing ``schema.py``::

        command.revision(alembic_config(url="sqlite:///scratch.db"), autogenerate=True, message="...")
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["connection"] = connection
    return config


def current_revision(connection: sa.Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: sa.Engine) -> None:
    """Bring the database to the newest schema; a no-op (one read) when it is there already.

    Concurrent openers are serialised: the migration runs in one write transaction (SQLite) or
    under an advisory lock (PostgreSQL), and re-checks the revision once it holds the lock. On
    SQLite foreign keys are off while it runs (Alembic rebuilds tables to alter them, and dropping
    the old table would cascade to the rows that refer to it) and checked before it commits.
    """
    scripts = ScriptDirectory.from_config(alembic_config())
    head = scripts.get_current_head()
    with engine.connect() as connection:
        if current_revision(connection) == head:
            return
    with writer(engine).connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:  # a revision that rebuilds a table must not cascade-delete the rows that refer to it
            _sqlite_foreign_keys(connection, False)
        try:
            with connection.begin():
                if connection.dialect.name == "postgresql":
                    connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
                current = current_revision(connection)
                if current == head:
                    return
                if current is not None and current not in {script.revision for script in scripts.walk_revisions()}:
                    raise DatasetError(
                        f"the database has schema revision {current!r}, unknown to this zeroseg: upgrade it"
                    )
                command.upgrade(alembic_config(connection), "head")
                if sqlite and connection.exec_driver_sql("PRAGMA foreign_key_check").first() is not None:
                    raise DatasetError("the schema upgrade left rows whose references are broken: nothing was changed")
        finally:
            if sqlite:
                _sqlite_foreign_keys(connection, True)


def _sqlite_foreign_keys(connection: sa.Connection, on: bool) -> None:
    """Switch SQLite's foreign keys (only possible outside a transaction, so on the raw connection)."""
    connection.connection.driver_connection.execute(f"PRAGMA foreign_keys = {'ON' if on else 'OFF'}")
