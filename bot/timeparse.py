"""Offsets and durations as people write them in plans: `-7d`, `+15m`, `1h30m`, `0`.

Whole days keep the wall-clock time in the plan's zone (`-7d` before a 20:00 go-live is 20:00 a week
earlier, also across a DST change); hours, minutes and seconds are elapsed time.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_OFFSET = re.compile(r"^(?P<sign>[+-])?(?:(?P<d>\d+)d)?(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s)?$")

OFFSET_HELP = "write an offset like -7d, -2h, -30m, -45s, 0, +15m or 1h30m (units d, h, m, s)"


class Offset(timedelta):
    """An offset as written: `days` whole days on the wall clock, then `elapsed` time (same sign)."""

    calendar_days: int

    def __new__(cls, calendar_days: int = 0, elapsed: timedelta = timedelta(0)) -> Offset:
        self = super().__new__(cls, days=calendar_days, seconds=elapsed.total_seconds())
        self.calendar_days = calendar_days
        return self

    def __reduce__(self) -> tuple[type[Offset], tuple[int, timedelta]]:
        return Offset, (self.calendar_days, self.elapsed)

    @property
    def elapsed(self) -> timedelta:
        return timedelta(seconds=self.total_seconds()) - timedelta(days=self.calendar_days)


def shift(start: datetime, offset: timedelta, tz: ZoneInfo) -> datetime:
    """`start` moved by `offset`: an Offset's whole days on the wall clock in `tz`, the rest elapsed.

    A day shift that lands on a time the clocks skip moves forward by the gap; one that lands on a time
    that happens twice takes the first.
    """
    days = offset.calendar_days if isinstance(offset, Offset) else 0
    if days:
        local = start.astimezone(tz).replace(tzinfo=None) + timedelta(days=days)
        start = local.replace(tzinfo=tz, fold=0).astimezone(UTC)
    return start + (offset - timedelta(days=days))


def parse_offset(value: object) -> timedelta:
    """Parse `-7d`, `+15m`, `1h30m`, `-45s` or `0` into a signed timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not an offset: {OFFSET_HELP}")
    if isinstance(value, int):
        if value == 0:
            return timedelta(0)
        raise ValueError(f"{value!r} has no unit: {OFFSET_HELP}")
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not an offset: {OFFSET_HELP}")
    text = value.strip().replace(" ", "")
    if text in {"0", "+0", "-0"}:
        return Offset()
    match = _OFFSET.match(text)
    if not match or not any(match.group(unit) for unit in "dhms"):
        raise ValueError(f"{value!r} is not an offset: {OFFSET_HELP}")
    days = int(match.group("d") or 0)
    elapsed = timedelta(
        hours=int(match.group("h") or 0), minutes=int(match.group("m") or 0), seconds=int(match.group("s") or 0)
    )
    return Offset(-days, -elapsed) if match.group("sign") == "-" else Offset(days, elapsed)


def parse_duration(value: object) -> timedelta:
    """Parse a positive duration such as `30m` or `1h30m`."""
    delta = parse_offset(value)
    if delta <= timedelta(0):
        raise ValueError(f"{value!r} must be a positive duration such as 30m or 1h30m")
    return delta


def format_offset(delta: timedelta) -> str:
    """Write a timedelta back as `T-7d`-style text: `-7d`, `+1h30m`, `0`."""
    seconds = int(delta.total_seconds())
    if seconds == 0:
        return "0"
    sign = "-" if seconds < 0 else "+"
    seconds = abs(seconds)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return sign + "".join(parts)


def format_duration(delta: timedelta) -> str:
    """Write a duration for people: `1h 30m`, `45m`, `20s`."""
    seconds = abs(int(delta.total_seconds()))
    if seconds == 0:
        return "0m"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return " ".join(parts[:2])


def zone(name: str) -> ZoneInfo:
    """Return the IANA zone `name`, or raise ValueError saying how to name one."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"{name!r} is not an IANA time zone: use a name such as UTC, Europe/Berlin or America/New_York"
        ) from None


def localize(value: datetime, tz: ZoneInfo) -> datetime:
    """Read a naive time as local to `tz` and return it as aware UTC; a time written with an offset is
    taken as written. A local time the clocks skip, or one that happens twice, raises ValueError."""
    if value.tzinfo is not None:
        return value.astimezone(UTC)
    first, second = value.replace(tzinfo=tz, fold=0), value.replace(tzinfo=tz, fold=1)
    written = value.isoformat()
    if not _exists(value, tz):
        start = value.replace(second=0, microsecond=0)
        while not _exists(start - timedelta(minutes=1), tz):
            start -= timedelta(minutes=1)
        gap = abs((second.utcoffset() or timedelta(0)) - (first.utcoffset() or timedelta(0)))
        span = "that hour" if gap == timedelta(hours=1) else "that gap"
        raise ValueError(
            f"{written} does not exist in {tz.key}: the clocks skip from {start:%H:%M} to "
            f"{start + gap:%H:%M} for DST; pick a time outside {span}"
        )
    if first.utcoffset() != second.utcoffset():
        readings = " or ".join(f"{written}{_offset_text(t)} ({t.tzname()})" for t in (first, second))
        raise ValueError(
            f"{written} is ambiguous in {tz.key}: the clocks go back and it happens twice; write {readings}"
        )
    return first.astimezone(UTC)


def _exists(local: datetime, tz: ZoneInfo) -> bool:
    return local.replace(tzinfo=tz).astimezone(UTC).astimezone(tz).replace(tzinfo=None) == local


def _offset_text(value: datetime) -> str:
    seconds = int((value.utcoffset() or timedelta(0)).total_seconds())
    sign = "-" if seconds < 0 else "+"
    return f"{sign}{abs(seconds) // 3600:02d}:{abs(seconds) % 3600 // 60:02d}"
