"""Parsing `/gonogo` text into a typed command. Pure: text in, command or UsageError out."""

from __future__ import annotations

from bot.checklists import SHOW_WORDS, TICK_WORDS, ShowTasks, TickTask, parse_tasks
from bot.commands import words
from bot.core.text import clip
from bot.domain import GO_NO_GO_CHECKLIST, UsageError, Vote
from bot.votes import CastVote, DecideVote, OpenVote, ShowVote

GONOGO_USAGE = (
    "Usage: `/gonogo` (show the vote) · `/gonogo open` (release manager) · "
    "`/gonogo go` · `/gonogo no-go REASON` (voters; the buttons do the same) · "
    "`/gonogo decide go|no-go RATIONALE` (final authority) · `/gonogo checklist` · `/gonogo check N [note]` · "
    "`/gonogo uncheck N` (voters, release manager) (add `--release ID` outside the war room)"
)

_OUTCOMES = {
    "go": Vote.GO,
    "no-go": Vote.NO_GO,
    "nogo": Vote.NO_GO,
    "no_go": Vote.NO_GO,
}

GonogoCommand = ShowVote | OpenVote | CastVote | DecideVote | ShowTasks | TickTask


def parse_outcome(word: str) -> Vote:
    """`go` or `no-go` (also `nogo`, `no_go`), any case."""
    try:
        return _OUTCOMES[word.lower()]
    except KeyError:
        raise UsageError(f"`{word}` is not an outcome: say `go` or `no-go`.", GONOGO_USAGE) from None


def parse_gonogo(text: str) -> GonogoCommand:
    """`/gonogo [status]`, `open`, `go`, `no-go REASON`, `decide go|no-go RATIONALE`, `checklist`,
    `check N [note]`, `uncheck N`."""
    parts = words(text, 1)
    if not parts:
        return ShowVote()
    verb = parts[0].lower()
    rest = parts[1].strip() if len(parts) > 1 else ""
    if verb in SHOW_WORDS or verb in TICK_WORDS:
        return parse_tasks(verb, rest, GONOGO_USAGE, scope=GO_NO_GO_CHECKLIST)
    if verb in {"status", "show"}:
        if rest:
            raise UsageError(f"`/gonogo {verb}` takes no arguments.", GONOGO_USAGE)
        return ShowVote()
    if verb == "open":
        if rest:
            raise UsageError("`/gonogo open` takes no arguments.", GONOGO_USAGE)
        return OpenVote()
    if verb in _OUTCOMES:
        vote = _OUTCOMES[verb]
        if vote is Vote.GO and rest:
            raise UsageError("`/gonogo go` takes no arguments.", GONOGO_USAGE)
        if vote is Vote.NO_GO and not rest:
            raise UsageError("A No-Go needs a reason: `/gonogo no-go REASON`.", GONOGO_USAGE)
        return CastVote(vote, clip(rest, 2000))
    if verb == "decide":
        args = words(rest, 1)
        if not args:
            raise UsageError("Decide what? `/gonogo decide go|no-go RATIONALE`.", GONOGO_USAGE)
        outcome = parse_outcome(args[0])
        rationale = args[1].strip() if len(args) > 1 else ""
        if not rationale:
            raise UsageError("A decision needs a rationale: `/gonogo decide go|no-go RATIONALE`.", GONOGO_USAGE)
        return DecideVote(outcome, clip(rationale, 2000))
    raise UsageError(f"`{parts[0]}` is not a /gonogo command.", GONOGO_USAGE)
