"""Runbook checklists from the outside: signed slash commands and clicks, the war room's checklist message
updated in place (fake Slack's chat.update), permissions, the status update, finishing with open tasks."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from bot.checklists import VOTE_KEY as CHECKLIST_VOTE_KEY
from bot.checklists import TickTask, tick_task
from bot.domain import GO_NO_GO_CHECKLIST, Actor, PhaseStatus
from bot.plan import Plan, parse_plan
from bot.rules import ChangePhase, PhaseVerb, change_phase, progress, release_from_plan
from bot.service import LoadedPlan
from bot.votes import VOTE_KEY
from messages.blocks import validate
from messages.render import render
from storage import repo
from tests.conftest import T0, Clock, SlackDriver, home_answer, home_click, plan_text
from tests.fake_slack import FakeSlack
from tests.test_gonogo_handlers import OPEN_AT, click

TASKS = [
    "Execute database backup (final)",
    "Begin database migrations",
    "Monitor migration progress",
    "Verify schema changes",
]
DB_PHASE = "{id: db-migration, name: Database Migration, start: 0, duration: 30m, owner: dba}"
DB_PHASE_WITH_TASKS = (
    "{id: db-migration, name: Database Migration, start: 0, duration: 30m, owner: dba, "
    f"tasks: {json.dumps(TASKS)}, "
    "commands: ['tail -f /var/log/migrations.log', 'psql -c \"SELECT * FROM pg_stat_activity;\" <db>'], "
    "metrics: ['Database latency < 50ms']}"
)


def tasks_plan_text() -> str:
    text = plan_text()
    assert DB_PHASE in text
    return text.replace(DB_PHASE, DB_PHASE_WITH_TASKS)


def tasks_plan() -> Plan:
    return parse_plan(tasks_plan_text(), "test.yml")


@pytest.fixture
async def room(slack: SlackDriver, clock: Clock) -> SlackDriver:
    """The test release with tasks on Database Migration, three hours before T0 (no timer fires meanwhile)."""
    await slack.runtime.service.load(LoadedPlan(tasks_plan(), tasks_plan_text(), "test.yml"))
    await deliver(slack)
    return slack


async def deliver(slack: SlackDriver) -> None:
    await slack.runtime.settle()
    await slack.runtime.dispatcher.run_due()


def checklist_posts(fake: FakeSlack) -> list[dict[str, Any]]:
    return [p for p in fake.posts("C0WAR") if str(p.get("text", "")).startswith("Checklist: Database Migration")]


def updates_of(fake: FakeSlack, ts: str) -> list[dict[str, Any]]:
    return [u for u in fake.of("chat.update") if u["ts"] == ts]


def toggles(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [b["accessory"] for b in blocks if b.get("accessory", {}).get("action_id") == "task_toggle"]


async def events(slack: SlackDriver, kind: str) -> list[Any]:
    async with slack.runtime.service.sessions() as session:
        return [e for e in await repo.get_timeline(session=session, release_id="r1") if e.kind == kind]


# --- the checklist message -----------------------------------------------------------------------------------


async def test_phase_start_posts_its_checklist_with_a_tick_button_per_task(room: SlackDriver) -> None:
    reply = await room.command("/phase", "start db-migration", user="U0DBA")
    assert "in progress" in reply["text"]
    await deliver(room)
    [post] = checklist_posts(room.fake)
    validate(post["blocks"])
    buttons = toggles(post["blocks"])
    assert [b["value"] for b in buttons] == [f"r1:db-migration:{n}:tick" for n in range(1, 5)]
    assert all(b["text"]["text"] == "Tick" for b in buttons)
    payload = json.dumps(post["blocks"], ensure_ascii=False)
    assert "```tail -f /var/log/migrations.log" in payload  # commands as code
    assert "&lt;db&gt;" in payload  # typed into the plan: escaped even inside code
    assert "Metrics to watch" in payload and "Database latency &lt; 50ms" in payload
    assert "0 of 4 tasks done" in post["text"]
    # a phase without tasks gets no checklist message
    await room.command("/phase", "start deploy-region1", user="U0DEV")
    await deliver(room)
    assert not [p for p in room.fake.posts("C0WAR") if "Checklist: Deploy Region 1" in str(p.get("text"))]


async def test_a_tick_updates_the_checklist_in_place_and_goes_on_the_timeline(room: SlackDriver) -> None:
    await room.command("/phase", "start db-migration", user="U0DBA")
    await deliver(room)
    [post] = checklist_posts(room.fake)
    ts = _ts_of(room.fake, post)
    await room.action(click(room.fake, "task_toggle", "U0QA", "r1:db-migration:2:tick"))
    await deliver(room)
    [update] = updates_of(room.fake, ts)
    validate(update["blocks"])
    line = next(b["text"]["text"] for b in update["blocks"] if "*2.*" in b.get("text", {}).get("text", ""))
    assert line.startswith("✅ *2.* Begin database migrations — <@U0QA> <!date^")
    assert [b["text"]["text"] for b in toggles(update["blocks"])] == ["Tick", "Untick", "Tick", "Tick"]
    assert "1 of 4 tasks done" in update["text"]
    [checked] = await events(room, "task.checked")
    assert checked.subject == "db-migration" and checked.actor == "U0QA"
    assert checked.data == {"number": 2, "task": "Begin database migrations", "note": ""}
    reply = room.fake.responses()[-1]
    assert reply["response_type"] == "ephemeral" and "Ticked 2. Begin database migrations" in reply["text"]

    # a second click on the same stale "Tick" does not undo the first
    await room.action(click(room.fake, "task_toggle", "U0DBA", "r1:db-migration:2:tick"))
    await deliver(room)
    assert "already ticked, by <@U0QA>" in room.fake.responses()[-1]["text"]
    assert len(updates_of(room.fake, ts)) == 1

    await room.action(click(room.fake, "task_toggle", "U0DBA", "r1:db-migration:2:untick"))
    await deliver(room)
    last = updates_of(room.fake, ts)[-1]
    assert "⬜ *2.* Begin database migrations" in json.dumps(last["blocks"], ensure_ascii=False)
    [unchecked] = await events(room, "task.unchecked")
    assert unchecked.data == {"number": 2, "task": "Begin database migrations"} and unchecked.actor == "U0DBA"
    assert not (await room.runtime.service.get("r1")).task_checks


def _ts_of(fake: FakeSlack, post: dict[str, Any]) -> str:
    """The ts Slack gave the war-room message `post` (found by its text's first words; updates keep them)."""
    prefix = str(post["text"]).split(":")[0]
    [ts] = [m["ts"] for m in fake.messages["C0WAR"] if str(m["text"]).split(":")[0] == prefix]
    return ts


async def test_someone_outside_the_plan_cannot_tick_and_nothing_changes(room: SlackDriver) -> None:
    await room.command("/phase", "start db-migration", user="U0DBA")
    await deliver(room)
    before = await room.runtime.service.get("r1")
    updates = len(room.fake.of("chat.update"))
    await room.action(click(room.fake, "task_toggle", "U0STRANGER", "r1:db-migration:1:tick"))
    await deliver(room)
    reply = room.fake.responses()[-1]
    assert reply["response_type"] == "ephemeral"
    assert "Only people listed in the plan may tick a phase's tasks" in reply["text"]
    text = await room.command("/phase", "check db-migration 1", user="U0STRANGER")
    assert "Only people listed in the plan" in text["text"]
    assert await room.runtime.service.get("r1") == before
    assert len(room.fake.of("chat.update")) == updates
    # anyone in the plan may tick, not only the phase's owner
    ok = await room.command("/phase", "check db-migration 1 backup id 42", user="U0OC1")
    assert "Ticked 1." in ok["text"]


async def test_tick_from_the_app_home_works_and_answers_on_top_of_the_home(room: SlackDriver) -> None:
    await room.command("/phase", "start db-migration", user="U0DBA")
    await deliver(room)
    [post] = checklist_posts(room.fake)
    ts = _ts_of(room.fake, post)
    await room.action(home_click("U0DBA", "task_toggle", "r1:db-migration:3:tick"))
    await deliver(room)
    release = await room.runtime.service.get("r1")
    assert release.checked("db-migration")[3].done_by == "U0DBA"
    [update] = updates_of(room.fake, ts)
    assert "✅ *3.* Monitor migration progress" in json.dumps(update["blocks"], ensure_ascii=False)
    await home_answer(room.fake, "U0DBA", "Ticked 3. Monitor migration progress")
    # a refusal from the Home reaches the person there too, and changes nothing
    await room.action(home_click("U0STRANGER", "task_toggle", "r1:db-migration:1:tick"))
    await deliver(room)
    await home_answer(room.fake, "U0STRANGER", "Only people listed in the plan")
    assert 1 not in (await room.runtime.service.get("r1")).checked("db-migration")


# --- the text form -------------------------------------------------------------------------------------------


async def test_phase_tasks_check_and_uncheck_by_text(room: SlackDriver) -> None:
    reply = await room.command("/phase", "check db-migration 1 backup <!channel> id 42", user="U0DBA")
    assert reply["response_type"] == "ephemeral" and "1 of 4 done" in reply["text"]
    listing = await room.command("/phase", "list", user="U0QA")
    assert "· tasks 1/4" in json.dumps(listing["blocks"], ensure_ascii=False) and "`/phase tasks ID`" in json.dumps(
        listing["blocks"]
    )
    shown = await room.command("/phase", "tasks db-migration", user="U0QA")
    assert shown["response_type"] == "ephemeral"
    validate(shown["blocks"])
    payload = json.dumps(shown["blocks"], ensure_ascii=False)
    assert "✅ *1.* Execute database backup (final) — <@U0DBA>" in payload
    assert "backup &lt;!channel&gt; id 42" in payload and "<!channel>" not in payload
    assert len(toggles(shown["blocks"])) == 4
    [checked] = await events(room, "task.checked")
    assert checked.data["note"] == "backup <!channel> id 42"
    reply = await room.command("/phase", "uncheck db-migration 1", user="U0DBA")
    assert "Unticked 1." in reply["text"] and "0 of 4 done" in reply["text"]
    assert not (await room.runtime.service.get("r1")).task_checks


async def test_a_click_on_a_private_checklist_replaces_it_with_the_ticked_one(room: SlackDriver) -> None:
    await room.command("/phase", "tasks db-migration", user="U0QA")
    body = click(room.fake, "task_toggle", "U0QA", "r1:db-migration:4:tick")
    body["container"]["is_ephemeral"] = True
    await room.action(body)
    await deliver(room)
    replaced = room.fake.responses()[-1]
    assert replaced.get("replace_original") is True
    validate(replaced["blocks"])
    assert "✅ *4.* Verify schema changes" in json.dumps(replaced["blocks"], ensure_ascii=False)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("check db-migration 9", "Database Migration has 4 items: the number must be from 1 to 4 (got 9)"),
        ("check db-migration 0", "the number must be from 1 to 4 (got 0)"),
        ("check db-migration three", "`three` is not a task number"),
        ("check db-migration \u00b2", "is not a task number"),  # a digit to str.isdigit, not to int
        ("check db-migration " + "9" * 5000, "is not a task number"),  # longer than int() reads
        ("check db-migration 1.5", "`1.5` is not a task number"),
        ("check db-migration", "Which task? Give its number: `check db-migration N`"),
        ("check", "Which phase?"),
        ("tasks", "Which phase?"),
        ("tasks db-migration now", "takes nothing more"),
        ("check no-such 1", "There is no phase 'no-such'"),
        ("tasks no-such", "There is no phase 'no-such'"),
        ("check deploy-region1 1", "Deploy Region 1 has no tasks in the plan"),
        ("tasks deploy-region1", "Deploy Region 1 has no tasks in the plan"),
        ("uncheck db-migration 2", "is not ticked, so there is nothing to untick"),
        ("uncheck db-migration 2 because", "takes only the task number"),
        ("check go_no_go 1", "`/gonogo check N`"),
    ],
)
async def test_wrong_checklist_input_says_what_was_wrong_with_the_usage(
    room: SlackDriver, text: str, expected: str
) -> None:
    before = await room.runtime.service.get("r1")
    reply = await room.command("/phase", text, user="U0DBA")
    assert reply["response_type"] == "ephemeral"
    assert expected in reply["text"], reply["text"]
    assert "Usage:" in reply["text"] and "/phase check ID N" in reply["text"]
    assert await room.runtime.service.get("r1") == before


async def test_ticking_twice_or_after_the_phase_is_done_is_refused(room: SlackDriver) -> None:
    await room.command("/phase", "check db-migration 1", user="U0DBA")
    again = await room.command("/phase", "check db-migration 1", user="U0QA")
    assert "already ticked, by <@U0DBA>" in again["text"] and "/phase uncheck db-migration 1" in again["text"]
    await room.command("/phase", "done db-migration --force rest done by hand", user="U0DBA")
    closed = await room.command("/phase", "check db-migration 2", user="U0DBA")
    assert "Database Migration is done" in closed["text"] and "its checklist is closed" in closed["text"]
    assert set((await room.runtime.service.get("r1")).checked("db-migration")) == {1}


# --- finishing a phase with open tasks -------------------------------------------------------------------------


async def test_done_with_open_tasks_asks_first_then_the_button_finishes_and_records_them(room: SlackDriver) -> None:
    await room.command("/phase", "start db-migration", user="U0DBA")
    await room.command("/phase", "check db-migration 1", user="U0DBA")
    await room.command("/phase", "check db-migration 3", user="U0DBA")
    await deliver(room)
    [post] = checklist_posts(room.fake)
    ts = _ts_of(room.fake, post)
    asked = await room.command("/phase", "done db-migration verified by hand", user="U0DBA")
    assert asked["response_type"] == "ephemeral"
    validate(asked["blocks"])
    assert "still has 2 open task(s)" in asked["text"] + json.dumps(asked["blocks"])
    [button] = [e for b in asked["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert button["action_id"] == "phase_done_confirm"
    assert button["value"] == "r1:db-migration:verified by hand"
    assert "--force" in json.dumps(asked["blocks"])
    release = await room.runtime.service.get("r1")
    assert release.phase("db-migration").status is PhaseStatus.IN_PROGRESS  # type: ignore[union-attr]
    assert not await events(room, "phase.done")

    body = click(room.fake, "phase_done_confirm", "U0DBA", button["value"])
    body["container"]["is_ephemeral"] = True
    await room.action(body)
    await deliver(room)
    assert room.fake.responses()[-1]["replace_original"] is True  # the question and its button are gone
    release = await room.runtime.service.get("r1")
    phase = release.phase("db-migration")
    assert phase is not None and phase.status is PhaseStatus.DONE and phase.note == "verified by hand"
    [done] = await events(room, "phase.done")
    assert done.data["open_tasks"] == ["Begin database migrations", "Verify schema changes"]
    assert done.data["open_task_numbers"] == [2, 4]
    done_post = next(p for p in room.fake.posts("C0WAR") if "Database Migration* done" in json.dumps(p["blocks"]))
    validate(done_post["blocks"])
    assert "Finished with 2 task(s) left open: 2. Begin database migrations · 4. Verify schema changes" in json.dumps(
        done_post["blocks"], ensure_ascii=False
    )
    closed = updates_of(room.fake, ts)[-1]
    validate(closed["blocks"])
    payload = json.dumps(closed["blocks"], ensure_ascii=False)
    assert "⭕ *2.* Begin database migrations — _left open_" in payload and "2 task(s) left open" in payload
    assert not toggles(closed["blocks"])  # a finished phase's checklist has no buttons


async def test_done_force_is_the_text_path_and_all_ticked_needs_no_confirmation(room: SlackDriver) -> None:
    reply = await room.command("/phase", "done db-migration --force", user="U0DBA")
    assert "Database Migration: done" in reply["text"] and "Left open: 4 task(s)" in reply["text"]
    [done] = await events(room, "phase.done")
    assert done.data["open_task_numbers"] == [1, 2, 3, 4]
    # a phase whose tasks are all ticked finishes at once, and records nothing left open
    plan = tasks_plan()
    release = release_from_plan(plan)
    dba = Actor("U0DBA", frozenset({"dba"}))
    for n in range(1, 5):
        release = tick_task(release, plan, dba, TickTask("db-migration", n), T0).release
    outcome = change_phase(release, plan, dba, ChangePhase(PhaseVerb.DONE, "db-migration"), T0)
    assert "open_tasks" not in outcome.events[0].data


async def test_confirming_from_the_app_home_finishes_the_phase(room: SlackDriver) -> None:
    await room.command("/phase", "start db-migration", user="U0DBA")
    await room.action(home_click("U0DBA", "phase_done_confirm", "r1:db-migration"))
    await deliver(room)
    phase = (await room.runtime.service.get("r1")).phase("db-migration")
    assert phase is not None and phase.status is PhaseStatus.DONE
    await home_answer(room.fake, "U0DBA", "Left open: 4 task(s)")


# --- the status update and progress ---------------------------------------------------------------------------


def test_status_update_lists_tasks_and_progress_counts_them() -> None:
    plan = tasks_plan()
    dba = Actor("U0DBA", frozenset({"dba"}))
    release = release_from_plan(plan)
    release = change_phase(release, plan, dba, ChangePhase(PhaseVerb.DONE, "pre-deployment"), T0).release
    release = change_phase(release, plan, dba, ChangePhase(PhaseVerb.START, "db-migration"), T0).release
    for n in (1, 2):
        release = tick_task(release, plan, dba, TickTask("db-migration", n), T0 + timedelta(minutes=n)).release
    # 2h pre-deployment done + half of db-migration's 30m, of 3h30m planned
    assert progress(release) == int(120 / 210 * 100)
    assert progress(release, plan) == int(135 / 210 * 100)
    message = render(plan, "status_update", release, T0 + timedelta(minutes=5))
    validate(message.blocks)
    text = "\n".join(b["text"]["text"] for b in message.blocks if "text" in b)
    assert f"*Progress:* {int(135 / 210 * 100)}% complete" in text
    assert (
        "• Database Migration (since <!date^" in text
        and "— 2/4: ✅ Execute database backup (final), ✅ Begin database migrations, "
        "⏳ Monitor migration progress, ⏳ Verify schema changes"
        in text
    )
    assert "• Monitor migration progress (Database Migration, task 3)" in text  # next: the next open task
    assert "• Deploy Region 1 at <!date^" in text  # the next phase, without tasks, as before
    assert "• Pre-Deployment\n" in text + "\n"  # a finished phase without tasks, as before
    # finished with tasks open: the completed line says so
    release = change_phase(release, plan, dba, ChangePhase(PhaseVerb.DONE, "db-migration", force=True), T0).release
    text = "\n".join(b["text"]["text"] for b in render(plan, "status_update", release, T0).blocks if "text" in b)
    assert "• Database Migration — 2/4 tasks, 2 left open" in text


def test_a_long_checklist_stays_within_slack_limits() -> None:
    many = [f"Task number {n} " + "x" * 250 for n in range(1, 41)]
    text = tasks_plan_text().replace(json.dumps(TASKS), json.dumps(many))
    text = text.replace("metrics: ['Database latency < 50ms']", "metrics: " + json.dumps(["m" * 290] * 20))
    text = text.replace(
        "commands: ['tail -f /var/log/migrations.log', 'psql -c \"SELECT * FROM pg_stat_activity;\" <db>']",
        "commands: " + json.dumps(["c" * 490] * 20),
    )
    plan = parse_plan(text, "test.yml")
    from messages.checklist_cards import phase_checklist

    release = release_from_plan(plan)
    dba = Actor("U0DBA", frozenset({"dba"}))
    release = change_phase(release, plan, dba, ChangePhase(PhaseVerb.START, "db-migration"), T0).release
    for n in range(1, 41, 2):
        release = tick_task(release, plan, dba, TickTask("db-migration", n, note="n" * 500), T0).release
    message = phase_checklist(plan, release, T0, "db-migration")
    validate(message.blocks)
    assert len(message.blocks) <= 50 and len(toggles(message.blocks)) == 40
    payload = json.dumps(message.blocks)
    assert "more not shown here: see the plan" in payload  # commands and metrics cut, and said so
    status = render(plan, "status_update", release, T0)
    validate(status.blocks)
    assert "… 17 done" in json.dumps(status.blocks, ensure_ascii=False)


# --- the go/no-go checklist ------------------------------------------------------------------------------------


async def test_gonogo_checklist_is_ticked_before_and_during_the_vote(slack: SlackDriver, clock: Clock) -> None:
    assert CHECKLIST_VOTE_KEY == VOTE_KEY
    clock.set(OPEN_AT - timedelta(minutes=10))
    reply = await slack.command("/gonogo", "check 5 backup id 42", user="U0DBA")  # before the vote opens
    assert "Ticked 5. Backup verified" in reply["text"] and "1 of 6 done" in reply["text"]
    shown = await slack.command("/gonogo", "checklist", user="U0QA")
    validate(shown["blocks"])
    assert "✅ *5.* Backup verified — <@U0DBA>" in json.dumps(shown["blocks"], ensure_ascii=False)
    await slack.command("/gonogo", "open", user="U0RM")
    await deliver(slack)
    [vote] = [p for p in slack.fake.posts("C0WAR") if str(p.get("text", "")).startswith("Go/No-Go vote")]
    validate(vote["blocks"])
    payload = json.dumps(vote["blocks"], ensure_ascii=False)
    assert "*Go/No-Go checklist* — 1 of 6 ticked · still open: 1, 2, 3, 4, 6" in payload
    assert "⬜ *1.* All pre-deployment checks passed" in payload
    ts = _ts_of(slack.fake, vote)

    await slack.action(click(slack.fake, "task_toggle", "U0DEV", f"r1:{GO_NO_GO_CHECKLIST}:1:tick"))
    await deliver(slack)
    update = updates_of(slack.fake, ts)[-1]
    validate(update["blocks"])
    payload = json.dumps(update["blocks"], ensure_ascii=False)
    assert "2 of 6 ticked · still open: 2, 3, 4, 6" in payload and "✅ *1.* All pre-deployment checks passed" in payload
    [first, second] = await events(slack, "task.checked")
    assert first.subject == second.subject == GO_NO_GO_CHECKLIST

    # voters and the release manager tick; others in the plan may not
    before = await slack.runtime.service.get("r1")
    refused = await slack.command("/gonogo", "check 2", user="U0OC1")
    assert "Only the" in refused["text"] and "may tick the go/no-go checklist" in refused["text"]
    bad = await slack.command("/gonogo", "check 7", user="U0RM")
    assert "has 6 items" in bad["text"] and "Usage:" in bad["text"] and "/gonogo check N" in bad["text"]
    assert await slack.runtime.service.get("r1") == before

    # once decided, the vote shows what was still open and the checklist is closed
    await slack.command("/gonogo", "decide go all good", user="U0VP")
    await deliver(slack)
    closed = await slack.command("/gonogo", "check 2", user="U0RM")
    assert "its checklist is closed" in closed["text"]
    final = updates_of(slack.fake, ts)[-1]
    validate(final["blocks"])
    assert "⭕ *2.*" in json.dumps(final["blocks"], ensure_ascii=False) and not toggles(final["blocks"])


async def test_bad_toggle_values_are_refused(slack: SlackDriver) -> None:
    before = await slack.runtime.service.get("r1")
    for value in ("r1:db-migration", "r1:db-migration:x:tick", "r1:db-migration:1:maybe", ""):
        await slack.action(click(slack.fake, "task_toggle", "U0DBA", value))
        await deliver(slack)
        assert "names no checklist item" in slack.fake.responses()[-1]["text"]
    assert await slack.runtime.service.get("r1") == before


# --- the UnifiedHealth example ------------------------------------------------------------------------------


def test_the_unifiedhealth_example_carries_the_reference_checklists(capsys: pytest.CaptureFixture[str]) -> None:
    from bot.cli import main
    from tests.test_preview import UNIFIED

    plan = parse_plan(UNIFIED.read_text(), str(UNIFIED))
    assert all(p.tasks for p in plan.phases), [p.id for p in plan.phases if not p.tasks]
    db = next(p for p in plan.phases if p.id == "db-migration")
    assert db.tasks[0] == "Execute database backup (final)" and len(db.tasks) == 6
    assert db.commands[0] == "tail -f /var/log/migrations.log"
    canary = next(p for p in plan.phases if p.id == "canary-region1")
    assert canary.metrics == [
        "Error rate < 0.1%",
        "p95 response time < 200ms",
        "No 5xx errors",
        "Database latency < 50ms",
    ]
    assert plan.go_no_go is not None and plan.go_no_go.checklist[-1] == "Rollback plan ready"
    assert len(plan.success_criteria) == 20 and "Appointments bookable" in plan.success_criteria
    assert main(["check", str(UNIFIED)]) == 0
    capsys.readouterr()
    assert main(["preview", str(UNIFIED)]) == 0
    out = capsys.readouterr().out
    assert out.count("(posted when the phase starts: `/phase start ") == len(plan.phases)
    assert "⬜ *1.* Execute database backup (final)" in out
    # on plan, phases finished before T0 have their tasks ticked: the first status update says so, truthfully
    assert "• Team Assembly & Briefing — 6/6 tasks" in out and "left open" not in out


def test_the_gonogo_checklist_closes_when_the_release_starts_and_a_new_window_starts_all_over() -> None:
    from dataclasses import replace

    from bot.domain import ReleaseStatus
    from bot.rules import load_plan_into

    plan = tasks_plan()
    rm = Actor("U0RM", frozenset({"release_manager"}))
    release = tick_task(release_from_plan(plan), plan, rm, TickTask(GO_NO_GO_CHECKLIST, 1), T0).release
    release = tick_task(release, plan, rm, TickTask("db-migration", 2), T0).release
    started = replace(release, status=ReleaseStatus.IN_PROGRESS)
    with pytest.raises(Exception, match="The release has started, so the go/no-go checklist is closed"):
        tick_task(started, plan, rm, TickTask(GO_NO_GO_CHECKLIST, 2), T0)
    # postponed by a No-Go, then given a new window: the checklists start over with the phases
    postponed = replace(release, status=ReleaseStatus.POSTPONED)
    later = parse_plan(
        tasks_plan_text().replace("2026-12-05", "2026-12-12").replace("2026-12-06", "2026-12-13"), "t.yml"
    )
    rescheduled = load_plan_into(postponed, later, T0).release
    assert rescheduled.attempt == 2 and rescheduled.task_checks == ()
