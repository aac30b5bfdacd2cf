"""Issues: `/issue` parsing, the pure rules, the ISSUE DETECTED card, the modals and the handlers."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from slack_sdk.models.views import View

from bot.domain import (
    Actor,
    CancelTimer,
    Conflict,
    IssueStatus,
    NotAllowed,
    NotFound,
    PageStatus,
    Post,
    Refresh,
    Release,
    SetTimer,
    Severity,
    UsageError,
)
from bot.issues import (
    EscalateIssue,
    InvestigateIssue,
    ListIssues,
    OpenIssueForm,
    ReportIssue,
    ResolveIssue,
    decide_issue,
    form_report,
    parse_issue,
    parse_ref,
    parse_severity,
)
from bot.plan import Plan
from bot.rules import Colour, release_from_plan, status_colour
from messages import blocks as bk
from messages.blocks import Message
from messages.issue_cards import issue_card, issue_list, issue_modal, issue_resolved, resolve_modal
from storage import repo
from tests.conftest import T0, SlackDriver
from tests.fake_slack import FakeSlack

REGIONS = ("region1", "region2")
RM = Actor("U0RM", frozenset({"release_manager"}))
DEV = Actor("U0DEV", frozenset({"devops_lead"}))
OUTSIDER = Actor("U0NOBODY")
NOW = T0 + timedelta(minutes=20)


def assert_valid(message: Message) -> None:
    assert message.text.strip(), "every message needs a text fallback"
    assert 0 < len(message.blocks) <= bk.MAX_BLOCKS
    bk.validate(message.blocks)


def report(release: Release, plan: Plan, text: str, actor: Actor = DEV, now: Any = NOW) -> Any:
    command = parse_issue(text, plan.regions or ())
    assert isinstance(command, ReportIssue)
    return decide_issue(release, plan, actor, command, now)


# --- parsing -----------------------------------------------------------------------------------------------


def test_quick_form_reads_severity_component_region_impact_and_error() -> None:
    parsed = parse_issue("high api region1 5xx errors on /appointments | Database connection timeout", REGIONS)
    assert parsed == ReportIssue(
        Severity.HIGH, "api", "5xx errors on /appointments", "region1", "Database connection timeout"
    )


def test_third_word_is_a_region_only_when_the_plan_lists_it() -> None:
    assert parse_issue("low web region1 slow pages", ()) == ReportIssue(Severity.LOW, "web", "region1 slow pages")
    parsed = parse_issue("low web region9 slow pages", REGIONS)
    assert isinstance(parsed, ReportIssue) and parsed.region is None and parsed.impact == "region9 slow pages"
    parsed = parse_issue("low web REGION2 slow", REGIONS)
    assert isinstance(parsed, ReportIssue) and parsed.region == "region2" and parsed.impact == "slow"


@pytest.mark.parametrize(
    ("word", "severity"),
    [
        ("critical", Severity.CRITICAL),
        ("SEV1", Severity.CRITICAL),
        ("p1", Severity.CRITICAL),
        ("High", Severity.HIGH),
        ("sev2", Severity.HIGH),
        ("P2", Severity.HIGH),
        ("medium", Severity.MEDIUM),
        ("Sev3", Severity.MEDIUM),
        ("p3", Severity.MEDIUM),
        ("LOW", Severity.LOW),
        ("sev4", Severity.LOW),
        ("p4", Severity.LOW),
    ],
)
def test_severity_aliases_are_case_insensitive(word: str, severity: Severity) -> None:
    assert parse_severity(word) is severity


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("urgent api broken", "not a severity"),
        ("sev5 api broken", "not a severity"),
        ("high", "Which component"),
        ("high api", "Describe the impact"),
        ("high api region1", "Describe the impact"),
        ("high api region1 | timeout", "Describe the impact"),
        ("resolve", "Which issue"),
        ("resolve x", "not an issue number"),
        ("list now", "takes no arguments"),
        ("investigate 2 extra", "takes only an issue number"),
    ],
)
def test_wrong_input_is_a_usage_error_that_shows_usage(text: str, expected: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_issue(text, REGIONS)
    assert expected in caught.value.message
    assert caught.value.usage and "/issue SEVERITY COMPONENT" in caught.value.usage


def test_subcommands_and_the_empty_form() -> None:
    assert parse_issue("", REGIONS) == OpenIssueForm()
    assert parse_issue("   ", REGIONS) == OpenIssueForm()
    assert parse_issue("list", REGIONS) == ListIssues()
    assert parse_issue("resolve 3 rolled back the pool size", REGIONS) == ResolveIssue(3, "rolled back the pool size")
    assert parse_issue("resolve #4", REGIONS) == ResolveIssue(4, "")
    assert parse_issue("investigate 2", REGIONS) == InvestigateIssue(2)
    assert parse_issue("escalate #2", REGIONS) == EscalateIssue(2)


KEYWORDS = st.sampled_from(
    [
        "",
        "high",
        "sev1",
        "P4",
        "list",
        "resolve",
        "investigate",
        "escalate",
        "api",
        "region1",
        "|",
        "#3",
        "3",
        " ",
    ]
)


@given(st.text())
def test_no_text_makes_the_parser_raise_anything_but_usage_error(text: str) -> None:
    try:
        result = parse_issue(text, REGIONS)
    except UsageError as exc:
        assert exc.message and exc.usage
    else:
        assert isinstance(
            result, ReportIssue | ResolveIssue | InvestigateIssue | EscalateIssue | ListIssues | OpenIssueForm
        )


@given(st.lists(st.one_of(KEYWORDS, st.text(max_size=8)), max_size=6))
def test_no_word_mix_makes_the_parser_raise_anything_but_usage_error(words: list[str]) -> None:
    try:
        result = parse_issue(" ".join(words), REGIONS)
    except UsageError:
        return
    if isinstance(result, ReportIssue):
        assert result.impact.strip() and result.component.strip()


@given(
    severity=st.sampled_from(["critical", "high", "medium", "low", "sev2", "p3"]),
    component=st.from_regex(r"[a-z][a-z0-9_-]{0,15}", fullmatch=True),
    impact=st.text(st.characters(blacklist_characters="|", blacklist_categories=("Cs",)), min_size=1).filter(
        lambda s: s.strip() and s.split()[0].lower() not in REGIONS
    ),
)
def test_a_well_formed_report_keeps_what_was_typed(severity: str, component: str, impact: str) -> None:
    parsed = parse_issue(f"{severity} {component} {impact}", REGIONS)
    assert isinstance(parsed, ReportIssue)
    assert parsed.component == component and parsed.impact == impact.strip()[:2000]
    assert parsed.severity is parse_severity(severity)


def test_button_values_name_release_and_number() -> None:
    assert parse_ref("uh-2-4-0:12") == ("uh-2-4-0", 12)
    for bad in ("", "12", "r1:", "r1:x"):
        with pytest.raises(UsageError):
            parse_ref(bad)


# --- rules -------------------------------------------------------------------------------------------------


def test_report_numbers_issues_per_release_and_posts_the_card(plan: Plan) -> None:
    release = release_from_plan(plan)
    first = report(release, plan, "high api region1 5xx errors | timeout")
    second = report(first.release, plan, "low web slow images")
    assert [i.number for i in second.release.issues] == [1, 2]
    issue = first.release.issue(1)
    assert issue is not None and issue.reporter == "U0DEV" and issue.region == "region1" and issue.error == "timeout"
    assert first.effects == (Post("war_room", "issue_card", {"number": 1}, key="issue:1"),)
    assert [e.kind for e in first.events] == ["issue.reported"]
    assert first.events[0].data["severity"] == "high"


def test_components_and_regions_are_checked_against_the_plan(plan: Plan) -> None:
    release = release_from_plan(plan)
    with pytest.raises(UsageError) as caught:
        report(release, plan, "high apix broken")
    assert "not a component" in caught.value.message and "api, web, database" in caught.value.message
    outcome = report(release, plan, "high API Region2 broken")
    issue = outcome.release.issue(1)
    assert issue is not None and issue.component == "api" and issue.region == "region2"
    free = plan.model_copy(update={"components": None})
    assert report(release, free, "high anything broken").release.issue(1).component == "anything"  # type: ignore[union-attr]


def test_anyone_may_report_but_only_people_in_the_plan_resolve(plan: Plan) -> None:
    outcome = report(release_from_plan(plan), plan, "medium web slow", actor=OUTSIDER)
    assert outcome.release.issue(1).reporter == "U0NOBODY"  # type: ignore[union-attr]
    with pytest.raises(NotAllowed):
        decide_issue(outcome.release, plan, OUTSIDER, ResolveIssue(1), NOW)
    with pytest.raises(NotAllowed):
        decide_issue(outcome.release, plan, OUTSIDER, InvestigateIssue(1), NOW)
    with pytest.raises(NotAllowed):
        decide_issue(outcome.release, plan, OUTSIDER, EscalateIssue(1), NOW)


def test_critical_goes_to_incidents_pages_level_one_and_turns_the_status_red(plan: Plan) -> None:
    outcome = report(release_from_plan(plan), plan, "sev1 database region1 writes failing")
    posts = [e for e in outcome.effects if isinstance(e, Post)]
    assert {(p.channel, p.template) for p in posts} >= {
        ("war_room", "issue_card"),
        ("incidents", "issue_card"),
        ("U0OC1", "page_dm"),
        ("U0OC2", "page_dm"),
        ("war_room", "page_notice"),
    }
    page = outcome.release.page(1)
    assert page is not None and page.level == 1 and page.issue_number == 1
    timers = [e for e in outcome.effects if isinstance(e, SetTimer)]
    assert timers == [SetTimer("page:1:climb", NOW + timedelta(minutes=15), "page.climb", {"page": 1, "level": 1})]
    assert {"issue.reported", "page.created"} <= {e.kind for e in outcome.events}
    assert status_colour(outcome.release, NOW)[0] is Colour.RED
    assert "level 1 is paged" in outcome.reply


def test_high_is_red_and_medium_is_yellow(plan: Plan) -> None:
    release = release_from_plan(plan)
    assert status_colour(report(release, plan, "high api down").release, T0)[0] is Colour.RED
    assert status_colour(report(release, plan, "medium api slow").release, T0)[0] is Colour.YELLOW


def test_investigating_sets_the_clicker_and_refreshes_the_card(plan: Plan) -> None:
    reported = report(release_from_plan(plan), plan, "high api down")
    outcome = decide_issue(reported.release, plan, RM, InvestigateIssue(1), NOW)
    assert outcome.release.issue(1).investigator == "U0RM"  # type: ignore[union-attr]
    assert outcome.effects == (Refresh("issue:1"),)
    assert outcome.events[0].kind == "issue.investigating"
    again = decide_issue(outcome.release, plan, RM, InvestigateIssue(1), NOW)
    assert again.release is outcome.release and not again.events and "already" in again.reply


def test_resolve_records_time_to_resolve_updates_card_and_threads_a_line(plan: Plan) -> None:
    reported = report(release_from_plan(plan), plan, "high api down", now=NOW)
    later = NOW + timedelta(minutes=12)
    outcome = decide_issue(reported.release, plan, RM, ResolveIssue(1, "restarted the pool"), later)
    issue = outcome.release.issue(1)
    assert issue is not None and issue.status is IssueStatus.RESOLVED and issue.resolution == "restarted the pool"
    assert issue.resolved_by == "U0RM" and issue.resolved_at == later
    assert Refresh("issue:1") in outcome.effects
    thread = [e for e in outcome.effects if isinstance(e, Post) and e.template == "issue_resolved"]
    assert thread and thread[0].thread_of == "issue:1"
    event = outcome.events[0]
    assert event.kind == "issue.resolved" and event.data["seconds_to_resolve"] == 720
    assert "issue" not in status_colour(outcome.release, later)[1], "a resolved issue no longer colours the status"


def test_unknown_or_already_resolved_issues_are_refused(plan: Plan) -> None:
    reported = report(release_from_plan(plan), plan, "low web typo")
    with pytest.raises(NotFound) as caught:
        decide_issue(reported.release, plan, RM, ResolveIssue(7), NOW)
    assert "no issue #7" in caught.value.message and "#1" in caught.value.message
    resolved = decide_issue(reported.release, plan, RM, ResolveIssue(1), NOW)
    with pytest.raises(Conflict):
        decide_issue(resolved.release, plan, RM, ResolveIssue(1), NOW)


def test_escalate_pages_level_one_then_climbs_then_stops_at_the_top(plan: Plan) -> None:
    reported = report(release_from_plan(plan), plan, "high api down")
    first = decide_issue(reported.release, plan, RM, EscalateIssue(1), NOW)
    assert first.release.page(1).last_notified_level == 1  # type: ignore[union-attr]
    assert "issue.escalated" in {e.kind for e in first.events}
    second = decide_issue(first.release, plan, RM, EscalateIssue(1), NOW)
    page = second.release.page(1)
    assert page is not None and page.last_notified_level == 2 and len(second.release.pages) == 1
    assert {p.channel for p in second.effects if isinstance(p, Post)} == {"U0DEV", "U0DBA", "war_room"}
    third = decide_issue(second.release, plan, RM, EscalateIssue(1), NOW)
    assert third.release.page(1).last_notified_level == 3  # type: ignore[union-attr]
    with pytest.raises(Conflict):
        decide_issue(third.release, plan, RM, EscalateIssue(1), NOW)


def test_resolving_an_issue_stops_its_pages_from_climbing(plan: Plan) -> None:
    reported = report(release_from_plan(plan), plan, "critical api everything down")
    resolved = decide_issue(reported.release, plan, RM, ResolveIssue(1), NOW + timedelta(minutes=5))
    assert CancelTimer("page:1:climb") in resolved.effects
    assert "page.stopped" in {e.kind for e in resolved.events}
    page = resolved.release.page(1)
    assert page is not None and page.status is PageStatus.OPEN and page.escalate_at is None


def test_form_fields_report_problems_per_field(plan: Plan) -> None:
    report_, problems = form_report(plan, severity="huge", component="apix", region="mars", impact=" ", error=None)
    assert report_ is None and set(problems) == {"severity", "component", "region", "impact"}
    report_, problems = form_report(plan, severity="high", component="api", region=None, impact="down", error="x")
    assert problems == {} and report_ == ReportIssue(Severity.HIGH, "api", "down", None, "x")


# --- messages ----------------------------------------------------------------------------------------------


def test_the_card_is_valid_block_kit_with_the_reference_fields_and_buttons(plan: Plan) -> None:
    outcome = report(release_from_plan(plan), plan, "high api region1 5xx errors on /appointments | DB timeout")
    message = issue_card(plan, outcome.release, NOW, {"number": 1})
    assert_valid(message)
    text = json.dumps(message.blocks)
    for label in (
        "ISSUE DETECTED",
        "Severity:",
        "Component:",
        "Impact:",
        "Error:",
        "Investigating:",
        "<@U0DEV>",
    ):
        assert label in text
    assert "<!date^" in text and "region1" in text and "DB timeout" in text
    buttons = message.blocks[-1]["elements"]
    assert [b["action_id"] for b in buttons] == ["issue_investigate", "issue_escalate", "issue_resolve"]
    assert {b["value"] for b in buttons} == {"r1:1"}
    resolved = decide_issue(outcome.release, plan, RM, ResolveIssue(1, "fixed"), NOW + timedelta(minutes=3))
    closed = issue_card(plan, resolved.release, NOW, {"number": 1})
    assert_valid(closed)
    assert "RESOLVED" in closed.text and all(b["type"] != "actions" for b in closed.blocks)
    assert_valid(issue_resolved(plan, resolved.release, NOW, {"number": 1}))


def test_broadcasts_typed_into_an_issue_are_escaped(plan: Plan) -> None:
    typed = "<!channel> <!here> <!subteam^S123> <@U0RM> & co"
    outcome = report(release_from_plan(plan), plan, f"high api {typed} | <!everyone>")
    message = issue_card(plan, outcome.release, NOW, {"number": 1})
    rendered = json.dumps(message.blocks) + message.text
    for token in ("<!channel>", "<!here>", "<!everyone>", "<!subteam^S123>"):
        assert token not in rendered
    assert "&lt;!channel&gt;" in rendered and "&amp; co" in rendered


def test_a_huge_issue_stays_within_slack_limits(plan: Plan) -> None:
    outcome = report(release_from_plan(plan), plan, "high api " + "&<>x" * 600 + " | " + "y" * 999)
    assert_valid(issue_card(plan, outcome.release, NOW, {"number": 1}))
    assert_valid(issue_list(plan, outcome.release, NOW))


def test_modals_are_valid_block_kit_views(plan: Plan) -> None:
    view = issue_modal(plan, "r1", "C0WAR")
    View(**view).validate_json()
    bk.validate(view["blocks"])
    ids = [b["block_id"] for b in view["blocks"]]
    assert ids == ["severity", "component", "region", "impact", "error"]
    assert view["blocks"][1]["element"]["type"] == "static_select"
    assert json.loads(view["private_metadata"]) == {"release": "r1", "channel": "C0WAR"}
    free = issue_modal(plan.model_copy(update={"components": None, "regions": None}), "r1", "C0WAR")
    View(**free).validate_json()
    assert free["blocks"][1]["element"]["type"] == "plain_text_input"
    outcome = report(release_from_plan(plan), plan, "high api down")
    resolve = resolve_modal(outcome.release, 1, "C0WAR")
    View(**resolve).validate_json()
    bk.validate(resolve["blocks"])


def test_the_list_shows_open_issues_most_severe_first(plan: Plan) -> None:
    release = report(release_from_plan(plan), plan, "low web typo").release
    release = report(release, plan, "high api down").release
    message = issue_list(plan, release, NOW)
    assert_valid(message)
    text = json.dumps(message.blocks)
    assert text.index("#2") < text.index("#1")
    assert "No open issues" in issue_list(plan, replace(release, issues=()), NOW).text


# --- through Slack -----------------------------------------------------------------------------------------


def block_action(fake: FakeSlack, action_id: str, value: str, user: str = "U0DEV") -> dict[str, Any]:
    return {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower()},
        "api_app_id": "A111",
        "token": "verification_token",
        "team": {"id": "T111"},
        "trigger_id": "222.222.yyy",
        "channel": {"id": "C0WAR", "name": "deployment-war-room"},
        "container": {"type": "message", "channel_id": "C0WAR", "message_ts": "1700000001.000100"},
        "response_url": fake.webhook_url,
        "actions": [{"action_id": action_id, "block_id": "x", "value": value, "type": "button", "action_ts": "1"}],
    }


async def click(
    slack: SlackDriver,
    fake: FakeSlack,
    action_id: str,
    value: str,
    user: str = "U0DEV",
    wait: str = "respond",
) -> dict[str, Any]:
    """Click a button and wait for its answer (Bolt acks Slack before the listener finishes)."""
    before = len(fake.of(wait))
    await slack.action(block_action(fake, action_id, value, user))
    answers = await fake.wait_for(wait, before + 1)
    await slack.runtime.settle()
    return answers[before]


def view_submission(callback_id: str, metadata: dict[str, Any], values: dict[str, Any], user: str) -> dict[str, Any]:
    state = {}
    for block_id, value in values.items():
        if isinstance(value, dict):
            state[block_id] = {"value": {"type": "static_select", "selected_option": value}}
        else:
            state[block_id] = {"value": {"type": "plain_text_input", "value": value}}
    return {
        "type": "view_submission",
        "user": {"id": user, "username": user.lower()},
        "api_app_id": "A111",
        "token": "verification_token",
        "team": {"id": "T111"},
        "trigger_id": "333.333.zzz",
        "view": {
            "id": "V123",
            "type": "modal",
            "callback_id": callback_id,
            "private_metadata": json.dumps(metadata),
            "state": {"values": state},
        },
    }


def card_posts(fake: FakeSlack, channel: str = "C0WAR") -> list[dict[str, Any]]:
    return [p for p in fake.posts(channel) if "ISSUE DETECTED" in json.dumps(p.get("blocks"))]


async def test_issue_command_posts_the_card_and_replies_privately(slack: SlackDriver, fake_slack: FakeSlack) -> None:
    reply = await slack.command(
        "/issue", "high api region1 5xx errors on /appointments | Database connection timeout", user="U0DEV"
    )
    assert reply["response_type"] == "ephemeral" and "Issue #1" in reply["text"]
    cards = card_posts(fake_slack)
    assert len(cards) == 1
    bk.validate(cards[0]["blocks"])
    text = json.dumps(cards[0]["blocks"])
    assert "Database connection timeout" in text and "region1" in text and "High" in text
    assert not card_posts(fake_slack, "C0INC"), "only critical issues go to incidents"
    release = await slack.runtime.service.get("r1")
    assert release.issue(1) is not None


async def test_channel_broadcast_typed_in_an_issue_arrives_escaped(slack: SlackDriver, fake_slack: FakeSlack) -> None:
    await slack.command("/issue", "medium web <!channel> please look | <!here>", user="U0QA")
    card = card_posts(fake_slack)[-1]
    raw = json.dumps(card) + card["text"]
    assert "<!channel>" not in raw and "<!here>" not in raw
    assert "&lt;!channel&gt;" in raw


async def test_critical_issue_goes_to_incidents_and_pages_level_one(slack: SlackDriver, fake_slack: FakeSlack) -> None:
    await slack.command("/issue", "sev1 database writes failing", user="U0DBA")
    assert card_posts(fake_slack, "C0INC"), "critical issues are posted to incidents"
    assert fake_slack.posts("U0OC1") and fake_slack.posts("U0OC2")
    notice = [p for p in fake_slack.posts("C0WAR") if "Page #1" in p["text"]]
    assert notice and "<@U0OC1>" in json.dumps(notice[0]["blocks"])
    status = await slack.command("/release", "status")
    assert "Red" in json.dumps(status["blocks"])


async def test_wrong_issue_input_gets_usage_and_changes_nothing(slack: SlackDriver, fake_slack: FakeSlack) -> None:
    for text, expected in [
        ("urgent api down", "not a severity"),
        ("high apix down", "not a component"),
        ("high api", "Describe the impact"),
        ("resolve 9", "no issue #9"),
    ]:
        reply = await slack.command("/issue", text, user="U0DEV")
        assert reply["response_type"] == "ephemeral"
        assert expected in reply["text"], (text, reply["text"])
        assert "Usage:" in reply["text"]
    assert (await slack.runtime.service.get("r1")).issues == ()
    assert not card_posts(fake_slack)


async def test_investigating_button_updates_the_card_in_place(slack: SlackDriver, fake_slack: FakeSlack) -> None:
    await slack.command("/issue", "high api down", user="U0DEV")
    card = card_posts(fake_slack)[-1]
    card_ts = next(m["ts"] for m in fake_slack.messages["C0WAR"] if m["text"] == card["text"])
    await click(slack, fake_slack, "issue_investigate", "r1:1", "U0QA")
    updates = fake_slack.of("chat.update")
    assert updates and updates[-1]["ts"] == card_ts
    assert "<@U0QA>" in json.dumps(updates[-1]["blocks"])
    assert (await slack.runtime.service.get("r1")).issue(1).investigator == "U0QA"  # type: ignore[union-attr]
    assert "investigating" in fake_slack.responses()[-1]["text"]


async def test_resolve_button_asks_for_a_note_then_threads_the_resolution(
    slack: SlackDriver, fake_slack: FakeSlack
) -> None:
    await slack.command("/issue", "high api down", user="U0DEV")
    card_ts = fake_slack.messages["C0WAR"][-1]["ts"]
    await click(slack, fake_slack, "issue_resolve", "r1:1", "U0DEV", wait="views.open")
    opened = fake_slack.of("views.open")
    assert opened and opened[-1]["view"]["callback_id"] == "issue_resolve_modal"
    metadata = json.loads(opened[-1]["view"]["private_metadata"])
    answer = await slack.action(view_submission("issue_resolve_modal", metadata, {"note": "pool resized"}, "U0DEV"))
    assert not answer or "errors" not in answer
    release = await slack.runtime.service.get("r1")
    assert release.issue(1).status is IssueStatus.RESOLVED  # type: ignore[union-attr]
    threaded = [p for p in fake_slack.posts("C0WAR") if p.get("thread_ts") == card_ts]
    assert threaded and "pool resized" in json.dumps(threaded[-1]["blocks"])
    assert "RESOLVED" in fake_slack.of("chat.update")[-1]["text"]
    async with slack.runtime.service.sessions() as session:
        timeline = await repo.get_timeline(session=session, release_id="r1")
    resolved = [e for e in timeline if e.kind == "issue.resolved"]
    assert resolved and "seconds_to_resolve" in resolved[0].data


async def test_people_outside_the_plan_cannot_resolve_and_get_told_why(
    slack: SlackDriver, fake_slack: FakeSlack
) -> None:
    await slack.command("/issue", "low web typo", user="U0STRANGER")
    await click(slack, fake_slack, "issue_resolve", "r1:1", "U0STRANGER")
    assert not fake_slack.of("views.open")
    assert "Only people listed in the plan" in fake_slack.responses()[-1]["text"]
    reply = await slack.command("/issue", "resolve 1", user="U0STRANGER")
    assert "Only people listed in the plan" in reply["text"]
    assert (await slack.runtime.service.get("r1")).issue(1).status is IssueStatus.OPEN  # type: ignore[union-attr]


async def test_issue_without_text_opens_the_form_and_submitting_it_reports(
    slack: SlackDriver, fake_slack: FakeSlack
) -> None:
    from urllib.parse import urlencode

    from tests.conftest import sign

    form = {
        "command": "/issue",
        "text": "",
        "user_id": "U0QA",
        "channel_id": "C0WAR",
        "channel_name": "deployment-war-room",
        "trigger_id": "444.444.aaa",
        "response_url": fake_slack.webhook_url,
        "team_id": "T111",
        "api_app_id": "A111",
        "token": "verification_token",
    }
    body = urlencode(form)
    response = await slack.client.post("/slack/events", data=body, headers=sign(body))
    assert response.status == 200
    opened = await fake_slack.wait_for("views.open")
    view = opened[-1]["view"]
    assert view["callback_id"] == "issue_modal" and opened[-1]["trigger_id"] == "444.444.aaa"
    metadata = json.loads(view["private_metadata"])
    bad = await slack.action(
        view_submission(
            "issue_modal",
            metadata,
            {"severity": {"value": "high"}, "component": {"value": "nope"}, "impact": "down"},
            "U0QA",
        )
    )
    assert bad["response_action"] == "errors" and set(bad["errors"]) == {"component"}
    assert (await slack.runtime.service.get("r1")).issues == ()
    values = {
        "severity": {"value": "critical"},
        "component": {"value": "api"},
        "region": {"value": "region2"},
        "impact": "<!channel> checkout fails",
        "error": "HTTP 503",
    }
    good = await slack.action(view_submission("issue_modal", metadata, values, "U0QA"))
    assert not good or "errors" not in good
    issue = (await slack.runtime.service.get("r1")).issue(1)
    assert issue is not None and issue.region == "region2" and issue.severity is Severity.CRITICAL
    assert card_posts(fake_slack) and card_posts(fake_slack, "C0INC")
    assert "<!channel>" not in json.dumps(card_posts(fake_slack)[-1])
    assert any(e["user"] == "U0QA" for e in await fake_slack.wait_for("chat.postEphemeral"))


async def test_issue_list_and_resolve_by_command(slack: SlackDriver, fake_slack: FakeSlack) -> None:
    await slack.command("/issue", "high api down", user="U0DEV")
    await slack.command("/issue", "low web typo", user="U0DEV")
    listing = await slack.command("/issue", "list", user="U0QA")
    assert listing["response_type"] == "ephemeral"
    bk.validate(listing["blocks"])
    assert "#1" in json.dumps(listing["blocks"]) and "#2" in json.dumps(listing["blocks"])
    reply = await slack.command("/issue", "resolve 1 failover done", user="U0RM")
    assert "resolved" in reply["text"]
    listing = await slack.command("/issue", "list", user="U0QA")
    assert "#1" not in json.dumps(listing["blocks"]) and "#2" in json.dumps(listing["blocks"])


async def test_escalate_button_pages_the_next_level(slack: SlackDriver, fake_slack: FakeSlack) -> None:
    await slack.command("/issue", "high api down", user="U0DEV")
    await click(slack, fake_slack, "issue_escalate", "r1:1", "U0DEV")
    assert fake_slack.posts("U0OC1"), "level 1 is paged first"
    await click(slack, fake_slack, "issue_escalate", "r1:1", "U0DEV")
    assert fake_slack.posts("U0DBA"), "then level 2"
    assert "Level 2" in fake_slack.responses()[-1]["text"]
    card = fake_slack.of("chat.update")[-1]
    assert "Page #1" in json.dumps(card["blocks"])
