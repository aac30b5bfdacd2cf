"""Pacing posts per channel and holding back what a Retry-After applies to (time is passed in)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Pace:
    """Slack's posting limit: about one message per second per channel, short bursts tolerated.

    `interval` seconds between posts to one channel once a burst of `burst` is spent; a delivery pass
    waits at most `hold` seconds for a channel (a pace or a Retry-After) before handing the message back
    to the outbox for later, so a busy channel never holds up the others; at most `concurrency` Slack
    calls are in flight at once.
    """

    interval: float = 1.0
    burst: int = 3
    hold: float = 0.5
    concurrency: int = 4
    home_every: float = 0.6
    """Seconds between two App Home publishes made in the background (views.publish: Tier 4, ~100 a minute)."""


@dataclass
class Pacer:
    """Token buckets per channel, and holds (until a time) per scope: a channel's posts or a method."""

    pace: Pace = field(default_factory=Pace)
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)
    _holds: dict[str, float] = field(default_factory=dict)

    def wait(self, scope: str, now: float) -> float:
        """Seconds until `scope` may be called again (0: now)."""
        return max(0.0, self._holds.get(scope, 0.0) - now)

    def hold(self, scope: str, now: float, seconds: float) -> None:
        """Slack said Retry-After `seconds` for `scope`."""
        self._holds[scope] = max(self._holds.get(scope, 0.0), now + seconds)

    def next_post(self, channel: str, now: float) -> float:
        """Seconds until the next post to `channel` is within the pace (0: now)."""
        tokens, _ = self._tokens(channel, now)
        if tokens >= 1:
            return 0.0
        return (1 - tokens) * self.pace.interval

    def posted(self, channel: str, now: float) -> None:
        """A post to `channel` went out at `now`."""
        tokens, _ = self._tokens(channel, now)
        self._buckets[channel] = (tokens - 1, now)

    def _tokens(self, channel: str, now: float) -> tuple[float, float]:
        tokens, at = self._buckets.get(channel, (float(self.pace.burst), now))
        if self.pace.interval <= 0:
            return float(self.pace.burst), now
        return min(float(self.pace.burst), tokens + (now - at) / self.pace.interval), now
