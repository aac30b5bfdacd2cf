"""`/gonogo`, the vote buttons and modals, the deadline and the rollback prompt through signed requests."""

from __future__ import annotations

import asyncio
import copy
from datetime import timedelta
from typing import Any

from bot.app import Runtime
from bot.domain import ReleaseStatus
from bot.plan import parse_plan
from bot.service import LoadedPlan
from messages.blocks import validate
from storage import repo
from tests.conftest import T0, Clock, SlackDriver, plan_text
from tests.fake_slack import FakeSlack
from tests.test_votes import twenty_voter_plan

OPEN_AT = T0 - timedelta(minutes=30)
DEADLINE = T0 - timedelta(minutes=5)


def click(fake: FakeSlack, action_id: str, user: str, value: str = "r1", channel: str = "C0WAR") -> dict[str, Any]:
    """A block_actions payload shaped like ../shared/slack/fixtures/block_actions.payload.json."""
    return {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": "T111"},
        "api_app_id": "A111",
        "token": "verification_token",
        "container": {
            "type": "message",
            "message_ts": "1700000001.000100",
            "channel_id": channel,
            "is_ephemeral": False,
        },
        "trigger_id": f"trigger-{user}",
        "team": {"id": "T111", "domain": "test-domain"},
        "channel": {"id": channel, "name": "deployment-war-room"},
        "response_url": fake.webhook_url,
        "actions": [
            {
                "action_id": action_id,
                "block_id": "b",
                "value": value,
                "type": "button",
                "action_ts": "1596530385.1",
            }
        ],
    }


def submission(view: dict[str, Any], user: str, values: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A view_submission payload for a modal the bot opened, with the person's input."""
    submitted = copy.deepcopy(view)
    submitted.update(id="V123", state={"values": {block: {block: value} for block, value in values.items()}})
    return {
        "type": "view_submission",
        "team": {"id": "T111", "domain": "test-domain"},
        "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": "T111"},
        "api_app_id": "A111",
        "token": "verification_token",
        "trigger_id": f"trigger-{user}",
        "view": submitted,
    }


async def settle(slack: SlackDriver, method: str, count: int) -> list[dict[str, Any]]:
    """Wait for a listener that finishes after its ack, then for the deliveries its change started."""
    calls = await slack.fake.wait_for(method, count)
    await slack.runtime.settle()
    await slack.runtime.dispatcher.run_due()
    return calls


async def open_vote(slack: SlackDriver, clock: Clock) -> dict[str, Any]:
    clock.set(OPEN_AT - timedelta(minutes=5))
    reply = await slack.command("/gonogo", "open", user="U0RM")
    await slack.runtime.dispatcher.run_due()
    return reply


def vote_posts(fake: FakeSlack) -> list[dict[str, Any]]:
    return [p for p in fake.posts("C0WAR") if str(p.get("text", "")).startswith("Go/No-Go vote")]


async def release(runtime: Runtime, release_id: str = "r1") -> Any:
    return await runtime.service.get(release_id)


async def timeline(runtime: Runtime, release_id: str = "r1") -> list[str]:
    async with runtime.service.sessions() as session:
        return [e.kind for e in await repo.get_timeline(session=session, release_id=release_id)]


# --- /gonogo ------------------------------------------------------------------------------------------------


async def test_gonogo_open_posts_the_vote_with_buttons(slack: SlackDriver, clock: Clock) -> None:
    reply = await open_vote(slack, clock)
    assert "open" in reply["text"] and reply["response_type"] == "ephemeral"
    [post] = vote_posts(slack.fake)
    validate(post["blocks"])
    actions = next(b for b in post["blocks"] if b["type"] == "actions")
    assert [e["action_id"] for e in actions["elements"]] == ["vote_go", "vote_no_go", "vote_decide"]
    assert "<@U0DBA>" in str(post["blocks"]) and "Backup verified" in str(post["blocks"])
    again = await slack.command("/gonogo", "open", user="U0RM")
    assert "already open" in again["text"] and len(vote_posts(slack.fake)) == 1
    assert "vote.opened" in await timeline(slack.runtime)


async def test_gonogo_alone_shows_the_vote_privately(slack: SlackDriver, clock: Clock) -> None:
    await open_vote(slack, clock)
    reply = await slack.command("/gonogo", "", user="U0CTO")
    assert reply["response_type"] == "ephemeral" and reply["text"].startswith("Go/No-Go vote for Test Platform")
    validate(reply["blocks"])


async def test_gonogo_open_by_someone_else_is_refused(slack: SlackDriver, clock: Clock) -> None:
    clock.set(OPEN_AT - timedelta(minutes=5))
    reply = await slack.command("/gonogo", "open", user="U0DBA")
    assert reply["response_type"] == "ephemeral" and "Only the release manager or vp engineering" in reply["text"]
    assert (await release(slack.runtime)).vote_opened_at is None


async def test_wrong_gonogo_input_shows_usage_and_changes_nothing(slack: SlackDriver, clock: Clock) -> None:
    await open_vote(slack, clock)
    reply = await slack.command("/gonogo", "decide go", user="U0VP")
    assert "rationale" in reply["text"] and "Usage: `/gonogo`" in reply["text"]
    reply = await slack.command("/gonogo", "maybe", user="U0VP")
    assert "`maybe` is not a /gonogo command" in reply["text"]
    assert (await release(slack.runtime)).decisions == ()


# --- buttons and modals -------------------------------------------------------------------------------------


async def test_go_click_updates_the_vote_in_place(slack: SlackDriver, clock: Clock) -> None:
    await open_vote(slack, clock)
    await slack.action(click(slack.fake, "vote_go", "U0DEV"))
    responses = await settle(slack, "respond", 2)
    assert responses[-1]["text"].startswith("Your vote: Go") and responses[-1]["replace_original"] is False
    update = slack.fake.of("chat.update")[-1]
    [posted] = [m for m in slack.fake.messages["C0WAR"] if str(m["text"]).startswith("Go/No-Go vote")]
    assert (update["channel"], update["ts"]) == ("C0WAR", posted["ts"])  # in place, not a new message
    validate(update["blocks"])
    assert "1 Go" in update["text"] and "3 missing" in update["text"]
    assert "Go — <@U0DEV>" in str(update["blocks"])
    assert "vote.cast" in await timeline(slack.runtime)


async def test_non_voter_click_gets_a_private_reason_and_nothing_changes(slack: SlackDriver, clock: Clock) -> None:
    await open_vote(slack, clock)
    updates = len(slack.fake.of("chat.update"))
    await slack.action(click(slack.fake, "vote_go", "U0CTO"))
    responses = await settle(slack, "respond", 2)
    assert "Only the" in responses[-1]["text"] and "may vote go/no-go" in responses[-1]["text"]
    assert responses[-1]["response_type"] == "ephemeral" and responses[-1]["replace_original"] is False
    assert len(slack.fake.of("chat.update")) == updates
    assert (await release(slack.runtime)).ballots == ()


async def test_no_go_asks_for_a_reason_in_a_modal(slack: SlackDriver, clock: Clock) -> None:
    await open_vote(slack, clock)
    await slack.action(click(slack.fake, "vote_no_go", "U0QA"))
    [opened] = await slack.fake.wait_for("views.open", 1)
    assert opened["trigger_id"] == "trigger-U0QA"
    validate(opened["view"]["blocks"])
    empty = await slack.action(
        submission(opened["view"], "U0QA", {"reason": {"type": "plain_text_input", "value": " "}})
    )
    assert empty["response_action"] == "errors" and "reason" in empty["errors"]
    assert (await release(slack.runtime)).ballots == ()
    await slack.action(
        submission(opened["view"], "U0QA", {"reason": {"type": "plain_text_input", "value": "backup <!here> failed"}})
    )
    await settle(slack, "chat.postEphemeral", 1)
    [ballot] = (await release(slack.runtime)).ballots
    assert (ballot.voter, ballot.vote.value, ballot.reason) == ("U0QA", "no_go", "backup <!here> failed")
    update = slack.fake.of("chat.update")[-1]
    assert "backup &lt;!here&gt; failed" in str(update["blocks"]) and "<!here>" not in str(update["blocks"])


async def test_non_voter_no_go_click_opens_no_modal(slack: SlackDriver, clock: Clock) -> None:
    await open_vote(slack, clock)
    await slack.action(click(slack.fake, "vote_no_go", "U0OC1"))
    responses = await settle(slack, "respond", 2)
    assert "may vote go/no-go" in responses[-1]["text"] and not slack.fake.of("views.open")


async def test_final_authority_decides_with_the_modal(slack: SlackDriver, clock: Clock) -> None:
    await open_vote(slack, clock)
    await slack.action(click(slack.fake, "vote_decide", "U0RM"))
    responses = await settle(slack, "respond", 2)
    assert "decide go/no-go" in responses[-1]["text"] and not slack.fake.of("views.open")
    await slack.action(click(slack.fake, "vote_decide", "U0VP"))
    [opened] = await slack.fake.wait_for("views.open", 1)
    validate(opened["view"]["blocks"])
    outcome = {
        "type": "radio_buttons",
        "selected_option": {"value": "go", "text": {"type": "plain_text", "text": "Go"}},
    }
    missing = await slack.action(submission(opened["view"], "U0VP", {"outcome": outcome}))
    assert missing["response_action"] == "errors" and "reason" in missing["errors"]
    rationale = {"type": "plain_text_input", "value": "all checks green; QA is on leave"}
    await slack.action(submission(opened["view"], "U0VP", {"outcome": outcome, "reason": rationale}))
    await settle(slack, "chat.postEphemeral", 1)
    decision = (await release(slack.runtime)).decision("go_no_go")
    assert decision is not None and (decision.outcome, decision.overrode_tally) == ("go", True)
    announced = [p for p in slack.fake.posts("C0ANN") if "Go/No-Go decision" in p["text"]]
    assert announced and "all checks green" in str(announced[0]["blocks"])
    final = slack.fake.of("chat.update")[-1]
    assert not [b for b in final["blocks"] if b["type"] == "actions"]  # the buttons are gone
    assert "Decision: GO" in str(final["blocks"])


async def test_gonogo_decide_no_go_postpones(slack: SlackDriver, clock: Clock) -> None:
    await open_vote(slack, clock)
    reply = await slack.command("/gonogo", "decide no-go payments vendor outage", user="U0VP")
    assert reply["text"] == "Decision recorded: No-Go."
    await slack.runtime.dispatcher.run_due()
    assert (await release(slack.runtime)).status is ReleaseStatus.POSTPONED
    assert any("Deployment postponed" in p["text"] for p in slack.fake.posts("C0ANN"))
    async with slack.runtime.service.sessions() as session:
        items = {i.key: i.status for i in await repo.outbox(session=session, release_id="r1")}
    assert items["announcement:start"] == "cancelled"
    clock.set(T0)
    await slack.runtime.dispatcher.run_due()
    assert (await release(slack.runtime)).status is ReleaseStatus.POSTPONED  # T0 does not start it


# --- time ---------------------------------------------------------------------------------------------------


async def test_vote_opens_at_its_time_exactly_once(slack: SlackDriver, clock: Clock) -> None:
    clock.set(OPEN_AT)
    await slack.runtime.dispatcher.run_due()
    await slack.runtime.settle()
    clock.advance(minutes=1)
    await slack.runtime.dispatcher.run_due()
    # a restart loads the plan again: the fired timer must not fire twice
    plan = slack.runtime.service.plans["r1"]
    await slack.runtime.service.load(LoadedPlan(plan, "", "test.yml"))
    await slack.runtime.settle()
    await slack.runtime.dispatcher.run_due()
    assert len(vote_posts(slack.fake)) == 1
    assert (await timeline(slack.runtime)).count("vote.opened") == 1


async def test_deadline_reminds_then_records_no_go(slack: SlackDriver, clock: Clock) -> None:
    await open_vote(slack, clock)
    for user in ("U0RM", "U0DEV"):
        await slack.command("/gonogo", "go", user=user)
    clock.set(DEADLINE)
    await slack.runtime.dispatcher.run_due()
    await slack.runtime.settle()
    dms = {p["channel"] for p in slack.fake.posts() if p["channel"].startswith("U")}
    assert dms == {"U0DBA", "U0QA"}
    assert any("Go/No-Go deadline" in p["text"] or "missing" in p["text"] for p in slack.fake.posts("C0WAR"))
    assert (await release(slack.runtime)).decision("go_no_go") is None
    clock.set(DEADLINE + timedelta(minutes=4))
    await slack.runtime.dispatcher.run_due()
    assert (await release(slack.runtime)).decision("go_no_go") is None  # still in the grace
    clock.set(DEADLINE + timedelta(minutes=5))
    await slack.runtime.dispatcher.run_due()
    await slack.runtime.settle()
    current = await release(slack.runtime)
    decision = current.decision("go_no_go")
    assert decision is not None and decision.outcome == "no_go" and decision.rationale == "missing votes: Dba, Qa lead"
    assert current.status is ReleaseStatus.POSTPONED
    kinds = await timeline(slack.runtime)
    assert kinds.count("vote.cast") == 2 and "vote.reminded" in kinds and "vote.decided" in kinds


async def test_go_lets_t0_start_the_release(slack: SlackDriver, clock: Clock) -> None:
    await open_vote(slack, clock)
    for user in ("U0RM", "U0DEV", "U0DBA", "U0QA"):
        await slack.command("/gonogo", "go", user=user)
    await slack.runtime.dispatcher.run_due()
    assert any("Go/No-Go decision" in p["text"] for p in slack.fake.posts("C0ANN"))
    clock.set(T0)
    await slack.runtime.dispatcher.run_due()
    assert (await release(slack.runtime)).status is ReleaseStatus.IN_PROGRESS


async def test_twenty_simultaneous_clicks_all_count(slack: SlackDriver, clock: Clock) -> None:
    plan, text = twenty_voter_plan()
    plan = parse_plan(text.replace("C0WAR", "C0W20"), "twenty.yml")
    await slack.runtime.service.load(LoadedPlan(plan, text, "twenty.yml"))
    await open_vote(slack, clock)  # r1's vote; r20's is opened next, from its own war room
    await slack.command("/gonogo", "open", user="U0RM", channel="C0W20", channel_name="war-20")
    before = len(slack.fake.responses())
    clicks = [click(slack.fake, "vote_go", f"U0V{n:02d}", value="r20", channel="C0W20") for n in range(20)]
    await asyncio.gather(*(slack.action(c, settle=False) for c in clicks))
    await settle(slack, "respond", before + 20)
    current = await release(slack.runtime, "r20")
    assert len(current.ballots) == 20
    decision = current.decision("go_no_go")
    assert decision is not None and decision.outcome == "go"
    assert (await timeline(slack.runtime, "r20")).count("vote.cast") == 20


# --- the release lifecycle and the rollback prompt ----------------------------------------------------------


async def test_release_start_needs_a_go_or_a_forced_start(slack: SlackDriver, clock: Clock) -> None:
    clock.set(T0 - timedelta(minutes=20))
    refused = await slack.command("/release", "start", user="U0RM")
    assert "no Go decision yet" in refused["text"]
    forced = await slack.command("/release", "start --force customer deadline, risk accepted", user="U0VP")
    assert "in progress" in forced["text"]
    current = await release(slack.runtime)
    assert current.status is ReleaseStatus.IN_PROGRESS
    assert "release.started" in await timeline(slack.runtime)


async def test_rollback_prompt_at_the_decision_point(slack: SlackDriver, clock: Clock) -> None:
    clock.set(T0 - timedelta(minutes=20))
    await slack.command("/release", "start --force all set", user="U0VP")
    clock.set(T0 + timedelta(hours=1))
    await slack.runtime.dispatcher.run_due()
    await slack.runtime.settle()
    [prompt] = [p for p in slack.fake.posts("C0WAR") if p["text"].startswith("Rollback decision point")]
    validate(prompt["blocks"])
    assert "<@U0RM>" in str(prompt["blocks"]) and "Error rate &gt; 1%" in str(prompt["blocks"])
    before = len(slack.fake.responses())
    await slack.action(click(slack.fake, "rollback_execute", "U0DBA"))
    responses = await settle(slack, "respond", before + 1)
    assert "roll back the release" in responses[-1]["text"]
    assert (await release(slack.runtime)).status is ReleaseStatus.IN_PROGRESS
    await slack.action(click(slack.fake, "rollback_execute", "U0RM"))
    await settle(slack, "respond", before + 2)
    current = await release(slack.runtime)
    assert current.status is ReleaseStatus.ROLLING_BACK
    assert any(
        p["text"].startswith("Rollback started") or "Rollback started" in p["text"] for p in slack.fake.posts("C0ANN")
    )
    updated = slack.fake.of("chat.update")[-1]
    assert not [b for b in updated["blocks"] if b["type"] == "actions"]
    completed = await slack.command("/release", "complete", user="U0RM")
    assert "rolled back" in completed["text"]
    kinds = await timeline(slack.runtime)
    assert {"rollback.decision_point", "release.rollback_started", "release.rolled_back"} <= set(kinds)


async def test_after_a_reschedule_the_old_vote_buttons_are_refused_and_the_new_ones_count(
    slack: SlackDriver, clock: Clock
) -> None:
    await open_vote(slack, clock)
    await slack.command("/gonogo", "decide no-go payments vendor outage", user="U0VP")
    text = plan_text(start=T0 + timedelta(days=7))
    await slack.runtime.service.load(LoadedPlan(parse_plan(text, "test.yml"), text, "test.yml"))
    await slack.command("/gonogo", "open", user="U0RM")
    await slack.runtime.dispatcher.run_due()
    new_vote = vote_posts(slack.fake)[-1]
    [buttons] = [b for b in new_vote["blocks"] if b["type"] == "actions"]
    assert {e["value"] for e in buttons["elements"]} == {"r1#2"}

    async def press(action: str, value: str) -> str:
        before = len(slack.fake.responses())
        await slack.action(click(slack.fake, action, "U0QA", value=value))
        return str((await settle(slack, "respond", before + 1))[before]["text"])

    assert "earlier date" in await press("vote_go", "r1")  # a button on the old date's vote or reminder
    assert "earlier date" in await press("vote_no_go", "r1")
    assert (await release(slack.runtime)).ballots == () and not slack.fake.of("views.open")
    assert (await press("vote_go", "r1#2")).startswith("Your vote: Go")
    [ballot] = (await release(slack.runtime)).ballots
    assert ballot.voter == "U0QA"
