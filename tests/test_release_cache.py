"""The kept copy of a release: the same as a fresh load, never a change another process saved behind it,
never what a rolled-back transaction wrote."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import event

from bot.domain import Actor, Issue, IssueStatus, Outcome, Release, Severity, Vote
from bot.issues import ReportIssue, ResolveIssue, decide_issue
from bot.plan import Plan
from bot.rules import ChangePhase, PhaseVerb, change_phase
from bot.service import LoadedPlan, Service
from bot.votes import CastVote, OpenVote, cast_vote, open_vote
from storage import repo
from storage.db import create_engine, migrate, sessionmaker
from tests.conftest import T0, Clock

DBA = Actor("U0DBA", frozenset({"dba"}))
RM = Actor("U0RM", frozenset({"release_manager"}))
QA = Actor("U0QA", frozenset({"qa_lead"}))


async def _service(url: str, clock: Clock, **engine_args: Any) -> tuple[Service, Any]:
    engine = create_engine(url, **engine_args)
    await migrate(engine)
    return Service(sessions=sessionmaker(engine), clock=clock), engine


async def _fresh(url: str, release_id: str, **engine_args: Any) -> Release:
    """The release as a process that never saw it loads it (its own engine keeps nothing)."""
    engine = create_engine(url, **engine_args)
    try:
        async with sessionmaker(engine)() as session:
            release = await repo.get_release(session=session, release_id=release_id)
        assert release is not None
        return release
    finally:
        await engine.dispose()


async def _a_busy_hour(service: Service, plan: Plan, clock: Clock) -> None:
    """Issues reported and resolved, a vote with two ballots at the same moment, phases started and done."""
    for n in range(3):
        report = ReportIssue(Severity.HIGH if n else Severity.LOW, "api", f"slow {n}", "region1", f"E{n}")
        await service.run(plan.id, lambda r, p, now, c=report: decide_issue(r, p, DBA, c, now))
    await service.run(plan.id, lambda r, p, now: decide_issue(r, p, DBA, ResolveIssue(2, "fixed"), now))
    clock.set(T0 - timedelta(minutes=30))
    await service.run(plan.id, lambda r, p, now: open_vote(r, p, RM, OpenVote(), now))
    for voter in (QA, DBA):  # the same `at`: the order must not depend on which copy is read
        await service.run(plan.id, lambda r, p, now, v=voter: cast_vote(r, p, v, CastVote(Vote.GO), now))
    clock.set(T0)
    for verb in (PhaseVerb.START, PhaseVerb.DONE):
        change = ChangePhase(verb, "db-migration", "ok")
        await service.run(plan.id, lambda r, p, now, c=change: change_phase(r, p, DBA, c, now))


async def test_the_kept_release_is_what_a_fresh_load_gives(database_url: str, plan: Plan, clock: Clock) -> None:
    service, engine = await _service(database_url, clock)
    try:
        await service.load(LoadedPlan(plan, "", "test.yml"))
        await _a_busy_hour(service, plan, clock)
        kept = await service.get(plan.id)
        assert len(kept.issues) == 3 and len(kept.ballots) == 2
        assert kept == await _fresh(database_url, plan.id)
    finally:
        await engine.dispose()


async def test_a_command_on_a_long_release_reads_none_of_its_history(
    database_url: str, plan: Plan, clock: Clock
) -> None:
    service, engine = await _service(database_url, clock)
    try:
        await service.load(LoadedPlan(plan, "", "test.yml"))
        history = tuple(
            Issue(n, Severity.LOW, "api", f"old {n}", "U0DBA", clock(), status=IssueStatus.RESOLVED)
            for n in range(1, 201)
        )
        await service.run(plan.id, lambda r, p, now: Outcome(replace(r, issues=history, revision=r.revision + 1)))
        statements: list[str] = []
        event.listen(engine.sync_engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
        report = ReportIssue(Severity.LOW, "api", "new")
        outcome = await service.run(plan.id, lambda r, p, now: decide_issue(r, p, DBA, report, now))
        assert outcome.release.issue(201) is not None
        reads = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
        assert reads and not [s for s in reads if "FROM issues" in s or "FROM phases" in s], reads
        assert await service.get(plan.id) == await _fresh(database_url, plan.id)
    finally:
        await engine.dispose()


async def test_children_replaced_appended_removed_or_moved_are_saved_and_kept_as_a_fresh_load_gives(
    database_url: str, plan: Plan, clock: Clock
) -> None:
    """Saving finds a command's changes by position; a change of another shape (a child removed, another in
    a child's place, children out of their load order) must still be written and kept exactly."""
    service, engine = await _service(database_url, clock)
    try:
        await service.load(LoadedPlan(plan, "", "test.yml"))

        def issue(n: int, impact: str = "slow", status: IssueStatus = IssueStatus.OPEN) -> Issue:
            return Issue(n, Severity.LOW, "api", f"{impact} {n}", "U0DBA", clock(), status=status)

        shapes: list[tuple[str, tuple[Issue, ...]]] = [
            ("appended", tuple(issue(n) for n in range(1, 6))),
            (
                "one replaced in place",
                (issue(1), issue(2), issue(3, "fixed", IssueStatus.RESOLVED), issue(4), issue(5)),
            ),
            ("one removed", (issue(1), issue(2), issue(4), issue(5))),
            ("another in its place", (issue(1), issue(2), issue(6), issue(5))),
            ("out of load order", (issue(7), issue(1), issue(2, "worse"), issue(6), issue(5))),
            ("appended after a move", (issue(1), issue(2, "worse"), issue(5), issue(6), issue(7), issue(8))),
        ]
        for shape, issues in shapes:
            await service.run(
                plan.id, lambda r, p, now, i=issues: Outcome(replace(r, issues=i, revision=r.revision + 1))
            )
            kept, fresh = await service.get(plan.id), await _fresh(database_url, plan.id)
            assert kept == fresh, shape
            assert [(i.number, i.impact) for i in fresh.issues] == sorted((i.number, i.impact) for i in issues), shape
        # the kept children themselves, one dropped and the rest out of load order: nothing new to store
        await service.run(
            plan.id,
            lambda r, p, now: Outcome(replace(r, issues=(r.issues[-1], *r.issues[:-2]), revision=r.revision + 1)),
        )
        kept, fresh = await service.get(plan.id), await _fresh(database_url, plan.id)
        assert kept == fresh
        assert [i.number for i in fresh.issues] == [1, 2, 5, 6, 8]
    finally:
        await engine.dispose()


async def test_a_time_saved_in_another_zone_is_kept_in_utc_as_loaded(
    database_url: str, plan: Plan, clock: Clock
) -> None:
    service, engine = await _service(database_url, clock)
    try:
        await service.load(LoadedPlan(plan, "", "test.yml"))
        elsewhere = (T0 + timedelta(minutes=5)).astimezone(timezone(timedelta(hours=-5)))
        issue = Issue(1, Severity.LOW, "api", "slow", "U0DBA", elsewhere)
        await service.run(plan.id, lambda r, p, now: Outcome(r.with_issue(issue)))
        kept = (await service.get(plan.id)).issues[0].reported_at
        assert kept.utcoffset() == timedelta(0) and kept == elsewhere
        assert (await _fresh(database_url, plan.id)).issues[0].reported_at.utcoffset() == timedelta(0)
    finally:
        await engine.dispose()


async def test_a_change_rolled_back_is_not_kept(database_url: str, plan: Plan, clock: Clock) -> None:
    service, engine = await _service(database_url, clock)
    try:
        await service.load(LoadedPlan(plan, "", "test.yml"))
        before = await service.get(plan.id)
        with pytest.raises(RuntimeError):
            async with service.sessions() as session, session.begin():
                loaded = await repo.get_release(session=session, release_id=plan.id, lock=True)
                assert loaded is not None
                issue = Issue(1, Severity.LOW, "api", "slow", "U0DBA", clock())
                await repo.save_release(session=session, before=loaded, after=loaded.with_issue(issue), now=clock())
                # within the transaction it reads what it wrote
                again = await repo.get_release(session=session, release_id=plan.id, lock=True)
                assert again is not None and len(again.issues) == 1
                raise RuntimeError("the command failed after saving")
        assert await service.get(plan.id) == before
        assert (await service.get(plan.id)).issues == ()
    finally:
        await engine.dispose()


async def _replicas_lose_nothing(url: str, plan: Plan, clock: Clock, **engine_args: Any) -> None:
    one, engine_one = await _service(url, clock, **engine_args)
    two, engine_two = await _service(url, clock, **engine_args)
    try:
        await one.load(LoadedPlan(plan, "", "test.yml"))
        await two.load(LoadedPlan(plan, "", "test.yml"))

        async def report(service: Service, n: int) -> None:
            command = ReportIssue(Severity.LOW, "api", f"from {n}")
            await service.run(plan.id, lambda r, p, now: decide_issue(r, p, DBA, command, now))

        # both keep a copy; each change the other saves must be seen by the next command here
        await asyncio.gather(*(report(one if n % 2 else two, n) for n in range(12)))
        await one.run(plan.id, lambda r, p, now: decide_issue(r, p, DBA, ResolveIssue(1, "done"), now))
        seen_by_two = await two.get(plan.id)
        assert sorted(i.number for i in seen_by_two.issues) == list(range(1, 13))
        assert sorted(i.impact for i in seen_by_two.issues) == sorted(f"from {n}" for n in range(12))
        assert seen_by_two.issue(1) is not None and seen_by_two.issue(1).status is IssueStatus.RESOLVED  # type: ignore[union-attr]
        assert seen_by_two == await one.get(plan.id) == await _fresh(url, plan.id, **engine_args)
    finally:
        await engine_one.dispose()
        await engine_two.dispose()


async def test_two_processes_keeping_copies_lose_no_update_on_sqlite(
    database_url: str, plan: Plan, clock: Clock
) -> None:
    await _replicas_lose_nothing(database_url, plan, clock)


async def test_two_processes_keeping_copies_lose_no_update_on_postgres(
    postgres_schema: tuple[str, dict[str, Any]], plan: Plan, clock: Clock
) -> None:
    url, engine_args = postgres_schema
    await _replicas_lose_nothing(url, plan, clock, **engine_args)
