"""A release recorded deterministically on a hand-moved clock: the golden export's source.

Real commands go through the service's rules — ticks, phases, the vote, an issue and its page, completion,
the sign-offs and the handoff's acceptance — and the dispatcher delivers to the fake Slack (and fires the
timers) at the times the clock is set to.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from bot.app import build_runtime
from bot.checklists import TickTask, tick_task
from bot.commands import parse_phase, parse_release
from bot.core.handoff import accept_handoff
from bot.core.signoffs import decide_signoff, parse_signoff
from bot.domain import GO_NO_GO_CHECKLIST, Actor, Outcome, Release
from bot.gonogo_commands import parse_gonogo
from bot.issues import decide_issue, parse_issue
from bot.lifecycle import change_release
from bot.paging import decide_page, parse_page
from bot.plan import Plan, parse_plan
from bot.rules import change_phase
from bot.service import LoadedPlan
from bot.votes import decide
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

        def tick(user: str, scope: str, number: int, note: str = "") -> Rule:
            return as_user(user, tick_task, TickTask(scope, number, True, note))

        def signoff(user: str, text: str) -> Rule:
            return as_user(user, decide_signoff, parse_signoff(text))

        def handoff_accepted(user: str) -> Rule:
            return lambda r, p, now: accept_handoff(r, p, Actor(user, p.role_of_person.get(user, frozenset())), now)

        await at(-120)  # the team assembly, on time
        await at(-60, tick("U0RM", "pre-deployment", 1, "restore tested on staging"))
        await at(-50, tick("U0RM", "pre-deployment", 2))
        await at(-25, tick("U0QA", GO_NO_GO_CHECKLIST, 1))
        await at(-24, tick("U0RM", GO_NO_GO_CHECKLIST, 2))
        await at(-20, as_user("U0VP", decide, parse_gonogo("decide go all checks green")))
        await at(0)  # T0: the release starts, the start announcement goes
        # one task of the pre-deployment is left open, on purpose and on the record
        await at(12, as_user("U0RM", change_phase, parse_phase("done pre-deployment --force support told by mail")))
        await at(13, as_user("U0DBA", change_phase, parse_phase("start db-migration")), deliver=False)
        await at(15, tick("U0DBA", "db-migration", 1), deliver=False)
        await at(17)  # the 17:15 status update goes two minutes late: marked delayed
        await at(19, tick("U0DBA", "db-migration", 2))
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
        await at(95, as_user("U0RM", change_release, parse_release("complete")))  # opens the sign-offs
        await at(100, signoff("U0QA", "signoff qa_lead all 212 tests green"))
        await at(104, signoff("U0DBA", "signoff dba"))
        await at(110, signoff("U0VP", "signoff vp_engineering approved"))
        await at(180)  # the handoff, at its time
        await at(185, handoff_accepted("U0DEV"))
    finally:
        await runtime.close()
        await fake.stop()
