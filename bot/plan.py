"""The plan file (SPEC §4): pydantic models, YAML loading with line numbers, cross-checks."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar
from zoneinfo import ZoneInfo

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from bot.core.alert_rules import AlertRule, alert_problems
from bot.core.check_plan import CheckSpec, check_section_problems, prometheus_url
from bot.timeparse import format_offset, localize, parse_duration, parse_offset, shift, zone

# parse_offset keeps how an offset was written (whole days are wall-clock days); PlainValidator keeps its type
Offset = Annotated[timedelta, PlainValidator(parse_offset)]
Duration = Annotated[timedelta, BeforeValidator(parse_duration)]

_T = TypeVar("_T")

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
PERSON = re.compile(r"^[UWS][A-Z0-9]{2,}$")
CHANNEL = re.compile(r"^(?:[CGD][A-Z0-9]{2,}|#[a-z0-9][a-z0-9._-]{0,79})$")
ROLE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
RESERVED_ROLES = frozenset({"system", "warroom", "anyone", "everyone", "here", "channel"})
"""Names a plan may not give a role: `system` and `warroom` name the bot's own timers, `anyone` is the
permission table's word for everybody, and `everyone`, `here` and `channel` are Slack's broadcast words."""

BUILTIN_TEMPLATES = (
    "advance_notice",
    "reminder",
    "final_notice",
    "team_assembly",
    "deployment_start",
    "status_update",
    "region_deployed",
    "deployment_complete",
    "final_status",
    "rollback_started",
    "postponed",
    "rescheduled",
    "progress_update",
)


def _slug(value: str) -> str:
    if not SLUG.match(value):
        raise ValueError(f"{value!r} is not a slug: use lowercase letters, digits and dashes, e.g. db-migration")
    return value


Slug = Annotated[str, AfterValidator(_slug)]


def _role(value: str) -> str:
    if not ROLE.match(value):
        raise ValueError(f"{value!r} is not a role name: use lowercase letters, digits and _, e.g. release_manager")
    if value in RESERVED_ROLES:
        raise ValueError(
            f"{value!r} is a reserved name and cannot be a role ({', '.join(sorted(RESERVED_ROLES))} are): "
            f"name it after what the people do, e.g. {value}_team"
        )
    return value


RoleName = Annotated[str, AfterValidator(_role)]


def _one_or_many(value: object) -> object:
    return [value] if isinstance(value, str) else value


RoleList = Annotated[list[RoleName], BeforeValidator(_one_or_many)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Window(_Model):
    """The window, in UTC. Times without an offset are read in the plan's zone (validation context)."""

    start: datetime
    end: datetime

    @field_validator("start", "end")
    @classmethod
    def _in_utc(cls, value: datetime, info: ValidationInfo) -> datetime:
        context = info.context if isinstance(info.context, dict) else {}
        return localize(value, context.get("tz") or zone("UTC"))

    @model_validator(mode="after")
    def _order(self) -> Window:
        if self.end <= self.start:
            raise ValueError("window.end must be after window.start")
        return self


class ReleaseInfo(_Model):
    id: Slug
    name: str = Field(min_length=1, max_length=120)
    version: str = Field(min_length=1, max_length=40)
    timezone: str = "UTC"
    window: Window
    description: str = ""
    contact: str = ""
    impact: str = Field(default="", max_length=1000)
    """What users will notice (e.g. "Booking is unavailable 20:00-23:30"); the notices claim nothing without it."""

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        zone(value)
        return value

    @field_validator("version", mode="before")
    @classmethod
    def _version(cls, value: object) -> object:
        return str(value) if isinstance(value, int | float) else value


ChecklistItem = Annotated[str, Field(min_length=1, max_length=300)]
"""One line of a checklist as the plan writes it (a task, a go/no-go item, a success criterion)."""


class PhaseSpec(_Model):
    id: Slug
    name: str = Field(min_length=1, max_length=120)
    start: Offset
    duration: Duration
    owner: RoleList = Field(min_length=1)
    region: str | None = None
    description: str = ""
    tasks: list[ChecklistItem] = Field(default_factory=list, max_length=40)
    """The phase's checklist, ticked in the war room or with `/phase check ID N`; numbered from 1."""
    commands: list[Annotated[str, Field(min_length=1, max_length=500)]] = Field(default_factory=list, max_length=20)
    """Commands the phase runs, shown with its checklist (as code, never run by Warroom)."""
    metrics: list[ChecklistItem] = Field(default_factory=list, max_length=20)
    """Metrics to watch during the phase, shown with its checklist."""


class GoNoGoSpec(_Model):
    at: Offset
    deadline: Offset
    voters: RoleList = Field(min_length=1)
    final_authority: RoleName
    checklist: list[ChecklistItem] = Field(
        default_factory=lambda: [
            "All pre-deployment checks passed",
            "No critical incidents in progress",
            "All team members present",
            "Monitoring systems operational",
            "Backup verified",
            "Rollback plan ready",
        ]
    )

    @model_validator(mode="after")
    def _order(self) -> GoNoGoSpec:
        if self.deadline <= self.at:
            raise ValueError("go_no_go.deadline must come after go_no_go.at")
        return self


class EscalationLevel(_Model):
    level: int = Field(ge=1, le=20)
    notify: RoleList = Field(min_length=1)
    ack_within: Duration | None = None
    name: str = ""


class StatusUpdates(_Model):
    every: Duration = timedelta(minutes=15)
    channel: str = "war_room"
    from_: Offset = Field(default=timedelta(0), alias="from")
    until: Offset | Literal["end"] = "end"
    template: str = "status_update"

    @field_validator("until", mode="before")
    @classmethod
    def _until(cls, value: object) -> object:
        return value if value == "end" else parse_offset(value)

    @field_validator("every")
    @classmethod
    def _every(cls, value: timedelta) -> timedelta:
        if value < timedelta(minutes=1):
            raise ValueError("status_updates.every must be at least 1m")
        return value


def _mapping_or_list(value: object) -> object:
    """`status_updates:` is one mapping (one stream of updates) or a list of them, one per audience; empty is none."""
    if value is None:
        return []
    return [value] if isinstance(value, dict) else value


StatusStreams = Annotated[list[StatusUpdates], BeforeValidator(_mapping_or_list)]


class Announcement(_Model):
    at: Offset
    channel: str
    template: str | None = None
    text: str | None = None
    id: Slug | None = None
    grace: Duration | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Announcement:
        if (self.template is None) == (self.text is None):
            raise ValueError('an announcement needs exactly one of template: NAME or text: "…"')
        return self


class RollbackSpec(_Model):
    decision_point: Offset | None = None
    triggers: list[str] = Field(default_factory=list)


class SignOffSpec(_Model):
    """A required sign-off (the reference's Go-Live Approval table): who signs, and what they vouch for."""

    role: RoleName
    criterion: str = Field(min_length=1, max_length=300)


class HandoffSpec(_Model):
    """The day-team handoff: when it is posted, who receives it, and who is on call afterwards."""

    at: Offset
    to: RoleName
    """The receiving role: its people accept the handoff."""
    from_: RoleName = Field(default="release_manager", alias="from")
    """The handing-over role (the night team's lead)."""
    oncall: RoleList | None = None
    """Who escalation level 1 pages once the handoff is accepted; by default the `to` role."""
    watch: list[ChecklistItem] = Field(default_factory=list, max_length=30)
    """What the day team should keep an eye on (shown on the handoff)."""


class Link(_Model):
    """A link the plan gives people: dashboards, runbooks, status pages."""

    name: str = Field(min_length=1, max_length=100)
    url: str = Field(pattern=r"^https?://\S+$", max_length=500)


class FollowUp(_Model):
    """A post-deployment activity (24-hour review, post-mortem) reminded to its owners at its time."""

    at: Offset
    owner: RoleList = Field(min_length=1)
    task: str = Field(min_length=1, max_length=300)
    channel: str = "war_room"


class PagerDuty(_Model):
    routing_key: str = Field(min_length=1)
    events_url: str = "https://events.pagerduty.com/v2/enqueue"


class PrometheusSpec(_Model):
    url: Annotated[str, AfterValidator(prometheus_url)]
    """The server's base URL (`http://prometheus:9090`); checks query `{url}/api/v1/query`."""


class Integrations(_Model):
    pagerduty: PagerDuty | None = None
    prometheus: PrometheusSpec | None = None


def _channel_ref(value: str) -> str:
    if not CHANNEL.match(value):
        raise ValueError(f"{value!r} is not a channel: use an ID like C0123ABCD or a name like #deployments")
    return value


def _person(value: str) -> str:
    if not PERSON.match(value):
        raise ValueError(f"{value!r} is not a Slack user or user-group ID: use U…/W… for people and S… for user groups")
    return value


Person = Annotated[str, AfterValidator(_person)]


class Plan(_Model):
    """A validated release plan. Times are aware UTC datetimes."""

    release: ReleaseInfo
    channels: dict[str, Annotated[str, AfterValidator(_channel_ref)]]
    people: dict[RoleName, Annotated[list[Person], BeforeValidator(_one_or_many)]]
    phases: list[PhaseSpec] = Field(min_length=1)
    components: list[str] | None = None
    regions: list[str] | None = None
    go_no_go: GoNoGoSpec | None = None
    escalation: list[EscalationLevel] = Field(default_factory=list)
    status_updates: StatusStreams = Field(default_factory=list)
    announcements: list[Announcement] = Field(default_factory=list)
    rollback: RollbackSpec = Field(default_factory=RollbackSpec)
    templates_dir: str | None = None
    grace: Duration = timedelta(minutes=30)
    integrations: Integrations = Field(default_factory=Integrations)
    success_criteria: list[ChecklistItem] = Field(default_factory=list, max_length=30)
    """What must hold for the go-live to count as a success (shown on the sign-off and in the report)."""
    signoffs: list[SignOffSpec] = Field(default_factory=list, max_length=20)
    handoff: HandoffSpec | None = None
    links: list[Link] = Field(default_factory=list, max_length=20)
    follow_ups: list[FollowUp] = Field(default_factory=list, max_length=20)
    alerts: list[AlertRule] = Field(default_factory=list)
    """Alertmanager / Grafana alerts that open issues (see `bot.core.alert_rules`)."""
    checks: list[CheckSpec] = Field(default_factory=list, max_length=30)
    """PromQL checks with a threshold, read at the vote, status updates, the decision point (bot/core/checks.py)."""
    team: RoleList | None = None
    """The deployment team the assembly call mentions; by default phase owners, voters and escalation level 1."""

    @property
    def id(self) -> str:
        return self.release.id

    @property
    def t0(self) -> datetime:
        return self.release.window.start

    @property
    def tz(self) -> ZoneInfo:
        return zone(self.release.timezone)

    def at(self, offset: timedelta) -> datetime:
        """The absolute UTC time of an offset from T0: whole days on the wall clock of the plan's zone."""
        return shift(self.t0, offset, self.tz)

    def channel(self, key: str) -> str:
        """Resolve a channel key (`war_room`) or a literal channel reference to what Slack accepts."""
        return self.channels.get(key, key)

    @property
    def role_of_person(self) -> dict[str, frozenset[str]]:
        """Directly listed person or group ID → the roles it holds."""

        def build() -> dict[str, frozenset[str]]:
            roles: dict[str, set[str]] = {}
            for role, members in self.people.items():
                for member in members:
                    roles.setdefault(member, set()).add(role)
            return {member: frozenset(r) for member, r in roles.items()}

        return self._kept("_role_index", self.people, build)

    def _kept(self, name: str, source: object, build: Callable[[], _T]) -> _T:
        """What `build` makes of `source` (one of the plan's fields), kept on this plan while that field holds
        the same object: `model_copy(update=...)` copies the instance dict, so a copy with other phases or
        people (the --demo member in every role) must not reuse its original's."""
        kept = self.__dict__.get(name)
        if kept is None or kept[0] is not source:
            kept = (source, build())
            self.__dict__[name] = kept
        value: _T = kept[1]
        return value

    def phase_spec(self, phase_id: str) -> PhaseSpec | None:
        """The phase of this id as the plan lists it (None when there is none)."""
        return self.phase_specs().get(phase_id)

    def phase_specs(self) -> Mapping[str, PhaseSpec]:
        """The plan's phases by id."""
        index: Mapping[str, PhaseSpec] = self._kept("_phase_index", self.phases, lambda: {p.id: p for p in self.phases})
        return index

    def members(self, roles: list[str] | tuple[str, ...]) -> list[str]:
        """The user and group IDs of `roles`, in plan order, without repeats."""
        seen: dict[str, None] = {}
        for role in roles:
            for member in self.people.get(role, []):
                seen.setdefault(member, None)
        return list(seen)

    def team_roles(self) -> list[str]:
        """The roles of the deployment team: `team:` as written, else who runs the work and answers first."""
        if self.team is not None:
            return list(self.team)
        roles = [role for phase in self.phases for role in phase.owner]
        if self.go_no_go is not None:
            roles += self.go_no_go.voters
        if self.escalation:
            roles += self.escalation[0].notify
        return list(dict.fromkeys(roles))

    def phase_window(self, phase: PhaseSpec) -> tuple[datetime, datetime]:
        start = self.at(phase.start)
        return start, start + phase.duration

    def status_update_times(self, spec: StatusUpdates | None = None) -> list[datetime]:
        """Every planned status update time of one stream (`spec`), or of all of them in time order."""
        if spec is None:
            return sorted(t for stream in self.status_updates for t in self.status_update_times(stream))
        start = self.at(spec.from_)
        end = self.release.window.end if spec.until == "end" else self.at(spec.until)
        times: list[datetime] = []
        current = start
        while current <= end and len(times) < 10_000:
            times.append(current)
            current += spec.every
        return times

    def announcement_key(self, index: int) -> str:
        spec = self.announcements[index]
        return f"announcement:{spec.id or index}"


# ---------------------------------------------------------------------------------------------------------
# Loading with line numbers


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a plan, at a line of its file."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


class PlanError(Exception):
    """A plan failed to load; `problems` lists every reason."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


Path_ = tuple[str | int, ...]


def _compose(text: str, filename: str, *, fast: bool = True) -> tuple[Any, dict[Path_, int]]:
    """Parse YAML into plain data and a map from each value's path to its line."""
    node, loader = _fast_node(text) if fast else (None, None)
    if loader is None:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark else 1
            raise PlanError([Problem(filename, line, f"YAML syntax: {exc.problem or exc}")]) from None
        except yaml.YAMLError as exc:
            raise PlanError([Problem(filename, 1, f"YAML: {exc}")]) from None
        finally:
            loader.dispose()
    lines: dict[Path_, int] = {}
    if node is None:
        raise PlanError([Problem(filename, 1, "the plan is empty: start with release:, channels:, people:, phases:")])
    problems: list[Problem] = []

    def construct(n: yaml.Node) -> Any:
        try:
            return loader.construct_object(n, deep=True)
        except yaml.YAMLError:
            raise
        except (ValueError, TypeError, AttributeError, OverflowError, IndexError):
            # PyYAML's constructors fail this way on a value its explicit tag does not fit (`!!timestamp nope`)
            tag = str(n.tag).rsplit(":", 1)[-1]
            shown = n.value if isinstance(n, yaml.ScalarNode) else "this value"
            message = f"{shown!r} is not a valid {tag}: write it without the `!!{tag}` tag, or as a valid {tag}"
            raise PlanError([Problem(filename, n.start_mark.line + 1, message)]) from None

    def build(n: yaml.Node, path: Path_) -> Any:
        lines[path] = n.start_mark.line + 1
        if isinstance(n, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for key_node, value_node in n.value:
                key = construct(key_node)
                if key in out:
                    problems.append(Problem(filename, key_node.start_mark.line + 1, f"duplicate key {key!r}"))
                lines[(*path, key)] = key_node.start_mark.line + 1
                out[key] = build(value_node, (*path, key))
                lines[(*path, key)] = key_node.start_mark.line + 1
            return out
        if isinstance(n, yaml.SequenceNode):
            return [build(item, (*path, i)) for i, item in enumerate(n.value)]
        return construct(n)

    try:
        data = build(node, ())
    except yaml.YAMLError as exc:
        if fast and not isinstance(loader, yaml.SafeLoader):
            return _compose(text, filename, fast=False)  # the Python parser's words for it (with the excerpt)
        raise PlanError([Problem(filename, 1, f"YAML: {exc}")]) from None
    if problems:
        raise PlanError(problems)
    return data, lines


def _fast_node(text: str) -> tuple[yaml.Node | None, Any]:
    """The document's node and its loader from libyaml (C: some fifty times faster on a large plan), or
    `(None, None)` when libyaml is missing or finds a problem: the Python parser then reads the text
    again, so a problem is reported in its words and at its line, as always."""
    if not yaml.__with_libyaml__:
        return None, None
    loader = yaml.CSafeLoader(text)
    try:
        return loader.get_single_node(), loader
    except yaml.YAMLError:
        return None, None
    finally:
        loader.dispose()


def source_lines(text: str, filename: str) -> dict[Path_, int]:
    """Each value's path in the plan text → its line (for problems found after loading)."""
    return _compose(text, filename)[1]


def line_for(lines: dict[Path_, int], loc: Path_) -> int:
    """The line of the value at `loc`, or of its nearest enclosing value."""
    path = tuple(loc)
    while path:
        if path in lines:
            return lines[path]
        path = path[:-1]
    return 1


def _describe(loc: Path_) -> str:
    out = ""
    for part in loc:
        if part == "[key]":  # pydantic's marker for a mapping's key: the key itself is already named
            continue
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _pydantic_problems(exc: ValidationError, filename: str, lines: dict[Path_, int]) -> list[Problem]:
    problems = []
    for error in exc.errors():
        loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        loc = tuple("from" if p == "from_" else p for p in loc)
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "missing":
            message = f"{_describe(loc)} is required"
        elif error["type"] == "extra_forbidden":
            message = f"{_describe(loc)}: unknown field (check the spelling; see the plan format in the README)"
        elif loc:
            message = f"{_describe(loc)}: {message}"
        problems.append(Problem(filename, line_for(lines, loc), message))
    return problems


def _cross_check(data: dict[str, Any], filename: str, lines: dict[Path_, int]) -> list[Problem]:
    """References between sections: roles, channels, phase ids, escalation levels, template names.

    Whether the templates render is `bot.validate`'s question: it needs the renderer.
    """
    problems: list[Problem] = []

    def add(path: Path_, message: str) -> None:
        problems.append(Problem(filename, line_for(lines, path), message))

    people = data.get("people")
    roles: set[Any] = set(people) if isinstance(people, dict) else set()
    raw_channels = data.get("channels")
    channels: dict[Any, Any] = raw_channels if isinstance(raw_channels, dict) else {}
    role_hint = ", ".join(sorted(roles)) or "none defined"

    def check_roles(value: object, path: Path_, what: str) -> None:
        names = [value] if isinstance(value, str) else value if isinstance(value, list) else []
        for i, name in enumerate(names):
            if isinstance(name, str) and name not in roles:
                p = path if isinstance(value, str) else (*path, i)
                add(p, f"{what} {name!r} is not a role in people (roles: {role_hint})")

    def check_channel(value: object, path: Path_) -> None:
        if isinstance(value, str) and value not in channels and not CHANNEL.match(value):
            add(path, f"channel {value!r} is not a key of channels: ({', '.join(sorted(channels)) or 'none'})")

    if isinstance(channels, dict):
        for key in ("war_room", "announcements"):
            if key not in channels:
                add(("channels",), f"channels.{key} is required")

    raw_phases = data.get("phases")
    phases: list[Any] = raw_phases if isinstance(raw_phases, list) else []
    seen: dict[str, int] = {}
    for i, phase in enumerate(phases):
        if not isinstance(phase, dict):
            continue
        pid = phase.get("id")
        if isinstance(pid, str):
            if pid in seen:
                add(("phases", i, "id"), f"phase id {pid!r} is used twice (first at phases[{seen[pid]}])")
            seen[pid] = i
        check_roles(phase.get("owner"), ("phases", i, "owner"), "phase owner")
        regions = data.get("regions")
        region = phase.get("region")
        if region is not None and isinstance(regions, list) and region not in regions:
            add(("phases", i, "region"), f"region {region!r} is not in regions: {regions}")

    check_roles(data.get("team"), ("team",), "team role")

    raw_signoffs = data.get("signoffs")
    signed_roles: set[str] = set()
    for i, signoff in enumerate(raw_signoffs if isinstance(raw_signoffs, list) else []):
        if isinstance(signoff, dict):
            check_roles(signoff.get("role"), ("signoffs", i, "role"), "sign-off role")
            role = signoff.get("role")
            if isinstance(role, str):
                if role in signed_roles:
                    add(("signoffs", i, "role"), f"sign-off role {role!r} is listed twice: give each role one entry")
                signed_roles.add(role)
    handoff = data.get("handoff")
    if isinstance(handoff, dict):
        check_roles(handoff.get("to"), ("handoff", "to"), "handoff receiver")
        if "from" in handoff:
            check_roles(handoff.get("from"), ("handoff", "from"), "handoff giver")
        check_roles(handoff.get("oncall"), ("handoff", "oncall"), "handoff on-call role")
    raw_follow_ups = data.get("follow_ups")
    for i, follow_up in enumerate(raw_follow_ups if isinstance(raw_follow_ups, list) else []):
        if isinstance(follow_up, dict):
            check_roles(follow_up.get("owner"), ("follow_ups", i, "owner"), "follow-up owner")
            check_channel(follow_up.get("channel", "war_room"), ("follow_ups", i, "channel"))

    gng = data.get("go_no_go")
    if isinstance(gng, dict):
        check_roles(gng.get("voters"), ("go_no_go", "voters"), "voter")
        check_roles(gng.get("final_authority"), ("go_no_go", "final_authority"), "final_authority")

    raw_levels = data.get("escalation")
    levels: list[Any] = raw_levels if isinstance(raw_levels, list) else []
    numbers = []
    for i, level in enumerate(levels):
        if isinstance(level, dict):
            check_roles(level.get("notify"), ("escalation", i, "notify"), "escalation target")
            numbers.append(level.get("level"))
    if numbers and numbers != list(range(1, len(numbers) + 1)):
        add(("escalation",), f"escalation levels must be numbered 1, 2, 3… in order (found {numbers})")
    for i, level in enumerate(levels[:-1]):
        if isinstance(level, dict) and level.get("ack_within") is None:
            add(("escalation", i), "every escalation level but the last needs ack_within (e.g. 15m)")

    status = data.get("status_updates")
    streams = [status] if isinstance(status, dict) else status if isinstance(status, list) else []
    stream_channels: dict[object, int] = {}
    for i, stream in enumerate(streams):
        if not isinstance(stream, dict):
            continue
        path: Path_ = ("status_updates",) if isinstance(status, dict) else ("status_updates", i)
        channel = stream.get("channel", "war_room")
        check_channel(channel, (*path, "channel"))
        if isinstance(channel, str) and channel in stream_channels:
            add((*path, "channel"), f"status updates to {channel!r} are listed twice: give each channel one entry")
        stream_channels.setdefault(channel, i)

    templates_dir = data.get("templates_dir")
    overrides: set[str] = set()
    if isinstance(templates_dir, str):
        folder = (Path(filename).parent / templates_dir).resolve()
        if not folder.is_dir():
            add(("templates_dir",), f"templates_dir {templates_dir!r} is not a folder (looked in {folder})")
        else:
            overrides = {p.stem for p in folder.glob("*.j2")}  # NAME.j2, as rendering looks it up
    known = set(BUILTIN_TEMPLATES) | overrides
    for i, stream in enumerate(streams):
        template = stream.get("template") if isinstance(stream, dict) else None
        if isinstance(template, str) and template not in known:
            path = ("status_updates",) if isinstance(status, dict) else ("status_updates", i)
            add((*path, "template"), f"template {template!r} is neither built in nor in templates_dir")
    for path, message in check_section_problems(data):
        add(path, message)
    raw_anns = data.get("announcements")
    anns: list[Any] = raw_anns if isinstance(raw_anns, list) else []
    ids: set[str] = set()
    for i, ann in enumerate(anns):
        if not isinstance(ann, dict):
            continue
        check_channel(ann.get("channel"), ("announcements", i, "channel"))
        template = ann.get("template")
        if isinstance(template, str) and template not in known:
            add(
                ("announcements", i, "template"),
                f"template {template!r} is neither built in nor in templates_dir "
                f"(built in: {', '.join(BUILTIN_TEMPLATES)})",
            )
        aid = ann.get("id")
        if isinstance(aid, str):
            if aid in ids:
                add(("announcements", i, "id"), f"announcement id {aid!r} is used twice")
            ids.add(aid)
    for path, message in alert_problems(data):
        add(path, message)
    return problems


def _window_problems(plan: Plan, filename: str, lines: dict[Path_, int]) -> list[Problem]:
    """Checks that need resolved times."""
    problems: list[Problem] = []
    end = plan.release.window.end
    for i, phase in enumerate(plan.phases):
        _, phase_end = plan.phase_window(phase)
        if phase_end > end + timedelta(hours=24):
            problems.append(
                Problem(
                    filename,
                    line_for(lines, ("phases", i, "start")),
                    f"phase {phase.id!r} ends {format_offset(phase_end - plan.t0)} from T0, "
                    "more than a day after window.end: check start and duration",
                )
            )
    return problems


def _single_stream_lines(data: dict[str, Any], lines: dict[Path_, int]) -> dict[Path_, int]:
    """A single `status_updates:` mapping validates as a list of one: give its fields their lines there."""
    if not isinstance(data.get("status_updates"), dict):
        return lines
    extra = {("status_updates", 0, *path[1:]): line for path, line in lines.items() if path[:1] == ("status_updates",)}
    return {**lines, **extra}


def _zone_of(data: dict[str, Any]) -> ZoneInfo | None:
    """The plan's zone, to read local window times in; None when it is missing or wrong (said elsewhere)."""
    release = data.get("release")
    name = release.get("timezone", "UTC") if isinstance(release, dict) else "UTC"
    try:
        return zone(name) if isinstance(name, str) else None
    except ValueError:
        return None


def parse_plan(text: str, filename: str = "<plan>") -> Plan:
    """Validate plan text; raise PlanError listing every problem with its line."""
    data, lines = _compose(text, filename)
    if not isinstance(data, dict):
        raise PlanError([Problem(filename, 1, "a plan is a mapping with release:, channels:, people:, phases:")])
    problems = _cross_check(data, filename, lines)
    plan: Plan | None = None
    try:
        plan = Plan.model_validate(data, context={"tz": _zone_of(data)})
    except ValidationError as exc:
        problems = _pydantic_problems(exc, filename, _single_stream_lines(data, lines)) + problems
        if isinstance(data.get("status_updates"), dict):  # one mapping: name its fields as written
            problems = [replace(p, message=p.message.replace("status_updates[0]", "status_updates")) for p in problems]
    if plan is not None:
        problems += _window_problems(plan, filename, lines)
    if problems:
        problems.sort(key=lambda p: p.line)
        raise PlanError(problems)
    assert plan is not None
    if plan.templates_dir is not None:
        folder = (Path(filename).parent / plan.templates_dir).resolve()
        plan = plan.model_copy(update={"templates_dir": str(folder)})
    return plan


def load_plan(path: str | Path) -> tuple[Plan, str]:
    """Read and validate a plan file; return the plan and its source text."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise PlanError([Problem(str(path), 1, f"cannot read the plan: {exc.strerror or exc}")]) from None
    except UnicodeDecodeError:
        raise PlanError([Problem(str(path), 1, "the plan is not UTF-8 text")]) from None
    return parse_plan(text, str(path)), text


def utcnow() -> datetime:
    """The real clock, for the shell only; rules receive `now` as an argument."""
    return datetime.now(UTC)
