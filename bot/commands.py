"""Parsing slash-command text into typed commands. Pure: text in, command or UsageError out."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from bot.checklists import SHOW_WORDS, TICK_WORDS, ShowTasks, TickTask, parse_tasks
from bot.core.text import check_typed, clip, from_slack
from bot.domain import UsageError
from bot.rules import ChangePhase, PhaseVerb

RELEASE_OPTION = re.compile(r"(?:^|\s)--release(?:=|\s+)(\S+)")

PHASE_USAGE = (
    "Usage: `/phase start ID` · `/phase done ID [--force] [note]` · `/phase fail ID REASON` · "
    "`/phase skip ID REASON` · `/phase list` · `/phase tasks ID` · `/phase check ID N [note]` · "
    "`/phase uncheck ID N` (add `--release ID` outside the war room)"
)
RELEASE_USAGE = (
    "Usage: `/release` or `/release status` · `/release schedule` · `/release start` · `/release complete` "
    "(`--force REASON` with phases unfinished) · "
    "`/release abort REASON` · `/release rollback REASON` · `/release checks` · `/release report` "
    "· `/release signoff` · `/release handoff` "
    "(add `--release ID` outside the war room)"
)


def split_release_option(text: str) -> tuple[str, str | None]:
    """Slash-command text as the person wrote it (Slack's entities decoded), without `--release ID`;
    return (rest, id or None)."""
    text = check_typed(from_slack(text))
    match = RELEASE_OPTION.search(text)
    if not match:
        if "--release" in text.split():
            raise UsageError("`--release` needs a release id, e.g. `--release uh-2-4-0`.")
        return text.strip(), None
    rest = (text[: match.start()] + " " + text[match.end() :]).strip()
    return rest, match.group(1)


def words(text: str, n: int) -> list[str]:
    """Split into at most n+1 parts: the first n words and the rest of the text."""
    parts = text.strip().split(None, n)
    return parts


@dataclass(frozen=True, slots=True)
class ListPhases:
    pass


def parse_phase(text: str) -> ChangePhase | ListPhases | ShowTasks | TickTask:
    """`/phase start ID`, `done ID [--force] [note]`, `fail ID REASON`, `skip ID REASON`, `list`,
    `tasks ID`, `check ID N [note]`, `uncheck ID N`."""
    parts = words(text, 2)
    if not parts:
        raise UsageError("Tell me what to do with a phase.", PHASE_USAGE)
    verb = parts[0].lower()
    if verb in SHOW_WORDS or verb in TICK_WORDS:
        return parse_tasks(verb, text.strip()[len(parts[0]) :], PHASE_USAGE)
    if verb in {"list", "ls", "status"}:
        if len(parts) > 1:
            raise UsageError(f"`/phase {verb}` takes no arguments.", PHASE_USAGE)
        return ListPhases()
    aliases = {"complete": "done", "finish": "done", "begin": "start", "failed": "fail", "skipped": "skip"}
    verb = aliases.get(verb, verb)
    try:
        phase_verb = PhaseVerb(verb)
    except ValueError:
        raise UsageError(f"`{parts[0]}` is not a phase command.", PHASE_USAGE) from None
    if len(parts) < 2:
        raise UsageError(f"Which phase? `/phase {verb} ID`.", PHASE_USAGE)
    rest = parts[2].strip() if len(parts) > 2 else ""
    if phase_verb is PhaseVerb.START and rest:
        raise UsageError(f"`/phase start` takes only a phase id (got extra text: {rest[:40]!r}).", PHASE_USAGE)
    if phase_verb in {PhaseVerb.FAIL, PhaseVerb.SKIP} and not rest:
        raise UsageError(f"Say why: `/phase {verb} {parts[1]} REASON`.", PHASE_USAGE)
    force = phase_verb is PhaseVerb.DONE and rest.split(None, 1)[:1] == ["--force"]
    if force:
        rest = rest.removeprefix("--force").strip()
    return ChangePhase(phase_verb, parts[1].lower(), clip(rest, 2000), force)


class ReleaseVerb(StrEnum):
    STATUS = "status"
    SCHEDULE = "schedule"
    START = "start"
    COMPLETE = "complete"
    ABORT = "abort"
    ROLLBACK = "rollback"
    CHECKS = "checks"
    REPORT = "report"


@dataclass(frozen=True, slots=True)
class ReleaseCommand:
    verb: ReleaseVerb
    reason: str = ""
    force: bool = False


def parse_release(text: str) -> ReleaseCommand:
    """`/release [status]`, `start|complete [--force REASON]`, `abort REASON`, `rollback REASON`."""
    parts = words(text, 1)
    if not parts:
        return ReleaseCommand(ReleaseVerb.STATUS)
    try:
        verb = ReleaseVerb(parts[0].lower())
    except ValueError:
        raise UsageError(f"`{parts[0]}` is not a release command.", RELEASE_USAGE) from None
    rest = parts[1].strip() if len(parts) > 1 else ""
    force = False
    if verb in {ReleaseVerb.START, ReleaseVerb.COMPLETE} and rest.split(None, 1)[:1] == ["--force"]:
        force = True
        rest = rest.removeprefix("--force").strip()
        if not rest:
            what = "start" if verb is ReleaseVerb.START else "completion"
            raise UsageError(f"A forced {what} needs a reason: `/release {verb.value} --force REASON`.", RELEASE_USAGE)
    if verb in {ReleaseVerb.ABORT, ReleaseVerb.ROLLBACK} and not rest:
        raise UsageError(f"Say why: `/release {verb.value} REASON`.", RELEASE_USAGE)
    no_arguments = {
        ReleaseVerb.STATUS,
        ReleaseVerb.SCHEDULE,
        ReleaseVerb.COMPLETE,
        ReleaseVerb.CHECKS,
        ReleaseVerb.REPORT,
    }
    if verb in no_arguments and rest and not force:
        raise UsageError(f"`/release {verb.value}` takes no arguments.", RELEASE_USAGE)
    return ReleaseCommand(verb, clip(rest, 2000), force)
