"""The plan's checks (SPEC §4 `checks:`): what a Prometheus answer means, pass or fail, and what a reading
changes — the cards that show it, the timeline, and the rollback question a failing trigger raises.

Pure: Prometheus is read by `bot.integrations.prometheus`, which hands the answers and `now` to these rules.
Warroom recommends; people decide — a failing check never rolls anything back by itself.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from bot.core.check_plan import CheckSpec
from bot.domain import (
    NOT_STARTED,
    SYSTEM,
    Actor,
    CheckState,
    Conflict,
    Decision,
    Effect,
    Event,
    External,
    NotFound,
    Outcome,
    Post,
    Refresh,
    Release,
    ReleaseStatus,
    SetTimer,
)
from bot.lifecycle import ASKED, ROLLBACK_POINT, ROLLBACK_PROMPT_KEY, PointChoice, rollback
from bot.permissions import Action, authorize
from bot.plan import Plan
from bot.timers import timer_rule
from bot.votes import VOTE_KEY, vote_state

PROMETHEUS = "prometheus"
"""The External system the timer asks to read the checks."""
CHECKS_TIMER = "checks:tick"
CHECKS_RULE = "checks.tick"
CHECK_EVERY = timedelta(minutes=1)
"""How often checks are read while the vote is open or the release is in progress."""
IDLE_EVERY = timedelta(minutes=5)
"""Before the vote opens: how often the timer looks again (a release started early starts reading then)."""
SHOWN_ON = frozenset({"gonogo_vote", "rollback_prompt", "status_update"})
"""Messages that show the readings: each is posted with checks read just before it (see the dispatcher)."""


# --- reading a Prometheus answer -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Answer:
    """What one query gave: a number, or why there is none."""

    value: float | None = None
    error: str = ""


def _number(text: object) -> float | None:
    try:
        return float(str(text))  # Prometheus writes samples as strings: "0.5", "NaN", "+Inf"
    except ValueError:
        return None


def parse_answer(status: int, body: object) -> Answer:
    """The answer of `GET /api/v1/query` (HTTP `status`, parsed JSON `body`; None when it was not JSON)."""
    if isinstance(body, dict) and body.get("status") == "error":
        kind = str(body.get("errorType") or "error")
        return Answer(error=f"Prometheus said {kind}: {str(body.get('error') or '')[:300]}".rstrip(": "))
    if not 200 <= status < 300:
        return Answer(error=f"Prometheus answered HTTP {status}")
    if not isinstance(body, dict) or body.get("status") != "success" or not isinstance(body.get("data"), dict):
        return Answer(error="the answer is not a Prometheus query result")
    data = body["data"]
    kind = data.get("resultType")
    result = data.get("result")
    if kind == "scalar" and isinstance(result, list) and len(result) == 2:
        value = _number(result[1])
    elif kind == "vector" and isinstance(result, list):
        if not result:
            return Answer(error="no data: the query matched no series")
        if len(result) > 1:
            return Answer(
                error=f"the query returned {len(result)} series; a check needs one number: "
                "aggregate it (e.g. sum(…) or max(…))"
            )
        sample = result[0].get("value") if isinstance(result[0], dict) else None
        value = _number(sample[1]) if isinstance(sample, list) and len(sample) == 2 else None
    elif kind == "matrix":
        return Answer(error="the query returns a range vector; a check needs an instant value (e.g. rate(…[5m]))")
    else:
        return Answer(error=f"the query returns a {kind or 'result'} Warroom cannot compare with a threshold")
    if value is None:
        return Answer(error="the answer's sample is not a number")
    if math.isnan(value):
        return Answer(error="the value is NaN (often no traffic in the window: 0/0)")
    return Answer(value)


def passes(spec: CheckSpec, value: float) -> bool:
    """The value is on the right side of the threshold (equal to it fails: `below: X` means < X)."""
    return value < spec.threshold if spec.direction == "below" else value > spec.threshold


def judge(spec: CheckSpec, answer: Answer, now: datetime, previous: CheckState | None) -> CheckState:
    """The check's new state: its reading, and its failing stretch carried on, begun or ended.

    A reading that failed to come (Prometheus down) neither ends nor extends a failing stretch.
    """
    if answer.value is None:
        kept = previous if previous is not None else None
        return CheckState(
            spec.name,
            now,
            None,
            None,
            answer.error or "no value",
            kept.failing_since if kept else None,
            kept.asked_at if kept else None,
        )
    ok = passes(spec, answer.value)
    if ok:
        return CheckState(spec.name, now, answer.value, True)
    stretch = previous is not None and previous.failing_since is not None
    return CheckState(
        spec.name,
        now,
        answer.value,
        False,
        "",
        previous.failing_since if stretch and previous else now,
        previous.asked_at if stretch and previous else None,
    )


# --- showing values ------------------------------------------------------------------------------------------


def _significant(value: float, digits: int = 3) -> str:
    return "0" if value == 0 else f"{value:.{digits}g}"


def format_value(value: float, unit: str) -> str:
    """A value as people read it: `0.1%` for a ratio, `180ms` for seconds, `1.5 MB` for bytes."""
    if math.isinf(value):
        return "+∞" if value > 0 else "-∞"
    if unit == "ratio":
        return f"{_significant(value * 100)}%"
    if unit == "seconds":
        if abs(value) < 1:
            return f"{_significant(value * 1000)}ms"
        return f"{_significant(value)}s"
    if unit == "bytes":
        for size, name in ((1e9, "GB"), (1e6, "MB"), (1e3, "kB")):
            if abs(value) >= size:
                return f"{_significant(value / size)} {name}"
        return f"{_significant(value)} B"
    return _significant(value, 4)


def threshold_text(spec: CheckSpec) -> str:
    """`< 0.1%` or `> 100`."""
    return f"{'<' if spec.direction == 'below' else '>'} {format_value(spec.threshold, spec.unit)}"


def check_icon(state: CheckState | None) -> str:
    if state is None:
        return "⏳"
    return "⚠️" if state.ok is None else "✅" if state.ok else "❌"


def summary(plan: Plan, release: Release) -> tuple[int, int, int, int]:
    """(passing, failing, unreadable, not read yet) over the plan's checks."""
    states = [release.check(spec.name) for spec in plan.checks]
    return (
        sum(1 for s in states if s is not None and s.ok is True),
        sum(1 for s in states if s is not None and s.ok is False),
        sum(1 for s in states if s is not None and s.ok is None),
        sum(1 for s in states if s is None),
    )


def reading_record(state: CheckState) -> dict[str, Any]:
    """One reading as the timeline keeps it (the post-mortem's evidence)."""
    return {
        "name": state.name,
        "value": state.value if state.value is None or math.isfinite(state.value) else str(state.value),
        "ok": state.ok,
        "read_at": state.read_at.isoformat(),
        "error": state.error,
    }


# --- the rollback question a failing trigger raises ----------------------------------------------------------


def check_ref(name: str) -> str:
    """A short, stable id of a check for keys and button values (a name may be long or hold any text)."""
    return hashlib.sha256(name.encode()).hexdigest()[:8]


def check_kind(name: str) -> str:
    """Decision.kind of the rollback question a check raised: `asked`, then `continue` or `rollback`."""
    return f"rollback_check:{check_ref(name)}"


def check_prompt_key(name: str, number: int) -> str:
    """The outbox key of the `number`th rollback question this check raised."""
    return f"rollback:check:{check_ref(name)}:{number}"


def asks(release: Release, name: str) -> int:
    return sum(1 for d in release.decisions if d.kind == check_kind(name) and d.outcome == ASKED)


def pending_check_prompts(release: Release, plan: Plan) -> tuple[str, ...]:
    """Keys of the rollback questions from checks still waiting for an answer."""
    keys = []
    for spec in plan.checks:
        latest = release.decision(check_kind(spec.name))
        if latest is not None and latest.outcome == ASKED:
            keys.append(check_prompt_key(spec.name, asks(release, spec.name)))
    return tuple(keys)


def spec_for_ref(plan: Plan, ref: str) -> CheckSpec | None:
    return next((s for s in plan.checks if check_ref(s.name) == ref), None)


def _ask(release: Release, spec: CheckSpec, state: CheckState, now: datetime) -> tuple[Release, Event, Post]:
    assert state.failing_since is not None and spec.rollback_trigger is not None
    number = asks(release, spec.name) + 1
    asked = Decision(check_kind(spec.name), ASKED, spec.rollback_trigger, SYSTEM.user_id, now)
    data = {
        "check": spec.name,
        "trigger": spec.rollback_trigger,
        "since": state.failing_since.isoformat(),
        "value": state.value,
    }
    event = Event("rollback.check_asked", now, SYSTEM.user_id, f"check:{spec.name}", {**data, "number": number})
    post = Post("war_room", "rollback_check", {**data, "number": number}, key=check_prompt_key(spec.name, number))
    return replace(release, decisions=(*release.decisions, asked)), event, post


def _refreshes(release: Release, plan: Plan, now: datetime, rendering: str | None) -> tuple[Effect, ...]:
    """The messages on screen that show the readings: the open vote and the unanswered rollback questions."""
    keys: list[str] = []
    if vote_state(release, plan) == "open":
        keys.append(release.attempt_key(VOTE_KEY))
    point = plan.rollback.decision_point
    if (
        point is not None
        and now >= plan.at(point)
        and release.status is ReleaseStatus.IN_PROGRESS
        and release.decision(ROLLBACK_POINT) is None
    ):
        keys.append(ROLLBACK_PROMPT_KEY)
    keys += pending_check_prompts(release, plan)
    return tuple(Refresh(key) for key in dict.fromkeys(keys) if key != rendering)


def record_readings(
    release: Release,
    plan: Plan,
    answers: dict[str, Answer],
    now: datetime,
    *,
    shown_on: str | None = None,
    by: str | None = None,
    rendering: str | None = None,
) -> Outcome:
    """Keep the new readings; refresh what shows them; ask about a trigger failing for its `for:`.

    `shown_on` names the message (or `command`) the readings are read for: then they go on the timeline;
    readings from the timer go there only when a check changes between passing, failing and unreadable.
    `rendering` is the key of the message being posted with these readings (it needs no refresh).
    """
    states: list[CheckState] = []
    changed = False
    for spec in plan.checks:
        if spec.name not in answers:
            continue
        previous = release.check(spec.name)
        state = judge(spec, answers[spec.name], now, previous)
        changed = changed or previous is None or previous.ok != state.ok
        states.append(state)
    if not states:
        return Outcome(release)
    by_name = {s.name: s for s in states}
    kept = tuple(c for c in release.checks if c.name not in by_name and any(s.name == c.name for s in plan.checks))
    updated = replace(release, checks=tuple(sorted((*kept, *states), key=lambda c: c.name)))
    events: list[Event] = []
    posts: list[Effect] = []
    if release.status is ReleaseStatus.IN_PROGRESS:
        for spec in plan.checks:
            current = by_name.get(spec.name)
            if (
                spec.rollback_trigger is None
                or current is None
                or current.ok is not False
                or current.failing_since is None
                or current.asked_at is not None
                or now - current.failing_since < (spec.for_ or timedelta(0))
            ):
                continue
            asked_state = replace(current, asked_at=now)
            updated = replace(updated, checks=tuple(asked_state if c.name == spec.name else c for c in updated.checks))
            updated, event, post = _ask(updated, spec, asked_state, now)
            events.append(event)
            posts.append(post)
    if shown_on is not None or changed:
        data: dict[str, Any] = {"shown_on": shown_on or "timer", "readings": [reading_record(s) for s in states]}
        if by is not None:
            data["by"] = by
        events.insert(0, Event("checks.read", now, by or SYSTEM.user_id, data=data))
    effects: list[Effect] = [*posts, *_refreshes(updated, plan, now, rendering)]
    if vote_state(updated, plan) == "open" or updated.status is ReleaseStatus.IN_PROGRESS:
        # the next reading a minute after this one, however this one came (a vote opened early, a command)
        effects.append(SetTimer(CHECKS_TIMER, now + CHECK_EVERY, CHECKS_RULE))
    return Outcome(updated, tuple(events), tuple(effects))


def shown_readings(release: Release, plan: Plan, now: datetime, shown_on: str) -> Outcome:
    """Readings taken moments ago, shown on `shown_on` as they are: the timeline notes where they were shown."""
    states = [s for s in (release.check(spec.name) for spec in plan.checks) if s is not None]
    if not states:
        return Outcome(release)
    data = {"shown_on": shown_on, "readings": [reading_record(s) for s in states]}
    return Outcome(release, (Event("checks.read", now, SYSTEM.user_id, data=data),))


@dataclass(frozen=True, slots=True)
class AnswerCheck:
    """*Continue* or *Roll back* on the question a failing check raised (`ref` is its `check_ref`)."""

    ref: str
    choice: PointChoice
    reason: str = ""


def answer_check(release: Release, plan: Plan, actor: Actor, command: AnswerCheck, now: datetime) -> Outcome:
    """Record the choice and who made it; *Roll back* starts the rollback with the trigger as the reason."""
    authorize(plan, actor, Action.ROLLBACK)
    spec = spec_for_ref(plan, command.ref)
    if spec is None:
        raise NotFound("That check is no longer in the plan; use `/release rollback REASON` to roll back.")
    asked = release.decision(check_kind(spec.name))
    if asked is None:
        raise Conflict(f"The check {spec.name!r} has not raised a rollback question.")
    if asked.outcome != ASKED:
        label = "continue" if asked.outcome == PointChoice.CONTINUE else "roll back"
        raise Conflict(
            f"The question from {spec.name!r} was already answered: {label}, by <@{asked.decided_by}> "
            f"at {asked.at:%H:%M} UTC."
        )
    if release.status is not ReleaseStatus.IN_PROGRESS:
        raise Conflict(f"The release is {release.status.value.replace('_', ' ')}; there is nothing to decide.")
    trigger = spec.rollback_trigger or spec.name
    reason = command.reason.strip() or (
        f"Check {spec.name} failing: {trigger}"
        if command.choice is PointChoice.ROLLBACK
        else f"Continue despite check {spec.name} failing"
    )
    decision = Decision(check_kind(spec.name), command.choice.value, reason, actor.user_id, now)
    marked = replace(release, decisions=(*release.decisions, decision))
    prompt = Refresh(check_prompt_key(spec.name, asks(release, spec.name)))
    if command.choice is PointChoice.ROLLBACK:
        rolled = rollback(marked, plan, actor, now, reason)
        answered = Event("rollback.check_answered", now, actor.user_id, f"check:{spec.name}", {"choice": "rollback"})
        effects = (*rolled.effects, *((prompt,) if prompt not in rolled.effects else ()))
        return Outcome(rolled.release, (answered, *rolled.events), effects, rolled.reply)
    event = Event("rollback.continued", now, actor.user_id, f"check:{spec.name}", {"reason": reason})
    return Outcome(
        replace(marked, revision=release.revision + 1),
        (event,),
        (prompt,),
        f"Recorded: continue despite {spec.name}. The prompt is updated; it will not ask again while this "
        "check keeps failing.",
    )


# --- the timer -----------------------------------------------------------------------------------------------


def first_tick(plan: Plan, release: Release, now: datetime) -> datetime | None:
    """When the checks timer first runs: at the vote's opening (or T0), now for a release in progress."""
    if not plan.checks or release.status not in {ReleaseStatus.SCHEDULED, ReleaseStatus.IN_PROGRESS}:
        return None
    if release.status is ReleaseStatus.IN_PROGRESS:
        return now
    return plan.at(plan.go_no_go.at) if plan.go_no_go is not None else plan.t0


@timer_rule(CHECKS_RULE)
def tick(release: Release, plan: Plan, now: datetime, data: dict[str, Any]) -> Outcome:
    """Every minute while the vote is open or the release is in progress: read the checks (in the shell)."""
    if not plan.checks:
        return Outcome(release)
    if vote_state(release, plan) == "open" or release.status is ReleaseStatus.IN_PROGRESS:
        read = External(PROMETHEUS, "read", {})
        return Outcome(release, (), (read, SetTimer(CHECKS_TIMER, now + CHECK_EVERY, CHECKS_RULE)))
    if release.status is ReleaseStatus.SCHEDULED and release.status in NOT_STARTED:
        opens = [t for t in (plan.at(plan.go_no_go.at) if plan.go_no_go else None, plan.t0) if t is not None]
        upcoming = [t for t in opens if t > now]
        at = min([*upcoming, now + IDLE_EVERY])
        return Outcome(release, (), (SetTimer(CHECKS_TIMER, at, CHECKS_RULE),))
    # the release moved on (rolled back, completed, postponed): close the questions still on screen, then stop
    return Outcome(release, (), tuple(Refresh(key) for key in pending_check_prompts(release, plan)))
