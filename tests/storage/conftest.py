"""A fresh database per test, on each backend storage promises to support (no mocks).

`database` (and the `store` opened on it) is parametrized over the backends:

- `sqlite`: a new file in the test's tmp_path;
- `postgres`: a new database `evocade_t_<uuid>` on the server at EVOCADE_TEST_POSTGRES_URL
  (start one with `eval "$(scripts/postgres.sh start)"`), dropped after the test. Without that
  variable, or without an answering server, the variant is skipped with the reason, except
  where EVOCADE_REQUIRE_BACKENDS names `postgres` (CI), where it fails instead.

Tests about the SQLite file itself (its header and bytes, WAL, corrupt files, kill -9 of a
writer) take `db_path` instead and run on SQLite only: a server database has no file to
damage or compare, and a killed client cannot tear a PostgreSQL transaction.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy import exc as sa_exc

from storage import Store

POSTGRES_URL_VARIABLE = "EVOCADE_TEST_POSTGRES_URL"
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def _postgres_required() -> bool:
    # Same rule as tests/conftest.py: a backend CI names must be there; a skip would hide it.
    required = os.environ.get("EVOCADE_REQUIRE_BACKENDS", "").split(",")
    return "postgres" in {name.strip() for name in required}


def _unavailable(reason: str) -> NoReturn:
    if _postgres_required():
        pytest.fail(f"backend postgres is required here but unavailable: {reason}")
    pytest.skip(f"backend postgres unavailable: {reason}")


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[Engine]:
    """An autocommit engine on the server's test database, to create and drop databases."""
    url = os.environ.get(POSTGRES_URL_VARIABLE, "").strip()
    if not url:
        _unavailable(f"{POSTGRES_URL_VARIABLE} is not set (see scripts/postgres.sh)")
    try:
        engine = create_engine(url, isolation_level="AUTOCOMMIT", pool_size=1)
    except (sa_exc.ArgumentError, ImportError) as error:  # not a URL, or psycopg missing
        _unavailable(f"cannot use {POSTGRES_URL_VARIABLE}: {error}")
    if engine.dialect.name != "postgresql":
        _unavailable(f"{POSTGRES_URL_VARIABLE} is a {engine.dialect.name} URL, not PostgreSQL")
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except sa_exc.DBAPIError as error:
        engine.dispose()
        first_line = str(error.orig or error).strip().splitlines()[0]
        _unavailable(f"{engine.url.render_as_string(hide_password=True)}: {first_line}")
    yield engine
    engine.dispose()


@pytest.fixture
def postgres_url(postgres_admin: Engine) -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database, dropped after the test."""
    name = f"evocade_t_{uuid.uuid4().hex}"
    with postgres_admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = postgres_admin.url.set(database=name)
    yield url.render_as_string(hide_password=False)
    with postgres_admin.connect() as connection:
        # FORCE: a test that failed with a Store still open must not leave the database behind.
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """A SQLite file path, for tests about the file itself (SQLite only)."""
    return tmp_path / "evocade.db"


@pytest.fixture(params=BACKENDS)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str | Path:
    """Where a new, empty database lives: a SQLite file path, or a PostgreSQL URL."""
    if request.param == "postgres":
        return request.getfixturevalue("postgres_url")
    return tmp_path / "evocade.db"


@pytest.fixture
def store(database: str | Path) -> Iterator[Store]:
    with Store.open(database) as opened:
        yield opened
