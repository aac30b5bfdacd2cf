"""The plan's `checks:` and `integrations.prometheus` (SPEC §4): field rules and the cross-checks that need
other sections (the Prometheus URL, the names, the rollback triggers)."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from bot.timeparse import parse_duration

UNITS = ("number", "ratio", "seconds", "bytes")
"""How a value is shown. Prometheus keeps base units: `ratio` 0.001 shows as 0.1%, `seconds` 0.2 as 200ms."""


def prometheus_url(value: str) -> str:
    """An http(s) base URL without query or fragment, kept without its trailing slash."""
    parts = urlsplit(value.strip())
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValueError(f"{value!r} is not an http(s) URL: write the server's address, e.g. http://prometheus:9090")
    if parts.query or parts.fragment:
        raise ValueError(f"{value!r}: give the server's base URL without ?query or #fragment")
    try:
        parts.port  # noqa: B018 - reading it is what checks it
    except ValueError:
        raise ValueError(f"{value!r} has a port that is not a number from 1 to 65535") from None
    return value.strip().rstrip("/")


def _threshold(value: object) -> object:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"must be a number such as 0.001 or 200 (got {value!r})")
    if not math.isfinite(value):
        raise ValueError(f"must be a finite number (got {value!r})")
    return float(value)


def _duration(value: object) -> object:
    return None if value is None else parse_duration(value)


Threshold = Annotated[float | None, BeforeValidator(_threshold)]


class CheckSpec(BaseModel):
    """One check: a PromQL query whose value must stay `below` or `above` a threshold."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str = Field(min_length=1, max_length=80)
    query: str = Field(min_length=1, max_length=4000)
    below: Threshold = None
    above: Threshold = None
    for_: Annotated[timedelta | None, BeforeValidator(_duration)] = Field(default=None, alias="for")
    """How long it must keep failing before its rollback trigger asks (none: at the first failing reading)."""
    rollback_trigger: str | None = None
    """One of rollback.triggers: failing for `for`, it asks the rollback question while the release runs."""
    unit: Literal["number", "ratio", "seconds", "bytes"] = "number"

    @model_validator(mode="after")
    def _one_threshold(self) -> CheckSpec:
        if (self.below is None) == (self.above is None):
            raise ValueError("a check needs exactly one of below: X or above: X (the value must stay below or above X)")
        return self

    @property
    def threshold(self) -> float:
        return self.below if self.below is not None else self.above  # type: ignore[return-value]

    @property
    def direction(self) -> str:
        return "below" if self.below is not None else "above"


def check_section_problems(data: dict[str, Any]) -> list[tuple[tuple[str | int, ...], str]]:
    """(path, message) for what is wrong between `checks:` and the rest of the plan."""
    raw = data.get("checks")
    checks: list[Any] = raw if isinstance(raw, list) else []
    problems: list[tuple[tuple[str | int, ...], str]] = []
    if raw is not None and not isinstance(raw, list):
        return problems  # the model says it must be a list
    integrations = data.get("integrations")
    prometheus = integrations.get("prometheus") if isinstance(integrations, dict) else None
    if checks and not (isinstance(prometheus, dict) and prometheus.get("url")):
        problems.append(
            (("checks",), "checks need a Prometheus to read them: add integrations: {prometheus: {url: http://…:9090}}")
        )
    rollback = data.get("rollback")
    raw_triggers = rollback.get("triggers") if isinstance(rollback, dict) else None
    triggers = [t for t in raw_triggers if isinstance(t, str)] if isinstance(raw_triggers, list) else []
    seen: dict[str, int] = {}
    for i, check in enumerate(checks):
        if not isinstance(check, dict):
            continue
        name = check.get("name")
        if isinstance(name, str):
            folded = name.strip().casefold()
            if folded in seen:
                problems.append(
                    (("checks", i, "name"), f"check name {name!r} is used twice (first at checks[{seen[folded]}])")
                )
            seen.setdefault(folded, i)
        trigger = check.get("rollback_trigger")
        if trigger is not None and trigger not in triggers:
            listed = "; ".join(repr(t) for t in triggers) or "none listed"
            problems.append(
                (
                    ("checks", i, "rollback_trigger"),
                    f"rollback_trigger {trigger!r} is not one of rollback.triggers ({listed}): copy it exactly",
                )
            )
    return problems
