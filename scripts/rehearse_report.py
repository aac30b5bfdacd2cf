"""Rehearse a plan's whole day on a fast clock against the fake Slack, then `/release report` it.

    python scripts/rehearse_report.py examples/unifiedhealth-golive.yml OUT_DIR

The clock runs from two and a quarter hours before T0 to the window's end (or the last phase's, when later)
in one-minute steps, a minute of wall time for the whole day; every step delivers what is due. Each voter
votes Go; each phase is started and marked done by its owner near its planned times (some late, some
early); an issue is reported, taken, paged and resolved during the first region's deployment; the release
is completed at the end. Then `/release report` uploads the report
and its chart to the fake Slack's war room: OUT_DIR gets the two files as Slack received them
(report.md, chart.png), the summary posted with them (summary.txt) and the database (warroom.db) for
`warroom export`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.app import build_runtime  # noqa: E402
from bot.checklists import TickTask, tick_task  # noqa: E402
from bot.commands import parse_phase, parse_release  # noqa: E402
from bot.core.handoff import accept_handoff  # noqa: E402
from bot.core.signoffs import decide_signoff, parse_signoff  # noqa: E402
from bot.domain import Actor, Outcome, Release  # noqa: E402
from bot.gonogo_commands import parse_gonogo  # noqa: E402
from bot.issues import decide_issue, parse_issue  # noqa: E402
from bot.lifecycle import change_release  # noqa: E402
from bot.paging import decide_page, parse_page  # noqa: E402
from bot.plan import Plan  # noqa: E402
from bot.rules import change_phase  # noqa: E402
from bot.service import LoadedPlan  # noqa: E402
from bot.validate import load_checked  # noqa: E402
from bot.votes import cast_vote  # noqa: E402
from tests.conftest import FAST_PACE, Clock, make_settings  # noqa: E402
from tests.fake_slack import FakeSlack  # noqa: E402

Rule = Callable[[Release, Plan, Any], Outcome]
LATENESS = (4, -3, 0, 9, -2, 12, 1, -5, 0, 6, 20, 3, -1)
"""Minutes each phase finishes after (or before) its planned end, in turn."""


def _person(plan: Plan, role: str) -> str:
    return plan.people[role][0]


def _as(plan: Plan, user: str, fn: Callable[..., Outcome], command: Any) -> Rule:
    actor = Actor(user, plan.role_of_person.get(user, frozenset()))
    return lambda r, p, now: fn(r, p, actor, command, now)


async def rehearse(plan_path: str, out: Path) -> int:
    database = out / "warroom.db"
    plan, source = load_checked(plan_path)
    channels = {ref.lstrip("#"): f"C0{key.upper().replace('_', '')[:8]}" for key, ref in plan.channels.items()}
    fake = await FakeSlack(channels=channels).start()
    clock = Clock(plan.t0 - timedelta(hours=2, minutes=15))
    runtime = await build_runtime(make_settings(fake, f"sqlite+aiosqlite:///{database}"), clock=clock, pace=FAST_PACE)
    try:
        await runtime.service.load(LoadedPlan(plan, source, plan_path))
        steps: dict[int, list[Rule]] = {}

        def at(minutes: int, rule: Rule) -> None:
            steps.setdefault(minutes, []).append(rule)

        if plan.go_no_go is not None:
            for n, role in enumerate(plan.go_no_go.voters):
                at(-25 + n, _as(plan, _person(plan, role), cast_vote, parse_gonogo("go")))
        last = 0
        for n, phase in enumerate(plan.phases):
            start = int(phase.start.total_seconds() // 60)
            end = int((phase.start + phase.duration).total_seconds() // 60) + LATENESS[n % len(LATENESS)]
            owner = _person(plan, phase.owner[0])
            at(
                start + max(0, LATENESS[n % len(LATENESS)] // 2),
                _as(plan, owner, change_phase, parse_phase(f"start {phase.id}")),
            )
            # the owner ticks the checklist as the phase runs; every fifth phase ends with its last task open
            left_open = bool(phase.tasks) and n % 5 == 4
            ticked = phase.tasks[:-1] if left_open else phase.tasks
            begun = start + max(0, LATENESS[n % len(LATENESS)] // 2)
            for k, _task in enumerate(ticked, start=1):
                when = begun + max(1, (end - begun) * k // (len(phase.tasks) + 1))
                at(min(when, end), _as(plan, owner, tick_task, TickTask(phase.id, k, True)))
            done = f"done {phase.id} --force left for the day team" if left_open else f"done {phase.id}"
            at(end, _as(plan, owner, change_phase, parse_phase(done)))
            last = max(last, end)
        component, region = plan.components[0], plan.regions[0] if plan.regions else ""
        regions = tuple(plan.regions)
        qa, devops = _person(plan, "qa_lead"), _person(plan, "devops_lead")
        issue = parse_issue(f"high {component} {region} 5xx on checkout | upstream timeout", regions)
        at(80, _as(plan, qa, decide_issue, issue))
        at(81, _as(plan, qa, decide_page, parse_page("L1 5xx on checkout")))
        at(84, _as(plan, devops, decide_issue, parse_issue("investigate 1")))
        oncall = plan.people[plan.escalation[0].notify[0]][0] if plan.escalation else devops
        at(92, _as(plan, oncall, decide_page, parse_page("ack")))
        at(110, _as(plan, devops, decide_issue, parse_issue("resolve 1 connection pool raised")))
        window = max(int((plan.release.window.end - plan.t0).total_seconds() // 60), last + 2)
        manager = _person(plan, "release_manager")
        at(window, _as(plan, manager, change_release, parse_release("complete")))
        for n, spec in enumerate(plan.signoffs):  # each role signs within the half hour after completion
            at(
                window + 3 + 4 * n,
                _as(plan, _person(plan, spec.role), decide_signoff, parse_signoff(f"signoff {spec.role}")),
            )
        end = window + 4 * len(plan.signoffs) + 5
        if plan.handoff is not None:
            receiver = Actor(_person(plan, plan.handoff.to), frozenset({plan.handoff.to}))
            handoff_at = int(plan.handoff.at.total_seconds() // 60)
            at(max(handoff_at, end) + 5, lambda r, p, now: accept_handoff(r, p, receiver, now))
            end = max(handoff_at, end) + 6

        refused = 0
        minute = -135
        while minute <= end:
            clock.set(plan.t0 + timedelta(minutes=minute))
            for rule in steps.get(minute, []):
                try:
                    await runtime.service.run(plan.id, rule)
                except Exception as exc:  # a rehearsal goes on: a refused command is printed, as a reply would say
                    print(f"T{minute:+d}m: {exc}", file=sys.stderr)
                    refused += 1
            await runtime.dispatcher.run_due()
            await runtime.settle()
            minute += 1
        await runtime.service.run(plan.id, _as(plan, manager, change_release, parse_release("report")))
        await runtime.dispatcher.run_due()
        await runtime.settle()
        war_room = channels[plan.channels["war_room"].lstrip("#")]
        files = {f.filename: f for f in fake.shared_files(war_room)}
        [markdown] = [f for name, f in files.items() if name.endswith(".md")]
        [chart] = [f for name, f in files.items() if name.endswith(".png")]
        (out / "report.md").write_bytes(markdown.content or b"")
        (out / "chart.png").write_bytes(chart.content or b"")
        (out / "summary.txt").write_text(str(markdown.initial_comment) + "\n")
        print(
            f"{len(fake.posts())} messages posted; report {len(markdown.content or b'')} bytes, chart "
            f"{len(chart.content or b'')} bytes uploaded to {war_room}; written to {out}"
        )
        if refused:
            print(f"{refused} step(s) of the rehearsal were refused: see above", file=sys.stderr)
        return 1 if refused else 0
    finally:
        await runtime.close()
        await fake.stop()


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    args.add_argument("plan")
    args.add_argument("out", type=Path)
    parsed = args.parse_args()
    parsed.out.mkdir(parents=True, exist_ok=True)
    (parsed.out / "warroom.db").unlink(missing_ok=True)
    sys.exit(asyncio.run(rehearse(parsed.plan, parsed.out)))


if __name__ == "__main__":
    main()
