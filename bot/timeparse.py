"""Offsets and durations as people write them in plans: `-7d`, `+15m`, `1h30m`, `0`."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_OFFSET = re.compile(r"^(?P<sign>[+-])?(?:(?P<d>\d+)d)?(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s)?$")

OFFSET_HELP = "write an offset like -7d, -2h, -30m, -45s, 0, +15m or 1h30m (units d, h, m, s)"


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
        return timedelta(0)
    match = _OFFSET.match(text)
    if not match or not any(match.group(unit) for unit in "dhms"):
        raise ValueError(f"{value!r} is not an offset: {OFFSET_HELP}")
    delta = timedelta(
        days=int(match.group("d") or 0),
        hours=int(match.group("h") or 0),
        minutes=int(match.group("m") or 0),
        seconds=int(match.group("s") or 0),
    )
    return -delta if match.group("sign") == "-" else delta


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
    """Attach `tz` to a naive local time, refusing times that DST skips; return aware UTC."""
    from datetime import UTC

    if value.tzinfo is not None:
        return value.astimezone(UTC)
    aware = value.replace(tzinfo=tz)
    if aware.astimezone(UTC).astimezone(tz).replace(tzinfo=None) != value:
        raise ValueError(f"{value.isoformat()} does not exist in {tz.key} (the clocks skip it for DST)")
    return aware.astimezone(UTC)
