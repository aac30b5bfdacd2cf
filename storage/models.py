"""SQLAlchemy 2 table models. Times are stored as naive UTC and come back aware (UTC)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC in Python, naive UTC in the database (portable across SQLite and PostgreSQL)."""

    impl = DateTime(timezone=False)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored: pass an aware UTC datetime")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime, dict[str, Any]: JSON, list[str]: JSON}


class ReleaseRow(Base):
    __tablename__ = "releases"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    version: Mapped[str] = mapped_column(String(64))
    timezone: Mapped[str] = mapped_column(String(64))
    window_start: Mapped[datetime]
    window_end: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(32), default="scheduled")
    started_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    revision: Mapped[int] = mapped_column(Integer, default=0)
    stamp: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """Moved on by every saved change, so a process can tell its copy of the release is current."""
    vote_opened_at: Mapped[datetime | None]
    vote_channel: Mapped[str | None] = mapped_column(String(32))
    vote_ts: Mapped[str | None] = mapped_column(String(32))
    signoffs_requested_at: Mapped[datetime | None]
    approved_at: Mapped[datetime | None]
    handoff_posted_at: Mapped[datetime | None]
    handoff_accepted_by: Mapped[str | None] = mapped_column(String(32))
    handoff_accepted_at: Mapped[datetime | None]
    plan_source: Mapped[str] = mapped_column(Text, default="")
    plan_file: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class PhaseRow(Base):
    __tablename__ = "phases"

    release_id: Mapped[str] = mapped_column(ForeignKey("releases.id", ondelete="CASCADE"), primary_key=True)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    position: Mapped[int]
    name: Mapped[str] = mapped_column(String(200))
    owners: Mapped[list[str]]
    region: Mapped[str | None] = mapped_column(String(64))
    planned_start: Mapped[datetime]
    planned_end: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(32), default="pending")
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    started_by: Mapped[str | None] = mapped_column(String(32))
    finished_by: Mapped[str | None] = mapped_column(String(32))
    note: Mapped[str] = mapped_column(Text, default="")


class IssueRow(Base):
    __tablename__ = "issues"

    release_id: Mapped[str] = mapped_column(ForeignKey("releases.id", ondelete="CASCADE"), primary_key=True)
    number: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    severity: Mapped[str] = mapped_column(String(16))
    component: Mapped[str] = mapped_column(String(100))
    region: Mapped[str | None] = mapped_column(String(64))
    impact: Mapped[str] = mapped_column(Text)
    error: Mapped[str] = mapped_column(Text, default="")
    reporter: Mapped[str] = mapped_column(String(32))
    reported_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16), default="open")
    investigator: Mapped[str | None] = mapped_column(String(32))
    resolved_at: Mapped[datetime | None]
    resolved_by: Mapped[str | None] = mapped_column(String(32))
    resolution: Mapped[str] = mapped_column(Text, default="")
    channel: Mapped[str | None] = mapped_column(String(32))
    ts: Mapped[str | None] = mapped_column(String(32))


class AlertLinkRow(Base):
    """An alert's fingerprint and the issue it opened: the primary key makes it one issue per fingerprint."""

    __tablename__ = "alert_links"

    release_id: Mapped[str] = mapped_column(ForeignKey("releases.id", ondelete="CASCADE"), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64), primary_key=True)
    issue_number: Mapped[int]
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime | None]
    summary: Mapped[str] = mapped_column(Text, default="")
    description: Mapped[str] = mapped_column(Text, default="")
    value: Mapped[str] = mapped_column(Text, default="")
    generator_url: Mapped[str] = mapped_column(Text, default="")
    source: Mapped[str] = mapped_column(String(16), default="alertmanager")
    trigger: Mapped[str] = mapped_column(Text, default="")
    lines: Mapped[int] = mapped_column(Integer, default=0)


class PageRow(Base):
    __tablename__ = "pages"

    release_id: Mapped[str] = mapped_column(ForeignKey("releases.id", ondelete="CASCADE"), primary_key=True)
    number: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    level: Mapped[int | None]
    targets: Mapped[list[str]]
    reason: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime]
    issue_number: Mapped[int | None]
    status: Mapped[str] = mapped_column(String(16), default="open")
    acked_by: Mapped[str | None] = mapped_column(String(32))
    acked_at: Mapped[datetime | None]
    escalate_at: Mapped[datetime | None]
    last_notified_level: Mapped[int | None]


class VoteRow(Base):
    __tablename__ = "votes"

    release_id: Mapped[str] = mapped_column(ForeignKey("releases.id", ondelete="CASCADE"), primary_key=True)
    voter: Mapped[str] = mapped_column(String(32), primary_key=True)
    role: Mapped[str] = mapped_column(String(64))
    vote: Mapped[str] = mapped_column(String(8))
    reason: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime]


class DecisionRow(Base):
    __tablename__ = "decisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    release_id: Mapped[str] = mapped_column(ForeignKey("releases.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    outcome: Mapped[str] = mapped_column(String(32))
    rationale: Mapped[str] = mapped_column(Text, default="")
    decided_by: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime]
    overrode_tally: Mapped[bool] = mapped_column(default=False)


class TaskCheckRow(Base):
    __tablename__ = "task_checks"

    release_id: Mapped[str] = mapped_column(ForeignKey("releases.id", ondelete="CASCADE"), primary_key=True)
    scope: Mapped[str] = mapped_column(String(64), primary_key=True)
    number: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    done_by: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime]
    note: Mapped[str] = mapped_column(Text, default="")


class SignOffRow(Base):
    __tablename__ = "signoffs"

    release_id: Mapped[str] = mapped_column(ForeignKey("releases.id", ondelete="CASCADE"), primary_key=True)
    role: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    by: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime]
    comment: Mapped[str] = mapped_column(Text, default="")


class CheckRow(Base):
    """The last reading of a plan check and its failing stretch (survives restarts; shared by replicas)."""

    __tablename__ = "checks"

    release_id: Mapped[str] = mapped_column(ForeignKey("releases.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    read_at: Mapped[datetime]
    value: Mapped[float | None] = mapped_column(Float)
    ok: Mapped[bool | None] = mapped_column(Boolean)
    error: Mapped[str] = mapped_column(Text, default="")
    failing_since: Mapped[datetime | None]
    asked_at: Mapped[datetime | None]


class OutboxRow(Base):
    """A message the bot owes Slack: due at `due_at`, claimed before sending, marked sent with its ts."""

    __tablename__ = "outbox"
    __table_args__ = (
        UniqueConstraint("release_id", "key", name="uq_outbox_release_key"),
        Index("ix_outbox_status_due", "status", "due_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    release_id: Mapped[str] = mapped_column(ForeignKey("releases.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16), default="post")
    channel: Mapped[str] = mapped_column(String(100))
    template: Mapped[str] = mapped_column(String(100))
    data: Mapped[dict[str, Any]]
    thread_of: Mapped[str | None] = mapped_column(String(200))
    due_at: Mapped[datetime]
    grace_seconds: Mapped[int | None]
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    claimed_at: Mapped[datetime | None]
    claim_id: Mapped[str | None] = mapped_column(String(64))
    sent_at: Mapped[datetime | None]
    channel_id: Mapped[str | None] = mapped_column(String(32))
    ts: Mapped[str | None] = mapped_column(String(32))
    delayed: Mapped[bool] = mapped_column(default=False)
    error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]


class TimerRow(Base):
    """A rule to run at a time (escalation, vote deadline); survives restarts."""

    __tablename__ = "timers"
    __table_args__ = (Index("ix_timers_status_at", "status", "at"),)

    release_id: Mapped[str] = mapped_column(ForeignKey("releases.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    rule: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict[str, Any]]
    at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16), default="pending")
    fired_at: Mapped[datetime | None]


class TimelineRow(Base):
    __tablename__ = "timeline"
    __table_args__ = (Index("ix_timeline_release_at", "release_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    release_id: Mapped[str] = mapped_column(ForeignKey("releases.id", ondelete="CASCADE"))
    at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(64))
    actor: Mapped[str | None] = mapped_column(String(32))
    subject: Mapped[str | None] = mapped_column(String(200))
    data: Mapped[dict[str, Any]]


class InboxRow(Base):
    """A request from Slack, recorded before it is acknowledged; finished once its listener has replied."""

    __tablename__ = "inbox"
    __table_args__ = (Index("ix_inbox_finished_received", "finished_at", "received_at"),)

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(100))
    payload: Mapped[dict[str, Any]]
    user_id: Mapped[str] = mapped_column(String(32), default="")
    channel_id: Mapped[str] = mapped_column(String(32), default="")
    received_at: Mapped[datetime]
    claimed_at: Mapped[datetime]
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    finished_at: Mapped[datetime | None]


class HandledRequestRow(Base):
    """A request whose change was committed: written in the same transaction as the change itself."""

    __tablename__ = "handled_requests"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    reply: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime]


class HomeViewRow(Base):
    """Someone who opened the App Home: their Home is published again when what waits for them changes."""

    __tablename__ = "home_views"

    user_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    opened_at: Mapped[datetime]
    digest: Mapped[str] = mapped_column(String(64), default="")
    """Fingerprint of what waited for them in the Home last published (see bot.core.home.digest)."""
    published_at: Mapped[datetime | None]
