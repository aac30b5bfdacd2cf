"""Paging: `/page` parsing, the pure ladder rules, and the ladder on a controlled clock through restarts."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.app import build_runtime
from bot.domain import (
    Actor,
    CancelTimer,
    Conflict,
    External,
    NotAllowed,
    Outcome,
    PageStatus,
    Post,
    Release,
    SetTimer,
    UsageError,
)
from bot.paging import (
    AckPage,
    CreatePage,
    ListPages,
    TargetKind,
    decide_page,
    on_page_timeout,
    parse_page,
)
from bot.plan import Plan, parse_plan
from bot.rules import release_from_plan
from bot.service import LoadedPlan
from messages import blocks as bk
from messages.issue_cards import page_acked, page_dm, page_list, page_notice
from storage import repo
from tests.conftest import FAST_PACE, T0, Clock, SlackDriver, make_settings, plan_text
from tests.fake_slack import FakeSlack

RM = Actor("U0RM", frozenset({"release_manager"}))
OC1 = Actor("U0OC1", frozenset({"oncall"}))
OUTSIDER = Actor("U0NOBODY")
NOW = T0 + timedelta(minutes=10)


def page(release: Release, plan: Plan, text: str, actor: Actor = RM, now: datetime = NOW) -> Outcome:
    command = parse_page(text)
    assert isinstance(command, CreatePage | AckPage)
    return decide_page(release, plan, actor, command, now)


def posts(outcome: Outcome) -> list[Post]:
    return [e for e in outcome.effects if isinstance(e, Post)]


def timer_data(outcome: Outcome) -> tuple[datetime, dict[str, Any]]:
    timers = [e for e in outcome.effects if isinstance(e, SetTimer)]
    assert len(timers) == 1
    return timers[0].at, timers[0].data


# --- parsing -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1 db failover stuck", CreatePage(TargetKind.LEVEL, "1", "db failover stuck")),
        ("L2 help", CreatePage(TargetKind.LEVEL, "2", "help")),
        ("level3 help", CreatePage(TargetKind.LEVEL, "3", "help")),
        ("<@U0DBA|dba-person> replica lag", CreatePage(TargetKind.PERSON, "U0DBA", "replica lag")),
        ("<@U0DBA> replica lag", CreatePage(TargetKind.PERSON, "U0DBA", "replica lag")),
        ("<!subteam^S0TEAM|@sre> look", CreatePage(TargetKind.PERSON, "S0TEAM", "look")),
        ("dba replica lag", CreatePage(TargetKind.ROLE, "dba", "replica lag")),
        ("@DevOps_Lead go", CreatePage(TargetKind.ROLE, "DevOps_Lead", "go")),
        ("ack 3", AckPage(3)),
        ("ACK #3", AckPage(3)),
        ("ack", AckPage(None)),
        ("list", ListPages()),
    ],
)
def test_page_text_is_parsed(text: str, expected: object) -> None:
    assert parse_page(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "Who should be paged"),
        ("dba", "Say why"),
        ("<@U0DBA|x>", "Say why"),
        ("ack three", "not a page number"),
        ("ack 1 2", "one page number"),
        ("list all", "takes no arguments"),
        ("<#C123|general> help", "not a person"),
        ("@ help", "not a person"),
    ],
)
def test_wrong_page_text_is_a_usage_error_with_usage(text: str, expected: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_page(text)
    assert expected in caught.value.message
    assert caught.value.usage and "/page LEVEL" in caught.value.usage


@given(st.text())
def test_no_text_makes_the_page_parser_raise_anything_but_usage_error(text: str) -> None:
    try:
        result = parse_page(text)
    except UsageError as exc:
        assert exc.message and exc.usage
    else:
        assert isinstance(result, CreatePage | AckPage | ListPages)


@given(
    st.lists(
        st.one_of(st.sampled_from(["ack", "list", "1", "L9", "<@U1|x>", "<@", "@", "#2", "dba"]), st.text()),
        max_size=5,
    )
)
def test_no_word_mix_makes_the_page_parser_raise_anything_but_usage_error(words: list[str]) -> None:
    try:
        result = parse_page(" ".join(words))
    except UsageError:
        return
    if isinstance(result, CreatePage):
        assert result.reason.strip() and result.target


# --- rules -------------------------------------------------------------------------------------------------


def test_paging_a_level_dms_its_people_tells_the_war_room_and_starts_the_clock(plan: Plan) -> None:
    outcome = page(release_from_plan(plan), plan, "1 db failover stuck")
    assert {(p.channel, p.template) for p in posts(outcome)} == {
        ("U0OC1", "page_dm"),
        ("U0OC2", "page_dm"),
        ("war_room", "page_notice"),
    }
    created = outcome.release.page(1)
    assert created is not None and created.targets == ("U0OC1", "U0OC2") and created.created_by == "U0RM"
    assert timer_data(outcome) == (NOW + timedelta(minutes=15), {"page": 1, "level": 1})
    assert outcome.events[0].kind == "page.created" and outcome.events[0].data["level"] == 1
    assert not [e for e in outcome.effects if isinstance(e, External)], "no PagerDuty without a routing key"


def test_wrong_targets_are_refused_and_say_what_exists(plan: Plan) -> None:
    release = release_from_plan(plan)
    with pytest.raises(UsageError) as caught:
        page(release, plan, "9 help")
    assert "no escalation level 9" in caught.value.message and "1, 2, 3" in caught.value.message
    with pytest.raises(UsageError) as caught:
        page(release, plan, "ceo help")
    assert "no role 'ceo'" in caught.value.message and "dba" in caught.value.message
    with pytest.raises(NotAllowed):
        page(release, plan, "1 help", actor=OUTSIDER)


def test_the_ladder_climbs_level_by_level_then_notifies_the_top_once_more_and_stops(plan: Plan) -> None:
    outcome = page(release_from_plan(plan), plan, "1 db down")
    at, data = timer_data(outcome)
    seen: list[set[str]] = []
    for _ in range(3):
        outcome = on_page_timeout(outcome.release, plan, at, data)
        seen.append({p.channel for p in posts(outcome) if p.template == "page_dm"})
        if outcome.release.page(1).status is PageStatus.EXHAUSTED:  # type: ignore[union-attr]
            assert not [e for e in outcome.effects if isinstance(e, SetTimer)]
            break
        at, data = timer_data(outcome)
    assert seen == [{"U0DEV", "U0DBA"}, {"U0CTO"}, {"U0CTO"}]
    final = outcome.release.page(1)
    assert final is not None and final.status is PageStatus.EXHAUSTED and final.escalate_at is None
    assert {"page.renotified", "page.exhausted"} <= {e.kind for e in outcome.events}
    notice = next(p for p in posts(outcome) if p.template == "page_notice")
    assert notice.data["kind"] == "again" and notice.data["waited"] == "15m"


def test_the_war_room_is_told_why_the_page_climbed(plan: Plan) -> None:
    outcome = page(release_from_plan(plan), plan, "1 db down")
    at, data = timer_data(outcome)
    climbed = on_page_timeout(outcome.release, plan, at, data)
    assert at == NOW + timedelta(minutes=15)
    event = next(e for e in climbed.events if e.kind == "page.escalated")
    assert event.data == {"from": 1, "to": 2, "manual": False, "targets": ["U0DEV", "U0DBA"]}
    notice = next(p for p in posts(climbed) if p.template == "page_notice")
    message = page_notice(plan, climbed.release, at, notice.data)
    bk.validate(message.blocks)
    assert "Escalated to Level 2 — no acknowledgement from Level 1 within 15m" in message.text
    assert "<@U0DEV>" in json.dumps(message.blocks)
    assert timer_data(climbed)[0] == at + timedelta(minutes=15)


def test_a_stale_or_acknowledged_timer_does_nothing(plan: Plan) -> None:
    outcome = page(release_from_plan(plan), plan, "1 db down")
    at, data = timer_data(outcome)
    assert on_page_timeout(outcome.release, plan, at, {"page": 1, "level": 2}).release is outcome.release
    assert on_page_timeout(outcome.release, plan, at, {"page": 99, "level": 1}).release is outcome.release
    acked = decide_page(outcome.release, plan, OC1, AckPage(1), NOW + timedelta(minutes=3))
    quiet = on_page_timeout(acked.release, plan, at, data)
    assert quiet.release is acked.release and not quiet.effects


def test_ack_stops_the_ladder_and_records_time_to_ack(plan: Plan) -> None:
    outcome = page(release_from_plan(plan), plan, "1 db down")
    acked = decide_page(outcome.release, plan, OC1, AckPage(1), NOW + timedelta(minutes=4))
    taken = acked.release.page(1)
    assert taken is not None and taken.status is PageStatus.ACKED and taken.acked_by == "U0OC1"
    assert CancelTimer("page:1:climb") in acked.effects
    assert acked.events[0].kind == "page.acked" and acked.events[0].data["seconds_to_ack"] == 240
    line = next(p for p in posts(acked) if p.template == "page_acked")
    assert "acknowledged by <@U0OC1> after 4m" in page_acked(plan, acked.release, NOW, line.data).text
    with pytest.raises(Conflict):
        decide_page(acked.release, plan, RM, AckPage(1), NOW)
    with pytest.raises(UsageError):
        decide_page(acked.release, plan, RM, AckPage(None), NOW)


def test_ack_without_a_number_takes_the_only_page_and_unknown_numbers_are_refused(plan: Plan) -> None:
    outcome = page(release_from_plan(plan), plan, "2 db down")
    with pytest.raises(Exception, match="no page #5"):
        decide_page(outcome.release, plan, RM, AckPage(5), NOW)
    acked = decide_page(outcome.release, plan, RM, AckPage(None), NOW)
    assert acked.release.page(1).status is PageStatus.ACKED  # type: ignore[union-attr]


def test_a_person_outside_the_plan_may_ack_only_their_own_page(plan: Plan) -> None:
    outcome = page(release_from_plan(plan), plan, "<@U0GUEST|guest> please look")
    assert {p.channel for p in posts(outcome)} == {"U0GUEST", "war_room"}
    with pytest.raises(NotAllowed):
        decide_page(outcome.release, plan, OUTSIDER, AckPage(1), NOW)
    acked = decide_page(outcome.release, plan, Actor("U0GUEST"), AckPage(1), NOW)
    assert acked.release.page(1).acked_by == "U0GUEST"  # type: ignore[union-attr]


def test_a_role_page_is_repeated_once_after_15m_and_does_not_climb(plan: Plan) -> None:
    outcome = page(release_from_plan(plan), plan, "dba replica lag")
    created = outcome.release.page(1)
    assert created is not None and created.level is None and created.targets == ("U0DBA",)
    at, data = timer_data(outcome)
    assert at == NOW + timedelta(minutes=15) and data == {"page": 1, "level": None}
    again = on_page_timeout(outcome.release, plan, at, data)
    assert {p.channel for p in posts(again)} == {"U0DBA", "war_room"}
    assert again.release.page(1).status is PageStatus.EXHAUSTED  # type: ignore[union-attr]
    assert not [e for e in again.effects if isinstance(e, SetTimer)]
    notice = next(p for p in posts(again) if p.template == "page_notice")
    assert "/page 1 REASON" in page_notice(plan, again.release, at, notice.data).text


def test_page_messages_are_valid_block_kit_and_escape_the_reason(plan: Plan) -> None:
    outcome = page(release_from_plan(plan), plan, "1 <!channel> db down & out")
    for effect in posts(outcome):
        builder = page_dm if effect.template == "page_dm" else page_notice
        message = builder(plan, outcome.release, NOW, effect.data)
        bk.validate(message.blocks)
        assert message.text.strip() and len(message.blocks) <= bk.MAX_BLOCKS
        raw = json.dumps(message.blocks) + message.text
        assert "<!channel>" not in raw and "&lt;!channel&gt;" in raw
        buttons = [e for b in message.blocks if b["type"] == "actions" for e in b["elements"]]
        assert [(b["action_id"], b["value"]) for b in buttons] == [("page_ack", "r1:1")]
    listing = page_list(plan, outcome.release, NOW)
    bk.validate(listing.blocks)
    assert "Page #1" in listing.text or "Page #1" in json.dumps(listing.blocks)


# --- on a controlled clock, through Slack ------------------------------------------------------------------


def dm_count(fake: FakeSlack, user: str) -> int:
    return len(fake.posts(user))


async def advance(slack: SlackDriver, clock: Clock, minutes: float) -> None:
    clock.advance(minutes=minutes)
    await slack.runtime.dispatcher.run_due()
    await slack.runtime.settle()


async def test_the_ladder_climbs_on_the_clock_until_it_is_exhausted(
    slack: SlackDriver, fake_slack: FakeSlack, clock: Clock
) -> None:
    reply = await slack.command("/page", "1 payments API failing", user="U0RM")
    assert "Page #1" in reply["text"]
    assert dm_count(fake_slack, "U0OC1") == 1 and dm_count(fake_slack, "U0OC2") == 1
    assert dm_count(fake_slack, "U0DEV") == 0
    await advance(slack, clock, 14)
    assert dm_count(fake_slack, "U0DEV") == 0, "nothing climbs before ack_within"
    await advance(slack, clock, 2)
    assert dm_count(fake_slack, "U0DEV") == 1 and dm_count(fake_slack, "U0DBA") == 1
    room = [p["text"] for p in fake_slack.posts("C0WAR")]
    assert any("Escalated to Level 2 — no acknowledgement from Level 1 within 15m" in t for t in room)
    await advance(slack, clock, 16)
    assert dm_count(fake_slack, "U0CTO") == 1
    await advance(slack, clock, 16)
    assert dm_count(fake_slack, "U0CTO") == 2, "the last level is notified once more"
    assert any("exhausted" in json.dumps(p["blocks"]) for p in fake_slack.posts("C0WAR"))
    await advance(slack, clock, 60)
    assert dm_count(fake_slack, "U0CTO") == 2 and dm_count(fake_slack, "U0OC1") == 1, "then the ladder stops"
    release = await slack.runtime.service.get("r1")
    assert release.page(1).status is PageStatus.EXHAUSTED  # type: ignore[union-attr]
    async with slack.runtime.service.sessions() as session:
        kinds = [e.kind for e in await repo.get_timeline(session=session, release_id="r1")]
    assert kinds.count("page.escalated") == 2 and "page.exhausted" in kinds and "page.created" in kinds


async def test_acknowledge_button_in_the_dm_stops_the_ladder(
    slack: SlackDriver, fake_slack: FakeSlack, clock: Clock
) -> None:
    await slack.command("/page", "1 db down", user="U0RM")
    dm = fake_slack.posts("U0OC2")[-1]
    button = next(e for b in dm["blocks"] if b["type"] == "actions" for e in b["elements"])
    assert button["action_id"] == "page_ack"
    clock.advance(minutes=5)
    before = len(fake_slack.responses())
    await slack.action(
        {
            "type": "block_actions",
            "user": {"id": "U0OC2"},
            "api_app_id": "A111",
            "token": "verification_token",
            "team": {"id": "T111"},
            "trigger_id": "1.2.3",
            "channel": {"id": "DOC2"},
            "container": {"type": "message", "channel_id": "DOC2", "message_ts": "1.1"},
            "response_url": fake_slack.webhook_url,
            "actions": [
                {
                    "action_id": "page_ack",
                    "block_id": "page_actions",
                    "value": button["value"],
                    "type": "button",
                    "action_ts": "1",
                }
            ],
        }
    )
    reply = (await fake_slack.wait_for("respond", before + 1))[before]
    await slack.runtime.settle()
    assert "acknowledged page #1" in reply["text"]
    assert any("acknowledged by <@U0OC2> after 5m" in p["text"] for p in fake_slack.posts("C0WAR"))
    assert "Acknowledged by" in json.dumps(fake_slack.of("chat.update")[-1]["blocks"])
    await advance(slack, clock, 30)
    assert dm_count(fake_slack, "U0DEV") == 0, "an acknowledged page does not climb"
    async with slack.runtime.service.sessions() as session:
        acked = [e for e in await repo.get_timeline(session=session, release_id="r1") if e.kind == "page.acked"]
        pending = await repo.timers(session=session, release_id="r1")
    assert not [t for t in pending if t.key.startswith("page:")], "the ladder's timer is cancelled"
    assert acked and acked[0].data["seconds_to_ack"] == 300 and acked[0].actor == "U0OC2"


async def test_page_ack_command_and_wrong_input(slack: SlackDriver, fake_slack: FakeSlack, clock: Clock) -> None:
    for text, expected in [
        ("ceo please", "no role 'ceo'"),
        ("7 please", "no escalation level 7"),
        ("ack 4", "no page #4"),
        ("dba", "Say why"),
    ]:
        reply = await slack.command("/page", text, user="U0RM")
        assert reply["response_type"] == "ephemeral" and expected in reply["text"], (text, reply["text"])
        assert "Usage:" in reply["text"]
    assert (await slack.runtime.service.get("r1")).pages == ()
    reply = await slack.command("/page", "1 help", user="U0STRANGER")
    assert "Only people listed in the plan" in reply["text"]
    await slack.command("/page", "<@U0QA|qa> smoke tests failing", user="U0RM")
    assert dm_count(fake_slack, "U0QA") == 1
    listing = await slack.command("/page", "list", user="U0RM")
    bk.validate(listing["blocks"])
    reply = await slack.command("/page", "ack 1", user="U0QA")
    assert "acknowledged page #1" in reply["text"]
    assert (await slack.runtime.service.get("r1")).page(1).status is PageStatus.ACKED  # type: ignore[union-attr]


async def test_a_pending_ladder_timer_fires_after_a_restart(
    slack: SlackDriver, fake_slack: FakeSlack, clock: Clock, database_url: str
) -> None:
    await slack.command("/page", "1 db down", user="U0RM")
    await slack.runtime.close()
    # the bot was down for 20 minutes: the climb due at +15m must happen when it comes back
    later = Clock(clock() + timedelta(minutes=20))
    runtime = await build_runtime(make_settings(fake_slack, database_url), clock=later, pace=FAST_PACE)
    try:
        await runtime.service.load(LoadedPlan(parse_plan(plan_text(), "test.yml"), plan_text(), "test.yml"))
        await runtime.dispatcher.run_due()
        await runtime.settle()
        assert dm_count(fake_slack, "U0DEV") == 1 and dm_count(fake_slack, "U0DBA") == 1
        release = await runtime.service.get("r1")
        assert release.page(1).last_notified_level == 2  # type: ignore[union-attr]
        await runtime.dispatcher.run_due()
        await runtime.settle()
        assert dm_count(fake_slack, "U0DEV") == 1, "it fires once"
    finally:
        await runtime.close()


GROUP_PLAN = plan_text().replace("id: r1", "id: r2").replace("war_room: C0WAR", "war_room: C0WAR2")
GROUP_PLAN = GROUP_PLAN.replace("oncall: [U0OC1, U0OC2]", "oncall: [S0ONCALL]")


async def load_group_plan(slack: SlackDriver) -> None:
    await slack.runtime.service.load(LoadedPlan(parse_plan(GROUP_PLAN, "groups.yml"), GROUP_PLAN, "groups.yml"))
    await slack.runtime.settle()


async def test_a_user_group_is_expanded_into_direct_messages(slack: SlackDriver, fake_slack: FakeSlack) -> None:
    fake_slack.groups["S0ONCALL"] = ["U0A", "U0B"]
    await load_group_plan(slack)
    await slack.command("/page", "1 db down", user="U0RM", channel="C0WAR2", channel_name="war2")
    assert dm_count(fake_slack, "U0A") == 1 and dm_count(fake_slack, "U0B") == 1
    assert "<!subteam^S0ONCALL>" in json.dumps([p["blocks"] for p in fake_slack.posts("C0WAR2")])


async def test_a_group_that_cannot_be_expanded_is_mentioned_in_the_war_room(
    slack: SlackDriver, fake_slack: FakeSlack
) -> None:
    await load_group_plan(slack)  # the fake answers paid_teams_only for unknown groups, like a free plan
    await slack.command("/page", "1 db down", user="U0RM", channel="C0WAR2", channel_name="war2")
    room = [p for p in fake_slack.posts("C0WAR2") if "S0ONCALL" in json.dumps(p["blocks"])]
    assert len(room) == 2, "the page notice and the group's own copy, both in the war room"
    assert any("You are paged" in json.dumps(p["blocks"]) for p in room)
    assert not fake_slack.posts("S0ONCALL")


class Killed(Exception):
    """The process dies between a Slack call and the commit that records it."""


def crash_recording(monkeypatch: pytest.MonkeyPatch, keys: str) -> Any:
    """Make recording a sent outbox item whose key contains `keys` fail; returns the real function."""
    real_finish = repo.finish_sent

    async def finish(**kwargs: Any) -> None:
        items = await repo.outbox(session=kwargs["session"])
        sent = {s.item_id for s in kwargs["sent"]}
        if any(i.id in sent and keys in i.key for i in items):
            raise Killed
        await real_finish(**kwargs)

    monkeypatch.setattr(repo, "finish_sent", finish)
    return real_finish


async def page_with_a_lost_commit(slack: SlackDriver, monkeypatch: pytest.MonkeyPatch) -> None:
    """Page level 1; the DM to U0OC1 reaches Slack but the process dies before recording it."""
    real_finish = crash_recording(monkeypatch, ":dm:U0OC1")
    await slack.command("/page", "1 payments API failing", user="U0RM")
    monkeypatch.setattr(repo, "finish_sent", real_finish)


async def page_items(slack: SlackDriver, release_id: str, part: str) -> list[repo.OutboxItem]:
    async with slack.runtime.service.sessions() as session:
        return [i for i in await repo.outbox(session=session, release_id=release_id) if part in i.key]


async def test_a_page_dm_sent_but_not_recorded_is_found_in_the_dm_and_not_sent_again(
    slack: SlackDriver, fake_slack: FakeSlack, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    await page_with_a_lost_commit(slack, monkeypatch)
    assert dm_count(fake_slack, "U0OC1") == 1
    [item] = await page_items(slack, "r1", ":dm:U0OC1")
    assert item.status == "claimed"

    await advance(slack, clock, 2)  # the claim is stale: look in the DM channel before sending again
    assert dm_count(fake_slack, "U0OC1") == 1
    assert "D0OC1" in {c["channel"] for c in fake_slack.of("conversations.history")}
    [item] = await page_items(slack, "r1", ":dm:U0OC1")
    assert item.status == "sent" and item.ts and item.channel_id == "D0OC1"


async def test_group_members_already_paged_are_not_paged_again_after_a_lost_commit(
    slack: SlackDriver, fake_slack: FakeSlack, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_slack.groups["S0ONCALL"] = ["U0A", "U0B"]
    await load_group_plan(slack)
    real_finish = crash_recording(monkeypatch, ":dm:S0ONCALL")
    await slack.command("/page", "1 db down", user="U0RM", channel="C0WAR2", channel_name="war2")
    monkeypatch.setattr(repo, "finish_sent", real_finish)
    assert dm_count(fake_slack, "U0A") == 1 and dm_count(fake_slack, "U0B") == 1

    await advance(slack, clock, 2)  # stale: each member's DM channel is read before sending again
    assert dm_count(fake_slack, "U0A") == 1 and dm_count(fake_slack, "U0B") == 1
    assert {"D0A", "D0B"} <= {c["channel"] for c in fake_slack.of("conversations.history")}
    [item] = await page_items(slack, "r2", ":dm:S0ONCALL")
    assert item.status == "sent"


async def test_when_the_dm_cannot_be_read_the_page_is_sent_again_rather_than_lost(
    slack: SlackDriver, fake_slack: FakeSlack, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    await page_with_a_lost_commit(slack, monkeypatch)
    fake_slack.fail["conversations.history"] = [(200, {"ok": False, "error": "missing_scope"})]

    await advance(slack, clock, 2)
    assert dm_count(fake_slack, "U0OC1") == 2
    [item] = await page_items(slack, "r1", ":dm:U0OC1")
    assert item.status == "sent"


async def test_a_failed_look_up_is_tried_again_before_any_resend(
    slack: SlackDriver, fake_slack: FakeSlack, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    await page_with_a_lost_commit(slack, monkeypatch)
    fake_slack.fail["conversations.history"] = [(200, {"ok": False, "error": "internal_error"})]
    await advance(slack, clock, 2)  # stale: the look-up fails, so nothing is sent yet
    assert dm_count(fake_slack, "U0OC1") == 1
    await advance(slack, clock, 12)  # the retry looks again, well after the first claim, and finds it
    assert dm_count(fake_slack, "U0OC1") == 1
    [item] = await page_items(slack, "r1", ":dm:U0OC1")
    assert item.status == "sent"


async def test_the_war_room_copy_for_an_unexpanded_group_is_not_posted_twice(
    slack: SlackDriver, fake_slack: FakeSlack, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    await load_group_plan(slack)  # the fake answers paid_teams_only: the group's copy goes to the war room
    real_finish = crash_recording(monkeypatch, ":dm:S0ONCALL")
    await slack.command("/page", "1 db down", user="U0RM", channel="C0WAR2", channel_name="war2")
    monkeypatch.setattr(repo, "finish_sent", real_finish)
    await advance(slack, clock, 2)
    copies = [p for p in fake_slack.posts("C0WAR2") if "You are paged" in json.dumps(p["blocks"])]
    assert len(copies) == 1
    [item] = await page_items(slack, "r2", ":dm:S0ONCALL")
    assert item.status == "sent"


def slack_error(client: Any, error: str) -> SlackApiError:
    """What slack_sdk raises for an answer `{"ok": false, "error": error}`."""
    response = AsyncSlackResponse(
        client=client,
        http_verb="POST",
        api_url="chat.postMessage",
        req_args={},
        data={"ok": False, "error": error},
        headers={},
        status_code=200,
    )
    return SlackApiError(error, response)


@pytest.mark.parametrize("failure", ["network", "ratelimited"])
async def test_a_group_member_not_reached_for_now_is_paged_on_the_retry_and_nobody_twice(
    slack: SlackDriver, fake_slack: FakeSlack, clock: Clock, monkeypatch: pytest.MonkeyPatch, failure: str
) -> None:
    fake_slack.groups["S0ONCALL"] = ["U0A", "U0B"]
    await load_group_plan(slack)
    client = slack.runtime.dispatcher.client
    real_post = client.chat_postMessage
    failures = ["U0B"]

    async def post(**kwargs: Any) -> Any:
        if kwargs.get("channel") in failures:
            failures.remove(kwargs["channel"])
            raise TimeoutError("read timeout") if failure == "network" else slack_error(client, "ratelimited")
        return await real_post(**kwargs)

    monkeypatch.setattr(client, "chat_postMessage", post)
    await slack.command("/page", "1 db down", user="U0RM", channel="C0WAR2", channel_name="war2")
    assert dm_count(fake_slack, "U0A") == 1 and dm_count(fake_slack, "U0B") == 0
    await advance(slack, clock, 2)
    assert dm_count(fake_slack, "U0A") == 1 and dm_count(fake_slack, "U0B") == 1


async def test_a_post_answered_with_internal_error_is_looked_up_before_it_is_sent_again(
    slack: SlackDriver, fake_slack: FakeSlack, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = slack.runtime.dispatcher.client
    real_post = client.chat_postMessage
    once = ["U0OC1"]

    async def post(**kwargs: Any) -> Any:
        result = await real_post(**kwargs)
        if kwargs.get("channel") in once:  # Slack: the operation may have succeeded all the same
            once.remove(kwargs["channel"])
            raise slack_error(client, "internal_error")
        return result

    monkeypatch.setattr(client, "chat_postMessage", post)
    await slack.command("/page", "1 payments API failing", user="U0RM")
    await advance(slack, clock, 2)
    assert dm_count(fake_slack, "U0OC1") == 1
    [item] = await page_items(slack, "r1", ":dm:U0OC1")
    assert item.status == "sent"
