"""SQLite through SQLAlchemy and aiosqlite, one trip to the driver's thread per statement, with the same
results, errors and transactions as aiosqlite's own cursor."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select, text
from sqlalchemy.exc import IntegrityError

from storage import one_trip
from storage.db import create_engine

metadata = MetaData()
things = Table("things", metadata, Column("id", Integer, primary_key=True), Column("name", String, unique=True))


async def engine_with_table(tmp_path: Path) -> Any:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'one.db'}")
    async with engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    return engine


def count_trips(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    trips: list[str] = []
    real = one_trip.OneTripConnection._execute

    async def counted(self: Any, fn: Any, *args: Any, **kwargs: Any) -> Any:
        trips.append(getattr(fn, "__name__", repr(fn)))
        return await real(self, fn, *args, **kwargs)

    monkeypatch.setattr(one_trip.OneTripConnection, "_execute", counted)
    return trips


async def test_a_query_and_a_write_each_take_one_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = await engine_with_table(tmp_path)
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))  # the connection is open and checked out once
            trips = count_trips(monkeypatch)
            rows = (await connection.execute(select(things.c.id))).all()
            assert rows == [] and trips == ["trip"], trips
            trips.clear()
            await connection.execute(insert(things).values(name="a"))
            assert trips == ["trip"], trips
            await connection.rollback()
    finally:
        await engine.dispose()


async def test_rows_counts_and_ids_are_what_the_database_said(tmp_path: Path) -> None:
    engine = await engine_with_table(tmp_path)
    try:
        async with engine.begin() as connection:
            first = await connection.execute(insert(things).values(name="a"))
            assert first.inserted_primary_key == (1,)
            many = await connection.execute(insert(things), [{"name": "b"}, {"name": "c"}])
            assert many.rowcount == 2
            changed = await connection.execute(text("UPDATE things SET name = name || '!' WHERE id > 1"))
            assert changed.rowcount == 2
            returned = await connection.execute(insert(things).values(name="d").returning(things.c.id, things.c.name))
            assert returned.all() == [(4, "d")]
            result = await connection.execute(select(things.c.name).order_by(things.c.id))
            assert result.keys() == ["name"]
            assert result.fetchone() == ("a",)
            assert result.fetchmany(2) == [("b!",), ("c!",)]
            assert result.fetchall() == [("d",)]
            streamed = await connection.stream(select(things.c.id).order_by(things.c.id))
            assert [row.id async for row in streamed] == [1, 2, 3, 4]
    finally:
        await engine.dispose()


async def test_errors_are_the_drivers_and_a_failed_transaction_is_rolled_back(tmp_path: Path) -> None:
    engine = await engine_with_table(tmp_path)
    try:
        async with engine.begin() as connection:
            await connection.execute(insert(things).values(name="a"))
        with pytest.raises(IntegrityError, match="UNIQUE"):
            async with engine.begin() as connection:
                await connection.execute(insert(things).values(name="b"))
                await connection.execute(insert(things).values(name="a"))
        async with engine.connect() as connection:
            names = (await connection.execute(select(things.c.name))).scalars().all()
        assert names == ["a"], "the failed transaction left nothing behind"
        async with engine.begin() as connection:  # and the connection it used is usable again
            await connection.execute(insert(things).values(name="c"))
    finally:
        await engine.dispose()


async def test_a_transaction_left_open_is_rolled_back_before_the_connection_serves_again(tmp_path: Path) -> None:
    # as a COMMIT that failed leaves it: SQLAlchemy holds no transaction, SQLite is still inside one
    engine = await engine_with_table(tmp_path)
    try:
        async with engine.connect() as connection:
            raw = await connection.get_raw_connection()
            await raw.driver_connection.execute("BEGIN IMMEDIATE")
            await raw.driver_connection.execute("INSERT INTO things (name) VALUES ('never committed')")
        async with engine.begin() as connection:  # the one pooled connection, back from the pool
            await connection.execute(insert(things).values(name="next"))
        other = sqlite3.connect(tmp_path / "one.db", timeout=0.5)  # another process can write, too
        try:
            other.execute("INSERT INTO things (name) VALUES ('other')")
            other.commit()
            names = sorted(row[0] for row in other.execute("SELECT name FROM things"))
        finally:
            other.close()
        assert names == ["next", "other"]
    finally:
        await engine.dispose()
