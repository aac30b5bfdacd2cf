"""What `warroom check` adds to loading a plan: every template the plan can send is rendered, with the
data it gets at its time, against a run of the plan that goes exactly as planned.

This needs the renderer, so it lives here and not in the plan model (which the renderer imports).
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import jinja2
from jinja2 import nodes

from bot.core.planned import INLINE
from bot.core.simulate import on_plan
from bot.domain import Phase, PhaseStatus, Release, ReleaseStatus
from bot.plan import Path_, Plan, PlanError, Problem, line_for, load_plan, source_lines
from bot.rules import release_from_plan
from bot.timeparse import format_offset
from messages.render import RenderError, compose, environment


@dataclass(frozen=True)
class Rendering:
    """One message the plan can send: what it is, where its source is in the plan, and its inputs."""

    what: str
    path: Path_
    template: str
    release: Release
    at: datetime
    data: dict[str, Any]


def load_checked(path: str) -> tuple[Plan, str]:
    """Load a plan and render everything it can send; raise PlanError listing every problem by line."""
    plan, source = load_plan(path)
    problems = template_problems(plan, path, source_lines(source, path))
    if problems:
        raise PlanError(sorted(problems, key=lambda p: p.line))
    return plan, source


def template_problems(plan: Plan, filename: str, lines: dict[Path_, int]) -> list[Problem]:
    """Render everything the plan can send; one problem per template that fails, at its line in the plan."""
    problems: dict[tuple[int, str], Problem] = {}
    for item in renderings(plan):
        message = _failure(plan, item)
        if message is None:
            continue
        line = line_for(lines, item.path)
        problems.setdefault((line, message), Problem(filename, line, message))
    return list(problems.values())


def renderings(plan: Plan) -> Iterator[Rendering]:
    """Announcements and status updates at their times, and the messages events send, each with its data."""
    fresh = release_from_plan(plan)
    made: dict[tuple[int, PhaseStatus], Phase] = {}  # each phase done (or running) is made once

    def at_plan(at: datetime) -> Release:
        return on_plan(fresh, at, made)

    for index, spec in enumerate(plan.announcements):
        at = plan.at(spec.at)
        name = f"announcement {spec.id!r}" if spec.id else f"announcement {index + 1} (at {format_offset(spec.at)})"
        if spec.text is not None:
            yield Rendering(name, ("announcements", index), INLINE, at_plan(at), at, {"inline": spec.text})
        else:
            assert spec.template is not None
            yield Rendering(name, ("announcements", index), spec.template, at_plan(at), at, {})
    for index, stream in enumerate(plan.status_updates):
        for at in plan.status_update_times(stream):
            where = ("status_updates", index)
            name = "status updates" if len(plan.status_updates) == 1 else f"status updates to {stream.channel}"
            yield Rendering(name, where, stream.template, at_plan(at), at, {})
    yield from _event_renderings(plan, fresh, at_plan)


def _event_renderings(plan: Plan, fresh: Release, at_plan: Callable[[datetime], Release]) -> Iterator[Rendering]:
    """What starting, phase changes, completing, rolling back, postponing and rescheduling post (the data
    each gets is what the rules in bot/lifecycle.py, bot/rules.py and bot/votes.py put into its Post)."""
    path: Path_ = ("templates_dir",) if plan.templates_dir else ("release",)
    t0, end = plan.t0, plan.release.window.end
    by = next(iter(plan.members(list(plan.people))), "U0000000")
    reason = "Error rate above 1% for 5 minutes"

    def event(template: str, release: Release, at: datetime, data: dict[str, Any]) -> Rendering:
        return Rendering("", path, template, release, at, data)

    early = t0 - timedelta(minutes=10)
    yield event(
        "deployment_start",
        replace(at_plan(early), status=ReleaseStatus.IN_PROGRESS, started_at=early),
        early,
        {"by": by, "early": True},
    )
    yield event("deployment_start", at_plan(t0), t0, {"by": by})
    yield event("deployment_start", at_plan(t0), t0, {})
    for phase in plan.phases:
        _, phase_end = plan.phase_window(phase)
        state = at_plan(phase_end)
        for note in ("", "verified on the dashboards"):
            yield event("phase_update", state, phase_end, {"phase": phase.id, "verb": "done", "by": by, "text": note})
    for region in dict.fromkeys(p.region for p in plan.phases if p.region):
        done_at = max(plan.phase_window(p)[1] for p in plan.phases if p.region == region)
        yield event("region_deployed", at_plan(done_at), done_at, {"region": region})
    for at in (t0 - timedelta(hours=1), t0 + (end - t0) / 2, end):
        yield event("status_card", at_plan(at), at, {})
        yield event("phase_list", at_plan(at), at, {})
    finished = replace(at_plan(end), status=ReleaseStatus.COMPLETED, ended_at=end)
    yield event("deployment_complete", finished, end, {})
    point = plan.at(plan.rollback.decision_point) if plan.rollback.decision_point else t0 + (end - t0) / 2
    rolling = replace(at_plan(point), status=ReleaseStatus.ROLLING_BACK)
    yield event("rollback_started", rolling, point, {"reason": reason, "by": by})
    yield event("final_status", replace(rolling, status=ReleaseStatus.ROLLED_BACK, ended_at=end), end, {})
    deadline = plan.at(plan.go_no_go.deadline) if plan.go_no_go else t0 - timedelta(minutes=5)
    postponed = replace(at_plan(deadline), status=ReleaseStatus.POSTPONED)
    yield event("postponed", postponed, deadline, {"reason": reason, "start": t0.isoformat()})
    aborted = replace(at_plan(deadline), status=ReleaseStatus.ABORTED, ended_at=deadline)
    yield event("postponed", aborted, deadline, {"reason": reason, "by": by})
    earlier = (t0 - timedelta(days=7)).isoformat()
    data = {"previous_start": earlier, "start": t0.isoformat(), "attempt": 2}
    yield event("rescheduled", fresh, t0 - timedelta(days=1), data)


def _failure(plan: Plan, item: Rendering) -> str | None:
    """None when the message renders; else what is wrong, said for the person who wrote the plan."""
    if item.template == INLINE:
        syntax = _syntax_error(str(item.data["inline"]))
        if syntax:
            return f"{item.what}: text is not a valid template: {syntax}"
    try:
        compose(plan, item.template, item.release, item.at, item.data)
    except RenderError as exc:
        cause = exc.__cause__ or exc
        where = "" if item.template == INLINE else f"template {item.template!r} ({_location(plan, item, cause)}): "
        prefix = f"{item.what}: " if item.what else ""
        return f"{prefix}{where}{_explain(plan, item, cause)}"
    return None


def _syntax_error(source: str) -> str | None:
    try:
        environment(None).parse(source)
    except jinja2.TemplateSyntaxError as exc:
        return f"line {exc.lineno}: {exc.message}"
    return None


def _source(plan: Plan, name: str) -> tuple[str, str]:
    """The text and file of the template `name` as the plan's environment finds it."""
    env = environment(plan.templates_dir)
    assert env.loader is not None  # the environment is always built with a loader
    text, filename, _ = env.loader.get_source(env, f"{name}.j2")
    return text, str(filename)


def _location(plan: Plan, item: Rendering, error: BaseException) -> str:
    """`FILE, line N` of a template file that failed (the innermost template frame of the error)."""
    if isinstance(error, jinja2.TemplateSyntaxError) and error.filename:
        return f"{error.filename}, line {error.lineno}"
    frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename.endswith(".j2")]
    if frames:
        return f"{frames[-1].filename}, line {frames[-1].lineno}"
    return _source(plan, item.template)[1]


def _explain(plan: Plan, item: Rendering, error: BaseException) -> str:
    if isinstance(error, jinja2.TemplateSyntaxError):
        return f"not a valid template: {error.message}"
    if isinstance(error, jinja2.UndefinedError):
        source = str(item.data["inline"]) if item.template == INLINE else _source(plan, item.template)[0]
        return undefined_name(source, str(error.message))
    return f"{type(error).__name__}: {error}"


def undefined_name(source: str, message: str) -> str:
    """Say which name a template used that does not exist: `'release.nme' is undefined` rather than
    Jinja's `'dict object' has no attribute 'nme'`."""
    marker = "has no attribute "
    if marker not in message:
        return message
    attribute = message.split(marker, 1)[1].strip("'\"")
    try:
        tree = environment(None).parse(source)
    except jinja2.TemplateSyntaxError:
        return message
    paths = {
        _dotted(node)
        for node in tree.find_all((nodes.Getattr, nodes.Getitem))
        if _key(node) == attribute and _dotted(node) is not None
    }
    if len(paths) == 1:
        return f"'{paths.pop()}' is undefined"
    return message


def _key(node: nodes.Node) -> object:
    if isinstance(node, nodes.Getattr):
        return node.attr
    if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
        return node.arg.value
    return None


def _dotted(node: nodes.Node) -> str | None:
    if isinstance(node, nodes.Name):
        return str(node.name)
    if isinstance(node, nodes.Getattr | nodes.Getitem):
        inner = _dotted(node.node)
        key = _key(node)
        if inner is None or key is None:
            return None
        return f"{inner}[{key}]" if isinstance(key, int) else f"{inner}.{key}"
    return None
