"""The plan's `alerts:` rules (SPEC §4): which Alertmanager alerts mean an issue, and of what kind.

A rule matches an alert when every one of its label matchers does: `label: value` is an exact match,
`label: ~"regex"` (or `~regex`) a regular expression matched against the whole value, as Alertmanager's
own `=~` matchers are anchored. An absent label has the value "", as in Alertmanager. The first rule that
matches wins. Pure: no Slack, storage, HTTP or clock.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from bot.domain import SEVERITY_WORDS, Severity

LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
"""Prometheus's label names."""


def _text(value: object) -> object:
    """YAML reads `code: 500` as a number; a label value is always text."""
    return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


@dataclass(frozen=True, slots=True)
class Matcher:
    label: str
    value: str
    regex: re.Pattern[str] | None = None

    def matches(self, labels: Mapping[str, str]) -> bool:
        actual = labels.get(self.label, "")
        if self.regex is not None:
            return self.regex.fullmatch(actual) is not None
        return actual == self.value


def regex_of(value: str) -> str | None:
    """The regular expression of a `~"regex"` / `~regex` matcher value; None for an exact value."""
    if not value.startswith("~"):
        return None
    pattern = value[1:]
    if len(pattern) >= 2 and pattern[0] == pattern[-1] == '"':
        pattern = pattern[1:-1]
    return pattern


def _severity(value: object) -> object:
    if isinstance(value, str):
        found = SEVERITY_WORDS.get(value.strip().lower())
        if found is None:
            raise ValueError(f"{value!r} is not a severity: use critical, high, medium or low (or sev1-sev4, p1-p4)")
        return found
    return value


class AlertRule(BaseModel):
    """One `alerts:` entry: label matchers, and what a matching alert means for the release."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    match: dict[str, Annotated[str, BeforeValidator(_text)]] = Field(min_length=1)
    severity: Annotated[Severity, BeforeValidator(_severity)]
    component: str = Field(min_length=1, max_length=100)
    region_label: str | None = None
    rollback_trigger: str | None = None
    resolve: Literal["manual", "auto"] = "manual"
    """`auto`: an alert Alertmanager reports resolved resolves its issue; `manual` (default): it offers *Resolve*."""

    @field_validator("match")
    @classmethod
    def _matchers(cls, value: dict[str, str]) -> dict[str, str]:
        for label, wanted in value.items():
            if not LABEL_NAME.match(label):
                raise ValueError(f"{label!r} is not a label name (letters, digits and _, not starting with a digit)")
            pattern = regex_of(wanted)
            if pattern is not None:
                try:
                    re.compile(pattern)
                except re.error as exc:
                    raise ValueError(f"{label}: {wanted!r} is not a valid regular expression ({exc})") from None
        return value

    @field_validator("region_label")
    @classmethod
    def _region_label(cls, value: str | None) -> str | None:
        if value is not None and not LABEL_NAME.match(value):
            raise ValueError(f"{value!r} is not a label name (letters, digits and _, not starting with a digit)")
        return value

    @property
    def matchers(self) -> tuple[Matcher, ...]:
        """The matchers (`re` caches the compiled expressions, so building them again is cheap)."""
        out = []
        for label, wanted in self.match.items():
            pattern = regex_of(wanted)
            out.append(Matcher(label, wanted, re.compile(pattern) if pattern is not None else None))
        return tuple(out)

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(m.matches(labels) for m in self.matchers)


def match_rule(rules: Sequence[AlertRule], labels: Mapping[str, str]) -> AlertRule | None:
    """The first rule whose matchers all match `labels`."""
    return next((rule for rule in rules if rule.matches(labels)), None)


def alert_problems(data: Mapping[str, Any]) -> list[tuple[tuple[str | int, ...], str]]:
    """References from `alerts:` to the rest of the plan, as (path, message): components and rollback triggers."""
    raw = data.get("alerts")
    if not isinstance(raw, list):
        return []
    components = data.get("components")
    rollback = data.get("rollback")
    triggers = rollback.get("triggers") if isinstance(rollback, dict) else None
    triggers = triggers if isinstance(triggers, list) else []
    problems: list[tuple[tuple[str | int, ...], str]] = []
    for i, rule in enumerate(raw):
        if not isinstance(rule, dict):
            continue
        component = rule.get("component")
        if isinstance(component, str) and isinstance(components, list) and component not in components:
            problems.append(
                (("alerts", i, "component"), f"alerts[{i}].component: {component!r} is not in components: {components}")
            )
        trigger = rule.get("rollback_trigger")
        if trigger is not None and trigger not in triggers:
            listed = "; ".join(repr(t) for t in triggers) or "none: add rollback.triggers first"
            problems.append(
                (
                    ("alerts", i, "rollback_trigger"),
                    f"alerts[{i}].rollback_trigger: {trigger!r} is not one of rollback.triggers ({listed})",
                )
            )
    return problems
