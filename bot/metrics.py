"""Prometheus metrics served at GET /metrics."""

from __future__ import annotations

import gc
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    """The process's counters and histograms, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.commands = Counter(
            "warroom_commands_total",
            "Slash commands and actions handled",
            ["command", "result"],
            registry=self.registry,
        )
        self.ack_seconds = Histogram(
            "warroom_ack_seconds",
            "Time from receiving a Slack request to acknowledging it",
            ["kind"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=self.registry,
        )
        self.outbox_total = Counter(
            "warroom_outbox_total",
            "Outbox messages by final state",
            ["status", "kind"],
            registry=self.registry,
        )
        self.lateness_seconds = Histogram(
            "warroom_message_lateness_seconds",
            "How late a message was posted after its due time",
            ["kind"],
            buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 1800),
            registry=self.registry,
        )

        self.overdue = Gauge(
            "warroom_overdue",
            "Messages and timers due more than a minute ago and still not done (database-wide; alert when > 0)",
            ["what"],
            registry=self.registry,
        )

        self.gc_pause_seconds = Histogram(
            "warroom_gc_pause_seconds",
            "Python's cyclic garbage collections: how long each stopped the event loop, by generation",
            ["generation"],
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
            registry=self.registry,
        )
        self.gc_frozen_objects = Gauge(
            "warroom_gc_frozen_objects",
            "Objects made during start-up that the cyclic collector no longer walks (see bot.heap)",
            registry=self.registry,
        )
        # made now: the collector may run while a scrape holds the histogram's lock, which `labels` takes
        self._gc_pauses = [self.gc_pause_seconds.labels(str(generation)) for generation in range(3)]
        self._gc_started = 0.0

    def watch_collections(self) -> None:
        """Time every cyclic collection from now on (once per process)."""
        if self._on_collection not in gc.callbacks:
            gc.callbacks.append(self._on_collection)

    def _on_collection(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            self._gc_pauses[info["generation"]].observe(time.perf_counter() - self._gc_started)

    def command(self, name: str, result: str) -> None:
        self.commands.labels(name, result).inc()

    def outbox(self, status: str, kind: str) -> None:
        self.outbox_total.labels(status, kind).inc()

    def lateness(self, kind: str, seconds: float) -> None:
        self.lateness_seconds.labels(kind).observe(max(0.0, seconds))

    def render(self) -> bytes:
        return generate_latest(self.registry)


METRICS = Metrics()
