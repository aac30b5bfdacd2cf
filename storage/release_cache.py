"""The last committed state of each release, kept in memory so a command does not reload its history.

Every saved change moves the release row's `stamp` on (under the release's lock). A process keeps the
aggregate it last loaded or committed together with that stamp; reading the release row (one small
query, under the same lock as before) tells whether the copy is still the database's: the same stamp
means no process has saved a change since. A change is remembered only once its transaction commits, and
in the shape a fresh load would give (times in UTC, children in load order), so a rule sees the same
release either way. Another replica's change moves the stamp, and the next command loads afresh.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from bot.domain import Release

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Cached:
    stamp: int
    revision: int
    release: Release


_BY_ENGINE: weakref.WeakKeyDictionary[Engine, dict[str, Cached]] = weakref.WeakKeyDictionary()
_PENDING = "warroom_release_cache_pending"


def _store(session: AsyncSession) -> dict[str, Cached]:
    engine = session.get_bind()
    assert isinstance(engine, Engine), "sessions are bound to one engine"
    return _BY_ENGINE.setdefault(engine, {})


def lookup(session: AsyncSession, release_id: str, stamp: int, revision: int) -> Release | None:
    """The kept release when its stamp and revision are the database's, else None (also what this very
    transaction saved, not yet committed)."""
    cached = session.sync_session.info.get(_PENDING, {}).get(release_id) or _store(session).get(release_id)
    if cached is None or cached.stamp != stamp or cached.revision != revision:
        return None
    return cached.release


def remember(session: AsyncSession, release: Release, stamp: int) -> None:
    """Keep a release just read from the database, unless this transaction changed it (what it read is then
    not committed yet: `remember_on_commit` keeps that)."""
    if release.id not in session.sync_session.info.get(_PENDING, {}):
        _keep(_store(session), Cached(stamp, release.revision, release))


def remember_on_commit(session: AsyncSession, release: Release, stamp: int) -> None:
    """Keep a release this transaction saved, once (and only if) it commits."""
    pending: dict[str, Cached] = session.sync_session.info.setdefault(_PENDING, {})
    pending[release.id] = Cached(stamp, release.revision, release)


def _keep(store: dict[str, Cached], cached: Cached) -> None:
    current = store.get(cached.release.id)
    if current is None or current.stamp <= cached.stamp:
        store[cached.release.id] = cached


@event.listens_for(Session, "after_commit")
def _committed(session: Session) -> None:
    pending: dict[str, Cached] | None = session.info.pop(_PENDING, None)
    if not pending:
        return
    engine = session.get_bind()
    if not isinstance(engine, Engine):
        return
    store = _BY_ENGINE.setdefault(engine, {})
    for cached in pending.values():
        _keep(store, cached)


@event.listens_for(Session, "after_rollback")
def _rolled_back(session: Session) -> None:
    session.info.pop(_PENDING, None)


# --- the shape a fresh load gives ---------------------------------------------------------------------------


def as_stored(obj: T, columns: frozenset[str], conversions: tuple[tuple[str, Callable[[Any], Any] | None], ...]) -> T:
    """`obj` as reading its row back would give it: only the fields the row has (the rest take their
    defaults), times in UTC, enums and tuples converted as on load."""
    values: dict[str, Any] = {}
    for name, convert in conversions:
        if name not in columns:
            continue
        value = getattr(obj, name)
        if isinstance(value, datetime):
            value = value.astimezone(UTC)
        elif convert is not None and value is not None:
            value = convert(value)
        values[name] = value
    return type(obj)(**values)
