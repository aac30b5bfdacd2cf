"""Every message the bot can send is valid Block Kit within Slack's limits; people's text is escaped."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from bot.core.simulate import on_plan
from bot.domain import Issue, PhaseStatus, ReleaseStatus, Severity
from bot.plan import BUILTIN_TEMPLATES, Plan, load_plan
from bot.rules import release_from_plan
from messages import blocks as bk
from messages.render import compose, environment, literal_text, render, slack_escape
from messages.schedule_card import schedule_card
from schedules.upcoming import Upcoming
from tests.conftest import ROOT, T0

OWN_TEMPLATES = ("phase_update", "status_card", "phase_list")
BROADCASTS = ("<!channel>", "<!here>", "<!everyone>", "<!subteam^S123>", "<!subteam^S123|@all>", "<!date^1^{date}|x>")


def assert_valid(message: bk.Message) -> None:
    assert message.text.strip(), "every message needs a text fallback"
    assert len(message.text) <= bk.MAX_FALLBACK
    assert 0 < len(message.blocks) <= bk.MAX_BLOCKS
    bk.validate(message.blocks)


def busy_release(plan: Plan):  # type: ignore[no-untyped-def]
    release = on_plan(release_from_plan(plan), T0 + timedelta(minutes=40))
    issue = Issue(1, Severity.HIGH, "api", "5xx on /appointments", "U0DEV", T0, region="region1")
    return replace(release, issues=(issue,), status=ReleaseStatus.IN_PROGRESS)


@pytest.mark.parametrize("name", BUILTIN_TEMPLATES + OWN_TEMPLATES)
@pytest.mark.parametrize("example", ["unifiedhealth-golive.yml", "interactive-examples.yml", "demo.yml"])
def test_every_template_renders_to_valid_block_kit(name: str, example: str) -> None:
    plan, _ = load_plan(ROOT / "examples" / example)
    release = busy_release(plan)
    data = {
        "phase": release.phases[0].id,
        "verb": "done",
        "by": "U0DBA",
        "text": "ok",
        "region": "region1",
        "reason": "why",
        "previous_start": (T0 - timedelta(days=7)).isoformat(),
    }
    for delayed in (False, True):
        message = render(plan, name, release, T0 + timedelta(minutes=45), data, delayed=delayed)
        assert_valid(message)
        assert message.text.startswith("(delayed)") == delayed


def test_inline_announcements_render(plan: Plan) -> None:
    message = compose(
        plan,
        "inline",
        release_from_plan(plan),
        T0,
        {"inline": "*{{ release.name }}* at {{ release.start | date }}"},
    )
    assert_valid(message)
    assert "Test Platform" in message.text and "<!date^" in message.text


@pytest.mark.parametrize(
    "source",
    [
        "Deployment starts now",
        "Two lines\nof text\n",
        "Windows\r\nline breaks\r\n\r\n",
        "old Mac\rline breaks\r",
        "\n",
        "",
        "braces { alone } and }} closing ones, a # and a %",
        "*bold* <https://example.com|a link> & <!here> as the author wrote them",
    ],
)
def test_plain_inline_text_renders_as_jinja_would_without_compiling(source: str) -> None:
    assert literal_text(source) == environment(None).from_string(source).render()


@pytest.mark.parametrize("source", ["{{ release.name }}", "{% if true %}x{% endif %}", "a {# note #} b"])
def test_inline_text_with_template_syntax_is_left_to_jinja(source: str) -> None:
    assert literal_text(source) is None


def test_status_update_follows_the_reference_template(plan: Plan) -> None:
    release = busy_release(plan)
    text = "\n".join(
        b["text"]["text"]
        for b in render(plan, "status_update", release, T0 + timedelta(minutes=45)).blocks
        if "text" in b
    )
    for heading in (
        "DEPLOYMENT STATUS UPDATE",
        "*Phase:*",
        "*Status:*",
        "*Progress:*",
        "*Completed:*",
        "*In progress:*",
        "*Next:*",
        "*Issues:*",
        "*ETA:*",
    ):
        assert heading in text
    assert "Red" in text  # an open high issue turns the status red
    assert "#1 high api" in text


@pytest.mark.parametrize("attack", BROADCASTS)
def test_text_people_typed_never_forms_a_broadcast(plan: Plan, attack: str) -> None:
    release = release_from_plan(plan)
    data = {"phase": "db-migration", "verb": "done", "by": "U0DBA", "text": f"done {attack} & more"}
    message = render(plan, "phase_update", release, T0, data)
    payload = str(message.blocks) + message.text
    assert attack not in payload
    assert slack_escape(attack) in payload


def test_a_typed_person_or_channel_mention_stays_a_mention(plan: Plan) -> None:
    release = release_from_plan(plan)
    data = {"phase": "db-migration", "verb": "done", "by": "U0DBA", "text": "ask <@U0RM|rm> in <#C0WAR|war>"}
    message = render(plan, "phase_update", release, T0, data)
    assert "ask <@U0RM> in <#C0WAR>" in str(message.blocks) and "ask <@U0RM> in <#C0WAR>" in message.text


def test_escape_handles_the_three_control_characters() -> None:
    assert slack_escape("a < b > c & d") == "a &lt; b &gt; c &amp; d"


def test_long_content_is_truncated_not_rejected(plan: Plan) -> None:
    release = release_from_plan(plan)
    data = {"phase": "db-migration", "verb": "done", "by": "U0DBA", "text": "x" * 10000}
    assert_valid(render(plan, "phase_update", release, T0, data))


def test_many_phases_stay_within_fifty_blocks() -> None:
    phases = "\n".join(
        f"  - {{id: p{i}, name: Phase {i} {'y' * 80}, start: +{i}m, duration: 1m, owner: a}}" for i in range(120)
    )
    from bot.plan import parse_plan

    plan = parse_plan(
        "release: {id: big, name: Big, version: v1, window: {start: 2026-12-05T22:00:00Z, end: 2026-12-06T06:00:00Z}}\n"
        "channels: {war_room: C0001, announcements: C0002}\npeople: {a: [U0001]}\nphases:\n" + phases,
        "big.yml",
    )
    release = release_from_plan(plan)
    release = replace(release, phases=tuple(replace(p, status=PhaseStatus.DONE) for p in release.phases))
    for name in ("status_card", "phase_list", "status_update", "team_assembly"):
        assert_valid(render(plan, name, release, T0))


def test_truncate_never_cuts_a_slack_token() -> None:
    text = "a" * 90 + "<!date^1796508000^{time}|22:00 UTC>"
    cut = bk.truncate(text, 100)
    assert len(cut) <= 100 and "<!date" not in cut and cut.endswith("…")


def test_headers_show_date_fallbacks_not_tokens(plan: Plan) -> None:
    message = render(plan, "final_notice", release_from_plan(plan), T0)
    header = message.blocks[0]
    assert header["type"] == "header" and "<!date" not in header["text"]["text"]


def test_templates_dir_overrides_a_builtin(tmp_path: Path, plan: Plan) -> None:
    (tmp_path / "advance_notice.j2").write_text("# Custom {{ release.version }}\nHello {{ data.x }}")
    custom = plan.model_copy(update={"templates_dir": str(tmp_path)})
    message = render(custom, "advance_notice", release_from_plan(plan), T0, {"x": "<!here>"})
    assert message.blocks[0]["text"]["text"] == "Custom v1.2.3"
    assert "&lt;!here&gt;" in message.blocks[1]["text"]["text"]


def test_date_tokens_carry_a_fallback_in_the_plan_zone() -> None:
    plan, _ = load_plan(ROOT / "examples" / "interactive-examples.yml")
    message = render(plan, "advance_notice", release_from_plan(plan), plan.t0)
    assert "<!date^1753488000^" in message.blocks[1]["text"]["text"]
    assert "20:00 EDT" in message.blocks[1]["text"]["text"]


def test_the_schedule_card_is_valid_empty_and_when_long(plan: Plan) -> None:
    release = release_from_plan(plan)
    empty = schedule_card(plan, release, [], T0)
    assert_valid(empty)
    assert "Nothing is scheduled" in str(empty.blocks)
    entries = [Upcoming(T0 + timedelta(minutes=n), f"Announcement `a{n}` <!here>", "war_room") for n in range(40)]
    long = schedule_card(plan, release, entries, T0 + timedelta(minutes=1))
    assert_valid(long)
    text = str(long.blocks)
    assert "… and 15 more." in text and "going out now" in text and "<!here>" not in text


@pytest.mark.parametrize("name", BUILTIN_TEMPLATES)
def test_a_channel_given_by_id_is_shown_as_a_link_never_as_its_bare_id(plan: Plan, name: str) -> None:
    """The plan names its channels by ID (C0WAR): every message that points people to one links it."""
    release = busy_release(plan)
    data = {"by": "U0RM", "region": "region1", "reason": "why", "previous_start": (T0 - timedelta(days=7)).isoformat()}
    message = render(plan, name, release, T0 + timedelta(minutes=45), data)
    body = message.text + repr(message.blocks)
    assert not re.search(r"(?<!<#)\bC0(WAR|ANN|INC)\b", body), body
