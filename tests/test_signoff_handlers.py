"""Sign-offs, the handoff and follow-ups through signed requests, the dispatcher and a fake Slack."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from bot.domain import ReleaseStatus, SignOffStatus
from bot.plan import parse_plan
from bot.service import LoadedPlan
from messages.blocks import validate
from tests.conftest import T0, Clock, SlackDriver, home_answer, home_click
from tests.test_gonogo_handlers import click, release, submission, timeline
from tests.test_signoffs import signoff_plan_text


@pytest.fixture
async def room(slack: SlackDriver) -> SlackDriver:
    """The app with a plan that lists sign-offs, a handoff at +3h, links and follow-ups."""
    text = signoff_plan_text()
    await slack.runtime.service.load(LoadedPlan(parse_plan(text, "signoffs.yml"), text, "signoffs.yml"))
    await slack.runtime.settle()
    return slack


async def deliver(slack: SlackDriver) -> None:
    await slack.runtime.settle()
    await slack.runtime.dispatcher.run_due()
    await slack.runtime.settle()


async def start(slack: SlackDriver, clock: Clock) -> None:
    clock.set(T0 - timedelta(minutes=20))
    await slack.command("/release", "start --force all checks green", user="U0VP")
    clock.set(T0 + timedelta(hours=2))
    await deliver(slack)


async def finish(slack: SlackDriver, clock: Clock, *, rollback: bool = False) -> dict[str, Any]:
    """Start, (roll back,) complete; return the sign-off table as posted."""
    await start(slack, clock)
    if rollback:
        await slack.command("/release", "rollback error rate above 1%", user="U0RM")
    reply = await slack.command("/release", "complete --force wrapping up", user="U0RM")
    assert "sign-off table is posted" in reply["text"]
    await deliver(slack)
    [table] = tables(slack)
    return table


def tables(slack: SlackDriver) -> list[dict[str, Any]]:
    return [p for p in slack.fake.posts("C0WAR") if str(p.get("text", "")).startswith("Sign-offs for")]


def updates_of(slack: SlackDriver, ts: str) -> list[dict[str, Any]]:
    return [u for u in slack.fake.of("chat.update") if u.get("ts") == ts]


def posted_ts(slack: SlackDriver, post: dict[str, Any]) -> str:
    [message] = [m for m in slack.fake.messages["C0WAR"] if m.get("metadata") == post.get("metadata")]
    return str(message["ts"])


def buttons(blocks: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for block in blocks:
        elements = block.get("elements", []) if block["type"] == "actions" else [block.get("accessory") or {}]
        for element in elements:
            if element.get("type") == "button":
                found[(element["action_id"], element["value"])] = element
    return found


# --- sign-offs -------------------------------------------------------------------------------------------


async def test_completion_posts_the_signoff_table_with_a_button_per_role(room: SlackDriver, clock: Clock) -> None:
    table = await finish(room, clock)
    validate(table["blocks"])
    assert table["text"] == "Sign-offs for Test Platform v1.2.3: 0 of 2 signed"
    shown = json.dumps(table["blocks"])
    assert "All deployment steps complete" in shown and "All tests passing" in shown
    assert "Error rate &lt; 0.1%" in shown  # the plan's success criteria, escaped
    assert "Success" in shown
    assert set(buttons(table["blocks"])) == {
        ("signoff_sign", "r1:release_manager"),
        ("signoff_sign", "r1:qa_lead"),
        ("signoff_refuse", "r1:release_manager"),
        ("signoff_refuse", "r1:qa_lead"),
    }
    assert "signoffs.requested" in await timeline(room.runtime)


async def test_someone_outside_the_role_is_told_why_and_the_table_stays(room: SlackDriver, clock: Clock) -> None:
    table = await finish(room, clock)
    ts = posted_ts(room, table)
    before = len(room.fake.responses())
    await room.action(click(room.fake, "signoff_sign", "U0DBA", value="r1:qa_lead"))
    responses = await room.fake.wait_for("respond", before + 1)
    await deliver(room)
    assert responses[-1]["response_type"] == "ephemeral"
    assert "Only the qa lead may sign off as qa lead" in responses[-1]["text"]
    assert updates_of(room, ts) == []
    await room.action(click(room.fake, "signoff_refuse", "U0DBA", value="r1:qa_lead"))
    responses = await room.fake.wait_for("respond", before + 2)
    assert "Only the qa lead may sign off as qa lead" in responses[-1]["text"]
    assert not room.fake.of("views.open")  # no form that would be refused anyway
    assert (await release(room.runtime)).signoffs == ()


async def test_signing_updates_the_table_in_place_and_the_last_one_announces_the_approval(
    room: SlackDriver, clock: Clock
) -> None:
    table = await finish(room, clock)
    ts = posted_ts(room, table)
    await room.action(click(room.fake, "signoff_sign", "U0QA", value="r1:qa_lead"))
    [ephemeral] = await room.fake.wait_for("chat.postEphemeral")
    assert ephemeral["user"] == "U0QA" and "Signed off as qa lead" in ephemeral["text"]
    await deliver(room)
    [update] = updates_of(room, ts)
    validate(update["blocks"])
    assert update["text"] == "Sign-offs for Test Platform v1.2.3: 1 of 2 signed"
    assert "signed by <@U0QA>" in json.dumps(update["blocks"])
    assert ("signoff_sign", "r1:qa_lead") not in buttons(update["blocks"])

    clock.advance(minutes=4)
    reply = await room.command("/release", "signoff release_manager all steps done <!channel>", user="U0RM")
    assert "approved (success)" in reply["text"]
    await deliver(room)
    final = updates_of(room, ts)[-1]
    validate(final["blocks"])
    shown = json.dumps(final["blocks"])
    assert "Final approval time" in shown and "all steps done &lt;!channel&gt;" in shown
    assert buttons(final["blocks"]) == {}
    for channel in ("C0WAR", "C0ANN"):
        [approved] = [p for p in room.fake.posts(channel) if "approved" in str(p.get("text"))]
        validate(approved["blocks"])
        assert approved["text"] == "Test Platform v1.2.3 approved: Success"
    current = await release(room.runtime)
    assert current.approved_at == clock.now
    assert {"signoff.signed", "release.approved"} <= set(await timeline(room.runtime))


async def test_refusing_asks_for_the_reason_in_a_form_and_the_role_may_sign_later(
    room: SlackDriver, clock: Clock
) -> None:
    table = await finish(room, clock, rollback=True)
    assert "Rollback" in json.dumps(table["blocks"])
    ts = posted_ts(room, table)
    await room.action(click(room.fake, "signoff_refuse", "U0QA", value="r1:qa_lead"))
    [opened] = await room.fake.wait_for("views.open")
    validate(opened["view"]["blocks"])
    assert opened["view"]["callback_id"] == "signoff_refuse_modal"
    blank = {"reason": {"type": "plain_text_input", "value": " "}}
    empty = await room.action(submission(opened["view"], "U0QA", blank))
    assert empty["response_action"] == "errors" and "reason" in empty["errors"]
    assert (await release(room.runtime)).signoffs == ()
    reason = {"reason": {"type": "plain_text_input", "value": "EU smoke tests red"}}
    await room.action(submission(opened["view"], "U0QA", reason))
    await room.fake.wait_for("chat.postEphemeral")
    await deliver(room)
    [update] = updates_of(room, ts)
    validate(update["blocks"])
    assert "refused by <@U0QA>" in json.dumps(update["blocks"]) and "EU smoke tests red" in json.dumps(update["blocks"])
    given = (await release(room.runtime)).signoff("qa_lead")
    assert given is not None and given.status is SignOffStatus.REFUSED
    # the text form for a refusal, refused for someone outside the role
    other = await room.command("/release", "signoff refuse qa_lead no", user="U0DBA")
    assert "Only the qa lead" in other["text"]

    await room.command("/release", "signoff qa_lead re-run is green", user="U0QA")
    await room.command("/release", "signoff release_manager", user="U0RM")
    await deliver(room)
    current = await release(room.runtime)
    assert current.status is ReleaseStatus.ROLLED_BACK and current.approved_at is not None
    [approved] = [p for p in room.fake.posts("C0ANN") if "approved" in str(p.get("text"))]
    assert approved["text"] == "Test Platform v1.2.3 approved: Rollback"
    kinds = await timeline(room.runtime)
    assert kinds.count("signoff.refused") == 1 and kinds.count("signoff.signed") == 2


async def test_release_signoff_is_the_release_managers_and_waits_for_the_end(room: SlackDriver, clock: Clock) -> None:
    await start(room, clock)
    early = await room.command("/release", "signoff", user="U0RM")
    assert "once the release is over" in early["text"]
    refused = await room.command("/release", "signoff", user="U0QA")
    assert "Only the release manager may post the sign-off table" in refused["text"]
    unknown = await room.command("/release", "signoff refuse", user="U0QA")
    assert "Which role refuses?" in unknown["text"] and "Usage:" in unknown["text"]
    await room.command("/release", "complete --force done", user="U0RM")
    await deliver(room)
    again = await room.command("/release", "signoff", user="U0RM")
    assert "already in the war room" in again["text"]
    await deliver(room)
    assert len(tables(room)) == 1
    bad_role = await room.command("/release", "signoff dba fine", user="U0DBA")
    assert "is not a sign-off role" in bad_role["text"] and "`qa_lead`" in bad_role["text"]


async def test_a_click_from_the_app_home_signs_and_answers_on_top_of_the_home(room: SlackDriver, clock: Clock) -> None:
    table = await finish(room, clock)
    ts = posted_ts(room, table)
    await room.action(home_click("U0QA", "signoff_sign", "r1:qa_lead"))
    await home_answer(room.fake, "U0QA", "Signed off as qa lead")
    assert not room.fake.posts("U0QA"), "no DM: the answer is on the Home"
    await deliver(room)
    assert "signed by <@U0QA>" in json.dumps(updates_of(room, ts)[-1]["blocks"])
    # a refusal from Home: the explanation is on the Home too, and nothing changes
    await room.action(home_click("U0DBA", "signoff_sign", "r1:release_manager"))
    await home_answer(room.fake, "U0DBA", "Only the release manager may sign off")
    assert (await release(room.runtime)).signoff("release_manager") is None
    # refusing from Home: the form opens, and the answer is on the Home
    await room.action(home_click("U0RM", "signoff_refuse", "r1:release_manager"))
    [opened] = await room.fake.wait_for("views.open")
    assert json.loads(opened["view"]["private_metadata"])["channel"] == ""
    await room.action(submission(opened["view"], "U0RM", {"reason": {"type": "plain_text_input", "value": "DR test"}}))
    await home_answer(room.fake, "U0RM", "Refused as release manager")
    given = (await release(room.runtime)).signoff("release_manager")
    assert given is not None and given.comment == "DR test"


# --- the handoff -----------------------------------------------------------------------------------------


async def test_handoff_posts_at_its_time_and_acceptance_moves_level_one(room: SlackDriver, clock: Clock) -> None:
    await start(room, clock)
    await room.command("/issue", "high api region1 slow checkout | p95 900ms", user="U0QA")
    await room.command("/page", "dba replica lag growing", user="U0RM")
    await deliver(room)
    clock.set(T0 + timedelta(hours=3))  # handoff.at
    await deliver(room)
    [handoff] = [p for p in room.fake.posts("C0WAR") if str(p.get("text", "")).startswith("Day team handoff")]
    validate(handoff["blocks"])
    shown = json.dumps(handoff["blocks"])
    assert "Test Platform v1.2.3" in shown and "in progress" in shown
    assert "Database Migration" in shown and "planned" in shown and "late" in shown
    assert "#1 high api region1" in shown and "investigating" in shown
    assert "replica lag growing" in shown  # the page still open
    assert "Error rate in region2" in shown  # handoff.watch
    assert "<https://grafana.example.com/d/deploy?a=1&amp;b=2|Grafana>" in shown
    assert set(buttons(handoff["blocks"])) == {("handoff_accept", "r1")}
    assert "handoff.posted" in await timeline(room.runtime)
    ts = posted_ts(room, handoff)

    before = len(room.fake.responses())
    await room.action(click(room.fake, "handoff_accept", "U0RM", value="r1"))
    responses = await room.fake.wait_for("respond", before + 1)
    assert "Only the day lead" in responses[-1]["text"]
    await deliver(room)
    assert updates_of(room, ts) == []

    await room.action(home_click("U0DAY", "handoff_accept", "r1"))  # from the App Home: answered there
    await home_answer(room.fake, "U0DAY", "Escalation level 1 now pages oncall day")
    await deliver(room)
    [update] = updates_of(room, ts)
    validate(update["blocks"])
    assert "Accepted" in json.dumps(update["blocks"]) and buttons(update["blocks"]) == {}
    [notice] = [p for p in room.fake.posts("C0WAR") if "Handoff accepted" in str(p.get("text"))]
    validate(notice["blocks"])
    assert "<@U0DOC1>" in notice["text"]
    assert "handoff.accepted" in await timeline(room.runtime)

    reply = await room.command("/page", "1 checkout errors again", user="U0DBA")
    assert "Page #2 sent" in reply["text"]
    await deliver(room)
    dms = {p["channel"] for p in room.fake.of("chat.postMessage") if "checkout errors again" in json.dumps(p)}
    assert {"U0DOC1", "U0DOC2"} <= dms and not {"U0OC1", "U0OC2"} & dms


async def test_release_handoff_posts_now_and_refuses_before_the_start(room: SlackDriver, clock: Clock) -> None:
    clock.set(T0 - timedelta(minutes=40))
    early = await room.command("/release", "handoff", user="U0RM")
    assert "nothing to hand over" in early["text"]
    await start(room, clock)
    other = await room.command("/release", "handoff", user="U0QA")
    assert "Only the release manager may post the day-team handoff" in other["text"]
    extra = await room.command("/release", "handoff now", user="U0RM")
    assert "takes no arguments" in extra["text"]
    posted = await room.command("/release", "handoff", user="U0RM")
    assert "posted in the war room" in posted["text"]
    await deliver(room)
    clock.set(T0 + timedelta(hours=3))  # the timer finds it posted already: not twice
    await deliver(room)
    assert len([p for p in room.fake.posts("C0WAR") if str(p.get("text", "")).startswith("Day team handoff")]) == 1


async def test_a_handoff_due_while_postponed_is_not_posted_and_the_timeline_says_why(
    room: SlackDriver, clock: Clock
) -> None:
    clock.set(T0 - timedelta(minutes=40))
    await room.command("/gonogo", "decide no-go payments vendor outage", user="U0VP")
    clock.set(T0 + timedelta(hours=3))
    await deliver(room)
    assert not [p for p in room.fake.posts("C0WAR") if str(p.get("text", "")).startswith("Day team handoff")]
    assert "handoff.skipped" in await timeline(room.runtime)


# --- follow-ups ------------------------------------------------------------------------------------------


async def test_follow_ups_remind_their_owners_at_their_time(room: SlackDriver, clock: Clock) -> None:
    await finish(room, clock)
    clock.set(T0 + timedelta(days=1))
    await deliver(room)
    [reminder] = [p for p in room.fake.posts("C0WAR") if "24-hour metrics review" in str(p.get("text"))]
    validate(reminder["blocks"])
    assert "<@U0RM>" in reminder["text"] and "<@U0QA>" in reminder["text"]
    assert not [p for p in room.fake.posts("C0ANN") if "Post-mortem" in str(p.get("text"))]
    clock.set(T0 + timedelta(days=7))
    await deliver(room)
    [postmortem] = [p for p in room.fake.posts("C0ANN") if "Post-mortem" in str(p.get("text"))]
    assert "<@U0RM>" in postmortem["text"]
    assert (await timeline(room.runtime)).count("follow_up.reminded") == 2


async def test_follow_ups_of_an_aborted_release_are_not_sent(room: SlackDriver, clock: Clock) -> None:
    clock.set(T0 - timedelta(hours=1))
    await room.command("/release", "abort vendor outage", user="U0RM")
    clock.set(T0 + timedelta(days=7))
    await deliver(room)
    assert not [p for p in room.fake.of("chat.postMessage") if "Follow-up" in str(p.get("text"))]
    assert (await timeline(room.runtime)).count("follow_up.skipped") == 2


async def test_release_schedule_lists_the_handoff_and_the_follow_ups(room: SlackDriver) -> None:
    card = await room.command("/release", "schedule")
    validate(card["blocks"])
    shown = json.dumps(card["blocks"])
    assert "Day-team handoff" in shown
    assert "Follow-up 1: its owners are reminded" in shown and "Follow-up 2" in shown
