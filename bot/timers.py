"""Rules that run at a time rather than on a command: the registry the timer table refers to by name.

Each rule is pure: (release, plan, now, data) → Outcome. Rule modules add themselves with `timer_rule`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from bot.domain import Outcome, Release
from bot.plan import Plan

TimerRule = Callable[[Release, Plan, datetime, dict[str, Any]], Outcome]

TIMER_RULES: dict[str, TimerRule] = {}


def timer_rule(name: str) -> Callable[[TimerRule], TimerRule]:
    """Register a timer rule under `name` (the `rule` column of the timers table)."""

    def register(fn: TimerRule) -> TimerRule:
        if name in TIMER_RULES and TIMER_RULES[name] is not fn:
            raise ValueError(f"timer rule {name!r} registered twice")
        TIMER_RULES[name] = fn
        return fn

    return register
