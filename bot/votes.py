"""Go/No-Go rules: open the vote, cast and change votes, tally, decide, and the deadline timers.

Pure: (release, plan, actor, command, now) → Outcome; timer rules take (release, plan, now, data).

The electorate is the plan's voter *roles* (`go_no_go.voters`): each role needs one vote from one of its
members, and a person holding several voter roles votes for all of them at once. The vote decides
itself the moment every role has voted (all Go → Go; any No-Go → No-Go); until then anyone may change
their vote. At `deadline` a vote with a No-Go is decided No-Go; missing voters are reminded, and
`AUTO_NO_GO_GRACE` later the vote is recorded as No-Go unless the final authority decided meanwhile.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from bot.core.text import check_typed, clip
from bot.domain import (
    GO_NO_GO,
    NOT_STARTED,
    RESCHEDULED,
    SYSTEM,
    Actor,
    Ballot,
    CancelTimer,
    Conflict,
    Decision,
    Effect,
    Event,
    Outcome,
    Post,
    Refresh,
    Release,
    ReleaseStatus,
    SetTimer,
    UsageError,
    Vote,
)
from bot.permissions import Action, authorize
from bot.plan import GoNoGoSpec, Plan
from bot.rules import postpone_effects
from bot.timers import timer_rule

AUTO_NO_GO_GRACE = timedelta(minutes=5)
"""Between the deadline reminder and the automatic No-Go (the reference: decide within 5 minutes)."""

VOTE_KEY = "gonogo:vote"
DECISION_KEY = "gonogo:decision"
REMINDER_KEY = "gonogo:reminder"
OPEN_TIMER = "gonogo:open"
DEADLINE_TIMER = "gonogo:deadline"
AUTO_NO_GO_TIMER = "gonogo:auto_no_go"
T0_TIMER = "release:t0"
DECISION_POINT_TIMER = "rollback:decision_point"
VOTE_TIMERS = (OPEN_TIMER, DEADLINE_TIMER, AUTO_NO_GO_TIMER)
ROLE_FIELD = 64  # votes.role column width


# --- commands -----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ShowVote:
    """`/gonogo`: the vote's state, privately."""


@dataclass(frozen=True, slots=True)
class OpenVote:
    """`/gonogo open`."""


@dataclass(frozen=True, slots=True)
class CastVote:
    """A *Go* / *No-Go* click (No-Go with the reason from its modal)."""

    vote: Vote
    reason: str = ""
    attempt: int | None = None
    """The attempt the clicked message belongs to (None from a command: the current one)."""


@dataclass(frozen=True, slots=True)
class DecideVote:
    """`/gonogo decide go|no-go RATIONALE` or the *Decide* modal."""

    outcome: Vote
    rationale: str
    attempt: int | None = None


# --- the tally ----------------------------------------------------------------------------------------------


def role_title(role: str) -> str:
    """`release_manager` → `Release manager`."""
    return role.replace("_", " ").capitalize()


def ballot_roles(ballot: Ballot, plan: Plan) -> frozenset[str]:
    """The voter roles a ballot speaks for: those recorded when it was cast, and the voter's direct roles."""
    voters = set(plan.go_no_go.voters) if plan.go_no_go else set()
    recorded = {r for r in ballot.role.split(",") if r}
    return frozenset((recorded | plan.role_of_person.get(ballot.voter, frozenset())) & voters)


@dataclass(frozen=True, slots=True)
class RoleVote:
    """One voter role and the ballots cast for it."""

    role: str
    ballots: tuple[Ballot, ...]

    @property
    def vote(self) -> Vote | None:
        if any(b.vote is Vote.NO_GO for b in self.ballots):
            return Vote.NO_GO
        return Vote.GO if self.ballots else None


@dataclass(frozen=True, slots=True)
class Tally:
    """The votes as they stand, per voter role."""

    roles: tuple[RoleVote, ...]

    @property
    def go(self) -> tuple[str, ...]:
        return tuple(r.role for r in self.roles if r.vote is Vote.GO)

    @property
    def no_go(self) -> tuple[str, ...]:
        return tuple(r.role for r in self.roles if r.vote is Vote.NO_GO)

    @property
    def missing(self) -> tuple[str, ...]:
        return tuple(r.role for r in self.roles if r.vote is None)

    @property
    def complete(self) -> bool:
        return not self.missing

    @property
    def verdict(self) -> Vote | None:
        """What the votes say: any No-Go → No-Go, all Go → Go, otherwise not yet anything."""
        if self.no_go:
            return Vote.NO_GO
        return Vote.GO if self.roles and self.complete else None

    def summary(self) -> dict[str, list[str]]:
        return {"go": list(self.go), "no_go": list(self.no_go), "missing": list(self.missing)}


def tally_votes(release: Release, plan: Plan) -> Tally:
    """Count the ballots per voter role of the plan."""
    if plan.go_no_go is None:
        return Tally(())
    counted = [(b, ballot_roles(b, plan)) for b in release.ballots]
    return Tally(
        tuple(RoleVote(role, tuple(b for b, roles in counted if role in roles)) for role in plan.go_no_go.voters)
    )


def go_decision(release: Release) -> Decision | None:
    """The go/no-go decision of the current attempt, once there is one."""
    return attempt_decision(release, release.attempt)


def attempt_decision(release: Release, attempt: int) -> Decision | None:
    """The go/no-go decision of one attempt (each `rescheduled` decision ends an attempt)."""
    current, found = 1, None
    for decision in release.decisions:
        if decision.kind != GO_NO_GO:
            continue
        if decision.outcome == RESCHEDULED:
            if current == attempt:
                return found
            current, found = current + 1, None
        elif current == attempt:
            found = decision
    return found


def vote_ref(release: Release) -> str:
    """What the vote buttons carry: the release, and the attempt after the first (`r1`, `r1#2`)."""
    return release.id if release.attempt == 1 else f"{release.id}#{release.attempt}"


def parse_vote_ref(value: str) -> tuple[str, int]:
    """A vote button's value → (release id, attempt)."""
    release_id, _, attempt = (value or "").partition("#")
    if attempt and not (attempt.isascii() and attempt.isdigit()):
        raise UsageError(f"This button does not name a vote ({value[:60]!r}); it may be from an older version.")
    return release_id, int(attempt or 1)


def require_attempt(release: Release, attempt: int | None) -> None:
    """A click on a vote message of an earlier date of this release changes nothing."""
    if attempt is not None and attempt != release.attempt:
        raise Conflict(
            f"This vote message is for an earlier date of {release.name} (attempt {attempt}); the release was "
            f"rescheduled to {release.window_start:%Y-%m-%d %H:%M} UTC. "
            "Vote on the current message in the war room."
        )


def vote_state(release: Release, plan: Plan) -> str:
    """`none` (no vote in the plan), `pending`, `open`, `decided` or `closed` (release moved on)."""
    if plan.go_no_go is None:
        return "none"
    if go_decision(release) is not None:
        return "decided"
    if release.status not in NOT_STARTED:
        return "closed"
    return "open" if release.vote_opened_at is not None else "pending"


def auto_no_go_at(plan: Plan, now: datetime) -> datetime:
    """When missing votes become a No-Go: the grace after the deadline, or after a late reminder."""
    spec = _spec(plan)
    return max(plan.at(spec.deadline), now) + AUTO_NO_GO_GRACE


# --- rules --------------------------------------------------------------------------------------------------


def require_vote(plan: Plan) -> GoNoGoSpec:
    """The plan's go_no_go section, or a Conflict saying the release has no vote."""
    return _spec(plan)


def _spec(plan: Plan) -> GoNoGoSpec:
    if plan.go_no_go is None:
        raise Conflict("This release has no go/no-go vote in its plan: it starts at T0 (or with `/release start`).")
    return plan.go_no_go


def _fmt(at: datetime) -> str:
    return at.strftime("%H:%M UTC")


def _require_undecided(release: Release) -> None:
    decision = go_decision(release)
    if decision is not None:
        outcome = "Go" if decision.outcome == Vote.GO else "No-Go"
        raise Conflict(
            f"The go/no-go vote was decided {outcome} at {_fmt(decision.at)}; it can no longer change. "
            "The final authority can still force a start with `/release start --force REASON`; for a new "
            "date, move the window in the plan and reload it (SIGHUP or restart): a new vote opens then."
        )
    if release.status not in NOT_STARTED:
        raise Conflict(f"The release is already {release.status.value.replace('_', ' ')}; the vote is closed.")


def open_vote(release: Release, plan: Plan, actor: Actor, command: OpenVote, now: datetime) -> Outcome:
    """`/gonogo open`: post the vote message to the war room now (the release manager or final authority)."""
    _spec(plan)
    authorize(plan, actor, Action.OPEN_VOTE)
    _require_undecided(release)
    if release.vote_opened_at is not None:
        raise Conflict(f"The vote is already open (since {_fmt(release.vote_opened_at)}); `/gonogo` shows it.")
    return _open(release, plan, actor, now)


def _open(release: Release, plan: Plan, actor: Actor, now: datetime) -> Outcome:
    updated = replace(release, vote_opened_at=now, vote_channel=plan.channel("war_room"), revision=release.revision + 1)
    by = "schedule" if actor.scheduled else actor.user_id
    event = Event("vote.opened", now, actor.user_id, data={"by": by, "voters": list(_spec(plan).voters)})
    vote = Post("war_room", "gonogo_vote", {"attempt": release.attempt}, key=release.attempt_key(VOTE_KEY))
    effects = (vote, CancelTimer(OPEN_TIMER))
    return Outcome(updated, (event,), effects, "The go/no-go vote is open in the war room.")


@timer_rule("gonogo.open")
def open_at_time(release: Release, plan: Plan, now: datetime, data: dict[str, Any]) -> Outcome:
    """At `go_no_go.at` the vote opens by itself, unless it already is open or decided."""
    if vote_state(release, plan) != "pending":
        return Outcome(release)
    return _open(release, plan, SYSTEM, now)


def _voter_roles(plan: Plan, actor: Actor) -> tuple[str, ...]:
    return tuple(r for r in _spec(plan).voters if r in actor.roles)


def _role_field(roles: tuple[str, ...]) -> str:
    """The roles joined for storage, whole roles only (direct roles are also found from the plan)."""
    out = ""
    for role in roles:
        candidate = f"{out},{role}" if out else role
        if len(candidate) > ROLE_FIELD:
            break
        out = candidate
    return out


def ensure_can_vote(release: Release, plan: Plan, actor: Actor) -> None:
    """Raise unless `actor` may vote now (checked before the No-Go modal opens, and again on submit)."""
    spec = _spec(plan)
    authorize(plan, actor, Action.VOTE)
    _require_undecided(release)
    if release.vote_opened_at is None:
        raise Conflict(
            f"The vote is not open yet: it opens at {_fmt(plan.at(spec.at))}, "
            "or earlier when the release manager runs `/gonogo open`."
        )


def ensure_can_decide(release: Release, plan: Plan, actor: Actor) -> None:
    """Raise unless `actor` is the final authority and the vote is still undecided."""
    _spec(plan)
    authorize(plan, actor, Action.DECIDE)
    _require_undecided(release)


def cast_vote(release: Release, plan: Plan, actor: Actor, command: CastVote, now: datetime) -> Outcome:
    """A voter votes or changes their vote; when every voter role has voted, the vote decides itself."""
    require_attempt(release, command.attempt)
    ensure_can_vote(release, plan, actor)
    reason = clip(check_typed(command.reason).strip(), 2000)
    if command.vote is Vote.NO_GO and not reason:
        raise UsageError("A No-Go needs a reason, so the room knows what to fix.")
    roles = _voter_roles(plan, actor)
    previous = next((b for b in release.ballots if b.voter == actor.user_id), None)
    label = "Go" if command.vote is Vote.GO else "No-Go"
    if previous is not None and previous.vote is command.vote and previous.reason == reason:
        return Outcome(release, reply=f"You already voted {label}.")
    ballot = Ballot(actor.user_id, _role_field(roles), command.vote, reason, now)
    ballots = (*(b for b in release.ballots if b.voter != actor.user_id), ballot)
    updated = replace(release, ballots=ballots, revision=release.revision + 1)
    data: dict[str, Any] = {"vote": command.vote.value, "roles": list(roles)}
    if reason:
        data["reason"] = reason
    if previous is not None:
        data["from"] = previous.vote.value
    kind = "vote.changed" if previous is not None else "vote.cast"
    event = Event(kind, now, actor.user_id, ",".join(roles), data)
    voted = Outcome(
        updated,
        (event,),
        (Refresh(release.attempt_key(VOTE_KEY)),),
        f"Your vote: {label}. You may change it until the decision.",
    )
    tally = tally_votes(updated, plan)
    if tally.complete and tally.verdict is not None:
        decided = _record_verdict(updated, plan, tally, now, how="tally")
        return _merge(
            voted,
            decided,
            reply=f"Your vote: {label}. Every voter has voted: the decision is "
            f"{'Go' if tally.verdict is Vote.GO else 'No-Go'}.",
        )
    return voted


def decide(release: Release, plan: Plan, actor: Actor, command: DecideVote, now: datetime) -> Outcome:
    """The final authority decides at any time, overriding the tally; the rationale is required."""
    require_attempt(release, command.attempt)
    ensure_can_decide(release, plan, actor)
    rationale = clip(check_typed(command.rationale).strip(), 2000)
    if not rationale:
        raise UsageError("A decision needs a rationale: `/gonogo decide go|no-go RATIONALE`.")
    tally = tally_votes(release, plan)
    overrode = tally.verdict is not command.outcome
    return _record(
        release,
        plan,
        command.outcome,
        rationale,
        actor.user_id,
        now,
        overrode=overrode,
        how="final_authority",
    )


def _tally_rationale(tally: Tally, release: Release, plan: Plan) -> str:
    if tally.verdict is Vote.GO:
        return "Every voter voted Go."
    reasons = [
        f"{' / '.join(role_title(r) for r in sorted(ballot_roles(b, plan))) or b.voter}: {b.reason}"
        for b in release.ballots
        if b.vote is Vote.NO_GO
    ]
    return "No-Go from " + "; ".join(reasons)


def _record(
    release: Release,
    plan: Plan,
    outcome: Vote,
    rationale: str,
    by: str,
    now: datetime,
    *,
    overrode: bool,
    how: str,
) -> Outcome:
    """Record the decision, announce it, close the vote; a No-Go postpones, a late Go starts at once."""
    tally = tally_votes(release, plan)
    decision = Decision(GO_NO_GO, outcome.value, rationale, by, now, overrode)
    status = ReleaseStatus.POSTPONED if outcome is Vote.NO_GO else release.status
    updated = replace(release, decisions=(*release.decisions, decision), status=status, revision=release.revision + 1)
    data: dict[str, Any] = {
        "outcome": outcome.value,
        "rationale": rationale,
        "decided_by": by,
        "how": how,
        "overrode_tally": overrode,
        "at": now.isoformat(),
        **tally.summary(),
    }
    event = Event("vote.decided", now, by, GO_NO_GO, data)
    effects: list[Effect] = []
    if outcome is Vote.NO_GO:
        # first, so the cancellation cannot catch the decision posts below (they are due now, maybe after T0)
        effects += postpone_effects(updated, now, f"the go/no-go decision was No-Go: {rationale}")
        effects += [CancelTimer(T0_TIMER), CancelTimer(DECISION_POINT_TIMER)]
    effects += [
        Post("war_room", "gonogo_decision", data, key=release.attempt_key(f"{DECISION_KEY}:war_room")),
        Post("announcements", "gonogo_decision", data, key=release.attempt_key(f"{DECISION_KEY}:announcements")),
        Refresh(release.attempt_key(VOTE_KEY)),
        *(CancelTimer(key) for key in VOTE_TIMERS),
    ]
    if outcome is Vote.GO and now >= release.window_start:
        # T0 has passed while the vote was open: the T0 rule starts the release now
        effects.append(SetTimer(T0_TIMER, now, "release.t0"))
    label = "Go" if outcome is Vote.GO else "No-Go"
    return Outcome(updated, (event,), tuple(effects), f"Decision recorded: {label}.")


def _record_verdict(release: Release, plan: Plan, tally: Tally, now: datetime, *, how: str) -> Outcome:
    """Record the decision the votes themselves make (all Go, or a No-Go), with their reasons."""
    assert tally.verdict is not None
    return _record(
        release,
        plan,
        tally.verdict,
        _tally_rationale(tally, release, plan),
        SYSTEM.user_id,
        now,
        overrode=False,
        how=how,
    )


def _merge(first: Outcome, second: Outcome, *, reply: str | None = None) -> Outcome:
    return Outcome(
        second.release,
        first.events + second.events,
        first.effects + second.effects,
        reply if reply is not None else second.reply or first.reply,
    )


# --- the deadline -------------------------------------------------------------------------------------------


@timer_rule("gonogo.deadline")
def at_deadline(release: Release, plan: Plan, now: datetime, data: dict[str, Any]) -> Outcome:
    """At the deadline: a No-Go cast decides; missing voters are reminded and the auto No-Go is set."""
    state = vote_state(release, plan)
    if state not in {"pending", "open"}:
        return Outcome(release)
    start = _open(release, plan, SYSTEM, now) if state == "pending" else Outcome(release)
    current = start.release
    tally = tally_votes(current, plan)
    if tally.verdict is not None:
        return _merge(
            start,
            _record_verdict(current, plan, tally, now, how="deadline"),
        )
    auto_at = auto_no_go_at(plan, now)
    missing = list(tally.missing)
    users = [m for m in plan.members(missing) if not m.startswith("S")]
    reminder = {
        "attempt": current.attempt,
        "missing": missing,
        "auto_at": auto_at.isoformat(),
        "deadline": plan.at(_spec(plan).deadline).isoformat(),
    }
    effects: list[Effect] = [
        Post(user, "gonogo_reminder", {**reminder, "dm": True}, key=current.attempt_key(f"{REMINDER_KEY}:{user}"))
        for user in users
    ]
    effects += [
        Post("war_room", "gonogo_reminder", reminder, key=current.attempt_key(f"{REMINDER_KEY}:war_room")),
        SetTimer(AUTO_NO_GO_TIMER, auto_at, "gonogo.auto_no_go"),
        Refresh(current.attempt_key(VOTE_KEY)),
    ]
    event = Event(
        "vote.reminded",
        now,
        SYSTEM.user_id,
        data={"missing": missing, "users": users, "auto_no_go_at": auto_at.isoformat()},
    )
    return _merge(start, Outcome(current, (event,), tuple(effects)))


@timer_rule("gonogo.auto_no_go")
def auto_no_go(release: Release, plan: Plan, now: datetime, data: dict[str, Any]) -> Outcome:
    """The grace after the reminder is over: still undecided means No-Go, naming the missing votes."""
    if vote_state(release, plan) not in {"pending", "open"}:
        return Outcome(release)
    tally = tally_votes(release, plan)
    if tally.verdict is not None:
        return _record_verdict(release, plan, tally, now, how="deadline")
    rationale = "missing votes: " + ", ".join(role_title(r) for r in tally.missing)
    return _record(release, plan, Vote.NO_GO, rationale, SYSTEM.user_id, now, overrode=False, how="deadline")


def vote_refresh(release: Release, plan: Plan) -> tuple[Effect, ...]:
    """For other rules (issues): refresh the open vote message, e.g. when a critical issue changes."""
    return (Refresh(release.attempt_key(VOTE_KEY)),) if vote_state(release, plan) == "open" else ()
