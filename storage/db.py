"""Engine and session factory; SQLite gets WAL, a busy timeout and write-locking transactions."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Column, MetaData, PrimaryKeyConstraint, String, Table, event, insert, inspect, select, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import PoolResetState

if TYPE_CHECKING:
    from alembic.config import Config

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
BUSY_TIMEOUT_MS = 30_000
POOL_WAIT_S = 120.0
"""How long a unit of work waits for SQLite's one connection in this process (queued, in order, not polling)."""


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """An async engine. On SQLite every transaction is `BEGIN IMMEDIATE`.

    pysqlite (and so aiosqlite) opens a transaction lazily at the first write, so a read-modify-write
    reads outside any transaction and two of them silently overwrite each other. Taking the write lock
    at BEGIN serializes them; the busy timeout makes the second one wait instead of failing.

    Within one process every transaction takes that lock, so a file database gets a pool of one
    connection: units of work queue for it in order, instead of each holding a connection while
    SQLite's busy handler polls for the lock. A burst of commands then waits its turn rather than
    exhausting the pool ("QueuePool limit … reached") or the busy timeout ("database is locked").
    """
    if is_sqlite(url):
        one_at_a_time = {"pool_size": 1, "max_overflow": 0, "pool_timeout": POOL_WAIT_S}
        # the connection is in autocommit mode (isolation_level None): its transactions are the explicit
        # BEGIN IMMEDIATE below, which SQLAlchemy ends itself (commit, rollback, or rollback at close), so
        # the pool's own rollback after every commit would be one more round trip to the driver's thread;
        # `_on_reset` rolls back only what is still open
        options: dict[str, Any] = {
            **({} if ":memory:" in url else one_at_a_time),
            "pool_reset_on_return": None,
            **kwargs,
        }
        from storage import one_trip  # SQLite only

        connect_args = {"timeout": BUSY_TIMEOUT_MS / 1000, "async_creator_fn": one_trip.connect}
        engine = create_async_engine(url, connect_args=connect_args, **options)

        @event.listens_for(engine.sync_engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            if ":memory:" not in url:
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        @event.listens_for(engine.sync_engine, "begin")
        def _on_begin(connection: Connection) -> None:
            connection.exec_driver_sql("BEGIN IMMEDIATE")

        @event.listens_for(engine.sync_engine, "reset")
        def _on_reset(dbapi_connection: Any, _record: Any, state: PoolResetState) -> None:
            # a transaction SQLAlchemy could not end (a COMMIT that failed leaves SQLite inside it, holding
            # the write lock) is rolled back before the one connection serves anyone else
            if state.asyncio_safe and dbapi_connection._connection.in_transaction:
                dbapi_connection.rollback()

        return engine
    return create_async_engine(url, pool_pre_ping=True, **kwargs)


UNABLE_SQLSTATES = ("08", "53", "57P", "58", "25006")
"""PostgreSQL classes of "cannot do it now": connection lost, out of disk or memory, shutting down, I/O
error, read-only transaction."""


def write_failure(exc: BaseException) -> str | None:
    """The cause, when `exc` is the database failing to write (disk full, I/O error, read-only, gone), else
    None (a constraint violation or a wrong statement is a bug to report, not the database failing)."""
    if not isinstance(exc, DBAPIError):
        return None
    orig = exc.orig if exc.orig is not None else exc
    sqlstate = str(getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None) or "")
    unable = isinstance(exc, OperationalError | InterfaceError) or sqlstate.startswith(UNABLE_SQLSTATES)
    if not unable or isinstance(exc, IntegrityError):
        return None
    return str(orig).strip().splitlines()[0][:200] or type(orig).__name__


@dataclass
class WriteHealth:
    """Whether the last write failed (and why), for /healthz: set on a failed write, cleared by the next one
    that commits."""

    failure: str | None = None

    def failed(self, cause: str) -> None:
        log.error("the database could not save a change: %s", cause)
        self.failure = cause

    def succeeded(self) -> None:
        if self.failure is not None:
            log.info("the database saves again (after: %s)", self.failure)
        self.failure = None


def inbox_url(url: str) -> str:
    """Where the request inbox lives: on SQLite a file of its own beside the database, else the database.

    SQLite has one writer per file: an inbox row written before the ack would queue behind every
    transaction the work holds (and SQLite's busy handler polls with sleeps), so the ack would wait for
    the work it is meant to come before. A second file has a lock of its own.
    """
    if not is_sqlite(url) or ":memory:" in url:
        return url
    parsed = make_url(url)
    path = Path(parsed.database or "warroom.db")
    return parsed.set(database=str(path.with_name(f"{path.stem}.inbox{path.suffix or '.db'}"))).render_as_string(
        hide_password=False
    )


def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


HEAD = "0007"
"""The newest migration's revision (tests/test_storage.py holds it to Alembic's own head)."""

_VERSIONS = MetaData()
_ALEMBIC_VERSION = Table(
    "alembic_version",  # as Alembic itself creates it, so that its later upgrades read and move this stamp
    _VERSIONS,
    Column("version_num", String(32), nullable=False),
    PrimaryKeyConstraint("version_num", name="alembic_version_pkc"),
)


def _alembic_config(connection: Connection) -> Config:
    from alembic.config import Config  # Alembic is needed when there is something to migrate only

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def _stamped(connection: Connection) -> str | None:
    """The revision the database is at, as Alembic records it (None when it records none)."""
    if not inspect(connection).has_table(_ALEMBIC_VERSION.name):
        return None
    return connection.execute(select(_ALEMBIC_VERSION.c.version_num)).scalar()


def _upgrade(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        # Replicas starting together: one migrates, the others wait and then find nothing to do.
        connection.execute(text("SELECT pg_advisory_xact_lock(727274)"))
    revision = _stamped(connection)
    if revision == HEAD:
        return  # the usual start: nothing to migrate, and Alembic need not even be imported
    if revision is None and connection.dialect.name == "sqlite" and not inspect(connection).get_table_names():
        # A new SQLite database gets the tables the migrations end in, in one step rather than seven (the
        # test beside HEAD compares the two schemas), stamped as migrated, within the write-locking BEGIN
        from storage.models import Base

        Base.metadata.create_all(connection, checkfirst=False)  # no table yet: none to ask SQLite about
        _VERSIONS.create_all(connection, checkfirst=False)
        connection.execute(insert(_ALEMBIC_VERSION).values(version_num=HEAD))
        return
    from alembic import command

    command.upgrade(_alembic_config(connection), "head")


async def migrate(engine: AsyncEngine) -> None:
    """Apply every pending migration (run at start; safe to run concurrently)."""
    async with engine.begin() as connection:
        await connection.run_sync(_upgrade)


async def ping(engine: AsyncEngine, limit_seconds: float = 2.0) -> bool:
    """True when the database answers a trivial query in time."""
    try:
        async with asyncio.timeout(limit_seconds), engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        return True
    except Exception:
        return False
