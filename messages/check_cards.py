"""The plan's checks as people see them: one line per check on the vote, the status update and the rollback
prompts, `/release checks`, and the rollback question a failing check raises (`rollback_check`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from markupsafe import Markup

from bot.core.check_plan import CheckSpec
from bot.core.checks import (
    asks,
    check_icon,
    check_kind,
    check_ref,
    format_value,
    summary,
    threshold_text,
)
from bot.domain import CheckState, Release, ReleaseStatus
from bot.ids import ActionId
from bot.lifecycle import ASKED
from bot.plan import Plan
from bot.timeparse import format_duration
from messages import blocks as bk
from messages.blocks import Message
from messages.render import builder, date_token, mentions, slack_escape, time_token

NOT_READ = "not read yet (read live from Prometheus when this is posted)"


def check_line(spec: CheckSpec, state: CheckState | None, tz: str) -> str:
    """`✅ *Error rate* 0.02% (< 0.1%) · read 22:01`, or why it could not be read."""
    name = f"*{slack_escape(spec.name)}*"
    wanted = f"({slack_escape(threshold_text(spec))})"
    if state is None:
        return f"{check_icon(None)} {name} {wanted} — {NOT_READ}"
    read = f"read {time_token(state.read_at, tz)}"
    if state.ok is None:
        why = slack_escape(state.error)
        return f"{check_icon(state)} {name} {wanted} — could not be read: {why} · tried {time_token(state.read_at, tz)}"
    value = slack_escape(format_value(state.value if state.value is not None else float("nan"), spec.unit))
    line = f"{check_icon(state)} {name} {value} {wanted} · {read}"
    if state.ok is False and state.failing_since is not None:
        line += f" · failing since {time_token(state.failing_since, tz)}"
    return line


def check_lines(plan: Plan, release: Release) -> list[str]:
    """One line per check of the plan, in plan order."""
    return [check_line(spec, release.check(spec.name), release.timezone) for spec in plan.checks]


def recommendation(plan: Plan, release: Release, audience: str) -> str:
    """What Warroom makes of the readings — a recommendation; the people named decide."""
    passing, failing, unreadable, unread = summary(plan, release)
    deciders = "the voters decide" if audience == "vote" else "the release manager decides"
    if failing:
        advice = "No-Go" if audience == "vote" else "rolling back"
        head = f"{failing} of {len(plan.checks)} checks failing: Warroom recommends {advice}"
    elif unreadable:
        head = f"{unreadable} of {len(plan.checks)} checks could not be read: look at the dashboards before deciding"
    elif unread:
        head = "Checks are read from Prometheus when this message is posted and every minute while it is open"
    else:
        head = f"All {passing} checks pass"
    return f"{head}. Warroom recommends; {deciders}."


def check_blocks(plan: Plan, release: Release, audience: str = "vote") -> list[dict[str, Any]]:
    """The checks section of a card (nothing when the plan has no checks)."""
    if not plan.checks:
        return []
    return [
        *bk.sections("*Checks from Prometheus*\n" + "\n".join(check_lines(plan, release))),
        bk.context(recommendation(plan, release, audience)),
    ]


def status_view(plan: Plan, release: Release) -> list[Markup]:
    """The check lines for templates (`checks` in the view): already escaped mrkdwn."""
    return [Markup(line) for line in check_lines(plan, release)]


def checks_reply(plan: Plan, release: Release, now: datetime) -> Message:
    """`/release checks`: the readings just taken, for the person who asked."""
    head = bk.header(f"Checks: {release.name} {release.version}")
    if not plan.checks:
        return bk.message(
            [head, bk.section("This plan has no checks. Add `checks:` and `integrations.prometheus` to the plan.")],
            f"{slack_escape(f'{release.name} {release.version}')} has no checks",
        )
    passing, failing, unreadable, _ = summary(plan, release)
    text = (
        f"Checks for {slack_escape(f'{release.name} {release.version}')}: {passing} passing, {failing} failing, "
        f"{unreadable} unreadable"
    )
    blocks = [head, *check_blocks(plan, release, "prompt" if release.status is ReleaseStatus.IN_PROGRESS else "vote")]
    blocks.append(bk.context(f"Read {date_token(now, release.timezone)}; the timeline keeps these readings."))
    return bk.message(blocks, text)


@builder("rollback_check")
def rollback_check(plan: Plan, release: Release, now: datetime, data: dict[str, Any]) -> Message:
    """A rollback trigger's check failing for its `for:`: continue or roll back? Asked of the deciders."""
    name = str(data.get("check", ""))
    spec = next((s for s in plan.checks if s.name == name), None)
    title = f"Rollback trigger: {name} failing"
    tz = release.timezone
    number = int(data.get("number", 1))
    decision = release.decision(check_kind(name))
    answered = decision if decision is not None and decision.outcome != ASKED else None
    deciders = plan.members(["release_manager", *([plan.go_no_go.final_authority] if plan.go_no_go else [])])
    asked_value = data.get("value")
    value = (
        format_value(float(asked_value), spec.unit)
        if spec is not None and isinstance(asked_value, int | float)
        else "—"
    )
    lasting = f" (for at least {format_duration(spec.for_)})" if spec is not None and spec.for_ else ""
    trigger = slack_escape(str(data.get("trigger", "")))
    blocks: list[dict[str, Any]] = [
        bk.header(title),
        bk.section(
            f"{mentions(deciders)}: the rollback trigger *{trigger}* holds — the check *{slack_escape(name)}* "
            f"has been failing since {date_token(data.get('since'), tz)}{lasting}. Value when asked: "
            f"*{slack_escape(value)}* ({slack_escape(threshold_text(spec)) if spec else '—'}). "
            "Continue the deployment or roll back?"
        ),
    ]
    if spec is not None:
        blocks.append(bk.section("*Now:* " + check_line(spec, release.check(name), tz)))
    blocks.append(bk.context("Warroom recommends rolling back while this holds; the release manager decides."))
    from messages.vote_cards import _choice  # vote_cards shows these checks: imported when used, not at load

    if number < asks(release, name):
        blocks.append(bk.section("*Superseded:* the check failed again later and asked anew (see the newer question)."))
        return bk.message(blocks, f"{title} (superseded)")
    blocks += _choice(
        release,
        answered,
        (ActionId.CHECK_CONTINUE, ActionId.CHECK_EXECUTE),
        f"{release.id}|{check_ref(name)}",
        f"“check {slack_escape(name)} failing”",
    )
    return bk.message(blocks, f"{title} ({slack_escape(f'{release.name} {release.version}')}): continue or roll back?")
