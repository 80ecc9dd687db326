"""A PostgreSQL server for tests: ``$ZEROSEG_TEST_PG_URL``, or a throwaway local one.

Without ``$ZEROSEG_TEST_PG_URL``, :func:`pg_url` starts a private server from the Debian
``postgresql`` package (``/usr/lib/postgresql/*/bin``): initdb into a temporary folder, listening
only on a Unix socket in that folder, fsync off; stopped and deleted at the end of the session. As
root the server runs as the ``postgres`` user. When no server can be had the tests are skipped,
unless ``ZEROSEG_REQUIRE=1`` (CI), where that is a failure.

Tests import the fixture (``from pg_server import pg_url``) and isolate themselves with
:func:`isolated_schema`, which gives each test its own schema on the same database.
"""
from __future__ import annotations

import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from optional import unavailable

PG_URL_ENV = "ZEROSEG_TEST_PG_URL"
PG_BIN_GLOB = "/usr/lib/postgresql/*/bin"
DATABASE = "zeroseg_test"
USER = "zeroseg"


def _unavailable(reason: str) -> None:
    unavailable(f"PostgreSQL not available: {reason} (set {PG_URL_ENV} or install the postgresql package)")


def _bindir() -> Path | None:
    """The newest installed server's bin folder."""
    found = [p for p in Path("/").glob(PG_BIN_GLOB.lstrip("/")) if (p / "initdb").is_file()]
    return max(found, key=lambda p: _version(p.parent.name), default=None)


def _version(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in name.split(".") if part.isdigit())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A SQLAlchemy URL (``postgresql+psycopg://...``) of a database the tests may fill."""
    url = os.environ.get(PG_URL_ENV)
    if url:
        yield url
        return
    bindir = _bindir()
    if bindir is None:
        _unavailable(f"no server under {PG_BIN_GLOB}")
    with _throwaway_server(bindir) as url:  # type: ignore[arg-type]
        yield url


@contextmanager
def _throwaway_server(bindir: Path) -> Iterator[str]:
    folder = Path(tempfile.mkdtemp(prefix="zeroseg-pg-"))
    prefix: list[str] = []
    if os.geteuid() == 0:  # the server refuses to run as root
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(folder)
            _unavailable("running as root and there is no 'postgres' user to run the server")
        prefix = ["runuser", "-u", "postgres", "--"]
        shutil.chown(folder, "postgres", "postgres")
    data, port = folder / "data", _free_port()
    server = [
        "-p", str(port), "-k", str(folder), "-c", "listen_addresses=", "-c", "fsync=off",
        "-c", "full_page_writes=off", "-c", "synchronous_commit=off",
    ]  # fmt: skip
    started = False
    try:
        initdb = [str(bindir / "initdb"), "-D", str(data), "-U", USER, "-A", "trust", "-E", "UTF8", "--no-sync"]
        _run("initdb", [*prefix, *initdb])
        _run("pg_ctl start", [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(folder / "log"),
                              "-w", "-t", "60", "-o", " ".join(server), "start"])  # fmt: skip
        started = True
        admin = sa.create_engine(
            f"postgresql+psycopg://{USER}@/postgres?host={folder}&port={port}",
            isolation_level="AUTOCOMMIT",
            poolclass=sa.NullPool,
        )
        with admin.connect() as connection:
            connection.exec_driver_sql(f"CREATE DATABASE {DATABASE}")
        admin.dispose()
        yield f"postgresql+psycopg://{USER}@/{DATABASE}?host={folder}&port={port}"
    finally:
        if started:
            subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                           capture_output=True, check=False)  # fmt: skip
        shutil.rmtree(folder, ignore_errors=True)


def _run(what: str, command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        _unavailable(f"{what} failed: {' | '.join(tail)}")


@contextmanager
def isolated_schema(url: str) -> Iterator[str]:
    """``url`` pointed (through ``search_path``) at a new empty schema, dropped afterwards."""
    schema = f"test_{secrets.token_hex(6)}"
    admin = sa.create_engine(url, poolclass=sa.NullPool)
    with admin.begin() as connection:
        connection.exec_driver_sql(f"CREATE SCHEMA {schema}")
    scoped = sa.make_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield scoped.render_as_string(hide_password=False)
    finally:
        with admin.begin() as connection:
            connection.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()
