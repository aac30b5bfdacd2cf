"""A release recorded deterministically on a hand-moved clock: the golden export's source.

Real commands go through the service's rules and the dispatcher delivers to the fake Slack at the times
the clock is set to. Ticked tasks, sign-offs and the handoff are written through storage with the
timeline entries their commands record (the event kinds the contract names), as those commands would.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

from bot.app import build_runtime
from bot.commands import parse_phase, parse_release
from bot.domain import Actor, Event, Outcome, Release, SignOff, SignOffStatus, TaskCheck
from bot.gonogo_commands import parse_gonogo
from bot.issues import decide_issue, parse_issue
from bot.lifecycle import change_release
from bot.paging import decide_page, parse_page
from bot.plan import Plan, parse_plan
from bot.rules import change_phase
from bot.service import LoadedPlan
from bot.votes import decide
from storage import repo
from tests.conftest import FAST_PACE, T0, Clock, make_settings, plan_text
from tests.fake_slack import FakeSlack

Rule = Callable[[Release, Plan, Any], Outcome]

EXTRA = """
success_criteria:
  - "Error rate below 0.1% for 30 minutes"
  - "p95 latency under 300ms"
signoffs:
  - {role: qa_lead, criterion: "Functional tests pass"}
  - {role: dba, criterion: "Replication healthy, no data loss"}
  - {role: vp_engineering, criterion: "Business approval"}
handoff:
  at: +3h
  to: devops_lead
  watch: ["Connection pool saturation in region2"]
"""

TASKS = {
    "pre-deployment": ["Verify backup integrity", "Confirm rollback scripts", "Notify support"],
    "db-migration": ["Run migration scripts", "Verify schema version"],
}


def recorded_plan_text() -> str:
    """The test plan in New York time, with checklists, success criteria, sign-offs and a handoff."""
    text = plan_text().replace("timezone: UTC", "timezone: America/New_York")
    for phase, tasks in TASKS.items():
        items = ", ".join(f'"{t}"' for t in tasks)
        text = text.replace(f"{{id: {phase}, ", f"{{id: {phase}, tasks: [{items}], ")
    return text + EXTRA


async def record(database_url: str) -> None:
    """Run the release from load to the handoff's acceptance, writing it all to `database_url`."""
    fake = await FakeSlack(channels={"deployment-war-room": "C0WAR"}).start()
    clock = Clock(T0 - timedelta(hours=3))
    runtime = await build_runtime(make_settings(fake, database_url), clock=clock, pace=FAST_PACE)
    try:
        source = recorded_plan_text()
        plan = parse_plan(source, "golden.yml")
        await runtime.service.load(LoadedPlan(plan, source, "golden.yml"))
        await runtime.settle()

        async def at(minutes: int, rule: Rule | None = None, *, deliver: bool = True) -> None:
            clock.set(T0 + timedelta(minutes=minutes))
            if rule is not None:
                await runtime.service.run("r1", rule)
            if deliver:
                await runtime.dispatcher.run_due()
            await runtime.settle()

        def as_user(user: str, fn: Callable[..., Outcome], command: Any) -> Rule:
            return lambda r, p, now: fn(r, p, Actor(user, p.role_of_person.get(user, frozenset())), command, now)

        await at(-120)  # the team assembly, on time
        await at(-20, as_user("U0VP", decide, parse_gonogo("decide go all checks green")))
        await at(0)  # T0: the release starts, the start announcement goes
        await at(12, as_user("U0RM", change_phase, parse_phase("done pre-deployment")))
        await at(13, as_user("U0DBA", change_phase, parse_phase("start db-migration")), deliver=False)
        await at(17)  # the 17:15 status update goes two minutes late: marked delayed
        await at(20, as_user("U0DBA", change_phase, parse_phase("done db-migration")))
        await at(40, as_user("U0DEV", change_phase, parse_phase("skip deploy-region1 region1 is frozen")))
        issue = parse_issue("high api region2 5xx on /login | pool exhausted", ("region1", "region2"))
        await at(45, as_user("U0QA", decide_issue, issue))
        await at(46, as_user("U0RM", decide_page, parse_page("L1 api errors")))
        await at(48, as_user("U0DEV", decide_issue, parse_issue("investigate 1")))
        await at(50, as_user("U0OC1", decide_page, parse_page("ack")))
        await at(60)  # the rollback decision point
        await at(65, as_user("U0DEV", decide_issue, parse_issue("resolve 1 pool size raised")))
        await at(90, as_user("U0DEV", change_phase, parse_phase("done deploy-region2")))
        await at(95, as_user("U0RM", change_release, parse_release("complete")))
        await _checklists_signoffs_handoff(runtime.service.sessions, plan)
    finally:
        await runtime.close()
        await fake.stop()


async def _checklists_signoffs_handoff(sessions: Any, plan: Plan) -> None:
    """Ticked tasks, the sign-offs and the handoff, stored as their commands store them."""

    def t(minutes: int) -> Any:
        return T0 + timedelta(minutes=minutes)

    checks = [
        TaskCheck("pre-deployment", 1, "U0RM", t(-60), "restore tested on staging"),
        TaskCheck("pre-deployment", 2, "U0RM", t(-50)),
        TaskCheck("db-migration", 1, "U0DBA", t(15)),
        TaskCheck("db-migration", 2, "U0DBA", t(19)),
        TaskCheck("go_no_go", 1, "U0QA", t(-25)),
        TaskCheck("go_no_go", 2, "U0RM", t(-24)),
    ]
    spec = {p.id: p for p in plan.phases}
    go_no_go = plan.go_no_go.checklist if plan.go_no_go else []
    events = [
        Event(
            "task.checked",
            c.at,
            c.done_by,
            c.scope,
            {
                "number": c.number,
                "task": (go_no_go if c.scope == "go_no_go" else spec[c.scope].tasks)[c.number - 1],
                "note": c.note,
            },
        )
        for c in checks
    ]
    signoffs = [
        SignOff("qa_lead", SignOffStatus.SIGNED, "U0QA", t(100), "all 212 tests green"),
        SignOff("dba", SignOffStatus.SIGNED, "U0DBA", t(104)),
        SignOff("vp_engineering", SignOffStatus.SIGNED, "U0VP", t(110), "approved"),
    ]
    events += [Event("signoffs.requested", t(96), "U0RM", None, {"roles": [s.role for s in plan.signoffs]})]
    criteria = {s.role: s.criterion for s in plan.signoffs}
    events += [
        Event("signoff.signed", s.at, s.by, s.role, {"criterion": criteria[s.role], "comment": s.comment})
        for s in signoffs
    ]
    events += [
        Event("release.approved", t(110), "warroom", None, {"outcome": "success"}),
        Event("handoff.posted", t(180), "warroom", None, {"to": "devops_lead", "open_issues": 0, "open_pages": 0}),
        Event("handoff.accepted", t(185), "U0DEV", "devops_lead", {"oncall": ["devops_lead"]}),
    ]
    async with sessions() as session, session.begin():
        before = await repo.get_release(session=session, release_id="r1")
        assert before is not None
        after = replace(
            before,
            task_checks=tuple(checks),
            signoffs=tuple(signoffs),
            signoffs_requested_at=t(96),
            approved_at=t(110),
            handoff_posted_at=t(180),
            handoff_accepted_by="U0DEV",
            handoff_accepted_at=t(185),
            revision=before.revision + 1,
        )
        await repo.save_release(session=session, before=before, after=after, now=t(185))
        await repo.append_events(session=session, release_id="r1", events=sorted(events, key=lambda e: e.at))
