"""Storage: migrations, the aggregate round trip, and no lost updates under concurrency."""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection

from bot.domain import (
    GO_NO_GO_CHECKLIST,
    Actor,
    Outcome,
    PhaseStatus,
    Release,
    SignOff,
    SignOffStatus,
    TaskCheck,
)
from bot.plan import Plan, parse_plan
from bot.rules import ChangePhase, PhaseVerb, change_phase
from bot.service import LoadedPlan, Service
from storage import repo
from storage.db import HEAD, MIGRATIONS, _alembic_config, create_engine, migrate, sessionmaker
from tests.conftest import T0, Clock

MANY_PHASES = 20


def plan_with_phases(count: int) -> Plan:
    phases = "\n".join(
        f"  - {{id: step-{i:02d}, name: Step {i}, start: +{i * 5}m, duration: 5m, owner: dba}}" for i in range(count)
    )
    text = f"""
release: {{id: many, name: Many, version: v1, window: {{start: 2026-12-05T22:00:00Z, end: 2026-12-06T06:00:00Z}}}}
channels: {{war_room: C0WAR, announcements: C0ANN}}
people: {{dba: [U0DBA]}}
phases:
{phases}
"""
    return parse_plan(text, "many.yml")


async def _service(url: str, clock: Clock, **engine_args: Any) -> tuple[Service, Any]:
    engine = create_engine(url, **engine_args)
    await migrate(engine)
    return Service(sessions=sessionmaker(engine), clock=clock), engine


async def _concurrent_phase_updates(url: str, clock: Clock, **engine_args: Any) -> None:
    plan = plan_with_phases(MANY_PHASES)
    service, engine = await _service(url, clock, **engine_args)
    try:
        await service.load(LoadedPlan(plan, "", "many.yml"))
        actor = Actor("U0DBA", frozenset({"dba"}))

        async def finish(i: int) -> None:
            cmd = ChangePhase(PhaseVerb.DONE, f"step-{i:02d}", f"done {i}")
            await service.run(plan.id, lambda r, p, now: change_phase(r, p, actor, cmd, now))

        await asyncio.gather(*(finish(i) for i in range(MANY_PHASES)))
        release = await service.get(plan.id)
        assert [p.status for p in release.phases] == [PhaseStatus.DONE] * MANY_PHASES
        assert release.revision == MANY_PHASES  # every read-modify-write of the release row counted
        async with service.sessions() as session:
            timeline = await repo.get_timeline(session=session, release_id=plan.id)
            posts = await repo.outbox(session=session, release_id=plan.id)
        assert len([e for e in timeline if e.kind == "phase.done"]) == MANY_PHASES
        assert len([p for p in posts if p.template == "phase_update"]) == MANY_PHASES
    finally:
        await engine.dispose()


async def test_twenty_concurrent_phase_updates_lose_nothing_on_sqlite(database_url: str, clock: Clock) -> None:
    await _concurrent_phase_updates(database_url, clock)


async def test_twenty_concurrent_phase_updates_lose_nothing_on_postgres(
    postgres_schema: tuple[str, dict[str, Any]], clock: Clock
) -> None:
    url, engine_args = postgres_schema
    await _concurrent_phase_updates(url, clock, **engine_args)


async def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(database_url: str) -> None:
    engine = create_engine(database_url)
    await migrate(engine)
    async with engine.connect() as conn:
        assert (await conn.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
        assert (await conn.execute(text("PRAGMA busy_timeout"))).scalar() == 30000
    await engine.dispose()


async def test_migrations_apply_once_and_twice_is_harmless(database_url: str) -> None:
    engine = create_engine(database_url)
    await migrate(engine)
    await migrate(engine)
    async with engine.connect() as conn:
        tables = {r[0] for r in await conn.execute(text("SELECT name FROM sqlite_master WHERE type='table'"))}
        version = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar()
    await engine.dispose()
    assert {
        "releases",
        "phases",
        "issues",
        "votes",
        "decisions",
        "pages",
        "outbox",
        "timers",
        "timeline",
    } <= tables
    assert version is not None


def _schema(path: Path) -> dict[str, Any]:
    """Each table's columns (by name: batch migrations rebuild tables with their columns in another
    order), indexes and unique constraints, and foreign keys, and the revision the database is stamped at."""
    with closing(sqlite3.connect(path)) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        schema: dict[str, Any] = {
            table: (
                sorted(tuple(r[1:]) for r in db.execute(f"PRAGMA table_info('{table}')")),
                sorted(
                    (r[1], r[2], r[3], tuple(c[2] for c in db.execute(f"PRAGMA index_info('{r[1]}')")))
                    for r in db.execute(f"PRAGMA index_list('{table}')")
                ),
                sorted(tuple(r[2:]) for r in db.execute(f"PRAGMA foreign_key_list('{table}')")),
            )
            for table in tables
        }
        schema["stamped at"] = db.execute("SELECT version_num FROM alembic_version").fetchall()
    return schema


def _alembic_upgrade(connection: Connection, revision: str) -> None:
    command.upgrade(_alembic_config(connection), revision)


async def test_a_new_sqlite_database_gets_the_schema_the_migrations_give(tmp_path: Path) -> None:
    migrated = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'migrated.db'}")
    async with migrated.begin() as connection:  # every migration in turn, by Alembic
        await connection.run_sync(_alembic_upgrade, "head")
    await migrated.dispose()
    created = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'created.db'}")
    await migrate(created)  # a new database: its tables in one step
    await migrate(created)  # then at head: nothing to do
    await created.dispose()
    assert _schema(tmp_path / "created.db") == _schema(tmp_path / "migrated.db")
    assert _schema(tmp_path / "created.db")["stamped at"] == [(HEAD,)]


def test_head_is_the_newest_migration() -> None:
    assert ScriptDirectory(str(MIGRATIONS)).get_current_head() == HEAD


async def test_a_database_at_an_older_revision_is_migrated_to_head(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'old.db'}")
    async with engine.begin() as connection:
        await connection.run_sync(_alembic_upgrade, "0006")  # before the release stamp
    async with engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO releases (id, name, version, timezone, window_start, window_end, status, revision, "
                "plan_source, plan_file, created_at, updated_at) VALUES ('r1', 'R', 'v1', 'UTC', "
                "'2026-12-05 22:00:00', '2026-12-06 06:00:00', 'planned', 1, '', '', '2026-12-01 00:00:00', "
                "'2026-12-01 00:00:00')"
            )
        )
    await migrate(engine)
    async with engine.connect() as connection:
        stamp = (await connection.execute(text("SELECT stamp FROM releases WHERE id = 'r1'"))).scalar()
        version = (await connection.execute(text("SELECT version_num FROM alembic_version"))).scalar()
    await engine.dispose()
    assert (stamp, version) == (0, HEAD)


async def test_release_round_trips_through_the_database(database_url: str, clock: Clock, plan: Plan) -> None:
    service, engine = await _service(database_url, clock)
    await service.load(LoadedPlan(plan, "source", "test.yml"))
    actor = Actor("U0DBA", frozenset({"dba"}))
    clock.set(T0 + timedelta(minutes=3))
    await service.run(
        plan.id,
        lambda r, p, now: change_phase(r, p, actor, ChangePhase(PhaseVerb.START, "db-migration"), now),
    )
    release = await service.get(plan.id)
    phase = release.phase("db-migration")
    assert phase is not None and phase.status is PhaseStatus.IN_PROGRESS
    assert phase.started_at == T0 + timedelta(minutes=3) and phase.started_at.tzinfo is not None
    assert release.window_start == T0
    async with service.sessions() as session:
        source = await repo.get_plan_source(session=session, release_id=plan.id)
    assert source == ("source", "test.yml")
    await engine.dispose()


async def test_ticked_tasks_sign_offs_and_handoff_times_round_trip(database_url: str, clock: Clock, plan: Plan) -> None:
    service, engine = await _service(database_url, clock)
    await service.load(LoadedPlan(plan, "source", "test.yml"))
    at = T0 + timedelta(minutes=5)

    def tick(release: Release, _plan: Plan, now: datetime) -> Outcome:
        changed = release.with_task_check(TaskCheck("db-migration", 2, "U0DBA", now, "backup ok"))
        changed = changed.with_task_check(TaskCheck(GO_NO_GO_CHECKLIST, 1, "U0RM", now))
        changed = changed.with_signoff(SignOff("dba", SignOffStatus.REFUSED, "U0DBA", now, "replica lag"))
        return Outcome(replace(changed, approved_at=now, handoff_posted_at=now, handoff_accepted_by="U0DAY"))

    clock.set(at)
    await service.run(plan.id, tick)
    release = await service.get(plan.id)
    assert release.checked("db-migration") == {2: TaskCheck("db-migration", 2, "U0DBA", at, "backup ok")}
    assert set(release.checked(GO_NO_GO_CHECKLIST)) == {1}
    assert release.signoff("dba") == SignOff("dba", SignOffStatus.REFUSED, "U0DBA", at, "replica lag")
    assert (release.approved_at, release.handoff_posted_at, release.handoff_accepted_by) == (at, at, "U0DAY")

    def untick(release: Release, _plan: Plan, now: datetime) -> Outcome:
        signed = release.with_signoff(SignOff("dba", SignOffStatus.SIGNED, "U0DBA", now))
        return Outcome(signed.without_task_check("db-migration", 2))

    await service.run(plan.id, untick)
    release = await service.get(plan.id)
    assert release.checked("db-migration") == {}
    assert [(s.role, s.status) for s in release.signoffs] == [("dba", SignOffStatus.SIGNED)]
    await engine.dispose()


async def test_loading_the_plan_again_keeps_state(database_url: str, clock: Clock, plan: Plan) -> None:
    service, engine = await _service(database_url, clock)
    await service.load(LoadedPlan(plan, "", "test.yml"))
    actor = Actor("U0DBA", frozenset({"dba"}))
    await service.run(
        plan.id,
        lambda r, p, now: change_phase(r, p, actor, ChangePhase(PhaseVerb.DONE, "db-migration", "ok"), now),
    )
    await engine.dispose()

    restarted, engine = await _service(database_url, clock)
    await restarted.load(LoadedPlan(plan, "", "test.yml"))
    release = await restarted.get(plan.id)
    phase = release.phase("db-migration")
    assert phase is not None and phase.status is PhaseStatus.DONE and phase.note == "ok"
    await engine.dispose()


def test_naive_datetimes_are_refused_by_storage() -> None:
    from datetime import datetime

    from storage.models import UTCDateTime

    with pytest.raises(ValueError, match="naive"):
        UTCDateTime().process_bind_param(datetime(2026, 1, 1), None)  # type: ignore[arg-type]  # noqa: DTZ001 - the point of the test


async def test_a_burst_of_work_on_sqlite_queues_for_one_connection_instead_of_polling_the_lock(
    database_url: str, clock: Clock
) -> None:
    """Every SQLite transaction takes the write lock; units of work that each held a connection while
    SQLite's busy handler polled for it exhausted the pool under a burst ("QueuePool limit … reached")."""
    from sqlalchemy import event

    plan = plan_with_phases(MANY_PHASES)
    service, engine = await _service(database_url, clock)
    in_use, peak = 0, 0

    def checked_out(*_args: Any) -> None:
        nonlocal in_use, peak
        in_use += 1
        peak = max(peak, in_use)

    def checked_in(*_args: Any) -> None:
        nonlocal in_use
        in_use -= 1

    event.listen(engine.sync_engine.pool, "checkout", checked_out)
    event.listen(engine.sync_engine.pool, "checkin", checked_in)
    try:
        await service.load(LoadedPlan(plan, "", "many.yml"))
        actor = Actor("U0DBA", frozenset({"dba"}))

        async def finish(i: int) -> None:
            cmd = ChangePhase(PhaseVerb.DONE, f"step-{i:02d}", f"done {i}")
            await service.run(plan.id, lambda r, p, now: change_phase(r, p, actor, cmd, now))

        await asyncio.gather(*(finish(i) for i in range(MANY_PHASES)), *(service.get(plan.id) for _ in range(20)))
        release = await service.get(plan.id)
        assert [p.status for p in release.phases] == [PhaseStatus.DONE] * MANY_PHASES
        assert peak == 1, f"{peak} connections were in use at once: all but one waited on SQLite's lock"
    finally:
        await engine.dispose()
