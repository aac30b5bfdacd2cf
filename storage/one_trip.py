"""aiosqlite with one trip to its thread per statement.

aiosqlite runs every call on its connection's thread, and SQLAlchemy's adapter makes four such calls for a
query (open a cursor, execute, fetch the rows, close the cursor) and three for a write. Each trip is a
hand-over between the event loop and that thread; together they were most of what a command cost. Here a
cursor does all four in one trip, keeping the rows, the description, `rowcount` and `lastrowid` it read
there, so SQLAlchemy's later calls are answered without going back. Results are read in full at once, as
SQLAlchemy's adapter does for every query it does not stream; streaming queries get the same rows.
"""

from __future__ import annotations

import collections
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

import aiosqlite

_Row = Any


class OneTripCursor:
    """The part of `aiosqlite.Cursor` SQLAlchemy's adapter uses, each statement in one trip."""

    def __init__(self, connection: OneTripConnection) -> None:
        self._connection = connection
        self._rows: collections.deque[_Row] = collections.deque()
        self.description: Any = None
        self.rowcount = -1
        self.lastrowid: int | None = None
        self.arraysize = 1

    async def __aenter__(self) -> OneTripCursor:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def execute(self, sql: str, parameters: Sequence[Any] | dict[str, Any] | None = None) -> OneTripCursor:
        await self._run(lambda cursor: cursor.execute(sql, () if parameters is None else parameters))
        return self

    async def executemany(self, sql: str, parameters: Iterable[Sequence[Any] | dict[str, Any]]) -> OneTripCursor:
        await self._run(lambda cursor: cursor.executemany(sql, parameters))
        return self

    async def _run(self, statement: Any) -> None:
        sqlite_connection = self._connection.sqlite

        def trip() -> tuple[Any, list[_Row], int, int | None]:  # on the connection's thread
            cursor = sqlite_connection.cursor()
            try:
                statement(cursor)
                description = cursor.description
                rows = cursor.fetchall() if description else []
                return description, rows, cursor.rowcount, cursor.lastrowid
            finally:
                cursor.close()

        self.description, rows, self.rowcount, self.lastrowid = await self._connection.on_its_thread(trip)
        self._rows = collections.deque(rows)

    async def fetchone(self) -> _Row | None:
        return self._rows.popleft() if self._rows else None

    async def fetchmany(self, size: int | None = None) -> list[_Row]:
        count = min(self.arraysize if size is None else size, len(self._rows))
        return [self._rows.popleft() for _ in range(count)]

    async def fetchall(self) -> list[_Row]:
        rows = list(self._rows)
        self._rows.clear()
        return rows

    async def close(self) -> None:
        self._rows.clear()


class OneTripConnection(aiosqlite.Connection):
    """An aiosqlite connection whose cursors make one trip per statement (commit and rollback are one each
    already)."""

    def cursor(self) -> OneTripCursor:  # type: ignore[override]  # SQLAlchemy enters it; no trip to open it
        return OneTripCursor(self)

    @property
    def in_transaction(self) -> bool:
        """Whether a transaction is open (read without a trip: the connection is not in use when asked)."""
        connection: sqlite3.Connection | None = self._connection
        return connection is not None and connection.in_transaction

    @property
    def sqlite(self) -> sqlite3.Connection:
        connection: sqlite3.Connection = self._conn
        return connection

    async def on_its_thread(self, work: Any) -> Any:
        return await self._execute(work)  # type: ignore[no-untyped-call]  # aiosqlite leaves it untyped


def connect(database: str, iter_chunk_size: int = 64, **kwargs: Any) -> OneTripConnection:
    """What SQLAlchemy's aiosqlite dialect calls (as `async_creator_fn`) instead of `aiosqlite.connect`."""

    def connector() -> sqlite3.Connection:
        # opened on the connection's thread, which runs every statement; `in_transaction` is read elsewhere
        opened: sqlite3.Connection = sqlite3.connect(database, **{**kwargs, "check_same_thread": False})
        return opened

    connection = OneTripConnection(connector, iter_chunk_size)
    # as the dialect does: an open connection does not keep Python running (older aiosqlite: it is the thread)
    thread: Any = getattr(connection, "_thread", connection)
    thread.daemon = True
    return connection
