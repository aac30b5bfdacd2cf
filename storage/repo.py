"""Repository functions: keyword-only, one session each call, domain objects in and out."""

from __future__ import annotations

import dataclasses
import enum
import typing
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from itertools import compress
from operator import is_not
from typing import Any, TypeVar, cast

from sqlalchemy import Table, bindparam, delete, func, insert, select, update
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain import (
    AlertLink,
    Ballot,
    CancelPosts,
    CancelTimer,
    CheckState,
    Decision,
    Effect,
    Event,
    Issue,
    Page,
    Phase,
    Post,
    Refresh,
    Release,
    SetTimer,
    SignOff,
    TaskCheck,
)
from storage import release_cache
from storage.models import (
    AlertLinkRow,
    Base,
    CheckRow,
    DecisionRow,
    HandledRequestRow,
    InboxRow,
    IssueRow,
    OutboxRow,
    PageRow,
    PhaseRow,
    ReleaseRow,
    SignOffRow,
    TaskCheckRow,
    TimelineRow,
    TimerRow,
    VoteRow,
)

T = TypeVar("T")

# --- row <-> domain conversion -------------------------------------------------------------------------------


_Conversions = tuple[tuple[str, Callable[[Any], Any] | None], ...]
_CONVERSIONS: dict[type, _Conversions] = {}


def _conversions(cls: type) -> _Conversions:
    """Per dataclass, once: each field's name and how a column value becomes the field's type.

    Reflecting on the type hints for every row was most of the cost of loading a release.
    """
    if cls in _CONVERSIONS:
        return _CONVERSIONS[cls]
    hints = typing.get_type_hints(cls)
    plan: list[tuple[str, Callable[[Any], Any] | None]] = []
    for f in dataclasses.fields(cls):
        kind = hints[f.name]
        convert: Callable[[Any], Any] | None = None
        if isinstance(kind, type) and issubclass(kind, enum.Enum):
            convert = kind
        elif typing.get_origin(kind) is tuple:
            convert = tuple
        plan.append((f.name, convert))
    _CONVERSIONS[cls] = tuple(plan)
    return _CONVERSIONS[cls]


def _from_row(cls: type[T], row: Base, **extra: Any) -> T:
    values: dict[str, Any] = {}
    for name, convert in _conversions(cls):
        if name in extra:
            values[name] = extra[name]
            continue
        if not hasattr(row, name):
            continue
        value = getattr(row, name)
        if convert is not None and value is not None:
            value = convert(value)
        values[name] = value
    return cls(**values)


def _to_columns(obj: Any, skip: Iterable[str] = ()) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        if f.name in skip:
            continue
        value = getattr(obj, f.name)
        if isinstance(value, enum.Enum):
            value = value.value
        elif isinstance(value, tuple):
            value = list(value)
        out[f.name] = value
    return out


_RELEASE_CHILDREN = ("phases", "issues", "pages", "ballots", "decisions", "task_checks", "signoffs", "alerts", "checks")

_LOAD_ORDER: dict[str, tuple[type[Base], Callable[[Any], Any] | None]] = {
    "phases": (PhaseRow, lambda p: p.position),
    "issues": (IssueRow, lambda i: i.number),
    "pages": (PageRow, lambda p: p.number),
    "ballots": (VoteRow, lambda b: (b.at, b.voter)),
    "decisions": (DecisionRow, None),  # appended only, in the order they were made
    "task_checks": (TaskCheckRow, lambda c: (c.scope, c.number)),
    "signoffs": (SignOffRow, lambda s: (s.at, s.role)),
    "alerts": (AlertLinkRow, lambda a: (a.issue_number, a.fingerprint)),
    "checks": (CheckRow, lambda c: c.name),
}
"""Per child of the release: its table and the order `get_release` gives its rows in (the kept copy of a
saved release takes the same shape). A new child needs its line here."""
assert set(_LOAD_ORDER) == set(_RELEASE_CHILDREN), "every child of the release says how it loads"


def _mapped(model: type[Base]) -> frozenset[str]:
    return frozenset(sa_inspect(model).attrs.keys())


def _as_loaded(before: Release | None, after: Release) -> Release:
    """`after` as `get_release` would load it once saved; children unchanged since `before` are reused."""
    children: dict[str, Any] = {}
    for name, (model, order) in _LOAD_ORDER.items():
        old: tuple[Any, ...] = getattr(before, name) if before is not None else ()
        new: tuple[Any, ...] = getattr(after, name)
        if new is old:
            children[name] = old
            continue
        if order is None:  # only the ones added are written
            new = old + new[len(old) :]
        columns = _mapped(model)
        changed = _changed_positions(old, new)
        moved = changed is None
        if changed is None:  # shorter than before: kept children may have moved, so compare by identity
            kept = {id(o) for o in old}
            changed = [n for n, o in enumerate(new) if id(o) not in kept]
        stored = list(new)
        for n in changed:
            stored[n] = release_cache.as_stored(stored[n], columns, _conversions(type(stored[n])))
        if order is not None and (moved or not _in_order(stored, changed, order)):
            stored.sort(key=order)
        children[name] = tuple(stored)
    release = release_cache.as_stored(after, _mapped(ReleaseRow), _conversions(Release))
    return replace(release, **children)


def _changed_positions(old: Sequence[Any], new: Sequence[Any]) -> list[int] | None:
    """Where `new` holds another object than `old` at the same position, and every position past `old`'s
    end; None when `new` is shorter. A command replaces or appends a child or two, so comparing identities
    position by position (in C, allocating nothing per child) finds them without indexing the whole
    release, whose issues grow all day."""
    if len(new) < len(old):
        return None
    return [*compress(range(len(old)), map(is_not, old, new)), *range(len(old), len(new))]


def _in_order(items: list[Any], changed: list[int], order: Callable[[Any], Any]) -> bool:
    """Whether `items` is still sorted by `order`, given that it was before the positions in `changed`
    were replaced or appended: only the neighbours of those positions can be out of order."""
    for n in changed:
        if n > 0 and order(items[n]) < order(items[n - 1]):
            return False
        if n + 1 < len(items) and order(items[n + 1]) < order(items[n]):
            return False
    return True


# --- the release aggregate -----------------------------------------------------------------------------------


async def get_release(*, session: AsyncSession, release_id: str, lock: bool = False) -> Release | None:
    """Load a release and everything it owns; `lock` holds its row until the transaction ends."""
    # the stamp first (two integers, under the lock when asked): most of the time the kept copy is current
    version = select(ReleaseRow.stamp, ReleaseRow.revision).where(ReleaseRow.id == release_id)
    if lock:
        version = version.with_for_update()
    current = (await session.execute(version)).one_or_none()
    if current is None:
        return None
    if (kept := release_cache.lookup(session, release_id, current.stamp, current.revision)) is not None:
        return kept
    row = (await session.execute(select(ReleaseRow).where(ReleaseRow.id == release_id))).scalar_one()
    phases = (
        await session.scalars(select(PhaseRow).where(PhaseRow.release_id == release_id).order_by(PhaseRow.position))
    ).all()
    issues = (
        await session.scalars(select(IssueRow).where(IssueRow.release_id == release_id).order_by(IssueRow.number))
    ).all()
    pages = (
        await session.scalars(select(PageRow).where(PageRow.release_id == release_id).order_by(PageRow.number))
    ).all()
    votes = (await session.scalars(select(VoteRow).where(VoteRow.release_id == release_id))).all()
    decisions = (
        await session.scalars(select(DecisionRow).where(DecisionRow.release_id == release_id).order_by(DecisionRow.id))
    ).all()
    ticked = (
        await session.scalars(
            select(TaskCheckRow)
            .where(TaskCheckRow.release_id == release_id)
            .order_by(TaskCheckRow.scope, TaskCheckRow.number)
        )
    ).all()
    signoffs = (await session.scalars(select(SignOffRow).where(SignOffRow.release_id == release_id))).all()
    alerts = (
        await session.scalars(
            select(AlertLinkRow)
            .where(AlertLinkRow.release_id == release_id)
            .order_by(AlertLinkRow.issue_number, AlertLinkRow.fingerprint)
        )
    ).all()
    checks = (await session.scalars(select(CheckRow).where(CheckRow.release_id == release_id))).all()
    release = _from_row(
        Release,
        row,
        # sorted here, not by the database: ORDER BY follows the server's collation, the kept copy code points
        task_checks=tuple(sorted((_from_row(TaskCheck, c) for c in ticked), key=_check_key)),
        signoffs=tuple(sorted((_from_row(SignOff, s) for s in signoffs), key=lambda s: (s.at, s.role))),
        alerts=tuple(sorted((_from_row(AlertLink, a) for a in alerts), key=lambda a: (a.issue_number, a.fingerprint))),
        checks=tuple(sorted((_from_row(CheckState, c) for c in checks), key=lambda c: c.name)),
        phases=tuple(_from_row(Phase, p) for p in phases),
        issues=tuple(_from_row(Issue, i) for i in issues),
        pages=tuple(_from_row(Page, p) for p in pages),
        ballots=tuple(sorted((_from_row(Ballot, v) for v in votes), key=lambda b: (b.at, b.voter))),
        decisions=tuple(_from_row(Decision, d) for d in decisions),
    )
    release_cache.remember(session, release, row.stamp)
    return release


async def get_releases(*, session: AsyncSession, release_ids: Iterable[str]) -> dict[str, Release]:
    """Several releases, as `get_release` gives each: the kept copies whose stamp is still the database's
    are checked in one query; only the others are loaded in full. Releases not in the database are left out."""
    wanted = sorted(set(release_ids))
    if not wanted:
        return {}
    versions = select(ReleaseRow.id, ReleaseRow.stamp, ReleaseRow.revision).where(ReleaseRow.id.in_(wanted))
    rows = (await session.execute(versions)).all()
    found: dict[str, Release] = {}
    for row in rows:
        kept = release_cache.lookup(session, row.id, row.stamp, row.revision)
        if kept is not None:
            found[row.id] = kept
    for release_id in (row.id for row in rows if row.id not in found):
        if (release := await get_release(session=session, release_id=release_id)) is not None:
            found[release_id] = release
    return found


async def save_release(
    *,
    session: AsyncSession,
    before: Release | None,
    after: Release,
    now: datetime,
    plan_source: str | None = None,
    plan_file: str | None = None,
) -> None:
    """Write what changed between `before` and `after` (all of it when `before` is None)."""
    columns = _to_columns(after, skip=_RELEASE_CHILDREN)
    if plan_source is not None:
        columns["plan_source"] = plan_source
    if plan_file is not None:
        columns["plan_file"] = plan_file
    # the row's own columns are written with the stamp's move, after the children (one statement either way)
    row_changed = before is not None and (
        columns != _to_columns(before, skip=_RELEASE_CHILDREN) or plan_source is not None
    )
    if before is None:
        session.add(ReleaseRow(**columns, created_at=now, updated_at=now))
        await session.flush()

    await _sync(session, PhaseRow, after.id, before.phases if before else (), after.phases, lambda p: p.id)
    await _sync(session, IssueRow, after.id, before.issues if before else (), after.issues, lambda i: i.number)
    await _sync(session, PageRow, after.id, before.pages if before else (), after.pages, lambda p: p.number)
    await _sync(session, VoteRow, after.id, before.ballots if before else (), after.ballots, lambda b: b.voter)
    await _sync(session, TaskCheckRow, after.id, before.task_checks if before else (), after.task_checks, _check_key)
    await _sync(session, SignOffRow, after.id, before.signoffs if before else (), after.signoffs, lambda s: s.role)
    await _sync(session, AlertLinkRow, after.id, before.alerts if before else (), after.alerts, lambda a: a.fingerprint)
    await _sync(session, CheckRow, after.id, before.checks if before else (), after.checks, lambda c: c.name)
    old_decisions = len(before.decisions) if before else 0
    if decisions := [{"release_id": after.id, **_to_columns(d)} for d in after.decisions[old_decisions:]]:
        await session.execute(insert(_table(DecisionRow)), decisions)
    releases = _table(ReleaseRow)
    changes = {**columns, "updated_at": now} if row_changed else {}
    stamp = await session.scalar(
        update(releases)
        .where(releases.c.id == after.id)
        .values(**changes, stamp=releases.c.stamp + 1)
        .returning(releases.c.stamp)
    )
    release_cache.remember_on_commit(session, _as_loaded(before, after), int(stamp or 0))


def _check_key(check: TaskCheck) -> tuple[str, int]:
    return check.scope, check.number


async def _sync(
    session: AsyncSession,
    model: type[Base],
    release_id: str,
    old: Sequence[Any],
    new: Sequence[Any],
    key: Callable[[Any], Any],
) -> None:
    """Write a child table's changes as table statements (the ORM's unit of work cost more than the writes);
    new rows go in one statement, after the updates and deletes."""
    table = _table(model)
    keys = [name for name in _pk_names(model) if name != "release_id"]
    pairs = _replaced(old, new, key)
    gone: Iterable[Any] = ()
    if pairs is None:  # removed or moved children: match them by key
        old_by_key = {key(o): o for o in old}
        new_by_key = {key(n): n for n in new}
        pairs = [(old_by_key.get(k), obj) for k, obj in new_by_key.items()]
        gone = [obj for k, obj in old_by_key.items() if k not in new_by_key]
    added: list[dict[str, Any]] = []
    for previous, obj in pairs:
        if previous is obj or previous == obj:
            continue
        values = _to_columns(obj)
        if previous is None:
            added.append({"release_id": release_id, **values})
        else:
            conditions = [table.c.release_id == release_id] + [table.c[name] == values[name] for name in keys]
            await session.execute(update(table).where(*conditions).values(**values))
    for obj in gone:
        values = _to_columns(obj)
        conditions = [table.c.release_id == release_id] + [table.c[name] == values[name] for name in keys]
        await session.execute(delete(table).where(*conditions))
    if added:
        await session.execute(insert(table), added)


def _replaced(old: Sequence[Any], new: Sequence[Any], key: Callable[[Any], Any]) -> list[tuple[Any, Any]] | None:
    """(before, after) for each child a command replaced in place or appended (before None), or None when
    children were removed or another child took one's place. `new`'s keys are unique (they are its
    rows' keys), so a child past `old`'s end, where every earlier key is `old`'s, is a new row."""
    changed = _changed_positions(old, new)
    if changed is None:
        return None
    pairs = []
    for n in changed:
        if n < len(old):
            if key(old[n]) != key(new[n]):
                return None
            pairs.append((old[n], new[n]))
        else:
            pairs.append((None, new[n]))
    return pairs


def _table(model: type[Base]) -> Table:
    # declarative models with __tablename__ are mapped to a Table
    return cast(Table, model.__table__)


def _pk_names(model: type[Base]) -> list[str]:
    return [c.name for c in _table(model).primary_key.columns]


async def list_releases(*, session: AsyncSession) -> list[Release]:
    """Every release, without children, newest window first."""
    rows = (await session.scalars(select(ReleaseRow).order_by(ReleaseRow.window_start.desc()))).all()
    return [_from_row(Release, row) for row in rows]


async def get_plan_source(*, session: AsyncSession, release_id: str) -> tuple[str, str] | None:
    row = await session.get(ReleaseRow, release_id)
    return (row.plan_source, row.plan_file) if row else None


# --- timeline ------------------------------------------------------------------------------------------------


async def append_events(*, session: AsyncSession, release_id: str, events: Iterable[Event]) -> None:
    """Append to the timeline, in one statement, without reading it."""
    rows = [
        {"release_id": release_id, "at": e.at, "kind": e.kind, "actor": e.actor, "subject": e.subject, "data": e.data}
        for e in events
    ]
    if rows:
        await session.execute(insert(_table(TimelineRow)), rows)


async def get_timeline(*, session: AsyncSession, release_id: str) -> list[Event]:
    rows = (
        await session.scalars(
            select(TimelineRow).where(TimelineRow.release_id == release_id).order_by(TimelineRow.at, TimelineRow.id)
        )
    ).all()
    return [Event(r.kind, r.at, r.actor, r.subject, dict(r.data or {})) for r in rows]


# --- effects: outbox and timers ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """A message owed to Slack, as the dispatcher sees it."""

    id: int
    release_id: str
    key: str
    kind: str
    channel: str
    template: str
    data: dict[str, Any]
    thread_of: str | None
    due_at: datetime
    grace_seconds: int | None
    status: str
    attempts: int
    claimed_at: datetime | None = None
    channel_id: str | None = None
    ts: str | None = None
    delayed: bool = False
    error: str = ""
    """Why the last attempt failed, was skipped or cancelled (empty when nothing went wrong)."""


def _item(row: Any) -> OutboxItem:
    """From an `OutboxRow`, or a row of its table's columns."""
    return OutboxItem(
        id=row.id,
        release_id=row.release_id,
        key=row.key,
        kind=row.kind,
        channel=row.channel,
        template=row.template,
        data=dict(row.data or {}),
        thread_of=row.thread_of,
        due_at=row.due_at,
        grace_seconds=row.grace_seconds,
        status=row.status,
        attempts=row.attempts,
        claimed_at=row.claimed_at,
        channel_id=row.channel_id,
        ts=row.ts,
        delayed=row.delayed,
        error=row.error or "",
    )


async def apply_effects(
    *, session: AsyncSession, release_id: str, effects: Iterable[Effect], now: datetime, seq: str
) -> None:
    """Store what a rule asked for: posts and refreshes go to the outbox, timers to the timer table."""
    for n, effect in enumerate(effects):
        match effect:
            case Post():
                key = effect.key or f"{effect.template}:{seq}:{n}"
                await enqueue(
                    session=session,
                    release_id=release_id,
                    key=key,
                    channel=effect.channel,
                    template=effect.template,
                    data=effect.data,
                    due_at=effect.due_at or now,
                    thread_of=effect.thread_of,
                    grace_seconds=effect.grace_seconds,
                    kind=effect.kind,
                    now=now,
                    replace_pending=True,
                )
            case Refresh():
                await enqueue(
                    session=session,
                    release_id=release_id,
                    key=f"refresh:{effect.key}:{seq}",
                    channel="",
                    template="",
                    data={"target": effect.key},
                    due_at=now,
                    kind="update",
                    now=now,
                )
            case SetTimer():
                await set_timer(session=session, release_id=release_id, timer=effect)
            case CancelTimer():
                await session.execute(
                    update(TimerRow)
                    .where(
                        TimerRow.release_id == release_id,
                        TimerRow.key == effect.key,
                        TimerRow.status == "pending",
                    )
                    .values(status="cancelled")
                )
            case CancelPosts():
                await session.execute(
                    update(OutboxRow)
                    .where(
                        OutboxRow.release_id == release_id,
                        OutboxRow.status == "pending",
                        OutboxRow.due_at > effect.after,
                        OutboxRow.key.startswith(effect.prefix),
                    )
                    .values(status="cancelled", error=effect.reason)
                )
            case _:
                pass  # External effects are delivered by the service after commit


async def enqueue(
    *,
    session: AsyncSession,
    release_id: str,
    key: str,
    channel: str,
    template: str,
    data: dict[str, Any],
    due_at: datetime,
    now: datetime,
    thread_of: str | None = None,
    grace_seconds: int | None = None,
    kind: str = "post",
    replace_pending: bool = False,
) -> None:
    """Add a message to the outbox unless its key is already there (a pending one may be rescheduled)."""
    existing = (
        await session.execute(select(OutboxRow).where(OutboxRow.release_id == release_id, OutboxRow.key == key))
    ).scalar_one_or_none()
    if existing is not None:
        if existing.status == "pending" and (replace_pending or existing.due_at != due_at):
            existing.due_at = due_at
            existing.channel = channel
            existing.template = template
            existing.data = data
            existing.grace_seconds = grace_seconds
        elif existing.status == "cancelled" and replace_pending:
            existing.status = "pending"
            existing.due_at = due_at
            existing.error = ""
        return
    session.add(
        OutboxRow(
            release_id=release_id,
            key=key,
            kind=kind,
            channel=channel,
            template=template,
            data=data,
            thread_of=thread_of,
            due_at=due_at,
            grace_seconds=grace_seconds,
            created_at=now,
        )
    )
    await session.flush()


async def reschedule_pending(
    *,
    session: AsyncSession,
    release_id: str,
    wanted: dict[str, tuple[datetime, dict[str, Any]]],
    prefixes: tuple[str, ...],
) -> int:
    """Move scheduled posts not yet sent (key starting with one of `prefixes`) to their new times.

    `wanted` maps key → (due_at, fields). Pending keys no longer wanted are cancelled; a cancelled post
    stays cancelled (a rescheduled release gets new keys instead). Returns how many moved.
    """
    rows = (
        await session.scalars(
            select(OutboxRow).where(OutboxRow.release_id == release_id, OutboxRow.status == "pending")
        )
    ).all()
    moved = 0
    for row in rows:
        if not row.key.startswith(prefixes):
            continue
        if row.key not in wanted:
            row.status = "cancelled"
            row.error = "no longer in the plan"
            continue
        due_at, fields = wanted[row.key]
        if row.due_at != due_at:
            row.due_at = due_at
            moved += 1
        # a reloaded plan may also send it elsewhere or with another template
        for name, value in fields.items():
            if getattr(row, name) != value:
                setattr(row, name, value)
    return moved


async def claim_due(
    *,
    session: AsyncSession,
    now: datetime,
    claim_id: str,
    limit: int = 20,
    stale_after: timedelta,
    behind: Callable[[str, str, str], datetime | None] | None = None,
) -> list[OutboxItem]:
    """Claim messages that are due (or whose earlier claim went stale) for sending by this process.

    `behind(release_id, kind, channel)`: for a due message never tried nor held back before, the time it goes
    after the messages its channel holds back (it stays pending, due again then), or None to claim it now.
    """
    due = (
        select(
            OutboxRow.id,
            OutboxRow.release_id,
            OutboxRow.kind,
            OutboxRow.channel,
            OutboxRow.status,
            OutboxRow.next_attempt_at,
            OutboxRow.claimed_at,
        )
        .where(
            (
                (OutboxRow.status == "pending")
                & (OutboxRow.due_at <= now)
                & ((OutboxRow.next_attempt_at.is_(None)) | (OutboxRow.next_attempt_at <= now))
            )
            | ((OutboxRow.status == "claimed") & (OutboxRow.claimed_at <= now - stale_after))
        )
        .order_by(OutboxRow.due_at, OutboxRow.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    found = (await session.execute(due)).all()
    later: list[dict[str, Any]] = []
    previous_claims: dict[int, datetime | None] = {}
    for item_id, release_id, kind, channel, status, next_attempt_at, claimed_at in found:
        fresh = status == "pending" and next_attempt_at is None  # one held back is in its channel's queue already
        at = behind(release_id, kind, channel) if behind is not None and fresh else None
        if at is None:
            previous_claims[item_id] = claimed_at
        else:
            later.append({"item_id": item_id, "at": at})
    table = _table(OutboxRow)
    if later:
        statement = update(table).where(table.c.id == bindparam("item_id")).values(next_attempt_at=bindparam("at"))
        await session.execute(statement, later)
    if not previous_claims:
        return []
    # one statement for the batch, the rows as claimed coming back with it
    claim = (
        update(table)
        .where(table.c.id.in_(list(previous_claims)))
        .values(status="claimed", claim_id=claim_id, claimed_at=now, attempts=table.c.attempts + 1)
        .returning(*table.c)
    )
    rows = (await session.execute(claim)).all()
    items = [replace(_item(row), claimed_at=previous_claims[row.id]) for row in rows]
    return sorted(items, key=lambda i: (i.due_at, i.id))


async def finish_item(
    *,
    session: AsyncSession,
    item_id: int,
    claim_id: str,
    status: str,
    now: datetime,
    channel_id: str | None = None,
    ts: str | None = None,
    error: str = "",
    delayed: bool = False,
    retry_at: datetime | None = None,
    maybe_posted: bool = False,
    undo_attempt: bool = False,
) -> bool:
    """Record how a claimed message ended; False if another process took the claim meanwhile.

    `undo_attempt`: Slack was not called (the message waited for its channel), so it was no attempt.
    """
    values: dict[str, Any] = {"status": status, "error": error[:2000]}
    if undo_attempt:
        values["attempts"] = OutboxRow.attempts - 1
    if status == "sent":
        values.update(sent_at=now, channel_id=channel_id, ts=ts, delayed=delayed)
    if status == "pending":
        # A transport failure may have reached Slack: keep the claim time so the retry looks first.
        values.update(next_attempt_at=retry_at, claim_id=None)
        if not maybe_posted:
            values["claimed_at"] = None
    result = await session.execute(
        update(OutboxRow).where(OutboxRow.id == item_id, OutboxRow.claim_id == claim_id).values(**values)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Sent:
    """A claimed message Slack took: where and as which ts (see `finish_sent`)."""

    item_id: int
    at: datetime
    channel_id: str | None = None
    ts: str | None = None
    delayed: bool = False
    error: str = ""


async def finish_sent(*, session: AsyncSession, claim_id: str, sent: list[Sent]) -> None:
    """Record messages as sent in one statement, however many; like `finish_item(status="sent")` for each
    (one whose claim another process took meanwhile is left alone)."""
    if not sent:
        return
    table = _table(OutboxRow)
    statement = (
        update(table)
        .where(table.c.id == bindparam("item_id"), table.c.claim_id == claim_id)
        .values(
            status="sent",
            sent_at=bindparam("at"),
            channel_id=bindparam("sent_channel"),
            ts=bindparam("sent_ts"),
            delayed=bindparam("sent_delayed"),
            error=bindparam("sent_error"),
        )
    )
    rows = [
        {
            "item_id": s.item_id,
            "at": s.at,
            "sent_channel": s.channel_id,
            "sent_ts": s.ts,
            "sent_delayed": s.delayed,
            "sent_error": s.error[:2000],
        }
        for s in sent
    ]
    await session.execute(statement, rows)


async def hand_back(
    *, session: AsyncSession, claim_id: str, due: list[tuple[OutboxItem, datetime]], error: str
) -> None:
    """Put claimed messages Slack was not called for back in the outbox, each due again at its own time (one
    statement per kind of item, however many). Like `finish_item(status="pending", undo_attempt=True)`; an item
    an earlier attempt may have posted (claimed before) keeps its claim time, so whoever sends it looks first."""
    table = _table(OutboxRow)
    for looks_first in (False, True):
        rows = [{"item_id": item.id, "at": at} for item, at in due if (item.claimed_at is not None) is looks_first]
        if not rows:
            continue
        values: dict[str, Any] = {
            "status": "pending",
            "claim_id": None,
            "next_attempt_at": bindparam("at"),
            "attempts": table.c.attempts - 1,
            "error": error[:2000],
        }
        if not looks_first:
            values["claimed_at"] = None
        statement = (
            update(table).where(table.c.id == bindparam("item_id"), table.c.claim_id == claim_id).values(**values)
        )
        await session.execute(statement, rows)


async def release_claims(*, session: AsyncSession, claim_id: str, claims: list[tuple[OutboxItem, bool]]) -> None:
    """Hand claimed messages back as due now. `(item, started)`: an item never started is as before its claim;
    one whose send began keeps its claim time, so whoever takes it looks for it in history before sending."""
    for item, started in claims:
        values: dict[str, Any] = {"status": "pending", "claim_id": None, "next_attempt_at": None}
        if not started:
            values.update(claimed_at=item.claimed_at, attempts=OutboxRow.attempts - 1)
        await session.execute(
            update(OutboxRow)
            .where(OutboxRow.id == item.id, OutboxRow.claim_id == claim_id, OutboxRow.status == "claimed")
            .values(**values)
        )


async def sent_message(*, session: AsyncSession, release_id: str, key: str) -> OutboxItem | None:
    """A message already posted under `key` (to thread under it, or to update it)."""
    row = (
        await session.execute(select(OutboxRow).where(OutboxRow.release_id == release_id, OutboxRow.key == key))
    ).scalar_one_or_none()
    return _item(row) if row else None


async def skip_pending(
    *, session: AsyncSession, release_id: str, prefixes: tuple[str, ...], reason: str
) -> list[tuple[str, str]]:
    """Mark the release's pending messages under `prefixes` skipped with `reason`; (key, kind) of each."""
    rows = (
        await session.scalars(
            select(OutboxRow).where(OutboxRow.release_id == release_id, OutboxRow.status == "pending")
        )
    ).all()
    skipped = []
    for row in rows:
        if row.key.startswith(prefixes):
            row.status, row.error = "skipped", reason[:2000]
            skipped.append((row.key, row.kind))
    await session.flush()
    return sorted(skipped)


async def outbox(*, session: AsyncSession, release_id: str | None = None) -> list[OutboxItem]:
    query = select(OutboxRow).order_by(OutboxRow.due_at, OutboxRow.id)
    if release_id is not None:
        query = query.where(OutboxRow.release_id == release_id)
    return [_item(r) for r in (await session.scalars(query)).all()]


async def overdue(*, session: AsyncSession, before: datetime) -> tuple[int, int]:
    """(messages, timers) due before `before` and still not done: what a stuck or failing bot leaves behind."""
    messages = await session.scalar(
        select(func.count())
        .select_from(OutboxRow)
        .where(OutboxRow.status.in_(("pending", "claimed")), OutboxRow.due_at < before)
    )
    timers = await session.scalar(
        select(func.count()).select_from(TimerRow).where(TimerRow.status == "pending", TimerRow.at < before)
    )
    return int(messages or 0), int(timers or 0)


async def pending_schedule(*, session: AsyncSession) -> list[tuple[str, datetime]]:
    """(job id, time) for every pending message and timer, for rebuilding the scheduler."""
    rows = (
        await session.execute(
            select(OutboxRow.id, OutboxRow.due_at, OutboxRow.next_attempt_at).where(OutboxRow.status == "pending")
        )
    ).all()
    # a message waiting for a retry (or for its channel) is due again at its next attempt, not before
    posts = [(i, max(due, retry) if retry else due) for i, due, retry in rows]
    timers = (
        await session.execute(
            select(TimerRow.release_id, TimerRow.key, TimerRow.at).where(TimerRow.status == "pending")
        )
    ).all()
    return [(f"outbox:{i}", at) for i, at in posts] + [(f"timer:{r}:{k}", at) for r, k, at in timers]


# --- timers --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Timer:
    release_id: str
    key: str
    rule: str
    data: dict[str, Any]
    at: datetime


async def set_timer(*, session: AsyncSession, release_id: str, timer: SetTimer) -> None:
    row = await session.get(TimerRow, (release_id, timer.key))
    if row is None:
        session.add(TimerRow(release_id=release_id, key=timer.key, rule=timer.rule, data=timer.data, at=timer.at))
    else:
        row.rule, row.data, row.at, row.status, row.fired_at = (
            timer.rule,
            timer.data,
            timer.at,
            "pending",
            None,
        )
    await session.flush()


async def arm_timer(*, session: AsyncSession, release_id: str, timer: SetTimer) -> None:
    """Set a timer the plan itself asks for, unless it already fired (or was cancelled) at this very time.

    Every start loads every plan again; re-arming a timer that already ran would run it twice. A plan
    that moves the time arms it anew.
    """
    row = await session.get(TimerRow, (release_id, timer.key))
    if row is not None and row.status != "pending" and row.at == timer.at:
        return
    await set_timer(session=session, release_id=release_id, timer=timer)


async def due_timers(*, session: AsyncSession, now: datetime, limit: int = 50) -> list[Timer]:
    rows = (
        await session.scalars(
            select(TimerRow).where(TimerRow.status == "pending", TimerRow.at <= now).order_by(TimerRow.at).limit(limit)
        )
    ).all()
    return [Timer(r.release_id, r.key, r.rule, dict(r.data or {}), r.at) for r in rows]


async def fire_timer(*, session: AsyncSession, release_id: str, key: str, at: datetime, now: datetime) -> bool:
    """Mark a timer fired; False when another process already fired or moved it."""
    result = await session.execute(
        update(TimerRow)
        .where(
            TimerRow.release_id == release_id,
            TimerRow.key == key,
            TimerRow.status == "pending",
            TimerRow.at == at,
        )
        .values(status="fired", fired_at=now)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def timers(*, session: AsyncSession, release_id: str) -> list[Timer]:
    rows = (
        await session.scalars(
            select(TimerRow)
            .where(TimerRow.release_id == release_id, TimerRow.status == "pending")
            .order_by(TimerRow.at)
        )
    ).all()
    return [Timer(r.release_id, r.key, r.rule, dict(r.data or {}), r.at) for r in rows]


# --- the request inbox ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InboundRequest:
    """A Slack request as the inbox recorded it (`payload` is the parsed body Bolt dispatches)."""

    key: str
    kind: str
    name: str
    payload: dict[str, Any]
    user_id: str
    channel_id: str
    received_at: datetime
    claimed_at: datetime
    attempts: int
    finished_at: datetime | None = None


def _request(row: Any) -> InboundRequest:
    """From an `InboxRow`, or a row of its table's columns."""
    return InboundRequest(
        row.key,
        row.kind,
        row.name,
        dict(row.payload or {}),
        row.user_id,
        row.channel_id,
        row.received_at,
        row.claimed_at,
        row.attempts,
        row.finished_at,
    )


async def record_requests(*, session: AsyncSession, requests: list[InboundRequest]) -> set[str]:
    """Record requests before they are acknowledged (one statement); returns the keys not recorded before."""
    rows = [
        {
            "key": r.key,
            "kind": r.kind,
            "name": r.name[:100],
            "payload": r.payload,
            "user_id": r.user_id[:32],
            "channel_id": r.channel_id[:32],
            "received_at": r.received_at,
            "claimed_at": r.claimed_at,
            "attempts": r.attempts,
        }
        for r in {r.key: r for r in reversed(requests)}.values()
    ]
    # a replay must not abort the others in this statement; on the table, with the rows as parameters: one
    # cached statement whatever the batch (the ORM's bulk path and a VALUES list per batch cost more than
    # the write itself)
    table = _table(InboxRow)
    statement = _insert_new(session, table, "key").returning(table.c.key)
    return set((await session.execute(statement, rows)).scalars())


def _insert_new(session: AsyncSession, table: Table, *unique: str) -> Any:
    """INSERT … ON CONFLICT (`unique`) DO NOTHING, which both databases have, in the dialect in use (it is
    loaded already; importing the other one would only slow the start)."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as postgresql_insert

        return postgresql_insert(table).on_conflict_do_nothing(index_elements=list(unique))
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table).on_conflict_do_nothing(index_elements=list(unique))


async def finish_requests(*, session: AsyncSession, keys: Iterable[str], now: datetime) -> None:
    """The requests' listeners are done (they replied, or said why not). Only the key is needed from now on
    (to recognise a replay): the payload, with its `response_url` and what was typed, is dropped."""
    table = _table(InboxRow)
    await session.execute(
        update(table)
        .where(table.c.key.in_(list(keys)), table.c.finished_at.is_(None))
        .values(finished_at=now, payload={})
    )


async def unfinished_requests(
    *, session: AsyncSession, received_before: datetime | None = None, claimed_before: datetime | None = None
) -> list[InboundRequest]:
    """Requests recorded but not finished, oldest first, received or last claimed before the given times."""
    query = select(InboxRow).where(InboxRow.finished_at.is_(None))
    if received_before is not None:
        query = query.where(InboxRow.received_at < received_before)
    if claimed_before is not None:
        query = query.where(InboxRow.claimed_at < claimed_before)
    rows = (await session.scalars(query.order_by(InboxRow.received_at, InboxRow.key))).all()
    return [_request(r) for r in rows]


async def take_up_request(
    *, session: AsyncSession, key: str, claimed_at: datetime, now: datetime
) -> InboundRequest | None:
    """Claim, and read, a request this process recorded and left waiting in the inbox: one statement. None
    when it is finished, gone, or claimed since `claimed_at` (another process took it over)."""
    table = _table(InboxRow)
    row = (
        await session.execute(
            update(table)
            .where(table.c.key == key, table.c.finished_at.is_(None), table.c.claimed_at == claimed_at)
            .values(claimed_at=now, attempts=table.c.attempts + 1)
            .returning(*table.c)
        )
    ).one_or_none()
    return None if row is None else _request(row)


async def claim_request(*, session: AsyncSession, request: InboundRequest, now: datetime) -> bool:
    """Take an unfinished request over for processing; False when another process took it first."""
    result = await session.execute(
        update(InboxRow)
        .where(
            InboxRow.key == request.key,
            InboxRow.finished_at.is_(None),
            InboxRow.claimed_at == request.claimed_at,
        )
        .values(claimed_at=now, attempts=InboxRow.attempts + 1)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def expire_requests(*, session: AsyncSession, received_before: datetime) -> int:
    """Forget finished requests received before `received_before`; returns how many."""
    result = await session.execute(
        delete(InboxRow).where(InboxRow.finished_at.is_not(None), InboxRow.received_at < received_before)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def expire_handled(*, session: AsyncSession, before: datetime) -> int:
    """Forget which requests were applied before `before` (long after they can be recovered); how many."""
    result = await session.execute(delete(HandledRequestRow).where(HandledRequestRow.at < before))
    return int(result.rowcount)  # type: ignore[attr-defined]


async def handled_reply(*, session: AsyncSession, key: str) -> str | None:
    """The reply of a request whose change was committed, or None when it was never applied."""
    row = await session.get(HandledRequestRow, key)
    return None if row is None else row.reply


async def mark_handled(*, session: AsyncSession, key: str, reply: str, now: datetime) -> None:
    """In the change's own transaction: this request has been applied (with the reply it gave)."""
    session.add(HandledRequestRow(key=key, reply=reply, at=now))
    await session.flush()
