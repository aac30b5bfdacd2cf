"""Jinja2 rendering of messages: view data in, Block Kit out. Everything people typed is escaped."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
import jinja2.meta
import jinja2.nodes
from markupsafe import Markup

from bot.checklists import checks_by_scope, no_tasks, task_view
from bot.core.text import slack_escape as slack_escape  # the one escaping function, for the builders
from bot.domain import (
    ALERTMANAGER,
    GRAFANA,
    SYSTEM,
    IssueStatus,
    Phase,
    PhaseStatus,
    Release,
    ReleaseStatus,
    Severity,
)
from bot.lifecycle import pending_evaluations
from bot.plan import Plan
from bot.rules import current_phases, next_phase, progress, schedule_delta, status_colour
from bot.timeparse import format_duration
from messages import blocks as bk
from messages.blocks import Message

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).parent / "templates"

PHASE_ICONS = {
    PhaseStatus.PENDING: "⚪",
    PhaseStatus.IN_PROGRESS: "🔵",
    PhaseStatus.DONE: "✅",
    PhaseStatus.FAILED: "❌",
    PhaseStatus.SKIPPED: "⏭️",
}
COLOUR_ICONS = {"Green": "🟢", "Yellow": "🟡", "Red": "🔴"}
SEVERITY_RANK = {severity: rank for rank, severity in enumerate(Severity)}
"""Most severe first, as `Severity` lists them."""


def _finalize(value: object) -> object:
    """Every value a template prints: escaped, and marked as data so `layout` never reads it as layout."""
    if type(value) is str:
        if "&" not in value and "<" not in value and ">" not in value and "\n" not in value:
            return bk.VALUE + value  # what escaping and marking make of most values (names, ids), done at once
    elif type(value) is Markup and "\n" not in value:
        return bk.VALUE + str(value)  # a token (dates, mentions): the same, already escaped
    if value is None:
        return bk.value("")
    if isinstance(value, Markup):
        return bk.value(str(value))
    return bk.value(slack_escape(value))


def date_token(value: datetime | str | None, tz: str = "UTC", fmt: str = "{date_short_pretty} {time}") -> Markup:
    """A Slack date token that shows each reader their own time; the fallback is in `tz`.

    Takes a datetime, or an ISO 8601 string with an offset as stored in a message's `data`.
    """
    if type(value) is datetime and value.tzinfo is UTC:  # as stored: the key already
        return _date_token(value, tz, fmt)
    if value is None:
        return Markup("—")
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    # The token depends on the instant only: keyed by it in UTC, where equal datetimes are one instant
    # (two wall times an hour apart in a zone's autumn fold compare equal in that zone).
    return _date_token(value.astimezone(UTC), tz, fmt)


@lru_cache(maxsize=4096)
def _date_token(instant: datetime, tz: str, fmt: str) -> Markup:
    """The token of an instant (an aware UTC datetime); a card shows the same few hundred times each render."""
    local = instant.astimezone(ZoneInfo(tz))
    pattern = "%H:%M " if fmt == "{time}" else "%a %d %b %Y %H:%M "
    fallback = local.strftime(pattern) + (local.tzname() or tz)
    return Markup(f"<!date^{int(instant.timestamp())}^{fmt}|{fallback}>")


def time_token(value: datetime | str | None, tz: str = "UTC") -> Markup:
    if type(value) is datetime and value.tzinfo is UTC:  # as stored: see date_token
        return _date_token(value, tz, "{time}")
    return date_token(value, tz, "{time}")


_MEMBER_ID = re.compile(r"[UWS][A-Z0-9]{2,}")
_ALERT_SOURCES = {ALERTMANAGER.user_id: "Alertmanager", GRAFANA.user_id: "Grafana"}


def mention(member: str) -> Markup:
    """`<@U…>` for a person, `<!subteam^S…>` for a user group; anything that is not such an id (the bot
    itself, or text a custom template passes by mistake) is shown as escaped text, never as a token."""
    if member == SYSTEM.user_id:  # what timers act as: a page the bot opens itself
        return Markup("Warroom")
    if member in _ALERT_SOURCES:  # who reports an issue an alert opened
        return Markup(_ALERT_SOURCES[member])
    if not _MEMBER_ID.fullmatch(member):
        return Markup(slack_escape(member))
    if member.startswith("S"):
        return Markup(f"<!subteam^{member}>")
    return Markup(f"<@{member}>")


def mentions(members: list[str] | tuple[str, ...]) -> Markup:
    return Markup(", ".join(str(mention(m)) for m in members)) if members else Markup("—")


def channel_ref(ref: str) -> Markup | str:
    """A channel as Slack shows it: `<#C…>` for an ID (a link), the `#name` itself otherwise."""
    return Markup(f"<#{ref}>") if ref[:1] in {"C", "G"} and ref.isalnum() else ref


def utc_clock(value: datetime | None) -> str:
    return "—" if value is None else value.astimezone(UTC).strftime("%H:%M UTC")


def _duration(value: timedelta | None) -> str:
    return "—" if value is None else format_duration(value)


_DICT_ATTRIBUTES = frozenset(dir(dict))


class _Environment(jinja2.Environment):
    """Jinja's environment, reading `p.name` of view data (plain dicts) as the item straight away, and
    noting what each template file it compiles reads (`template_reads`) from the tree it compiles."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.reads: dict[str, frozenset[str] | None] = {}
        """By template name, from its latest compilation (a file changed on disk is compiled again)."""

    def _parse(self, source: str, name: str | None, filename: str | None) -> jinja2.nodes.Template:
        tree = super()._parse(source, name, filename)
        if name is not None:
            self.reads[name] = _tree_reads(tree)
        return tree

    def getattr(self, obj: Any, attribute: str) -> Any:
        # Jinja tries the attribute first and the item after it; a dict has no attributes but its methods,
        # so for any other name the item is what Jinja would find, without raising AttributeError first.
        if type(obj) is dict and attribute not in _DICT_ATTRIBUTES:
            try:
                return obj[attribute]
            except KeyError:
                return self.undefined(obj=obj, name=attribute)
        return super().getattr(obj, attribute)


def _environment(templates_dir: str | None) -> jinja2.Environment:
    loaders: list[jinja2.BaseLoader] = []
    if templates_dir:
        loaders.append(jinja2.FileSystemLoader(templates_dir))
    loaders.append(jinja2.FileSystemLoader(str(TEMPLATES)))
    env = _Environment(
        loader=jinja2.ChoiceLoader(loaders),
        finalize=_finalize,
        autoescape=False,  # escaping is Slack's, done by finalize: HTML entities would show literally
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )
    env.filters.update(
        date=date_token,
        time=time_token,
        mention=mention,
        mentions=mentions,
        clock=utc_clock,
        channel=channel_ref,
        duration=_duration,
    )
    return env


@lru_cache(maxsize=32)
def environment(templates_dir: str | None = None) -> jinja2.Environment:
    """The shared environment for a plan's templates_dir (built-ins when None)."""
    return _environment(templates_dir)


def template_syntax_error(source: str) -> str | None:
    """None when `source` is a valid template, else the parser's complaint."""
    try:
        environment(None).parse(source)
    except jinja2.TemplateSyntaxError as exc:
        return f"line {exc.lineno}: {exc.message}"
    return None


# --- view data -----------------------------------------------------------------------------------------------


_STATUS_SHOWN = {status: (status.value, status.value.replace("_", " "), PHASE_ICONS[status]) for status in PhaseStatus}
"""A phase status as views show it: (status, status_text, icon)."""
_DONE = PhaseStatus.DONE
_UNFINISHED = frozenset({PhaseStatus.PENDING, PhaseStatus.IN_PROGRESS})
_ZERO = timedelta(0)
_MINUTE = timedelta(minutes=1)


def phase_view(phase: Any, tz: str, now: datetime) -> dict[str, Any]:
    status = phase.status
    late = None
    if status is _DONE and phase.finished_at:
        late = phase.finished_at - phase.planned_end
    elif status in _UNFINISHED and now > phase.planned_end:
        late = now - phase.planned_end
    value, text, icon = _STATUS_SHOWN[status]
    return {
        "id": phase.id,
        "name": phase.name,
        "status": value,
        "status_text": text,
        "icon": icon,
        "region": phase.region,
        "owners": list(phase.owners),
        "planned_start": phase.planned_start,
        "planned_end": phase.planned_end,
        "started_at": phase.started_at,
        "finished_at": phase.finished_at,
        "started_by": phase.started_by,
        "finished_by": phase.finished_by,
        "note": phase.note,
        "late": late,
        "late_text": _lateness(late),
    }


def _lateness(delta: timedelta | None) -> str:
    if delta is None:
        return ""
    if abs(delta) < _MINUTE:
        return "on time"
    return f"{format_duration(delta)} late" if delta > _ZERO else f"{format_duration(delta)} early"


_PHASE_LISTS = ("phases", "completed", "skipped", "failed", "unfinished")


def view(
    release: Release,
    plan: Plan,
    now: datetime,
    data: dict[str, Any] | None = None,
    *,
    names: frozenset[str] | None = None,
) -> dict[str, Any]:
    """Everything a template may use (documented in the README's template section).

    `names`: only what a template reads (`template_reads`), None for everything. The phase views are most
    of the cost and grow with the plan: a phase update reads one phase, not the 200 of a long plan.
    """
    data = data or {}

    def wanted(*keys: str) -> bool:
        return names is None or not names.isdisjoint(keys)

    tz = plan.release.timezone
    shown: dict[str, Any] = {}
    if wanted(*_PHASE_LISTS, "current", "next", "phase"):
        checks = checks_by_scope(release)
        specs = plan.phase_specs()

        def full_view(p: Phase) -> dict[str, Any]:
            one = phase_view(p, tz, now)
            spec = specs.get(p.id)
            has_tasks = spec is not None and spec.tasks
            one.update(task_view(release, plan, p.id, checks.get(p.id, {})) if has_tasks else no_tasks())
            return one

        if wanted(*_PHASE_LISTS):
            phases = [full_view(p) for p in release.phases]
            shown["phases"] = phases
            shown["completed"] = [p for p in phases if p["status"] == "done"]
            shown["skipped"] = [p for p in phases if p["status"] == "skipped"]
            shown["failed"] = [p for p in phases if p["status"] == "failed"]
            shown["unfinished"] = [p for p in phases if p["status"] in {"pending", "in_progress"}]
        if wanted("current"):
            shown["current"] = [full_view(p) for p in current_phases(release)]
        if wanted("next"):
            nxt = next_phase(release)
            shown["next"] = full_view(nxt) if nxt else None
        if wanted("phase"):  # only in a message about a phase; elsewhere `phase` stays undefined
            named = next((p for p in release.phases if p.id == data.get("phase")), None)
            if named is not None:
                shown["phase"] = full_view(named)
    if wanted("colour", "colour_icon", "colour_reason"):
        colour, reason = status_colour(release, now)
        shown.update(colour=colour.value, colour_icon=COLOUR_ICONS[colour.value], colour_reason=reason)
    if wanted("delta", "delta_text", "eta", "expected_end"):
        delta = schedule_delta(release, now)
        ahead = next_phase(release)
        shown["delta"] = delta
        shown["delta_text"] = _lateness(delta) if delta > timedelta(minutes=1) else "on schedule"
        shown["eta"] = (ahead.planned_start + max(delta, timedelta(0))) if ahead else release.window_end
        shown["expected_end"] = max((p.planned_end for p in release.phases), default=release.window_end) + max(
            delta, timedelta(0)
        )
    if wanted("progress"):
        shown["progress"] = progress(release, plan)
    if wanted("open_issues"):
        shown["open_issues"] = [
            {
                "number": i.number,
                "severity": i.severity.value,
                "component": i.component,
                "region": i.region,
                "impact": i.impact,
                "investigator": i.investigator,
            }
            for i in sorted(release.issues, key=lambda i: (SEVERITY_RANK[i.severity], i.number))
            if i.status is IssueStatus.OPEN
        ]  # most severe first: where a message shows only the first few, those are the ones that matter
    if wanted("pending_rollback_decisions"):
        shown["pending_rollback_decisions"] = (
            list(pending_evaluations(release)) if release.status is ReleaseStatus.IN_PROGRESS else []
        )
    if wanted("checks"):
        shown["checks"] = _check_lines(plan, release)
    if wanted("people"):
        shown["people"] = {role: list(members) for role, members in plan.people.items()}
    if wanted("team"):
        shown["team"] = plan.members(plan.team_roles())
    if wanted("everyone"):
        shown["everyone"] = plan.members(list(plan.people))
    if wanted("escalation"):
        shown["escalation"] = [
            {
                "level": lvl.level,
                "roles": list(lvl.notify),
                "members": plan.members(lvl.notify),
                "ack_within": lvl.ack_within,
            }
            for lvl in plan.escalation
        ]
    window = plan.release.window
    shown.update(
        release={
            "id": release.id,
            "name": release.name,
            "version": release.version,
            "status": release.status.value,
            "status_text": release.status.value.replace("_", " "),
            "timezone": tz,
            "start": release.window_start,
            "end": release.window_end,
            "duration": window.end - window.start,
            "description": plan.release.description,
            "contact": plan.release.contact,
            "impact": plan.release.impact,
            "started_at": release.started_at,
            "ended_at": release.ended_at,
            "attempt": release.attempt,
        },
        channels=dict(plan.channels),
        go_no_go=(
            {
                "at": plan.at(plan.go_no_go.at),
                "deadline": plan.at(plan.go_no_go.deadline),
                "voters": list(plan.go_no_go.voters),
                "final_authority": plan.go_no_go.final_authority,
            }
            if plan.go_no_go
            else None
        ),
        rollback={
            "decision_point": plan.at(plan.rollback.decision_point) if plan.rollback.decision_point else None,
            "triggers": list(plan.rollback.triggers),
        },
        status_every=plan.status_updates[0].every if plan.status_updates else None,
        status_updates=[
            {"every": s.every, "channel": channel_ref(plan.channel(s.channel))} for s in plan.status_updates
        ],
        now=now,
        data=data,
        delayed=False,
    )
    return shown


def _check_lines(plan: Plan, release: Release) -> list[Markup]:
    """The plan's checks as last read, one escaped mrkdwn line each (messages/check_cards.py)."""
    from messages.check_cards import status_view  # it builds on this module's filters

    return status_view(plan, release)


_SHARED_CONTEXT = (jinja2.nodes.Include, jinja2.nodes.Import, jinja2.nodes.FromImport, jinja2.nodes.Extends)


def _tree_reads(tree: jinja2.nodes.Template) -> frozenset[str] | None:
    if next(tree.find_all(_SHARED_CONTEXT), None) is not None:
        return None
    return frozenset(jinja2.meta.find_undeclared_variables(tree))


def template_reads(env: jinja2.Environment, source: str) -> frozenset[str] | None:
    """The view names a template's source reads; None when it includes, imports or extends another template
    (which reads the same context, unseen here)."""
    return _tree_reads(env.parse(source))


def _file_template(plan: Plan, name: str) -> tuple[jinja2.Template, frozenset[str] | None]:
    env = environment(plan.templates_dir)
    template = env.get_template(f"{name}.j2")
    reads = getattr(env, "reads", {})
    if template.name in reads:
        return template, reads[template.name]
    return template, None  # not compiled here (never, with this environment): the whole view


@lru_cache(maxsize=1024)
def _inline_template(source: str) -> jinja2.Template:
    """An inline plan template, compiled once (the plan's texts are few; compiling is the costly part)."""
    return environment(None).from_string(source)


@lru_cache(maxsize=1024)
def _inline_reads(source: str) -> frozenset[str] | None:
    return template_reads(environment(None), source)


TEMPLATE_SYNTAX = ("{{", "{%", "{#")
NEWLINE = re.compile(r"\r\n|\r|\n")


def literal_text(source: str) -> str | None:
    """What the environment renders `source` to when it holds no template syntax (most plan announcements are
    plain text), without compiling it: the text with its line breaks as `\n` and one trailing line break
    dropped, as Jinja's lexer gives it (`keep_trailing_newline=False`); None when `source` is a template."""
    if any(mark in source for mark in TEMPLATE_SYNTAX):
        return None
    lines = NEWLINE.split(source)
    if lines[-1] == "":
        del lines[-1]
    return "\n".join(lines)


def render(
    plan: Plan,
    name: str,
    release: Release,
    now: datetime,
    data: dict[str, Any] | None = None,
    *,
    delayed: bool = False,
    inline: str | None = None,
) -> Message:
    """Render a template (or an inline one) into a Message within Slack's limits."""
    markup = literal_text(inline) if inline is not None else None
    if markup is None:  # a template: rendered from the release's view data, what it reads of it
        if inline is not None:
            template, reads = _inline_template(inline), _inline_reads(inline)
        else:
            template, reads = _file_template(plan, name)
        context = view(release, plan, now, data, names=reads)
        context["delayed"] = delayed
        try:
            markup = template.render(**context)
        except jinja2.UndefinedError:
            if reads is None:
                raise
            # a name read in a way the analysis did not see: what the whole view gives is the answer
            log.debug("template %s reads more than its analysis found; rendered with the whole view", name)
            context = view(release, plan, now, data)
            context["delayed"] = delayed
            markup = template.render(**context)
    blocks = bk.layout(markup)
    if delayed:
        blocks.append(bk.context("⏱️ (delayed) — this message was due earlier; the bot was unavailable then."))
    message = bk.message(blocks)
    return Message(text=f"(delayed) {message.text}", blocks=message.blocks) if delayed else message


# --- composing any message the bot sends -------------------------------------------------------------------

Builder = Callable[[Plan, Release, datetime, dict[str, Any]], Message]

BUILDERS: dict[str, Builder] = {}
"""Messages built in Python (cards with buttons); anything else is a Jinja template of that name."""


def builder(name: str) -> Callable[[Builder], Builder]:
    """Register a Python-built message (e.g. the issue card, the vote) under a template name."""

    def register(fn: Builder) -> Builder:
        BUILDERS[name] = fn
        return fn

    return register


class RenderError(Exception):
    """A message could not be rendered (a template missing here, or one that fails on this data)."""


def compose(
    plan: Plan, template: str, release: Release, now: datetime, data: dict[str, Any], *, delayed: bool = False
) -> Message:
    """Render what an outbox row asks for: a registered card, an inline template or a template file.

    Any failure is a RenderError naming the template, so the dispatcher can retry that one message.
    """
    try:
        return _compose(plan, template, release, now, data, delayed=delayed)
    except Exception as exc:
        raise RenderError(f"cannot render {template!r}: {type(exc).__name__}: {exc}"[:500]) from exc


def _compose(
    plan: Plan, template: str, release: Release, now: datetime, data: dict[str, Any], *, delayed: bool = False
) -> Message:
    if template in BUILDERS:
        message = BUILDERS[template](plan, release, now, data)
        if delayed:
            return Message(text=f"(delayed) {message.text}", blocks=message.blocks)
        return message
    if template == "inline":
        return render(plan, template, release, now, data, delayed=delayed, inline=str(data.get("inline", "")))
    return render(plan, template, release, now, data, delayed=delayed)
